"""What a hostile user found in the child uploader, one-request transfers, the lazy CLI and the config memo (issue 18).

Every test talks to the moto server over HTTP; processes that must die are
real subprocesses. No timing is asserted: conditions are polled with a
generous bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import s3bp

from ..support import eventually, start_python, stored


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, timeout=120)






def uploader_log() -> str:
    try:
        with open(os.path.join(os.environ["S3BP_STATE_DIR"], "uploader.log")) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


# -- the state database shared by the saving process, its child and other processes ----------------------------------


def test_other_processes_opening_the_state_db_while_the_child_uploads_break_nothing(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.5")  # uploads stay in flight in the child while other processes come and go
    futs = [s3bp.save_object(i, tmp_path / f"s{i}.pkl", bucket) for i in range(6)]
    for _ in range(3):
        for command in (["status"], ["flush"]):
            res = cli(*command)
            assert "disk I/O" not in res.stderr, res.stderr
        state = os.environ["S3BP_STATE_DIR"]
        config = str(s3bp.get_default_store().config.path)
        res = subprocess.run(
            [sys.executable, "-m", "s3bp.uploader", "--config", config, "--state-dir", state, "--after-pid", "0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0 and "disk I/O" not in res.stderr, res.stderr
    futs += [s3bp.save_object(("again", i), tmp_path / f"s{i}.pkl", bucket) for i in range(6)]
    proxy.clear()
    for f in futs:
        f.result(timeout=120)
    s3bp.flush()
    assert [stored(raw, bucket, f"s{i}.pkl") for i in range(6)] == [("again", i) for i in range(6)]
    assert "disk I/O" not in uploader_log() and "Traceback" not in uploader_log()
    assert s3bp.pending_uploads() == []


def test_a_second_store_on_the_same_state_dir_does_not_lose_journaled_saves(tmp_path, bucket, raw, proxy):
    # Opening a second StateDB on the file opened and closed a descriptor of it: that drops every POSIX lock this process
    # holds on it, SQLite's included. The next process to close the database then believed it was the last one, and
    # checkpointed and deleted the WAL under this process's connection: what this process wrote next was lost.
    s3bp.configure(max_attempts=1, upload_process=False)
    s3bp.save_object(0, tmp_path / "a.pkl", bucket, wait=True)  # this process has the database open
    second = s3bp.Store(config=tmp_path / "other.yml")  # the same state directory (S3BP_STATE_DIR)
    try:
        assert second.pending_uploads() == []  # its own connection to the same file
        assert cli("status").returncode == 0  # another process opens and closes the database
        proxy.always(403)
        fut = s3bp.save_object(1, tmp_path / "a.pkl", bucket)  # fails: stays journaled
        assert fut.exception(timeout=120) is not None
        res = cli("status", "--json")  # a new process must see the journaled save
        assert res.returncode == 0 and "disk I/O" not in res.stderr, res.stderr
        assert [p["key"] for p in json.loads(res.stdout)] == ["a.pkl"]
    finally:
        second.close()
    proxy.clear()
    s3bp.flush()
    assert stored(raw, bucket, "a.pkl") == 1


def test_a_store_closed_with_uploads_in_flight_takes_no_new_claim(tmp_path, bucket, raw, proxy):
    # Store.close() let go of its queue and database before waiting for the uploads, which then opened both again
    # (a second connection, a new claim on the journal) in the middle of the close; in the child uploader, whose
    # store closes as soon as its parent is gone, that second open is what lost the database's locks.
    proxy.always("delay:1")
    state = tmp_path / "st"
    store = s3bp.Store(config=tmp_path / "c.yml", state_dir=state)
    store.configure(upload_process=False)
    futs = [store.save_object(i, tmp_path / f"z{i}.pkl", bucket) for i in range(3)]
    store.close()
    assert [f.result(timeout=1) for f in futs] == [f"z{i}.pkl" for i in range(3)]
    assert os.listdir(state / "owners") == []  # no claim was taken after the close
    assert [stored(raw, bucket, f"z{i}.pkl") for i in range(3)] == [0, 1, 2]


def test_processes_opening_the_database_while_an_orphaned_child_finishes_break_nothing(tmp_path, bucket, raw, proxy):
    # The parent is gone: its child closes its store with uploads queued while other processes (an exit hand-off
    # uploader, `s3bp status`) open and close the database. The child used to open the database a second time there,
    # losing its locks, so one of them deleted the WAL under it ("disk I/O error", its later commits lost).
    proxy.always("delay:1")
    proc = start_python(
        f"""
        import os, signal, s3bp
        for i in range(20):  # more than the child's eight threads: some start after its store began to close
            s3bp.save_object(i, {str(tmp_path)!r} + f"/h{{i}}.pkl", {bucket!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc.communicate(timeout=120)
    deadline = time.monotonic() + 120
    while [stored(raw, bucket, f"h{i}.pkl") for i in range(20)] != list(range(20)) and time.monotonic() < deadline:
        res = cli("status")
        assert "disk I/O" not in res.stderr, res.stderr
    assert [stored(raw, bucket, f"h{i}.pkl") for i in range(20)] == list(range(20))
    proxy.clear()
    eventually(lambda: s3bp.pending_uploads() == [], "the journal emptied")
    res = cli("status")
    assert res.returncode == 0 and "no pending uploads" in res.stdout, res.stdout + res.stderr
    assert "disk I/O" not in uploader_log() and "Traceback" not in uploader_log(), uploader_log()


# -- the child uploader under attack --------------------------------------------------------------------------------


def current_child():
    """The default store's child uploader link (None before the first background save)."""
    queue = s3bp.get_default_store()._queue
    return None if queue is None else queue._child


def journaled(entry_id: str) -> bool:
    return s3bp.get_default_store()._index().entry(entry_id) is not None


def test_a_save_superseded_in_a_child_that_dies_does_not_report_success_before_its_successor(tmp_path, bucket, raw, proxy):
    import threading

    s3bp.configure(max_attempts=1)
    gate = threading.Event()
    proxy.script(("hold", gate))  # the child's first request stays in flight
    path = tmp_path / "k.pkl"
    try:
        f1 = s3bp.save_object("v1", path, bucket)
        f2 = s3bp.save_object("v2", path, bucket)
        f3 = s3bp.save_object("v3", path, bucket)
        eventually(lambda: not journaled(f2.entry_id), "the child superseded v2 by v3")
        proxy.always(403)  # from now on every upload fails
        child = current_child()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        gate.set()
    assert f3.exception(timeout=120) is not None
    # v2 was never uploaded and v3 failed: v2's future must not say it was delivered
    assert f2.exception(timeout=120) is not None
    assert f1.exception(timeout=120) is not None
    proxy.clear()
    s3bp.flush()
    assert stored(raw, bucket, "k.pkl") == "v3"


def test_a_parent_killed_between_saves_of_a_burst_still_gets_the_last_save_of_every_key_delivered(tmp_path, bucket, raw):
    for n, keys in ((1, 1), (9, 3), (60, 4), (250, 5)):
        proc = start_python(
            f"""
            import os, signal, s3bp
            for i in range({n}):
                s3bp.save_object((i, os.urandom(2000)), {str(tmp_path)!r} + f"/b{n}k{{i % {keys}}}.pkl", {bucket!r})
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, err
        # the child finishes on its own; a fresh process's flush then finds nothing left, or finishes it
        eventually(lambda: not any(p.state.startswith("pending") for p in s3bp.pending_uploads()), "the child finished")
        res = cli("flush")
        assert res.returncode == 0, res.stderr
        for k in range(min(keys, n)):
            on_disk = (tmp_path / f"b{n}k{k}.pkl").read_bytes()
            assert raw.get_object(Bucket=bucket, Key=f"b{n}k{k}.pkl")["Body"].read() == on_disk, (n, k)
    assert s3bp.pending_uploads() == []


def test_children_killed_one_after_another_lose_nothing(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.3")
    futs = []
    killed = set()
    for round_ in range(5):  # more rounds than children a queue starts: the last rounds upload in this process
        futs += [s3bp.save_object((round_, i), tmp_path / f"r{i}.pkl", bucket) for i in range(8)]
        child = current_child()
        if child is not None and child.alive and child.pid not in killed:
            eventually(lambda child=child: child.ready, "the child started serving")
            os.kill(child.pid, signal.SIGKILL)
            killed.add(child.pid)
    proxy.clear()
    for f in futs:
        assert f.result(timeout=120) == f.key
    s3bp.flush()
    assert [stored(raw, bucket, f"r{i}.pkl") for i in range(8)] == [(4, i) for i in range(8)]
    assert len(killed) >= 2 and s3bp.pending_uploads() == []


def test_the_same_key_saved_a_hundred_times_in_a_tight_loop_ends_with_the_last(tmp_path, bucket, raw):
    path = tmp_path / "tight.pkl"
    futs = [s3bp.save_object(i, path, bucket) for i in range(100)]
    s3bp.flush()
    assert all(f.done() and f.exception() is None for f in futs)
    assert stored(raw, bucket, "tight.pkl") == 99
    assert s3bp.pending_uploads() == []


def test_a_child_that_cannot_start_leaves_saves_to_this_process(tmp_path, bucket, raw, monkeypatch):
    for exe in ("/nonexistent/python", "/bin/false"):
        old = s3bp.set_default_store(None)  # a new store: a new queue, which tries to start a child again
        if old is not None:
            old.close()
        monkeypatch.setattr(sys, "executable", exe)
        futs = [s3bp.save_object((exe, i), tmp_path / f"n{i}.pkl", bucket) for i in range(5)]
        for f in futs:
            assert f.result(timeout=120) == f.key
        s3bp.flush()
        assert [stored(raw, bucket, f"n{i}.pkl") for i in range(5)] == [(exe, i) for i in range(5)]
    assert s3bp.pending_uploads() == []


def test_multiprocessing_workers_forked_from_a_parent_with_a_child_uploader_still_upload(tmp_path, bucket, raw):
    proc = start_python(
        f"""
        import multiprocessing as mp, s3bp

        def work(i):
            s3bp.save_object(("worker", i), {str(tmp_path)!r} + f"/w{{i}}.pkl", {bucket!r})
            return i

        if __name__ == "__main__":
            s3bp.save_object("parent", {str(tmp_path)!r} + "/parent.pkl", {bucket!r})  # the parent's child uploader runs now
            with mp.get_context("fork").Pool(3) as pool:
                print(pool.map(work, range(9)), flush=True)
            s3bp.save_object("parent again", {str(tmp_path)!r} + "/parent.pkl", {bucket!r})
        """
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.strip() == str(list(range(9)))
    # the workers' entries, left when the pool ended them, are adopted and uploaded at the parent's exit: none is
    # reported failed (a child uploader's loss used to adopt them without queueing them)
    assert "failed" not in err, err
    eventually(lambda: stored(raw, bucket, "parent.pkl") == "parent again", "the parent's saves delivered")
    eventually(lambda: [stored(raw, bucket, f"w{i}.pkl") for i in range(9)] == [("worker", i) for i in range(9)], "the workers' saves")
    eventually(lambda: s3bp.pending_uploads() == [], "the journal emptied")


def test_a_notebook_kernel_shut_down_right_after_saves_still_delivers_them(tmp_path, bucket, raw, proxy):
    import importlib.util

    import pytest

    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if importlib.util.find_spec("ipykernel") is None:
        pytest.skip("ipykernel is not installed")
    proxy.always("delay:1")  # still uploading when the kernel is told to shut down
    code = textwrap.dedent(
        f"""
        import s3bp
        for i in range(4):
            s3bp.save_object(("nb", i), {str(tmp_path)!r} + f"/nb{{i}}.pkl", {bucket!r})
        s3bp.save_object(("nb", "last"), {str(tmp_path)!r} + "/nb0.pkl", {bucket!r})
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    proxy.clear()
    want = [("nb", "last"), ("nb", 1), ("nb", 2), ("nb", 3)]
    eventually(lambda: [stored(raw, bucket, f"nb{i}.pkl") for i in range(4)] == want, "the kernel's saves delivered", limit=180)
    eventually(lambda: s3bp.pending_uploads() == [], "the journal emptied", limit=180)


def test_thousands_of_saves_in_a_burst_lose_none(tmp_path, bucket, raw):
    last = {}
    futs = []
    for i in range(2500):
        k = i % 25
        futs.append(s3bp.save_object((k, i), tmp_path / f"many{k}.pkl", bucket))
        last[k] = i
    s3bp.flush()
    assert all(f.done() and f.exception() is None for f in futs)
    assert [stored(raw, bucket, f"many{k}.pkl") for k in range(25)] == [(k, last[k]) for k in range(25)]
    assert s3bp.pending_uploads() == []


def test_cancelling_a_save_future_breaks_no_later_upload(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.5")
    first = s3bp.save_object("first", tmp_path / "c0.pkl", bucket)
    assert first.cancel() is False  # a Future has cancel(): a user may well call it; a journaled save goes up anyway
    proxy.clear()
    eventually(lambda: stored(raw, bucket, "c0.pkl") == "first", "the first save delivered all the same")
    time.sleep(0.5)  # not a timing assertion: lets the uploader's answer about it arrive first
    later = [s3bp.save_object(("later", i), tmp_path / f"c{i}.pkl", bucket) for i in range(1, 4)]
    s3bp.flush(timeout=120)  # generous bound: a lost answer would keep it waiting for ever
    assert [f.result(timeout=1) for f in later] == [f"c{i}.pkl" for i in range(1, 4)]
    assert [stored(raw, bucket, f"c{i}.pkl") for i in range(4)] == ["first"] + [("later", i) for i in range(1, 4)]
    assert s3bp.pending_uploads() == []


def test_a_stopped_child_does_not_keep_its_parent_from_exiting(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.5")
    proc = start_python(
        f"""
        import os, signal, time, s3bp
        futs = [s3bp.save_object(i, {str(tmp_path)!r} + f"/p{{i}}.pkl", {bucket!r}) for i in range(3)]
        child = s3bp.get_default_store()._queue._child
        while not child.ready:
            time.sleep(0.01)
        print(child.pid, flush=True)
        os.kill(child.pid, signal.SIGSTOP)
        """
    )
    child = int(proc.stdout.readline())
    try:
        _, err = proc.communicate(timeout=180)  # generous: without the fix it never ends
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the saving process waited for its stopped child forever") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGCONT)
    assert proc.returncode == 0, err
    proxy.clear()
    eventually(lambda: [stored(raw, bucket, f"p{i}.pkl") for i in range(3)] == [0, 1, 2], "every save delivered")


def test_a_forked_worker_blocked_in_a_lock_still_dies_of_sigterm(tmp_path, bucket, raw):
    # multiprocessing's Pool.terminate() sends SIGTERM to workers waiting for a task in a lock. A worker that inherited
    # s3bp's SIGTERM handler (or installed its own) only ran it once its main thread got back to Python: with the
    # signal landing on one of its upload threads instead, it never did, and the pool waited for it for ever.
    proc = start_python(
        f"""
        import os, signal, threading, time, s3bp
        s3bp.save_object("parent", {str(tmp_path)!r} + "/fp.pkl", {bucket!r}, wait=True)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            s3bp.save_object("worker", {str(tmp_path)!r} + "/fw.pkl", {bucket!r}, wait=True)  # its upload threads run now
            signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}})  # this thread only: a SIGTERM goes to another
            os.write(w, b"x")
            lock = threading.Lock()
            lock.acquire()
            lock.acquire()  # waits, as a pool worker for its next task
            os._exit(0)
        os.read(r, 1)
        os.kill(pid, signal.SIGTERM)
        for _ in range(600):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("ended", os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("hung", flush=True)
        """
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert out.strip() == "ended True"
    assert stored(raw, bucket, "fw.pkl") == "worker"
