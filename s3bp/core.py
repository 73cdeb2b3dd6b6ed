"""The :class:`Store`: saving, loading, uploading and downloading against S3.

A store owns the configuration view, the S3 clients (one per profile,
region and endpoint, created on first use and shared by all threads), the
state database and the upload queue. The module-level functions in
:mod:`s3bp.api` use one default store per process.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config as _config
from . import paths
from .errors import (
    ConflictError,
    CredentialsError,
    DownloadError,
    EndpointError,
    InvalidArgumentError,
    InvalidPathError,
    ObjectNotFoundError,
    OfflineWarning,
    S3bpError,
    SerializationError,
    describe_client_error,
)
from .freshness import LocalStat, Plan, Step, SyncRecord, plan_load
from .progress import bar as progress_bar
from .progress import subscribers as progress_subscribers
from .serializers import Deserializer, Serializer, frame_format, get_format

if TYPE_CHECKING:
    from .folders import FileState, FolderReport
    from .index import JournalEntry, StateDB
    from .tree import Remote
    from .uploads import PendingUpload, UploadFuture, UploadQueue

logger = logging.getLogger("s3bp")

#: Objects at least this large go through s3transfer (multipart, concurrent parts).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: A load's first GET asks for this many bytes: small objects arrive in that one request.
PROBE_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_ANY = object()  # no expectation about the local file
#: Checksums are computed by botocore itself; a caller-given one would be wrong for the snapshot.
_CHECKSUM_ARGS = frozenset(
    {"ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumMD5", "ChecksumSHA1", "ChecksumSHA256"}
    | {"ChecksumSHA512", "ChecksumXXHASH3", "ChecksumXXHASH64", "ChecksumXXHASH128", "MpuObjectSize"}
)


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

    Notes
    -----
    A store is a context manager; leaving it waits for its uploads.
    """

    def __init__(
        self,
        config: _config.ConfigFile | str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        client: Any = None,
    ):
        self.config = config if isinstance(config, _config.ConfigFile) else _config.ConfigFile(config)
        self.state_dir = Path(state_dir) if state_dir is not None else _config.state_dir()
        self._given_client = client
        self._lock = threading.RLock()
        self._clients: dict[tuple[str | None, str | None, str | None], Any] = {}
        self._transfers: dict[tuple[int, bool], Any] = {}
        self._db: StateDB | None = None
        self._queue: UploadQueue | None = None
        self._seen_settings: dict[str, Any] | None = None
        self._mappings: dict[str, str] = {}
        self._pid = os.getpid()
        self._exiting = False

    # -- settings and resolution -------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The current configuration (re-read only when the file changes; do not modify)."""
        data = self.config.read()
        if data is not self._seen_settings:
            self._mappings = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            self._seen_settings = data
        return data

    def resolve(
        self, filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None
    ) -> paths.Resolution:
        """The bucket and key ``filepath`` maps to (see :func:`s3bp.paths.resolve`)."""
        data = self.settings()
        return paths.resolve(filepath, self._mappings, data["default_bucket"], bucket_name, bool(namekey))

    # -- clients -----------------------------------------------------------

    def client(self) -> Any:
        """The S3 client for the configured profile, region and endpoint."""
        if self._given_client is not None:
            return self._given_client
        data = self.settings()
        return self._client_for(data["profile"], data["region"], data["endpoint_url"])

    def _client_for(self, profile: str | None, region: str | None, endpoint: str | None) -> Any:
        """The shared client for (profile, region, endpoint), created once."""
        key = (profile, region, endpoint)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._new_client(profile, region, endpoint)
            return self._clients[key]

    def _new_client(self, profile: str | None, region: str | None, endpoint: str | None) -> Any:
        """Create a boto3 S3 client with retries and a connection pool sized to the workers."""
        import boto3
        from botocore.config import Config

        data = self.settings()
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except Exception as exc:  # botocore.exceptions.ProfileNotFound and friends
            raise CredentialsError(
                f"Cannot use AWS profile {profile!r}: {exc}. Check ~/.aws/config or the 'profile' config key."
            ) from exc
        cfg = Config(
            retries={"mode": data["retry_mode"], "total_max_attempts": data["max_attempts"]},
            max_pool_connections=data["max_workers"] + 10,
            connect_timeout=data["connect_timeout"],
            read_timeout=data["read_timeout"],
        )
        return session.client("s3", endpoint_url=endpoint, config=cfg)

    def _client_for_entry(self, entry: JournalEntry) -> Any:
        """The client that talks to the endpoint a journal entry was saved for."""
        current = self.client()
        if _identity(current)[0] == entry.endpoint:
            return current
        return self._client_for(entry.profile, entry.region, entry.endpoint)

    def _transfer(self, client: Any, threaded: bool | None = None) -> Any:
        """The s3transfer manager on ``client``: multipart, concurrent parts, bounded memory.

        At interpreter exit thread pools refuse new work, so uploads then run
        their parts on the calling thread.
        """
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        if threaded is None:
            threaded = not self._exiting
        with self._lock:
            key = (id(client), threaded)
            if key not in self._transfers:
                tc = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=10, use_threads=threaded)
                self._transfers[key] = create_transfer_manager(client, tc)
            return self._transfers[key]

    # -- state -------------------------------------------------------------

    def _state(self) -> tuple[StateDB, UploadQueue]:
        """The state database and upload queue, opened on first use (adopting orphaned uploads)."""
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    from .index import StateDB
                    from .uploads import Owner, UploadQueue

                    self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                    db = StateDB(self.state_dir / "state.sqlite3")
                    owner = Owner(self.state_dir / "owners")
                    workers = self.settings()["max_workers"]
                    queue = UploadQueue(db, self.state_dir / "spool", owner, self._upload_entry, workers)
                    self._db, self._queue = db, queue
                    atexit.register(self._at_exit)
                    queue.adopt_orphans()
        assert self._db is not None
        return self._db, self._queue

    # -- saving ------------------------------------------------------------

    def save_object(
        self,
        obj: Any,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        serializer: Serializer | str | None = None,
        namekey: bool | None = None,
        wait: bool = False,
        *,
        conflict: str | None = None,
        extra_args: dict[str, Any] | None = None,
    ) -> UploadFuture:
        """Write ``obj`` to ``filepath`` and upload it to S3.

        Parameters
        ----------
        obj
            The object to save.
        filepath
            The local file; missing parent directories are created.
        bucket_name
            The bucket; default: the mapped base directory's, else the default bucket.
        serializer
            ``callable(obj, filepath)`` or a format name; default ``"pickle"``.
        namekey
            Key the object by the file's base name even under a base directory.
        wait
            Upload before returning and raise on failure; otherwise upload in the background.
        conflict
            ``"raise"`` (default, or the ``conflict`` config key): if the object
            changed in S3 since this machine last synced the file, do not
            replace it (conditional PUT) and fail with :class:`~s3bp.errors.ConflictError`.
            ``"overwrite"``: replace it regardless (the 0.1.x behaviour).
        extra_args
            Upload arguments such as ``ContentType``, ``StorageClass``,
            ``ServerSideEncryption``, ``SSEKMSKeyId``; added to the ``upload_args``
            config key. Only s3transfer's allowed upload arguments are accepted.

        Returns
        -------
        UploadFuture
            Done when the upload is (``result()`` raises :class:`~s3bp.errors.UploadError`).

        Raises
        ------
        NoBucketError
            When no bucket is given, mapped or set as default (before anything is written).
        SerializationError
            When the serializer raises or writes nothing; the previous file is left intact.
        UploadError
            With ``wait=True``, when the upload fails.
        """
        res = self.resolve(filepath, bucket_name, namekey)
        options = self._upload_options(conflict, extra_args)
        write = _serializer(serializer, res.path)
        self._check_file_target(res.path)
        tmp = _temp_beside(res.path)
        try:
            write(obj, tmp)
        except BaseException as exc:
            _remove(tmp)
            raise SerializationError(f"Could not save {res.path}: the serializer raised {exc!r}. Nothing was written.") from exc
        if not os.path.isfile(tmp):
            raise SerializationError(
                f"Could not save {res.path}: the serializer wrote no file at the path it was given ({tmp}). "
                f"A serializer must write to exactly that path."
            )
        try:
            fut = self._enqueue(res, tmp, wait=wait, **options)
            os.replace(tmp, res.path)
        finally:
            _remove(tmp)
        return self._finish(fut, wait)

    def upload_file(
        self,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        namekey: bool | None = None,
        wait: bool = False,
        *,
        conflict: str | None = None,
        extra_args: dict[str, Any] | None = None,
    ) -> UploadFuture:
        """Upload an existing local file to S3.

        The upload reads a copy taken now, so later edits of the file do not
        change what is uploaded.

        Parameters
        ----------
        filepath, bucket_name, namekey, wait, conflict, extra_args
            As for :meth:`save_object`.

        Returns
        -------
        UploadFuture

        Raises
        ------
        ObjectNotFoundError
            When the file does not exist.
        UploadError
            With ``wait=True``, when the upload fails.
        """
        res = self.resolve(filepath, bucket_name, namekey)
        options = self._upload_options(conflict, extra_args)
        if not os.path.isfile(res.path):
            raise ObjectNotFoundError(f"Cannot upload {res.path}: no such file.")
        return self._finish(self._enqueue(res, res.path, wait=wait, **options), wait)

    def _upload_options(self, conflict: str | None, extra_args: dict[str, Any] | None) -> dict[str, Any]:
        """The conflict rule and the upload arguments (config, then per call), checked before anything is written."""
        data = self.settings()
        conflict = data["conflict"] if conflict is None else conflict
        if conflict not in ("raise", "overwrite"):
            raise InvalidArgumentError(f"conflict must be 'raise' or 'overwrite', got {conflict!r}.")
        if extra_args is not None and not isinstance(extra_args, dict):
            raise InvalidArgumentError(f"extra_args must be a dict of upload arguments, got {type(extra_args).__name__}.")
        merged = {**data["upload_args"], **(extra_args or {})}
        if merged:
            from s3transfer.manager import TransferManager

            allowed = set(TransferManager.ALLOWED_UPLOAD_ARGS) - _CHECKSUM_ARGS
            bad = sorted(k for k in merged if k not in allowed)
            if bad:
                where = "extra_args" if any(k in (extra_args or {}) for k in bad) else f"the upload_args config key in {self.config.path}"
                raise InvalidArgumentError(
                    f"Unknown upload argument(s) {', '.join(map(repr, bad))} in {where}; allowed: {', '.join(sorted(allowed))}."
                )
            try:
                encoded = json.dumps(merged, sort_keys=True)
            except TypeError as exc:
                raise InvalidArgumentError(f"Upload arguments must be plain strings, numbers and dicts: {exc}.") from None
        return {"conflict": conflict, "extra_args": encoded if merged else None}

    def _enqueue(
        self, res: paths.Resolution, source: str, wait: bool, conflict: str = "raise", extra_args: str | None = None
    ) -> UploadFuture:
        """Snapshot ``source`` into the spool, journal it and queue its upload."""
        _, queue = self._state()
        client = self.client()
        endpoint, region = _identity(client)
        st = os.stat(source)
        entry = queue.new_entry(
            path=res.path,
            endpoint=endpoint,
            profile=self.settings()["profile"],
            region=region,
            bucket=res.bucket,
            key=res.key,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            conflict=conflict,
            extra_args=extra_args,
        )
        from .uploads import make_snapshot

        make_snapshot(source, Path(entry.spool))
        try:
            return queue.submit(entry, report=not wait)
        except BaseException:
            _remove(entry.spool)
            raise

    @staticmethod
    def _finish(fut: UploadFuture, wait: bool) -> UploadFuture:
        """Wait for ``fut`` if asked to; raises its :class:`UploadError`."""
        if wait:
            fut.result()
        return fut

    def _upload_entry(self, entry: JournalEntry) -> SyncRecord:
        """Send one journal entry's snapshot to S3; return the sync record of what S3 now holds.

        Under ``conflict="raise"``, when this machine synced the path before,
        the PUT carries ``IfMatch`` with the ETag of that sync: S3 refuses it
        (412) if someone else wrote the object since. Objects sent in parts
        are checked with a HEAD first instead (s3transfer cannot send the
        condition), which leaves a short race.
        """
        from botocore.exceptions import ClientError

        client = self._client_for_entry(entry)
        extra = json.loads(entry.extra_args) if entry.extra_args else {}
        db, _ = self._state()
        record = db.record(entry.path) if entry.conflict == "raise" else None
        if record is not None and (record.endpoint, record.bucket, record.key) != entry.object_id:
            record = None
        with _s3_errors("upload", entry.bucket, entry.key, passthrough=ClientError):
            try:
                etag = self._put(client, entry, extra, record)
            except ClientError as exc:
                code = _error_code(exc)
                if record is None or code not in ("PreconditionFailed", "412", "NoSuchKey", "404", "NotImplemented", "501"):
                    raise _translate(exc, "upload", entry.bucket, entry.key) from exc
                current = _head_or_none(client, entry.bucket, entry.key)
                if current is None or current["ETag"] == record.etag:
                    # Deleted in S3 meanwhile, or an endpoint without conditional writes whose copy is still ours.
                    etag = self._put(client, entry, extra, None)
                else:
                    latest = db.record(entry.path)
                    if latest is None or latest.etag != current["ETag"]:
                        raise _conflict(entry, record, current) from exc
                    # Another process of this machine uploaded this file meanwhile: not a conflict.
                    # Go over its version if this save is newer; otherwise this save is superseded.
                    if db.newest_upload(*entry.object_id) >= entry.seq:
                        etag = latest.etag
                    else:
                        etag = self._put(client, entry, extra, latest)
        return SyncRecord(
            path=entry.path,
            endpoint=entry.endpoint,
            bucket=entry.bucket,
            key=entry.key,
            etag=etag,
            size=entry.size,
            mtime_ns=entry.mtime_ns,
            verified_at=time.time(),
            saved_ns=entry.seq,
        )

    def _put(self, client: Any, entry: JournalEntry, extra: dict[str, Any], over: SyncRecord | None) -> str:
        """PUT the snapshot (in parts if large), only over the version ``over`` records when given; return the new ETag."""
        if entry.size < MULTIPART_THRESHOLD:
            condition = {"IfMatch": over.etag} if over is not None else {}
            with open(entry.spool, "rb") as body:
                return client.put_object(Bucket=entry.bucket, Key=entry.key, Body=body, **extra, **condition)["ETag"]
        if over is not None:
            current = _head_or_none(client, entry.bucket, entry.key)
            if current is not None and current["ETag"] != over.etag:
                raise _conflict(entry, over, current)
        try:
            self._transfer(client).upload(entry.spool, entry.bucket, entry.key, extra_args=extra).result()
        except RuntimeError:
            # The interpreter began exiting mid-upload: its thread pools now refuse
            # work ("cannot schedule new futures"), so send the parts from this thread.
            self._transfer(client, threaded=False).upload(entry.spool, entry.bucket, entry.key, extra_args=extra).result()
        return client.head_object(Bucket=entry.bucket, Key=entry.key)["ETag"]

    # -- loading -----------------------------------------------------------

    def load_object(
        self,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        deserializer: Deserializer | str | None = None,
        namekey: bool | None = None,
        verbose: bool = False,
        max_age: float | None = None,
        *,
        offline: str | None = None,
    ) -> Any:
        """Load an object, from the local file when it is current, else from S3.

        Parameters
        ----------
        filepath
            The local file.
        bucket_name
            The bucket; default: the mapped base directory's, else the default bucket.
        deserializer
            ``callable(filepath) -> obj`` or a format name; default ``"pickle"``.
        namekey
            Key the object by the file's base name even under a base directory.
        verbose
            Print whether the object came from disk or from S3.
        max_age
            Trust a local copy verified less than this many seconds ago
            without asking S3 (default: the ``max_age`` config key, 0).
        offline
            When S3 cannot be reached and a local copy exists: ``"warn"``
            (default, or the ``offline`` config key) loads it with an
            :class:`~s3bp.errors.OfflineWarning`; ``"error"`` raises
            :class:`~s3bp.errors.EndpointError`. Without a local copy it always raises.

        Returns
        -------
        object

        Raises
        ------
        ObjectNotFoundError
            When the object is neither on disk nor in S3.
        SerializationError
            When the deserializer fails (the file is left in place).
        """
        read = _deserializer(deserializer)
        path = self.download_file(filepath, bucket_name, namekey, verbose, max_age, offline=offline)
        try:
            return read(path)
        except BaseException as exc:
            raise SerializationError(
                f"Could not load {path}: the deserializer raised {exc!r}. The file is left in place; "
                f"check that it was saved in the format you are reading it with."
            ) from exc

    def save_dataframe(
        self,
        df: Any,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        format: str | None = None,
        namekey: bool | None = None,
        wait: bool = False,
        *,
        conflict: str | None = None,
        extra_args: dict[str, Any] | None = None,
        **writer_kwargs: Any,
    ) -> UploadFuture:
        """Write a DataFrame to ``filepath`` in a registered format and upload it.

        Parameters
        ----------
        df
            A pandas DataFrame, or a polars one (written by polars itself:
            parquet, feather or csv).
        filepath, bucket_name, namekey, wait, conflict, extra_args
            As for :meth:`save_object`.
        format
            A format name (case-insensitive); default: from the file's suffix, else ``"csv"``.
        **writer_kwargs
            Passed to the format's writer (e.g. ``compression=``, ``sheet_name=``).

        Returns
        -------
        UploadFuture

        Raises
        ------
        UnknownFormatError
            Listing the known formats.
        MissingDependencyError
            When the format's engine is not installed (naming the extra).
        """
        from .frames import is_polars

        backend = "polars" if is_polars(df) else "pandas"
        write = self._frame_function(filepath, bucket_name, namekey, format, writer_kwargs, "serializer", backend)
        return self.save_object(df, filepath, bucket_name, write, namekey, wait, conflict=conflict, extra_args=extra_args)

    def load_dataframe(
        self,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        format: str | None = None,
        namekey: bool | None = None,
        verbose: bool = False,
        max_age: float | None = None,
        *,
        offline: str | None = None,
        backend: str = "pandas",
        **reader_kwargs: Any,
    ) -> Any:
        """Load a DataFrame, from the local file when it is current, else from S3.

        Parameters
        ----------
        filepath, bucket_name, namekey, verbose, max_age, offline
            As for :meth:`load_object`.
        format
            A format name (case-insensitive); default: from the file's suffix, else ``"csv"``.
        backend
            ``"pandas"`` or ``"polars"`` (parquet, feather and csv; needs ``s3bp[polars]``).
        **reader_kwargs
            Passed to the format's reader (e.g. ``columns=``, ``sheet_name=``).

        Returns
        -------
        pandas.DataFrame or polars.DataFrame
        """
        read = self._frame_function(filepath, bucket_name, namekey, format, reader_kwargs, "deserializer", backend)
        return self.load_object(filepath, bucket_name, read, namekey, verbose, max_age, offline=offline)

    def _frame_function(
        self, filepath: Any, bucket_name: str | None, namekey: bool | None, format: str | None, kwargs: dict, role: str, backend: str
    ) -> Any:
        """The format's serializer or deserializer for a DataFrame file and backend, with the caller's keyword arguments bound."""
        from .frames import BACKENDS, polars_function

        if backend not in BACKENDS:
            raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
        path = self.resolve(filepath, bucket_name, namekey).path
        fmt = frame_format(path, kwargs.pop("dformat", None) if format is None else format)
        function = polars_function(fmt.name, role) if backend == "polars" else getattr(fmt, role)
        return functools.partial(function, **kwargs) if kwargs else function

    def download_file(
        self,
        filepath: str | os.PathLike[str],
        bucket_name: str | None = None,
        namekey: bool | None = None,
        verbose: bool = False,
        max_age: float | None = None,
        *,
        offline: str | None = None,
    ) -> str:
        """Make sure the local file holds the newest version, downloading only if S3 has a newer one.

        Parameters
        ----------
        filepath, bucket_name, namekey, verbose, max_age, offline
            As for :meth:`load_object`.

        Returns
        -------
        str
            The local file's absolute path.

        Raises
        ------
        ObjectNotFoundError
            When the object is neither on disk nor in S3.
        """
        res = self.resolve(filepath, bucket_name, namekey)
        offline = self.settings()["offline"] if offline is None else offline
        if offline not in ("warn", "error"):
            raise InvalidArgumentError(f"offline must be 'warn' or 'error', got {offline!r}.")
        db, _ = self._state()
        local = _local_stat(res.path)
        record, pending = db.load_state(res.path)
        if max_age is None:
            max_age = self.settings()["max_age"]
        client = self.client()
        endpoint, _ = _identity(client)
        plan = plan_load(
            local, record, endpoint=endpoint, bucket=res.bucket, key=res.key, pending=pending, now=time.time(), max_age=max_age
        )
        if plan.step is Step.USE_LOCAL:
            outcome = "local copy is current (no request)"
        else:
            try:
                outcome = self._fetch(client, res, plan, endpoint, max_age > 0)
            except EndpointError as exc:
                if local is None or offline == "error":
                    raise
                warnings.warn(
                    f"s3bp: S3 is unreachable; loading the local copy {res.path}, which may be older than "
                    f"s3://{res.bucket}/{res.key}. ({exc}) Pass offline='error' to fail instead.",
                    OfflineWarning,
                    stacklevel=3,
                )
                outcome = "S3 unreachable; local copy used"
        if verbose:
            print(f"s3bp: {res.path} <- s3://{res.bucket}/{res.key}: {outcome}")
        return res.path

    def _fetch(self, client: Any, res: paths.Resolution, plan: Plan, endpoint: str, touch: bool) -> str:
        """One conditional GET of the object's first MiB; fetch the rest only if there is more.

        Returns what happened, for ``verbose``.
        """
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": res.bucket, "Key": res.key, "Range": f"bytes=0-{PROBE_BYTES - 1}"}
        if plan.step is Step.IF_NONE_MATCH:
            kwargs["IfNoneMatch"] = plan.etag
        elif plan.step is Step.IF_MODIFIED_SINCE:
            kwargs["IfModifiedSince"] = datetime.datetime.fromtimestamp(int(plan.since), tz=datetime.timezone.utc)
        db, _ = self._state()
        try:
            with _s3_errors("download", res.bucket, res.key, passthrough=ClientError):
                resp = _get_first(client, kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "304":
                if touch:
                    db.touch(res.path, time.time())
                return "local copy is current (S3 answered 304)"
            if code in ("NoSuchKey", "404") and plan.step is not Step.GET:
                logger.warning("s3bp: s3://%s/%s is not in S3; using the local file %s", res.bucket, res.key, res.path)
                return "not in S3; local file used"
            if code in ("NoSuchKey", "404"):
                raise ObjectNotFoundError(
                    f"{res.path} is not on disk and s3://{res.bucket}/{res.key} does not exist. "
                    f"Save it first, or check the bucket and key with `s3bp where {res.path}`."
                ) from exc
            raise _translate(exc, "download", res.bucket, res.key) from exc
        rec = self._receive(client, res, resp, endpoint)
        db.put_record(rec)
        return f"downloaded {rec.size} bytes"

    def _download(
        self, client: Any, res: paths.Resolution, endpoint: str, *, target: str | None = None, expect: Any = _ANY, progress: bool | None = None
    ) -> SyncRecord:
        """Download the object unconditionally (see :meth:`_receive`)."""
        kwargs = {"Bucket": res.bucket, "Key": res.key, "Range": f"bytes=0-{PROBE_BYTES - 1}"}
        with _s3_errors("download", res.bucket, res.key):
            resp = _get_first(client, kwargs)
        return self._receive(client, res, resp, endpoint, target=target, expect=expect, progress=progress)

    def _receive(
        self,
        client: Any,
        res: paths.Resolution,
        resp: dict[str, Any],
        endpoint: str,
        *,
        target: str | None = None,
        expect: Any = _ANY,
        progress: bool | None = None,
    ) -> SyncRecord:
        """Write the object beside the target and move it into place; return the sync record to keep.

        ``resp`` holds the first bytes. A small object is complete; a medium one
        gets its rest in one more GET of the same version; a large one goes
        through s3transfer (concurrent ranged GETs), with a progress bar where
        ``progress`` (default: on a terminal) says so. The bytes are checked
        against an MD5 ETag. The caller stores the record (none is kept for a
        ``target`` other than ``res.path``). With ``expect`` (a
        :class:`LocalStat` or None), a target that no longer matches it is left
        alone and :class:`ConflictError` raised.
        """
        target = res.path if target is None else target
        self._check_file_target(target)
        tmp = _temp_beside(target)
        etag = resp["ETag"]
        total = _object_size(resp)
        digest = hashlib.md5(usedforsecurity=False) if _etag_is_md5(resp) else None
        try:
            with _s3_errors("download", res.bucket, res.key):
                if total >= MULTIPART_THRESHOLD:
                    # s3transfer is told the size and ETag the first GET saw: it skips its
                    # HEAD and sends every part with IfMatch, so all parts are of that version.
                    resp["Body"].read()  # drain it: the connection goes back to the pool
                    with progress_bar(progress, total, 0, os.path.basename(target)) as tick:
                        subscribers = [_known_object(total, etag), *(progress_subscribers(progress, tick) or ())]
                        self._transfer(client).download(res.bucket, res.key, tmp, subscribers=subscribers).result()
                    if digest is not None:  # a large object sent in one piece: its ETag is still its MD5
                        with open(tmp, "rb") as done:
                            _copy_body(done, None, digest)
                else:
                    with open(tmp, "wb") as out:
                        _copy_body(resp["Body"], out, digest)
                        if out.tell() < total:
                            rest = client.get_object(Bucket=res.bucket, Key=res.key, Range=f"bytes={out.tell()}-", IfMatch=etag)
                            _copy_body(rest["Body"], out, digest)
            if digest is not None and digest.hexdigest() != etag.strip('"'):
                raise DownloadError(
                    f"Download of s3://{res.bucket}/{res.key} was corrupted in transit (MD5 {digest.hexdigest()} does not "
                    f"match ETag {etag}); {target} was left as it was. Try again; if it persists, check proxies on the way."
                )
            stamp = int(resp["LastModified"].timestamp())
            os.utime(tmp, (stamp, stamp))
            st = os.stat(tmp)
            if expect is not _ANY and _local_stat(target) != expect:
                raise ConflictError(
                    f"{target} changed while s3://{res.bucket}/{res.key} was downloading; the local file was kept.",
                    target, res.bucket, res.key,
                )
            os.replace(tmp, target)
        finally:
            _remove(tmp)
        return SyncRecord(target, endpoint, res.bucket, res.key, etag, st.st_size, st.st_mtime_ns, time.time())

    def _list(self, client: Any, bucket: str, prefix: str) -> Iterator[Remote]:
        """The objects of ``bucket`` under ``prefix``."""
        from .tree import Remote

        with _s3_errors("list", bucket, prefix):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield Remote(obj["Key"], obj["ETag"], obj["Size"], obj["LastModified"].timestamp())

    def _delete_object(self, client: Any, bucket: str, key: str) -> None:
        """Delete one object."""
        with _s3_errors("delete", bucket, key):
            client.delete_object(Bucket=bucket, Key=key)

    @staticmethod
    def _check_file_target(path: str) -> None:
        """Make the parent directories of ``path``; refuse a directory or a file as parent."""
        if os.path.isdir(path):
            raise InvalidPathError(f"Cannot use {path}: it is a directory. Give the path of a file inside it.")
        parent = os.path.dirname(path)
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidPathError(f"Cannot use {path}: a parent of it is a file, not a directory.") from None

    # -- the queue, seen from outside -------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Upload everything queued or left journaled, and wait.

        Raises
        ------
        UploadError
            Listing every upload that still failed (they stay journaled).
        """
        self._state()[1].flush(timeout)

    def pending_uploads(self) -> list[PendingUpload]:
        """Uploads queued, in flight, failed, or journaled by other processes."""
        return self._state()[1].pending()

    def set_max_workers(self, n: int) -> None:
        """Use ``n`` upload threads from now on (persisted in the config)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"max_workers must be a whole number of at least 1, got {n!r}.")
        self.config.update(lambda d: d.__setitem__("max_workers", n))
        if self._queue is not None:
            self._queue.resize(n)

    # -- folders -----------------------------------------------------------

    def push(
        self,
        directory: str | os.PathLike[str],
        *,
        delete: bool = False,
        dry_run: bool = False,
        wait: bool = True,
        progress: bool | None = None,
    ) -> FolderReport:
        """Upload every file under a mapped directory that is new or changed since it was last in sync.

        Parameters
        ----------
        directory
            A mapped base directory or a directory below one.
        delete
            Also delete from S3 the objects whose local file was deleted since
            the last sync (never an object s3bp has not synced).
        dry_run
            Decide and report, but transfer and delete nothing.
        wait
            Wait for the uploads (they go through the upload queue either way).
        progress
            Show a progress bar on stderr; default: only on a terminal or in a notebook.

        Returns
        -------
        FolderReport
            What was uploaded, skipped (and why), in conflict or failed, and the bytes sent.

        Raises
        ------
        InvalidPathError
            When ``directory`` is a file or not under a mapped base directory.
        """
        from .folders import run

        return run(self, "push", directory, delete=delete, dry_run=dry_run, wait=wait, progress=progress)

    def pull(
        self, directory: str | os.PathLike[str], *, delete: bool = False, dry_run: bool = False, progress: bool | None = None
    ) -> FolderReport:
        """Download every object under a mapped directory's prefix that is newer than the local copy.

        Parameters
        ----------
        directory, dry_run, progress
            As for :meth:`push`.
        delete
            Also delete local files whose object was deleted in S3 since the
            last sync, if they are unchanged since (never a file s3bp has not synced).

        Returns
        -------
        FolderReport
        """
        from .folders import run

        return run(self, "pull", directory, delete=delete, dry_run=dry_run, progress=progress)

    def sync(
        self, directory: str | os.PathLike[str], *, delete: bool = False, dry_run: bool = False, progress: bool | None = None
    ) -> FolderReport:
        """Pull, then push: afterwards both sides hold the newest version of every file.

        A file changed on both sides since the last sync is a conflict: neither
        side is overwritten, and the S3 version is put beside the local file as
        ``NAME.s3bp-remote``. Without ``delete``, a file deleted on one side is
        restored from the other; with it, the deletion is mirrored.

        Parameters
        ----------
        directory, delete, dry_run, progress
            As for :meth:`push`.

        Returns
        -------
        FolderReport
        """
        from .folders import run

        return run(self, "sync", directory, delete=delete, dry_run=dry_run, progress=progress)

    def ls(self, directory: str | os.PathLike[str]) -> list[FileState]:
        """The state of every file under a mapped directory: same, local newer, remote newer, ...

        Returns
        -------
        list of FileState
            Sorted by path.
        """
        from .folders import survey

        return survey(self, directory)[0]

    def resolve_conflict(
        self, filepath: str | os.PathLike[str], keep: str, bucket_name: str | None = None, namekey: bool | None = None
    ) -> None:
        """Settle a :class:`~s3bp.errors.ConflictError` (or a sync conflict) for one file.

        Parameters
        ----------
        filepath, bucket_name, namekey
            As for :meth:`save_object`.
        keep
            ``"local"``: upload the local file over the S3 version (waits).
            ``"remote"``: drop this file's pending uploads, move the local file
            to ``NAME.s3bp-local`` and download the S3 version.
        """
        res = self.resolve(filepath, bucket_name, namekey)
        if keep == "local":
            self.upload_file(res.path, bucket_name, namekey, wait=True, conflict="overwrite")
            return
        if keep != "remote":
            raise InvalidArgumentError(f"keep must be 'local' or 'remote', got {keep!r}.")
        db, queue = self._state()
        queue.drop_idle(db.entries_of(res.path))
        if os.path.exists(res.path):
            os.replace(res.path, res.path + ".s3bp-local")
        client = self.client()
        db.put_record(self._download(client, res, _identity(client)[0]))

    # -- configuration -----------------------------------------------------

    def set_default_bucket(self, bucket: str) -> None:
        """Use ``bucket`` when no bucket is given or mapped (persisted)."""
        paths.check_bucket_name(bucket)
        self.config.update(lambda d: d.__setitem__("default_bucket", bucket))

    def unset_default_bucket(self) -> None:
        """Forget the default bucket (persisted)."""
        self.config.update(lambda d: d.__setitem__("default_bucket", None))

    def map_base_directory_to_bucket(self, directory: str | os.PathLike[str], bucket: str) -> None:
        """Map ``directory`` (and everything below it) to ``bucket`` (persisted).

        Raises
        ------
        InvalidPathError
            When ``directory`` is the root directory or an existing file.
        """
        norm = paths.normalize(directory)
        paths.check_bucket_name(bucket)
        if os.path.dirname(norm) == norm:
            raise InvalidPathError(f"Cannot map {norm!r}: the root directory cannot be a base directory.")
        if os.path.isfile(norm):
            raise InvalidPathError(f"Cannot map {norm!r}: it is a file; map the directory that holds it.")

        def change(data: dict[str, Any]) -> None:
            mapping = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            if mapping.get(norm) not in (None, bucket):
                logger.warning("s3bp: %s was mapped to %s; now mapped to %s", norm, mapping[norm], bucket)
            mapping[norm] = bucket
            data["base_dir_to_bucket_map"] = mapping

        self.config.update(change)

    def remove_base_directory_mapping(self, directory: str | os.PathLike[str]) -> None:
        """Remove the mapping of ``directory`` (persisted); a no-op if it is not mapped."""
        norm = paths.normalize(directory)

        def change(data: dict[str, Any]) -> None:
            mapping = paths.normalize_mappings(data["base_dir_to_bucket_map"])
            mapping.pop(norm, None)
            data["base_dir_to_bucket_map"] = mapping

        self.config.update(change)

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Wait for every upload, then release the journal (failed uploads stay in it)."""
        with self._lock:
            queue, db = self._queue, self._db
            self._queue = self._db = None
        if queue is not None:
            atexit.unregister(self._at_exit)
            queue.close()
        for manager in self._transfers.values():
            manager.shutdown()
        self._transfers.clear()
        if db is not None:
            db.close()

    def _at_exit(self) -> None:
        """At interpreter exit: wait for pending uploads, saying so if it takes a while."""
        if os.getpid() != self._pid or self._queue is None:
            return  # a forked child does not own its parent's uploads
        self._exiting = True
        self._queue.close(at_exit=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _known_object(size: int, etag: str) -> Any:
    """An s3transfer subscriber that hands a download the object's size and ETag (so it needs no HEAD)."""
    from s3transfer.subscribers import BaseSubscriber

    class _Known(BaseSubscriber):
        def on_queued(self, future: Any, **kwargs: Any) -> None:
            future.meta.provide_transfer_size(size)
            future.meta.provide_object_etag(etag)

    return _Known()


def _head_or_none(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HEAD an object; None if it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _utc(stamp: float) -> str:
    """A time for messages."""
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _conflict(entry: JournalEntry, record: SyncRecord | None, current: dict[str, Any]) -> ConflictError:
    """The error for a save that would replace someone else's newer version."""
    theirs, ours = _utc(current["LastModified"].timestamp()), _utc(entry.created)
    synced = f" (this machine last synced it at {_utc(record.verified_at)})" if record is not None else ""
    return ConflictError(
        f"Not uploaded: s3://{entry.bucket}/{entry.key} was changed in S3 at {theirs} by another writer{synced}; "
        f"your version of {entry.path}, saved at {ours}, would replace it. Yours stays on disk and in the upload journal. "
        f"Keep yours: s3bp.resolve_conflict(path, keep='local') or `s3bp resolve {entry.path} --keep local`; "
        f"take theirs (yours is kept as {entry.path}.s3bp-local): keep='remote' / `--keep remote`.",
        entry.path,
        entry.bucket,
        entry.key,
    )


def _get_first(client: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """GET with a Range for the first bytes; an empty object (which has no byte 0) is asked again without it."""
    from botocore.exceptions import ClientError

    try:
        return client.get_object(**kwargs)
    except ClientError as exc:
        if _error_code(exc) != "InvalidRange":
            raise
        return client.get_object(**{k: v for k, v in kwargs.items() if k != "Range"})


def _error_code(exc: Any) -> str:
    """The S3 error code of a botocore ClientError (the HTTP status for bodiless answers like 304)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _object_size(resp: dict[str, Any]) -> int:
    """The whole object's size, from a ranged GET's Content-Range or else its Content-Length."""
    content_range = resp.get("ContentRange")
    if content_range and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(resp["ContentLength"])


def _copy_body(body: Any, out: Any, digest: Any = None) -> None:
    """Stream a response body (or a file) into an open file and/or a hash, a chunk at a time."""
    chunks = body.iter_chunks(_CHUNK) if hasattr(body, "iter_chunks") else iter(lambda: body.read(_CHUNK), b"")
    for chunk in chunks:
        if out is not None:
            out.write(chunk)
        if digest is not None:
            digest.update(chunk)


def _etag_is_md5(resp: dict[str, Any]) -> bool:
    """Whether the object's ETag is the MD5 of its bytes (one-part upload, no KMS or customer key)."""
    etag = resp["ETag"].strip('"')
    encrypted = str(resp.get("ServerSideEncryption", "")).startswith("aws:kms") or resp.get("SSECustomerAlgorithm")
    return len(etag) == 32 and "-" not in etag and not encrypted


def _identity(client: Any) -> tuple[str, str | None]:
    """The endpoint URL and region a client talks to."""
    return client.meta.endpoint_url, client.meta.region_name


def _local_stat(path: str) -> LocalStat | None:
    """The local file's size and mtime, or None when there is no such file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return LocalStat(st.st_size, st.st_mtime_ns)


def _temp_beside(path: str) -> str:
    """A temp file name in ``path``'s directory that ends with its whole name (keeping suffixes)."""
    head, name = os.path.split(path)
    return os.path.join(head, f".s3bp-{uuid.uuid4().hex[:8]}-{name}")


def _remove(path: str) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _serializer(serializer: Serializer | str | None, path: str) -> Serializer:
    """The serializer callable for a callable, a format name or None (pickle)."""
    if serializer is None:
        return get_format("pickle").serializer
    if isinstance(serializer, str):
        return get_format(serializer).serializer
    if not callable(serializer):
        raise SerializationError(
            f"Cannot save {path}: serializer must be a callable(obj, filepath) or a format name, got {serializer!r}."
        )
    return serializer


def _deserializer(deserializer: Deserializer | str | None) -> Deserializer:
    """The deserializer callable for a callable, a format name or None (pickle)."""
    if deserializer is None:
        return get_format("pickle").deserializer
    if isinstance(deserializer, str):
        return get_format(deserializer).deserializer
    if not callable(deserializer):
        raise SerializationError(f"deserializer must be a callable(filepath) or a format name, got {deserializer!r}.")
    return deserializer


@contextlib.contextmanager
def _s3_errors(action: str, bucket: str, key: str, passthrough: type[BaseException] | None = None) -> Iterator[None]:
    """Turn botocore errors raised inside the block into :class:`S3bpError` with a clear message."""
    try:
        yield
    except S3bpError:
        raise
    except Exception as exc:
        if passthrough is not None and isinstance(exc, passthrough):
            raise
        raise _translate(exc, action, bucket, key) from exc


def _translate(exc: BaseException, action: str, bucket: str, key: str) -> S3bpError:
    """The :class:`S3bpError` that explains a botocore (or I/O) failure."""
    from botocore import exceptions as bex

    where = f"s3://{bucket}/{key}"
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return describe_client_error(str(err.get("Code", "")), status, action=action, bucket=bucket, key=key)
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError, bex.CredentialRetrievalError)):
        return CredentialsError(
            f"Cannot {action} {where}: no usable AWS credentials. Configure them with `aws configure`, "
            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a profile (AWS_PROFILE or the 'profile' config key)."
        )
    if isinstance(exc, bex.FlexibleChecksumError):
        return DownloadError(
            f"Cannot {action} {where}: the data was corrupted in transit ({exc}); the local file was left as it was. "
            f"Try again; if it persists, check proxies on the way."
        )
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ReadTimeoutError, bex.ConnectTimeoutError)):
        return EndpointError(
            f"Cannot {action} {where}: the S3 endpoint could not be reached ({type(exc).__name__}). "
            f"Check the network and the endpoint_url setting."
        )
    return S3bpError(f"Cannot {action} {where}: {exc}")
