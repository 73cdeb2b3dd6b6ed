"""The child uploader process: background saves are sent by a child, whatever happens to either process.

Requests are counted through the fault proxy, which sees every process's
requests (the in-process request log does not see the child's).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

import s3bp
from s3bp.errors import UploadError

from ..support import eventually, start_python, stored, unpickled


def child_of(pid: int) -> bool:
    """Whether ``pid`` is a live child process of this process (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, IndexError, ValueError):
        return False


def test_background_saves_are_sent_by_a_child_process(tmp_path, bucket, raw, proxy):
    proxy.always("delay:1")  # slow enough to see where the upload runs
    fut = s3bp.save_object({"a": 1}, tmp_path / "c.pkl", bucket)
    [pending] = s3bp.pending_uploads()
    assert pending.state == "queued" and pending.pid != os.getpid() and child_of(pending.pid)
    proxy.clear()
    assert fut.result(timeout=60) == "c.pkl" and fut.unchanged is False
    assert unpickled(raw, bucket, "c.pkl") == {"a": 1}
    assert proxy.count("PUT", "/c.pkl") == 1
    # the record the child wrote is this process's too: the next load sends one conditional GET, answered 304
    proxy.forget_requests()
    assert s3bp.load_object(tmp_path / "c.pkl", bucket) == {"a": 1}
    assert [m for m, _ in proxy.requests] == ["GET"]


def test_upload_process_false_keeps_uploads_in_this_process(tmp_path, bucket, raw, requests_log):
    s3bp.configure(upload_process=False)
    s3bp.save_object(5, tmp_path / "t.pkl", bucket).result(timeout=60)
    assert requests_log.operations.count("PutObject") >= 1  # sent by this process's client
    assert unpickled(raw, bucket, "t.pkl") == 5


def test_parent_killed_right_after_save_still_uploads(tmp_path, bucket, raw, proxy):
    proxy.always("delay:1")  # the upload is still in flight when the parent dies
    proc = start_python(
        f"""
        import os, signal, s3bp
        for i in range(3):
            s3bp.save_object(i, {str(tmp_path)!r} + f"/k{{i}}.pkl", {bucket!r})
        s3bp.save_object("last", {str(tmp_path / "k0.pkl")!r}, {bucket!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    # nobody in this process touches the journal: the child uploader alone delivers them
    eventually(lambda: [stored(raw, bucket, f"k{i}.pkl") for i in range(3)] == ["last", 1, 2], "the child delivered every save")
    eventually(lambda: not os.listdir(os.path.join(os.environ["S3BP_STATE_DIR"], "spool")), "the journal emptied")
    assert s3bp.pending_uploads() == []


def test_a_killed_child_is_replaced_by_this_process(tmp_path, bucket, raw, proxy):
    proxy.always("delay:2")  # every upload is in flight when the child dies
    futs = [s3bp.save_object(i, tmp_path / f"d{i}.pkl", bucket) for i in range(4)]
    pids = {p.pid for p in s3bp.pending_uploads()}
    assert len(pids) == 1 and child_of(next(iter(pids)))
    os.kill(pids.pop(), signal.SIGKILL)
    proxy.clear()
    assert [f.result(timeout=60) for f in futs] == [f"d{i}.pkl" for i in range(4)]
    assert [unpickled(raw, bucket, f"d{i}.pkl") for i in range(4)] == list(range(4))
    s3bp.flush()
    assert s3bp.pending_uploads() == []
    # a later save starts a new child
    s3bp.save_object("again", tmp_path / "d0.pkl", bucket).result(timeout=60)
    assert unpickled(raw, bucket, "d0.pkl") == "again"


def test_a_failure_in_the_child_reaches_flush(tmp_path, bucket, raw, proxy, capsys):
    s3bp.configure(max_attempts=1)
    proxy.always(403)
    fut = s3bp.save_object("x", tmp_path / "f.pkl", bucket)
    with pytest.raises(UploadError) as info:
        s3bp.flush()
    assert [(b, k) for b, k, _ in info.value.failures] == [(bucket, "f.pkl")]
    assert isinstance(fut.exception(timeout=60), s3bp.errors.S3bpError)
    assert "f.pkl" in capsys.readouterr().err  # printed, as a background failure is
    [pending] = s3bp.pending_uploads()
    assert pending.state == "failed" and pending.pid == os.getpid()  # handed back: this process retries it
    proxy.clear()
    s3bp.flush()
    assert unpickled(raw, bucket, "f.pkl") == "x"
    assert s3bp.pending_uploads() == []


def test_two_processes_saving_the_same_key(tmp_path, bucket, raw):
    path = tmp_path / "shared.pkl"
    code = f"""
        import sys, s3bp
        for i in range(15):
            s3bp.save_object((sys.argv[1], i), {str(path)!r}, {bucket!r})
        s3bp.flush()
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), name], stderr=subprocess.PIPE, text=True) for name in "ab"]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with open(path, "rb") as fh:
        last = pickle.load(fh)
    assert last[1] == 14 and unpickled(raw, bucket, "shared.pkl") == last  # S3 holds the version on disk: the last one placed
    assert s3bp.pending_uploads() == []


def test_settings_given_to_the_store_reach_the_child(tmp_path, bucket, raw, proxy, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint is known only to this store, not to the environment
    config = s3bp.config.ConfigFile(tmp_path / "cfg.yml", overrides={"endpoint_url": proxy.url})
    with s3bp.Store(config=config, state_dir=tmp_path / "state") as store:
        store.save_object("over", tmp_path / "o.pkl", bucket).result(timeout=60)
    assert proxy.count("PUT", "/o.pkl") == 1
    assert unpickled(raw, bucket, "o.pkl") == "over"
