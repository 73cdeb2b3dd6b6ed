"""Versions: pinned loads (by id, time and name), versions(), restore, names, prune, pull(as_of=), the CLI.

Two simulated machines share a versioned bucket on moto's server. Where a test
needs saves in different seconds (S3 keeps LastModified in whole seconds), it
waits a little over a second between them; nothing is timed.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import pickle
import time

import pytest

from s3bp import ConflictError, ObjectNotFoundError, VersioningError
from s3bp.cli import main
from s3bp.tree import State

from ..support import body


def _apart() -> None:
    """Let S3's whole-second clock move on, so the next save has a later LastModified."""
    time.sleep(1.1)


def save_three(m, path, apart=False):
    """Save v1, v2, v3 of ``path`` from machine ``m``; return their version ids, oldest first."""
    for n in (1, 2, 3):
        if apart and n > 1:
            _apart()
        m.store.save_object(f"v{n}", path, wait=True)
    return [v.version_id for v in reversed(m.store.versions(path))]


def test_versions_are_recorded_and_listed_newest_first(two, versioned):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    assert len(set(ids)) == 3
    listed = a.store.versions(pa)
    assert [v.version_id for v in listed] == ids[::-1]
    assert [v.is_latest for v in listed] == [True, False, False]
    assert all(not v.is_delete_marker and v.size > 0 and v.etag for v in listed)
    assert a.store._index().record(str(pa)).version_id == ids[2]  # the upload's VersionId is in the sync record
    assert b.store.load_object(pb) == "v3"
    assert b.store._index().record(str(pb)).version_id == ids[2]  # and so is the download's
    a.log.clear()
    a.store.versions(pa)
    assert a.log.operations == ["ListObjectVersions", "GetObject"]  # the listing, and the names


def test_pinned_loads_never_touch_the_file_and_a_second_one_costs_nothing(two, versioned):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    assert b.store.load_object(pb) == "v3"
    record = b.store._index().record(str(pb))
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    cold = list(b.log.operations)
    assert cold == ["GetObject", "GetObject"]  # the names (none here), then the version
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    assert b.store.load_object(pb, version=ids[1]) == "v2"
    assert b.log.operations == ["GetObject", "GetObject"]  # v1 again: no request at all; v2: names + the version
    assert pickle.loads(pb.read_bytes()) == "v3"  # b's own file still holds what b last loaded normally
    assert b.store._index().record(str(pb)) == record
    b.log.clear()
    assert b.store.load_object(pb) == "v3"
    assert b.log.operations == ["GetObject"]  # its next normal load: one conditional GET (304)
    copy = b.store.download_file(pb, version=ids[0])
    assert copy != str(pb) and str(b.root / "cache") in copy and pickle.loads(open(copy, "rb").read()) == "v1"
    assert not os.access(copy, os.W_OK) or os.geteuid() == 0  # a version's copy is read-only
    assert copy in b.store._index().uses_under(str(b.root / "cache"), os.sep)  # its use is noted for the cache's LRU
    assert b.store.load_object(f"s3://{versioned}/data.pkl", version=ids[1]) == "v2"  # a URL takes a version too
    assert [v.version_id for v in b.store.versions(f"s3://{versioned}/data.pkl")] == ids[::-1]


def test_pinned_load_by_time_between_saves(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    save_three(a, pa, apart=True)
    old_first = list(reversed(a.store.versions(pa)))
    between = [v.last_modified + dt.timedelta(milliseconds=500) for v in old_first]
    assert [b.store.load_object(pb, version=t) for t in between] == ["v1", "v2", "v3"]
    with pytest.raises(ObjectNotFoundError, match="did not exist at"):
        b.store.load_object(pb, version=old_first[0].last_modified - dt.timedelta(seconds=5))
    b.log.clear()
    assert b.store.load_object(pb, version=between[0]) == "v1"  # a time well past when listed: remembered, and cached
    assert b.log.operations == []
    assert not pb.exists()  # b never loaded it normally: no file was made at its path


def test_names_tag_load_move_untag(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    assert a.store.tag(pa, "prod", ids[1]) == ids[1]
    assert a.store.tag(pa, "latest-run") == ids[2]
    b.log.clear()
    assert b.store.load_object(pb, version="prod") == "v2"
    assert b.log.operations == ["GetObject", "GetObject"]  # the names, then the version
    b.log.clear()
    assert b.store.load_object(pb, version="prod") == "v2"
    assert b.log.operations == ["GetObject"]  # a lookup by name: one request
    assert {v.version_id: v.names for v in b.store.versions(pb)} == {ids[2]: ("latest-run",), ids[1]: ("prod",), ids[0]: ()}
    a.store.tag(pa, "prod", ids[0])  # a name moves
    assert b.store.load_object(pb, version="prod") == "v1"
    a.store.untag(pa, "prod")
    with pytest.raises(ObjectNotFoundError):
        b.store.load_object(pb, version="prod")
    with pytest.raises(ValueError, match="names no version"):
        a.store.untag(pa, "prod")
    with pytest.raises(ValueError, match="cannot name a version"):
        a.store.tag(pa, "has space")


def test_dataframe_versions(two, versioned):
    pd = pytest.importorskip("pandas")
    a, b = two
    pa, pb = a.root / "t.csv", b.root / "t.csv"
    frames = [pd.DataFrame({"x": [i, i + 1]}) for i in (1, 2, 3)]
    for df in frames:
        a.store.save_dataframe(df, pa, wait=True)
    ids = [v.version_id for v in reversed(a.store.versions(pa))]
    a.store.tag(pa, "first", ids[0])
    pd.testing.assert_frame_equal(b.store.load_dataframe(pb), frames[2])
    pd.testing.assert_frame_equal(b.store.load_dataframe(pb, version=ids[1]), frames[1])
    pd.testing.assert_frame_equal(b.store.load_dataframe(pb, version="first"), frames[0])
    pd.testing.assert_frame_equal(pd.read_csv(pb, index_col=0), frames[2])


def test_restore_then_the_other_machine_loads_it(two, raw, versioned):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    assert b.store.load_object(pb) == "v3"
    a.log.clear()
    assert a.store.restore(pa, ids[0]) == str(pa)
    assert a.log.operations == ["GetObject", "HeadObject", "CopyObject", "GetObject"]  # names, latest, copy, the new latest
    assert pickle.loads(pa.read_bytes()) == "v1"
    assert pickle.loads(body(raw, versioned, "data.pkl")) == "v1"
    assert len(a.store.versions(pa)) == 4  # every version stays; the restored one is a new latest
    assert b.store.load_object(pb) == "v1"
    a.store.save_object("v5", pa, wait=True)  # a's record follows the restore: its next save is no conflict
    assert b.store.load_object(pb) == "v5"


def test_restore_racing_another_save_is_a_conflict(two, raw, versioned):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    assert b.store.load_object(pb) == "v3"
    a.store.save_object("a's newer save", pa, wait=True)  # b has not seen it
    with pytest.raises(ConflictError, match="changed in S3 by another writer") as info:
        b.store.restore(pb, ids[0])
    assert str(pb) in str(info.value) and "conflict='overwrite'" in str(info.value)
    assert pickle.loads(body(raw, versioned, "data.pkl")) == "a's newer save"
    b.store.save_object("b's edit", pb)  # a local change not in S3 yet
    with pytest.raises(ConflictError, match="not in S3"):
        b.store.restore(pb, ids[0])
    b.store.restore(pb, ids[0], conflict="overwrite")
    assert pickle.loads(body(raw, versioned, "data.pkl")) == "v1" and pickle.loads(pb.read_bytes()) == "v1"
    assert pickle.loads(pb.with_name("data.pkl.s3bp-local").read_bytes()) == "b's edit"  # the edit is set aside, not lost


def test_prune_keeps_the_latest_and_named_versions(two):
    a, _ = two
    pa = a.root / "data.pkl"
    for n in range(1, 6):
        a.store.save_object(f"v{n}", pa, wait=True)
    ids = [v.version_id for v in reversed(a.store.versions(pa))]  # v1 .. v5
    a.store.tag(pa, "keep-me", ids[1])
    would = a.store.prune(pa, keep=2)
    assert [v.version_id for v in would] == [ids[2], ids[0]]
    assert len(a.store.versions(pa)) == 5  # a dry run by default
    gone = a.store.prune(pa, keep=2, dry_run=False)
    assert [v.version_id for v in gone] == [ids[2], ids[0]]
    assert [v.version_id for v in a.store.versions(pa)] == [ids[4], ids[3], ids[1]]
    assert a.store.prune(pa, keep=1, dry_run=False)[0].version_id == ids[3]  # the named one and the latest stay
    assert [v.version_id for v in a.store.versions(pa)] == [ids[4], ids[1]]
    assert a.store.prune(pa, older_than=dt.timedelta(days=1)) == []  # nothing was replaced that long ago
    with pytest.raises(ValueError, match="keep=N"):
        a.store.prune(pa)


def test_unversioned_bucket_says_how_to_turn_versioning_on(machine, bucket, capsys):
    m = machine("solo", default_bucket=bucket)
    path = m.root / "data.pkl"
    m.store.save_object("v1", path, wait=True)
    assert m.store._index().record(str(path)).version_id is None
    for call in (
        lambda: m.store.load_object(path, version="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"),
        lambda: m.store.versions(path),
        lambda: m.store.restore(path, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"),
        lambda: m.store.tag(path, "prod"),
        lambda: m.store.load_object(path, version=dt.datetime.now()),
    ):
        with pytest.raises(VersioningError) as info:
            call()
        assert repr(bucket) in str(info.value) and f"s3bp versioning {bucket} --enable" in str(info.value)
    assert m.store.load_object(path) == "v1"
    m.store.bucket_versioning(bucket, True)
    m.store.save_object("v2", path, wait=True)
    assert [v.version_id != "null" for v in m.store.versions(path)] == [True, False]


def test_pull_as_of_reproduces_a_past_tree(machine, versioned):
    a = machine("a", folder="proj", bucket=versioned)
    b = machine("b", folder="proj", bucket=versioned)
    a.write("keep.txt", "same")
    a.write("changed.txt", "old")
    a.write("deleted.txt", "was here")
    assert a.store.push(a.dir).ok
    _apart()
    then = dt.datetime.now()
    _apart()
    a.write("changed.txt", "new")
    a.write("added.txt", "later")
    os.unlink(a.dir / "deleted.txt")
    assert a.store.push(a.dir, delete=True).ok

    b.log.clear()
    report = b.store.pull(b.dir, as_of=then)
    assert report.ok and b.tree() == ["changed.txt", "deleted.txt", "keep.txt"]
    assert [b.read(n) for n in b.tree()] == ["old", "was here", "same"]
    assert b.log.operations.count("ListObjectVersions") == 1 and "ListObjectsV2" not in b.log.operations

    states = {os.path.basename(f.path): f.state for f in b.store.ls(b.dir)}
    assert states == {"added.txt": State.REMOTE_ONLY, "changed.txt": State.REMOTE_NEWER, "deleted.txt": State.OLD_VERSION, "keep.txt": State.SAME}
    pushed = b.store.push(b.dir)
    assert pushed.uploaded == []  # the old bytes are never sent as new
    assert b.store.pull(b.dir).ok
    assert [b.read(n) for n in b.tree()] == ["later", "new", "was here", "same"]  # the latest again; deleted.txt is left
    assert b.store.push(b.dir).uploaded == []
    b.store.pull(b.dir, delete=True)
    assert b.tree() == ["added.txt", "changed.txt", "keep.txt"]

    b.write("changed.txt", "b's own edit")  # local changes are never overwritten by an as-of pull
    report = b.store.pull(b.dir, as_of=then)
    assert [os.path.basename(p) for p in report.conflicts] == ["changed.txt"] and b.read("changed.txt") == "b's own edit"


def test_as_of_file_edited_then_saved_is_a_conflict_not_a_silent_overwrite(machine, versioned):
    a = machine("a", folder="proj", bucket=versioned)
    b = machine("b", folder="proj", bucket=versioned)
    a.write("f.txt", "old")
    a.store.push(a.dir)
    _apart()
    then = dt.datetime.now()
    _apart()
    a.write("f.txt", "new")
    a.store.push(a.dir)
    b.store.pull(b.dir, as_of=then)
    assert b.read("f.txt") == "old"
    b.write("f.txt", "edited old")
    report = b.store.push(b.dir)
    assert report.uploaded == [] and [os.path.basename(p) for p in report.conflicts] == ["f.txt"]


def test_reserved_prefix_never_shows_in_folders(machine, versioned, raw):
    m = machine("m", folder=".s3bp", bucket=versioned, default_bucket=versioned)  # a folder whose keys share the prefix
    path = m.root / "thing.pkl"
    m.store.save_object("x", path, wait=True)
    m.store.tag(path, "prod")
    assert "names/thing.pkl.json" in [o["Key"][len(".s3bp/") :] for o in raw.list_objects_v2(Bucket=versioned)["Contents"]]
    assert m.store.ls(m.dir) == []
    assert m.store.pull(m.dir).downloaded == [] and not m.dir.joinpath("names").exists()


def test_journal_keeps_the_version_a_save_replaces(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    b.store.load_object(pb)
    a.store.save_object("v4", pa, wait=True)
    b.store.save_object("b's v4", pb)  # in conflict: it stays journaled
    with pytest.raises(Exception, match="was changed in S3"):
        b.store.flush()
    assert [e.base_version for e in b.store._index().entries_of(str(pb))] == [ids[2]]


def test_cli_versioning_versions_tag_cat_prune_restore(tmp_path, endpoint, bucket, capsysbinary):
    import s3bp

    def text() -> str:
        return capsysbinary.readouterr().out.decode()


    path = tmp_path / "model.pkl"
    assert main(["versioning", bucket]) == 0 and "never enabled" in text()
    assert main(["versioning", bucket, "--enable"]) == 0
    assert f"versioning is on for bucket {bucket}" in text()
    for n in (1, 2, 3):
        s3bp.save_object(f"m{n}", path, bucket, wait=True)
    ids = [v.version_id for v in reversed(s3bp.versions(path, bucket))]
    assert main(["versions", str(path), "--bucket", bucket]) == 0
    out = text().splitlines()
    assert [line.split()[0] for line in out] == ids[::-1] and "latest" in out[0]
    assert main(["tag", str(path), "prod", ids[0], "--bucket", bucket]) == 0
    assert text().strip() == f"prod -> {ids[0]}"
    assert main(["cat", str(path), "--version", "prod", "--bucket", bucket]) == 0
    assert pickle.load(io.BytesIO(capsysbinary.readouterr().out)) == "m1"
    assert main(["prune", str(path), "--keep", "1", "--dry-run", "--bucket", bucket]) == 0
    assert text().splitlines()[-1] == "would delete 1 version(s)"
    assert main(["prune", str(path), "--older-than", "30", "--bucket", bucket]) == 1  # a bare number: no unit, refused
    assert "give a unit" in capsysbinary.readouterr().err.decode()
    assert main(["prune", str(path), "--older-than", "1d", "--dry-run", "--bucket", bucket]) == 0
    assert text().splitlines()[-1] == "would delete 0 version(s)"
    assert main(["restore", str(path), "prod", "--bucket", bucket]) == 0
    assert "restored prod" in text()
    assert s3bp.load_object(path, bucket) == "m1"
    assert main(["untag", str(path), "prod", "--bucket", bucket]) == 0
    assert main(["versions", str(tmp_path / "none.pkl"), "--bucket", bucket]) == 0
