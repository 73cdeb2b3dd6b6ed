"""Multipart ETags computed from plain bytes, and the part size kept in sync records."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3

import pytest

from s3bp.freshness import SyncRecord, etag_parts, md5_of_etag, multipart_etag, parts_for

MIB = 1024 * 1024
# 11 MiB of bytes(range(256)) and b"tail"; the ETags moto's server gave it when uploaded with boto3 in
# 5 MiB parts, in 8 MiB parts, and by hand in parts of 6 MiB, 5 MiB and the 4 bytes left.
DATA = bytes(range(256)) * (11 * MIB // 256) + b"tail"
IN_5_MIB = '"7b5b2cf501b74fad33a91763af39b0c9-3"'
IN_8_MIB = '"3a785425737e35eda89a3c05d9d14710-2"'
IN_6_5_REST = '"f98b2a23b2ca608bc79bb5db0742f66a-3"'


def pieces(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


def test_multipart_etag_matches_what_s3_computed():
    assert multipart_etag([DATA], 5 * MIB) == IN_5_MIB
    assert multipart_etag([DATA], 8 * MIB) == IN_8_MIB
    assert multipart_etag([DATA], [6 * MIB, 5 * MIB]) == IN_6_5_REST  # the rest makes the last part
    assert multipart_etag([DATA], [6 * MIB, 5 * MIB, 4]) == IN_6_5_REST


@pytest.mark.parametrize("chunk", [1000, 4096, 5 * MIB, 5 * MIB + 1, 64 * MIB])
def test_multipart_etag_does_not_depend_on_how_the_bytes_are_read(chunk):
    assert multipart_etag(pieces(DATA, chunk), 5 * MIB) == IN_5_MIB
    assert multipart_etag(pieces(DATA, chunk), [6 * MIB, 5 * MIB]) == IN_6_5_REST


def test_one_part_and_empty_objects():
    data = b"hello world"
    one = hashlib.md5(hashlib.md5(data).digest()).hexdigest()
    assert multipart_etag([data], 5 * MIB) == f'"{one}-1"'
    assert multipart_etag([data[:3], b"", data[3:]], len(data)) == f'"{one}-1"'
    empty = hashlib.md5(hashlib.md5(b"").digest()).hexdigest()
    assert multipart_etag([], 5 * MIB) == multipart_etag([b""], 5 * MIB) == f'"{empty}-1"'


def test_a_missing_or_changed_byte_changes_the_etag():
    assert multipart_etag([DATA[:-1]], 5 * MIB) != IN_5_MIB
    assert multipart_etag([DATA[: 5 * MIB], DATA[5 * MIB + 1 :]], 5 * MIB) != IN_5_MIB  # a byte lost mid-object
    flipped = DATA[:100] + bytes([DATA[100] ^ 1]) + DATA[101:]
    assert multipart_etag([flipped], 5 * MIB) != IN_5_MIB
    assert multipart_etag([DATA], 4 * MIB) != IN_5_MIB  # the right bytes, the wrong part size


def test_part_sizes_must_be_positive():
    for bad in (0, -1, [], [5, 0]):
        with pytest.raises(ValueError):
            multipart_etag([b"x"], bad)


def test_etag_parts():
    assert etag_parts(IN_5_MIB) == 3
    assert etag_parts(IN_8_MIB.strip('"')) == 2
    assert etag_parts(IN_5_MIB, encrypted=True) is None  # SSE-KMS: no MD5 behind it
    assert etag_parts('"5d41402abc4b2a76b9719d911017c592"') is None  # one PUT: an MD5
    for bad in ('"abc-2"', '"7b5b2cf501b74fad33a91763af39b0c9-0"', '"7b5b2cf501b74fad33a91763af39b0cz-2"', '"x-"', ""):
        assert etag_parts(bad) is None


def test_md5_of_etag():
    assert md5_of_etag('"5D41402ABC4B2A76B9719D911017C592"') == "5d41402abc4b2a76b9719d911017c592"
    assert md5_of_etag(IN_5_MIB) is None
    assert md5_of_etag('"5d41402abc4b2a76b9719d911017c592"', encrypted=True) is None


def test_parts_for():
    assert parts_for(len(DATA), 5 * MIB) == 3
    assert parts_for(len(DATA), 8 * MIB) == 2
    assert parts_for(10 * MIB, 5 * MIB) == 2
    assert parts_for(0, 5 * MIB) == 1
    assert parts_for(10, 0) == 0


def test_part_size_and_the_fields_after_it_have_defaults():
    fields = dataclasses.fields(SyncRecord)
    later = fields[[f.name for f in fields].index("part_size") :]  # added later: records made positionally still work
    assert all(f.default is not dataclasses.MISSING for f in later)
    assert SyncRecord("/p", "http://s3", "b", "k", '"e"', 1, 2, 3.0).part_size == 0


def test_an_old_state_database_gains_the_part_size_column(tmp_path):
    from s3bp.index import StateDB

    path = tmp_path / "state.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE records (path TEXT PRIMARY KEY, endpoint TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
            etag TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, verified_at REAL NOT NULL,
            saved_ns INTEGER NOT NULL DEFAULT 0);
        INSERT INTO records VALUES ('/d/f', 'http://s3', 'b', 'k', '"e-2"', 10, 20, 30.0, 0);
        """
    )
    old.close()
    db = StateDB(path)
    try:
        assert db.record("/d/f") == SyncRecord("/d/f", "http://s3", "b", "k", '"e-2"', 10, 20, 30.0)
        rec = SyncRecord("/d/g", "http://s3", "b", "g", IN_8_MIB, 10, 20, 30.0, part_size=8 * MIB)
        db.put_record(rec)
        assert db.record("/d/g") == rec
    finally:
        db.close()
    StateDB(path).close()  # opening it again adds nothing twice


@pytest.mark.parametrize("size", [0, 1, 5, 16, 17, 33, 1000])
def test_the_threaded_file_etag_is_the_multipart_etag(tmp_path, size):
    import os

    from s3bp.localfiles import file_multipart_etag

    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_multipart_etag(str(path), 16) == multipart_etag([data], 16)
