"""The background upload queue: ordered per object, snapshotted, journaled.

Guarantees, whatever the timing:

* per S3 object, the last save wins: a newer save supersedes a queued older
  one (which is then never sent) and waits for one already in flight; across
  processes, saves of a path are numbered by the state database in the order
  they are placed on disk (a path lock), and an object is uploaded by one
  process at a time (an object lock), so an older upload never lands last;
* an upload reads an immutable snapshot in the spool, never the live file;
* every save is in the journal (SQLite, in the state directory) before
  ``save_object`` returns, owned by this process through an owner lock; a
  process that dies leaves its entries for the next one to adopt, and one
  that exits may hand them to a background uploader (:mod:`s3bp.handoff`);
* failures are printed once, logged, kept in the journal with their error,
  and reported again by :meth:`UploadQueue.flush`.

The queue knows nothing of S3: it calls the ``upload`` function it is given.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    BucketNotFoundError,
    ConflictError,
    CredentialsError,
    InvalidArgumentError,
    InvalidBucketNameError,
    S3bpError,
    UploadError,
)
from .freshness import SyncRecord
from .index import JournalEntry, StateDB, is_entry_id
from .localfiles import make_snapshot, remove
from .locks import FileLock, StripedLocks

if TYPE_CHECKING:
    from .offload import ChildLink

logger = logging.getLogger("s3bp")

#: Failures that no retry mends: the entry waits for an explicit flush, a resolution or ``forget``.
PERMANENT = (ConflictError, AccessDeniedError, BucketNotFoundError, CredentialsError, InvalidBucketNameError)

_STOP = object()

#: How often a wait looks whether a child uploader it waits for was stopped by a signal (seconds).
HALT_CHECK = 1.0

#: How many child uploader processes one queue starts at most (one at a time); after that, its threads upload.
MAX_CHILDREN = 3

#: How many saves :meth:`UploadQueue.journal_many` journals in one transaction, at most.
BATCH_FILES = 64

#: How many bytes of snapshots one such batch copies before its rows are written (one larger file is a batch alone).
BATCH_BYTES = 8 << 20


@dataclass(frozen=True)
class Save:
    """One save to journal: the local file ``path`` (whose bytes are in ``source`` now, default ``path``) for ``bucket``/``key``.

    ``placed`` and ``digest`` are as for :meth:`UploadQueue.journal`.
    """

    path: str
    bucket: str
    key: str
    options: UploadOptions
    source: str = ""
    placed: Callable[[], object] | None = None
    digest: Callable[[int], int | None] | None = None


def _batches(saves: list[Save]) -> Iterator[list[Save]]:
    """``saves`` in batches of at most :data:`BATCH_FILES` files and about :data:`BATCH_BYTES` bytes (sizes as they are now)."""
    batch: list[Save] = []
    size = 0
    for save in saves:
        try:
            size += os.stat(save.source or save.path).st_size
        except OSError:
            pass  # its snapshot says what is wrong
        batch.append(save)
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class UploadFuture(Future):
    """The handle :func:`s3bp.save_object` returns.

    ``done()``, ``result(timeout)`` (raises :class:`~s3bp.errors.UploadError`)
    and ``exception()`` behave as for any :class:`concurrent.futures.Future`.
    Once done, ``unchanged`` is True when the save held the very bytes S3
    already had from this machine's last sync, so nothing was uploaded.
    """

    def __init__(self, bucket: str, key: str, path: str):
        super().__init__()
        self.bucket, self.key, self.path = bucket, key, path
        self.entry_id: str | None = None  #: the journal entry this save made (None: not journaled by this call)
        self.unchanged: bool | None = None  #: set when done: True if no upload was needed (S3 held these bytes already)

    def cancel(self) -> bool:
        """Refuse, returning False: the save is journaled and goes up whatever this handle says (``s3bp.forget`` drops it).

        A cancelled future could not be told the upload's outcome, and the
        thread telling it would stop there.
        """
        return False

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<UploadFuture s3://{self.bucket}/{self.key} {state}>"


@dataclass(frozen=True)
class PendingUpload:
    """One entry of :func:`s3bp.pending_uploads`."""

    bucket: str
    key: str
    path: str
    state: str
    pid: int
    created: float
    attempts: int
    last_error: str | None
    endpoint: str = ""
    held: bool = False  #: failed in a way no retry mends; waits for ``flush()``, ``resolve_conflict`` or ``forget``


@dataclass
class _Job:
    """An entry to upload and every future waiting on it."""

    entry: JournalEntry
    futures: list[UploadFuture] = field(default_factory=list)
    report: bool = True


@dataclass
class _Slot:
    """Per-object state: the job being uploaded and the one waiting behind it."""

    in_flight: _Job | None = None
    queued: _Job | None = None


@dataclass(frozen=True)
class UploadOptions:
    """How a save is uploaded: the conflict rule and the extra upload arguments (JSON), as journaled."""

    conflict: str = "raise"
    extra_args: str | None = None

    @classmethod
    def build(
        cls,
        settings: Mapping[str, Any],
        conflict: str | None,
        extra_args: dict[str, Any] | None,
        *,
        allowed: Callable[[], frozenset[str]],
        source: str,
    ) -> UploadOptions:
        """The options of one save, push or upload: config first, then the call's; checked before anything is written.

        Parameters
        ----------
        settings
            The configuration (``conflict`` and ``upload_args`` keys).
        conflict, extra_args
            The call's own, or None.
        allowed
            Returns the upload argument names that may be passed on.
        source
            The config file, named in errors about ``upload_args``.

        Raises
        ------
        InvalidArgumentError
            For a wrong conflict rule or an unknown or unencodable upload argument.
        """
        conflict = settings["conflict"] if conflict is None else conflict
        if conflict not in ("raise", "overwrite"):
            raise InvalidArgumentError(f"conflict must be 'raise' or 'overwrite', got {conflict!r}.")
        if extra_args is not None and not isinstance(extra_args, dict):
            raise InvalidArgumentError(f"extra_args must be a dict of upload arguments, got {type(extra_args).__name__}.")
        merged = {**settings["upload_args"], **(extra_args or {})}
        if not merged:
            return cls(conflict)
        names = allowed()
        bad = sorted(k for k in merged if k not in names)
        if bad:
            where = "extra_args" if any(k in (extra_args or {}) for k in bad) else f"the upload_args config key in {source}"
            raise InvalidArgumentError(
                f"Unknown upload argument(s) {', '.join(map(repr, bad))} in {where}; allowed: {', '.join(sorted(names))}."
            )
        try:
            return cls(conflict, json.dumps(merged, sort_keys=True))
        except TypeError as exc:
            raise InvalidArgumentError(f"Upload arguments must be plain strings, numbers and dicts: {exc}.") from None

    def arguments(self) -> dict[str, Any]:
        """The extra upload arguments as a dict."""
        return json.loads(self.extra_args) if self.extra_args else {}


class Owner:
    """This process's claim on its journal entries: a lock held for its lifetime.

    Parameters
    ----------
    owners_dir
        Where owner lock files live.
    """

    def __init__(self, owners_dir: Path):
        owners_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir = owners_dir
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lock = FileLock(owners_dir / f"{self.token}.lock")
        self._lock.acquire()

    @classmethod
    def inherited(cls, owners_dir: Path, token: str, fd: int) -> Owner:
        """The claim ``token`` another process took for this one and passed on as the open lock file ``fd``."""
        owner = cls.__new__(cls)
        owner.dir, owner.token = owners_dir, token
        owner._lock = FileLock.holding(owners_dir / f"{token}.lock", fd)
        return owner

    def release(self, remove: bool) -> None:
        """Give up the claim; delete the lock file when no entries remain."""
        if remove:
            try:
                os.unlink(self._lock.lock_file)
            except OSError:
                pass
        self._lock.release()

    def alive(self, token: str) -> bool:
        """Whether the owner ``token`` (a process) still holds its claim; this process always does. Changes nothing."""
        if token == self.token:
            return True
        return owner_alive(self.dir, token)

    def try_take(self, token: str) -> FileLock | None:
        """Lock another owner's file if that owner is gone; None while it lives."""
        if token == self.token:
            return None
        lock = FileLock(self.dir / f"{token}.lock")
        return lock if lock.acquire(blocking=False) else None


class UploadQueue:
    """Uploads journaled entries on a bounded pool of worker threads.

    Parameters
    ----------
    db
        The state database holding the journal.
    spool_dir
        Where snapshots are kept until uploaded.
    owner
        This process's :class:`Owner`.
    upload
        ``upload(entry)`` sends one entry to S3 and returns the sync record of
        what S3 now holds; raises on failure.
    max_workers
        The number of worker threads.
    uploader
        ``uploader()`` says how to start a child uploader process for background saves (the keyword arguments
        of :func:`s3bp.offload.spawn` it does not get from the queue), or returns None: upload in threads.
    """

    def __init__(
        self,
        db: StateDB,
        spool_dir: Path,
        owner: Owner,
        upload: Callable[[JournalEntry], SyncRecord],
        max_workers: int = 8,
        uploader: Callable[[], dict[str, Any] | None] | None = None,
    ):
        spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db, self._spool, self._owner, self._upload = db, spool_dir, owner, upload
        self._lock = threading.Condition()
        self._slots: dict[tuple[str, str, str], _Slot] = {}
        self._active = 0
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._workers = 0
        self._target = max_workers
        self._closed = False
        self._exiting = False
        locks_dir = spool_dir.parent / "locks"
        # Saves of one path journal and replace the file in sequence order; uploads of one object never overlap.
        self._path_locks, self._object_locks = StripedLocks(locks_dir, "path"), StripedLocks(locks_dir, "object")
        sweep_spool(db, spool_dir)  # snapshots left by processes killed between their copy and their journal row
        self._uploader_args, self._children = uploader, 0
        self._idle = False  # whether entries of ours may sit in the journal unqueued (failed, adopted): else none to supersede
        self._journaling: set[str] = set()  # ids journaled by a journal_many still running, not queued yet (under _lock)
        self._child: ChildLink | None = None
        self._links: list[ChildLink] = []  # every child started, while it has entries unsettled
        self._child_lock = threading.Lock()

    @classmethod
    def open(
        cls, state_dir: Path, *, db: StateDB, upload: Callable[[JournalEntry], SyncRecord], max_workers: int, owner: Owner | None = None,
        uploader: Callable[[], dict[str, Any] | None] | None = None,
    ) -> UploadQueue:
        """The queue of a state directory: its private ``owners``, ``spool`` and ``locks`` directories, and this process's claim
        (``owner``: one taken for this process by its parent)."""
        from .index import private_dir

        for sub in ("owners", "spool", "locks"):
            private_dir(state_dir / sub)
        owner = Owner(state_dir / "owners") if owner is None else owner
        try:
            return cls(db, state_dir / "spool", owner, upload, max_workers, uploader)
        except BaseException:
            owner.release(remove=True)
            raise

    # -- submitting --------------------------------------------------------

    def spool_path(self, entry_id: str) -> Path:
        """Where the snapshot of entry ``entry_id`` is kept."""
        return self._spool / entry_id

    def new_entry(self, *, owner: tuple[str, int] | None = None, **fields) -> JournalEntry:
        """A journal entry owned by this process (or ``owner``: token and pid), with a fresh id (its sequence number comes
        with the journal row)."""
        entry_id = uuid.uuid4().hex
        token, pid = owner if owner is not None else (self._owner.token, os.getpid())
        return JournalEntry(
            id=entry_id,
            owner=token,
            seq=0,
            spool=str(self.spool_path(entry_id)),
            pid=pid,
            created=time.time(),
            **fields,
        )

    def journal(
        self,
        *,
        path: str,
        bucket: str,
        key: str,
        source: str,
        endpoint: str,
        profile: str | None,
        region: str | None,
        options: UploadOptions,
        wait: bool,
        placed: Callable[[], object] | None = None,
        digest: Callable[[int], int | None] | None = None,
    ) -> UploadFuture:
        """Snapshot ``source`` into the spool, journal the save and queue its upload.

        Saves of one path are journaled one at a time, and ``placed`` (which
        moves a new version into place at ``path``) runs before the next one
        is journaled: the order of the versions on disk is the order of the
        uploads, whatever the processes and threads involved.

        Parameters
        ----------
        path
            The local file the save is of.
        bucket, key, endpoint, profile, region
            Where it goes.
        source
            The file holding the bytes to upload now (the path itself, or its new version beside it).
        options
            The conflict rule and upload arguments.
        wait
            Whether the caller waits (a background failure is then not printed).
        placed
            Moves the new version into place, after the snapshot is taken and before the row is
            written; if it raises, nothing is journaled.
        digest
            ``digest(size)``: the part size to compute the snapshot's ETag in while it is copied (0: one MD5;
            None: none), journaled so that an upload of bytes S3 already holds can be skipped.
        """
        save = Save(path, bucket, key, options, source, placed, digest)
        (got,) = self.journal_many([save], endpoint=endpoint, profile=profile, region=region, wait=wait)
        if isinstance(got, BaseException):
            raise got
        return got

    def journal_many(
        self, saves: list[Save], *, endpoint: str, profile: str | None, region: str | None, wait: bool
    ) -> list[UploadFuture | OSError | S3bpError]:
        """Journal several saves (e.g. a folder push's files) and queue their uploads, as :meth:`journal` does each.

        The saves are journaled a batch at a time (up to :data:`BATCH_FILES`
        files or :data:`BATCH_BYTES` bytes): one transaction and one hold of
        their path locks per batch, whose uploads start as soon as it is
        journaled. Returns, per save, its future or what kept it from being
        journaled (the others go ahead).
        """
        child = None if wait else self._uploader()
        owner = (child.token, child.pid) if child is not None else None
        where = {"endpoint": endpoint, "profile": profile, "region": region}
        out: list[UploadFuture | OSError | S3bpError] = []
        journaled: collections.deque[JournalEntry | OSError | S3bpError] = collections.deque()
        try:
            for batch in _batches(saves):
                with self._path_locks.hold_all(save.path for save in batch):
                    journaled += self._journal_batch(batch, owner, where)
                while journaled:
                    got = journaled.popleft()
                    out.append(got if isinstance(got, Exception) else self._queue_held(got, child, wait))
        finally:
            # Cut short (an interrupt, say): what is journaled is saved, and uploads (or is handed off at exit) as any save.
            while journaled:
                got = journaled.popleft()
                if isinstance(got, JournalEntry):
                    self._queue_held(got, child, wait)
        return out

    def _queue_held(self, entry: JournalEntry, child: ChildLink | None, wait: bool) -> UploadFuture:
        """Queue an entry journal_many journaled (see :meth:`_queue_entry`); it counts as queued from its commit on."""
        try:
            return self._queue_entry(entry, child, wait)
        finally:
            with self._lock:
                self._journaling.discard(entry.id)

    def _queue_entry(self, entry: JournalEntry, child: ChildLink | None, wait: bool) -> UploadFuture:
        """Hand a journaled entry to the child uploader (``child``), else to this process's workers; its future."""
        if self._idle:  # earlier failed saves of this object (ours, whoever uploads this one) are superseded now
            self._discard_older(entry if child is None else dataclasses.replace(entry, owner=self._owner.token))
        fut = UploadFuture(entry.bucket, entry.key, entry.path)
        fut.entry_id = entry.id
        if child is not None:
            if child.submit(entry.id, fut, not wait):
                return fut
            # The child is gone: the entry comes back to this process (unless its loss was handled already).
            self._db.reown(entry.id, child.token, self._owner.token, os.getpid())
            entry = dataclasses.replace(entry, owner=self._owner.token, pid=os.getpid())
        self._enqueue(_Job(entry, [fut], not wait))
        return fut

    def holding(self, path: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock saves of ``path`` take (every process of this state directory), e.g. to settle a conflict."""
        return self._path_locks.hold(path)

    def _journal_batch(self, batch: list[Save], owner: tuple[str, int] | None, where: dict[str, Any]) -> list[JournalEntry | OSError | S3bpError]:
        """Snapshot and place each save of ``batch``, then write their journal rows in one transaction.

        Each new version is moved into place before its row is written: a
        process killed in between leaves the newest version on disk (a load
        uses it, a later save or push uploads it), never a journaled version
        that the file on disk does not have, which a load could not tell from
        a current copy within S3's whole second. A save whose snapshot or
        placement fails is left out (its error takes its place).
        """
        out: list[JournalEntry | OSError | S3bpError] = []
        ready: list[JournalEntry] = []
        try:
            for save in batch:
                try:
                    entry = self._snapshot(save, owner, where)
                except (OSError, S3bpError) as exc:
                    out.append(exc)
                else:
                    out.append(entry)
                    ready.append(entry)
        except BaseException:
            for entry in ready:
                remove(entry.spool)
            raise
        with self._lock:  # queued, as far as this process's readers of the journal can tell, from its first moment there
            self._journaling.update(entry.id for entry in ready)
        try:
            added = iter(self._db.add_entries(ready))
        except BaseException as exc:
            with self._lock:  # interrupted after its commit, a row is left to a flush or the next process
                self._journaling.difference_update(entry.id for entry in ready)
            if not isinstance(exc, (OSError, S3bpError)):
                raise
            for entry in ready:
                remove(entry.spool)
            return [got if isinstance(got, Exception) else exc for got in out]
        # An interrupt in add_entries may come after its commit: the snapshots stay (sweep_spool removes those with no row).
        return [got if isinstance(got, Exception) else next(added) for got in out]

    def _snapshot(self, save: Save, owner: tuple[str, int] | None, where: dict[str, Any]) -> JournalEntry:
        """The entry of one save, its snapshot taken and its new version placed (its row not yet written)."""
        st = os.stat(save.source or save.path)
        entry = self.new_entry(
            owner=owner,
            path=save.path,
            bucket=save.bucket,
            key=save.key,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            conflict=save.options.conflict,
            extra_args=save.options.extra_args,
            **where,
        )
        try:
            etag = make_snapshot(save.source or save.path, entry.spool, part_size=save.digest(st.st_size) if save.digest is not None else None)
            if save.placed is not None:
                save.placed()
        except BaseException:
            remove(entry.spool)
            raise
        return dataclasses.replace(entry, etag=etag)

    def _enqueue(self, job: _Job) -> None:
        """Place a journaled job in its object's slot, superseding older saves."""
        dropped: list[_Job] = []
        with self._lock:
            slot = self._slots.setdefault(job.entry.object_id, _Slot())
            same = [j for j in (slot.in_flight, slot.queued) if j is not None and j.entry.id == job.entry.id]
            newest = slot.queued or slot.in_flight
            if same:
                same[0].futures.extend(job.futures)
            elif newest is not None and newest.entry.seq > job.entry.seq:
                # An older save arriving late (e.g. adopted): the newer one answers for it.
                newest.futures.extend(job.futures)
                dropped.append(_Job(job.entry))
            elif slot.queued is not None:
                job.futures[:0] = slot.queued.futures
                job.report = job.report or slot.queued.report
                dropped.append(_Job(slot.queued.entry))
                slot.queued = job
            elif slot.in_flight is not None:
                slot.queued = job
            else:
                slot.in_flight = job
                self._start(job)
        for old in dropped:
            self._discard(old.entry)

    def _start(self, job: _Job) -> None:
        """Hand a job to the workers (call with the lock held)."""
        self._active += 1
        self._ready.put(job)
        if self._workers < self._target:
            self._workers += 1
            threading.Thread(target=self._work, name="s3bp-upload", daemon=True).start()

    def _discard(self, entry: JournalEntry) -> None:
        """Forget a superseded entry: its journal row and its snapshot."""
        self._db.remove_entry(entry.id)
        remove(entry.spool)

    def drop_idle(self, entries: list[JournalEntry]) -> None:
        """Forget those of ``entries`` that are not queued or in flight (e.g. failed in a conflict)."""
        busy = self._busy_ids()
        for entry in entries:
            if entry.id not in busy:
                self._discard(entry)

    def drop_ids(self, ids: set[str]) -> None:
        """Forget the journal entries ``ids`` of ours that are not queued or in flight (e.g. a push's conflict)."""
        self.drop_idle([e for e in self._db.entries(self._owner.token) if e.id in ids])

    def _discard_older(self, entry: JournalEntry) -> None:
        """Drop our idle (failed) entries of the same object saved before ``entry``."""
        if not self._idle and entry.owner == self._owner.token:
            return  # none can exist: no query
        older = [e for e in self._db.siblings(entry) if e.seq < entry.seq]
        if older:
            self.drop_idle(older)

    # -- the child uploader process ---------------------------------------

    def _uploader(self) -> ChildLink | None:
        """The child uploader process for background saves, started on first use; None: upload in this process."""
        child = self._child
        if child is not None and child.alive:
            return child
        if self._uploader_args is None or self._closed or self._children >= MAX_CHILDREN:
            return None
        with self._child_lock:
            if self._child is not None and self._child.alive:
                return self._child
            args = self._uploader_args()
            if args is None or self._children >= MAX_CHILDREN:
                return None
            from .offload import spawn

            self._children += 1
            self._child = spawn(owners_dir=self._owner.dir, cond=self._lock, on_failed=self._child_failed, on_lost=self._child_lost, **args)
            if self._child is not None:
                with self._lock:
                    self._links = [link for link in self._links if link.pending()] + [self._child]
            return self._child

    def _child_failed(self, child: ChildLink, entry_id: str, fut: UploadFuture, report: bool, error: BaseException) -> None:
        """A save the child could not upload: the entry becomes ours (a flush retries it here), and the failure is said."""
        self._idle = True
        try:
            self._db.reown(entry_id, child.token, self._owner.token, os.getpid())
        except S3bpError:  # still the child's: it stays journaled, and the failure is reported all the same
            logger.exception("s3bp: could not take back the failed upload %s from the uploader process", entry_id)
        entry = self._db.entry(entry_id)
        where: Any = entry if entry is not None else fut
        text = (
            f"s3bp: background upload of {where.path} failed: {_describe(error, where)} "
            f"(kept in the upload journal; s3bp.flush() or `s3bp flush` retries it)"
        )
        logger.error(text)
        if report:
            print(text, file=sys.stderr)
        fut.set_exception(_as_upload_error(error, where))

    def _child_lost(self, child: ChildLink, waiting: dict[str, tuple[UploadFuture, bool]]) -> None:
        """The child ended with ``waiting`` unsettled: take its entries back and upload them in this process's threads."""
        if not waiting:  # it ended with nothing to do (closed, or between saves): a later save starts another
            return
        if not child.stopped:
            logger.warning("s3bp: the uploader process (pid %d) ended with %d upload(s) unfinished; they continue here", child.pid, len(waiting))
        try:  # its entries only: others' left by processes that are gone are adopted where they are also queued
            self._adopt(only=child.token)
        except S3bpError:
            logger.exception("s3bp: could not take back the uploads of the uploader process (pid %d)", child.pid)
        jobs: list[_Job] = []
        gone: list[tuple[int, UploadFuture]] = []  # entries no longer journaled, with the number of jobs saved before them
        for entry_id, (fut, report) in waiting.items():  # in the order they were saved
            entry = self._db.entry(entry_id)
            if entry is None:  # uploaded, or superseded by a newer save, before the child could say so
                gone.append((len(jobs), fut))
            elif entry.owner == self._owner.token:
                jobs.append(_Job(entry, [fut], report))
            else:  # taken over by another process meanwhile: it answers for it
                fut.set_result(fut.key)
        for before, fut in gone:
            newer = [j for j in jobs[before:] if (j.entry.bucket, j.entry.key) == (fut.bucket, fut.key)]
            if newer:  # a newer save of its object is still to upload: it answers for this one, as in a queue
                newer[-1].futures.append(fut)
            else:
                fut.set_result(fut.key)
        for job in jobs:
            self._enqueue(job)

    def take(self, entry_id: str) -> UploadFuture | None:
        """Queue our journaled entry ``entry_id`` (named by the process that saved it for us); its future, None when it is
        not ours (any more)."""
        entry = self._db.entry(entry_id)
        if entry is None or entry.owner != self._owner.token:
            return None
        self._discard_older(entry)
        fut = UploadFuture(entry.bucket, entry.key, entry.path)
        fut.entry_id = entry.id
        self._enqueue(_Job(entry, [fut], False))
        return fut

    def take_rest(self) -> None:
        """Queue every entry of ours not queued yet (e.g. journaled for us by a process killed before it named them)."""
        self._queue_idle_entries(held=False)

    # -- working -----------------------------------------------------------

    def _work(self) -> None:
        """A worker thread: run jobs until told to stop."""
        while True:
            job = self._ready.get()
            if job is _STOP:
                return
            self._run(job)

    def _run(self, job: _Job) -> None:
        """Upload one job and settle everything that waits on it."""
        entry = job.entry
        error: BaseException | None = None
        completed = unchanged = False
        try:
            # One upload of an object at a time on this machine, so that a slow older one can never land after a newer one.
            with self._object_locks.hold("\n".join(entry.object_id)):
                # A recorded upload at least as new means this save is already superseded (or done).
                if self._db.newest_upload(*entry.object_id) < entry.seq:
                    record = self._upload(entry)
                    unchanged = bool(getattr(record, "unchanged", False))  # S3 held these bytes already: nothing was sent
                    if not self._db.complete_upload(record, entry.id):  # drops the journal row too
                        # Cannot happen under the object lock unless two paths share one object: say so.
                        logger.warning("s3bp: a newer upload of s3://%s/%s was recorded while %s was uploading", entry.bucket, entry.key, entry.path)
                    completed = True
        except BaseException as exc:  # noqa: B036 - recorded and re-raised to waiters
            error = exc
        if error is None:
            if completed:
                remove(entry.spool)
            else:
                self._discard(entry)
            self._discard_older(entry)
        else:
            self._idle = True
            if any(e.seq > entry.seq for e in self._db.siblings(entry)):
                self._discard(entry)  # a newer save of the object is journaled: it answers for this one
            else:
                self._fail(job, error)
        with self._lock:
            slot = self._slots[entry.object_id]
            slot.in_flight, nxt = slot.queued, slot.queued
            slot.queued = None
            if nxt is not None:
                self._start(nxt)
            else:
                del self._slots[entry.object_id]
            self._active -= 1
            self._lock.notify_all()
        for fut in job.futures:
            if error is None:
                fut.unchanged = unchanged
                fut.set_result(entry.key)
            else:
                fut.set_exception(_as_upload_error(error, entry))

    def _fail(self, job: _Job, error: BaseException) -> None:
        """Keep a failed entry in the journal, and say so once.

        An attempt cut short because this process is exiting is not counted:
        the entry keeps its attempts and last error for the process that
        finishes it.
        """
        entry = job.entry
        if self._exiting:
            logger.info("s3bp: upload of %s stopped by the interpreter's exit; it stays journaled", entry.path)
            return
        message = f"{error}"
        try:
            self._db.fail_entry(entry.id, message, held=isinstance(error, PERMANENT))
        except Exception:  # the journal row still stands; the error is reported below
            logger.exception("s3bp: could not record the failure of s3://%s/%s", entry.bucket, entry.key)
        text = (
            f"s3bp: background upload of {entry.path} failed: {_describe(error, entry)} "
            f"(kept in the upload journal; s3bp.flush() or `s3bp flush` retries it)"
        )
        logger.error(text)
        if job.report:
            print(text, file=sys.stderr)

    # -- waiting and status ------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or in flight; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._active or self._child_pending():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                if not self._links:
                    self._lock.wait(remaining)
                    continue
                self._lock.wait(HALT_CHECK if remaining is None else min(remaining, HALT_CHECK))
                for link in self._links:  # a child stopped by a signal would keep this waiting until continued
                    if link.alive and link.pending() and link.halted():
                        logger.warning("s3bp: the uploader process (pid %d) is stopped; it is ended and its uploads continue here", link.pid)
                        link.stop()
        return True

    def active(self) -> int:
        """How many uploads are queued or in flight (here or in the child uploader)."""
        with self._lock:
            return self._active + self._child_pending()

    def active_here(self) -> int:
        """How many uploads this process's own threads have queued or in flight (not the child uploader's)."""
        with self._lock:
            return self._active

    def _child_pending(self) -> int:
        """How many entries the child uploaders have not settled (call with the lock held)."""
        return sum(link.pending() for link in self._links)

    def _busy_ids(self) -> set[str]:
        """The ids of entries queued or in flight in this process or its child uploader."""
        with self._lock:
            ids = {job.entry.id for slot in self._slots.values() for job in (slot.in_flight, slot.queued) if job}
            return ids.union(self._journaling, *(link.waiting_ids() for link in self._links))

    def _queue_idle_entries(self, held: bool = True) -> None:
        """Queue every journaled entry of ours that is not queued or in flight, newest first.

        Newest first, so that older saves of the same object are superseded
        rather than uploaded ahead of it. Without ``held``, entries that failed
        for good wait for an explicit retry.
        """
        busy = self._busy_ids()
        seen: set[tuple[str, str, str]] = set()
        for entry in reversed(self._db.entries(self._owner.token)):
            if entry.held and not held:
                seen.add(entry.object_id)
            elif entry.id in busy:
                seen.add(entry.object_id)
            elif entry.object_id in seen:
                self._discard(entry)
            else:
                seen.add(entry.object_id)
                self._enqueue(_Job(entry))

    def _adopt(self, only: str | None = None) -> int:
        """Move the entries of owners that are gone (or of the owner ``only``, if gone) to us; return how many."""
        adopted = 0
        for token in self._db.owners() if only is None else [only]:
            lock = self._owner.try_take(token)
            if lock is None:
                continue
            try:
                adopted += self._db.adopt(token, self._owner.token, os.getpid())
                self._idle = True
                try:
                    os.unlink(lock.lock_file)
                except OSError:
                    pass
            finally:
                lock.release()
        if adopted:
            logger.info("s3bp: resuming %d upload(s) left by an earlier process", adopted)
        return adopted

    def adopt_orphans(self) -> int:
        """Take over and queue the entries of owners that are gone; return how many.

        Entries held after a failure no retry mends are taken over but not
        retried: one line says how many wait for an explicit ``flush``.
        """
        adopted = self._adopt()
        if adopted:
            self._queue_idle_entries(held=False)
            held = [e for e in self._db.entries(self._owner.token) if e.held]
            if held:
                print(
                    f"s3bp: {len(held)} journaled upload(s) failed earlier in a way a retry cannot mend (e.g. {held[0].last_error}); "
                    f"see `s3bp status`, then `s3bp flush`, `s3bp flush --retarget` or `s3bp forget`.",
                    file=sys.stderr,
                )
        return adopted

    def retry(self) -> None:
        """Adopt orphaned entries and queue every journaled entry of ours not in the queue, held ones included.

        An entry still in flight keeps its flag: its worker may have recorded a
        permanent failure and not yet let go of it, and that failure stands.
        """
        self._adopt()
        self._db.release_held(self._owner.token, keep=self._busy_ids())
        self._queue_idle_entries()

    def retarget(self, where: Callable[[JournalEntry], dict[str, Any] | None]) -> int:
        """Point our idle entries where ``where(entry)`` says (endpoint, profile, region, bucket, key; None: leave it); how many moved."""
        self._adopt()
        busy = self._busy_ids()
        moved = 0
        for entry in self._db.entries(self._owner.token):
            target = None if entry.id in busy else where(entry)
            if target is not None and tuple(target[k] for k in ("endpoint", "bucket", "key")) != entry.object_id:
                self._db.retarget(entry.id, **target)
                moved += 1
        return moved

    def forget(self, which: Callable[[JournalEntry], bool]) -> int:
        """Drop our journal entries (orphans' taken over first) for which ``which`` says so and that are not being
        uploaded; their local files stay. How many were dropped."""
        self._adopt()
        busy = self._busy_ids()
        dropped = [e for e in self._db.entries(self._owner.token) if e.id not in busy and which(e)]
        for entry in dropped:
            self._discard(entry)
        return len(dropped)

    def failures(self) -> list[JournalEntry]:
        """Our journaled entries that are neither queued nor in flight (they failed).

        A failed save with a newer journaled save of the same object is
        superseded: it is dropped here rather than reported.
        """
        busy = self._busy_ids()
        newest: dict[tuple[str, str, str], int] = {}
        entries = self._db.entries(self._owner.token)
        for e in entries:
            newest[e.object_id] = max(newest.get(e.object_id, e.seq), e.seq)
        failed = []
        for e in entries:
            if e.id in busy:
                continue
            if e.seq < newest[e.object_id]:
                self._discard(e)
            else:
                failed.append(e)
        return failed

    def flush(self, timeout: float | None = None) -> None:
        """Retry what failed or was left behind, wait, and raise if anything is still not uploaded.

        Raises
        ------
        UploadError
            Listing every object that could not be uploaded.
        """
        self.retry()
        if not self.wait(timeout):
            raise UploadError(f"s3bp.flush: {self.active()} upload(s) still running after {timeout} s.")
        failed = self.failures()
        if failed:
            lines = [f"s3://{e.bucket}/{e.key} (from {e.path}): {e.last_error}" for e in failed]
            raise UploadError(
                f"{len(failed)} upload(s) failed and stay in the upload journal:\n  " + "\n  ".join(lines),
                [(e.bucket, e.key, e.last_error or "") for e in failed],
            )

    def pending(self) -> list[PendingUpload]:
        """Everything in the journal, with its state as seen from this process (reading changes nothing)."""
        with self._lock:
            states = {}
            for slot in self._slots.values():
                if slot.in_flight:
                    states[slot.in_flight.entry.id] = "in flight"
                if slot.queued:
                    states[slot.queued.entry.id] = "queued"
            states.update(dict.fromkeys(self._journaling, "queued"))
            child = self._child
            handed: set[str] = child.waiting_ids() if child is not None else set()
        out = describe_journal(self._db, self._owner.dir, mine=(self._owner.token, states))
        if handed and child is not None:  # handed to the child uploader, which uploads them on this process's behalf
            out = [dataclasses.replace(p, state="queued") if p.pid == child.pid and p.state.startswith("pending") else p for p in out]
        return out

    # -- sizing and shutdown -----------------------------------------------

    def resize(self, max_workers: int) -> None:
        """Use ``max_workers`` threads from now on; nothing queued is dropped."""
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}.")
        with self._lock:
            self._target = max_workers
            while self._workers > max_workers:
                self._workers -= 1
                self._ready.put(_STOP)
            backlog = self._active
            while self._workers < min(max_workers, backlog):
                self._workers += 1
                threading.Thread(target=self._work, name="s3bp-upload", daemon=True).start()
        if self._child is not None and self._child.alive:
            self._child.resize(max_workers)

    def close(self, at_exit: bool = False, handoff: Callable[[int], int | None] | None = None, grace: float = 1.0) -> None:
        """Wait for every upload, then release the owner lock.

        At interpreter exit, says on stderr what it is waiting for (after
        ``grace`` seconds) and what stays journaled. With ``handoff``, what is
        still pending after ``grace`` is handed over instead of waited for:
        ``handoff(n)`` starts a detached uploader and returns its pid (None if
        it could not), the owner lock is released for it, and this returns.
        """
        if self._closed:
            return
        self._closed = True
        child = self._child
        if handoff is None and child is not None and child.alive and not child.ready:
            # About to wait, and the child is still starting (a short script's only save, say): upload here instead.
            child.stop()
        if at_exit:
            self._exiting = True
            if not self.wait(grace):
                child = self._child if self._child is not None and self._child.alive else None
                with self._lock:
                    local = self._active
                if handoff is not None and child is not None and not local:
                    pid: int | None = child.pid  # the child uploader finishes them: it is the hand-off
                else:
                    pid = handoff(self.active()) if handoff is not None else None
                if pid is not None:
                    if child is not None:
                        child.close(leave=True)
                    print(
                        f"s3bp: {self.active()} upload(s) still pending; handed to a background uploader (pid {pid}) "
                        f"that finishes them after this process exits (`s3bp status` shows them).",
                        file=sys.stderr,
                    )
                    self._owner.release(remove=False)
                    return
                print(f"s3bp: waiting for {self.active()} pending upload(s) to finish...", file=sys.stderr)
        self.wait()
        if at_exit and handoff is None:
            # Waiting anyway: also finish what processes that are gone left, e.g. forked workers ended with os._exit.
            while self.adopt_orphans():
                self.wait()
        if self._child is not None:
            self._child.close()  # nothing left for it: it exits
        left = self.failures()
        if left and at_exit:
            print(
                f"s3bp: {len(left)} upload(s) failed and stay journaled in {self._spool.parent}; "
                f"the next process that uses s3bp retries them, or run `s3bp flush`.",
                file=sys.stderr,
            )
        with self._lock:
            for _ in range(self._workers):
                self._ready.put(_STOP)
            self._workers = 0
        self._owner.release(remove=not left)
        self._path_locks.close()
        self._object_locks.close()


def _as_upload_error(error: BaseException, entry: JournalEntry) -> S3bpError:
    """The error a waiter sees for a failed upload: a :class:`ConflictError` as is, else an :class:`UploadError`."""
    if isinstance(error, (UploadError, ConflictError)):
        return error
    exc = UploadError(
        f"Upload of {entry.path} failed: {_describe(error, entry)} The file stays in the upload journal;",
        [(entry.bucket, entry.key, str(error))],
    ).with_remedy("s3bp.flush() retries it.", "`s3bp flush` retries it.")
    exc.__cause__ = error
    return exc


def _describe(error: BaseException, entry: JournalEntry) -> str:
    """The error's message, naming the object if the message does not already."""
    target = f"s3://{entry.bucket}/{entry.key}"
    text = str(error) or type(error).__name__
    return text if target in text else f"{target}: {text}"


#: A spool file with no journal row is debris once it is this old (seconds). A snapshot is copied just
#: before its row is written, and that write may wait up to a minute for the database lock.
SPOOL_GRACE = 300.0


def sweep_spool(db: StateDB, spool_dir: Path, now: float | None = None) -> list[str]:
    """Remove the snapshots in ``spool_dir`` that no journal entry refers to and older than :data:`SPOOL_GRACE`; their paths.

    One directory scan; the journal is read only when the spool holds something.
    """
    now = time.time() if now is None else now
    try:
        with os.scandir(spool_dir) as it:
            candidates = [e for e in it if is_entry_id(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return []
    if not candidates:
        return []
    known = {name for e in db.entries() for name in (e.id, os.path.basename(e.spool))}
    removed = []
    for e in candidates:
        try:
            # mtime: snapshots are fresh copies, so their mtime is when they were written
            if e.name not in known and now - e.stat(follow_symlinks=False).st_mtime > SPOOL_GRACE:
                os.unlink(e.path)
                removed.append(e.path)
        except OSError:
            continue
    if removed:
        logger.info("s3bp: removed %d snapshot(s) left in %s with no upload journaled", len(removed), spool_dir)
    return removed



def owner_alive(owners_dir: Path, token: str) -> bool:
    """Whether the process that owns journal entries as ``token`` still holds its claim (checked without taking it)."""
    lock = FileLock(owners_dir / f"{token}.lock")
    if not os.path.exists(lock.lock_file):
        return False
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def describe_journal(db: StateDB, owners_dir: Path, mine: tuple[str, dict[str, str]] | None = None) -> list[PendingUpload]:
    """Every journal entry with its state: this process's own (``mine``: its token and its queued/in-flight ids),
    another live process's ("pending in process N"), or an orphan's ("orphaned (owner pid N exited)"). Changes nothing.
    """
    token, states = mine if mine is not None else ("", {})
    alive: dict[str, bool] = {}
    out = []
    for e in db.entries():
        if e.owner == token:
            state = states.get(e.id, "failed")
        else:
            if e.owner not in alive:
                alive[e.owner] = owner_alive(owners_dir, e.owner)
            state = f"pending in process {e.pid}" if alive[e.owner] else f"orphaned (owner pid {e.pid} exited)"
        out.append(PendingUpload(e.bucket, e.key, e.path, state, e.pid, e.created, e.attempts, e.last_error, e.endpoint, bool(e.held)))
    return out
