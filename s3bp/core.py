"""The :class:`Store`: saving, loading, uploading and downloading against S3.

A store owns the configuration view, the S3 connections (one per profile,
region and endpoint, created on first use and shared by all threads), the
state database and the upload queue. Each public method is a short sequence
of calls: :mod:`s3bp.paths` resolves, :mod:`s3bp.freshness` and
:mod:`s3bp.conflicts` decide, :mod:`s3bp.remote` talks to S3,
:mod:`s3bp.localfiles` places bytes on disk and :mod:`s3bp.uploads`
journals saves. The module-level functions in :mod:`s3bp.api` use one
default store per process.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as _config
from . import paths
from .errors import (
    EndpointError,
    InvalidArgumentError,
    InvalidPathError,
    LocalFileError,
    NoBucketError,
    ObjectNotFoundError,
    OfflineWarning,
    S3bpError,
    SerializationError,
    StateError,
)

# The modules that save, load and transfer are imported where they are first needed: a command that only reads the
# config or the state database (``s3bp where``, ``status``, ``config``) imports none of them.
if TYPE_CHECKING:
    import datetime
    from contextlib import AbstractContextManager

    from .cache import Cache, CacheInfo, PruneReport
    from .describing import ObjectInfo
    from .folders import FileState, FolderOps, FolderReport, Listed
    from .freshness import SyncRecord
    from .index import JournalEntry, StateDB
    from .locks import StripedLocks
    from .remote import Connections, Wire
    from .serializers import Deserializer, Serializer
    from .uploads import Owner, PendingUpload, UploadFuture, UploadOptions, UploadQueue
    from .verifying import VerifyReport
    from .versioning import Version, VersionSpec

logger = logging.getLogger("s3bp")


class Store:
    """Saves and loads objects to S3, keeping a local copy as a cache.

    Parameters
    ----------
    config
        A :class:`~s3bp.config.ConfigFile` or a path to one; default: the
        file named by ``$S3BP_CONFIG`` or the XDG config directory.
    state_dir
        Where sync records and the upload journal live; default:
        ``$S3BP_STATE_DIR`` or the XDG state directory.
    client
        A boto3 S3 client to use instead of creating one from the config.
    cache_dir
        The managed cache (local copies of ``s3://`` URLs and pinned versions);
        default: ``$S3BP_CACHE_DIR`` or the XDG cache directory.

    A store is a context manager; leaving it waits for its uploads.
    """

    def __init__(
        self,
        config: _config.ConfigFile | str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        client: Any = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ):
        # absolute now: a relative directory must not move with a later os.chdir (a notebook's)
        self.state_dir = Path(os.path.abspath(state_dir if state_dir is not None else _config.state_dir()))
        memo = self.state_dir / _config.MEMO
        self.config = config if isinstance(config, _config.ConfigFile) else _config.ConfigFile(config, memo=memo)
        self.cache_dir = Path(os.path.abspath(cache_dir if cache_dir is not None else _config.cache_root()))
        self._lock = threading.RLock()
        self._client = client
        self._made: Connections | None = None
        self._db: StateDB | None = None
        self._queue: UploadQueue | None = None
        self._seen_settings: dict[str, Any] | None = None
        self._mappings: dict[str, str] = {}
        self._pid = os.getpid()
        self._adopted = 0
        self._cache_locks: StripedLocks | None = None
        self._claim: Owner | None = None  # an uploader child's: the claim its parent took for it

    # -- settings, resolution, connections -----------------------------------

    def settings(self) -> dict[str, Any]:
        """The current configuration (re-read only when the file changes; do not modify)."""
        data = self.config.read()
        if data is not self._seen_settings:
            self._mappings = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            self._seen_settings = data
        return data

    def resolve(self, filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None) -> paths.Resolution:
        """The bucket and key ``filepath`` maps to (see :func:`s3bp.paths.resolve`)."""
        return self._resolve(self.settings(), filepath, bucket_name, namekey)

    def _resolve(self, data: dict[str, Any], filepath: Any, bucket_name: str | None = None, namekey: bool | None = None) -> paths.Resolution:
        """Resolve with settings already read (``self._mappings`` belongs to them); a URL to its copy in the managed cache."""
        root = os.path.abspath(self.cache_dir)
        url = filepath if paths.is_url(filepath) else None
        if url is None and not paths.contains(root, paths.normalize(filepath)):
            return paths.resolve(filepath, self._mappings, data["default_bucket"], bucket=bucket_name, namekey=bool(namekey))
        from .cache import endpoint_id

        endpoint = self._endpoint(data)  # remembered: resolving a URL needs no client
        if url is None:  # a URL's copy, named by its path
            url = paths.url_of_copy(paths.normalize(filepath), os.path.join(root, endpoint_id(endpoint)))
        if url is not None:
            if namekey:
                raise InvalidArgumentError(f"namekey=True cannot be used with {url!r}: a URL names its key itself.")
            return paths.resolve_url(url, os.path.join(root, endpoint_id(endpoint)), endpoint, bucket=bucket_name)
        return paths.resolve(filepath, self._mappings, data["default_bucket"], bucket=bucket_name, namekey=bool(namekey))

    def client(self) -> Any:
        """The boto3 S3 client for the configured profile, region and endpoint."""
        return self._wire(self.settings()).client

    @property
    def _connections(self) -> Connections:
        """The S3 connections, made on first use (:mod:`s3bp.remote` is imported then)."""
        if self._made is None:
            from .remote import Connections

            with self._lock:
                if self._made is None:
                    self._made = Connections(self._client)
        return self._made

    def _wire(self, data: dict[str, Any]) -> Wire:
        """The shared connection for the configured profile, region and endpoint."""
        if self._pid != os.getpid():
            self._forked()
        return self._connections.get(data, profile=data["profile"], region=data["region"], endpoint=data["endpoint_url"])

    def _index(self) -> StateDB:
        """The state database (sync records and journal), opened on first use; all a load needs.

        Read-only (said once) when the state directory cannot be written; a damaged one is rebuilt (see :func:`s3bp.index.open_state`).
        """
        if self._pid != os.getpid():
            self._forked()
        if self._db is None:
            with self._lock:
                if self._db is None:
                    from .index import open_state

                    self._db = open_state(self.state_dir)
        return self._db

    def _forked(self) -> None:
        """In a forked child: start afresh; the parent's queue threads, database connections and clients did not come along."""
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._db = self._queue = None
        self._made = None  # made afresh, with the same given client
        self._adopted = 0

    def _state(self) -> tuple[StateDB, UploadQueue]:
        """The state database and the upload queue, opened on first use (adopting orphaned uploads)."""
        db = self._index()
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    import concurrent.futures.thread  # noqa: F401 - imported during interpreter exit it would fail

                    from .handoff import hand_over_on_sigterm
                    from .index import disk_error
                    from .uploads import UploadQueue

                    if not db.writable:  # before anything is written anywhere
                        raise StateError(db.problem or f"s3bp cannot write its state directory {self.state_dir}.")
                    try:
                        queue = UploadQueue.open(
                            self.state_dir, db=db, upload=self._upload_entry, max_workers=self.settings()["max_workers"],
                            owner=self._claim, uploader=self._uploader if self._claim is None else None,
                        )  # fmt: skip
                        self._queue = queue
                        atexit.register(self._at_exit)
                        # the child uploader (if any) outlives a SIGTERM on its own: only this process's threads need a hand-off
                        hand_over_on_sigterm(lambda: bool(queue.active_here()), self.config.path, self.state_dir)
                        self._adopted = queue.adopt_orphans() if self._claim is None else 0
                    except OSError as exc:
                        raise disk_error(exc, state_dir=self.state_dir, target=None, doing="", default="state") from exc
        return db, self._queue

    def _uploader(self) -> dict[str, Any] | None:
        """How to start the child uploader process (see :mod:`s3bp.offload`); None: background saves upload in this
        process's threads (``upload_process: false``; a client given to this store, which a child cannot share; or a
        forked worker's store: its parent adopts what it leaves when it ends with ``os._exit``, as multiprocessing's do)."""
        from .locks import forked

        data = self.settings()
        if not data["upload_process"] or self._connections.given or os.name != "posix" or forked():
            return None
        return {"config": self.config.path, "overrides": self.config.overrides, "state_dir": self.state_dir, "workers": data["max_workers"]}

    def serve_claim(self, owner: Owner, workers: int) -> UploadQueue:
        """In a child uploader process: this store's upload queue, holding the claim ``owner`` its parent took for it."""
        self._claim = owner
        queue = self._state()[1]
        queue.resize(workers)
        return queue

    # -- saving --------------------------------------------------------------

    def save_object(
        self, obj: Any, filepath: str | os.PathLike[str], bucket_name: str | None = None, serializer: Serializer | str | None = None,
        namekey: bool | None = None, wait: bool = False, *, conflict: str | None = None, extra_args: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadFuture:
        """Write ``obj`` to ``filepath`` and upload it to S3; see :func:`s3bp.save_object`."""
        from .labels import format_of, label
        from .serializers import codec

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        write = codec(serializer, "serializer", res.path)
        options = label(self._options(data, conflict, extra_args), data, res.path, fmt=format_of(serializer), metadata=metadata)
        return self._save(data, res, obj, write, wait, options)

    def _save(self, data: dict[str, Any], res: paths.Resolution, obj: Any, write: Serializer, wait: bool, options: UploadOptions) -> UploadFuture:
        """Serialize beside the file, journal that new version, move it into place; wait if asked to."""
        from .index import disk_error
        from .localfiles import DISK_ERRNOS, Placement
        from .serializers import writes_exclusively

        self._state()  # a save is journaled in the state directory: refused before anything is written when it cannot be
        try:
            with Placement(res.path, beside=writes_exclusively(write)) as place:
                try:
                    write(obj, place.tmp)
                except Exception as exc:  # KeyboardInterrupt and SystemExit pass as they are
                    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:  # the disk, not the serializer
                        raise disk_error(exc, state_dir=self.state_dir, target=res.path, doing="save", default="local") from exc
                    raise SerializationError(f"Could not save {res.path}: the serializer raised {exc!r}. Nothing was written.") from exc
                if not place.written():
                    raise SerializationError(
                        f"Could not save {res.path}: the serializer wrote no file at the path it was given ({place.tmp}). "
                        f"A serializer must write to exactly that path."
                    )
                fut = self._journal(
                    data, path=res.path, bucket=res.bucket, key=res.key, source=place.tmp, options=options, wait=wait, placed=place.commit
                )
        except OSError as exc:  # the user's directory (full, read-only) or the state directory
            raise disk_error(exc, state_dir=self.state_dir, target=res.path, doing="save", default="local") from exc
        return _finish(fut, wait)

    def upload_file(
        self, filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None, wait: bool = False, *,
        conflict: str | None = None, extra_args: dict[str, Any] | None = None, metadata: dict[str, str] | None = None,
    ) -> UploadFuture:
        """Upload an existing local file (a copy taken now); see :func:`s3bp.upload_file`."""
        from .labels import label

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        options = label(self._options(data, conflict, extra_args), data, res.path, metadata=metadata)
        if not os.path.isfile(res.path):
            raise ObjectNotFoundError(f"Cannot upload {res.path}: no such file.")
        fut = self._journal(data, path=res.path, bucket=res.bucket, key=res.key, source=res.path, options=options, wait=wait)
        return _finish(fut, wait)

    def _options(self, data: dict[str, Any], conflict: str | None, extra_args: dict[str, Any] | None) -> UploadOptions:
        """The conflict rule and upload arguments of a save, upload or push (config, then the call's)."""
        from . import remote
        from .uploads import UploadOptions

        return UploadOptions.build(data, conflict, extra_args, allowed=remote.allowed_upload_args, source=str(self.config.path))

    def _journal(
        self, data: dict[str, Any], *, path: str, bucket: str, key: str, source: str, options: UploadOptions, wait: bool, placed: Any = None
    ) -> UploadFuture:
        """Journal a save of ``path`` whose bytes are in ``source`` now, for the configured endpoint."""
        from . import versioning
        from .sending import snapshot_digest

        versioning.check_writable(path, bucket, key)
        db, queue = self._state()
        wire = self._wire(data)
        try:
            return queue.journal(
                path=path, bucket=bucket, key=key, source=source, endpoint=wire.endpoint, profile=data["profile"],
                region=wire.region, options=options, wait=wait, placed=placed,
                digest=snapshot_digest(db, wire.endpoint, path, bucket, key),
            )  # fmt: skip
        except OSError as exc:  # a path in the error says which disk; none: copying the snapshot into the spool
            from .index import disk_error

            raise disk_error(exc, state_dir=self.state_dir, target=path, doing="save", default="state") from exc

    def _journal_many(
        self, data: dict[str, Any], saves: list[tuple[str, str, str, SyncRecord | None]], options: UploadOptions, wait: bool
    ) -> list[UploadFuture | OSError | S3bpError]:
        """Journal saves of files as they are now, given as (path, bucket, key, the object's sync record), e.g. a push's;
        per file its future or what kept it from being journaled."""
        from . import versioning
        from .index import disk_error
        from .labels import label
        from .sending import digest_like
        from .uploads import Save

        db, queue = self._state()
        wire = self._wire(data)
        out: list[UploadFuture | OSError | S3bpError | None] = [None] * len(saves)
        todo, where = [], []
        for n, (path, bucket, key, synced) in enumerate(saves):
            try:
                versioning.check_writable(path, bucket, key)
            except S3bpError as exc:
                out[n] = exc
                continue
            todo.append(Save(path, bucket, key, label(options, data, path), digest=digest_like(synced)))
            where.append(n)
        try:
            got = queue.journal_many(todo, endpoint=wire.endpoint, profile=data["profile"], region=wire.region, wait=wait)
        except OSError as exc:
            raise disk_error(exc, state_dir=self.state_dir, target=None, doing="save", default="state") from exc
        for n, save, one in zip(where, todo, got):
            out[n] = disk_error(one, state_dir=self.state_dir, target=save.path, doing="save", default="state") if isinstance(one, OSError) else one
        return [one for one in out if one is not None]

    def _upload_entry(self, entry: JournalEntry) -> SyncRecord:
        """Send one journal entry to the endpoint it was saved for (see :func:`s3bp.sending.send_entry`)."""
        from .sending import send_entry

        data = self.settings()
        wire = self._wire(data)
        if wire.endpoint != entry.endpoint:  # saved for another endpoint: send it there
            wire = self._connections.get(data, profile=entry.profile, region=entry.region, endpoint=entry.endpoint)
        return send_entry(wire, self._state()[0], entry, max_age=data["max_age"])

    # -- loading ---------------------------------------------------------------

    def load_object(
        self, filepath: str | os.PathLike[str], bucket_name: str | None = None, deserializer: Deserializer | str | None = None,
        namekey: bool | None = None, verbose: bool = False, max_age: float | None = None, *, offline: str | None = None,
        version: VersionSpec | None = None,
    ) -> Any:
        """Load an object, from the local file when it is current, else from S3; see :func:`s3bp.load_object`."""
        from .serializers import codec, deserialize

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        read = codec(deserializer, "deserializer", res.path)
        if version is not None:
            return self._pinned(data, res, version, read)
        with self._cache_use(data, res):
            return deserialize(read, self._load(data, res, verbose=verbose, max_age=max_age, offline=offline))

    def save_dataframe(
        self, df: Any, filepath: str | os.PathLike[str], bucket_name: str | None = None, format: str | None = None,
        namekey: bool | None = None, wait: bool = False, *, conflict: str | None = None, extra_args: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None, **writer_kwargs: Any,
    ) -> UploadFuture:
        """Write a DataFrame in a registered format and upload it; see :func:`s3bp.save_dataframe`."""
        from .frames import is_polars
        from .labels import label
        from .serializers import frame_codec, frame_format

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        fmt = frame_format(res.path, writer_kwargs.get("dformat") if format is None else format)
        options = label(self._options(data, conflict, extra_args), data, res.path, fmt=fmt, metadata=metadata, shape=getattr(df, "shape", None))
        write = frame_codec(res.path, format, writer_kwargs, "serializer", "polars" if is_polars(df) else "pandas")
        return self._save(data, res, df, write, wait, options)

    def load_dataframe(
        self, filepath: str | os.PathLike[str], bucket_name: str | None = None, format: str | None = None, namekey: bool | None = None,
        verbose: bool = False, max_age: float | None = None, *, offline: str | None = None, backend: str = "pandas",
        version: VersionSpec | None = None, **reader_kwargs: Any,
    ) -> Any:
        """Load a DataFrame, from the local file when it is current, else from S3; see :func:`s3bp.load_dataframe`."""
        from .serializers import deserialize, frame_codec

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        read = frame_codec(res.path, format, reader_kwargs, "deserializer", backend)
        if version is not None:
            return self._pinned(data, res, version, read)
        with self._cache_use(data, res):
            return deserialize(read, self._load(data, res, verbose=verbose, max_age=max_age, offline=offline))

    def download_file(
        self, filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None, verbose: bool = False,
        max_age: float | None = None, *, offline: str | None = None, version: VersionSpec | None = None,
    ) -> str:
        """Bring the local file up to date with S3 and return its path (or a pinned version's copy); see :func:`s3bp.download_file`."""
        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        if version is not None:
            return self._pinned(data, res, version)
        with self._cache_use(data, res):
            return self._load(data, res, verbose=verbose, max_age=max_age, offline=offline)

    def _load(self, data: dict[str, Any], res: paths.Resolution, *, verbose: bool, max_age: float | None, offline: str | None) -> str:
        """Plan the load (:func:`~s3bp.freshness.plan_load`), ask S3 at most once, act on the answer."""
        from .freshness import Answer, Step, Verdict, after_answer, plan_load
        from .localfiles import local_stat, refuse_directory
        from .receiving import receive

        offline, max_age = (data["offline"] if offline is None else offline), (data["max_age"] if max_age is None else max_age)
        if offline not in ("warn", "error"):
            raise InvalidArgumentError(f"offline must be 'warn' or 'error', got {offline!r}.")
        refuse_directory(res.path)
        wire = self._wire(data)
        db = self._index()
        record, pending = db.load_state(res.path)
        try:
            local = local_stat(res.path)
        except OSError as exc:
            from .index import disk_error

            raise disk_error(exc, state_dir=self.state_dir, target=res.path, doing="load", default="local") from exc
        plan = plan_load(local, record, endpoint=wire.endpoint, bucket=res.bucket, key=res.key, pending=pending, now=time.time(), max_age=max_age)
        verdict = Verdict.LOCAL_CURRENT
        if plan.step is not Step.USE_LOCAL:
            try:
                outcome: Any = wire.get(res.bucket, res.key, if_none_match=plan.etag, if_modified_since=plan.since)
            except EndpointError as exc:
                outcome = exc
            verdict = after_answer(plan, getattr(outcome, "answer", Answer.UNREACHABLE), offline=offline)
            if verdict is Verdict.FAIL:
                raise outcome
            if verdict is Verdict.NOT_FOUND:
                raise ObjectNotFoundError(
                    f"{res.path} is not on disk and s3://{res.bucket}/{res.key} does not exist. "
                    f"Save it first, or check the bucket and key with `s3bp where {res.path}`."
                )
            if verdict is Verdict.OFFLINE:
                where = f"the local copy {res.path}, which may be older than s3://{res.bucket}/{res.key}"
                warnings.warn(f"s3bp: S3 is unreachable; loading {where}. ({outcome}) Pass offline='error' to fail instead.", OfflineWarning, 4)
            elif verdict is Verdict.LOCAL_ONLY:
                logger.warning("s3bp: s3://%s/%s is not in S3; using the local file %s", res.bucket, res.key, res.path)
            elif verdict is Verdict.LOCAL_CURRENT and max_age > 0:
                db.touch(res.path, time.time(), best_effort=True)  # a read-only state directory: the load still works
            elif verdict is Verdict.DOWNLOAD:
                try:
                    received = receive(wire, res.path, res.bucket, res.key, outcome)
                except OSError as exc:  # the local disk (full, read-only): the old file is kept
                    from .index import disk_error

                    raise disk_error(exc, state_dir=self.state_dir, target=res.path, doing="load", default="local") from exc
                db.put_record(received, best_effort=True)
        if verbose:
            how = {Step.USE_LOCAL: " (no request)"}.get(plan.step, " (S3 answered 304)") if verdict is Verdict.LOCAL_CURRENT else ""
            print(f"s3bp: {res.path} <- s3://{res.bucket}/{res.key}: {verdict.value}{how}")
        return res.path

    # -- versions (the protocols are in s3bp.versions) ------------------------------

    def _pinned(self, data: dict[str, Any], res: paths.Resolution, version: VersionSpec, read: Deserializer | None = None) -> Any:
        """Read (with ``read``; else return the path of) the managed cache's copy of one version of the object ``res``
        names, downloaded first if need be, under the cache's lock for it (its use noted); ``res.path`` is not touched."""
        from . import versioning
        from .serializers import deserialize

        wire = self._wire(data)
        version_id, target = versioning.pinned_target(wire, self._index(), self.cache_dir, res.bucket, res.key, version)
        with self._cache(data).loading(target):
            versioning.fetch_pinned(wire, self._index(), res.bucket, res.key, version_id, target)
            return target if read is None else deserialize(read, target)

    def versions(self, filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None) -> list[Version]:
        """Every version of the object ``filepath`` maps to, newest first; see :func:`s3bp.versions`."""
        from . import versioning

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        return versioning.list_versions(self._wire(data), res.bucket, res.key)

    def restore(
        self, filepath: str | os.PathLike[str], version: VersionSpec, bucket_name: str | None = None, namekey: bool | None = None, *,
        conflict: str | None = None, verbose: bool = False,
    ) -> str:
        """Make a version the latest again (server-side copy), then bring the local file up to date; see :func:`s3bp.restore`."""
        from . import versioning

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        rule = self._options(data, conflict, None).conflict
        wire, db = self._wire(data), self._index()
        _, changed = versioning.restore(wire, db, path=res.path, bucket=res.bucket, key=res.key, version=version, conflict=rule)
        if changed:  # conflict="overwrite" over local changes: they go aside as NAME.s3bp-local, as keep="remote" does
            self.resolve_conflict(filepath, keep="remote", bucket_name=bucket_name, namekey=namekey)
            return res.path
        with self._cache_use(data, res):
            return self._load(data, res, verbose=verbose, max_age=0, offline="error")

    def tag(
        self, filepath: str | os.PathLike[str], name: str, version: VersionSpec | None = None, bucket_name: str | None = None,
        namekey: bool | None = None,
    ) -> str:
        """Name a version (default: the latest); return its id. See :func:`s3bp.tag`."""
        from . import versioning

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        return versioning.tag(self._wire(data), self._index(), res.bucket, res.key, name, version)

    def untag(self, filepath: str | os.PathLike[str], name: str, bucket_name: str | None = None, namekey: bool | None = None) -> None:
        """Remove a version's name; see :func:`s3bp.untag`."""
        from . import versioning

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        versioning.untag(self._wire(data), res.bucket, res.key, name)

    def prune(
        self, filepath: str | os.PathLike[str], *, keep: int | None = None, older_than: datetime.timedelta | None = None,
        dry_run: bool = True, bucket_name: str | None = None, namekey: bool | None = None,
    ) -> list[Version]:
        """Delete old non-current versions (never the latest or a named one); see :func:`s3bp.prune`."""
        from . import versioning

        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        age = versioning.age_seconds(older_than)
        return versioning.prune(self._wire(data), res.bucket, res.key, keep=keep, older_than=age, dry_run=dry_run)

    def bucket_versioning(self, bucket: str, enable: bool | None = None) -> str:
        """The bucket's versioning status, after turning it on (``enable=True``) or suspending it (``False``)."""
        wire = self._wire(self.settings())
        if enable is not None:
            wire.set_versioning(paths.check_bucket_name(bucket), enable)
        return wire.versioning(bucket)

    # -- the queue, folders and conflicts ----------------------------------------

    def flush(self, timeout: float | None = None, *, retarget: bool = False) -> None:
        """Upload everything queued or left journaled, and wait; see :func:`s3bp.flush`."""
        data = self.settings()
        _, queue = self._state()
        if retarget:
            wire = self._wire(data)
            queue.retarget(lambda e: self._retarget(data, wire, e))
        queue.flush(timeout)

    def _retarget(self, data: dict[str, Any], wire: Wire, entry: JournalEntry) -> dict[str, Any] | None:
        """Where a failed entry goes under the current settings: the configured endpoint, and the bucket and key its
        path resolves to without a bucket given (or its own when nothing maps it); None: leave it."""
        if entry.last_error is None or paths.contains(os.path.abspath(self.cache_dir), entry.path):
            return None  # a URL's copy keeps the bucket and key it names
        try:
            res = self._resolve(data, entry.path)
        except NoBucketError:
            res = paths.Resolution(entry.path, entry.bucket, entry.key, None, "kept")
        return {"endpoint": wire.endpoint, "profile": data["profile"], "region": wire.region, "bucket": res.bucket, "key": res.key}

    def pending_uploads(self) -> list[PendingUpload]:
        """Every journaled upload and its state; reading takes nothing over (see :func:`s3bp.pending_uploads`)."""
        if self._queue is not None:
            return self._queue.pending()
        db = self._index()
        if not db.entries():  # the usual answer, found without importing the queue
            return []
        from .uploads import describe_journal

        return describe_journal(db, self.state_dir / "owners")

    def forget(self, files: Iterable[str | os.PathLike[str]] = (), *, failed: bool = False) -> int:
        """Drop journaled uploads of ``files`` (or every failed one); the local files stay. See :func:`s3bp.forget`."""
        wanted = {paths.normalize(p) for p in files}
        return self._state()[1].forget(lambda e: e.path in wanted or (failed and e.last_error is not None))

    def endpoint_modes(self) -> dict[str, tuple[bool, float]]:
        """Per endpoint used so far: whether it honours conditional writes, and when that was checked."""
        from .index import STATE_FILE

        return self._index().endpoint_modes() if (self.state_dir / STATE_FILE).exists() else {}

    def deliver_orphans(self) -> int:
        """Take over what exited processes left journaled (not failures held for an explicit flush) and upload it; how many."""
        _, queue = self._state()
        taken = self._adopted
        while True:
            queue.wait()
            more = queue.adopt_orphans()
            if not more:
                return taken
            taken += more

    def set_max_workers(self, n: int) -> None:
        """Use ``n`` upload threads from now on (persisted in the config)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"max_workers must be a whole number of at least 1, got {n!r}.")
        self.config.update(lambda d: d.__setitem__("max_workers", n))
        if self._queue is not None:
            self._queue.resize(n)

    def _folder_ops(self, pair: tuple[str, str, str] | None = None, *, reading: bool = False) -> FolderOps:
        """The operations a folder push, pull, sync or ls may use: the same resolution, journal and downloads as one file's;
        with ``pair`` (local dir, bucket, prefix), for that directory paired with ``s3://bucket/prefix``; ``reading``: for
        an operation that journals nothing (ls, verify, a listing), which leaves the upload queue closed."""
        from . import versioning
        from .cache import endpoint_id
        from .folders import FolderOps, paired
        from .labels import label
        from .receiving import download

        data = self.settings()
        db = self._index() if reading else self._state()[0]
        options = self._options(data, None, None)
        wire = functools.cache(lambda: self._wire(data))  # made on the first request: a push that sends none imports no boto3
        endpoint = self._endpoint(data)
        ops = FolderOps(
            mappings=dict(self._mappings), endpoint=endpoint, db=db, workers=data["max_workers"],
            resolve=lambda path: self._resolve(data, path), list=lambda bucket, prefix: wire().list(bucket, prefix),
            download=lambda *args, **kwargs: download(wire(), *args, **kwargs), delete=lambda bucket, key: wire().delete(bucket, key),
            journal=lambda path, bucket, key, wait: self._journal(
                data, path=path, bucket=bucket, key=key, source=path, options=label(options, data, path), wait=wait
            ),
            journal_all=lambda saves, wait: self._journal_many(data, saves, options, wait),
            drop=lambda fut: self._state()[1].drop_ids({fut.entry_id} if fut.entry_id else set()), conditional=options.conflict == "raise",
            cache_dir=os.path.join(os.path.abspath(self.cache_dir), endpoint_id(endpoint)),
            list_as_of=lambda bucket, prefix, at: versioning.listing_as_of(wire(), bucket, prefix, at),
            head=lambda bucket, key: wire().head(bucket, key),
        )  # fmt: skip
        return ops if pair is None else paired(ops, *pair)

    def _endpoint(self, data: dict[str, Any]) -> str:
        """The configured endpoint's URL, remembered from an earlier client when nothing it depends on changed."""
        from .endpoints import endpoint_for

        if self._client is not None:
            return self._wire(data).endpoint
        return endpoint_for(self.state_dir, data, lambda: self._wire(data).endpoint)

    def push(
        self, directory: str | os.PathLike[str], local_dir: str | os.PathLike[str] | None = None, *, delete: bool = False,
        dry_run: bool = False, wait: bool = True, progress: bool | None = None,
    ) -> FolderReport:
        """Upload what is new or changed under a mapped directory (or a directory paired with a URL); see :func:`s3bp.push`."""
        from .folders import run

        ops, top = self._folder_target(directory, local_dir)
        return run(ops, "push", top, delete=delete, dry_run=dry_run, wait=wait, progress=progress)

    def pull(
        self, directory: str | os.PathLike[str], local_dir: str | os.PathLike[str] | None = None, *, delete: bool = False,
        dry_run: bool = False, progress: bool | None = None, as_of: datetime.datetime | None = None,
    ) -> FolderReport:
        """Download what is newer in S3 under a mapped directory (or a directory paired with a URL), or its state at ``as_of``;
        see :func:`s3bp.pull`."""
        from . import versioning
        from .folders import run

        ops, top = self._folder_target(directory, local_dir)
        at = versioning.timestamp(as_of) if as_of is not None else None
        return run(ops, "pull", top, delete=delete, dry_run=dry_run, progress=progress, as_of=at)

    def sync(
        self, directory: str | os.PathLike[str], local_dir: str | os.PathLike[str] | None = None, *, delete: bool = False,
        dry_run: bool = False, progress: bool | None = None,
    ) -> FolderReport:
        """Pull, then push a mapped directory (or a directory paired with a URL); see :func:`s3bp.sync`."""
        from .folders import run

        ops, top = self._folder_target(directory, local_dir)
        return run(ops, "sync", top, delete=delete, dry_run=dry_run, progress=progress)

    def _folder_target(self, directory: str | os.PathLike[str], local_dir: str | os.PathLike[str] | None) -> tuple[FolderOps, Any]:
        """The folder operations and local directory of a mapped directory, or of a URL and local directory pair."""
        if local_dir is None and not paths.is_url(directory):
            return self._folder_ops(), directory
        if local_dir is None:
            raise InvalidPathError(f"Give a local directory to pair with {directory}, e.g. `s3bp pull {directory} ./here`.")
        pair = paths.folder_pair(directory, local_dir)
        return self._folder_ops(pair), pair[0]

    def ls(self, directory: str | os.PathLike[str]) -> list[FileState]:
        """The sync state of every file under a mapped directory; see :func:`s3bp.ls`."""
        from .folders import survey

        return survey(self._folder_ops(reading=True), directory)[0]

    def info(self, path: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None) -> ObjectInfo:
        """What S3 holds for a path (one HEAD) and how the local copy relates to it; see :func:`s3bp.info`."""
        from .describing import describe
        from .localfiles import local_stat, refuse_directory

        data = self.settings()
        res = self._resolve(data, path, bucket_name, namekey)
        refuse_directory(res.path)  # a folder is no object: `s3bp ls` tells about its files
        wire = self._wire(data)
        record, _ = self._index().load_state(res.path)
        pending = [p for p in self.pending_uploads() if p.path == res.path]
        head = wire.head(res.bucket, res.key)
        return describe(
            path=res.path, bucket=res.bucket, key=res.key, endpoint=wire.endpoint, head=head, local=local_stat(res.path),
            record=record, pending=pending[-1] if pending else None,
        )  # fmt: skip

    def verify(self, directory: str | os.PathLike[str], *, repair: bool = False) -> VerifyReport:
        """Check a mapped directory's synced files against their records, locally and in S3; see :func:`s3bp.verify`."""
        from .verifying import verify

        if paths.is_url(directory):  # verify compares local copies with S3: it needs the folder that holds them
            raise InvalidPathError(f"Cannot verify {directory}: give the local directory mapped to it (`s3bp map DIR BUCKET`), not a URL.")
        return verify(self._folder_ops(reading=not repair), directory, repair=repair)

    def resolve_conflict(self, filepath: str | os.PathLike[str], keep: str, bucket_name: str | None = None, namekey: bool | None = None) -> None:
        """Settle a conflict for one file; see :func:`s3bp.resolve_conflict`."""
        from .labels import label
        from .localfiles import LOCAL_SUFFIX, drop_sidecar, set_aside, sidecar
        from .receiving import download
        from .tree import REMOTE_SUFFIX

        if keep not in ("local", "remote"):
            raise InvalidArgumentError(f"keep must be 'local' or 'remote', got {keep!r}.")
        data = self.settings()
        res = self._resolve(data, filepath, bucket_name, namekey)
        if keep == "local":
            if not os.path.isfile(res.path):
                raise ObjectNotFoundError(f"Cannot keep the local version of {res.path}: no such file.")
            options = label(self._options(data, "overwrite", None), data, res.path)
            self._journal(data, path=res.path, bucket=res.bucket, key=res.key, source=res.path, options=options, wait=True).result()
            drop_sidecar(res.path, REMOTE_SUFFIX)  # the S3 version a sync put beside it was just replaced
            return
        db, queue = self._state()
        aside = sidecar(res.path, LOCAL_SUFFIX)
        with queue.holding(res.path):  # saves of this path wait: one made after this call wins, as it should
            yours = db.entries_of(res.path)
            try:
                moved = set_aside(res.path, aside)
                try:
                    record = download(self._wire(data), res.path, res.bucket, res.key)
                except BaseException:
                    if moved and not os.path.exists(res.path):
                        os.replace(aside, res.path)  # theirs did not arrive: yours goes back, still journaled
                    raise
            except OSError as exc:
                if isinstance(exc, S3bpError):  # S3's answer (denied, unreachable, gone): as it is
                    raise
                raise LocalFileError(exc.errno, f"Cannot take S3's version of {res.path}: {exc.strerror or exc}. Nothing was changed.") from exc
            queue.drop_idle(yours)
            db.put_record(record)

    # -- URLs and the managed cache --------------------------------------------------

    def local_path(self, url: str | os.PathLike[str]) -> str:
        """Where the local copy of ``s3://bucket/key`` lives in the managed cache (a local path: itself); see :func:`s3bp.local_path`."""
        return self.resolve(url).path

    def _cache(self, data: dict[str, Any]) -> Cache:
        """The managed cache, with the path locks saves take and the configured limits."""
        from .cache import Cache

        db = self._index()
        if self._cache_locks is None and db.writable:
            from .locks import StripedLocks

            with self._lock:
                if self._cache_locks is None:
                    self._cache_locks = StripedLocks(self.state_dir / "locks", "path")  # the files UploadQueue.holding uses
        return Cache(
            self.cache_dir, db, self._cache_locks, self._mappings, max_size=_limit(_config.parse_size, data["cache_max_size"]),
            max_age=_limit(_config.parse_age, data["cache_max_age"]),
        )  # fmt: skip

    def _cache_use(self, data: dict[str, Any], res: paths.Resolution) -> AbstractContextManager[None]:
        """For a URL's copy: its lock held through the load and the read, the use noted after (see :meth:`Cache.loading`)."""
        return contextlib.nullcontext() if res.endpoint is None else self._cache(data).loading(res.path)

    def cache_info(self) -> CacheInfo:
        """The managed cache's size, files, limits and oldest use; see :func:`s3bp.cache_info`."""
        cache = self._cache(self.settings())
        return cache.info(max_size=cache.max_size, max_age=cache.max_age)

    def cache_prune(self, max_size: int | str | None = None, older_than: float | str | None = None, *, dry_run: bool = False) -> PruneReport:
        """Evict least recently used files from the managed cache; see :func:`s3bp.cache_prune`."""
        cache = self._cache(self.settings())
        size = cache.max_size if max_size is None else _argument(_config.parse_size, "max_size", max_size)
        age = cache.max_age if older_than is None else _argument(_config.parse_age, "older_than", older_than)
        return cache.prune(max_size=size, max_age=age, dry_run=dry_run)

    def cache_clear(self, *, dry_run: bool = False) -> PruneReport:
        """Evict every file of the managed cache that may go; see :func:`s3bp.cache_clear`."""
        return self._cache(self.settings()).prune(max_size=0, max_age=None, dry_run=dry_run)

    def list_objects(self, url: str) -> list[Listed]:
        """The objects under ``s3://bucket/prefix``, with their local copies' state; see :func:`s3bp.list_objects`."""
        from .folders import listing

        bucket, _, prefix = url[len(paths.URL_SCHEME) :].partition("/") if paths.is_url(url) else ("", "", "")
        if not bucket:
            raise InvalidPathError(f"Expected an s3://bucket/prefix URL, got {url!r}.")
        paths.check_bucket_name(bucket)
        return listing(self._folder_ops(reading=True), bucket, prefix)

    # -- configuration ----------------------------------------------------------

    def set_default_bucket(self, bucket: str) -> None:
        """Use ``bucket`` when no bucket is given or mapped (persisted)."""
        self.config.set_default_bucket(bucket)

    def unset_default_bucket(self) -> None:
        """Forget the default bucket (persisted)."""
        self.config.set_default_bucket(None)

    def map_base_directory_to_bucket(self, directory: str | os.PathLike[str], bucket: str) -> None:
        """Map ``directory`` (and everything below it) to ``bucket`` (persisted); see :meth:`ConfigFile.map_directory`."""
        self.config.map_directory(directory, bucket)

    def remove_base_directory_mapping(self, directory: str | os.PathLike[str]) -> None:
        """Remove the mapping of ``directory`` (persisted); a no-op if it is not mapped."""
        self.config.unmap_directory(directory)

    def check_bucket(self, bucket: str) -> S3bpError | None:
        """What is wrong with ``bucket`` on the configured endpoint (missing, denied, unreachable), or None: one request."""
        try:
            self._wire(self.settings()).check_bucket(bucket)
        except S3bpError as exc:
            return exc
        return None

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings (persisted; None: back to the default) and return them all; see :func:`s3bp.configure`."""
        written = self.config.set(settings)
        if "max_workers" in settings and self._queue is not None:
            self._queue.resize(written["max_workers"])
        return written

    # -- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Wait for every upload, then release the journal (failed uploads stay in it)."""
        queue = self._queue
        if queue is not None and os.getpid() == self._pid:
            # waited for first: its uploads use this store's database (let go of it now, they would open it again)
            atexit.unregister(self._at_exit)
            queue.close()
        with self._lock:
            queue, db = self._queue, self._db
            self._queue = self._db = None
        if os.getpid() != self._pid:
            return  # a forked child: the queue, its threads and its locks are the parent's
        if queue is not None:
            atexit.unregister(self._at_exit)
            queue.close()
        if self._made is not None:
            self._made.close()
        if self._cache_locks is not None:
            self._cache_locks.close()
            self._cache_locks = None
        if db is not None:
            db.close()

    def _at_exit(self) -> None:
        """At interpreter exit: wait for pending uploads or hand them over, as the ``on_exit`` setting says."""
        if os.getpid() != self._pid or self._queue is None:
            return  # a forked child does not own its parent's uploads
        from .handoff import close_at_exit

        try:
            settings = self.settings()
        except S3bpError:  # the config file broke meanwhile: the settings seen last still say what to do
            settings = self._seen_settings or _config.validate({}, str(self.config.path))
        close_at_exit(self._queue, settings, self.config.path, self.state_dir)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _limit(parse: Any, value: Any) -> Any:
    """A cache limit from the config (already validated), or None."""
    return None if value is None else parse(value)


def _argument(parse: Any, name: str, value: Any) -> Any:
    """A size or age argument, parsed; :class:`InvalidArgumentError` naming it when it is wrong."""
    try:
        return parse(value)
    except ValueError as exc:
        raise InvalidArgumentError(f"{name} must be {exc}, got {value!r}.") from None


def _finish(fut: UploadFuture, wait: bool) -> UploadFuture:
    """Wait for ``fut`` if asked to; raises its :class:`UploadError`."""
    if wait:
        fut.result()
    return fut

