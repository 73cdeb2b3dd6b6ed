"""The local state database: sync records and the upload journal.

One SQLite file in the state directory, in WAL mode, shared safely by every
thread and process that uses the same state directory.

``records``
    Per local path, what we last uploaded or downloaded: the object's ETag
    and the local file's (size, mtime_ns) at that moment.
``journal``
    Every save not yet known to be in S3: what to upload, from which spool
    file, on behalf of which owner (a process holding an owner lock).

Nothing here lets a raw ``sqlite3`` or ``OSError`` out: they become
:class:`~s3bp.errors.StateError` naming the file and what to do. A state
directory that cannot be written is used read-only (:func:`open_state`), and a
damaged database is set aside and rebuilt at open, keeping every journaled
save it can still read (:meth:`StateDB._recover`); the spool is never emptied
by a repair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import sys
import threading
import time
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import LocalFileError, S3bpError, StateError, StateWarning
from .freshness import SyncRecord
from .locks import FileLock

if TYPE_CHECKING:
    import sqlite3

logger = logging.getLogger("s3bp")

_F = TypeVar("_F", bound=Callable[..., Any])
#: Beside the database: a damage seen while it was in use; the next open checks every page, not only the journal's.
_CHECK_MARK = ".needs-check"
#: Up to this size (bytes) opening checks every page (about 1 ms per MB); above it the journal's pages only.
_FULL_CHECK_MAX = 64 << 20
#: Journal rows past a damaged page are looked up one rowid at a time, up to this rowid.
_PROBE_LIMIT = 100_000

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
    part_size INTEGER NOT NULL DEFAULT 0,
    version_id TEXT,
    as_of REAL NOT NULL DEFAULT 0,
    args TEXT NOT NULL DEFAULT ''
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
    held INTEGER NOT NULL DEFAULT 0,
    base_version TEXT,
    etag TEXT
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
CREATE TABLE IF NOT EXISTS as_of_versions (
    endpoint TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (endpoint, bucket, key, at)
);
CREATE TABLE IF NOT EXISTS cache_uses (
    path TEXT PRIMARY KEY,
    used_at REAL NOT NULL,
    size INTEGER NOT NULL DEFAULT 0
);
"""


_ADDED_COLUMNS = (
    ("conflict", "TEXT NOT NULL DEFAULT 'raise'"), ("extra_args", "TEXT"), ("held", "INTEGER NOT NULL DEFAULT 0"),
    ("base_version", "TEXT"), ("etag", "TEXT"),
)  # fmt: skip
_ADDED_RECORD_COLUMNS = (
    ("part_size", "INTEGER NOT NULL DEFAULT 0"), ("version_id", "TEXT"), ("as_of", "REAL NOT NULL DEFAULT 0"), ("args", "TEXT NOT NULL DEFAULT ''"),
)  # fmt: skip


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
    base_version: str | None = None  # the S3 VersionId this machine last synced for the path when the save was journaled
    etag: str | None = None  # the snapshot's ETag, computed while it was copied when it may equal the synced version's

    @property
    def object_id(self) -> tuple[str, str, str]:
        """The S3 object this entry writes: (endpoint, bucket, key)."""
        return (self.endpoint, self.bucket, self.key)


#: The state database's file name in the state directory.
STATE_FILE = "state.sqlite3"

_JOURNAL_COLUMNS = ", ".join(JournalEntry.__dataclass_fields__)
_RECORD_COLUMNS = ", ".join(SyncRecord.__dataclass_fields__)


@functools.cache
def _has_returning() -> bool:
    """Whether this SQLite has ``UPDATE ... RETURNING`` (3.35 and later)."""
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 35)


class _Damaged(Exception):
    """``PRAGMA quick_check`` found damage."""


def _guarded(method: _F) -> _F:
    """Turn the SQLite errors of a :class:`StateDB` method into :class:`StateError` (naming the file and what to do).

    Damage met while the database is in use cannot be repaired under the
    connections of this and other processes: the error says so, and the next
    open checks every page (and rebuilds the file when no program has it open).
    """

    @functools.wraps(method)
    def run(self: StateDB, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if isinstance(exc, S3bpError) or type(exc).__module__ != "sqlite3":
                raise
            if _is_corrupt(exc) and self.writable:
                with contextlib.suppress(OSError):
                    os.close(os.open(self.path + _CHECK_MARK, os.O_WRONLY | os.O_CREAT, 0o600))
                raise StateError(
                    f"The s3bp state database {self.path} is damaged ({exc}). Restart the program: when no program is "
                    f"using it, s3bp sets the damaged file aside and rebuilds it, keeping journaled uploads."
                ) from exc
            raise _state_error(exc, self.path) from exc

    return run  # type: ignore[return-value]


class StateDB:
    """Thread-safe access to the state database.

    Opening it checks it (``PRAGMA quick_check``, once): a damaged file that no
    other program has open is set aside and rebuilt, keeping the journaled
    saves that can be read from it (see :meth:`_recover`). A database that
    cannot be written is opened read-only (or, when it cannot be read either,
    empty in memory): loads work without sync records and journal writes
    raise :class:`~s3bp.errors.StateError` with :attr:`problem`.

    Parameters
    ----------
    path
        The SQLite file; its directory must exist.
    unwritable
        Why the state directory cannot be written (e.g. "is on a read-only
        file system"); given, the database is opened read-only.
    """

    def __init__(self, path: str | Path, *, unwritable: str | None = None):
        import sqlite3

        self.path = str(path)
        self.dir = os.path.dirname(os.path.abspath(self.path))
        self.spool_dir = os.path.join(self.dir, "spool")
        #: False when journal writes are refused; :attr:`problem` then says why and what to do.
        self.writable = unwritable is None
        self.problem: str | None = None
        #: What a user should be told once about this state directory (read-only, repaired), or None.
        self.notice: str | None = None
        self._target, self._uri = self.path, False
        self._generation = 0
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writing = threading.Lock()
        self._record_trouble_said = False
        _LIVE.add(self)
        try:
            if unwritable is not None:
                self._open_read_only(unwritable)
            else:
                self._open()
        except sqlite3.Error as exc:
            self.close()
            raise _state_error(exc, self.path) from exc
        except OSError as exc:
            self.close()
            if isinstance(exc, StateError):
                raise
            raise disk_error(exc, state_dir=self.dir, target=None, doing="", default="state") from exc

    # -- opening ------------------------------------------------------------

    def _open(self) -> None:
        """Open (creating) the database under the open lock; check it; rebuild a missing or damaged one safely."""
        with _open_lock(self.dir):
            size = _size(self.path)
            if not size:  # a first use, or a database deleted or truncated to nothing: its journal is gone
                self._setup()
                self._keep_unjournaled(set(), "was missing" if size is None else "was empty")
                return
            marker = self.path + _CHECK_MARK
            full = size <= _FULL_CHECK_MAX or os.path.exists(marker)
            try:
                self._setup()
                self._check(full=full)
            except Exception as exc:
                if not _is_corrupt(exc):
                    raise
                self._recover(exc)
            else:
                if full:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(marker)

    def _setup(self) -> None:
        """Create the file (0600) and the schema, upgrading one made by an older version."""
        _create_private(self.path)
        conn = self._conn()
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

    def _check(self, *, full: bool) -> None:
        """Raise :class:`_Damaged` unless SQLite finds the database (or, not ``full``, the journal's pages) sound."""
        rows = self._conn().execute("PRAGMA quick_check" if full else "PRAGMA quick_check(journal)").fetchall()
        if rows != [("ok",)]:
            raise _Damaged("; ".join(str(r[0]) for r in rows[:3]))

    def _open_read_only(self, why: str) -> None:
        """Read the database without writing anything (not even its -shm file); empty in memory if it cannot be read."""
        import sqlite3

        self.writable = False
        self.problem = (
            f"s3bp cannot write its state directory {self.dir}: it {why}. Saves are journaled there before they upload, "
            f"so nothing was written. Make it writable, or set S3BP_STATE_DIR to a writable directory."
        )
        exists = False
        self.notice = (
            f"s3bp: the state directory {self.dir} {why}: loads work (without recording what they download) "
            f"but saves fail. Set S3BP_STATE_DIR to a writable directory to save."
        )
        with contextlib.suppress(OSError):
            exists = _size(self.path) is not None
        if exists:
            uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
            # a WAL database closed cleanly has no -shm, which a read-only open would have to create: immutable then
            for target in (uri, uri + "&immutable=1"):
                self._use(target, uri=True)
                try:
                    self._conn().execute(f"SELECT {_JOURNAL_COLUMNS} FROM journal LIMIT 1").fetchall()
                    self._conn().execute(f"SELECT {_RECORD_COLUMNS} FROM records LIMIT 1").fetchall()
                    return
                except sqlite3.Error:
                    continue
        self._use(":memory:")

    def _use(self, target: str, *, uri: bool = False) -> None:
        """Connect every thread to ``target`` from its next call on."""
        self._target, self._uri = target, uri
        self._generation += 1

    # -- connections --------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are not shared between threads)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation:
            return conn
        import sqlite3

        if conn is not None:  # connected to what this database used before (a read-only fallback)
            self._forget(conn)
        if self._target == ":memory:":
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.executescript(_SCHEMA)
        else:
            conn = sqlite3.connect(self._target, uri=self._uri, timeout=60, isolation_level=None, check_same_thread=False)
            if self.writable:
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    # NORMAL: a commit survives the process being killed; only power loss can undo the last ones.
                    conn.execute("PRAGMA synchronous=NORMAL")
                except BaseException:
                    conn.close()
                    raise
        local.conn, local.generation = conn, self._generation
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        """Close one connection and drop it from the list."""
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection, taken at once (BEGIN IMMEDIATE)."""
        if not self.writable:
            raise StateError(self.problem or f"The state database {self.path} is read-only.")
        conn = self._conn()
        # The threads of this process take turns here: SQLite's own busy handler would make a
        # thread that finds the database locked sleep 1 ms and more, on every collision.
        with self._writing:
            try:  # BEGIN inside: an interrupt just after it must still roll back, or the write lock stays taken
                conn.execute("BEGIN IMMEDIATE")
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):  # a damaged or full database may refuse even this
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- recovery -----------------------------------------------------------

    def _recover(self, damage: BaseException) -> None:
        """Set a damaged database aside and rebuild it, keeping every journaled save that can be read (call under the open lock).

        Only when no other program has it open (SQLite's lock on its ``-shm``
        file; and no other :class:`StateDB` of this process): renaming a
        database under an open connection would let that connection delete
        the new one's ``-wal`` and ``-shm`` files when it closes. Otherwise
        the database is used read-only (loads work, saves are refused with
        :attr:`problem`) until the next start.

        The journal rows that can still be read are re-inserted when their
        snapshot is in the spool; snapshots no readable row names are linked
        (never moved or deleted) into ``recovered-<time>/`` beside a README.
        Said once, on stderr and the ``s3bp`` logger.
        """
        self.close()
        if _in_use_here(self) or _in_use_elsewhere(self.path):
            self.writable = False
            self.problem = (
                f"The s3bp state database {self.path} is damaged ({damage}) and another program using s3bp has it open, "
                f"so it cannot be rebuilt now; nothing was written. Close the other programs that use s3bp (or let "
                f"them finish): the next one to start sets the damaged file aside and rebuilds it, keeping journaled uploads."
            )
            self.notice = f"s3bp: {self.problem} Loads work meanwhile, without sync records."
            self._use(":memory:")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = _free_name(f"{self.path}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):  # SQLite names a database's -wal and -shm after it: they move with it
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.path + suffix, aside + suffix)
        salvaged = _salvage(aside)
        self._use(self.path)
        self._setup()
        kept, dropped = self._restore(salvaged)
        linked, where = self._keep_unjournaled({e["id"] for e in kept}, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + _CHECK_MARK)
        parts = [f"s3bp: the state database {self.path} was damaged ({damage}); it was moved to {aside} and rebuilt."]
        parts.append(f"Kept {len(kept)} journaled upload(s) (they resume as usual).")
        if dropped:
            parts.append(f"{len(dropped)} journaled upload(s) had no snapshot left in {self.spool_dir} and were dropped.")
        if linked:
            parts.append(
                f"{len(linked)} snapshot(s) of saves whose journal rows could not be read (so their bucket and key are unknown) "
                f"are kept in {where}; see README.txt there."
            )
        parts.append("Sync records not recovered are rebuilt by the next load or push of each file.")
        _say(" ".join(parts))
        self.notice = None

    def _restore(self, salvaged: dict[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Insert the rows read from a damaged database; return the journal rows kept and those dropped (no snapshot)."""
        journal = salvaged.get("journal", [])
        kept = [r for r in journal if isinstance(r.get("spool"), str) and os.path.isfile(r["spool"])]
        dropped = [r for r in journal if r not in kept]
        if dropped:
            logger.warning("s3bp: journal rows without a snapshot, dropped in the rebuild: %s", [r.get("path") for r in dropped])
        tables = (("records", salvaged.get("records", [])), ("endpoints", salvaged.get("endpoints", [])),
                  ("counters", salvaged.get("counters", [])), ("journal", kept))  # fmt: skip
        inserted: list[dict[str, Any]] = []
        with self._transaction() as conn:
            for table, rows in tables:
                columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                for row in rows:
                    names = [c for c in columns if c in row]
                    try:
                        conn.execute(
                            f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                            tuple(row[c] for c in names),
                        )
                    except Exception:  # a row damaged past use (a value missing): the others still count
                        logger.warning("s3bp: a %s row could not be restored: %r", table, row)
                        continue
                    if table == "journal":
                        inserted.append(row)
        return inserted, dropped

    def _keep_unjournaled(self, known: set[str], why: str | None) -> tuple[list[str], str | None]:
        """Link the spool's snapshots that no journal row names into ``recovered-<time>/`` (the spool is left as it is).

        ``known``: the entry ids journaled; ``why`` (the database "was missing"
        or "was empty"), given, has this say so itself. Returns the linked
        names and their directory.
        """
        try:
            with os.scandir(self.spool_dir) as it:
                names = sorted(e.name for e in it if is_entry_id(e.name) and e.is_file(follow_symlinks=False))
        except OSError:
            return [], None
        names = [n for n in names if n not in known]
        if names and why is not None:  # the journal is readable (and new): it may name them after all
            known = {r[0] for r in self._conn().execute("SELECT id FROM journal")}
            names = [n for n in names if n not in known]
        if not names:
            return [], None
        where = _keep_snapshots(self.spool_dir, names, self.path, why or "was damaged")
        if why is not None:
            _say(
                f"s3bp: the state database {self.path} {why}, but the upload spool held {len(names)} snapshot(s) of "
                f"saves waiting to upload; their journal (bucket and key) is gone, so they are not uploaded. "
                f"They are kept in {where}; see README.txt there."
            )
        return names, where

    def _write(self, sql: str, params: tuple = ()) -> int:
        """Run one statement in its own transaction; return the rows changed."""
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query."""
        return self._conn().execute(sql, params).fetchall()

    # -- sync records -----------------------------------------------------

    def put_record(self, rec: SyncRecord, *, best_effort: bool = False) -> None:
        """Insert or replace the record of ``rec.path``; ``best_effort``: a failure is said once, not raised (see :meth:`_best_effort`)."""
        if best_effort:
            self._best_effort(self.put_records, [rec])
        else:
            self.put_records([rec])

    @_guarded
    def put_records(self, recs: list[SyncRecord]) -> None:
        """Insert or replace several records in one transaction."""
        marks = ", ".join("?" * len(SyncRecord.__dataclass_fields__))
        with self._transaction() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO records ({_RECORD_COLUMNS}) VALUES ({marks})", [tuple(r.__dict__.values()) for r in recs])

    @_guarded
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

    @_guarded
    def newest_upload(self, endpoint: str, bucket: str, key: str) -> int:
        """The save sequence number of the newest recorded upload of an object, or 0 (the ``saved_ns`` column keeps its 0.2 name)."""
        rows = self._query(
            "SELECT max(saved_ns) FROM records WHERE bucket = ? AND key = ? AND endpoint = ?", (bucket, key, endpoint)
        )
        return rows[0][0] or 0

    @_guarded
    def records_under(self, directory: str, sep: str = "/") -> list[SyncRecord]:
        """The records of every path below ``directory`` (a normalised absolute path)."""
        low, high = _subtree_range(directory, sep)
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path >= ? AND path < ?", (low, high))
        return [SyncRecord(*r) for r in rows]

    @_guarded
    def record_rows_under(self, directory: str, sep: str = "/") -> dict[str, tuple]:
        """The records of every path below ``directory`` as plain rows by path, in the order of
        :class:`~s3bp.freshness.SyncRecord`'s fields (``SyncRecord(*row)`` makes one): for comparing many files at once."""
        low, high = _subtree_range(directory, sep)
        return {r[0]: r for r in self._query(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path >= ? AND path < ?", (low, high))}

    @_guarded
    def pending_under(self, directory: str, sep: str = "/") -> set[str]:
        """The paths below ``directory`` with a save waiting in the journal."""
        low, high = _subtree_range(directory, sep)
        return {r[0] for r in self._query("SELECT DISTINCT path FROM journal WHERE path >= ? AND path < ?", (low, high))}

    @_guarded
    def delete_record(self, path: str) -> None:
        """Forget the record of ``path``."""
        self._write("DELETE FROM records WHERE path = ?", (path,))

    def touch(self, path: str, verified_at: float, *, best_effort: bool = False) -> None:
        """Note that the record of ``path`` was confirmed current at ``verified_at`` (``best_effort``: as for :meth:`put_record`)."""
        if best_effort:
            self._best_effort(self._touch, path, verified_at)
        else:
            self._touch(path, verified_at)

    @_guarded
    def _touch(self, path: str, verified_at: float) -> None:
        """Set the record's verification time."""
        self._write("UPDATE records SET verified_at = ? WHERE path = ?", (verified_at, path))

    def _best_effort(self, write: Callable[..., object], *args: Any) -> None:
        """Write a sync record if the database lets us: a load must not fail for want of one (the next load asks S3 again).

        Read-only: skipped (the open said so). Another failure (a full disk) is said once per database.
        """
        if not self.writable:
            return
        try:
            write(*args)
        except StateError as exc:
            if not self._record_trouble_said:
                self._record_trouble_said = True
                warnings.warn(f"s3bp: sync records are not being kept: {exc} Loads still work; each asks S3 again.", StateWarning, 3)

    # -- endpoints --------------------------------------------------------

    @_guarded
    def endpoint_mode(self, endpoint: str) -> tuple[bool, float] | None:
        """Whether ``endpoint`` honours conditional writes, and when that was checked; None if never."""
        rows = self._query("SELECT conditional, checked_at FROM endpoints WHERE endpoint = ?", (endpoint,))
        return (bool(rows[0][0]), rows[0][1]) if rows else None

    @_guarded
    def set_endpoint_mode(self, endpoint: str, conditional: bool, checked_at: float) -> None:
        """Remember whether ``endpoint`` honours conditional writes."""
        self._write("INSERT OR REPLACE INTO endpoints (endpoint, conditional, checked_at) VALUES (?, ?, ?)", (endpoint, int(conditional), checked_at))

    @_guarded
    def endpoint_modes(self) -> dict[str, tuple[bool, float]]:
        """Every endpoint checked so far: whether it honours conditional writes, and when that was checked."""
        return {e: (bool(c), t) for e, c, t in self._query("SELECT endpoint, conditional, checked_at FROM endpoints ORDER BY endpoint")}

    # -- versions ---------------------------------------------------------

    @_guarded
    def as_of_version(self, endpoint: str, bucket: str, key: str, at: float) -> str | None:
        """The version id remembered as current at time ``at`` for an object, or None."""
        rows = self._query(
            "SELECT version_id FROM as_of_versions WHERE endpoint = ? AND bucket = ? AND key = ? AND at = ?", (endpoint, bucket, key, at)
        )
        return rows[0][0] if rows else None

    def remember_as_of(self, endpoint: str, bucket: str, key: str, at: float, version_id: str) -> None:
        """Remember which version was current at ``at`` (only for a time already past when S3 listed the versions); best effort."""
        self._best_effort(self._remember_as_of, endpoint, bucket, key, at, version_id)

    @_guarded
    def _remember_as_of(self, endpoint: str, bucket: str, key: str, at: float, version_id: str) -> None:
        """Insert or replace one remembered as-of answer."""
        self._write(
            "INSERT OR REPLACE INTO as_of_versions (endpoint, bucket, key, at, version_id) VALUES (?, ?, ?, ?, ?)",
            (endpoint, bucket, key, at, version_id),
        )

    # -- upload journal ---------------------------------------------------

    @_guarded
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
        return self.add_entries([entry])[0]

    @_guarded
    def add_entries(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        """Journal several saves in one transaction, in order (see :meth:`add_entry`); the entries with their ``seq``."""
        marks = ", ".join("?" * len(JournalEntry.__dataclass_fields__))
        added = []
        with self._transaction() as conn:
            for entry in entries:
                seq = self._next_seq(conn)
                base_version = entry.base_version
                if base_version is None:  # the version this save replaces, as this machine last synced it
                    base = conn.execute(
                        "SELECT version_id FROM records WHERE path = ? AND endpoint = ? AND bucket = ? AND key = ?",
                        (entry.path, entry.endpoint, entry.bucket, entry.key),
                    ).fetchone()
                    base_version = base[0] if base else None
                entry = dataclasses.replace(entry, seq=seq, base_version=base_version)
                conn.execute(f"INSERT INTO journal ({_JOURNAL_COLUMNS}) VALUES ({marks})", tuple(entry.__dict__.values()))
                added.append(entry)
        return added

    @staticmethod
    def _next_seq(conn: sqlite3.Connection) -> int:
        """Take the next save sequence number (inside a write transaction)."""
        if _has_returning():
            row = conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value").fetchone()
        else:  # SQLite before 3.35
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'seq'")
            row = conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        if row is not None:
            return int(row[0])
        # the first save of this database
        start = conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM journal), 0), coalesce((SELECT max(saved_ns) FROM records), 0))"
        ).fetchone()[0]
        conn.execute("INSERT INTO counters (name, value) VALUES ('seq', ?)", (start + 1,))
        return int(start + 1)

    @_guarded
    def remove_entry(self, entry_id: str) -> None:
        """Drop a journal entry (uploaded or superseded)."""
        self._write("DELETE FROM journal WHERE id = ?", (entry_id,))

    @_guarded
    def fail_entry(self, entry_id: str, error: str, *, held: bool = False) -> None:
        """Keep a failed entry, counting the attempt and its error; ``held`` ones wait for an explicit retry."""
        self._write("UPDATE journal SET attempts = attempts + 1, last_error = ?, held = ? WHERE id = ?", (error, int(held), entry_id))

    @_guarded
    def release_held(self, owner: str, *, keep: Collection[str] = ()) -> None:
        """Let ``owner``'s held entries be retried (an explicit flush), apart from the ids in ``keep`` (being uploaded now)."""
        with self._transaction() as conn:
            held = [r[0] for r in conn.execute("SELECT id FROM journal WHERE owner = ? AND held = 1", (owner,))]
            conn.executemany("UPDATE journal SET held = 0 WHERE id = ?", [(i,) for i in held if i not in keep])

    @_guarded
    def retarget(self, entry_id: str, *, endpoint: str, profile: str | None, region: str | None, bucket: str, key: str) -> None:
        """Point a journal entry at another endpoint, bucket or key (the settings were fixed since the save)."""
        self._write(
            "UPDATE journal SET endpoint = ?, profile = ?, region = ?, bucket = ?, key = ?, held = 0 WHERE id = ?",
            (endpoint, profile, region, bucket, key, entry_id),
        )

    @_guarded
    def entries(self, owner: str | None = None) -> list[JournalEntry]:
        """Journal entries, oldest save first; only ``owner``'s when given."""
        if owner is None:
            rows = self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal ORDER BY seq")
        else:
            rows = self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE owner = ? ORDER BY seq", (owner,))
        return [JournalEntry(*r) for r in rows]

    @_guarded
    def siblings(self, entry: JournalEntry) -> list[JournalEntry]:
        """The other entries of the same owner and object as ``entry``, oldest first."""
        rows = self._query(
            f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE bucket = ? AND key = ? AND endpoint = ? AND owner = ? AND id != ? ORDER BY seq",
            (entry.bucket, entry.key, entry.endpoint, entry.owner, entry.id),
        )
        return [JournalEntry(*r) for r in rows]

    @_guarded
    def owners(self) -> list[str]:
        """Every owner that has journal entries."""
        return [r[0] for r in self._query("SELECT DISTINCT owner FROM journal")]

    @_guarded
    def adopt(self, old_owner: str, new_owner: str, pid: int) -> int:
        """Move every entry of ``old_owner`` to ``new_owner``, the process ``pid``; return how many."""
        return self._write("UPDATE journal SET owner = ?, pid = ? WHERE owner = ?", (new_owner, pid, old_owner))

    @_guarded
    def reown(self, entry_id: str, old_owner: str, new_owner: str, pid: int) -> bool:
        """Move one entry of ``old_owner`` to ``new_owner``, the process ``pid``; False when it is not ``old_owner``'s (any more)."""
        return self._write("UPDATE journal SET owner = ?, pid = ? WHERE id = ? AND owner = ?", (new_owner, pid, entry_id, old_owner)) > 0

    @_guarded
    def entry(self, entry_id: str) -> JournalEntry | None:
        """The journal entry ``entry_id``, or None when it is gone (uploaded, superseded or dropped)."""
        rows = self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE id = ?", (entry_id,))
        return JournalEntry(*rows[0]) if rows else None

    @_guarded
    def record(self, path: str) -> SyncRecord | None:
        """The record of ``path``, if any."""
        rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path = ?", (path,))
        return SyncRecord(*rows[0]) if rows else None

    @_guarded
    def entries_of(self, path: str) -> list[JournalEntry]:
        """The journal entries of one local path, oldest first."""
        return [JournalEntry(*r) for r in self._query(f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE path = ? ORDER BY seq", (path,))]

    @_guarded
    def load_state(self, path: str) -> tuple[SyncRecord | None, bool]:
        """The record of ``path`` and whether it has a pending upload."""
        conn = self._conn()
        rows = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE path = ?", (path,)).fetchall()
        pending = conn.execute("SELECT 1 FROM journal WHERE path = ? LIMIT 1", (path,)).fetchone()
        return (SyncRecord(*rows[0]) if rows else None), pending is not None

    # -- managed cache use ------------------------------------------------

    def note_use(self, path: str, used_at: float, size: int) -> None:
        """Note that the managed cache's file ``path`` (``size`` bytes) was used at ``used_at``; best effort (see :meth:`_best_effort`)."""
        self._best_effort(self._note_use, path, used_at, size)

    @_guarded
    def _note_use(self, path: str, used_at: float, size: int) -> None:
        """Insert or replace the use row of ``path``."""
        self._write("INSERT OR REPLACE INTO cache_uses (path, used_at, size) VALUES (?, ?, ?)", (path, used_at, size))

    @_guarded
    def uses_under(self, directory: str, sep: str = "/") -> dict[str, tuple[float, int]]:
        """Per path below ``directory``: when it was last used and its size then."""
        low, high = _subtree_range(directory, sep)
        return {p: (t, n) for p, t, n in self._query("SELECT path, used_at, size FROM cache_uses WHERE path >= ? AND path < ?", (low, high))}

    @_guarded
    def use_totals(self, directory: str, sep: str = "/") -> tuple[int, float | None]:
        """The total size of the uses noted below ``directory``, and the oldest use (None when there is none)."""
        low, high = _subtree_range(directory, sep)
        total, oldest = self._query("SELECT coalesce(sum(size), 0), min(used_at) FROM cache_uses WHERE path >= ? AND path < ?", (low, high))[0]
        return int(total), oldest

    @_guarded
    def forget_cached(self, evicted: list[tuple[str, float | None, float]]) -> None:
        """After eviction, in one transaction: drop the use rows and sync records of the evicted paths.

        ``evicted`` holds ``(path, verified_at of the record seen when it was evicted or None, when it was evicted)``:
        a record or use noted since (the file was loaded again meanwhile) is kept.
        """
        with self._transaction() as conn:
            conn.executemany("DELETE FROM cache_uses WHERE path = ? AND used_at <= ?", [(p, t) for p, _, t in evicted])
            conn.executemany("DELETE FROM records WHERE path = ? AND verified_at = ?", [(p, v) for p, v, _ in evicted if v is not None])


def _create_private(path: str) -> None:
    """Create the database file with mode 0600 (or make an older one 0600) before SQLite opens it.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's mode, whatever the umask.
    An existing file is never opened here: closing any descriptor of it would drop every POSIX lock
    this process's SQLite connections hold on it, and another process closing its own connection
    would then take itself for the last one and delete the write-ahead log under them.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        except FileExistsError:  # made meanwhile by another process
            return
        os.close(fd)  # a file made just now: no connection of this process has it open
        return
    if os.name == "posix" and mode & 0o077:
        # made by s3bp <= 0.2 with SQLite's default 0644; another user's file is left as it is
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.chmod(path + suffix, 0o600)


def _subtree_range(directory: str, sep: str) -> tuple[str, str]:
    """The half-open string range holding exactly the paths below ``directory``."""
    low = directory.rstrip(sep) + sep
    return low, low[:-1] + chr(ord(sep) + 1)


# -- opening the state directory ------------------------------------------------

#: Every open :class:`StateDB` of this process (a database in use here is never set aside).
_LIVE: weakref.WeakSet[StateDB] = weakref.WeakSet()


def open_state(state_dir: str | os.PathLike[str]) -> StateDB:
    """The state database of ``state_dir`` (created 0700 if missing, tightened to 0700 if an older version left it open).

    When the directory cannot be created or written, or the database cannot be
    opened for writing, it is opened read-only (loads work, saves raise
    :class:`StateError`) and a :class:`~s3bp.errors.StateWarning` says so once.
    """
    directory = os.path.abspath(os.fspath(state_dir))
    path = os.path.join(directory, STATE_FILE)
    why = None
    try:
        private_dir(directory)
    except OSError as exc:
        why = f"cannot be created ({exc.strerror or exc})"
    if why is None and not os.access(directory, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if _read_only_fs(directory) else "is not writable by this user"
    db = None
    if why is None:
        try:
            db = StateDB(path)
        except StateError as exc:  # e.g. a full disk: reading may still work
            why = f"holds a state database that cannot be opened for writing ({exc})"
    if db is None:
        db = StateDB(path, unwritable=why)
    if db.notice:
        warnings.warn(db.notice, StateWarning, 3)
    return db


def private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (and its parents) if missing; make it 0700 whatever the umask, or if an older version left it open."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.name != "posix":
        return
    st = os.stat(path)
    if st.st_mode & 0o777 != 0o700 and st.st_uid == os.geteuid():  # another user's directory is left as it is
        with contextlib.suppress(OSError):  # e.g. a read-only file system: nothing can be written there anyway
            os.chmod(path, 0o700)


def _read_only_fs(path: str) -> bool:
    """Whether ``path`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1))
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def _open_lock(directory: str) -> Iterator[None]:
    """Held while a process opens (and, if need be, rebuilds) the database, so that no open sees it half-replaced."""
    locks = os.path.join(directory, "locks")
    private_dir(locks)
    with FileLock(os.path.join(locks, "state-open.lock")):
        yield


def _size(path: str) -> int | None:
    """The file's size, or None when there is none."""
    try:
        return os.stat(path).st_size
    except (FileNotFoundError, NotADirectoryError):
        return None


def _free_name(base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever names nothing yet."""
    name, n = base, 1
    while os.path.lexists(name):
        n += 1
        name = f"{base}-{n}"
    return name


def _in_use_here(db: StateDB) -> bool:
    """Whether another :class:`StateDB` of this process has the same file open."""
    real = os.path.realpath(db.path)
    return any(other is not db and other._all and os.path.realpath(other.path) == real for other in list(_LIVE))


def _in_use_elsewhere(path: str) -> bool:
    """Whether another process has the WAL database open: each connection holds a shared lock on byte 128 of its -shm file.

    Call only when this process has no connection to it: closing the probe
    drops every POSIX lock this process holds on that file.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: an open file cannot be renamed there anyway
        return False
    try:
        fd = os.open(path + "-shm", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: leave it alone
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 128)
        return False
    finally:
        os.close(fd)


def _is_corrupt(exc: BaseException) -> bool:
    """Whether an error from SQLite (or :meth:`StateDB._check`) means the file is damaged, not busy, full or read-only."""
    if isinstance(exc, _Damaged):
        return True
    if type(exc).__module__ != "sqlite3":
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _state_error(exc: BaseException, path: str) -> StateError:
    """The :class:`StateError` for an SQLite error on the state database, with what to do."""
    text = str(exc)
    low = text.lower()
    directory = os.path.dirname(os.path.abspath(path))
    if "full" in low:
        hint, number = f"free some space on the disk holding {directory}, or set S3BP_STATE_DIR to a directory on another disk", errno.ENOSPC
    elif "readonly" in low or "read-only" in low or "unable to open" in low:
        hint, number = f"make {directory} writable, or set S3BP_STATE_DIR to a writable directory", errno.EROFS
    elif "locked" in low or "busy" in low:
        hint, number = "another program using s3bp has held it for over a minute; try again when it is done", errno.EBUSY
    elif _is_corrupt(exc):
        hint, number = "restart the program: when no program is using it, s3bp sets it aside and rebuilds it, keeping journaled uploads", errno.EIO
    else:
        hint, number = "check the disk holding it; if it persists, restart the program", errno.EIO
    err = StateError(f"The s3bp state database {path} cannot be used ({text}): {hint}.")
    err.errno = number
    return err



#: errno values that mean "this disk cannot take it", with what to do.
_DISK_HINTS = {
    errno.ENOSPC: "free some space on that disk",
    errno.EDQUOT: "free some space (the disk quota is used up)",
    errno.EFBIG: "the file system cannot hold a file that large",
    errno.EROFS: "that file system is mounted read-only",
    errno.EACCES: "check the permissions of {dir}",
    errno.EPERM: "check the permissions of {dir}",
}


def disk_error(exc: OSError, *, state_dir: str | os.PathLike[str], target: str | None, doing: str, default: str) -> S3bpError:
    """The :class:`S3bpError` for an :class:`OSError` met while ``doing`` (e.g. "save") ``target`` (None: the state directory itself).

    A :class:`StateError` when the error names a path in ``state_dir`` (or names
    none and ``default`` is ``"state"``: a snapshot being copied into the spool),
    else a :class:`LocalFileError`; each says which path and what to do.
    """
    if isinstance(exc, S3bpError):
        return exc
    state = os.path.abspath(os.fspath(state_dir))
    names = [os.fspath(n) for n in (exc.filename, exc.filename2) if n is not None]
    in_state = any(os.path.abspath(n) == state or os.path.abspath(n).startswith(state + os.sep) for n in names)
    reason = exc.strerror or str(exc)
    named = f" ({', '.join(names)})" if names else ""
    err: S3bpError
    if in_state or target is None or (not names and default == "state"):
        hint = _DISK_HINTS.get(exc.errno or 0, "check the disk holding it").format(dir=state)
        err = StateError(
            ("" if target is None else f"Cannot {doing} {target}: ")
            + f"s3bp's state directory {state} cannot be written: {reason}{named}. "
            f"Saves are journaled there before they upload; {hint}, or set S3BP_STATE_DIR to another directory."
        )
    else:
        assert target is not None
        directory = os.path.dirname(target)
        hint = _DISK_HINTS.get(exc.errno or 0, "check the disk and the path").format(dir=directory)
        err = LocalFileError(f"Cannot {doing} {target}: {reason}{named}; {hint}. The file there, if any, was left as it was.")
    err.errno = exc.errno
    return err


def _salvage(path: str) -> dict[str, list[dict[str, Any]]]:
    """The rows that can still be read from a damaged database, per table, through a fresh read-only connection.

    Each table is read row by row up to the first damaged page; the journal
    (the saves not yet uploaded) is then looked up rowid by rowid past it.
    """
    import sqlite3

    out: dict[str, list[dict[str, Any]]] = {}
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    for target in (uri, uri + "&immutable=1"):  # immutable: when its -wal cannot be read, at least the file itself
        try:
            conn = sqlite3.connect(target, uri=True, isolation_level=None)
        except sqlite3.Error:
            continue
        try:
            conn.execute("SELECT name FROM sqlite_master").fetchall()
        except sqlite3.Error:
            conn.close()
            continue
        try:
            for table in ("journal", "records", "counters", "endpoints"):
                out[table] = _salvage_table(conn, table, probe=table == "journal")
        finally:
            conn.close()
        break
    return out


def _salvage_table(conn: sqlite3.Connection, table: str, *, probe: bool) -> list[dict[str, Any]]:
    """What can be read of one table (see :func:`_salvage`)."""
    import sqlite3

    rows: dict[int, dict[str, Any]] = {}
    try:
        cur = conn.execute(f"SELECT rowid, * FROM {table}")
        names = [d[0] for d in cur.description]
        for row in cur:
            rows[row[0]] = dict(zip(names[1:], row[1:]))
        return list(rows.values())
    except sqlite3.Error:
        if not probe:
            return list(rows.values())
    try:
        top = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.Error:
        top = _PROBE_LIMIT if rows else 0
    for rowid in range(1, min(top, _PROBE_LIMIT) + 1):
        if rowid in rows:
            continue
        try:
            cur = conn.execute(f"SELECT * FROM {table} WHERE rowid = ?", (rowid,))
            row = cur.fetchone()
        except sqlite3.Error:
            continue
        if row is not None:
            rows[rowid] = dict(zip([d[0] for d in cur.description], row))
    return list(rows.values())


def _keep_snapshots(spool_dir: str, names: list[str], db_path: str, why: str) -> str:
    """Hard-link (or copy) the spool files ``names`` into a new ``recovered-<time>`` directory beside the spool, with a README."""
    import shutil

    base = os.path.dirname(spool_dir)
    where = _free_name(os.path.join(base, "recovered-" + time.strftime("%Y%m%d-%H%M%S")))
    private_dir(where)
    lines = []
    for name in names:
        src, dest = os.path.join(spool_dir, name), os.path.join(where, name)
        try:
            os.link(src, dest)  # the same immutable bytes; the spool keeps its own name
        except OSError:
            try:
                shutil.copyfile(src, dest)
            except OSError as exc:
                lines.append(f"{name}  (could not be kept: {exc})")
                continue
        with contextlib.suppress(OSError):  # a snapshot made by an older version may be readable by others
            os.chmod(dest, 0o600)
        st = os.stat(dest)
        lines.append(f"{name}  {st.st_size} bytes  written {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st.st_mtime))}")
    text = (
        f"s3bp found its state database {db_path} {why} on {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"
        f"These files are snapshots of saves that were waiting to upload then, whose journal rows could not be read:\n"
        f"s3bp does not know which bucket, key and local file each belongs to, so it will not upload them.\n"
        f"Each is a complete copy of a file as it was saved. To keep one, read it as you saved it\n"
        f"(e.g. pickle.load(open(NAME, 'rb'))) and save it again, or copy it to its place and run s3bp.upload_file(path).\n"
        f"Delete this directory when you no longer need it.\n\n" + "\n".join(lines) + "\n"
    )
    fd = os.open(os.path.join(where, "README.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return where


def _say(message: str) -> None:
    """Tell the user once about a repair: on stderr (shown whatever the logging setup) and on the ``s3bp`` logger."""
    logger.warning("%s", message)
    print(message, file=sys.stderr)


def is_entry_id(name: str) -> bool:
    """Whether ``name`` is a journal entry id (uuid4 hex), as snapshots in the spool are named."""
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)
