"""What was saved: Content-Type and metadata on every upload, identical saves skipped, and ``info``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import s3bp
from s3bp import ConflictError
from s3bp.errors import InvalidArgumentError, UploadError

from ..support import body

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def one(machine, bucket):
    """A machine with ``bucket`` as its default bucket (keys are file names)."""
    return machine("a", default_bucket=bucket)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("o.pkl", "pickle", "application/octet-stream"),
        ("o.json", "json", "application/json"),
        ("f.csv", "csv", "text/csv"),
        ("f.csv.gz", "csv", "application/gzip"),
        ("f.parquet", "parquet", "application/vnd.apache.parquet"),
        ("f.feather", "feather", "application/vnd.apache.arrow.file"),
        ("f.xlsx", "excel", XLSX),
        ("f.data", "parquet", "application/vnd.apache.parquet"),  # the format decides, not the name
    ],
)
def test_each_format_has_its_content_type_and_marker(one, raw, bucket, name, fmt, expected):
    path = one.root / name
    if name.startswith("o."):
        one.store.save_object({"a": [1, 2]}, path, serializer=fmt, wait=True)
    else:
        import pandas as pd

        one.store.save_dataframe(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), path, format=fmt, wait=True)
    head = raw.head_object(Bucket=bucket, Key=name)
    assert head["ContentType"] == expected
    assert head["Metadata"]["s3bp-format"] == fmt and head["Metadata"]["s3bp-version"] == s3bp.__version__
    if not name.startswith("o."):
        assert (head["Metadata"]["s3bp-rows"], head["Metadata"]["s3bp-columns"]) == ("3", "2")


def test_pushed_and_uploaded_files_are_typed_by_name(machine, raw, bucket):
    m = machine("a", bucket=bucket)
    raw.put_object(Bucket=bucket, Key="data/notes.txt", Body=b"from aws s3 cp", ContentType="text/plain")
    m.store.pull(m.dir)
    m.write("notes.txt", "edited here")
    m.write("table.csv", "a,b\n1,2\n")
    m.write("blob", "no suffix")
    m.write("page.html", "<p>hi</p>")
    m.store.push(m.dir)
    types = {k: raw.head_object(Bucket=bucket, Key=f"data/{k}")["ContentType"] for k in ("notes.txt", "table.csv", "blob", "page.html")}
    assert types == {"notes.txt": "text/plain", "table.csv": "text/csv", "blob": "application/octet-stream", "page.html": "text/html"}
    assert body(raw, bucket, "data/notes.txt") == b"edited here"
    meta = raw.head_object(Bucket=bucket, Key="data/blob")["Metadata"]
    assert meta == {"s3bp-version": s3bp.__version__}  # no format: s3bp did not write it; no host or user by default
    m.write("upload.json", "[1]")
    m.store.upload_file(m.dir / "upload.json", wait=True)
    assert raw.head_object(Bucket=bucket, Key="data/upload.json")["ContentType"] == "application/json"


def test_upload_args_and_extra_args_win(one, raw, bucket):
    one.store.config.update(lambda d: d.__setitem__("upload_args", {"ContentType": "text/x-config"}))
    one.store.save_object([1], one.root / "a.json", serializer="json", wait=True)
    assert raw.head_object(Bucket=bucket, Key="a.json")["ContentType"] == "text/x-config"
    one.store.save_object([1], one.root / "b.json", serializer="json", wait=True, extra_args={"ContentType": "application/x-mine"})
    assert raw.head_object(Bucket=bucket, Key="b.json")["ContentType"] == "application/x-mine"


def test_metadata_round_trip_through_info_and_head(one, raw, bucket):
    import pandas as pd

    path = one.root / "frame.parquet"
    one.store.save_dataframe(pd.DataFrame({"a": range(5)}), path, wait=True, metadata={"Source": "survey-2024", "owner": "ml"})
    head = raw.head_object(Bucket=bucket, Key="frame.parquet")
    want = {"source": "survey-2024", "owner": "ml", "s3bp-format": "parquet", "s3bp-version": s3bp.__version__,
            "s3bp-rows": "5", "s3bp-columns": "1"}  # fmt: skip
    assert head["Metadata"] == want
    info = one.store.info(path)
    assert info.metadata == want and info.content_type == "application/vnd.apache.parquet"
    assert (info.etag, info.size, info.bucket, info.key, info.state) == (head["ETag"], head["ContentLength"], bucket, "frame.parquet", "same")


def test_record_origin_adds_host_and_user(one, raw, bucket):
    import socket

    one.store.config.update(lambda d: d.__setitem__("record_origin", True))
    one.store.save_object(1, one.root / "x.pkl", wait=True)
    meta = raw.head_object(Bucket=bucket, Key="x.pkl")["Metadata"]
    assert meta["s3bp-host"] == socket.gethostname() and meta["s3bp-user"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"naïve": "x"}, "is not usable in S3"),
        ({"ok": "x" * 2100}, "over S3's limit of 2048 bytes"),
        ({"s3bp-format": "json"}, "keeps for its own keys"),
        ({"a": "é"}, "printable ASCII"),
        ({"Team": "a", "team": "b"}, "given twice"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_written(one, raw, bucket, metadata, message):
    path = one.root / "m.pkl"
    with pytest.raises(InvalidArgumentError, match=message) as info:
        one.store.save_object(1, path, metadata=metadata)
    assert str(path) in str(info.value) and "Nothing was written" in str(info.value)
    assert not path.exists() and "Contents" not in raw.list_objects_v2(Bucket=bucket) and one.store.pending_uploads() == []
    assert [op for op in one.log.operations if op != "ListObjectsV2"] == []


def test_an_identical_save_sends_no_put(one, raw, bucket):
    path = one.root / "d.pkl"
    assert one.store.save_object({"v": 1}, path, wait=True).unchanged is False
    one.log.clear()
    fut = one.store.save_object({"v": 1}, path, wait=True)
    assert fut.unchanged is True and one.log.operations == ["HeadObject"]  # one request confirms S3 still holds it
    one.log.clear()
    fut = one.store.save_object({"v": 2}, path, wait=True)
    assert fut.unchanged is False and one.log.operations.count("PutObject") == 1 + 1  # its PUT, and the endpoint's one probe
    one.log.clear()
    one.store.save_object({"v": 2}, path, wait=True, metadata={"note": "new"})  # same bytes, other metadata: uploaded
    assert one.log.operations.count("PutObject") == 1 and raw.head_object(Bucket=bucket, Key="d.pkl")["Metadata"]["note"] == "new"
    assert one.store.load_object(path) == {"v": 2}


def test_an_identical_save_within_max_age_sends_nothing(one):
    one.store.config.update(lambda d: d.__setitem__("max_age", 3600))
    path = one.root / "d.pkl"
    one.store.save_object("same", path, wait=True)
    one.log.clear()
    assert one.store.save_object("same", path, wait=True).unchanged is True
    assert one.log.operations == []


def test_an_identical_multipart_upload_is_skipped(one, raw, bucket, monkeypatch):
    import s3bp.remote

    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 8 * 1024 * 1024)  # 9 MiB in two parts
    path = one.root / "big.bin"
    path.write_bytes(os.urandom(9 * 1024 * 1024))
    one.store.upload_file(path, wait=True)
    etag = raw.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert etag.endswith('-2"')
    one.log.clear()
    path.write_bytes(path.read_bytes())  # the same bytes again, a new mtime
    assert one.store.upload_file(path, wait=True).unchanged is True
    assert one.log.operations == ["HeadObject"] and raw.head_object(Bucket=bucket, Key="big.bin")["ETag"] == etag


def test_an_identical_save_after_another_machines_change_is_a_conflict(machine, raw, bucket):
    a, b = machine("a", default_bucket=bucket), machine("b", default_bucket=bucket)
    pa, pb = a.root / "d.pkl", b.root / "d.pkl"
    a.store.save_object("v1", pa, wait=True)
    assert b.store.load_object(pb) == "v1"
    a.store.save_object("v2 from a", pa, wait=True)
    with pytest.raises(ConflictError):
        b.store.save_object("v1", pb, wait=True)  # the bytes b last synced, but S3 moved on
    assert body(raw, bucket, "d.pkl") != b"" and a.store.load_object(pa) == "v2 from a"


def test_info_for_each_local_state(machine, raw, bucket):
    a, b = machine("a", default_bucket=bucket), machine("b", default_bucket=bucket)
    pa, pb = a.root / "s.pkl", b.root / "s.pkl"

    def state(m, p):
        m.log.clear()
        got = m.store.info(p)
        assert m.log.operations == ["HeadObject"]
        return got.state

    assert state(a, pa) == "not found"
    a.store.save_object("v1", pa, wait=True)
    assert state(a, pa) == "same" and state(b, pb) == "remote only"
    b.store.load_object(pb)
    a.store.save_object("v2", pa, wait=True)
    assert state(b, pb) == "remote newer"
    b.store.load_object(pb)
    os.utime(pb, ns=(pb.stat().st_atime_ns, pb.stat().st_mtime_ns + 5 * 10**9))
    assert state(b, pb) == "local newer"
    a.store.save_object("v3", pa, wait=True)
    assert state(b, pb) == "conflict"
    (a.root / "l.pkl").write_bytes(b"local")
    assert state(a, a.root / "l.pkl") == "local only"
    info = a.store.info(pa)
    assert info.exists and info.endpoint == a.store.client().meta.endpoint_url and info.version_id is None and info.synced_at
    assert info.pending is None and info.local_size == pa.stat().st_size


def test_info_shows_a_pending_upload_with_its_error(machine, bucket):
    m = machine("a", default_bucket="s3bp-test-no-such-bucket-here")
    path = m.root / "p.pkl"
    with pytest.raises(UploadError):
        m.store.save_object(1, path, wait=True)
    info = m.store.info(path)
    assert info.pending is not None and info.pending.attempts == 1 and "does not exist" in (info.pending.last_error or "")
    assert info.state == "local only" and not info.exists


def test_info_and_verify_on_the_command_line(machine, bucket, tmp_path, isolated):
    m = machine("a", bucket=bucket)
    m.write("x.txt", "hello")
    m.store.push(m.dir)
    env = {**os.environ, "S3BP_CONFIG": str(m.root / "config.yml"), "S3BP_STATE_DIR": str(m.root / "state")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env=env, timeout=120)

    shown = run("info", str(m.dir / "x.txt"), "--json")
    assert shown.returncode == 0, shown.stderr
    got = json.loads(shown.stdout)
    assert (got["state"], got["content_type"], got["key"]) == ("same", "text/plain", "data/x.txt")
    assert "content type:  text/plain" in run("info", str(m.dir / "x.txt")).stdout
    assert run("verify", str(m.dir)).returncode == 0
    m.write("x.txt", "edited")
    checked = run("verify", str(m.dir), "--json")
    assert checked.returncode == 1 and json.loads(checked.stdout)["files"][0]["status"] == "local changed"
