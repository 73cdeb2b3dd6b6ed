"""push, pull, sync and ls of mapped folders, between simulated machines sharing one bucket."""

from __future__ import annotations

import os

import pytest

from s3bp.errors import InvalidPathError
from s3bp.tree import State

from ..support import body


@pytest.fixture
def machines(machine, bucket):
    """Two computers, each with its own copy of the ``project`` folder mapped to ``bucket``."""
    return [machine(name, folder="project", bucket=bucket) for name in ("laptop", "server")]


def keys(raw, bucket):
    return sorted(o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_push_uploads_new_and_changed_files_once(machines, raw, bucket):
    a, _ = machines
    a.write("a.txt", "one")
    a.write("sub/deeper/b.csv", "x,y\n1,2\n")
    a.write(".a.txt.swp", "editor junk")
    a.write("notes.log", "ignored by .s3bpignore")
    a.write(".s3bpignore", "*.log\n")
    report = a.store.push(a.dir)
    assert report.ok and sorted(report.uploaded) == [str(a.dir / "a.txt"), str(a.dir / "sub/deeper/b.csv")]
    assert report.bytes == 3 + 8
    assert keys(raw, bucket) == ["project/a.txt", "project/sub/deeper/b.csv"]
    again = a.store.push(a.dir)
    assert again.uploaded == [] and again.unchanged == 2
    a.write("a.txt", "two")
    assert a.store.push(a.dir).uploaded == [str(a.dir / "a.txt")]
    assert body(raw, bucket, "project/a.txt") == b"two"


def test_push_of_a_sub_directory_keys_files_as_save_would(machines, raw, bucket):
    a, _ = machines
    a.write("in/x.txt", "x")
    a.write("out/y.txt", "y")
    a.store.push(a.dir / "in")
    assert keys(raw, bucket) == ["project/in/x.txt"]
    assert a.store.resolve(a.dir / "in" / "x.txt").key == "project/in/x.txt"


def test_two_machines_add_change_and_delete(machines, raw, bucket):
    a, b = machines
    a.write("a.txt", "a1")
    a.write("sub/b.txt", "b1")
    assert a.store.sync(a.dir).ok
    pulled = b.store.pull(b.dir)
    assert pulled.ok and len(pulled.downloaded) == 2 and b.tree() == ["a.txt", "sub/b.txt"]
    assert b.read("sub/b.txt") == "b1"
    assert b.store.pull(b.dir).downloaded == []  # already current: nothing transferred

    b.write("sub/b.txt", "b2")
    b.write("c.txt", "c1")
    assert sorted(os.path.basename(p) for p in b.store.sync(b.dir).uploaded) == ["b.txt", "c.txt"]
    report = a.store.sync(a.dir)
    assert sorted(os.path.basename(p) for p in report.downloaded) == ["b.txt", "c.txt"] and report.uploaded == []
    assert a.read("sub/b.txt") == "b2" and a.read("c.txt") == "c1"

    # without delete=True a deletion is undone by the other side, never mirrored
    (a.dir / "a.txt").unlink()
    report = a.store.sync(a.dir)
    assert report.downloaded == [str(a.dir / "a.txt")] and a.read("a.txt") == "a1"
    (a.dir / "a.txt").unlink()
    assert a.store.push(a.dir).deleted_remote == []
    assert "project/a.txt" in keys(raw, bucket)

    # with delete=True it is mirrored: to S3 by the machine that deleted, to the other machine on its next sync
    report = a.store.sync(a.dir, delete=True)
    assert report.deleted_remote == [str(a.dir / "a.txt")]
    assert "project/a.txt" not in keys(raw, bucket)
    assert b.store.pull(b.dir).deleted_local == []  # pull without delete leaves it
    assert (b.dir / "a.txt").exists()
    assert b.store.sync(b.dir, delete=True).deleted_local == [str(b.dir / "a.txt")]
    assert b.tree() == a.tree() == ["c.txt", "sub/b.txt"]


def test_a_file_never_synced_is_never_deleted(machines, raw, bucket):
    a, b = machines
    a.write("mine.txt", "only here")
    raw.put_object(Bucket=bucket, Key="project/theirs.txt", Body=b"only in S3")
    report = a.store.push(a.dir, delete=True)
    assert report.deleted_remote == [] and "project/theirs.txt" in keys(raw, bucket)
    report = b.store.pull(b.dir, delete=True)
    assert report.deleted_local == [] and sorted(b.tree()) == ["mine.txt", "theirs.txt"]


def test_conflict_on_each_side_overwrites_nothing(machines, raw, bucket):
    a, b = machines
    a.write("shared.txt", "v1")
    a.store.sync(a.dir)
    b.store.sync(b.dir)
    a.write("shared.txt", "from laptop")
    b.write("shared.txt", "from server, longer")
    assert a.store.sync(a.dir).uploaded == [str(a.dir / "shared.txt")]

    pushed = b.store.push(b.dir)  # the server's push must not replace the laptop's version
    assert pushed.conflicts == [str(b.dir / "shared.txt")] and not pushed.ok
    assert body(raw, bucket, "project/shared.txt") == b"from laptop"
    assert not (b.dir / "shared.txt.s3bp-remote").exists()

    synced = b.store.sync(b.dir)  # nor may its sync replace its own local edit
    assert synced.conflicts == [str(b.dir / "shared.txt")]
    assert b.read("shared.txt") == "from server, longer"
    assert b.read("shared.txt.s3bp-remote") == "from laptop"
    assert body(raw, bucket, "project/shared.txt") == b"from laptop"
    assert [f.state for f in b.store.ls(b.dir)] == [State.CONFLICT]

    # resolving by taking the S3 version: equal bytes on both sides settle it
    os.replace(b.dir / "shared.txt.s3bp-remote", b.dir / "shared.txt")
    resolved = b.store.sync(b.dir)
    assert resolved.ok and resolved.uploaded == resolved.downloaded == []
    assert [f.state for f in b.store.ls(b.dir)] == [State.SAME]


def test_pull_never_writes_outside_the_base_dir(machines, raw, bucket, tmp_path):
    _, b = machines
    hostile = ["project/../escape.txt", "project/sub/../../escape2.txt", "project/a//b.txt", "project/a\\b.txt", "project/./dot.txt"]
    for key in hostile:
        raw.put_object(Bucket=bucket, Key=key, Body=b"gotcha")
    raw.put_object(Bucket=bucket, Key="project/fine.txt", Body=b"ok")
    assert sorted(keys(raw, bucket)) == sorted([*hostile, "project/fine.txt"])  # the server kept them as given
    report = b.store.pull(b.dir)
    assert report.downloaded == [str(b.dir / "fine.txt")]
    refused = [where for where, reason in report.skipped if "unsafe key" in reason]
    assert sorted(refused) == sorted(f"s3://{bucket}/{k}" for k in hostile)
    assert b.tree() == ["fine.txt"]
    planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"gotcha"]
    assert planted == []


def test_symlinks_are_not_followed_out_of_the_base_dir(machines, raw, bucket, tmp_path):
    a, b = machines
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("private")
    a.write("real.txt", "r")
    os.symlink(outside / "secret.txt", a.dir / "leak.txt")
    os.symlink(outside, a.dir / "linkdir")
    os.symlink(a.dir / "real.txt", a.dir / "alias.txt")  # points inside: followed
    report = a.store.push(a.dir)
    assert keys(raw, bucket) == ["project/alias.txt", "project/real.txt"]
    assert {os.path.basename(p) for p, _ in report.skipped} >= {"leak.txt", "linkdir"}

    raw.put_object(Bucket=bucket, Key="project/linkdir/planted.txt", Body=b"x")
    os.symlink(outside, b.dir / "linkdir")
    report = b.store.pull(b.dir)
    assert not (outside / "planted.txt").exists()
    assert any("symlink" in reason for _, reason in report.skipped)


def test_pull_into_a_folder_that_does_not_exist_yet(machines, tmp_path):
    a, _ = machines
    a.write("x/y.txt", "y")
    a.store.push(a.dir)
    fresh = tmp_path / "new-machine" / "not-yet" / "project"
    a.store.map_base_directory_to_bucket(fresh, a.store.resolve(a.dir / "x/y.txt").bucket)
    assert a.store.pull(fresh).downloaded == [str(fresh / "x" / "y.txt")]
    assert (fresh / "x" / "y.txt").read_text() == "y"


def test_dry_run_changes_nothing(machines, raw, bucket):
    a, b = machines
    a.write("a.txt", "a")
    report = a.store.push(a.dir, dry_run=True)
    assert report.uploaded == [str(a.dir / "a.txt")] and keys(raw, bucket) == []
    assert "would upload 1" in report.summary()
    a.store.push(a.dir)
    assert b.store.pull(b.dir, dry_run=True).downloaded == [str(b.dir / "a.txt")] and b.tree() == []


def test_ls_shows_each_state(machines, raw, bucket):
    a, b = machines
    for name in ("same", "changed", "gone-local", "changed-remote"):
        a.write(f"{name}.txt", name)
    a.store.sync(a.dir)
    a.write("changed.txt", "changed locally")
    a.write("new.txt", "new")
    (a.dir / "gone-local.txt").unlink()
    raw.put_object(Bucket=bucket, Key="project/changed-remote.txt", Body=b"changed in S3")
    raw.put_object(Bucket=bucket, Key="project/remote-only.txt", Body=b"r")
    a.store.save_object([1], a.dir / "queued.pkl", wait=False)
    states = {os.path.basename(f.path): f.state for f in a.store.ls(a.dir)}
    assert states["same.txt"] is State.SAME
    assert states["changed.txt"] is State.LOCAL_NEWER
    assert states["new.txt"] is State.LOCAL_ONLY
    assert states["gone-local.txt"] is State.LOCAL_DELETED
    assert states["changed-remote.txt"] is State.REMOTE_NEWER
    assert states["remote-only.txt"] is State.REMOTE_ONLY
    assert states["queued.pkl"] in (State.PENDING, State.SAME)  # SAME once the background upload finished
    a.store.flush()


def test_progress_bar_when_forced_on(machines, capsys):
    a, _ = machines
    for i in range(3):
        a.write(f"f{i}.bin", "x" * 1000)
    a.store.push(a.dir, progress=True)
    err = capsys.readouterr().err
    assert "push" in err and "3/3 files" in err


def test_progress_is_off_when_not_on_a_terminal(machines, capsys):
    a, _ = machines
    a.write("f.bin", "x")
    a.store.push(a.dir)
    assert capsys.readouterr().err == ""


def test_a_directory_that_is_not_mapped_is_refused(tmp_path, machine):
    store = machine("solo").store
    with pytest.raises(InvalidPathError, match="s3bp map"):
        store.push(tmp_path / "elsewhere")


def test_a_local_edit_during_pull_is_kept(machines, raw, bucket):
    a, b = machines
    a.write("x.txt", "v1")
    a.store.push(a.dir)
    b.store.pull(b.dir)
    raw.put_object(Bucket=bucket, Key="project/x.txt", Body=b"v2 in S3")

    def edit_while_downloading(**kwargs):  # the user saves the file after pull surveyed it, before the bytes land
        b.write("x.txt", "edited meanwhile")

    b.store.client().meta.events.register("before-send.s3.GetObject", edit_while_downloading)
    report = b.store.pull(b.dir)
    assert report.conflicts == [str(b.dir / "x.txt")] and not report.downloaded
    assert b.read("x.txt") == "edited meanwhile"


def test_a_save_being_written_is_never_pushed_whatever_s3bpignore_includes(machines, raw, bucket):
    a, _ = machines
    (a.dir / ".s3bpignore").write_text("*.csv\n!data.csv\n")
    being_written = a.dir / ".s3bp-12345.abcdef123456-data.csv"  # a save's private directory, its serializer mid-write
    being_written.mkdir()
    (being_written / "data.csv").write_text("half-written")
    a.write("data.csv", "whole")
    report = a.store.push(a.dir)
    assert report.uploaded == [str(a.dir / "data.csv")]
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["project/data.csv"]


def test_a_push_of_an_unchanged_folder_sends_no_request(machines):
    a, _ = machines
    for i in range(3):
        a.write(f"d{i}/f.txt", f"file {i}")
    assert len(a.store.push(a.dir).uploaded) == 3
    a.store.flush()
    a.log.clear()
    again = a.store.push(a.dir)
    assert again.ok and again.uploaded == [] and again.unchanged == 3 and not again.listed
    assert a.log.operations == []
    assert "S3 not listed" in again.summary()


def test_a_push_without_a_listing_tells_unchanged_files_from_the_others(machines, raw, bucket):
    a, _ = machines
    for i in range(5):
        a.write(f"d/f{i}.txt", "same")
    a.write("d/notes.log", "left out later")
    a.write("top.txt", "top")
    a.store.push(a.dir)
    st = os.stat(a.dir / "d/f1.txt")
    os.utime(a.dir / "d/f1.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, one nanosecond later
    a.write("d/f3.txt", "SAME")  # same size and, to the second, maybe the same time: other bytes all the same
    st3 = os.stat(a.dir / "d/f3.txt")
    os.utime(a.dir / "d/f3.txt", ns=(st3.st_atime_ns, st3.st_mtime_ns + 2))
    (a.dir / ".s3bpignore").write_text("*.log\n")
    report = a.store.push(a.dir)
    assert not report.listed and report.ok
    assert sorted(report.uploaded) == [str(a.dir / "d/f1.txt"), str(a.dir / "d/f3.txt")]
    assert report.unchanged == 4  # f0, f2, f4 and top.txt; the ignored file is not counted as pushed
    assert str(a.dir / "d/notes.log") not in report.uploaded
    assert body(raw, bucket, "project/d/f3.txt") == b"SAME"
    again = a.store.push(a.dir)
    assert again.uploaded == [] and again.unchanged == 6 and not again.listed


def test_a_push_without_a_listing_uploads_a_changed_file_with_one_put(machines, raw, bucket):
    a, _ = machines
    a.write("a.txt", "one")
    a.write("b.txt", "two")
    a.store.push(a.dir)
    a.write("a.txt", "one, edited")
    a.store.push(a.dir)  # the first conditional upload to an endpoint also checks that it honours conditions
    a.log.clear()
    a.write("a.txt", "one, edited again")
    report = a.store.push(a.dir)
    assert report.uploaded == [str(a.dir / "a.txt")] and not report.listed
    assert a.log.operations == ["PutObject"]
    assert body(raw, bucket, "project/a.txt") == b"one, edited again"


def test_a_push_without_a_listing_still_refuses_to_replace_another_machines_version(machines, raw, bucket):
    a, b = machines
    a.write("shared.txt", "v1")
    a.store.push(a.dir)
    b.store.pull(b.dir)
    a.write("shared.txt", "from laptop")
    a.store.push(a.dir)
    b.write("shared.txt", "from server, longer")
    pushed = b.store.push(b.dir)
    assert not pushed.listed and pushed.conflicts == [str(b.dir / "shared.txt")] and pushed.uploaded == []
    assert body(raw, bucket, "project/shared.txt") == b"from laptop"
    assert b.store.pending_uploads() == []  # reported as a conflict, not left queued
    assert b.store.sync(b.dir).conflicts == [str(b.dir / "shared.txt")]


def test_a_push_lists_when_a_file_has_no_record_or_deletions_are_asked_for(machines, raw, bucket):
    a, b = machines
    a.write("old.txt", "newer in S3")
    a.store.push(a.dir)
    b.write("old.txt", "an older local copy")
    os.utime(b.dir / "old.txt", (1_000_000_000, 1_000_000_000))
    report = b.store.push(b.dir)  # no record on b: S3 is listed and its newer version is left alone
    assert report.listed and report.uploaded == [] and report.skipped == [(str(b.dir / "old.txt"), "S3 has a newer version; pull it")]
    raw.put_object(Bucket=bucket, Key="project/only-in-s3.txt", Body=b"x")
    (a.dir / "old.txt").unlink()
    a.log.clear()
    deleted = a.store.push(a.dir, delete=True)
    assert deleted.listed and deleted.deleted_remote == [str(a.dir / "old.txt")]
    assert a.log.operations == ["ListObjectsV2", "DeleteObject"]


def test_a_push_with_the_overwrite_rule_lists_first(machine, bucket):
    a = machine("laptop", folder="project", bucket=bucket, conflict="overwrite")
    a.write("a.txt", "one")
    a.store.push(a.dir)
    a.log.clear()
    assert a.store.push(a.dir).listed and a.log.operations == ["ListObjectsV2"]


def test_every_pushed_key_is_the_one_save_would_use(machines, raw, bucket, make_bucket):
    a, _ = machines
    other = make_bucket()
    a.store.map_base_directory_to_bucket(a.dir / "inner", other)  # a deeper mapping, to another bucket
    deep = "sub/" + "/".join(["n" * 190] * 4)  # keys of files here are about 780 bytes before the name
    for rel in ("x.txt", "sub/y.txt", "sub/z.txt", "inner/w.txt", "inner/deep/v.txt", f"{deep}/ok.txt", f"{deep}/{'m' * 250}"):
        os.makedirs(os.path.dirname(a.dir / rel), exist_ok=True)
        (a.dir / rel).write_text("data")
    bad = os.path.join(a.dir, "sub", os.fsdecode(b"caf\xe9.txt"))  # not UTF-8: S3 cannot store its name
    with open(bad, "w") as fh:
        fh.write("data")
    report = a.store.push(a.dir)
    expected = {}
    for path in report.uploaded:
        res = a.store.resolve(path)
        expected.setdefault(res.bucket, []).append(res.key)
    assert sorted(expected[bucket]) == keys(raw, bucket) == [f"project/{deep}/ok.txt", "project/sub/y.txt", "project/sub/z.txt", "project/x.txt"]
    assert sorted(expected[other]) == keys(raw, other) == ["inner/deep/v.txt", "inner/w.txt"]
    skipped = dict(report.skipped)
    assert "UTF-8" in skipped[bad] and "over S3's limit" in skipped[str(a.dir / deep / ("m" * 250))]
