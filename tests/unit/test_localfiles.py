"""How bytes land on disk: temp names, exclusive creation, debris sweeping, snapshots and placement (no S3)."""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
import sys
import uuid

import pytest

from s3bp import localfiles
from s3bp.errors import ConflictError
from s3bp.localfiles import STALE_AFTER, Placement, make_snapshot, shorten, sweep, temp_is_stale, temp_name

HOST = localfiles._HOST
OTHER_HOST = "000000" if HOST != "000000" else "111111"
NOW = 1_800_000_000.0


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


# -- names -----------------------------------------------------------------------


def test_a_short_name_is_kept_whole_behind_pid_host_and_token():
    assert temp_name("data.csv", 123, "abcdef") == f".s3bp-123.{HOST}abcdef-data.csv"


@pytest.mark.parametrize(
    "name, suffix",
    [("n" * 248 + ".csv.gz", ".csv.gz"), ("é" * 125 + ".pkl", ".pkl"), ("a.b.c.d." + "x" * 250 + ".tar.gz", ".tar.gz"), ("z" * 255, "")],
)
def test_a_long_name_is_cut_in_the_middle_to_leave_room_for_s3transfers_suffix(name, suffix):
    tmp = temp_name(name, 4194304, "abcdef")
    assert len(os.fsencode(tmp)) <= 255 - 9
    assert tmp.endswith(suffix) and tmp.startswith(f".s3bp-4194304.{HOST}abcdef-{name[:3]}")
    tmp.encode("utf-8")  # cut on a whole character


def test_shorten_keeps_up_to_three_short_suffixes_and_never_more_than_half_the_room():
    assert shorten("a" * 50 + ".x.y.z.w", 20) == "a" * 14 + ".y.z.w"
    assert shorten("a" * 50 + "." + "s" * 60, 40) == "a" * 40
    assert shorten("short.txt", 40) == "short.txt"


# -- what is stale -----------------------------------------------------------------


def test_a_temp_file_of_a_process_that_is_gone_on_this_host_is_stale(dead_pid):
    name = f".s3bp-{dead_pid}.{HOST}abcdef-data.csv"
    assert temp_is_stale(name, NOW - 1, NOW)
    assert not temp_is_stale(f".s3bp-{os.getpid()}.{HOST}abcdef-data.csv", NOW - 1, NOW)  # ours, alive


def test_a_temp_file_of_a_live_process_is_never_stale_and_one_of_another_host_only_when_old():
    live = f".s3bp-7.{HOST}abcdef-x"
    assert not temp_is_stale(live, NOW - 60, NOW, alive=lambda pid: True)
    assert not temp_is_stale(live, NOW - STALE_AFTER - 1, NOW, alive=lambda pid: True)  # a clock ahead cannot make it stale
    foreign = f".s3bp-7.{OTHER_HOST}abcdef-x"
    assert not temp_is_stale(foreign, NOW - 60, NOW, alive=lambda pid: False)
    assert temp_is_stale(foreign, NOW - STALE_AFTER - 1, NOW, alive=lambda pid: False)


def test_an_old_style_temp_name_has_no_owner_and_goes_by_age():
    assert not temp_is_stale(".s3bp-0123abcd-data.csv", NOW - 60, NOW, alive=lambda pid: False)
    assert temp_is_stale(".s3bp-0123abcd-data.csv", NOW - STALE_AFTER - 1, NOW)


@pytest.mark.parametrize("name", [".s3bp-notes.txt", ".s3bpignore", "data.csv.s3bp-remote", ".s3bp-12.abc-x", "s3bp-1.abcdefabcdef-x"])
def test_names_that_are_not_s3bp_temp_files_are_never_stale(name):
    assert not temp_is_stale(name, 0.0, NOW, alive=lambda pid: False)


def test_sweep_removes_only_stale_temp_files_and_directories(tmp_path, dead_pid):
    gone = tmp_path / f".s3bp-{dead_pid}.{HOST}abcdef-a.csv"
    s3transfer_part = tmp_path / f".s3bp-{dead_pid}.{HOST}abcdef-big.bin.a1B2c3D4"
    live = tmp_path / f".s3bp-{os.getpid()}.{HOST}abcdef-b.csv"
    user = tmp_path / ".s3bp-notes.txt"
    for p in (gone, s3transfer_part, live, user):
        p.write_text("x")
    placement = tmp_path / f".s3bp-{dead_pid}.{HOST}fedcba-dir"  # a placement's private directory, with what was in it
    placement.mkdir()
    (placement / "dir").write_text("half written")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / f".s3bp-{dead_pid}.{HOST}aaaaaa-link").symlink_to(victim)
    assert sorted(sweep(str(tmp_path))) == sorted([str(gone), str(s3transfer_part), str(placement)])
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, user.name, "victim", f".s3bp-{dead_pid}.{HOST}aaaaaa-link"])
    assert victim.read_text() == "precious"


def test_a_placement_sweeps_its_directory_once_per_process(tmp_path, dead_pid, monkeypatch):
    monkeypatch.setattr(localfiles, "_swept", set())
    debris = tmp_path / f".s3bp-{dead_pid}.{HOST}abcdef-a.csv"
    debris.write_text("x")
    with Placement(str(tmp_path / "a.csv")):
        assert not debris.exists()
    debris.write_text("x")
    with Placement(str(tmp_path / "b.csv")):
        assert debris.exists()  # no second scan of the same directory


# -- exclusive creation --------------------------------------------------------------


def test_a_placement_never_writes_through_a_link_planted_at_its_temp_name(tmp_path, monkeypatch):
    tokens = itertools.cycle(["aaaaaa" + "0" * 26, "bbbbbb" + "0" * 26])
    monkeypatch.setattr(localfiles.uuid, "uuid4", lambda: type("U", (), {"hex": next(tokens)})())
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / temp_name("f.txt", os.getpid(), "aaaaaa")
    planted.symlink_to(victim)
    with Placement(str(tmp_path / "f.txt")) as place:
        assert os.path.basename(os.path.dirname(place.tmp)) == temp_name("f.txt", os.getpid(), "bbbbbb")
        with open(place.tmp, "w") as f:
            f.write("new")
        place.commit()
    assert victim.read_text() == "precious" and (tmp_path / "f.txt").read_text() == "new"


def test_the_temp_path_is_fresh_in_a_private_directory_and_shows_when_something_was_written(tmp_path):
    with Placement(str(tmp_path / "f.txt")) as place:
        assert not os.path.exists(place.tmp) and not place.written()
        assert stat.S_IMODE(os.stat(os.path.dirname(place.tmp)).st_mode) == 0o700
        open(place.tmp, "w").close()  # even an empty write counts
        assert place.written()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_placed_file_keeps_the_bits_of_the_file_it_replaces_or_gets_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        target = tmp_path / "f.txt"
        with Placement(str(target)) as place:
            with open(place.tmp, "w") as f:
                f.write("one")
            place.commit()
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o664
        os.chmod(target, 0o640)
        with Placement(str(target)) as place:
            with open(place.tmp, "w") as f:
                f.write("two")
            place.commit(mtime=1_000_000)
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o640 and target.read_text() == "two"
    finally:
        os.umask(old)


# -- a target that changed meanwhile -----------------------------------------------


def test_a_target_that_now_holds_the_same_bytes_is_no_conflict_and_is_left_as_it_is(tmp_path):
    target = tmp_path / "f.txt"
    with Placement(str(target), expect=None) as place:
        with open(place.tmp, "w") as f:
            f.write("same")
        target.write_text("same")  # e.g. another process placed this very version meanwhile
        os.utime(target, (5, 5))
        st = place.commit(mtime=9)
    assert st == localfiles.local_stat(str(target)) and st.mtime_ns == 5 * 10**9
    assert os.listdir(tmp_path) == ["f.txt"]


def test_a_target_that_now_holds_other_bytes_is_a_conflict_and_is_kept(tmp_path):
    target = tmp_path / "f.txt"
    with Placement(str(target), expect=None) as place:
        with open(place.tmp, "w") as f:
            f.write("ours")
        target.write_text("them")
        with pytest.raises(ConflictError):
            place.commit()
    assert target.read_text() == "them" and os.listdir(tmp_path) == ["f.txt"]


def test_a_users_symlink_is_followed_but_a_link_at_an_s3bp_sidecar_is_replaced(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    for target in (link, tmp_path / "x.txt.s3bp-remote"):
        if not target.exists():
            target.symlink_to(real)
        with Placement(str(target)) as place:
            with open(place.tmp, "w") as f:
                f.write(f"new {target.name}")
            place.commit()
    assert link.is_symlink() and real.read_text() == "new link.txt"
    sidecar = tmp_path / "x.txt.s3bp-remote"
    assert not sidecar.is_symlink() and sidecar.read_text() == "new x.txt.s3bp-remote"


# -- snapshots -----------------------------------------------------------------------


def test_a_snapshot_interrupted_half_way_is_removed_before_the_error_is_raised(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 100_000)
    dest = tmp_path / "snap"

    def half(fd_in, fd_out, count, *args):
        os.write(fd_out, b"x" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "copy_file_range", half, raising=False)
    with pytest.raises(KeyboardInterrupt):
        make_snapshot(str(src), dest)
    assert not dest.exists()


def test_a_snapshot_falls_back_to_a_plain_copy_from_the_start(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(300_000))
    dest = tmp_path / "snap"

    def partial_then_fail(fd_in, fd_out, count, *args):
        os.write(fd_out, os.read(fd_in, 1000))
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", partial_then_fail, raising=False)
    make_snapshot(str(src), dest)
    assert dest.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_a_snapshot_is_never_written_through_a_planted_link(tmp_path):
    src = tmp_path / "src"
    src.write_text("data")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "snap").symlink_to(victim)
    with pytest.raises(FileExistsError):
        make_snapshot(str(src), tmp_path / "snap")
    assert victim.read_text() == "precious"


def test_the_spool_sweep_keeps_journaled_and_young_snapshots_and_removes_old_orphans(tmp_path):
    from s3bp.index import JournalEntry, StateDB
    from s3bp.uploads import SPOOL_GRACE, sweep_spool

    spool = tmp_path / "spool"
    spool.mkdir()
    db = StateDB(tmp_path / "state.sqlite3")
    try:
        journaled, orphan, young = (uuid.uuid4().hex for _ in range(3))
        for name in (journaled, orphan, young, "not-a-snapshot"):
            (spool / name).write_bytes(b"x")
            os.utime(spool / name, (NOW - SPOOL_GRACE - 1, NOW - SPOOL_GRACE - 1))
        os.utime(spool / young, (NOW - 1, NOW - 1))
        fields = dict(owner="o", seq=0, path="/p", endpoint="e", profile=None, region=None, bucket="b", key="k")
        fields.update(size=1, mtime_ns=1, pid=1, created=NOW)
        db.add_entry(JournalEntry(id=journaled, spool=str(spool / journaled), **fields))
        assert sweep_spool(db, spool, now=NOW) == [str(spool / orphan)]
        assert sorted(os.listdir(spool)) == sorted([journaled, young, "not-a-snapshot"])
    finally:
        db.close()


def test_a_placement_beside_its_target_leaves_nothing_behind_and_never_writes_through_a_link(tmp_path):
    with Placement(str(tmp_path / "new" / "f.txt"), beside=True) as place:  # a missing parent is made
        assert os.path.dirname(place.tmp) == str(tmp_path / "new") and not os.path.exists(place.tmp)
        with open(place.tmp, "xb") as f:
            f.write(b"new")
        place.commit(mtime=1_000_000_000)
    assert os.listdir(tmp_path / "new") == ["f.txt"] and os.path.getmtime(tmp_path / "new" / "f.txt") == 1_000_000_000
    victim = tmp_path / "victim"
    victim.write_text("precious")
    with Placement(str(tmp_path / "g.txt"), beside=True) as place:
        os.symlink(victim, place.tmp)  # planted at the temp name
        with pytest.raises(FileExistsError):
            open(place.tmp, "xb")
    assert victim.read_text() == "precious" and sorted(os.listdir(tmp_path)) == ["new", "victim"]
    with Placement(str(tmp_path / "h.txt"), beside=True) as place:
        with open(place.tmp, "xb") as f:
            f.write(b"half")  # a download that then fails: never committed
    assert sorted(os.listdir(tmp_path)) == ["new", "victim"]
