"""Nothing lost, nothing stale: what s3bp leaves on the local disk.

A process killed mid-save, mid-download or mid-pull leaves no debris that
outlives it; temp names fit the file-name limit; temp files are created
exclusively; a replaced file keeps its permission bits; two pulls of one
folder at once agree instead of reporting conflicts.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import s3bp

from ..support import body, umask

PROBE = 1024 * 1024  # a load GETs this much first; the rest comes in a second ranged GET


def _debris(directory: Path) -> list[str]:
    """s3bp's temp files left in ``directory``."""
    return sorted(n for n in os.listdir(directory) if n.startswith(".s3bp-"))


def _run_killed(code: str, cwd: Path) -> None:
    """Run ``code`` in a fresh interpreter (same environment) that kills itself with SIGKILL at the cue it sets up."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, f"the child was meant to die of SIGKILL: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"


# The child's cue: it kills itself when it asks for the rest of an object (after a temp file got its first bytes).
_DIE_ON_SECOND_GET = textwrap.dedent(
    """
    import os, signal, s3bp

    def die(params, **kwargs):
        if not params.get("Range", "bytes=0-").startswith("bytes=0-"):
            os.kill(os.getpid(), signal.SIGKILL)

    s3bp.get_default_store().client().meta.events.register("before-parameter-build.s3.GetObject", die)
    """
)


# -- 1. no debris -------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_save_killed_mid_write_leaves_a_temp_file_that_the_next_save_there_removes(tmp_path, bucket):
    folder = tmp_path / "data"
    folder.mkdir()
    _run_killed(
        f"""
        import os, signal, s3bp

        def dying(obj, path):
            with open(path, "wb") as f:
                f.write(b"half a pickle")
            os.kill(os.getpid(), signal.SIGKILL)

        s3bp.save_object(1, {str(folder / "a.pkl")!r}, {bucket!r}, serializer=dying)
        """,
        tmp_path,
    )
    assert len(_debris(folder)) == 1 and not (folder / "a.pkl").exists()
    s3bp.save_object(2, folder / "b.pkl", bucket, wait=True)
    assert _debris(folder) == []
    assert sorted(os.listdir(folder)) == ["b.pkl"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_load_killed_mid_download_leaves_a_temp_file_that_the_next_download_there_removes(tmp_path, bucket, raw):
    blob = pickle.dumps(os.urandom(3 * PROBE))
    raw.put_object(Bucket=bucket, Key="big.pkl", Body=blob)
    path = tmp_path / "big.pkl"
    _run_killed(_DIE_ON_SECOND_GET + f"\ns3bp.load_object({str(path)!r}, {bucket!r})\n", tmp_path)
    [left] = _debris(tmp_path)
    assert 0 < os.path.getsize(tmp_path / left) < len(blob) and not path.exists()
    assert s3bp.load_object(path, bucket) == pickle.loads(blob)
    assert _debris(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_pull_killed_mid_download_leaves_temp_files_that_the_next_pull_removes(tmp_path, bucket, raw, machine):
    m = machine("m", bucket=bucket)
    blob = os.urandom(3 * PROBE)
    raw.put_object(Bucket=bucket, Key="data/sub/big.bin", Body=blob)
    for i in range(5):
        raw.put_object(Bucket=bucket, Key=f"data/sub/small{i}.txt", Body=f"small {i}".encode())
    _run_killed(
        f"""
        import os, signal, s3bp

        store = s3bp.Store(config={str(m.root / "config.yml")!r}, state_dir={str(m.root / "state")!r})

        class Dying:  # big.bin's body: its first MiB arrives and is written, then the process is killed
            def __init__(self, body):
                self.body = body

            def iter_chunks(self, size):
                yield self.body.read(size)
                os.kill(os.getpid(), signal.SIGKILL)

        def die(parsed, **kwargs):
            if parsed.get("ContentLength", 0) > 2 * 1024 * 1024:
                parsed["Body"] = Dying(parsed["Body"])

        store.client().meta.events.register("after-call.s3.GetObject", die)
        store.pull({str(m.dir)!r}, progress=False)
        """,
        tmp_path,
    )
    assert _debris(m.dir / "sub"), "the killed pull should have left its temp file of big.bin"
    report = m.store.pull(m.dir, progress=False)
    assert report.ok and _debris(m.dir / "sub") == []
    assert (m.dir / "sub" / "big.bin").read_bytes() == blob
    assert m.tree() == ["sub/big.bin"] + [f"sub/small{i}.txt" for i in range(5)]


def test_snapshots_with_no_journal_row_are_removed_from_the_spool_when_the_queue_opens(tmp_path, bucket, isolated):
    spool = isolated / "state" / "spool"
    spool.mkdir(parents=True)
    hour_ago = time.time() - 3600
    stale, fresh = uuid.uuid4().hex, uuid.uuid4().hex  # left by processes killed between their copy and their journal row
    (spool / stale).write_bytes(b"old snapshot")
    os.utime(spool / stale, (hour_ago, hour_ago))
    (spool / fresh).write_bytes(b"a snapshot whose journal row is being written right now")
    s3bp.save_object(1, tmp_path / "f.pkl", bucket, wait=True)  # opens the queue
    assert os.listdir(spool) == [fresh]


# -- 2. names at the file-name limit -----------------------------------------------


@pytest.mark.parametrize("name", ["n" * 251 + ".pkl", "é" * 125 + ".pkl"], ids=["ascii", "utf8"])
def test_a_file_name_of_255_bytes_saves_and_loads(tmp_path, bucket, raw, name):
    assert len(os.fsencode(name)) in (254, 255)
    path = tmp_path / name
    s3bp.save_object({"long": name}, path, bucket, wait=True)
    assert pickle.loads(path.read_bytes()) == {"long": name}
    assert pickle.loads(body(raw, bucket, name)) == {"long": name}
    elsewhere = tmp_path / "elsewhere" / name  # no local copy: downloaded beside it
    assert s3bp.load_object(elsewhere, bucket) == {"long": name}
    assert sorted(os.listdir(elsewhere.parent)) == [name]


def test_a_shortened_temp_name_keeps_the_suffixes_serializers_go_by(tmp_path, bucket):
    name = "n" * 248 + ".csv.gz"
    seen = []

    def write(obj, path):
        seen.append(os.path.basename(path))
        with open(path, "wb") as f:
            f.write(obj)

    s3bp.save_object(b"a,b\n", tmp_path / name, bucket, serializer=write, wait=True)
    assert seen[0].endswith(".csv.gz") and len(os.fsencode(seen[0])) <= 255
    assert (tmp_path / name).read_bytes() == b"a,b\n"


def test_a_large_download_to_a_255_byte_name_fits_s3transfers_own_temp_name(tmp_path, bucket, raw, monkeypatch):
    import s3bp.remote

    monkeypatch.setattr(s3bp.remote, "MULTIPART_THRESHOLD", 8 * PROBE)
    name = "n" * 251 + ".pkl"
    blob = pickle.dumps(b"\0" * (9 * PROBE))  # above the multipart threshold: s3transfer writes TMP.XXXXXXXX first
    raw.put_object(Bucket=bucket, Key=name, Body=blob)
    assert s3bp.load_object(tmp_path / name, bucket) == pickle.loads(blob)
    assert os.listdir(tmp_path) == [name]


# -- 3. temp files are created exclusively; links ------------------------------------


def test_the_config_temp_file_never_writes_through_a_planted_symlink(tmp_path, isolated, monkeypatch):
    config = isolated / "config" / "config.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, config.with_name(f".{config.name}.{os.getpid()}.tmp"))  # the name s3bp 0.2 wrote to
    s3bp.set_default_bucket("some-bucket")
    assert victim.read_text() == "precious"
    assert "some-bucket" in config.read_text() and not config.is_symlink()


def test_saving_to_a_users_symlink_replaces_the_file_it_points_to_and_keeps_the_link(tmp_path, bucket, machine):
    real = tmp_path / "big-disk" / "model.pkl"
    real.parent.mkdir()
    real.write_bytes(pickle.dumps("old"))
    link = tmp_path / "work" / "model.pkl"
    link.parent.mkdir()
    link.symlink_to(real)
    s3bp.save_object("new", link, bucket, wait=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert pickle.loads(real.read_bytes()) == "new"
    assert _debris(link.parent) == [] and _debris(real.parent) == []
    # a download of a newer version goes through the link too
    other = machine("other", default_bucket=bucket)
    other.store.save_object("newer", other.root / "model.pkl", wait=True)
    os.utime(real, (1, 1))  # our copy is old
    assert s3bp.load_object(link, bucket) == "newer"
    assert link.is_symlink() and pickle.loads(real.read_bytes()) == "newer"


def test_a_symlink_planted_at_the_remote_copy_of_a_conflict_is_replaced_not_followed(tmp_path, bucket, machine):
    a, b = machine("a", bucket=bucket), machine("b", bucket=bucket)
    b.write("shared.txt", "base")
    assert b.store.push(b.dir).ok
    assert a.store.pull(a.dir).ok
    a.write("shared.txt", "from a")
    assert a.store.push(a.dir).ok
    b.write("shared.txt", "from b")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, b.dir / "shared.txt.s3bp-remote")
    report = b.store.sync(b.dir)
    assert report.conflicts == [str(b.dir / "shared.txt")]
    assert victim.read_text() == "precious"
    assert not (b.dir / "shared.txt.s3bp-remote").is_symlink() and b.read("shared.txt.s3bp-remote") == "from a"


# -- 4. permission bits --------------------------------------------------------------


@pytest.fixture
def umask_027():
    """Run the test under umask 027 (new files 0640)."""
    with umask(0o027):
        yield


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_new_file_gets_the_umask_and_a_replaced_file_keeps_its_bits(tmp_path, bucket, machine, umask_027):
    path = tmp_path / "f.pkl"
    s3bp.save_object(1, path, bucket, wait=True)
    assert _mode(path) == 0o640  # 0666 less the umask, not mkstemp's 0600
    os.chmod(path, 0o604)
    s3bp.save_object(2, path, bucket, wait=True)
    assert _mode(path) == 0o604
    os.chmod(path, 0o660)
    other = machine("other", default_bucket=bucket)
    other.store.save_object(3, other.root / "f.pkl", wait=True)
    os.utime(path, (1, 1))
    assert s3bp.load_object(path, bucket) == 3  # downloaded over it
    assert _mode(path) == 0o660


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_pulled_file_keeps_its_bits(tmp_path, bucket, machine, umask_027):
    a, b = machine("a", bucket=bucket), machine("b", bucket=bucket)
    a.write("x.txt", "one")
    assert a.store.push(a.dir).ok
    assert b.store.pull(b.dir).ok
    os.chmod(b.dir / "x.txt", 0o600)
    a.write("x.txt", "two")
    assert a.store.push(a.dir).ok
    assert b.store.pull(b.dir).downloaded == [str(b.dir / "x.txt")]
    assert b.read("x.txt") == "two" and _mode(b.dir / "x.txt") == 0o600


# -- 5. two pulls of one folder at once ----------------------------------------------

_PULLER = """
import json, os, sys, time
import s3bp

root, folder, go = sys.argv[1:4]
store = s3bp.Store(config=os.path.join(root, "config.yml"), state_dir=os.path.join(root, "state"))
store.client()
open(go + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
report = store.pull(folder, progress=False)
print(json.dumps({
    "conflicts": report.conflicts, "failed": report.failed, "downloaded": report.downloaded,
    "beside": getattr(report, "beside", None), "skipped": report.skipped,
}))
"""


@pytest.mark.skipif(os.name != "posix", reason="processes racing on one POSIX directory")
def test_two_processes_pulling_one_folder_at_once_report_no_conflicts(tmp_path, bucket, raw, machine):
    m = machine("m", bucket=bucket)
    m.store.pending_uploads()  # the state database exists already, as it does for a user of s3bp
    count = 200
    for i in range(count):
        raw.put_object(Bucket=bucket, Key=f"data/d{i % 4}/f{i:03d}.txt", Body=f"file {i}\n".encode() * (1 + i % 7))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PULLER, str(m.root), str(m.dir), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < 2 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert [r["conflicts"] for r in reports] == [[], []]  # bytes identical to what the other just placed are no conflict
    assert [r["failed"] for r in reports] == [[], []]
    assert [r["beside"] for r in reports] == [[], []]
    assert len(m.tree()) == count
    for i in range(count):
        assert m.read(f"d{i % 4}/f{i:03d}.txt") == f"file {i}\n" * (1 + i % 7)
    assert all(_debris(m.dir / f"d{j}") == [] for j in range(4))
    again = m.store.pull(m.dir, progress=False)  # both recorded what they placed: nothing left to do
    assert again.ok and again.downloaded == [] and again.unchanged == count


def test_a_conflict_of_a_sync_says_its_remote_copy_was_made(tmp_path, bucket, machine):
    a, b = machine("a", bucket=bucket), machine("b", bucket=bucket)
    a.write("x.txt", "base")
    assert a.store.push(a.dir).ok and b.store.pull(b.dir).ok
    a.write("x.txt", "from a")
    assert a.store.push(a.dir).ok
    b.write("x.txt", "from b")
    report = b.store.sync(b.dir)
    assert report.conflicts == [str(b.dir / "x.txt")]
    assert report.beside == [str(b.dir / "x.txt")] and b.read("x.txt.s3bp-remote") == "from a"
    assert b.store.push(b.dir).beside == []  # a push leaves the S3 side where it is


def test_keep_remote_on_a_255_byte_name_moves_yours_aside_under_a_shorter_name(tmp_path, bucket, raw):
    name = "r" * 251 + ".pkl"
    path = tmp_path / name
    s3bp.save_object("mine v1", path, bucket, wait=True)
    raw.put_object(Bucket=bucket, Key=name, Body=__import__("pickle").dumps("theirs"))
    with pytest.raises(s3bp.ConflictError):
        s3bp.save_object("mine v2", path, bucket, wait=True)
    s3bp.resolve_conflict(path, keep="remote", bucket_name=bucket)
    assert s3bp.load_object(path, bucket) == "theirs" and s3bp.pending_uploads() == []
    [aside] = [p for p in tmp_path.iterdir() if p.name.endswith(".s3bp-local")]
    assert len(aside.name.encode()) <= 255 and __import__("pickle").loads(aside.read_bytes()) == "mine v2"


def test_a_live_processs_temp_file_is_never_swept_whatever_the_clocks():
    from s3bp.localfiles import STALE_AFTER, temp_is_stale, temp_name

    name = temp_name("x.pkl", os.getpid(), "abcdef")
    assert not temp_is_stale(name, changed=0.0, now=10 * STALE_AFTER)  # our own, however old it looks
    dead = temp_name("x.pkl", 2**22 + 12345, "abcdef")
    assert temp_is_stale(dead, changed=100.0, now=100.0, alive=lambda pid: False)


def test_a_symlink_planted_at_the_uploaders_files_is_replaced_not_followed(tmp_path, isolated):
    from s3bp.locks import open_own

    precious = tmp_path / "precious.txt"
    precious.write_text("precious")
    planted = tmp_path / "uploader.pid"
    planted.symlink_to(precious)
    fd = open_own(planted, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"123")
    os.close(fd)
    assert precious.read_text() == "precious" and not planted.is_symlink() and planted.read_text() == "123"
