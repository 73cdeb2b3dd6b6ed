"""Versions under hostile use: tampered pinned copies, racing names, odd arguments, reserved keys, unversioned buckets."""

from __future__ import annotations

import os
import pickle
import stat

import pytest


@pytest.fixture
def versioned(make_bucket, raw):
    name = make_bucket()
    raw.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def two(machine, versioned):
    return [machine(name, default_bucket=versioned) for name in ("a", "b")]


def save_three(m, path):
    for n in (1, 2, 3):
        m.store.save_object(f"v{n}", path, wait=True)
    return [v.version_id for v in reversed(m.store.versions(path))]


def test_an_edited_or_truncated_pinned_copy_is_fetched_again(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    copy = b.store.download_file(pb, version=ids[0])
    os.chmod(copy, 0o644)
    with open(copy, "wb") as f:  # an edit in place, by someone who made it writable first
        f.write(pickle.dumps("evil"))
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    assert b.log.operations == ["GetObject"]  # the version again, by its id (no names lookup)
    assert not os.stat(copy).st_mode & stat.S_IWUSR or os.geteuid() == 0  # read-only again
    os.chmod(copy, 0o644)
    open(copy, "wb").close()  # truncated
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    assert b.log.operations == []  # an intact copy still costs nothing
