"""The state database (sync records, upload journal) is private to its user: mode 0600 whatever the umask."""

from __future__ import annotations

import os
import stat

import pytest

from s3bp.freshness import SyncRecord
from s3bp.index import StateDB

from ..support import umask

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def umask_022():
    """Run the test under the common umask 022 (files 0644 by default)."""
    with umask(0o022):
        yield


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _record(path: str) -> SyncRecord:
    return SyncRecord(path=path, endpoint="http://127.0.0.1:1", bucket="b", key="k", etag='"e"', size=1, mtime_ns=1, verified_at=1.0)


def test_new_state_db_and_its_wal_and_shm_files_are_0600(tmp_path, umask_022):
    path = tmp_path / "state.sqlite3"
    db = StateDB(path)
    try:
        db.put_record(_record(str(tmp_path / "f")))
        assert db.record(str(tmp_path / "f")) is not None
        files = [path, tmp_path / "state.sqlite3-wal", tmp_path / "state.sqlite3-shm"]
        assert all(f.exists() for f in files), sorted(p.name for p in tmp_path.iterdir())
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        db.close()


def test_a_state_db_left_readable_by_an_older_version_is_made_private(tmp_path, umask_022):
    path = tmp_path / "state.sqlite3"
    StateDB(path).close()
    os.chmod(path, 0o644)
    db = StateDB(path)
    try:
        db.put_record(_record(str(tmp_path / "f")))
        assert _mode(path) == 0o600
        assert _mode(tmp_path / "state.sqlite3-wal") == 0o600
    finally:
        db.close()
