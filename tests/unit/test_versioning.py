"""Version decisions without S3: the version current at a time, what a prune deletes, names, old state databases."""

from __future__ import annotations

import sqlite3

import pytest

from s3bp.errors import InvalidArgumentError, S3bpError
from s3bp.freshness import LocalStat, SyncRecord
from s3bp.index import StateDB
from s3bp.remote import ObjectVersion
from s3bp.tree import Action, Remote, State, action, classify, reserved
from s3bp.versioning import check_name, current_at, names_document, names_key, of_key, parse_names, parse_pruning, to_prune

DAY = 86400.0


def v(vid: str, at: float, *, latest: bool = False, marker: bool = False, key: str = "k") -> ObjectVersion:
    return ObjectVersion(key, vid, at, 0 if marker else 10, "" if marker else f'"{vid}"', latest, marker)


# newest first, as S3 lists one key: v3 current, a delete marker between v2 and v3
HISTORY = [v("v3", 400, latest=True), v("dm", 300, marker=True), v("v2", 200), v("v1", 100)]


@pytest.mark.parametrize(
    "at, expected",
    [(50, None), (100, "v1"), (150.5, "v1"), (200, "v2"), (299, "v2"), (300, None), (350, None), (400, "v3"), (10**10, "v3")],
)
def test_current_at(at, expected):
    found = current_at(HISTORY, at)
    assert (found.version_id if found else None) == expected


def test_of_key_is_exact():
    listed = [v("a", 1, key="k"), v("b", 1, key="k2"), v("c", 1, key="k/x")]
    assert [x.version_id for x in of_key(listed, "k")] == ["a"]


def test_prune_keeps_latest_named_and_newest():
    history = [v(f"v{n}", n * DAY, latest=n == 5) for n in (5, 4, 3, 2, 1)]
    ids = lambda found: [x.version_id for x in found]  # noqa: E731
    assert ids(to_prune(history, [], keep=2, older_than=None, now=6 * DAY)) == ["v3", "v2", "v1"]
    assert ids(to_prune(history, ["v2"], keep=2, older_than=None, now=6 * DAY)) == ["v3", "v1"]
    assert ids(to_prune(history, [], keep=1, older_than=None, now=6 * DAY)) == ["v4", "v3", "v2", "v1"]
    # older_than counts from when a version was replaced: v3 was replaced at day 4, two days before "now"
    assert ids(to_prune(history, [], keep=None, older_than=1.5 * DAY, now=6 * DAY)) == ["v3", "v2", "v1"]
    assert ids(to_prune(history, [], keep=None, older_than=2.5 * DAY, now=6 * DAY)) == ["v2", "v1"]
    assert ids(to_prune(history, [], keep=4, older_than=2.5 * DAY, now=6 * DAY)) == ["v1"]


def test_prune_never_deletes_markers_or_the_latest_one():
    assert [x.version_id for x in to_prune(HISTORY, [], keep=1, older_than=None, now=500)] == ["v2", "v1"]
    deleted_now = [v("dm", 300, latest=True, marker=True), v("v2", 200), v("v1", 100)]
    assert [x.version_id for x in to_prune(deleted_now, [], keep=1, older_than=None, now=500)] == ["v1"]


@pytest.mark.parametrize("bad", [{}, {"keep": 0}, {"keep": True}, {"keep": 1.5}, {"keep": 2, "older_than": -1.0}])
def test_prune_arguments(bad):
    with pytest.raises(InvalidArgumentError):
        to_prune(HISTORY, [], keep=bad.get("keep"), older_than=bad.get("older_than"), now=0)


def test_names_round_trip_and_checks():
    names = {"prod": "abc", "3f2a9c1": "def"}
    assert parse_names(names_document(names), "x") == names
    assert parse_pruning(names_document(names, ["v1", "v0"])) == {"v0", "v1"} and parse_pruning(names_document(names)) == set()
    assert parse_names(names_document(names, ["v1"]), "x") == names  # a claim leaves the names as they are
    assert names_key("dir/f.pkl") == ".s3bp/names/dir/f.pkl.json" and reserved(names_key("f"))
    assert not reserved("data/.s3bp/x") and reserved(".s3bp/names/x.json")
    for good in ("prod", "v1.2", "prod-2024-05-01", "20240501", "a" * 200, "release/42", "e83c5163316f89bfbde7d9ab23ca2e25604af290"):
        assert check_name(good) == good
    for bad in ("", " prod", "has space", "-x", "a" * 201, "tab\t", 42, "null", "2024-05-01", "2024-05-01T12:00", "2024-05-01T12:00Z"):
        with pytest.raises(InvalidArgumentError):
            check_name(bad)  # type: ignore[arg-type]
    with pytest.raises(S3bpError, match="cannot be read"):
        parse_names(b"not json", "s3://b/.s3bp/names/f.json")


def test_a_file_from_an_as_of_pull_is_never_pushed():
    local = LocalStat(10, 100 * 10**9)
    old = SyncRecord("/d/p/f", "http://s3", "b", "p/f", '"e1"', 10, 100 * 10**9, 0.0, as_of=150.0)
    assert classify(local, old, None) is State.OLD_VERSION
    assert [action(State.OLD_VERSION, op) for op in ("push", "pull", "sync")] == [Action.NOTHING] * 3
    assert action(State.OLD_VERSION, "pull", delete=True) is Action.DELETE_LOCAL
    assert action(State.OLD_VERSION, "push", delete=True) is Action.NOTHING
    assert classify(local, old, Remote("p/f", '"e2"', 10, 200.0)) is State.REMOTE_NEWER  # a pull brings the latest
    assert classify(LocalStat(11, 101 * 10**9), old, Remote("p/f", '"e2"', 10, 200.0)) is State.CONFLICT  # edited: never silent
    assert classify(LocalStat(11, 101 * 10**9), old, None) is State.LOCAL_NEWER  # edited, and gone from S3: the user's new file


def test_an_old_state_database_gains_the_version_columns(tmp_path):
    path = tmp_path / "state.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE records (path TEXT PRIMARY KEY, endpoint TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT NOT NULL,
            etag TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, verified_at REAL NOT NULL,
            saved_ns INTEGER NOT NULL DEFAULT 0, part_size INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE journal (id TEXT PRIMARY KEY, owner TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL,
            endpoint TEXT NOT NULL, profile TEXT, region TEXT, bucket TEXT NOT NULL, key TEXT NOT NULL, spool TEXT NOT NULL,
            size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, pid INTEGER NOT NULL, created REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, conflict TEXT NOT NULL DEFAULT 'raise', extra_args TEXT,
            held INTEGER NOT NULL DEFAULT 0);
        INSERT INTO records VALUES ('/p', 'http://s3', 'b', 'k', '"e"', 1, 2, 3.0, 0, 0);
        """
    )
    conn.commit()
    conn.close()
    db = StateDB(path)
    try:
        rec = db.record("/p")
        assert rec is not None and rec.etag == '"e"' and rec.version_id is None and rec.as_of == 0
        db.put_record(SyncRecord("/q", "http://s3", "b", "k2", '"f"', 1, 2, 3.0, version_id="V1"))
        assert db.record("/q").version_id == "V1"
        db.remember_as_of("http://s3", "b", "k", 12.5, "V0")
        assert db.as_of_version("http://s3", "b", "k", 12.5) == "V0" and db.as_of_version("http://s3", "b", "k", 13) is None
    finally:
        db.close()
