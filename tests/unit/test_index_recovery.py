"""The state database when things go wrong: damaged, truncated, in use elsewhere, read-only; and the modes of lock files.

No S3 here: :class:`s3bp.index.StateDB` and :func:`s3bp.index.open_state` on temp dirs.
"""

from __future__ import annotations

import errno
import glob
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import uuid
import warnings

import pytest

from s3bp import index
from s3bp.errors import LocalFileError, StateError, StateWarning
from s3bp.freshness import SyncRecord
from s3bp.index import JournalEntry, StateDB, disk_error, open_state
from s3bp.locks import FileLock, StripedLocks

from ..support import damage_pages


def _record(path: str, saved_ns: int = 0) -> SyncRecord:
    return SyncRecord(path=path, endpoint="http://e", bucket="b", key=os.path.basename(path), etag='"e"', size=1, mtime_ns=1,
                      verified_at=1.0, saved_ns=saved_ns)  # fmt: skip


def _journal(db: StateDB, state, name: str, payload: bytes = b"snapshot") -> JournalEntry:
    """Journal a save of ``name`` with its snapshot in the spool, as the upload queue does."""
    entry_id = uuid.uuid4().hex
    spool = state / "spool"
    spool.mkdir(exist_ok=True)
    (spool / entry_id).write_bytes(payload)
    entry = JournalEntry(id=entry_id, owner="gone-owner", seq=0, path=f"/data/{name}", endpoint="http://e", profile=None, region=None,
                         bucket="b", key=name, spool=str(spool / entry_id), size=len(payload), mtime_ns=1, pid=1, created=1.0)  # fmt: skip
    return db.add_entry(entry)


def _asides(state) -> list[str]:
    """The damaged databases set aside in ``state`` (not their -wal and -shm files)."""
    return [p for p in glob.glob(str(state / "state.sqlite3.damaged-*")) if not p.endswith(("-wal", "-shm"))]


@pytest.fixture
def state(tmp_path):
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


def test_a_sound_database_opens_quietly(state, capsys):
    db = StateDB(state / "state.sqlite3")
    db.put_record(_record("/data/a"))
    db.close()
    db = StateDB(state / "state.sqlite3")
    assert db.record("/data/a") is not None and db.writable
    db.close()
    assert capsys.readouterr().err == ""
    assert not _asides(state) and not glob.glob(str(state / "recovered-*"))


def test_garbage_is_set_aside_and_an_empty_database_built(state, capsys):
    (state / "state.sqlite3").write_bytes(b"garbage" * 1000)
    db = StateDB(state / "state.sqlite3")
    try:
        assert db.writable and db.entries() == []
        _journal(db, state, "after.pkl")
    finally:
        db.close()
    [aside] = _asides(state)
    assert open(aside, "rb").read() == b"garbage" * 1000
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and aside in err and "file is not a database" in err, err


def test_readable_journal_rows_are_restored_and_the_sequence_continues(state, capsys):
    db = StateDB(state / "state.sqlite3")
    kept = [_journal(db, state, f"f{n}.pkl", b"x%d" % n) for n in range(3)]
    gone = _journal(db, state, "gone.pkl")
    os.unlink(gone.spool)  # a row whose snapshot is missing cannot be uploaded: dropped, and said
    db.put_records([_record(f"/data/r{n}", saved_ns=n) for n in range(500)])
    db.close()
    spool_before = sorted(os.listdir(state / "spool"))
    damage_pages(state / "state.sqlite3", "records")
    db = StateDB(state / "state.sqlite3")
    try:
        assert [e.id for e in db.entries()] == [e.id for e in kept]
        assert db.entries()[0] == kept[0]
        assert _journal(db, state, "next.pkl").seq > max(e.seq for e in kept + [gone])
    finally:
        db.close()
    err = capsys.readouterr().err
    assert "Kept 3 journaled upload(s)" in err and "1 journaled upload(s) had no snapshot" in err, err
    assert set(spool_before) <= set(os.listdir(state / "spool"))
    assert not glob.glob(str(state / "recovered-*"))


def test_unreadable_journal_rows_leave_their_snapshots_linked_where_the_message_says(state, capsys):
    db = StateDB(state / "state.sqlite3")
    entries = [_journal(db, state, f"f{n}.pkl", b"payload %d" % n) for n in range(2)]
    db.close()
    damage_pages(state / "state.sqlite3", "journal")
    db = StateDB(state / "state.sqlite3")
    db.close()
    err = capsys.readouterr().err
    [kept] = glob.glob(str(state / "recovered-*"))
    assert kept in err and "2 snapshot(s)" in err, err
    for e in entries:
        copy = os.path.join(kept, e.id)
        assert open(copy, "rb").read() == open(e.spool, "rb").read()  # the spool keeps its own name
        assert os.stat(copy).st_ino == os.stat(e.spool).st_ino  # a hard link: no second copy of the bytes
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    readme = open(os.path.join(kept, "README.txt")).read()
    assert all(e.id in readme for e in entries) and "upload_file" in readme
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o700


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_database_keeps_the_spool_s_snapshots(state, capsys, how):
    db = StateDB(state / "state.sqlite3")
    entry = _journal(db, state, "f.pkl")
    db.close()
    if how == "deleted":
        os.unlink(state / "state.sqlite3")
    else:
        os.truncate(state / "state.sqlite3", 0)
    StateDB(state / "state.sqlite3").close()
    err = capsys.readouterr().err
    [kept] = glob.glob(str(state / "recovered-*"))
    assert os.path.exists(os.path.join(kept, entry.id)) and kept in err, err
    assert ("was missing" if how == "deleted" else "was empty") in err
    StateDB(state / "state.sqlite3").close()  # said once: the database is sound again
    assert capsys.readouterr().err == ""
    assert len(glob.glob(str(state / "recovered-*"))) == 1


def test_a_first_use_says_nothing(state, capsys):
    StateDB(state / "state.sqlite3").close()
    assert capsys.readouterr().err == ""
    assert not glob.glob(str(state / "recovered-*"))


def test_a_damaged_database_another_process_has_open_is_left_alone(state, capsys):
    path = state / "state.sqlite3"
    db = StateDB(path)
    db.put_record(_record("/data/a"))
    db.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys, time
            conn = sqlite3.connect({str(path)!r}, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL"); conn.execute("SELECT count(*) FROM records").fetchall()
            print("open", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        damage_pages(path, "records")
        db = StateDB(path)
        try:
            assert not db.writable and "another program" in (db.problem or "")
            assert db.load_state("/data/a") == (None, False)  # loads go on without records
            with pytest.raises(StateError, match="another program"):
                _journal(db, state, "f.pkl")
        finally:
            db.close()
        assert not _asides(state)  # never renamed under an open connection
    finally:
        holder.communicate("")
    db = StateDB(path)  # nobody has it open now: rebuilt
    db.close()
    assert len(_asides(state)) == 1


def test_a_damaged_database_another_store_of_this_process_has_open_is_left_alone(state):
    path = state / "state.sqlite3"
    first = StateDB(path)
    first.put_record(_record("/data/a"))
    try:
        damage_pages(path, "records")
        second = StateDB(path)
        assert not second.writable and not _asides(state)
        second.close()
    finally:
        first.close()


def test_damage_met_in_use_is_a_state_error_and_the_next_open_checks_every_page(state, monkeypatch):
    path = state / "state.sqlite3"
    monkeypatch.setattr(index, "_FULL_CHECK_MAX", 0)  # as for a big database: opening checks the journal's pages only
    db = StateDB(path)
    db.put_records([_record(f"/data/r{n}") for n in range(200)])
    db.close()
    damage_pages(path, "records")
    db = StateDB(path)  # the journal is sound: opens
    with pytest.raises(StateError, match="damaged") as caught:
        db.record("/data/r1")
    assert not isinstance(caught.value.__cause__, StateError)
    db.close()
    marker = str(path) + ".needs-check"
    assert os.path.exists(marker) and stat.S_IMODE(os.stat(marker).st_mode) == 0o600
    db = StateDB(path)  # the marker asks for every page: damaged, rebuilt
    assert db.record("/data/r1") is None and db.writable
    db.close()
    assert not os.path.exists(marker) and len(_asides(state)) == 1


def test_a_state_dir_that_cannot_be_created_is_used_read_only(tmp_path):
    (tmp_path / "file").write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = open_state(tmp_path / "file" / "state")
    try:
        [said] = [w for w in caught if w.category is StateWarning]
        assert "cannot be created" in str(said.message) and "S3BP_STATE_DIR" in str(said.message)
        assert not db.writable and db.load_state("/data/a") == (None, False) and db.entries() == []
        db.put_record(_record("/data/a"), best_effort=True)  # skipped: said at open
        db.touch("/data/a", 1.0, best_effort=True)
        with pytest.raises(StateError, match="S3BP_STATE_DIR"):
            db.put_record(_record("/data/a"))
    finally:
        db.close()


def test_a_record_that_cannot_be_written_is_said_once_not_raised(state, monkeypatch):
    db = StateDB(state / "state.sqlite3")

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(db, "_write", full)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            db.touch("/data/a", 1.0, best_effort=True)
            db.touch("/data/a", 2.0, best_effort=True)
        assert len([w for w in caught if w.category is StateWarning]) == 1
        with pytest.raises(StateError, match="free some space") as raised:
            db.touch("/data/a", 3.0)
        assert raised.value.errno == errno.ENOSPC and isinstance(raised.value, OSError)
    finally:
        db.close()


def test_disk_errors_name_the_right_disk():
    spool = OSError(errno.ENOSPC, "No space left on device", "/st/spool/abc")
    err = disk_error(spool, state_dir="/st", target="/data/f.pkl", doing="save", default="local")
    assert isinstance(err, StateError) and "/st" in str(err) and "S3BP_STATE_DIR" in str(err) and err.errno == errno.ENOSPC
    local = OSError(errno.EROFS, "Read-only file system", "/data/.s3bp-1-f.pkl")
    err = disk_error(local, state_dir="/st", target="/data/f.pkl", doing="save", default="state")
    assert isinstance(err, LocalFileError) and "/data/f.pkl" in str(err) and "read-only" in str(err) and err.errno == errno.EROFS
    nameless = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(disk_error(nameless, state_dir="/st", target="/data/f.pkl", doing="save", default="state"), StateError)
    assert isinstance(disk_error(nameless, state_dir="/st", target="/data/f.pkl", doing="save", default="local"), LocalFileError)
    already = StateError("said")
    assert disk_error(already, state_dir="/st", target=None, doing="", default="state") is already


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_lock_files_and_their_directory_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        loose = tmp_path / "locks"
        loose.mkdir(mode=0o755)
        os.chmod(loose, 0o755)
        left = loose / "path-000.lock"
        left.touch()
        os.chmod(left, 0o644)
        StripedLocks(loose, "path")
        assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
        with FileLock(left):
            assert stat.S_IMODE(os.stat(left).st_mode) == 0o600
        with FileLock(tmp_path / "new.lock"):
            assert stat.S_IMODE(os.stat(tmp_path / "new.lock").st_mode) == 0o600
    finally:
        os.umask(old)


def test_the_open_lock_makes_a_second_opener_wait_for_a_rebuild(state):
    path = state / "state.sqlite3"
    StateDB(path).close()
    (state / "state.sqlite3").write_bytes(b"garbage" * 100)
    lock = FileLock(state / "locks" / "state-open.lock")
    lock.acquire()
    opened = subprocess.Popen([sys.executable, "-c", f"from s3bp.index import StateDB; StateDB({str(path)!r}).close()"],
                              cwd=os.path.dirname(os.path.dirname(index.__file__)), stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(0.3)
    assert opened.poll() is None and not _asides(state)  # waiting for the lock
    lock.release()
    assert opened.wait(30) == 0
    assert len(_asides(state)) == 1


def test_a_second_state_db_in_one_process_keeps_the_first_ones_locks(tmp_path):
    """Opening the database again in a process that has it open must not drop that process's SQLite locks.

    Closing any descriptor of the file drops every POSIX lock the process holds on it; another process
    closing its connection then takes itself for the last one and deletes the write-ahead log under the first.
    """
    path = tmp_path / "state.sqlite3"
    first = StateDB(path)
    try:
        record = SyncRecord(
            path=str(tmp_path / "f"), endpoint="http://127.0.0.1:1", bucket="b", key="k", etag='"e"', size=1, mtime_ns=1, verified_at=1.0
        )
        first.put_record(record)
        assert os.path.exists(f"{path}-wal")
        second = StateDB(path)  # e.g. a second Store in the same process
        second.close()
        other = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('SELECT count(*) FROM records').fetchall(); c.close()"
        subprocess.run([sys.executable, "-c", other], check=True)
        assert os.path.exists(f"{path}-wal"), "another process's close deleted the write-ahead log of a database still open here"
        assert first.record(str(tmp_path / "f")) is not None
    finally:
        first.close()
