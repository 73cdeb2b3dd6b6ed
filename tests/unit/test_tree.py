"""Folder decisions without S3: key safety, ignore rules, states and actions."""

from __future__ import annotations

import pytest

from s3bp.freshness import LocalStat, SyncRecord
from s3bp.tree import Action, Ignore, Remote, State, action, classify, key_parts

SEC = 1_000_000_000


def record(etag='"e1"', size=10, mtime_ns=100 * SEC):
    return SyncRecord("/d/p/f", "http://s3", "b", "p/f", etag, size, mtime_ns, 0.0)


def remote(etag='"e1"', size=10, last_modified=100.0):
    return Remote("p/f", etag, size, last_modified)


@pytest.mark.parametrize(
    "key, parts",
    [
        ("p/a", ("a",)),
        ("p/a/b.csv", ("a", "b.csv")),
        ("p/../escape", None),
        ("p/a/../../x", None),
        ("p/a//b", None),
        ("p/a\\b", None),
        ("p/./a", None),
        ("p/", None),
        ("/p/a", None),
        ("q/a", None),
        ("p/a\0b", None),
    ],
)
def test_key_parts_refuses_keys_that_leave_the_tree(key, parts):
    assert key_parts(key, "p/") == parts


def test_ignore_defaults_and_ignore_file_lines():
    ignore = Ignore(["*.log", "!keep.log", "build/"])
    for skipped in (".s3bp-1234-x.csv", "a/.x.csv.swp", "x~", "a/__pycache__/m.pyc", "x.csv.s3bp-remote", "run.log", "build/out.bin"):
        assert ignore(skipped), skipped
    for kept in ("x.csv", "a/b/c.parquet", "keep.log", "notes.txt"):
        assert not ignore(kept), kept


def test_ignore_file_is_read_from_the_base_dir(tmp_path):
    (tmp_path / ".s3bpignore").write_text("secret/\n")
    assert Ignore.for_base_dir(str(tmp_path))("secret/key.pem")
    assert not Ignore.for_base_dir(str(tmp_path / "nowhere"))("secret/key.pem")


@pytest.mark.parametrize(
    "local, rec, rem, expected",
    [
        (LocalStat(10, 100 * SEC), record(), remote(), State.SAME),
        (LocalStat(11, 200 * SEC), record(), remote(), State.LOCAL_NEWER),
        (LocalStat(10, 100 * SEC), record(), remote(etag='"e2"'), State.REMOTE_NEWER),
        (LocalStat(11, 200 * SEC), record(), remote(etag='"e2"'), State.CONFLICT),
        (None, record(), remote(), State.LOCAL_DELETED),
        (None, record(), remote(etag='"e2"'), State.REMOTE_NEWER),
        (LocalStat(10, 100 * SEC), record(), None, State.REMOTE_DELETED),
        (LocalStat(11, 200 * SEC), record(), None, State.LOCAL_NEWER),
        (None, record(), None, State.GONE),
        (LocalStat(10, 100 * SEC), None, None, State.LOCAL_ONLY),
        (None, None, remote(), State.REMOTE_ONLY),
        # no record: the newer whole second wins; equal seconds cannot be told apart
        (LocalStat(10, 100 * SEC + 999), None, remote(last_modified=101.0), State.REMOTE_NEWER),
        (LocalStat(10, 102 * SEC), None, remote(last_modified=101.0), State.LOCAL_NEWER),
        (LocalStat(10, 101 * SEC + 5), None, remote(last_modified=101.0), State.CONFLICT),
    ],
)
def test_classify(local, rec, rem, expected):
    assert classify(local, rec, rem) is expected


def test_equal_bytes_settle_what_times_cannot():
    assert classify(LocalStat(10, 5 * SEC), None, remote(), same_content=lambda: True) is State.SAME
    assert classify(LocalStat(11, 200 * SEC), record(), remote(etag='"e2"'), same_content=lambda: True) is State.SAME


def test_content_is_compared_only_when_needed():
    def boom():
        raise AssertionError("compared")

    assert classify(LocalStat(10, 100 * SEC), record(), remote(), same_content=boom) is State.SAME


def test_a_pending_save_wins():
    assert classify(LocalStat(10, 100 * SEC), record(), remote(etag='"e2"'), pending=True) is State.PENDING


@pytest.mark.parametrize(
    "state, op, delete, expected",
    [
        (State.LOCAL_NEWER, "push", False, Action.UPLOAD),
        (State.LOCAL_NEWER, "pull", False, Action.NOTHING),
        (State.REMOTE_ONLY, "pull", False, Action.DOWNLOAD),
        (State.REMOTE_ONLY, "push", False, Action.NOTHING),
        (State.CONFLICT, "sync", False, Action.CONFLICT),
        (State.LOCAL_DELETED, "push", False, Action.NOTHING),
        (State.LOCAL_DELETED, "push", True, Action.DELETE_REMOTE),
        (State.LOCAL_DELETED, "pull", True, Action.DOWNLOAD),
        (State.LOCAL_DELETED, "sync", False, Action.DOWNLOAD),
        (State.LOCAL_DELETED, "sync", True, Action.DELETE_REMOTE),
        (State.REMOTE_DELETED, "pull", False, Action.NOTHING),
        (State.REMOTE_DELETED, "pull", True, Action.DELETE_LOCAL),
        (State.REMOTE_DELETED, "push", True, Action.UPLOAD),
        (State.REMOTE_DELETED, "sync", False, Action.UPLOAD),
        (State.REMOTE_DELETED, "sync", True, Action.DELETE_LOCAL),
        (State.GONE, "sync", False, Action.FORGET),
        (State.PENDING, "sync", True, Action.NOTHING),
    ],
)
def test_actions(state, op, delete, expected):
    assert action(state, op, delete) is expected


def test_the_quick_check_of_the_ignore_rules_gives_the_same_answers_as_the_rules_themselves():
    import itertools

    import pathspec

    from s3bp.tree import DEFAULT_IGNORE

    extra = ["*.log", "!keep.log", "build/", "/top-only.txt", "docs/**/draft-*", "!docs/**/draft-keep", "a?c.bin", "[xy]z.csv", "deep/dir/"]
    rules = Ignore(extra)
    assert rules._any is not None  # the quick check is in use
    spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_IGNORE, *extra])
    names = ["x.log", "keep.log", "top-only.txt", "draft-1", "draft-keep", "abc.bin", "xz.csv", "zz.csv", "f.tmp", "plain.bin", ".DS_Store"]
    dirs = ["", "build/", "sub/", "docs/", "docs/a/b/", "sub/build/", "__pycache__/", "x/__pycache__/y/", "deep/dir/", "deep/"]
    for d, n in itertools.product(dirs, names):
        assert rules(d + n) == spec.match_file(d + n), d + n
