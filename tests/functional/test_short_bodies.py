"""Answers cut short but framed as complete (Content-Length and Content-Range rewritten to match): refused on every path.

Objects whose ETag is an MD5 were always checked against it; these tests are
about the others (multipart, SSE-KMS), where only the byte counts and the
parts' MD5s can tell. Each refusal keeps the old local file and its sync record.
"""

from __future__ import annotations

import os
import re

import boto3.s3.transfer
import pytest

import s3bp
from s3bp.errors import DownloadError

from ..support import RequestLog, make_machine

MIB = 1024 * 1024


def read(path):
    return open(path, "rb").read()


def write(obj, path):
    open(path, "wb").write(obj)


def fresh_store():
    """A new default store (new client, new connections) on the same config and state dir."""
    old = s3bp.set_default_store(None)
    if old is not None:
        old.close()


def record(state_dir, path):
    """The sync record of ``path`` in the state directory ``state_dir`` (read by a separate connection)."""
    from s3bp.index import StateDB

    db = StateDB(os.path.join(state_dir, "state.sqlite3"))
    try:
        return db.record(str(path))
    finally:
        db.close()


def refused(bucket, key):
    """``pytest.raises`` for a DownloadError naming s3://bucket/key."""
    return pytest.raises(DownloadError, match=re.escape(f"s3://{bucket}/{key}"))


def threshold_home():
    """The module whose MULTIPART_THRESHOLD s3bp reads (s3bp.core before the wire moved to s3bp.remote)."""
    import s3bp.core

    if hasattr(s3bp.core, "MULTIPART_THRESHOLD"):
        return s3bp.core
    import s3bp.remote

    return s3bp.remote


def upload_in_parts(raw, bucket, key, data, tmp_path, part_size=5 * MIB):
    """Upload ``data`` with boto3 in ``part_size`` parts (as any other tool would); return its ETag."""
    src = tmp_path / "upload-source"
    src.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    raw.upload_file(str(src), bucket, key, Config=config)
    src.unlink()
    return raw.head_object(Bucket=bucket, Key=key)["ETag"]


@pytest.mark.parametrize("size", [6 * MIB + 11, 13 * MIB + 5], ids=["two-gets", "s3transfer"])
def test_multipart_object_cut_short_is_refused_and_the_old_file_kept(tmp_path, bucket, raw, proxy, size, monkeypatch):
    monkeypatch.setattr(threshold_home(), "MULTIPART_THRESHOLD", 8 * MIB)  # 13 MiB through s3transfer, as the id says
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "blob.bin"
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=b"version 1")
    assert s3bp.load_object(path, bucket, deserializer=read) == b"version 1"
    old_etag = record(os.environ["S3BP_STATE_DIR"], path).etag
    data = os.urandom(size)
    etag = upload_in_parts(raw, bucket, "blob.bin", data, tmp_path)
    assert etag.endswith('-2"') or etag.endswith('-3"')
    fresh_store()

    proxy.script("pass", ("truncate", 4096))  # the first GET passes; the next answer with a body is cut
    with refused(bucket, "blob.bin"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert proxy.cut == 1
    assert read(path) == b"version 1"
    assert sorted(os.listdir(folder)) == ["blob.bin"]  # no temp file left behind
    assert record(os.environ["S3BP_STATE_DIR"], path).etag == old_etag  # nothing claims the new version

    proxy.clear()
    fresh_store()
    log = RequestLog()
    log.attach(s3bp.get_default_store().client())
    assert s3bp.load_object(path, bucket, deserializer=read) == data
    assert log.operations.count("HeadObject") == 1  # part 1's size: 5 MiB, not s3transfer's 8 MiB
    rec = record(os.environ["S3BP_STATE_DIR"], path)
    assert (rec.etag, rec.part_size) == (etag, 5 * MIB)


def test_own_multipart_upload_cut_on_another_machine_is_refused(tmp_path, bucket, proxy, machine, monkeypatch):
    monkeypatch.setattr(threshold_home(), "MULTIPART_THRESHOLD", 5 * MIB)
    a = machine("a", bucket=bucket)
    b = make_machine(tmp_path / "b", proxy.url, bucket=bucket)  # B reaches S3 through the proxy
    try:
        a.store.save_object(b"version 1", a.dir / "blob.bin", serializer=write, wait=True)
        assert b.store.load_object(b.dir / "blob.bin", deserializer=read) == b"version 1"
        old_etag = record(b.root / "state", b.dir / "blob.bin").etag
        data = os.urandom(9 * MIB + 5)  # s3transfer's 8 MiB parts: two
        a.store.save_object(data, a.dir / "blob.bin", serializer=write, wait=True)
        assert "CreateMultipartUpload" in a.log.operations

        proxy.script("pass", ("truncate", 4096))  # the conditional GET passes, one of the parts is cut
        with refused(bucket, "data/blob.bin"):
            b.store.load_object(b.dir / "blob.bin", deserializer=read)
        assert proxy.cut == 1
        assert read(b.dir / "blob.bin") == b"version 1"
        assert sorted(os.listdir(b.dir)) == ["blob.bin"]
        assert record(b.root / "state", b.dir / "blob.bin").etag == old_etag

        proxy.clear()
        b.log.clear()
        assert b.store.load_object(b.dir / "blob.bin", deserializer=read) == data
        assert "HeadObject" not in b.log.operations  # s3bp's own part size is known without asking
        rec = record(b.root / "state", b.dir / "blob.bin")
        assert rec.etag.endswith('-2"') and rec.part_size == 8 * MIB
    finally:
        b.close()


def test_medium_object_cut_on_its_second_get_is_refused(tmp_path, bucket, raw, proxy):
    path = tmp_path / "blob.bin"
    data = os.urandom(3 * MIB + 7)
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=data)
    proxy.script("pass", ("truncate", 1000))
    with refused(bucket, "blob.bin"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert proxy.cut == 1
    assert not path.exists() and os.listdir(tmp_path) == []
    proxy.clear()
    assert s3bp.load_object(path, bucket, deserializer=read) == data


def test_medium_object_cut_on_its_first_get_is_refused(tmp_path, bucket, raw, proxy):
    path = tmp_path / "blob.bin"
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=os.urandom(2 * MIB))
    proxy.script(("truncate", 1000))
    with pytest.raises(DownloadError, match="cut short"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert proxy.cut == 1 and not path.exists()


def test_encrypted_object_cut_short_is_refused(tmp_path, bucket, raw, proxy):
    # With SSE-KMS the ETag is no MD5, single part or not: the byte count is what tells.
    path = tmp_path / "blob.bin"
    data = os.urandom(3 * MIB + 7)
    raw.put_object(Bucket=bucket, Key="blob.bin", Body=data, ServerSideEncryption="aws:kms")
    proxy.script("pass", ("truncate", 1000))
    with pytest.raises(DownloadError, match="cut short"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert not path.exists()
    proxy.clear()
    assert s3bp.load_object(path, bucket, deserializer=read) == data


def test_multipart_object_corrupted_in_transit_is_refused(tmp_path, bucket, raw, proxy):
    # Same length, other bytes: ranged answers carry no checksum, so the parts' MD5s are what tells.
    path = tmp_path / "blob.bin"
    data = os.urandom(6 * MIB) + b"GOODBYTES" + os.urandom(MIB)
    upload_in_parts(raw, bucket, "blob.bin", data, tmp_path)
    proxy.always(("replace", b"GOODBYTES", b"EVILBYTES"))
    with pytest.raises(DownloadError, match="corrupted in transit"):
        s3bp.load_object(path, bucket, deserializer=read)
    assert not path.exists()


def test_parts_of_different_sizes_are_checked_part_by_part(tmp_path, bucket, raw, requests_log):
    data = os.urandom(11 * MIB + 4)
    upload = raw.create_multipart_upload(Bucket=bucket, Key="blob.bin")["UploadId"]
    parts, start = [], 0
    for number, length in enumerate([6 * MIB, 5 * MIB, 4], 1):
        sent = raw.upload_part(Bucket=bucket, Key="blob.bin", UploadId=upload, PartNumber=number, Body=data[start : start + length])
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        start += length
    raw.complete_multipart_upload(Bucket=bucket, Key="blob.bin", UploadId=upload, MultipartUpload={"Parts": parts})
    path = tmp_path / "blob.bin"
    assert s3bp.load_object(path, bucket, deserializer=read) == data
    assert requests_log.operations.count("HeadObject") == 3  # part 1 (6 MiB gives two parts, not three), then each
    assert record(os.environ["S3BP_STATE_DIR"], path).part_size == 0  # no one part size describes it


def test_a_store_that_hides_part_sizes_leaves_the_check_to_the_byte_counts(tmp_path, bucket, raw, proxy, caplog):
    data = os.urandom(6 * MIB + 3)
    upload_in_parts(raw, bucket, "blob.bin", data, tmp_path)
    proxy.always(("replace-request", b"partNumber=", b"partNumbr="))  # HEAD then answers for the whole object
    with caplog.at_level("WARNING", logger="s3bp"):
        assert s3bp.load_object(tmp_path / "blob.bin", bucket, deserializer=read) == data
    assert "cannot check" in caplog.text
