"""The background upload queue: ordering, snapshots, the journal, exit, retries and faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import s3bp
from s3bp.errors import UploadError

from ..support import unpickled


def set_attempts(n: int) -> None:
    s3bp.get_default_store().config.update(lambda d: d.__setitem__("max_attempts", n))


def _parent_of(pid: int) -> int:
    """The parent process id of ``pid`` (Linux's /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_last_of_20_quick_saves_wins_every_time(tmp_path, bucket, raw, proxy):
    path = tmp_path / "big.pkl"
    gate = threading.Event()
    proxy.script(("hold", gate))  # the first upload stays in flight until every save is made: the others queue behind it
    try:
        for i in range(20):
            s3bp.save_object((i, os.urandom(2_000_000)), path, bucket)
    finally:
        gate.set()
    s3bp.flush()
    assert unpickled(raw, bucket, "big.pkl")[0] == 19
    # queued older saves were coalesced, never sent: only the first, the last and the one conditional-write probe went out
    # (counted by the proxy, which sees the uploader child's requests too)
    assert 2 <= proxy.count("PUT", "/big.pkl") <= 3
    assert s3bp.pending_uploads() == []
    assert os.listdir(os.path.join(os.environ["S3BP_STATE_DIR"], "spool")) == []


def test_newer_save_waits_for_the_one_in_flight(tmp_path, bucket, raw, proxy):
    path = tmp_path / "k.pkl"
    proxy.script("delay:1")  # the first upload is slow; the second must not overtake it
    first = s3bp.save_object("first", path, bucket)
    second = s3bp.save_object("second", path, bucket)
    second.result(timeout=30)
    assert first.done()
    assert unpickled(raw, bucket, "k.pkl") == "second"


def test_snapshot_survives_overwrite_and_delete(tmp_path, bucket, raw, proxy):
    path = tmp_path / "snap.pkl"
    proxy.script("delay:1")
    fut = s3bp.save_object("saved", path, bucket)
    with open(path, "wb") as fh:  # rewritten in place while the upload waits
        fh.write(b"garbage")
    os.remove(path)
    fut.result(timeout=30)
    assert unpickled(raw, bucket, "snap.pkl") == "saved"


def test_handle_reports_failure(tmp_path, endpoint, capsys):
    fut = s3bp.save_object(1, tmp_path / "f.pkl", "s3bp-missing-bucket-x")
    with pytest.raises(UploadError, match="s3bp-missing-bucket-x"):
        fut.result(timeout=30)
    assert isinstance(fut.exception(), UploadError)
    assert capsys.readouterr().err.count("background upload") == 1


def test_transient_faults_are_retried(tmp_path, bucket, raw, proxy):
    proxy.script(503, "reset", 500)
    s3bp.save_object("survived", tmp_path / "t.pkl", bucket, wait=True)
    assert unpickled(raw, bucket, "t.pkl") == "survived"
    assert proxy.connections >= 4


def test_attempt_count_is_configurable(tmp_path, bucket, raw, proxy):
    set_attempts(2)
    proxy.script(503, 503)
    with pytest.raises(UploadError):
        s3bp.save_object("v", tmp_path / "a.pkl", bucket, wait=True)
    [pending] = s3bp.pending_uploads()
    assert pending.state == "failed" and "SlowDown" in pending.last_error
    s3bp.flush()
    assert unpickled(raw, bucket, "a.pkl") == "v"


def test_outage_journals_everything_and_flush_completes_it(tmp_path, bucket, raw, proxy, capsys):
    set_attempts(1)
    proxy.off()
    for i in range(10):
        s3bp.save_object(i, tmp_path / f"o{i}.pkl", bucket)
    s3bp.save_object("older", tmp_path / "same.pkl", bucket)
    s3bp.save_object("newest", tmp_path / "same.pkl", bucket)
    with pytest.raises(UploadError) as info:
        s3bp.flush()
    assert len(info.value.failures) == 11  # one per object: the older save of same.pkl is superseded
    assert {p.state for p in s3bp.pending_uploads()} == {"failed"}
    # a load while uploads are journaled serves the local file with no request
    assert s3bp.load_object(tmp_path / "o3.pkl", bucket) == 3
    proxy.on()
    s3bp.flush()
    assert [unpickled(raw, bucket, f"o{i}.pkl") for i in range(10)] == list(range(10))
    assert unpickled(raw, bucket, "same.pkl") == "newest"
    assert s3bp.pending_uploads() == []


def test_retry_never_overwrites_a_newer_upload(tmp_path, bucket, raw, proxy):
    set_attempts(1)
    path = tmp_path / "n.pkl"
    proxy.always(503)
    s3bp.save_object("old", path, bucket)
    with pytest.raises(UploadError):
        s3bp.flush()
    proxy.clear()
    s3bp.save_object("new", path, bucket, wait=True)
    s3bp.flush()
    assert unpickled(raw, bucket, "n.pkl") == "new"
    assert s3bp.pending_uploads() == []


def test_threads_saving_distinct_and_shared_keys(tmp_path, bucket, raw):
    shared_lock = threading.Lock()
    last_shared: dict[str, tuple[int, int]] = {}

    def worker(t: int) -> None:
        for i in range(50):
            s3bp.save_object((t, i), tmp_path / f"t{t}.pkl", bucket)
            name = f"shared{i % 3}.pkl"
            with shared_lock:
                s3bp.save_object((t, i), tmp_path / name, bucket)
                last_shared[name] = (t, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s3bp.flush()
    for t in range(8):
        assert unpickled(raw, bucket, f"t{t}.pkl") == (t, 49)
    for name, value in last_shared.items():
        assert unpickled(raw, bucket, name) == value


def test_resizing_the_pool_drops_nothing(tmp_path, bucket, raw):
    s3bp.set_max_workers(4)
    for i in range(40):
        s3bp.save_object(i, tmp_path / f"r{i}.pkl", bucket)
        if i == 10:
            s3bp.set_max_workers(1)
        if i == 25:
            s3bp.set_max_workers(6)
    s3bp.flush()
    assert [unpickled(raw, bucket, f"r{i}.pkl") for i in range(40)] == list(range(40))


def test_killed_process_leaves_uploads_for_the_next(tmp_path, bucket, raw, proxy):
    s3bp.configure(upload_process=False)  # uploads in the saving process's threads, which die with it
    proxy.always("delay:30")  # uploads hang until the process is killed
    res = run_python(
        f"""
        import os, signal, s3bp
        for i in range(5):
            s3bp.save_object(i, {str(tmp_path)!r} + f"/k{{i}}.pkl", {bucket!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert res.returncode == -signal.SIGKILL
    proxy.clear()
    pending = s3bp.pending_uploads()  # this process adopts them on first use
    assert len(pending) == 5
    s3bp.flush()
    assert [unpickled(raw, bucket, f"k{i}.pkl") for i in range(5)] == list(range(5))
    assert s3bp.pending_uploads() == []


def test_flush_command_completes_a_dead_process_uploads(tmp_path, bucket, raw, proxy):
    s3bp.configure(upload_process=False)  # uploads in the saving process's threads, which die with it
    proxy.always("delay:30")
    run_python(
        f"""
        import os, signal, s3bp
        s3bp.save_object("from the dead", {str(tmp_path / "d.pkl")!r}, {bucket!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proxy.clear()
    status = subprocess.run([sys.executable, "-m", "s3bp", "status"], capture_output=True, text=True, timeout=60)
    assert "d.pkl" in status.stdout
    res = subprocess.run([sys.executable, "-m", "s3bp", "flush"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert unpickled(raw, bucket, "d.pkl") == "from the dead"


@pytest.mark.parametrize("upload_process", [False, True])
def test_live_owner_keeps_its_entries(tmp_path, bucket, proxy, upload_process):
    s3bp.configure(upload_process=upload_process)
    proxy.always("delay:3")
    other = s3bp.Store()  # another "process" sharing the state dir, with its own owner lock
    try:
        other.save_object("theirs", tmp_path / "live.pkl", bucket)
        [pending] = s3bp.pending_uploads()
        uploader = os.getpid() if not upload_process else pending.pid  # the child uploader of `other`: a child of this process
        assert pending.state == f"pending in process {uploader}" and (uploader == os.getpid() or _parent_of(uploader) == os.getpid())
    finally:
        proxy.clear()
        other.close()
    assert s3bp.pending_uploads() == []


def test_normal_exit_waits_for_uploads_and_says_so(tmp_path, bucket, raw, proxy):
    proxy.script("delay:2")
    res = run_python(
        f"""
        import s3bp
        s3bp.save_object("at exit", {str(tmp_path / "x.pkl")!r}, {bucket!r})
        """
    )
    assert res.returncode == 0, res.stderr
    assert "waiting for 1 pending upload" in res.stderr
    assert unpickled(raw, bucket, "x.pkl") == "at exit"


def test_exit_with_failed_upload_says_it_stays_journaled(tmp_path, endpoint):
    res = run_python(
        f"""
        import s3bp
        s3bp.save_object(1, {str(tmp_path / "f.pkl")!r}, "s3bp-missing-bucket-y")
        """
    )
    assert res.returncode == 0
    assert "stay journaled" in res.stderr and "s3bp flush" in res.stderr
    assert len(s3bp.pending_uploads()) == 1  # adopted from the exited process, and retried
    with pytest.raises(UploadError, match="s3bp-missing-bucket-y"):
        s3bp.flush()
    assert [p.state for p in s3bp.pending_uploads()] == ["failed"]


def test_large_upload_at_exit_uses_multipart(tmp_path, bucket, raw, monkeypatch):
    s3bp.configure(upload_process=False)  # the threshold below is changed in the saving process only
    res = run_python(
        f"""
        import os, s3bp, s3bp.remote
        s3bp.remote.MULTIPART_THRESHOLD = 6 * 1024 * 1024
        s3bp.save_object(os.urandom(7 * 1024 * 1024), {str(tmp_path / "big.bin")!r}, {bucket!r}, serializer=lambda o, p: open(p, "wb").write(o))
        """
    )
    assert res.returncode == 0, res.stderr
    head = raw.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == os.path.getsize(tmp_path / "big.bin")
    assert "-" in head["ETag"]  # a multipart ETag
