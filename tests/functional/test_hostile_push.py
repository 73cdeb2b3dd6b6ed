"""Attacks on the batched journal of a folder push (``UploadQueue.journal_many``): kills, interrupts, races, full disks.

Every test talks to the moto server over HTTP; processes that must die are
real subprocesses. No timing is asserted: conditions are polled with a
generous bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import s3bp
from s3bp.index import StateDB
from s3bp.uploads import BATCH_FILES, SPOOL_GRACE, UploadQueue, sweep_spool

from ..support import eventually, start_python
from .test_hostile_18 import cli
from .test_state_faults import small_disk, use_state_dir


def state_dir() -> str:
    return os.environ["S3BP_STATE_DIR"]


def spool_names() -> set[str]:
    try:
        return set(os.listdir(os.path.join(state_dir(), "spool")))
    except FileNotFoundError:
        return set()


def journal_rows() -> list:
    db = StateDB(os.path.join(state_dir(), "state.sqlite3"))
    try:
        return db.entries()
    finally:
        db.close()


def make_tree(folder, n: int, size: int = 64) -> dict[str, bytes]:
    files = {f"d{i % 10}/f{i:05d}.bin": (f"{i:05d}".encode() * (size // 5 + 1))[:size] for i in range(n)}
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def in_s3(raw, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix):]] = raw.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _stopped_mid_journal(folder, sig) -> subprocess.CompletedProcess:
    """``s3bp push folder``, sent ``sig`` once it has journaled a few batches (while it journals more and uploads)."""
    proc = subprocess.Popen([sys.executable, "-m", "s3bp", "push", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: len(spool_names()) >= 150 or proc.poll() is not None, "the push journaled 150 files")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_an_interrupted_push_uploads_what_it_journaled_and_calls_nothing_failed(tmp_path, bucket, raw):
    # Ctrl-C while a push journals: the batches journaled so far must be uploaded (or handed off) like every other
    # journaled save, never left unqueued, called "failed" at exit and left for the next process.
    folder = tmp_path / "data"
    files = make_tree(folder, 600)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    res = _stopped_mid_journal(folder, signal.SIGINT)
    assert res.returncode == 1 and "s3bp: interrupted" in res.stderr, res.stderr
    assert "failed" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    eventually(lambda: journal_rows() == [], "the journaled files were uploaded")
    left = spool_names()  # snapshots with no row (the batch the interrupt cut short): swept once old enough
    assert len(left) < BATCH_FILES + 8, len(left)
    got = in_s3(raw, bucket, "data/")
    assert got and all(files[rel] == data for rel, data in got.items())
    res = cli("push", str(folder))
    assert res.returncode == 0, res.stderr
    assert in_s3(raw, bucket, "data/") == files
    assert journal_rows() == [] and spool_names() == left
    _sweep_as_if_later()
    assert spool_names() == set()


def _sweep_as_if_later() -> set[str]:
    """What a process started once the spool's snapshots with no row are old enough removes; their names."""
    db = StateDB(os.path.join(state_dir(), "state.sqlite3"))
    try:
        return {os.path.basename(p) for p in sweep_spool(db, os.path.join(state_dir(), "spool"), now=time.time() + SPOOL_GRACE + 1)}
    finally:
        db.close()


def _threaded_push_of(tmp_path, bucket: str, count: int) -> tuple:
    """A folder of ``count`` files mapped to ``bucket``, uploads in this process's threads; (folder, {name: bytes})."""
    folder = tmp_path / "data"
    files = make_tree(folder, count)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    s3bp.configure(upload_process=False)
    return folder, files


def test_an_interrupt_right_after_a_batch_is_committed_leaves_no_row_without_its_snapshot(tmp_path, bucket, raw, monkeypatch):
    # The interrupt lands as the batch's transaction returns: its rows are committed, and the snapshots they name
    # were deleted as if nothing had been journaled; those uploads could then never be made.
    folder, files = _threaded_push_of(tmp_path, bucket, 200)
    real = StateDB.add_entries
    calls = []

    def committed_then_interrupted(self, entries):
        added = real(self, entries)
        calls.append(len(added))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return added

    monkeypatch.setattr(StateDB, "add_entries", committed_then_interrupted)
    try:
        s3bp.push(folder)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt was swallowed")
    monkeypatch.setattr(StateDB, "add_entries", real)
    # (the first batch's uploads run meanwhile: each drops its row, then its snapshot)
    missing = {r.id: r.path for r in journal_rows() if not os.path.exists(r.spool)}
    assert [path for entry_id, path in missing.items() if entry_id in {r.id for r in journal_rows()}] == []
    s3bp.flush()
    assert s3bp.push(folder).ok
    assert in_s3(raw, bucket, "data/") == files
    assert journal_rows() == []


def test_a_push_killed_while_it_journals_is_completed_by_the_next_push(tmp_path, bucket, raw):
    folder = tmp_path / "data"
    files = make_tree(folder, 600)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    res = _stopped_mid_journal(folder, signal.SIGKILL)
    assert res.returncode == -signal.SIGKILL
    rows = journal_rows()
    assert rows and all(os.path.exists(r.spool) for r in rows)  # every journaled save has its snapshot
    rowless = spool_names() - {r.id for r in rows}
    # at most the batch being copied (no row yet) and the uploads that had just settled (row gone, snapshot not yet)
    assert len(rowless) < BATCH_FILES + 8, len(rowless)
    res = cli("push", str(folder))
    assert res.returncode == 0 and "failed" not in res.stderr, res.stderr
    assert in_s3(raw, bucket, "data/") == files
    assert journal_rows() == [] and spool_names() == rowless
    assert _sweep_as_if_later() == rowless
    assert spool_names() == set()


def test_a_push_still_journaling_shows_its_saves_as_queued_not_failed(tmp_path, bucket, raw, monkeypatch):
    # While a push is still journaling, the saves it journaled are queued, in flight or done: never taken by this
    # process for failed uploads (pending_uploads() saying "failed", a flush() or a save's clean-up in another thread
    # treating them as left-overs).
    folder, files = _threaded_push_of(tmp_path, bucket, 200)
    real = StateDB.add_entries
    paused, go = threading.Event(), threading.Event()
    batches = []

    def third_batch_waits(self, entries):
        if len(entries) > 1:
            batches.append(len(entries))
            if len(batches) == 3:
                paused.set()
                go.wait(120)
        return real(self, entries)

    monkeypatch.setattr(StateDB, "add_entries", third_batch_waits)
    reports = []
    pusher = threading.Thread(target=lambda: reports.append(s3bp.push(folder)))
    pusher.start()
    try:
        assert paused.wait(120)
        states = {p.state for p in s3bp.pending_uploads()}
        assert states <= {"queued", "in flight"}, states
    finally:
        go.set()
        pusher.join(120)
    assert reports and reports[0].ok and len(reports[0].uploaded) == 200
    assert in_s3(raw, bucket, "data/") == files


def test_files_swapped_between_the_survey_and_their_snapshot_fail_alone(tmp_path, bucket, raw, monkeypatch):
    # A file replaced by a FIFO after the survey: the snapshot's open waited for a writer for ever, holding the path locks
    # of its whole batch (every save of those paths, in every process, waited too); and once something was written
    # to it, the failure blamed s3bp's state directory.
    folder = tmp_path / "data"
    files = make_tree(folder, 10)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    s3bp.configure(upload_process=False)
    gone, became_dir, became_fifo = (str(folder / rel) for rel in ("d1/f00001.bin", "d2/f00002.bin", "d3/f00003.bin"))
    real = UploadQueue.journal_many

    def swapped(self, saves, **kwargs):
        os.unlink(gone)
        os.unlink(became_dir)
        os.mkdir(became_dir)
        os.unlink(became_fifo)
        os.mkfifo(became_fifo)
        return real(self, saves, **kwargs)

    monkeypatch.setattr(UploadQueue, "journal_many", swapped)
    reports = []
    pusher = threading.Thread(target=lambda: reports.append(s3bp.push(folder)), daemon=True)
    pusher.start()
    pusher.join(60)
    if pusher.is_alive():  # let it go: it waits for a writer of the FIFO
        fd = os.open(became_fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"written to the FIFO")
        os.close(fd)
        pusher.join(60)
        raise AssertionError("the push waited for a writer of a FIFO")
    (report,) = reports
    failed = dict(report.failed)
    assert sorted(failed) == sorted([gone, became_dir, became_fifo])
    for path, why in failed.items():
        assert path in why and "state directory" not in why, why
    assert "not a regular file" in failed[became_fifo]
    others = {rel: data for rel, data in files.items() if str(folder / rel) not in failed}
    assert in_s3(raw, bucket, "data/") == others
    assert journal_rows() == [] and spool_names() == set()


def test_a_state_disk_filling_up_mid_batch_fails_only_the_files_it_could_not_hold(tmp_path, bucket, raw, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    files = {f"f{i:02d}.bin": os.urandom(100 * 1024) for i in range(30)}  # 3 MB: one batch, on a 1 MB disk
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    with small_disk(tmp_path / "disk") as disk:
        state = disk / "state"
        use_state_dir(monkeypatch, state)
        s3bp.configure(upload_process=False)
        report = s3bp.push(folder)
        assert report.uploaded and report.failed, report.summary()
        for path, why in report.failed:
            assert path in why and str(state) in why and "space" in why, why
        assert sorted(report.uploaded + [p for p, _ in report.failed]) == sorted(str(folder / rel) for rel in files)
        assert in_s3(raw, bucket, "data/") == {os.path.basename(p): files[os.path.basename(p)] for p in report.uploaded}
        assert s3bp.pending_uploads() == [] and os.listdir(state / "spool") == []  # no partial snapshot, no row left


def test_a_save_made_while_another_process_pushes_the_folder_wins_without_a_conflict(tmp_path, bucket, raw):
    import pickle

    folder = tmp_path / "data"
    files = make_tree(folder, 600)
    target = folder / "d0" / "f00000.bin"  # in the pusher's first batch: journaled, its upload queued or in flight
    s3bp.map_base_directory_to_bucket(folder, bucket)
    pusher = subprocess.Popen([sys.executable, "-m", "s3bp", "push", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: len(spool_names()) >= 150 or pusher.poll() is not None, "the push journaled 150 files")
        s3bp.save_object("mine, newer", target, bucket, wait=True)
        out, err = pusher.communicate(timeout=300)
    finally:
        if pusher.poll() is None:
            pusher.kill()
    assert pusher.returncode == 0 and "0 conflicts, 0 failed" in out, out[-500:] + err
    assert pickle.loads(raw.get_object(Bucket=bucket, Key="data/d0/f00000.bin")["Body"].read()) == "mine, newer"
    assert s3bp.load_object(target, bucket) == "mine, newer"
    rest = {rel: data for rel, data in files.items() if rel != "d0/f00000.bin"}
    assert {rel: data for rel, data in in_s3(raw, bucket, "data/").items() if rel != "d0/f00000.bin"} == rest
    s3bp.flush()
    assert journal_rows() == [] and spool_names() == set()


def test_two_pushes_of_one_folder_at_once_both_succeed(tmp_path, bucket, raw):
    folder = tmp_path / "data"
    files = make_tree(folder, 200)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    pushes = [
        subprocess.Popen([sys.executable, "-m", "s3bp", "push", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    done = [p.communicate(timeout=300) for p in pushes]
    for p, (out, err) in zip(pushes, done):
        assert p.returncode == 0 and "0 conflicts, 0 failed" in out and "Traceback" not in err, out[-500:] + err
    assert in_s3(raw, bucket, "data/") == files
    assert journal_rows() == [] and spool_names() == set()
    res = cli("push", str(folder))
    assert res.returncode == 0 and "uploaded 0" in res.stdout, res.stdout


def test_a_background_push_then_exit_leaves_every_file_uploaded(tmp_path, bucket, raw):
    folder = tmp_path / "data"
    files = make_tree(folder, 300)
    s3bp.map_base_directory_to_bucket(folder, bucket)
    proc = start_python(
        f"""
        import s3bp
        report = s3bp.push({str(folder)!r}, wait=False)
        print(len(report.uploaded), len(report.failed), flush=True)
        """
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and out.split() == ["300", "0"] and "Traceback" not in err, out + err
    eventually(lambda: journal_rows() == [], "the background uploads finished", limit=240)
    assert in_s3(raw, bucket, "data/") == files
    eventually(lambda: spool_names() == set(), "the spool emptied")
