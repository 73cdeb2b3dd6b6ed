"""A whole object whose full-object checksum botocore checks is not hashed again; anything else is checked by its ETag as before."""

from __future__ import annotations

import os

import boto3.s3.transfer
import pytest

from s3bp import remote
from s3bp.remote import Body, Wire

from ..support import FaultProxy, make_machine, raw_client
from .test_folder_transfers import record

MIB = 1024 * 1024
PROBE = remote.PROBE_BYTES


@pytest.fixture
def md5_calls(monkeypatch):
    """How many times s3bp computed an MD5 of a download as it streamed (a list of byte counts, one per call)."""
    calls: list[int] = []
    real = remote._md5_hex

    def counting(chunks):
        seen = [0]

        def counted():
            for chunk in chunks:
                seen[0] += len(chunk)
                yield chunk

        try:
            return real(counted())
        finally:
            calls.append(seen[0])

    monkeypatch.setattr(remote, "_md5_hex", counting)
    return calls


@pytest.fixture
def wire(endpoint):
    w = Wire(raw_client(endpoint))
    yield w
    w.close()


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", None], ids=["crc32", "sha256", "botocore-default"])
def test_a_whole_object_with_a_full_object_checksum_is_only_counted(wire, raw, bucket, tmp_path, md5_calls, algorithm):
    data = os.urandom(3 * MIB + 7)
    raw.put_object(Bucket=bucket, Key="k", Body=data, **({"ChecksumAlgorithm": algorithm} if algorithm else {}))
    first = wire.get(bucket, "k", whole=True)
    assert isinstance(first, Body) and first.checksummed and not first.ranged
    assert wire.fetch(first, bucket, "k", str(tmp_path / "out")) == 0
    assert (tmp_path / "out").read_bytes() == data and md5_calls == []


def test_an_object_stored_without_a_checksum_is_checked_by_its_md5(s3_server, wire, bucket, tmp_path, md5_calls):
    data = os.urandom(3 * MIB + 7)
    raw_client(s3_server, request_checksum_calculation="when_required").put_object(Bucket=bucket, Key="k", Body=data)
    first = wire.get(bucket, "k", whole=True)
    assert isinstance(first, Body) and not first.checksummed
    wire.fetch(first, bucket, "k", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data and md5_calls == [len(data)]


def test_a_ranged_answer_is_still_checked_by_its_md5(wire, raw, bucket, tmp_path, md5_calls):
    # A load's first GET asks for a range: what it and the rest's GET bring is hashed as before, checksum or not.
    for name, size in (("small", 1000), ("medium", PROBE + 5)):
        data = os.urandom(size)
        raw.put_object(Bucket=bucket, Key=name, Body=data, ChecksumAlgorithm="CRC32")
        first = wire.get(bucket, name)
        assert isinstance(first, Body) and first.ranged
        wire.fetch(first, bucket, name, str(tmp_path / name))
        assert (tmp_path / name).read_bytes() == data
    assert md5_calls == [1000, PROBE + 5]



def test_a_composite_checksum_leaves_the_check_to_the_multipart_etag(wire, raw, bucket, tmp_path, md5_calls):
    # Parts uploaded by another tool: S3 sends a checksum of the parts' checksums ("...-3"), which botocore does not
    # check, so the parts' MD5s are checked as the body streams and the part size that gave the ETag is returned.
    data = os.urandom(17 * MIB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
    raw.upload_file(str(src), bucket, "k", Config=config)
    first = wire.get(bucket, "k", whole=True)
    assert isinstance(first, Body) and not first.checksummed
    assert wire.fetch(first, bucket, "k", str(tmp_path / "out")) == 8 * MIB
    assert (tmp_path / "out").read_bytes() == data


def test_a_checksum_said_to_be_composite_is_not_taken_for_a_full_object_one(s3_server, raw, bucket):
    raw.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="CRC32")
    resp = raw.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    try:
        assert remote._checksum_checked(resp)
        assert remote._checksum_checked({**resp, "ChecksumType": "FULL_OBJECT"})
        assert not remote._checksum_checked({**resp, "ChecksumType": "COMPOSITE"})
    finally:
        resp["Body"].close()
    unchecked = raw_client(s3_server, response_checksum_validation="when_required")
    resp = unchecked.get_object(Bucket=bucket, Key="k")  # no ChecksumMode: S3 sends no checksum, botocore checks nothing
    try:
        assert not remote._checksum_checked(resp)
    finally:
        resp["Body"].close()


@pytest.mark.parametrize("stored", ["when_supported", "when_required", "multipart"], ids=["crc32", "no-checksum", "multipart-etag"])
def test_a_pull_refuses_a_whole_body_corrupted_in_transit(tmp_path, s3_server, bucket, md5_calls, stored):
    # One GET of the whole object each time: botocore's CRC32 check refuses it, or (no checksum stored) the MD5, or
    # (parts with a composite checksum, which botocore does not check) the multipart ETag.
    data = os.urandom(9 * MIB) + b"GOODBYTES" + os.urandom(MIB)
    if stored == "multipart":
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        transfer = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MIB)
        raw_client(s3_server).upload_file(str(src), bucket, "project/blob.bin", Config=transfer)
    else:
        raw_client(s3_server, request_checksum_calculation=stored).put_object(Bucket=bucket, Key="project/blob.bin", Body=data)
    with FaultProxy(s3_server) as proxy:
        m = make_machine(tmp_path / "m", proxy.url, folder="project", bucket=bucket)
        try:
            proxy.always(("replace", b"GOODBYTES", b"EVILBYTES"))
            report = m.store.pull(m.dir)
            assert not report.ok and [p for p, _ in report.failed] == [str(m.dir / "blob.bin")]
            assert "corrupted in transit" in report.failed[0][1]
            assert m.log.operations.count("GetObject") == 1  # the whole object in one answer
            assert md5_calls == ([len(data)] if stored == "when_required" else [])  # a multipart ETag is hashed part by part
            assert os.listdir(m.dir) == [] and record(m, "blob.bin") is None  # no file, no temp file, no record
            proxy.clear()
            assert m.store.pull(m.dir).ok and (m.dir / "blob.bin").read_bytes() == data
            assert record(m, "blob.bin").etag == raw_client(s3_server).head_object(Bucket=bucket, Key="project/blob.bin")["ETag"]
        finally:
            m.close()
