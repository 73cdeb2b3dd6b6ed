"""Saved means uploaded: uploads outlive the process, adoption never fails, the journal can be read and mended."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import s3bp

from ..support import unpickled

N = 200


def start_python(code: str, **env: str) -> subprocess.Popen:
    """Another process of this machine (same environment, so the same config and state directory)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
    )


def count_in_s3(raw, bucket: str, prefix: str = "") -> int:
    return sum(page.get("KeyCount", 0) for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix))


def wait_for_count(raw, bucket: str, want: int, timeout: float) -> float:
    """Poll S3 directly (no s3bp call) until ``want`` objects are there; the seconds it took."""
    started = time.monotonic()
    while count_in_s3(raw, bucket) < want:
        assert time.monotonic() - started < timeout, f"only {count_in_s3(raw, bucket)}/{want} in S3 after {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


def saver(tmp_path, bucket: str, on_exit: str, then: str = "") -> str:
    return f"""
        import os, time, s3bp
        s3bp.get_default_store().config.update(lambda d: d.update(on_exit={on_exit!r}))
        for i in range({N}):
            s3bp.save_object(i, os.path.join({str(tmp_path)!r}, f"obj{{i}}.pkl"), {bucket!r})
        print("saved", time.monotonic(), flush=True)
        {then}
        """


def test_handoff_exits_at_once_and_a_background_uploader_delivers_everything(tmp_path, bucket, raw, proxy):
    gate = threading.Event()
    proxy.always(("hold", gate))  # no upload can finish while the saving process lives: it must hand over to exit at all
    try:
        p = start_python(saver(tmp_path, bucket, "handoff"))
        try:
            out, err = p.communicate(timeout=50)  # a process waiting for its uploads would still be waiting (the hold lasts 60 s)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        assert count_in_s3(raw, bucket) == 0  # so nothing was delivered by the process itself
    finally:
        gate.set()
    assert p.returncode == 0, err
    assert "handed to a background uploader" in err
    wait_for_count(raw, bucket, N, timeout=120)
    assert [unpickled(raw, bucket, f"obj{i}.pkl") for i in (0, N - 1)] == [0, N - 1]


def test_a_script_waits_until_everything_is_in_s3(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.2")
    p = start_python(saver(tmp_path, bucket, "auto"))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert count_in_s3(raw, bucket) == N  # the moment it has exited


def test_sigterm_after_the_last_save_still_delivers_everything(tmp_path, bucket, raw, proxy):
    proxy.always("delay:0.2")
    p = start_python(saver(tmp_path, bucket, "auto", then="time.sleep(60)"))
    assert p.stdout.readline().startswith("saved")
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGTERM
    wait_for_count(raw, bucket, N, timeout=120)


def test_reading_the_journal_of_a_killed_process_changes_nothing(tmp_path, bucket, raw, proxy):
    s3bp.configure(upload_process=False)  # uploads in the saving process's threads, which die with it
    proxy.always("delay:30")  # uploads hang until the process is killed
    p = start_python(
        f"""
        import os, signal, s3bp
        for i in range(20):
            s3bp.save_object(i, os.path.join({str(tmp_path)!r}, f"k{{i}}.pkl"), {bucket!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    proxy.clear()
    before = [(e.path, e.attempts, e.last_error) for e in s3bp.pending_uploads()]
    assert len(before) == 20 and all(e.state == f"orphaned (owner pid {p.pid} exited)" for e in s3bp.pending_uploads())
    for _ in range(2):
        status = subprocess.run([sys.executable, "-m", "s3bp", "status"], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "orphaned" in status.stdout and "can't register atexit" not in status.stderr
        read = subprocess.run(
            [sys.executable, "-c", "import s3bp; print(len(s3bp.pending_uploads()))"], capture_output=True, text=True, timeout=60
        )
        assert read.stdout.strip() == "20" and not read.stderr
    assert [(e.path, e.attempts, e.last_error) for e in s3bp.pending_uploads()] == before
    assert count_in_s3(raw, bucket) == 0
    flush = subprocess.run([sys.executable, "-m", "s3bp", "flush"], capture_output=True, text=True, timeout=120)
    assert flush.returncode == 0, flush.stderr
    assert count_in_s3(raw, bucket) == 20 and s3bp.pending_uploads() == []


def test_a_wrong_endpoint_is_mended_by_retarget(tmp_path, bucket, raw, endpoint, monkeypatch):
    path = tmp_path / "x.pkl"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3bp.get_default_store().config.update(lambda d: d.update(max_attempts=1, connect_timeout=1))
    with pytest.raises(s3bp.UploadError):
        s3bp.save_object("mine", path, bucket, wait=True)
    s3bp.set_default_store(None).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # the setting is fixed
    [entry] = s3bp.pending_uploads()
    assert entry.endpoint == "http://127.0.0.1:9" and entry.attempts == 1
    with pytest.raises(s3bp.UploadError, match="could not be reached"):
        s3bp.flush()  # still bound to the old endpoint
    s3bp.flush(retarget=True)
    assert unpickled(raw, bucket, "x.pkl") == "mine" and s3bp.pending_uploads() == []


def test_forget_drops_entries_and_keeps_the_files(tmp_path, bucket, proxy):
    proxy.always(403)
    for name in ("a", "b"):
        with pytest.raises(s3bp.UploadError):
            s3bp.save_object(name, tmp_path / f"{name}.pkl", bucket, wait=True)
    assert s3bp.forget([tmp_path / "a.pkl"]) == 1
    assert [e.path for e in s3bp.pending_uploads()] == [str(tmp_path / "b.pkl")]
    assert s3bp.forget(failed=True) == 1 and s3bp.pending_uploads() == []
    proxy.clear()
    assert (tmp_path / "a.pkl").exists() and (tmp_path / "b.pkl").exists()


def test_a_permanent_failure_waits_for_you_with_one_line_per_process(tmp_path, bucket, proxy):
    proxy.always(403)
    for i in range(3):
        s3bp.save_object(i, tmp_path / f"d{i}.pkl", bucket)
    with pytest.raises(s3bp.UploadError):
        s3bp.flush()
    attempts = [e.attempts for e in s3bp.pending_uploads()]
    assert all(e.held for e in s3bp.pending_uploads()) and len(attempts) == 3
    s3bp.set_default_store(None).close()
    res = subprocess.run(
        [sys.executable, "-c", f"import s3bp; s3bp.save_object(9, {str(tmp_path / 'other.pkl')!r}, {bucket!r}, wait=False)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = [line for line in res.stderr.splitlines() if line.startswith("s3bp:")]
    assert len([line for line in lines if "cannot mend" in line]) == 1, res.stderr
    held = [e for e in s3bp.pending_uploads() if e.path != str(tmp_path / "other.pkl")]
    assert [e.attempts for e in held] == attempts  # not retried by the new process


def test_status_json(tmp_path, bucket, proxy):
    proxy.always(403)
    with pytest.raises(s3bp.UploadError):
        s3bp.save_object(1, tmp_path / "s.pkl", bucket, wait=True)
    s3bp.set_default_store(None).close()
    res = subprocess.run([sys.executable, "-m", "s3bp", "status", "--json"], capture_output=True, text=True, timeout=60)
    [entry] = json.loads(res.stdout)
    assert entry["path"] == str(tmp_path / "s.pkl") and entry["bucket"] == bucket and entry["endpoint"] == proxy.url
    assert entry["attempts"] == 1 and "access denied" in entry["last_error"] and entry["held"] is True


def test_forget_and_retarget_from_the_command_line(tmp_path, bucket, proxy):
    proxy.always(403)
    with pytest.raises(s3bp.UploadError):
        s3bp.save_object(1, tmp_path / "c.pkl", bucket, wait=True)
    s3bp.set_default_store(None).close()
    res = subprocess.run([sys.executable, "-m", "s3bp", "forget"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "--failed" in res.stderr
    res = subprocess.run([sys.executable, "-m", "s3bp", "flush", "--retarget"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "access denied" in res.stderr
    res = subprocess.run([sys.executable, "-m", "s3bp", "forget", str(tmp_path / "c.pkl")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "dropped 1 pending upload(s); the local files are kept" in res.stdout
    assert s3bp.pending_uploads() == [] and (tmp_path / "c.pkl").exists()


def test_a_notebook_kernel_shut_down_normally_hands_over_and_everything_arrives(tmp_path, bucket, raw, proxy):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if importlib.util.find_spec("ipykernel") is None:  # not imported here: this process is no kernel
        pytest.skip("ipykernel is not installed")
    gate = threading.Event()
    proxy.always(("hold", gate))  # no upload finishes before the kernel is gone: only a hand-off can deliver them
    code = textwrap.dedent(
        f"""
        import os, s3bp
        for i in range({N}):
            s3bp.save_object(i, os.path.join({str(tmp_path)!r}, f"nb{{i}}.pkl"), {bucket!r})
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()  # runs the cell, then shuts the kernel down
        assert count_in_s3(raw, bucket) == 0
    finally:
        gate.set()
    wait_for_count(raw, bucket, N, timeout=120)


def test_one_uploader_at_a_time_and_status_names_it(tmp_path, isolated):
    from s3bp.handoff import LOCK, PID, running
    from s3bp.locks import FileLock

    state = isolated / "state"
    state.mkdir(parents=True, exist_ok=True)
    first = FileLock(state / LOCK)
    assert first.acquire(blocking=False)  # an uploader at work (this process stands in for it)
    (state / PID).write_text(str(os.getpid()))
    try:
        assert running(state) == os.getpid()
        status = subprocess.run([sys.executable, "-m", "s3bp", "status"], capture_output=True, text=True, timeout=60)
        assert f"a background uploader is running (pid {os.getpid()})" in status.stdout
        second = subprocess.Popen(
            [sys.executable, "-m", "s3bp.uploader", "--config", os.environ["S3BP_CONFIG"], "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert second.poll() is None  # it waits for the first one
    finally:
        first.release()
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "0 upload(s) taken over" in out and running(state) is None
