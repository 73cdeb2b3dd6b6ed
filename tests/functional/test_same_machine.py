"""Saves of one machine, whatever the processes, threads and clocks: the last save wins, in S3 and on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import s3bp

from ..support import unpickled


def start_python(code: str) -> subprocess.Popen:
    """A second process of this machine: same environment, so the same config and state directory."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def fresh_store() -> None:
    """The next call starts a new default store: as a new process of this machine would."""
    old = s3bp.set_default_store(None)
    if old is not None:
        old.close()


@pytest.mark.parametrize("wait", [False, True], ids=["background", "wait"])
@pytest.mark.parametrize("rule", ["raise", "overwrite"])
def test_a_slow_older_upload_of_another_process_never_lands_last(tmp_path, bucket, raw, proxy, wait, rule):
    path = tmp_path / "obj.pkl"
    proxy.script("delay:2")  # the first connection, process A's PUT, is held two seconds
    a = start_python(
        f"""
        import s3bp
        s3bp.save_object("A: older", {str(path)!r}, {bucket!r}, conflict={rule!r})
        print("saved", flush=True)
        s3bp.flush()
        """
    )
    _b_saves_while_a_uploads(a, path, bucket, raw, proxy, wait, rule)


@pytest.mark.parametrize("wait", [False, True], ids=["background", "wait"])
def test_a_save_during_a_push_of_its_folder_wins(tmp_path, bucket, raw, proxy, wait):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "obj.pkl"
    path.write_bytes(__import__("pickle").dumps("A: older"))
    s3bp.map_base_directory_to_bucket(folder, bucket)
    proxy.script("delay:2")  # process A's PUT of the pushed file is held two seconds
    a = start_python(
        f"""
        import s3bp
        report = s3bp.push({str(folder)!r}, wait=False)
        print("saved" if report.uploaded else report.summary(), flush=True)
        s3bp.flush()
        """
    )
    _b_saves_while_a_uploads(a, path, bucket, raw, proxy, wait, "raise", key="data/obj.pkl")


def _b_saves_while_a_uploads(a, path, bucket, raw, proxy, wait, rule, key="obj.pkl") -> None:
    """This process (B) saves ``path`` while A's older upload of it is held by the proxy; B's must win everywhere."""
    assert a.stdout.readline().strip() == "saved"
    wait_for(lambda: proxy.connections >= 1)  # A's PUT is on its way, and held
    s3bp.save_object("B: newer", path, bucket, wait=wait, conflict=rule)
    s3bp.flush()
    out, err = a.communicate(timeout=60)
    assert a.returncode == 0, err
    assert unpickled(raw, bucket, key) == "B: newer"
    fresh_store()
    assert s3bp.load_object(path, bucket) == "B: newer"
    assert unpickled(raw, bucket, key) == "B: newer" and s3bp.pending_uploads() == []


def test_saves_from_two_threads_end_with_the_last_in_s3_and_on_disk(tmp_path, bucket, raw):
    path = tmp_path / "obj.pkl"
    stores = [s3bp.Store(), s3bp.Store()]  # two stores on one state directory, as two processes have
    done = []

    def saver(store: s3bp.Store, tag: str) -> None:
        for i in range(20):
            store.save_object(f"{tag}{i}", path, bucket)
        done.append(tag)

    threads = [threading.Thread(target=saver, args=(s, t)) for s, t in zip(stores, "ab")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.flush()
        s.close()
    on_disk = s3bp.load_object(path, bucket)
    assert unpickled(raw, bucket, "obj.pkl") == on_disk and on_disk in ("a19", "b19")


def test_a_clock_that_steps_back_never_drops_a_save(tmp_path, bucket, raw, monkeypatch):
    path = tmp_path / "obj.pkl"
    with monkeypatch.context() as m:
        ahead = time.time_ns() + 3600 * 10**9
        m.setattr(time, "time_ns", lambda: ahead)  # this process runs with the clock an hour ahead
        m.setattr(time, "time", lambda: ahead / 1e9)
        s3bp.save_object("v1, clock ahead", path, bucket, wait=True)
        fresh_store()
    s3bp.save_object("v2, clock corrected", path, bucket, wait=True)  # a later process, the clock stepped back
    assert unpickled(raw, bucket, "obj.pkl") == "v2, clock corrected"
    fresh_store()
    assert s3bp.load_object(path, bucket) == "v2, clock corrected"


def test_a_state_database_of_0_2_continues_above_its_wall_clock_sequence(tmp_path, bucket, raw):
    import sqlite3

    path = tmp_path / "obj.pkl"
    s3bp.save_object("v1", path, bucket, wait=True)
    state = os.environ["S3BP_STATE_DIR"] + "/state.sqlite3"
    fresh_store()
    with sqlite3.connect(state) as conn:  # as s3bp 0.2 left it: wall-clock ns in saved_ns, no counter yet
        conn.execute("UPDATE records SET saved_ns = ?", (time.time_ns(),))
        conn.execute("DELETE FROM counters")
    s3bp.save_object("v2", path, bucket, wait=True)
    assert unpickled(raw, bucket, "obj.pkl") == "v2"


def test_an_upload_that_landed_but_was_never_recorded_is_no_conflict(tmp_path, bucket, raw):
    path = tmp_path / "obj.pkl"
    s3bp.save_object("v1", path, bucket, wait=True)
    s3bp.save_object("v2", path, bucket, wait=True)  # a sync record: later saves carry IfMatch
    fresh_store()
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            f"""
            import os, signal, s3bp, s3bp.index
            # killed after S3 stored the PUT, before the journal row is marked done (or: the PUT's answer was lost)
            s3bp.index.StateDB.complete_upload = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
            s3bp.save_object("v3", {str(path)!r}, {bucket!r}, wait=True)
            """
        )],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -9 and unpickled(raw, bucket, "obj.pkl") == "v3"
    s3bp.flush()  # the next process: S3 already holds exactly this save's bytes
    assert s3bp.pending_uploads() == []
    s3bp.save_object("v4", path, bucket, wait=True)
    assert unpickled(raw, bucket, "obj.pkl") == "v4"


@pytest.mark.parametrize("where", ["s3bp.localfiles.Placement.commit", "s3bp.index.StateDB.add_entries"])
def test_a_save_killed_half_way_never_leaves_a_stale_load(tmp_path, bucket, raw, where):
    path = tmp_path / "obj.pkl"
    s3bp.save_object("v1", path, bucket, wait=True)
    fresh_store()
    module, cls, attr = where.rsplit(".", 2)
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            f"""
            import os, signal, s3bp, {module}
            setattr({module}.{cls}, {attr!r}, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
            s3bp.save_object("v2", {str(path)!r}, {bucket!r}, wait=True)
            """
        )],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -9
    s3bp.flush()
    on_disk = s3bp.load_object(path, bucket)
    in_s3 = unpickled(raw, bucket, "obj.pkl")
    # the save never returned: either version may stand, but a load never serves an older one than S3 holds
    assert on_disk == "v2" or in_s3 == on_disk == "v1"


def test_a_save_while_keep_remote_downloads_wins(tmp_path, bucket, raw, proxy):
    import pickle

    path = tmp_path / "obj.pkl"
    s3bp.save_object("mine v1", path, bucket, wait=True)
    raw.put_object(Bucket=bucket, Key="obj.pkl", Body=pickle.dumps("theirs"))
    with pytest.raises(s3bp.ConflictError):
        s3bp.save_object("mine v2", path, bucket, wait=True)
    proxy.script("delay:2")  # the resolve's download is held two seconds
    resolving = threading.Thread(target=s3bp.resolve_conflict, args=(path, "remote", bucket))
    resolving.start()
    wait_for(lambda: proxy.connections >= 1)
    s3bp.save_object("newest", path, bucket, conflict="overwrite")  # made while the resolve runs: it waits, then wins
    resolving.join(timeout=60)
    s3bp.flush()
    assert s3bp.load_object(path, bucket) == "newest" and unpickled(raw, bucket, "obj.pkl") == "newest"


def test_a_store_used_in_a_forked_child_starts_afresh(tmp_path, bucket, raw):
    store = s3bp.Store()
    store.save_object("parent", tmp_path / "p.pkl", bucket, wait=True)
    pid = os.fork()
    if pid == 0:  # the child: the parent's queue threads did not come along
        try:
            store.save_object("child", tmp_path / "c.pkl", bucket, wait=True)
            store.close()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    store.close()
    assert os.waitstatus_to_exitcode(status) == 0 and unpickled(raw, bucket, "c.pkl") == "child"


def test_saves_of_forked_workers_that_end_with_os_exit_are_uploaded_by_the_parent(tmp_path, bucket, raw):
    code = f"""
        import os, s3bp
        s3bp.save_object("parent", {str(tmp_path / 'parent.pkl')!r}, {bucket!r}, wait=True)
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                s3bp.save_object(i, os.path.join({str(tmp_path)!r}, f"child{{i}}.pkl"), {bucket!r})
                os._exit(0)  # as multiprocessing's workers end: no exit handlers
            os.waitpid(pid, 0)
        """
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert [unpickled(raw, bucket, f"child{i}.pkl") for i in range(3)] == [0, 1, 2]
