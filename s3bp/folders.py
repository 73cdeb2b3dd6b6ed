"""Folder operations on mapped base directories: push, pull, sync and ls.

A folder is surveyed once (a walk of the local tree, one listing per bucket
prefix, the sync records and the upload journal), every file is classified
by :func:`s3bp.tree.classify`, and the operation acts on what the
classification says. Uploads go through the store's upload queue, downloads
run on a thread pool sharing the store's client.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import paths
from .errors import ConflictError, InvalidPathError, S3bpError
from .freshness import LocalStat, SyncRecord
from .progress import bar
from .tree import REMOTE_SUFFIX, Action, Ignore, Remote, State, action, classify, key_parts

if TYPE_CHECKING:
    from .core import Store


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
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0

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
        return f"{self.operation} {self.directory}: " + ", ".join(parts) + f" ({_human(self.bytes)})"


def survey(store: Store, directory: str | os.PathLike[str]) -> tuple[list[FileState], list[tuple[str, str]]]:
    """Classify every file under a mapped directory, locally and in S3.

    Parameters
    ----------
    store
        The store whose configuration, client and state are used.
    directory
        A mapped base directory or a directory below one; it need not exist yet.

    Returns
    -------
    (files, skipped)
        Each file's :class:`FileState`, sorted by path; and ``(path or key, reason)``
        for everything left out (ignored, unsafe keys, symlinks out of the tree).

    Raises
    ------
    InvalidPathError
        When ``directory`` is a file or is not under a mapped base directory.
    """
    top = paths.normalize(directory)
    if os.path.isfile(top):
        raise InvalidPathError(f"Cannot sync {top}: it is a file. Give a mapped directory, or use save/load for one file.")
    store.settings()
    mappings = store._mappings
    base = paths.deepest_base_dir(top, mappings)
    if base is None:
        raise InvalidPathError(
            f"Cannot sync {top}: it is not under a mapped base directory. Map it first with `s3bp map {top} BUCKET`."
        )
    client = store.client()
    endpoint = client.meta.endpoint_url
    db, _ = store._state()
    skipped: list[tuple[str, str]] = []
    ignores: dict[str, Ignore] = {}

    def ignored(res: paths.Resolution) -> bool:
        assert res.base_dir is not None
        if res.base_dir not in ignores:
            ignores[res.base_dir] = Ignore.for_base_dir(res.base_dir)
        return ignores[res.base_dir](os.path.relpath(res.path, res.base_dir).replace(os.sep, "/"))

    def resolve(path: str) -> paths.Resolution | None:
        try:
            res = store.resolve(path)
        except S3bpError as exc:
            skipped.append((path, str(exc)))
            return None
        return res if res.base_dir is not None else None

    # Journal first, then S3, then records: an upload finishing meanwhile is seen as pending or as done, never as neither.
    pending = db.pending_under(top, os.sep)
    local: dict[str, tuple[paths.Resolution, LocalStat]] = {}
    for path, stat in _walk(top, skipped):
        res = resolve(path)
        if res is not None and not ignored(res):
            local[path] = (res, stat)

    remote: dict[str, tuple[paths.Resolution, Remote]] = {}
    roots = [base] + sorted(d for d in mappings if d != top and paths.contains(top, d))
    for root in roots:
        bucket = mappings[root]
        name_prefix = paths.base_dir_key(root, root) + "/"
        start = top if root == base else root
        listing_prefix = paths.base_dir_key(root, start) + "/"
        for obj in store._list(client, bucket, listing_prefix):
            if obj.key.endswith("/") and obj.size == 0:
                continue  # a "folder" marker made by a console
            parts = key_parts(obj.key, name_prefix)
            if parts is None:
                skipped.append((f"s3://{bucket}/{obj.key}", "unsafe key: it would leave the base directory; not written"))
                continue
            path = os.path.join(root, *parts)
            res = resolve(path)
            if res is None or (res.bucket, res.key) != (bucket, obj.key) or ignored(res):
                continue  # belongs to a deeper mapping, or ignored
            if not _inside(path, root):
                skipped.append((path, "a directory on its way is a symlink out of the base directory; not written"))
                continue
            remote[path] = (res, obj)

    records = {r.path: r for r in db.records_under(top, os.sep)}
    files = []
    for path in sorted(set(local) | set(remote) | set(records)):
        stat = local[path][1] if path in local else None
        obj = remote[path][1] if path in remote else None
        res = local[path][0] if path in local else remote[path][0] if path in remote else resolve(path)
        if res is None:
            continue
        record = records.get(path)
        if record is not None and (record.endpoint, record.bucket, record.key) != (endpoint, res.bucket, res.key):
            record = None
        if record is None and stat is None and obj is None:
            continue
        compared: list[bool] = []
        state = classify(stat, record, obj, pending=path in pending, same_content=_comparer(path, obj, compared))
        files.append(FileState(path, res.bucket, res.key, state, stat, obj, record, bool(compared and compared[0])))
    return files, skipped


def run(
    store: Store,
    operation: str,
    directory: str | os.PathLike[str],
    *,
    delete: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    progress: bool | None = None,
) -> FolderReport:
    """Carry out ``push``, ``pull`` or ``sync`` on a directory; see :meth:`s3bp.core.Store.push`."""
    files, skipped = survey(store, directory)
    report = FolderReport(operation, paths.normalize(directory), dry_run, skipped=skipped)
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
    client = store.client()
    endpoint = client.meta.endpoint_url
    db, _ = store._state()
    now = time.time()
    db.put_records(
        [
            SyncRecord(f.path, endpoint, f.bucket, f.key, f.remote.etag, f.local.size, f.local.mtime_ns, now)
            for f in files
            if f.state is State.SAME and f.equal_bytes and f.local and f.remote
        ]
    )
    for f in todo.get(Action.FORGET, []):
        db.delete_record(f.path)
    fetch_beside = [] if operation == "push" else conflicts
    total = sum(f.size for f in uploads + downloads + fetch_beside)
    with bar(progress, total, len(uploads) + len(downloads) + len(fetch_beside), operation) as tick:
        _download_all(store, client, endpoint, downloads, fetch_beside, report, tick)
        for f in todo.get(Action.DELETE_LOCAL, []):
            _attempt(report, f, lambda f=f: _delete_local(db, f), report.deleted_local)
        for f in todo.get(Action.DELETE_REMOTE, []):
            _attempt(report, f, lambda f=f: (store._delete_object(client, f.bucket, f.key), db.delete_record(f.path)), report.deleted_remote)
        _upload_all(store, uploads, report, tick, wait)
    return report


def _note_untouched(report: FolderReport, f: FileState) -> None:
    """Count a file the operation leaves alone, saying why where it is worth knowing."""
    reasons = {
        State.REMOTE_NEWER: "S3 has a newer version; pull it",
        State.REMOTE_ONLY: "only in S3; pull it",
        State.LOCAL_NEWER: "the local file is newer; push it",
        State.LOCAL_ONLY: "only local; push it",
        State.LOCAL_DELETED: "deleted locally; `push --delete` deletes it in S3",  # only push leaves it alone
        State.REMOTE_DELETED: "deleted in S3; `pull --delete` deletes it here",  # only pull leaves it alone
        State.PENDING: "a save of it is waiting in the upload queue",
    }
    reason = reasons.get(f.state)
    if reason:
        report.skipped.append((f.path, reason))
    else:
        report.unchanged += 1


def _download_all(
    store: Store, client: Any, endpoint: str, downloads: list[FileState], beside: list[FileState], report: FolderReport, tick: Callable
) -> None:
    """Download files (each only if its local side is still as surveyed) and conflicts' S3 sides, concurrently."""
    if not downloads and not beside:
        return

    received: list[SyncRecord] = []

    def fetch(f: FileState, beside: bool) -> int:
        res = paths.Resolution(f.path, f.bucket, f.key, None, "")
        if beside:  # NAME.s3bp-remote is s3bp's own file: overwrite whatever it holds
            rec = store._download(client, res, endpoint, target=f.path + REMOTE_SUFFIX, progress=False)
        else:  # only if the local file is still as surveyed
            rec = store._download(client, res, endpoint, expect=f.local, progress=False)
            received.append(rec)
        tick(rec.size)
        return rec.size

    workers = max(1, min(store.settings()["max_workers"], len(downloads) + len(beside)))
    with ThreadPoolExecutor(workers, thread_name_prefix="s3bp-pull") as pool:
        jobs = [(f, pool.submit(fetch, f, False), report.downloaded) for f in downloads]
        jobs += [(f, pool.submit(fetch, f, True), None) for f in beside]
        for f, job, done in jobs:
            _attempt(report, f, job.result, done)
    # One transaction for all records; a crash before it only costs the next run a comparison by MD5.
    store._state()[0].put_records(received)


def _upload_all(store: Store, uploads: list[FileState], report: FolderReport, tick: Callable, wait: bool) -> None:
    """Queue every upload (snapshot and journal first), then wait for them all if asked to."""
    futures = []
    for f in uploads:
        res = paths.Resolution(f.path, f.bucket, f.key, None, "")
        try:
            futures.append((f, store._enqueue(res, f.path, wait=wait)))
        except (OSError, S3bpError) as exc:
            report.failed.append((f.path, str(exc)))
    for f, fut in futures:
        if wait:
            _attempt(report, f, lambda fut=fut, f=f: (fut.result(), f.size)[1], report.uploaded)
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


def _delete_local(db: Any, f: FileState) -> None:
    """Delete a local file whose S3 object was deleted, unless it changed since the survey."""
    try:
        st = os.stat(f.path)
    except FileNotFoundError:
        return
    if LocalStat(st.st_size, st.st_mtime_ns) != f.local:
        raise ConflictError(f"{f.path} changed after it was deleted in S3; kept it.", f.path, f.bucket, f.key)
    os.unlink(f.path)
    db.delete_record(f.path)


def _walk(top: str, skipped: list[tuple[str, str]]) -> Iterator[tuple[str, LocalStat]]:
    """Every regular file under ``top``; symlinks only when they point inside ``top``'s tree, directory links never."""
    real_top = os.path.realpath(top)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames:
            if os.path.islink(os.path.join(dirpath, name)):
                skipped.append((os.path.join(dirpath, name), "a symlinked directory; not followed"))
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not paths.contains(real_top, os.path.realpath(path)):
                skipped.append((path, "a symlink pointing out of the directory; not followed"))
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished, or a dangling link
            if os.path.isfile(path):
                yield path, LocalStat(st.st_size, st.st_mtime_ns)


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
        result = False
        etag = remote.etag.strip('"') if remote else ""
        if remote is not None and "-" not in etag and os.path.getsize(path) == remote.size:
            digest = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            result = digest.hexdigest() == etag
        seen.append(result)
        return result

    return same


def _human(n: float) -> str:
    """A byte count for people."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
