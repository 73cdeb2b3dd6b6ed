"""Folder operations on mapped base directories: push, pull, sync and ls.

A folder is surveyed once (a walk of the local tree, one listing per bucket
prefix, the sync records and the upload journal), every file is classified
by :func:`s3bp.tree.classify`, and the operation acts on what the
classification says. The store hands over a :class:`FolderOps` bundle of
operations: uploads go through the same journal as a save, downloads run on
a thread pool through the same code as a load.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

from . import paths
from .errors import ConflictError, InvalidPathError, S3bpError
from .freshness import LocalStat, SyncRecord, md5_of_etag, record_of
from .localfiles import file_md5, is_temp, local_stat, sidecar
from .progress import bar, human_bytes
from .tree import REMOTE_SUFFIX, Action, Ignore, Remote, State, action, classify, key_parts, needs_listing, reserved
from .tree import RESERVED_PREFIX as TREE_RESERVED_PREFIX

if TYPE_CHECKING:
    from .index import StateDB
    from .uploads import UploadFuture


@dataclass(frozen=True)
class FileState:
    """One file of a surveyed folder: where it lives on both sides and how they relate."""

    path: str
    bucket: str
    key: str
    state: State
    local: LocalStat | None
    remote: Remote | None
    record: SyncRecord | None = None
    equal_bytes: bool = False  # both sides were compared byte for byte (by MD5) and found equal

    @property
    def size(self) -> int:
        """The size of the side that would be transferred."""
        if self.state in (State.LOCAL_NEWER, State.LOCAL_ONLY, State.REMOTE_DELETED, State.PENDING) and self.local:
            return self.local.size
        return self.remote.size if self.remote else (self.local.size if self.local else 0)


@dataclass
class FolderReport:
    """What a push, pull or sync did (or, with ``dry_run``, would do)."""

    operation: str
    directory: str
    dry_run: bool = False
    uploaded: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    deleted_local: list[str] = field(default_factory=list)
    deleted_remote: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    #: the conflicts whose S3 version was written beside the local file, as ``NAME.s3bp-remote`` (pull and sync)
    beside: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0
    #: whether S3 was listed; a push that is not (every local file matched a sync record) cannot report what only S3 has
    listed: bool = True

    @property
    def ok(self) -> bool:
        """No failure and no conflict."""
        return not self.failed and not self.conflicts

    def summary(self) -> str:
        """One line of counts, e.g. for the command line."""
        verb = "would " if self.dry_run else ""
        parts = [
            f"{verb}upload {len(self.uploaded)}" if self.dry_run else f"uploaded {len(self.uploaded)}",
            f"{verb}download {len(self.downloaded)}" if self.dry_run else f"downloaded {len(self.downloaded)}",
        ]
        if self.deleted_local or self.deleted_remote:
            parts.append(f"{verb}delete {len(self.deleted_local)} local, {len(self.deleted_remote)} in S3")
        parts += [f"{self.unchanged} unchanged", f"{len(self.skipped)} skipped", f"{len(self.conflicts)} conflicts", f"{len(self.failed)} failed"]
        line = f"{self.operation} {self.directory}: " + ", ".join(parts) + f" ({human_bytes(self.bytes)})"
        return line if self.listed else line + "; S3 not listed (every file had a sync record): `s3bp ls` shows what only S3 has"


#: What ``FolderOps.journal_all`` takes (path, bucket, key, sync record per file) and gives (per file, a future or an error).
_Saves = list[tuple[str, str, str, "SyncRecord | None"]]
_Journaled = list["UploadFuture | OSError | S3bpError"]


@dataclass(frozen=True)
class FolderOps:
    """What a folder operation may do, handed to it by the store (never the store itself).

    ``resolve(path)`` gives a path's :class:`~s3bp.paths.Resolution` as a save
    would; ``list(bucket, prefix)`` the objects under a prefix;
    ``download(path, bucket, key, target=..., expect=..., listed=...)`` writes an object to
    ``target`` (default ``path``) and returns the sync record of what it
    wrote, refusing with :class:`ConflictError` when ``path`` no longer
    matches ``expect`` (``listed``, the object as listed, lets one that is not large come in one GET); ``delete(bucket, key)`` deletes one object;
    ``journal(path, bucket, key, wait)`` queues an upload exactly as a save
    does (same options, same journal); ``list_as_of(bucket, prefix, at)`` the
    version of each object under a prefix that was current at time ``at``
    (for ``pull(as_of=...)``); ``drop(future)`` forgets the journal
    entry of a push's upload that failed for good (a conflict: the file is
    reported, not kept queued); ``conditional`` says whether uploads may only
    replace the version last synced (the ``conflict="raise"`` rule), which lets
    a push skip the listing.
    """

    mappings: Mapping[str, str]
    endpoint: str
    db: StateDB
    workers: int
    resolve: Callable[[str], paths.Resolution]
    list: Callable[[str, str], Iterable[Remote]]
    download: Callable[..., SyncRecord]
    delete: Callable[[str, str], None]
    journal: Callable[[str, str, str, bool], UploadFuture]
    list_as_of: Callable[[str, str, float], Iterable[Remote]] | None = None
    #: set by :func:`paired`: the one directory in ``mappings`` holds the keys under this prefix (not under its name)
    prefix: str | None = None
    #: the managed cache's directory for ``endpoint`` (where URL copies live), for :func:`listing`
    cache_dir: str | None = None
    drop: Callable[[UploadFuture], None] = lambda fut: None
    conditional: bool = False
    #: ``journal_all(saves, wait)``: ``journal`` for many files at once, given as (path, bucket, key, sync record);
    #: per file its future or what kept it from being journaled
    journal_all: Callable[[_Saves, bool], _Journaled] | None = None
    #: ``head(bucket, key)``: the object's :class:`~s3bp.remote.Head` (or Missing), for checks a listing cannot answer
    head: Callable[[str, str], Any] | None = None


def paired(ops: FolderOps, local_dir: str, bucket: str, prefix: str) -> FolderOps:
    """``ops`` for a local directory paired with ``s3://bucket/prefix``: files keyed by their path relative to the
    directory after the prefix, with the same records, journal and safety rules as a mapped directory."""
    resolve = functools.partial(paths.resolve_in_pair, local_dir=local_dir, bucket=bucket, prefix=prefix)
    return dataclasses.replace(ops, mappings={local_dir: bucket}, resolve=resolve, prefix=prefix)


def survey(
    ops: FolderOps, directory: str | os.PathLike[str], as_of: float | None = None, *, listing: bool = True,
    settled: list[str] | None = None,
) -> tuple[list[FileState], list[tuple[str, str]], bool]:
    """Classify every file under a mapped directory, locally and in S3.

    Parameters
    ----------
    ops
        The store's operations.
    directory
        A mapped base directory or a directory below one; it need not exist yet.
    as_of
        Survey S3 as it was at this time (seconds since the epoch): each
        object's version current then, and no object that was absent then.
    listing
        False: list S3 only if some local file has no sync record of its object
        (see :func:`s3bp.tree.needs_listing`); the others' S3 side is taken to be
        the recorded version, which a conditional upload then checks.
    settled
        With ``listing=False``, when S3 is not listed: the path of every file
        unchanged since its sync record of the object it maps to, with no save
        pending, is appended here instead of being returned (a push needs
        nothing for it).

    Returns
    -------
    (files, skipped, listed)
        Each file's :class:`FileState`, sorted by path; ``(path or key, reason)``
        for everything left out (ignored, unsafe keys, symlinks out of the tree);
        and whether S3 was listed.

    Raises
    ------
    InvalidPathError
        When ``directory`` is a file or is not under a mapped base directory.
    """
    top = paths.normalize(directory)
    if os.path.isfile(top):
        raise InvalidPathError(f"Cannot sync {top}: it is a file. Give a mapped directory, or use save/load for one file.")
    base = paths.deepest_base_dir(top, ops.mappings)
    if base is None:
        raise InvalidPathError(
            f"Cannot sync {top}: it is not under a mapped base directory. Map it first with `s3bp map {top} BUCKET`."
        )
    scope = _Scope(ops)
    # Journal first, then S3, then records: an upload finishing meanwhile is seen as pending or as done, never as neither.
    pending = ops.db.pending_under(top, os.sep)
    found = _walk(top, scope.skipped)
    if not listing and as_of is None:
        rows = ops.db.record_rows_under(top, os.sep)
        local, quick = _local_side(scope, found, rows, pending)
        records = {path: SyncRecord(*row) for path, row in rows.items()}  # the rows left: files not settled at a glance
        unrecorded = (p for p, (res, _) in local.items() if p not in pending and record_of(records.get(p), ops.endpoint, res.bucket, res.key) is None)
        if not needs_listing(conditional=ops.conditional, unrecorded=next(unrecorded, None) is not None):
            if settled is None:
                _unsettle(scope, quick, local, records)
            else:
                settled += [path for _, _, path, _ in quick]
            return _classify_all(scope, local, _as_recorded(scope, local, records), records, pending), scope.skipped, False
        _unsettle(scope, quick, local, records)
    else:
        local, _ = _local_side(scope, found)
    remote = _remote_side(scope, top, base, as_of)
    records = {r.path: r for r in ops.db.records_under(top, os.sep)}
    return _classify_all(scope, local, remote, records, pending), scope.skipped, True


def _as_recorded(
    scope: _Scope, local: dict[str, tuple[paths.Resolution, LocalStat]], records: dict[str, SyncRecord]
) -> dict[str, tuple[paths.Resolution, Remote]]:
    """S3's side as the sync records say it was: what a push that does not list takes it to be."""
    remote = {}
    for path, rec in records.items():
        res = local[path][0] if path in local else scope.resolve(path)
        if res is not None and rec.is_of(scope.ops.endpoint, res.bucket, res.key):
            remote[path] = (res, Remote(rec.key, rec.etag, rec.size, rec.verified_at))
    return remote


class _Scope:
    """The survey's shared bits: resolution with skip reasons, and ignore rules per base directory."""

    def __init__(self, ops: FolderOps):
        self.ops = ops
        self.skipped: list[tuple[str, str]] = []
        self._ignores: dict[str, Ignore] = {}
        self._dirs: dict[str, tuple[str, paths.Resolution]] = {}  # directory -> (key prefix, a file's resolution)
        self._rel_dirs: dict[tuple[str, str], str] = {}  # (base dir, directory) -> the directory's relpath + "/"

    def resolve(self, path: str) -> paths.Resolution | None:
        """The resolution of a path under a base directory, or None (noting why when it is an error)."""
        try:
            res = self.ops.resolve(path)
        except S3bpError as exc:
            self.skipped.append((path, str(exc)))
            return None
        return res if res.base_dir is not None else None

    def resolve_in(self, directory: str, name: str, path: str) -> paths.Resolution | None:
        """:meth:`resolve` of the file ``name`` in the normalised ``directory``, derived from a sibling's resolution.

        The rules (:func:`s3bp.paths.resolve`, :func:`s3bp.paths.resolve_in_pair`) depend on a file's
        directory and not on its name, unless a base directory is the file itself: a sibling's key with
        this name in place of its own is this file's key, still checked by :func:`s3bp.paths.check_key`.
        """
        if path in self.ops.mappings:
            return self.resolve(path)
        known = self._dirs.get(directory)
        if known is None:
            res = self.resolve(path)
            if res is not None and res.path == path and res.key.endswith(name):
                self._dirs[directory] = (res.key[: len(res.key) - len(name)], res)
            return res
        prefix, sibling = known
        try:
            key = paths.check_key(prefix + name, path)
        except S3bpError as exc:
            self.skipped.append((path, str(exc)))
            return None
        return paths.Resolution(path, sibling.bucket, key, sibling.base_dir, sibling.reason, sibling.endpoint)

    def glance(self, directory: str) -> tuple[str, str, str, Callable[[str], bool]] | None:
        """What every plain file of ``directory`` shares once one of them is resolved: (key prefix, bucket, the
        directory's path relative to its base directory, the base directory's ignore rules); None before that,
        or when its keys fall under s3bp's reserved prefix."""
        known = self._dirs.get(directory)
        if known is None or known[1].base_dir is None or reserved(known[0]):
            return None
        prefix, sibling = known
        return (prefix, sibling.bucket, *self._rules(known[1].base_dir, directory))

    def ignored(self, res: paths.Resolution, directory: str | None = None, name: str | None = None) -> bool:
        """Whether the base directory's ignore rules skip this file (in ``directory``, named ``name``, when known)."""
        assert res.base_dir is not None
        if directory is None or name is None:
            directory, name = os.path.split(res.path)
        rel_dir, ignore = self._rules(res.base_dir, directory)
        return ignore(rel_dir + name)

    def _rules(self, base_dir: str, directory: str) -> tuple[str, Ignore]:
        """``directory``'s path relative to ``base_dir`` (``/``-separated, ending in ``/``; empty for the base directory
        itself) and the base directory's ignore rules, each made once."""
        if base_dir not in self._ignores:
            self._ignores[base_dir] = Ignore.for_base_dir(base_dir)
        rel_dir = self._rel_dirs.get((base_dir, directory))
        if rel_dir is None:
            rel = os.path.relpath(directory, base_dir)
            rel_dir = self._rel_dirs[(base_dir, directory)] = "" if rel == os.curdir else rel.replace(os.sep, "/") + "/"
        return rel_dir, self._ignores[base_dir]


#: Where a field of :class:`SyncRecord` is in a row of :meth:`~s3bp.index.StateDB.record_rows_under`.
_ROW = {name: i for i, name in enumerate(SyncRecord.__dataclass_fields__)}
_R_ENDPOINT, _R_BUCKET, _R_KEY, _R_SIZE, _R_MTIME = (_ROW[n] for n in ("endpoint", "bucket", "key", "size", "mtime_ns"))

#: A file left out of a survey's classification, unchanged since its record: (directory, name, path, its record's row).
_Quick = tuple[str, str, str, tuple]


def _local_side(
    scope: _Scope, found: list[tuple[str, list[tuple[str, str, int, int]]]], rows: dict[str, tuple] | None = None,
    pending: Collection[str] = (),
) -> tuple[dict[str, tuple[paths.Resolution, LocalStat]], list[_Quick]]:
    """Every local file found that is not ignored, with its resolution and stat.

    With ``rows`` (the records by path, see :meth:`~s3bp.index.StateDB.record_rows_under`), a file whose row is of
    the object it maps to and whose size and mtime_ns are the row's, with no save pending, is set apart instead (its
    row taken out of ``rows``): compared per directory, with no object made for it.
    """
    local = {}
    quick: list[_Quick] = []
    endpoint, mappings = scope.ops.endpoint, scope.ops.mappings
    for directory, entries in found:
        glance = None
        for name, path, size, mtime_ns in entries:
            if glance is None and rows:
                glance = scope.glance(directory)
            if glance is not None and rows:
                prefix, bucket, rel_dir, ignored = glance
                row = rows.get(path)
                if (
                    row is not None and row[_R_SIZE] == size and row[_R_MTIME] == mtime_ns and row[_R_KEY] == prefix + name
                    and row[_R_BUCKET] == bucket and row[_R_ENDPOINT] == endpoint and path not in pending and path not in mappings
                    and len(row[_R_KEY]) <= paths.MAX_KEY_BYTES // 4  # a key this short is within S3's limit (4 bytes a character at most)
                    and not ignored(rel_dir + name)
                ):  # fmt: skip
                    quick.append((directory, name, path, rows.pop(path)))
                    continue
            res = scope.resolve_in(directory, name, path)
            if res is not None and reserved(res.key):
                scope.skipped.append((path, f"its key {res.key} is under s3bp's reserved prefix; not synced"))
            elif res is not None and not scope.ignored(res, directory, name):
                local[res.path] = (res, LocalStat(size, mtime_ns))
    return local, quick


def _unsettle(
    scope: _Scope, quick: list[_Quick], local: dict[str, tuple[paths.Resolution, LocalStat]], records: dict[str, SyncRecord]
) -> None:
    """Put the files :func:`_local_side` set apart back among the others, to be classified like them."""
    for directory, name, path, row in quick:
        res = scope.resolve_in(directory, name, path)
        assert res is not None  # its directory's key prefix was known when it was set apart
        local[path] = (res, LocalStat(row[_R_SIZE], row[_R_MTIME]))
        records[path] = SyncRecord(*row)


def _remote_side(scope: _Scope, top: str, base: str, as_of: float | None = None) -> dict[str, tuple[paths.Resolution, Remote]]:
    """Every object that belongs under ``top`` (one listing per mapped directory involved), by local path."""
    mappings = scope.ops.mappings
    remote = {}
    roots = [base] + sorted(d for d in mappings if d != top and paths.contains(top, d))
    for root in roots:
        bucket = mappings[root]
        start = top if root == base else root
        if scope.ops.prefix is None:
            name_prefix, list_prefix = paths.base_dir_key(root, root) + "/", paths.base_dir_key(root, start) + "/"
        else:  # a directory paired with s3://bucket/prefix
            below = os.path.relpath(start, root).replace(os.sep, "/")
            name_prefix, list_prefix = scope.ops.prefix, scope.ops.prefix + ("" if below == "." else below + "/")
        if as_of is None:
            listed = scope.ops.list(bucket, list_prefix)
        else:
            assert scope.ops.list_as_of is not None, "this store cannot list versions"
            listed = scope.ops.list_as_of(bucket, list_prefix, as_of)
        for obj in listed:
            if (obj.key.endswith("/") and obj.size == 0) or reserved(obj.key):
                continue  # a "folder" marker made by a console, or s3bp's own (names of versions)
            parts = key_parts(obj.key, name_prefix)
            if parts is None:
                scope.skipped.append((f"s3://{bucket}/{obj.key}", "unsafe key: it would leave the base directory; not written"))
                continue
            path = os.path.join(root, *parts)
            res = scope.resolve(path)
            if res is None or (res.bucket, res.key) != (bucket, obj.key) or scope.ignored(res):
                continue  # belongs to a deeper mapping, or ignored
            if not _inside(path, root):
                scope.skipped.append((path, "a directory on its way is a symlink out of the base directory; not written"))
                continue
            remote[path] = (res, obj)
    return remote


def _classify_all(
    scope: _Scope,
    local: dict[str, tuple[paths.Resolution, LocalStat]],
    remote: dict[str, tuple[paths.Resolution, Remote]],
    records: dict[str, SyncRecord],
    pending: set[str],
) -> list[FileState]:
    """The state of every path seen on either side or in the records, sorted by path."""
    files = []
    endpoint, no_local, no_remote = scope.ops.endpoint, (None, None), (None, None)
    for path in sorted(set(local) | set(remote) | set(records)):
        res, stat = local.get(path, no_local)
        remote_res, obj = remote.get(path, no_remote)
        res = res or remote_res or scope.resolve(path)
        if res is None:
            continue
        record = record_of(records.get(path), endpoint, res.bucket, res.key)
        if record is None and stat is None and obj is None:
            continue
        compared: list[bool] = []
        state = classify(stat, record, obj, pending=path in pending, same_content=_comparer(path, obj, compared))
        files.append(FileState(path, res.bucket, res.key, state, stat, obj, record, bool(compared and compared[0])))
    return files


def run(
    ops: FolderOps,
    operation: str,
    directory: str | os.PathLike[str],
    *,
    delete: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    progress: bool | None = None,
    as_of: float | None = None,
) -> FolderReport:
    """Carry out ``push``, ``pull`` or ``sync`` on a directory; see :meth:`s3bp.core.Store.push`.

    With ``as_of`` (a pull only), the directory is brought to the state S3 had
    at that time; files that receive an older version are recorded as such
    (:attr:`~s3bp.freshness.SyncRecord.as_of`), so that no later push sends them as new.
    """
    if as_of is not None and operation != "pull":
        raise ValueError(f"as_of is for a pull only, not a {operation}")
    settled: list[str] = []  # files unchanged since their sync, when S3 is not listed: nothing to do for them
    files, skipped, listed = survey(ops, directory, as_of, listing=operation != "push" or delete, settled=settled)
    report = FolderReport(operation, paths.normalize(directory), dry_run, skipped=skipped, listed=listed, unchanged=len(settled))
    todo: dict[Action, list[FileState]] = {}
    for f in files:
        act = action(f.state, operation, delete)
        todo.setdefault(act, []).append(f)
        if act is Action.NOTHING:
            _note_untouched(report, f)
    uploads, downloads = todo.get(Action.UPLOAD, []), todo.get(Action.DOWNLOAD, [])
    conflicts = todo.get(Action.CONFLICT, [])
    report.conflicts = [f.path for f in conflicts]
    if dry_run:
        report.uploaded = [f.path for f in uploads]
        report.downloaded = [f.path for f in downloads]
        report.deleted_local = [f.path for f in todo.get(Action.DELETE_LOCAL, [])]
        report.deleted_remote = [f.path for f in todo.get(Action.DELETE_REMOTE, [])]
        report.bytes = sum(f.size for f in uploads + downloads)
        return report
    db = ops.db
    now = time.time()
    db.put_records(
        [
            SyncRecord(
                f.path, ops.endpoint, f.bucket, f.key, f.remote.etag, f.local.size, f.local.mtime_ns, now,
                version_id=f.remote.version_id, as_of=_old(f.remote, as_of),
            )  # fmt: skip
            for f in files
            if f.state is State.SAME and f.equal_bytes and f.local and f.remote
        ]
    )
    for f in todo.get(Action.FORGET, []):
        db.delete_record(f.path)
    fetch_beside = [] if operation == "push" or as_of is not None else conflicts
    total = sum(f.size for f in uploads + downloads + fetch_beside)
    with bar(progress, total, len(uploads) + len(downloads) + len(fetch_beside), operation) as tick:
        _download_all(ops, downloads, fetch_beside, report, tick, as_of)
        for f in todo.get(Action.DELETE_LOCAL, []):
            _attempt(report, f, functools.partial(_delete_local, db, f), report.deleted_local)
        for f in todo.get(Action.DELETE_REMOTE, []):
            _attempt(report, f, functools.partial(_delete_remote, ops, f), report.deleted_remote)
        _upload_all(ops, uploads, report, tick, wait)
    return report


#: Why an operation leaves a file in this state alone, where it is worth knowing (else the file is counted unchanged).
_UNTOUCHED_REASONS = {
    State.REMOTE_NEWER: "S3 has a newer version; pull it",
    State.REMOTE_ONLY: "only in S3; pull it",
    State.LOCAL_NEWER: "the local file is newer; push it",
    State.LOCAL_ONLY: "only local; push it",
    State.LOCAL_DELETED: "deleted locally; `push --delete` deletes it in S3",  # only push leaves it alone
    State.REMOTE_DELETED: "deleted in S3; `pull --delete` deletes it here",  # only pull leaves it alone
    State.PENDING: "a save of it is waiting in the upload queue",
    State.OLD_VERSION: "an old version brought back by pull(as_of=...), since deleted in S3: push never sends it; save it to upload it",
}


def _note_untouched(report: FolderReport, f: FileState) -> None:
    """Count a file the operation leaves alone, saying why where it is worth knowing."""
    reason = None if f.state is State.SAME else _UNTOUCHED_REASONS.get(f.state)
    if reason:
        report.skipped.append((f.path, reason))
    else:
        report.unchanged += 1


def _old(remote: Remote, as_of: float | None) -> float:
    """The ``as_of`` mark of a record of ``remote``: the time asked for when it is not the object's current version, else 0."""
    return as_of if as_of is not None and not remote.latest else 0.0


def _download_all(
    ops: FolderOps, downloads: list[FileState], beside: list[FileState], report: FolderReport, tick: Callable, as_of: float | None = None
) -> None:
    """Download files (each only if its local side is still as surveyed) and conflicts' S3 sides, concurrently."""
    if not downloads and not beside:
        return

    received: list[SyncRecord] = []

    def fetch(f: FileState, beside: bool) -> int:
        if beside:  # NAME.s3bp-remote is s3bp's own file: overwrite whatever it holds
            rec = ops.download(f.path, f.bucket, f.key, target=sidecar(f.path, REMOTE_SUFFIX), listed=f.remote)
        else:  # only if the local file is still as surveyed, or now holds these very bytes (e.g. another pull placed them)
            pinned = {"version_id": f.remote.version_id} if f.remote is not None and f.remote.version_id is not None else {}
            rec = ops.download(f.path, f.bucket, f.key, expect=f.local, listed=f.remote, **pinned)
            if f.remote is not None and _old(f.remote, as_of):
                rec = dataclasses.replace(rec, as_of=_old(f.remote, as_of))
            received.append(rec)
        tick(rec.size)
        return rec.size

    workers = max(1, min(ops.workers, len(downloads) + len(beside)))
    with ThreadPoolExecutor(workers, thread_name_prefix="s3bp-pull") as pool:
        jobs: list[tuple[FileState, Future[int], list[str] | None]] = [(f, pool.submit(fetch, f, False), report.downloaded) for f in downloads]
        jobs += [(f, pool.submit(fetch, f, True), report.beside) for f in beside]
        for f, job, done in jobs:
            _attempt(report, f, job.result, done)
    # One transaction for all records; a crash before it only costs the next run a comparison by MD5.
    ops.db.put_records(received)


def _upload_all(ops: FolderOps, uploads: list[FileState], report: FolderReport, tick: Callable, wait: bool) -> None:
    """Queue every upload (snapshot and journal first), then wait for them all if asked to."""
    if not uploads:
        return  # nothing to journal: no upload queue, no client (a push of an unchanged folder imports no boto3)
    futures = []
    journaled: _Journaled = []
    if ops.journal_all is not None:
        journaled = ops.journal_all([(f.path, f.bucket, f.key, f.record) for f in uploads], wait)
    else:
        for f in uploads:
            try:
                journaled.append(ops.journal(f.path, f.bucket, f.key, wait))
            except (OSError, S3bpError) as exc:
                journaled.append(exc)
    for f, got in zip(uploads, journaled):
        if isinstance(got, Exception):
            report.failed.append((f.path, str(got)))
        else:
            futures.append((f, got))
    for f, fut in futures:
        if wait:
            _attempt(report, f, functools.partial(_size_when_done, fut, f.size), report.uploaded)
            if f.path in report.conflicts:  # S3 changed since the record: reported, not kept queued (a push is no save)
                ops.drop(fut)
        else:
            report.uploaded.append(f.path)
            report.bytes += f.size
        tick(f.size)


def _attempt(report: FolderReport, f: FileState, do: Callable[[], Any], done: list[str] | None) -> None:
    """Run one file's step, filing it as done, a conflict or a failure; a step returning a size adds it to the bytes."""
    try:
        size = do()
    except ConflictError as exc:
        report.conflicts.append(f.path)
        report.skipped.append((f.path, str(exc)))
    except (OSError, S3bpError) as exc:
        report.failed.append((f.path, str(exc)))
    else:
        if done is not None:
            done.append(f.path)
        if isinstance(size, int):
            report.bytes += size


def _size_when_done(fut: UploadFuture, size: int) -> int:
    """Wait for an upload; its size, for the report."""
    fut.result()
    return size


def _delete_remote(ops: FolderOps, f: FileState) -> None:
    """Delete a file's object in S3 and forget its sync record."""
    ops.delete(f.bucket, f.key)
    ops.db.delete_record(f.path)


def _delete_local(db: StateDB, f: FileState) -> None:
    """Delete a local file whose S3 object was deleted, unless it changed since the survey."""
    now = local_stat(f.path)
    if now is None:
        return
    if now != f.local:
        raise ConflictError(f"{f.path} changed after it was deleted in S3; kept it.", f.path, f.bucket, f.key)
    os.unlink(f.path)
    db.delete_record(f.path)


def _walk(top: str, skipped: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str, int, int]]]]:
    """Every directory under ``top`` with its regular files as (name, path, size, mtime_ns); symlinks only when they
    point inside ``top``'s tree, directory links never. One ``stat`` per file (``os.scandir`` tells links and
    directories apart without one)."""
    real_top = os.path.realpath(top)
    found = []
    todo = [top]
    while todo:
        directory = todo.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # unreadable or vanished, as os.walk skips it
        files = []
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    # s3bp's own private directories (a save being written): never walked, whatever .s3bpignore re-includes
                    if not name.startswith(".s3bp-"):
                        todo.append(entry.path)
                    continue
                if entry.is_symlink():
                    if entry.is_dir():
                        if not name.startswith(".s3bp-"):
                            skipped.append((entry.path, "a symlinked directory; not followed"))
                        continue
                    if not paths.contains(real_top, os.path.realpath(entry.path)):
                        skipped.append((entry.path, "a symlink pointing out of the directory; not followed"))
                        continue
                if name.startswith(".s3bp-") and is_temp(name):
                    continue  # a download being written beside its target: never pushed, whatever .s3bpignore re-includes
                st = entry.stat()
            except OSError:
                continue  # vanished, or a dangling link
            if S_ISREG(st.st_mode):
                files.append((name, entry.path, st.st_size, st.st_mtime_ns))
        found.append((directory, files))
    return found


def _inside(path: str, root: str) -> bool:
    """Whether the deepest existing directory on the way to ``path`` really lies inside ``root``."""
    parent = os.path.dirname(path)
    while not os.path.lexists(parent) and paths.contains(root, parent) and parent != root:
        parent = os.path.dirname(parent)
    if not os.path.lexists(parent):
        return True  # nothing of the tree exists yet: the download creates plain directories
    return paths.contains(os.path.realpath(root), os.path.realpath(parent))


def _comparer(path: str, remote: Remote | None, seen: list[bool]) -> Callable[[], bool]:
    """A ``same_content`` callback: the local file's MD5 against a single-part ETag (multipart ones cannot tell)."""

    def same() -> bool:
        md5 = md5_of_etag(remote.etag) if remote is not None else None
        result = md5 is not None and remote is not None and os.path.getsize(path) == remote.size and file_md5(path) == md5
        seen.append(result)
        return result

    return same


# -- listing S3 directly ------------------------------------------------------------

#: Keys under this prefix are s3bp's own (e.g. version names) and never listed (the rule is :func:`s3bp.tree.reserved`).
RESERVED_PREFIX = TREE_RESERVED_PREFIX


@dataclass(frozen=True)
class Listed:
    """One object of :func:`s3bp.list_objects`: as S3 lists it, and the state of its local copy, if there is one."""

    bucket: str
    key: str
    size: int
    last_modified: float
    etag: str
    #: the file under a mapped directory, else the managed cache's copy; None when neither exists
    local_path: str | None = None
    #: how the local copy relates to the object (as :func:`s3bp.ls` says), None without one
    state: State | None = None


def listing(ops: FolderOps, bucket: str, prefix: str) -> list[Listed]:
    """Every object of ``bucket`` under ``prefix`` (s3bp's reserved ``.s3bp/`` keys and folder markers left out), with
    the state of its local copy where a mapped file or a cache copy exists; one listing, no other request."""
    out = []
    for obj in ops.list(bucket, prefix):
        if reserved(obj.key) or (obj.key.endswith("/") and obj.size == 0):
            continue
        path = _local_copy(ops, bucket, obj.key)
        state = None
        if path is not None:
            record, pending = ops.db.load_state(path)
            state = classify(local_stat(path), record_of(record, ops.endpoint, bucket, obj.key), obj, pending=pending)
        out.append(Listed(bucket, obj.key, obj.size, obj.last_modified, obj.etag, path, state))
    return out


def _local_copy(ops: FolderOps, bucket: str, key: str) -> str | None:
    """The existing local file of ``bucket``/``key``: under a mapped directory that keys it so, else in the managed cache."""
    mapped = paths.directory_of(bucket, key, ops.mappings)
    if mapped is not None and os.path.isfile(mapped):
        try:
            res = ops.resolve(mapped)
        except S3bpError:
            res = None
        if res is not None and (res.bucket, res.key) == (bucket, key):
            return mapped
    parts = paths.safe_key_parts(key)
    if ops.cache_dir is not None and parts is not None:
        cached = os.path.join(ops.cache_dir, bucket, *parts)
        if os.path.isfile(cached):
            return cached
    return None
