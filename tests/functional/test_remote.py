"""Each wire primitive against moto's server: the answers it returns as values and the errors it translates."""

from __future__ import annotations

import uuid

import pytest

from s3bp.endpoints import describe_connection
from s3bp.errors import BucketNotFoundError, DownloadError, S3bpError
from s3bp.remote import PROBE_BYTES, Body, Head, Missing, NotModified, Refused, Stored, Wire, allowed_upload_args

from ..support import FaultProxy, body, raw_client


@pytest.fixture
def wire(endpoint):
    w = Wire(raw_client(endpoint))
    yield w
    w.close()


def test_get_answers_body_not_modified_and_missing(wire, raw, bucket, tmp_path):
    raw.put_object(Bucket=bucket, Key="k", Body=b"hello")
    first = wire.get(bucket, "k")
    assert isinstance(first, Body) and first.size == 5 and not first.encrypted
    dest = tmp_path / "out"
    wire.fetch(first, bucket, "k", str(dest))
    assert dest.read_bytes() == b"hello"
    assert isinstance(wire.get(bucket, "k", if_none_match=first.etag), NotModified)
    assert isinstance(wire.get(bucket, "k", if_modified_since=first.last_modified + 5), NotModified)
    assert isinstance(wire.get(bucket, "k", if_modified_since=first.last_modified - 5), Body)
    assert isinstance(wire.get(bucket, "nope"), Missing)


def test_empty_and_medium_objects_arrive_whole(wire, raw, bucket, tmp_path):
    raw.put_object(Bucket=bucket, Key="empty", Body=b"")
    first = wire.get(bucket, "empty")
    assert isinstance(first, Body) and first.size == 0
    wire.fetch(first, bucket, "empty", str(tmp_path / "e"))
    assert (tmp_path / "e").read_bytes() == b""
    data = bytes(range(256)) * (PROBE_BYTES // 256 + 10)
    raw.put_object(Bucket=bucket, Key="medium", Body=data)
    first = wire.get(bucket, "medium")
    assert isinstance(first, Body) and first.size == len(data)
    wire.fetch(first, bucket, "medium", str(tmp_path / "m"))
    assert (tmp_path / "m").read_bytes() == data


def test_fetch_refuses_bytes_that_do_not_match_the_md5_etag(s3_server, bucket, raw, tmp_path):
    raw.put_object(Bucket=bucket, Key="k", Body=b"original-bytes")
    with FaultProxy(s3_server) as proxy:
        proxy.always(("replace", b"original-bytes", b"corrupted-byte"))
        w = Wire(raw_client(proxy.url, request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        first = w.get(bucket, "k")
        with pytest.raises(DownloadError, match="corrupted in transit"):
            w.fetch(first, bucket, "k", str(tmp_path / "out"))


def test_put_head_list_delete(wire, raw, bucket, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"v1")
    stored = wire.put(bucket, "dir/a", str(src), 2, {"ContentType": "text/plain"})
    assert isinstance(stored, Stored) and raw.head_object(Bucket=bucket, Key="dir/a")["ContentType"] == "text/plain"
    head = wire.head(bucket, "dir/a")
    assert isinstance(head, Head) and (head.etag, head.size) == (stored.etag, 2)
    assert isinstance(wire.head(bucket, "dir/none"), Missing)
    assert isinstance(wire.put(bucket, "dir/a", str(src), 2, {}, if_match=stored.etag), Stored)
    assert wire.put(bucket, "dir/a", str(src), 2, {}, if_match='"0123456789abcdef0123456789abcdef"') == Refused("412")
    assert [(o.key, o.size) for o in wire.list(bucket, "dir/")] == [("dir/a", 2)]
    wire.delete(bucket, "dir/a")
    assert list(wire.list(bucket, "dir/")) == [] and isinstance(wire.head(bucket, "dir/a"), Missing)
    src.write_bytes(b"v2")
    wire.put(bucket, "dir/a", str(src), 2, {})
    assert body(raw, bucket, "dir/a") == b"v2"


def test_create_bucket_and_a_missing_bucket_is_named(wire, tmp_path):
    name = f"s3bp-test-{uuid.uuid4().hex[:12]}"
    wire.create_bucket(name)
    assert list(wire.list(name, "")) == []
    with pytest.raises(BucketNotFoundError, match="does not exist"):
        wire.get("s3bp-test-no-such-bucket", "k")
    with pytest.raises(BucketNotFoundError):
        list(wire.list("s3bp-test-no-such-bucket", ""))


def test_no_botocore_exception_leaves_the_wire(wire, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"x")
    for call in (
        lambda: wire.put("s3bp-test-no-such-bucket", "k", str(src), 1, {}),
        lambda: wire.get("s3bp-test-no-such-bucket", "k"),
        lambda: wire.delete("s3bp-test-no-such-bucket", "k"),
    ):
        with pytest.raises(S3bpError):
            call()


def test_allowed_upload_args_leave_checksums_to_botocore():
    allowed = allowed_upload_args()
    assert "ContentType" in allowed and "ServerSideEncryption" in allowed and "ChecksumSHA256" not in allowed


def test_describe_connection_names_sources(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    rows = {name: (value, source) for name, value, source in describe_connection(profile=None, region=None, endpoint_url=None)}
    assert rows["endpoint_url"] == ("http://127.0.0.1:1", "the environment variable AWS_ENDPOINT_URL")
    assert rows["region"] == ("us-east-1", "the environment variable AWS_DEFAULT_REGION")
    rows = {name: (value, source) for name, value, source in describe_connection(profile=None, region="eu-west-1", endpoint_url="http://x")}
    assert rows["endpoint_url"] == ("http://x", "config file") and rows["region"] == ("eu-west-1", "config file")
