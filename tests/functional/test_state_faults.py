"""Faults of the disk and of the state directory: a full disk, a read-only state directory, a damaged state database.

No public call lets a raw OSError, sqlite3 or botocore error out: each is an
S3bpError naming the path and what to do. A load needs no writable state
directory; a save refuses before writing anything when it has none. A damaged
database is set aside and rebuilt, and no journaled save is lost silently.
State files are 0600 and their directories 0700 whatever the umask.

The full-disk and read-only cases mount a small tmpfs or a read-only bind
mount (root, as in CI); where mounting is not permitted they skip themselves.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import stat
import subprocess
import uuid
import warnings
from pathlib import Path

import pytest

import s3bp
from s3bp import cli
from s3bp.errors import S3bpError

from ..support import damage_pages, umask


def fresh_store() -> None:
    """Close the default store (its database connections and owner lock) so that the next call opens a new one."""
    old = s3bp.set_default_store(None)
    if old is not None:
        old.close()


def _mount(args: list[str], target: Path) -> None:
    """Run ``mount args``; skip the test (with the reason) where mounting is not permitted."""
    try:
        done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root, as in CI): {done.stderr.strip()}")


def _unmount(target: Path) -> None:
    """Unmount ``target``, lazily if something still has a file open there."""
    fresh_store()
    if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted at ``path`` (always unmounted after)."""
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs"], path)
    try:
        yield path
    finally:
        _unmount(path)


@contextlib.contextmanager
def read_only_view(src: Path, dst: Path):
    """``src`` seen read-only at ``dst`` through a bind mount (chmod does not stop root; a read-only mount does)."""
    dst.mkdir(parents=True, exist_ok=True)
    _mount(["--bind", "-o", "ro", str(src)], dst)
    try:
        if os.access(dst, os.W_OK):  # an older mount(8) binds read-write first: remount it read-only
            subprocess.run(["mount", "-o", "remount,ro,bind", str(dst)], capture_output=True)
        if os.access(dst, os.W_OK):
            pytest.skip("cannot make a read-only bind mount here")
        yield dst
    finally:
        _unmount(dst)


def fill(directory: Path) -> None:
    """Fill the file system holding ``directory`` to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)


def no_temp_files(directory: Path) -> bool:
    """Whether no s3bp temp file is left in ``directory``."""
    return not [n for n in os.listdir(directory) if n.startswith(".s3bp-")]


def use_state_dir(monkeypatch, path: Path) -> None:
    """Point S3BP_STATE_DIR at ``path`` with a new default store."""
    fresh_store()
    monkeypatch.setenv("S3BP_STATE_DIR", str(path))


def state_warnings(caught) -> list[str]:
    """The messages of the warnings about the state directory among ``caught``."""
    return [str(w.message) for w in caught if w.category.__name__ == "StateWarning"]


def pending_save(tmp_path: Path, obj: object, name: str = "pending.pkl") -> tuple[Path, str]:
    """Save ``obj`` to a bucket that does not exist yet: the save stays journaled (held), its snapshot in the spool.

    Returns the local path and the bucket (create it to let the upload through).
    """
    missing = f"s3bp-test-{uuid.uuid4().hex[:16]}"
    path = tmp_path / name
    with pytest.raises(S3bpError):
        s3bp.save_object(obj, path, missing, wait=True)
    fresh_store()  # the owner exits: its journal entry is an orphan for the next process
    return path, missing


def spool_files(state: Path) -> dict[str, bytes]:
    """The snapshots in the spool, by name."""
    spool = state / "spool"
    return {n: (spool / n).read_bytes() for n in os.listdir(spool)} if spool.is_dir() else {}


# -- 5: a full disk ---------------------------------------------------------------------------------


def test_a_full_state_disk_fails_the_save_clearly_and_keeps_everything_else(tmp_path, bucket, raw, monkeypatch):
    disk = tmp_path / "disk"
    with small_disk(disk):
        state = disk / "state"
        use_state_dir(monkeypatch, state)
        path = tmp_path / "data" / "model.pkl"
        s3bp.save_object({"v": 1}, path, bucket, wait=True)
        fill(disk)
        with pytest.raises(S3bpError) as caught:
            s3bp.save_object({"v": 2, "blob": os.urandom(300_000)}, path, bucket, wait=True)
        message = str(caught.value)
        assert str(state) in message and "S3BP_STATE_DIR" in message, message
        assert "space" in message.lower(), message
        assert pickle.loads(path.read_bytes()) == {"v": 1}  # the old file is kept
        assert no_temp_files(path.parent)
        assert pickle.loads(raw.get_object(Bucket=bucket, Key="model.pkl")["Body"].read()) == {"v": 1}
        # a load still works, even if its sync record cannot be written
        raw.put_object(Bucket=bucket, Key="model.pkl", Body=pickle.dumps({"v": 3}))
        os.utime(path, (0, 0))  # older than S3's copy
        fresh_store()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert s3bp.load_object(path, bucket) == {"v": 3}


def test_a_full_local_disk_fails_save_and_load_clearly_and_keeps_the_old_file(tmp_path, bucket, raw):
    disk = tmp_path / "disk"
    with small_disk(disk):
        path = disk / "model.pkl"
        s3bp.save_object({"v": 1}, path, bucket, wait=True)
        fill(disk)
        with pytest.raises(S3bpError) as caught:
            s3bp.save_object({"v": 2, "blob": os.urandom(300_000)}, path, bucket, wait=True)
        assert str(path) in str(caught.value) and "space" in str(caught.value).lower(), str(caught.value)
        assert pickle.loads(path.read_bytes()) == {"v": 1}
        assert no_temp_files(disk)
        assert s3bp.pending_uploads() == []  # nothing journaled for a save that never happened
        raw.put_object(Bucket=bucket, Key="model.pkl", Body=pickle.dumps({"v": 3, "blob": os.urandom(300_000)}))
        os.utime(path, (0, 0))
        with pytest.raises(S3bpError) as caught:
            s3bp.load_object(path, bucket)
        assert "space" in str(caught.value).lower(), str(caught.value)
        assert pickle.loads(path.read_bytes()) == {"v": 1}
        assert no_temp_files(disk)


# -- 5: a state directory that cannot be written ------------------------------------------------------


def test_a_read_only_state_dir_still_loads_and_refuses_saves_before_writing(tmp_path, bucket, raw, monkeypatch, capsys):
    state_rw, state_ro = tmp_path / "state-rw", tmp_path / "state-ro"
    use_state_dir(monkeypatch, state_rw)
    path = tmp_path / "model.pkl"
    s3bp.save_object({"v": 1}, path, bucket, wait=True)
    assert s3bp.load_object(path, bucket) == {"v": 1}
    waiting, missing = pending_save(tmp_path, {"waiting": 1})
    with read_only_view(state_rw, state_ro):
        use_state_dir(monkeypatch, state_ro)
        raw.put_object(Bucket=bucket, Key="model.pkl", Body=pickle.dumps({"v": 2}))
        os.utime(path, (0, 0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert s3bp.load_object(path, bucket) == {"v": 2}
            assert s3bp.load_object(path, bucket) == {"v": 2}
        said = state_warnings(caught)
        assert len(said) == 1 and str(state_ro) in said[0] and "S3BP_STATE_DIR" in said[0], said
        [pending] = s3bp.pending_uploads()  # the journal can still be read (its owner's lock file too)
        assert (pending.path, pending.bucket) == (str(waiting), missing) and pending.state.startswith("orphaned"), pending
        before = path.read_bytes()
        with pytest.raises(S3bpError) as refused:
            s3bp.save_object({"v": 3}, path, bucket, wait=True)
        message = str(refused.value)
        assert str(state_ro) in message and "S3BP_STATE_DIR" in message, message
        assert path.read_bytes() == before and no_temp_files(tmp_path)  # nothing written
        assert pickle.loads(raw.get_object(Bucket=bucket, Key="model.pkl")["Body"].read()) == {"v": 2}
        capsys.readouterr()
        assert cli.main(["flush"]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "S3BP_STATE_DIR" in err, err


def test_a_state_dir_that_cannot_be_created_still_loads_and_refuses_saves(tmp_path, bucket, raw, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    state = blocker / "state"
    use_state_dir(monkeypatch, state)
    raw.put_object(Bucket=bucket, Key="model.pkl", Body=pickle.dumps({"v": 1}))
    path = tmp_path / "model.pkl"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert s3bp.load_object(path, bucket) == {"v": 1}
        assert s3bp.load_object(path, bucket) == {"v": 1}
    said = state_warnings(caught)
    assert len(said) == 1 and str(state) in said[0], said
    with pytest.raises(S3bpError) as refused:
        s3bp.save_object({"v": 2}, path, bucket)
    assert str(state) in str(refused.value) and "S3BP_STATE_DIR" in str(refused.value), str(refused.value)
    assert pickle.loads(path.read_bytes()) == {"v": 1} and no_temp_files(tmp_path)
    capsys.readouterr()
    assert cli.main(["status"]) == 0  # reading the (absent) journal needs no state directory
    assert cli.main(["flush"]) == 1
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("s3bp flush:")]) == 1, err


def test_a_read_only_config_dir_still_loads_and_saves(tmp_path, bucket, monkeypatch):
    config_rw, config_ro = tmp_path / "config-rw", tmp_path / "config-ro"
    config_rw.mkdir()
    (config_rw / "config.yml").write_text(f"default_bucket: {bucket}\n")
    with read_only_view(config_rw, config_ro):
        fresh_store()
        monkeypatch.setenv("S3BP_CONFIG", str(config_ro / "config.yml"))
        path = tmp_path / "model.pkl"
        s3bp.save_object({"v": 1}, path, wait=True)
        fresh_store()
        assert s3bp.load_object(path) == {"v": 1}
        assert cli.main(["default-bucket", "other-bucket"]) == 1  # one line, exit 1


def test_writing_a_read_only_config_is_a_config_error(tmp_path, bucket, monkeypatch):
    config_rw, config_ro = tmp_path / "config-rw", tmp_path / "config-ro"
    config_rw.mkdir()
    with read_only_view(config_rw, config_ro):
        fresh_store()
        monkeypatch.setenv("S3BP_CONFIG", str(config_ro / "config.yml"))
        with pytest.raises(S3bpError, match="S3BP_CONFIG"):
            s3bp.set_default_bucket(bucket)


# -- 6: a damaged state database ------------------------------------------------------------------


def test_a_garbage_database_is_set_aside_rebuilt_and_said_once(tmp_path, bucket, raw, capsys):
    state = Path(os.environ["S3BP_STATE_DIR"])
    path = tmp_path / "model.pkl"
    s3bp.save_object({"v": 1}, path, bucket, wait=True)
    fresh_store()
    (state / "state.sqlite3").write_bytes(os.urandom(20_000))
    capsys.readouterr()
    assert s3bp.load_object(path, bucket) == {"v": 1}
    assert s3bp.load_object(path, bucket) == {"v": 1}
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "was damaged" in line]) == 1, err
    assert str(state / "state.sqlite3") in err, err
    assert len(glob.glob(str(state / "state.sqlite3.damaged-*"))) == 1
    s3bp.save_object({"v": 2}, path, bucket, wait=True)
    assert pickle.loads(raw.get_object(Bucket=bucket, Key="model.pkl")["Body"].read()) == {"v": 2}
    fresh_store()
    capsys.readouterr()
    assert s3bp.load_object(path, bucket) == {"v": 2}
    assert "damaged" not in capsys.readouterr().err  # rebuilt for good


def test_journaled_saves_survive_damage_to_the_sync_records(tmp_path, bucket, raw, make_bucket, capsys):
    state = Path(os.environ["S3BP_STATE_DIR"])
    s3bp.save_object({"synced": 1}, tmp_path / "synced.pkl", bucket, wait=True)  # a sync record
    path, missing = pending_save(tmp_path, {"pending": 1})
    snapshots = spool_files(state)
    assert len(snapshots) == 1
    damage_pages(state / "state.sqlite3", "records")
    capsys.readouterr()
    [entry] = s3bp.pending_uploads()
    assert entry.path == str(path) and entry.bucket == missing
    assert "Kept 1 journaled upload" in capsys.readouterr().err
    assert spool_files(state) == snapshots  # the repair deletes no snapshot
    raw.create_bucket(Bucket=missing)
    s3bp.flush()
    assert pickle.loads(raw.get_object(Bucket=missing, Key="pending.pkl")["Body"].read()) == {"pending": 1}
    assert s3bp.load_object(tmp_path / "synced.pkl", bucket) == {"synced": 1}


def test_snapshots_whose_journal_is_unreadable_are_kept_where_the_user_is_told(tmp_path, bucket, capsys):
    state = Path(os.environ["S3BP_STATE_DIR"])
    path, _ = pending_save(tmp_path, {"pending": "precious"})
    snapshots = spool_files(state)
    (state / "state.sqlite3").write_bytes(b"\0garbage" * 4096)
    capsys.readouterr()
    s3bp.save_object({"other": 1}, tmp_path / "other.pkl", bucket, wait=True)  # s3bp keeps working
    err = capsys.readouterr().err
    [kept] = glob.glob(str(state / "recovered-*"))
    assert kept in err and "README.txt" in err, err
    assert {n: (Path(kept) / n).read_bytes() for n in snapshots} == snapshots
    assert (Path(kept) / "README.txt").exists()
    assert pickle.loads(next(iter(snapshots.values()))) == {"pending": "precious"} == pickle.loads(path.read_bytes())
    assert set(snapshots) <= set(spool_files(state))  # the spool itself is left as it was


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated-half", "truncated-to-nothing"])
def test_a_truncated_database_loses_no_journaled_save(tmp_path, bucket, raw, capsys, keep):
    state = Path(os.environ["S3BP_STATE_DIR"])
    s3bp.save_object({"synced": 1}, tmp_path / "synced.pkl", bucket, wait=True)
    path, missing = pending_save(tmp_path, {"pending": 2})
    snapshot = next(iter(spool_files(state).values()))
    db = state / "state.sqlite3"
    os.truncate(db, int(db.stat().st_size * keep))
    capsys.readouterr()
    assert s3bp.load_object(tmp_path / "synced.pkl", bucket) == {"synced": 1}
    err = capsys.readouterr().err
    journaled = [p for p in s3bp.pending_uploads() if p.path == str(path)]
    kept = [f for f in glob.glob(str(state / "recovered-*" / "*")) if Path(f).read_bytes() == snapshot]
    assert journaled or kept, err  # never lost silently: still journaled, or kept where the message says
    assert str(db) in err and (not kept or os.path.dirname(kept[0]) in err), err
    if journaled:
        raw.create_bucket(Bucket=missing)
        s3bp.flush()
        assert pickle.loads(raw.get_object(Bucket=missing, Key="pending.pkl")["Body"].read()) == {"pending": 2}


def test_the_cli_reports_a_state_problem_in_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    use_state_dir(monkeypatch, blocker / "state")
    capsys.readouterr()
    assert cli.main(["flush"]) == 1
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("s3bp flush:")]
    assert len(failed) == 1 and "S3BP_STATE_DIR" in failed[0], err
    assert all(line.startswith("s3bp") for line in err.splitlines()), err  # a warning is one line too, with no source line


# -- 9: private state files ---------------------------------------------------------------------------


@pytest.fixture
def open_umask():
    """Run under umask 000 (a file is 0666 unless its creator says otherwise)."""
    with umask(0):
        yield


def _modes(root: Path) -> dict[str, str]:
    """The permission bits of everything under ``root``, by relative path."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(base, name)
            out[os.path.relpath(full, root)] = oct(stat.S_IMODE(os.lstat(full).st_mode))
    return out


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_state_files_are_0600_and_their_directories_0700_whatever_the_umask(tmp_path, bucket, open_umask):
    state = Path(os.environ["S3BP_STATE_DIR"])
    s3bp.save_object({"v": 1}, tmp_path / "synced.pkl", bucket, wait=True)
    pending_save(tmp_path, {"v": 2})  # leaves a snapshot in the spool
    s3bp.pending_uploads()
    modes = _modes(state)
    assert any(name.startswith("spool" + os.sep) for name in modes), modes
    wrong = {n: m for n, m in modes.items() if m != ("0o700" if (state / n).is_dir() else "0o600")}
    assert not wrong, wrong
    assert oct(stat.S_IMODE(state.stat().st_mode)) == "0o700"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_state_dir_left_open_by_an_older_version_is_made_private(tmp_path, bucket):
    state = Path(os.environ["S3BP_STATE_DIR"])
    for sub in ("", "spool", "owners", "locks"):
        (state / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(state / sub, 0o755)
    s3bp.save_object(1, tmp_path / "f.pkl", bucket, wait=True)
    modes = _modes(state)
    assert {n: m for n, m in modes.items() if (state / n).is_dir()} == {"spool": "0o700", "owners": "0o700", "locks": "0o700"}
    assert oct(stat.S_IMODE(state.stat().st_mode)) == "0o700"
