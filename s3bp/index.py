"""The local state database: sync records and the upload journal.

One SQLite file in the state directory, in WAL mode, shared safely by every
thread and process that uses the same state directory.

``records``
    Per local path, what we last uploaded or downloaded: the object's ETag
    and the local file's (size, mtime_ns) at that moment.
``journal``
    Every save not yet known to be in S3: what to upload, from which spool
    file, on behalf of which owner (a process holding an owner lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .freshness import SyncRecord

if TYPE_CHECKING:
    import sqlite3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    path TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    verified_at REAL NOT NULL,
    saved_ns INTEGER NOT NULL DEFAULT 0,
    part_size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_object ON records (bucket, key, endpoint);
CREATE TABLE IF NOT EXISTS journal (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    path TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    profile TEXT,
    region TEXT,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    spool TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    conflict TEXT NOT NULL DEFAULT 'raise',
    extra_args TEXT,
    held INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS journal_path ON journal (path);
CREATE INDEX IF NOT EXISTS journal_owner ON journal (owner);
CREATE INDEX IF NOT EXISTS journal_object ON journal (bucket, key);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint TEXT PRIMARY KEY,
    conditional INTEGER NOT NULL,
    checked_at REAL NOT NULL
);
"""


_ADDED_COLUMNS = (("conflict", "TEXT NOT NULL DEFAULT 'raise'"), ("extra_args", "TEXT"), ("held", "INTEGER NOT NULL DEFAULT 0"))
_ADDED_RECORD_COLUMNS = (("part_size", "INTEGER NOT NULL DEFAULT 0"),)


@dataclass(frozen=True)
class JournalEntry:
    """One save waiting to reach S3."""

    id: str
    owner: str
    seq: int
    path: str
    endpoint: str
    profile: str | None
    region: str | None
    bucket: str
    key: str
    spool: str
    size: int
    mtime_ns: int
    pid: int
    created: float
    attempts: int = 0
    last_error: str | None = None
    conflict: str = "raise"  # or "overwrite": what to do when S3 changed since our last sync
    extra_args: str | None = None  # JSON of the upload's extra arguments (ContentType, SSE, ...)
    held: int = 0  # 1 after a failure no retry can mend (no bucket, access denied, conflict): retried only when asked

    @property
    def object_id(self) -> tuple[str, str, str]:
        """The S3 object this entry writes: (endpoint, bucket, key)."""
        return (self.endpoint, self.bucket, self.key)


_JOURNAL_COLUMNS = ", ".join(JournalEntry.__dataclass_fields__)
_RECORD_COLUMNS = ", ".join(SyncRecord.__dataclass_fields__)


class StateDB:
    """Thread-safe access to the state database.

    Parameters
    ----------
    path
        The SQLite file; its directory must exist.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        _create_private(self.path)
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
            have = {row[1] for row in conn.execute("PRAGMA table_info(journal)")}
            for column, decl in _ADDED_COLUMNS:
                if column not in have:  # a state database made by s3bp 0.2.0
                    conn.execute(f"ALTER TABLE journal ADD COLUMN {column} {decl}")
            have = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
            for column, decl in _ADDED_RECORD_COLUMNS:
                if column not in have:  # a state database made before records kept the part size
                    try:
                        conn.execute(f"ALTER TABLE records ADD COLUMN {column} {decl}")
                    except Exception as exc:  # sqlite3.OperationalError: another process added it just now
                        if "duplicate column" not in str(exc):
                            raise

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import sqlite3

            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit survives the process being killed; only power loss can undo the last ones.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, taken at once (BEGIN IMMEDIATE)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _write(self, sql: str, params: tuple = ()) -> int:
        """Run one statement in its own transaction; return the rows changed."""
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query."""
        return self._conn().execute(sql, params).fetchall()

    # -- sync records -----------------------------------------------------

    def put_record(self, rec: SyncRecord) -> None:
        """Insert or replace the record of ``rec.path``."""
        self.put_records([rec])

    def put_records(self, recs: list[SyncRecord]) -> None:
        """Insert or replace several records in one transaction."""
        marks = ", ".join("?" * len(SyncRecord.__dataclass_fields__))
        with self._transaction() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO records ({_RECORD_COLUMNS}) VALUES ({marks})", [tuple(r.__dict__.values()) for r in recs])

    def complete_upload(self, rec: SyncRecord, entry_id: str) -> bool:
        """In one transaction: drop a journal entry and record its upload, unless a later save is recorded.

        Returns
        -------
        bool
            False when a newer upload of the object was recorded first.
        """
        marks = ", ".join("?" * len(SyncRecord.__dataclass_fields__))
        with self._transaction() as conn:
            conn.execute("DELETE FROM journal WHERE id = ?", (entry_id,))
            newest = conn.execute(
                "SELECT max(saved_ns) FROM records WHERE bucket = ? AND key = ? AND endpoint = ?",
                (rec.bucket, rec.key, rec.endpoint),
            ).fetchone()[0]
            fresh = newest is None or newest <= rec.saved_ns
            if fresh:
                conn.execute(f"INSERT OR REPLACE INTO records ({_RECORD_COLUMNS}) VALUES ({marks})", tuple(rec.__dict__.values()))
        return fresh

    def newest_upload(self, endpoint: str, bucket: str, key: str) -> int:
        """The save time (ns) of the newest recorded upload of an object, or 0."""
        rows = self._query(
            "SELECT max(saved_ns) FROM records WHERE bucket = ? AND key = ? AND endpoint = ?", (bucket, key, endpoint)
        )
        return rows[0][0] or 0

    def records_under(self, directory: str, sep: str = "/") -> list[SyncRecord]:
        """The records of every path below ``directory`` (a normalised absolute path)."""
        low, high = _subtree_range(directory, sep)
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path >= ? AND path < ?", (low, high))
        return [SyncRecord(*r) for r in rows]

    def pending_under(self, directory: str, sep: str = "/") -> set[str]:
        """The paths below ``directory`` with a save waiting in the journal."""
        low, high = _subtree_range(directory, sep)
        return {r[0] for r in self._query("SELECT DISTINCT path FROM journal WHERE path >= ? AND path < ?", (low, high))}

    def delete_record(self, path: str) -> None:
        """Forget the record of ``path``."""
        self._write("DELETE FROM records WHERE path = ?", (path,))

    def touch(self, path: str, verified_at: float) -> None:
        """Note that the record of ``path`` was confirmed current at ``verified_at``."""
        self._write("UPDATE records SET verified_at = ? WHERE path = ?", (verified_at, path))

    # -- endpoints --------------------------------------------------------

    def endpoint_mode(self, endpoint: str) -> tuple[bool, float] | None:
        """Whether ``endpoint`` honours conditional writes, and when that was checked; None if never."""
        rows = self._query("SELECT conditional, checked_at FROM endpoints WHERE endpoint = ?", (endpoint,))
        return (bool(rows[0][0]), rows[0][1]) if rows else None

    def set_endpoint_mode(self, endpoint: str, conditional: bool, checked_at: float) -> None:
        """Remember whether ``endpoint`` honours conditional writes."""
        self._write("INSERT OR REPLACE INTO endpoints (endpoint, conditional, checked_at) VALUES (?, ?, ?)", (endpoint, int(conditional), checked_at))

    def endpoint_modes(self) -> dict[str, tuple[bool, float]]:
        """Every endpoint checked so far: whether it honours conditional writes, and when that was checked."""
        return {e: (bool(c), t) for e, c, t in self._query("SELECT endpoint, conditional, checked_at FROM endpoints ORDER BY endpoint")}

    # -- upload journal ---------------------------------------------------

    def add_entry(self, entry: JournalEntry) -> JournalEntry:
        """Journal a save (durably, before the save returns), giving it the next save sequence number.

        The sequence orders the saves of every process sharing this state
        directory; it never depends on the wall clock. A database made by s3bp
        0.2 (which used wall-clock nanoseconds) continues above its largest value.

        Returns
        -------
        JournalEntry
            ``entry`` with its ``seq``.
        """
        marks = ", ".join("?" * len(JournalEntry.__dataclass_fields__))
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
            if row is None:
                start = conn.execute(
                    "SELECT max(coalesce((SELECT max(seq) FROM journal), 0), coalesce((SELECT max(saved_ns) FROM records), 0))"
                ).fetchone()[0]
                conn.execute("INSERT INTO counters (name, value) VALUES ('seq', ?)", (start + 1,))
                seq = start + 1
            else:
                seq = row[0] + 1
                conn.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (seq,))
            entry = dataclasses.replace(entry, seq=seq)
            conn.execute(f"INSERT INTO journal ({_JOURNAL_COLUMNS}) VALUES ({marks})", tuple(entry.__dict__.values()))
        return entry

    def remove_entry(self, entry_id: str) -> None:
        """Drop a journal entry (uploaded or superseded)."""
        self._write("DELETE FROM journal WHERE id = ?", (entry_id,))

    def fail_entry(self, entry_id: str, error: str, *, held: bool = False) -> None:
        """Keep a failed entry, counting the attempt and its error; ``held`` ones wait for an explicit retry."""
        self._write("UPDATE journal SET attempts = attempts + 1, last_error = ?, held = ? WHERE id = ?", (error, int(held), entry_id))

    def release_held(self, owner: str) -> None:
        """Let ``owner``'s held entries be retried (an explicit flush)."""
        self._write("UPDATE journal SET held = 0 WHERE owner = ? AND held = 1", (owner,))

    def retarget(self, entry_id: str, *, endpoint: str, profile: str | None, region: str | None, bucket: str, key: str) -> None:
        """Point a journal entry at another endpoint, bucket or key (the settings were fixed since the save)."""
        self._write(
            "UPDATE journal SET endpoint = ?, profile = ?, region = ?, bucket = ?, key = ?, held = 0 WHERE id = ?",
            (endpoint, profile, region, bucket, key, entry_id),
        )

    def entries(self, owner: str | None = None) -> list[JournalEntry]:
        """Journal entries, oldest save first; only ``owner``'s when given."""
        if owner is None:
            rows = self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal ORDER BY seq")
        else:
            rows = self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE owner = ? ORDER BY seq", (owner,))
        return [JournalEntry(*r) for r in rows]

    def siblings(self, entry: JournalEntry) -> list[JournalEntry]:
        """The other entries of the same owner and object as ``entry``, oldest first."""
        rows = self._query(
            f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE bucket = ? AND key = ? AND endpoint = ? AND owner = ? AND id != ? ORDER BY seq",
            (entry.bucket, entry.key, entry.endpoint, entry.owner, entry.id),
        )
        return [JournalEntry(*r) for r in rows]

    def owners(self) -> list[str]:
        """Every owner that has journal entries."""
        return [r[0] for r in self._query("SELECT DISTINCT owner FROM journal")]

    def adopt(self, old_owner: str, new_owner: str) -> int:
        """Move every entry of ``old_owner`` to ``new_owner``; return how many."""
        return self._write("UPDATE journal SET owner = ? WHERE owner = ?", (new_owner, old_owner))

    def record(self, path: str) -> SyncRecord | None:
        """The record of ``path``, if any."""
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path = ?", (path,))
        return SyncRecord(*rows[0]) if rows else None

    def entries_of(self, path: str) -> list[JournalEntry]:
        """The journal entries of one local path, oldest first."""
        return [JournalEntry(*r) for r in self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE path = ? ORDER BY seq", (path,))]

    def load_state(self, path: str) -> tuple[SyncRecord | None, bool]:
        """The record of ``path`` and whether it has a pending upload."""
        conn = self._conn()
        rows = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path = ?", (path,)).fetchall()
        pending = conn.execute("SELECT 1 FROM journal WHERE path = ? LIMIT 1", (path,)).fetchone()
        return (SyncRecord(*rows[0]) if rows else None), pending is not None


def _create_private(path: str) -> None:
    """Create the database file with mode 0600 (or make an older one 0600) before SQLite opens it.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, whatever the umask.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if os.name == "posix" and os.fstat(fd).st_mode & 0o077:
            # made by s3bp <= 0.2 with SQLite's default 0644; another user's file is left as it is
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o600)
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError, PermissionError):
                    os.chmod(path + suffix, 0o600)
    finally:
        os.close(fd)


def _subtree_range(directory: str, sep: str) -> tuple[str, str]:
    """The half-open string range holding exactly the paths below ``directory``."""
    low = directory.rstrip(sep) + sep
    return low, low[:-1] + chr(ord(sep) + 1)
