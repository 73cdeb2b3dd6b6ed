"""The managed cache: where local copies of ``s3://`` URLs and pinned versions live.

Layout under :func:`cache_root` (readable, since people look in there)::

    <endpoint id>/<bucket>/<key>                          the copy of s3://bucket/key
    <endpoint id>/.versions/<bucket>/<version id>/<key>   an immutable pinned version

Bucket names never start with a dot, so ``.versions`` cannot clash with a bucket.

The cache is bounded (``cache_max_size``, ``cache_max_age``): eviction removes
the least recently *used* files (a load is a use, noted in the state
database's ``cache_uses`` table) and never a file under a mapped base
directory, one with a journaled (pending or failed) upload, one edited since
its last sync, or one another thread or process is reading or writing (each
file is removed under the path lock that saves and cache loads take).
:func:`plan_eviction` decides, :class:`Cache` carries it out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat as stat_module
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import paths
from .config import cache_root  # noqa: F401 - defined beside the config and state directories
from .errors import InvalidPathError, S3bpError
from .freshness import LocalStat, SyncRecord
from .localfiles import from_stat, local_stat, sweep

if TYPE_CHECKING:
    from .index import StateDB
    from .locks import StripedLocks

logger = logging.getLogger("s3bp")

#: The directory under an endpoint's directory that holds pinned versions.
VERSIONS_DIR = ".versions"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def endpoint_id(endpoint: str) -> str:
    """A readable directory name for an endpoint URL: its host, and port if any.

    ``https://s3.eu-west-1.amazonaws.com`` -> ``s3.eu-west-1.amazonaws.com``;
    ``http://127.0.0.1:9000`` -> ``127.0.0.1_9000``.
    """
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    host = (parts.hostname or "endpoint") + (f"_{parts.port}" if parts.port else "")
    path = parts.path.strip("/")
    name = host + (f"_{path}" if path else "")
    return _UNSAFE.sub("_", name).lstrip(".") or "endpoint"


def url_copy_path(root: Path, endpoint: str, bucket: str, key: str) -> Path:
    """Where the local copy of ``s3://bucket/key`` on ``endpoint`` lives (``key`` already checked safe)."""
    return root / endpoint_id(endpoint) / bucket / key


def version_copy_path(root: Path, endpoint: str, bucket: str, key: str, version_id: str) -> Path:
    """Where the immutable copy of one version of ``s3://bucket/key`` lives (``key`` already checked safe)."""
    return root / endpoint_id(endpoint) / VERSIONS_DIR / bucket / _UNSAFE.sub("_", version_id) / key


# -- what may go --------------------------------------------------------------------


@dataclass(frozen=True)
class CachedFile:
    """One file of the managed cache."""

    path: str
    size: int
    #: when it was last used (loaded), or placed when no use was noted
    used_at: float
    #: why it may not be evicted, or None
    kept: str | None = None


def why_kept(
    path: str, local: LocalStat, record: SyncRecord | None, pending: bool, mappings: Mapping[str, str], *, pinned: bool,
    copy_of: tuple[str, str, str] | None = None,
) -> str | None:
    """Why the cache file ``path`` may not be evicted, or None when it may (its bytes are in S3 as they are here).

    ``pinned``: a copy of one version of an object (never edited, never uploaded). ``copy_of``: the (endpoint id,
    bucket, key) whose copy the cache's layout puts at ``path``; a record about another object keeps the file.
    """
    base = paths.deepest_base_dir(path, mappings)
    if base is not None:
        return f"under the mapped directory {base}"
    if pending:
        return "a save of it waits in the upload journal"
    if pinned:
        return None
    if record is None:
        return "not known to be in S3 (no sync record)"
    if copy_of is not None and (endpoint_id(record.endpoint), record.bucket, record.key) != copy_of:
        return f"its sync record is about s3://{record.bucket}/{record.key}, not the object the cache keeps here"
    if not record.matches(local):
        return "edited since it was last synced"
    return None


def plan_eviction(
    files: Sequence[CachedFile], *, max_size: int | None, max_age: float | None, now: float, keep: Container[str] = ()
) -> tuple[list[CachedFile], list[CachedFile]]:
    """Which files to evict, least recently used first: those unused for over ``max_age`` seconds, then more until the
    total is at most ``max_size`` bytes. Returns ``(evict, kept)``: ``kept`` are those that would go but may not
    (:attr:`CachedFile.kept`, or their path is in ``keep``)."""
    total = sum(f.size for f in files)
    evict: list[CachedFile] = []
    held: list[CachedFile] = []
    for f in sorted(files, key=lambda f: (f.used_at, f.path)):
        too_old = max_age is not None and now - f.used_at > max_age
        if not too_old and (max_size is None or total <= max_size):
            break  # the rest are used more recently, and the total only shrinks
        if f.kept is not None or f.path in keep:
            held.append(f)
            continue
        evict.append(f)
        total -= f.size
    return evict, held


# -- the cache on disk ----------------------------------------------------------------


@dataclass(frozen=True)
class CacheInfo:
    """What :func:`s3bp.cache_info` reports."""

    root: str
    size: int
    files: int
    max_size: int | None
    max_age: float | None
    #: when the least recently used file was last used, or None for an empty cache
    oldest_use: float | None
    #: files that cannot be evicted now (pending uploads, edits, under a mapped directory)
    kept: int = 0


@dataclass
class PruneReport:
    """What :func:`s3bp.cache_prune` and :func:`s3bp.cache_clear` removed (or, with ``dry_run``, would remove)."""

    root: str
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    freed: int = 0
    #: ``(path, reason)`` for the files that would have gone but were kept
    kept: list[tuple[str, str]] = field(default_factory=list)
    #: the cache's size afterwards
    size: int = 0


class Cache:
    """The managed cache of one store: its files, their uses, and safe eviction.

    Parameters
    ----------
    root
        The cache directory.
    db
        The state database (sync records, journal, cache uses).
    locks
        The path locks that saves take (``None``: the state directory cannot hold them; nothing is locked).
    mappings
        Normalised base directory -> bucket; files under them are never evicted.
    max_size
        ``cache_max_size`` in bytes (None: no limit); applied after a load downloads.
    max_age
        ``cache_max_age`` in seconds (None: no limit); applied after a load downloads.
    """

    def __init__(
        self, root: str | os.PathLike[str], db: StateDB, locks: StripedLocks | None, mappings: Mapping[str, str], *,
        max_size: int | None = None, max_age: float | None = None,
    ):  # fmt: skip
        self.root = os.path.abspath(os.fspath(root))
        self.max_size, self.max_age = max_size, max_age
        # A mapped directory that holds the whole cache (a user who maps ~) keys none of its files: they resolve as
        # URLs and push skips them. Only one mapped inside the cache keeps its files.
        mappings = {d: b for d, b in mappings.items() if not paths.contains(d, self.root)}
        self._db, self._locks, self._mappings = db, locks, mappings

    @contextlib.contextmanager
    def loading(self, path: str) -> Iterator[None]:
        """Hold ``path``'s lock through a load and the read of its copy, then note the use; when the load downloaded
        and the cache is over its limits, evict (never ``path`` itself). A failed eviction is logged, never raised."""
        self._make_way(path)  # before taking path's lock: a copy in the way may share its stripe
        before = local_stat(path)
        with self.holding(path):
            yield
            now = time.time()
            self.used(path, now)
        if local_stat(path) != before and self.over(max_size=self.max_size, max_age=self.max_age, now=now):
            try:
                self.prune(max_size=self.max_size, max_age=self.max_age, now=now, keep={path})
            except (OSError, S3bpError) as exc:
                logger.warning("s3bp: could not trim the managed cache %s: %s", self.root, exc)

    def holding(self, path: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock of the cache file ``path`` (the one saves of it take): no eviction while it is held."""
        return self._locks.hold(path) if self._locks is not None else contextlib.nullcontext()

    def _make_way(self, path: str) -> None:
        """Evict the copies in the way of ``path``'s: that of ``s3://b/a`` when ``s3://b/a/k`` is loaded, or those under
        ``a/`` when ``s3://b/a`` is (S3 holds both; one local tree cannot). The next load of theirs brings them back.

        Raises
        ------
        InvalidPathError
            When a copy in the way may not go (a pending upload, an edit), naming it and why.
        """
        blockers: list[str] = []
        parent = os.path.dirname(path)
        while paths.contains(self.root, parent) and parent != self.root:
            try:
                if stat_module.S_ISREG(os.lstat(parent).st_mode):
                    blockers.append(parent)
                break
            except FileNotFoundError:
                pass
            except OSError:
                break  # the load itself says what is wrong with the place
            parent = os.path.dirname(parent)
        dirs: list[str] = []
        if os.path.isdir(path) and not os.path.islink(path):
            blockers += [p for p, _ in _walk(path, dirs)]
        gone = []
        for blocker in blockers:
            outcome = self._evict(CachedFile(blocker, 0, 0.0))
            if isinstance(outcome, str):
                raise InvalidPathError(
                    f"Cannot place the copy of {path}: the cache's file {blocker} is in the way and is kept ({outcome}). "
                    f"Once it is safely in S3 (`s3bp flush`, `s3bp resolve`), the next load makes way; or load one of "
                    f"the two objects through a mapped path."
                )
            gone.append(outcome)
        if gone:
            self._db.forget_cached(gone)
        if os.path.isdir(path) and not os.path.islink(path):
            for d in sorted({d for d, _, _ in os.walk(path)}, key=len, reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(d)  # only if empty

    def used(self, path: str, now: float | None = None) -> None:
        """Note a use of the cache file ``path`` (it goes last in the LRU order); nothing when it does not exist."""
        local = local_stat(path)
        if local is not None:
            self._db.note_use(path, time.time() if now is None else now, local.size)

    def over(self, *, max_size: int | None, max_age: float | None, now: float) -> bool:
        """Whether the uses noted say the cache is over its limits (two aggregates, no walk)."""
        if max_size is None and max_age is None:
            return False
        total, oldest = self._db.use_totals(self.root, os.sep)
        return (max_size is not None and total > max_size) or (max_age is not None and oldest is not None and now - oldest > max_age)

    def files(self) -> list[CachedFile]:
        """Every file of the cache, with its last use and why it must stay (if it must)."""
        return self._survey([])

    def _survey(self, empty: list[str], vanished: list[str] | None = None, debris: list[str] | None = None) -> list[CachedFile]:
        """:meth:`files`, adding the empty directories met to ``empty``, the paths with a use noted but no file to
        ``vanished``, and the directories holding s3bp temp files to ``debris``."""
        uses = self._db.uses_under(self.root, os.sep)
        pending = self._db.pending_under(self.root, os.sep)
        records = {r.path: r for r in self._db.records_under(self.root, os.sep)}
        out = []
        for path, st in _walk(self.root, empty, debris):
            local = from_stat(st)
            used = uses.pop(path, (st.st_ctime, 0))[0]  # no use noted: when it was placed
            out.append(CachedFile(path, local.size, used, self._why_kept(path, local, records.get(path), path in pending)))
        if vanished is not None:
            vanished.extend(uses)
        return out

    def _why_kept(self, path: str, local: LocalStat, record: SyncRecord | None, pending: bool) -> str | None:
        """:func:`why_kept` for a file of this cache; a file where the layout puts no copy is always kept."""
        pinned = self._pinned(path)
        copy_of = None if pinned else self._copy_of(path)
        if not pinned and copy_of is None:
            return "not a copy of an object (the cache keeps copies as <endpoint>/<bucket>/<key>)"
        return why_kept(path, local, record, pending, self._mappings, pinned=pinned, copy_of=copy_of)

    def _copy_of(self, path: str) -> tuple[str, str, str] | None:
        """The (endpoint id, bucket, key) whose copy the layout puts at ``path``, or None when it puts none there."""
        rel = os.path.relpath(path, self.root).split(os.sep)
        if len(rel) < 3 or rel[0].startswith(".") or rel[1].startswith("."):
            return None
        return rel[0], rel[1], "/".join(rel[2:])

    def info(self, *, max_size: int | None, max_age: float | None) -> CacheInfo:
        """Size, number of files, limits and the oldest use."""
        files = self.files()
        oldest = min((f.used_at for f in files), default=None)
        return CacheInfo(self.root, sum(f.size for f in files), len(files), max_size, max_age, oldest, sum(f.kept is not None for f in files))

    def prune(
        self, *, max_size: int | None, max_age: float | None, dry_run: bool = False, now: float | None = None, keep: Container[str] = ()
    ) -> PruneReport:
        """Evict least recently used files until the cache is within ``max_size`` and nothing is older than ``max_age``.

        Each file is removed under its path lock, after checking again that it
        has no journaled upload and is unchanged since its sync record.
        """
        now = time.time() if now is None else now
        started = time.time()
        empty: list[str] = []
        vanished: list[str] = []
        debris: list[str] = []
        files = self._survey(empty, vanished, debris)
        evict, held = plan_eviction(files, max_size=max_size, max_age=max_age, now=now, keep=keep)
        report = PruneReport(self.root, dry_run, kept=[(f.path, f.kept or "in use by this load") for f in held])
        size = sum(f.size for f in files)
        gone: list[tuple[str, float | None, float]] = []
        for f in evict:
            if dry_run:
                report.removed.append(f.path)
                report.freed += f.size
                continue
            outcome = self._evict(f)
            if isinstance(outcome, str):
                report.kept.append((f.path, outcome))
                continue
            gone.append(outcome)
            report.removed.append(f.path)
            report.freed += f.size
        if not dry_run:
            # use notes of files gone by other means (by hand, a prune killed before this step) would keep the cache
            # "over its limit" for good, and every later download would walk it again
            gone += [(p, None, started) for p in vanished]
            for d in debris:  # partial downloads and saves of killed processes: no load of them may ever come again
                sweep(d)
        if gone:
            self._db.forget_cached(gone)
        if not dry_run:
            _remove_empty_dirs(empty, now)
        report.size = size - report.freed
        return report

    def _evict(self, f: CachedFile) -> tuple[str, float | None, float] | str:
        """Remove one file under its lock if it still may go: ``(path, its record's verified_at, when)``, else why it stays."""
        with self.holding(f.path):
            record, pending = self._db.load_state(f.path)
            local = local_stat(f.path)
            if local is not None:
                why = self._why_kept(f.path, local, record, pending)
                if why is not None:
                    return why
                try:
                    os.unlink(f.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:  # a read-only cache, a directory we may not write
                    logger.warning("s3bp: could not remove %s from the managed cache: %s", f.path, exc.strerror or exc)
                    return f"could not be removed: {exc.strerror or exc}"
            return (f.path, record.verified_at if record is not None else None, time.time())

    def _pinned(self, path: str) -> bool:
        """Whether ``path`` is a pinned version's copy (``<endpoint id>/.versions/...``)."""
        rel = os.path.relpath(path, self.root).split(os.sep)
        return len(rel) > 2 and rel[1] == VERSIONS_DIR


#: An empty directory of the cache is removed once unchanged for this long (seconds): a save or load about to place a
#: file in it (its parents just made) never finds it gone.
EMPTY_DIR_GRACE = 60.0


def _remove_empty_dirs(empty: list[str], now: float) -> None:
    """Remove the empty directories (deepest first) unchanged for :data:`EMPTY_DIR_GRACE`; their parents go on a later prune."""
    for d in sorted(empty, key=len, reverse=True):
        with contextlib.suppress(OSError):
            if now - os.lstat(d).st_mtime > EMPTY_DIR_GRACE:
                os.rmdir(d)  # only if still empty


def _walk(root: str, empty: list[str], debris: list[str] | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``root`` (links not followed), leaving out s3bp's temp files and directories; the empty
    directories below ``root`` are added to ``empty``, those holding s3bp temp files or directories to ``debris``."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if not dirnames and not filenames and dirpath != root:
            empty.append(dirpath)
        if debris is not None and any(n.startswith(".s3bp-") for n in (*dirnames, *filenames)):
            debris.append(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".s3bp-")]
        for name in filenames:
            if name.startswith(".s3bp-"):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat_module.S_ISREG(st.st_mode):
                yield path, st


def record_use(db: StateDB, path: str, now: float | None = None) -> None:
    """Note a use of the managed cache's file ``path`` in ``db`` (for a copy placed outside :meth:`Cache.used`, e.g. a pinned version)."""
    local = local_stat(path)
    if local is not None:
        db.note_use(path, time.time() if now is None else now, local.size)
