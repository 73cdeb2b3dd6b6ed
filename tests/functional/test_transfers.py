"""Object sizes around the transfer thresholds: empty, one probe, two GETs, s3transfer."""

from __future__ import annotations

import hashlib
import os

import pytest

import s3bp
import s3bp.remote

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, ["GetObject", "GetObject"]),  # a range of an empty object is refused; asked again without
        (100, ["GetObject"]),
        (MIB, ["GetObject"]),
        (3 * MIB + 7, ["GetObject", "GetObject"]),  # the first MiB, then the rest of the same version
    ],
)
def test_cold_download_requests_by_size(tmp_path, bucket, raw, requests_log, size, expected):
    data = os.urandom(size)
    raw.put_object(Bucket=bucket, Key="blob", Body=data)
    path = s3bp.download_file(tmp_path / "blob", bucket)
    assert open(path, "rb").read() == data
    assert requests_log.operations == expected
    requests_log.clear()
    s3bp.download_file(tmp_path / "blob", bucket)
    assert requests_log.operations == ["GetObject"]  # then cached: one 304


def test_large_objects_go_through_s3transfer(tmp_path, bucket, raw, requests_log, monkeypatch):
    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 5 * MIB)
    data = os.urandom(11 * MIB + 3)
    s3bp.save_object(data, tmp_path / "up.bin", bucket, serializer=lambda o, p: open(p, "wb").write(o), wait=True)
    assert "CreateMultipartUpload" in requests_log.operations
    head = raw.head_object(Bucket=bucket, Key="up.bin")
    assert head["ContentLength"] == len(data) and "-" in head["ETag"]
    requests_log.clear()
    assert s3bp.load_object(tmp_path / "up.bin", bucket, deserializer=lambda p: open(p, "rb").read()) == data
    assert requests_log.operations == ["GetObject"]  # the record knows the multipart ETag: 304
    os.remove(tmp_path / "up.bin")
    requests_log.clear()
    got = s3bp.load_object(tmp_path / "up.bin", bucket, deserializer=lambda p: open(p, "rb").read())
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # the first GET's size and ETag go to s3transfer: no HEAD, then ranged GETs of that version
    assert requests_log.operations.count("GetObject") >= 3 and "HeadObject" not in requests_log.operations
    assert os.stat(tmp_path / "up.bin").st_mtime == head["LastModified"].timestamp()
