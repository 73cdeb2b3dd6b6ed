"""Pure decisions of issue 16: content types, metadata checks, when a save is identical, and verify's findings."""

from __future__ import annotations

import pytest

from s3bp.conflicts import Identical, identical_save
from s3bp.errors import InvalidArgumentError
from s3bp.folders import FileState
from s3bp.freshness import LocalStat, SyncRecord, snapshot_hashing
from s3bp.labels import check_metadata, content_type, labelled, metadata_size
from s3bp.serializers import get_format
from s3bp.tree import Remote, State
from s3bp.uploads import UploadOptions
from s3bp.verifying import Check, findings

MD5 = '"' + "a" * 32 + '"'
MULTI = '"' + "b" * 32 + '-3"'


def record(etag: str = MD5, size: int = 10, **kw) -> SyncRecord:
    return SyncRecord("/p", "e", "b", "k", etag, size, 1_000, kw.pop("verified_at", 100.0), **kw)


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("x.csv", "csv", "text/csv"),
        ("x.csv.gz", "csv", "application/gzip"),
        ("x.gz", "pickle", "application/octet-stream"),  # pickle bytes, whatever the name says
        ("x.txt", None, "text/plain"),
        ("x.parquet", None, "application/vnd.apache.parquet"),  # the registry knows the suffix
        ("x", None, "application/octet-stream"),
    ],
)
def test_content_type(path, fmt, expected):
    assert content_type(path, get_format(fmt) if fmt else None) == expected


def test_metadata_checks_and_size():
    assert check_metadata({"Team-1": "ml"}, "/p") == {"Team-1": "ml"} and check_metadata(None, "/p") == {}
    for bad in ({"a b": "x"}, {"k": 1}, {"k": "line\nbreak"}):
        with pytest.raises(InvalidArgumentError, match="/p"):
            check_metadata(bad, "/p")
    assert metadata_size({"ab": "cde"}) == 5
    options = labelled(UploadOptions("raise", '{"Metadata": {"team": "x"}}'), content="text/csv", metadata={"s3bp-version": "1"}, path="/p")
    assert options.arguments() == {"ContentType": "text/csv", "Metadata": {"s3bp-version": "1", "team": "x"}}
    with pytest.raises(InvalidArgumentError, match="2048"):
        labelled(UploadOptions(), content="text/csv", metadata={"k": "v" * 2048}, path="/p")


def test_snapshot_hashing():
    assert snapshot_hashing(None, 10, lambda s: 5) is None
    assert snapshot_hashing(record(size=11), 10, lambda s: 5) is None  # another size: other bytes, no hashing needed
    assert snapshot_hashing(record(), 10, lambda s: 5) == 0
    assert snapshot_hashing(record(MULTI), 10, lambda s: 5) == 5
    assert snapshot_hashing(record(MULTI, part_size=4), 10, lambda s: 5) == 4
    assert snapshot_hashing(record('"kms-opaque"'), 10, lambda s: 5) is None


def test_identical_save():
    assert identical_save(None, record(), "x", now=100) is Identical.NO
    assert identical_save('"' + "c" * 32 + '"', record(), "x", now=100) is Identical.NO
    assert identical_save(MD5.upper(), record(), "x", now=100) is Identical.CHECK
    assert identical_save(MD5, record(args="x"), "x", now=110, max_age=60) is Identical.TRUSTED
    assert identical_save(MD5, record(args="y"), "x", now=110, max_age=60) is Identical.CHECK  # other upload settings
    assert identical_save(MD5, record(args="x"), "x", now=170, max_age=60) is Identical.CHECK  # confirmed too long ago
    assert identical_save(MD5, record(args="x"), "x", now=90, max_age=60) is Identical.CHECK  # the clock stepped back


def test_findings():
    rec = record()
    same = LocalStat(10, 1_000)
    remote = Remote("k", MD5, 10, 0.0)

    def check(local, remote_, ok_bytes, state=State.SAME):
        return findings(FileState("/p", "b", "k", state, local, remote_, rec), ok_bytes).status

    assert check(same, remote, True) is Check.OK
    assert check(same, remote, False) is Check.CORRUPT
    assert check(same, remote, None) is Check.UNCHECKABLE
    assert check(LocalStat(10, 2_000), remote, None) is Check.LOCAL_CHANGED
    assert check(None, remote, None) is Check.LOCAL_CHANGED
    assert check(same, remote, True, State.PENDING) is Check.LOCAL_CHANGED
    assert check(same, Remote("k", MULTI, 10, 0.0), True) is Check.S3_CHANGED
    assert check(same, None, True) is Check.S3_CHANGED
    assert check(same, None, False) is Check.CORRUPT  # the most pressing finding first; both are listed
    assert len(findings(FileState("/p", "b", "k", State.SAME, same, None, rec), False).findings) == 2
