"""The module-level API of s3bp 0.1.x, served by one default :class:`Store` per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store and its dependencies are imported on first use, keeping `import s3bp` cheap
    import datetime

    from .cache import CacheInfo, PruneReport
    from .core import Store
    from .describing import ObjectInfo
    from .folders import FileState, FolderReport, Listed
    from .serializers import Deserializer, Serializer
    from .uploads import PendingUpload, UploadFuture
    from .verifying import VerifyReport
    from .versioning import Version, VersionSpec

_default: Store | None = None
_default_lock = threading.Lock()


def get_default_store() -> Store:
    """The store behind the module-level functions, created on first use from the environment."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from .core import Store

                _default = Store()
    return _default


def set_default_store(store: Store | None) -> Store | None:
    """Make ``store`` the default (None: create a fresh one on next use); return the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, store
    return previous


def _forget_default_in_child() -> None:
    """After fork: the child starts its own store; the parent's threads did not come along."""
    global _default, _default_lock
    _default, _default_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_in_child)


def save_object(
    obj: Any,
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    serializer: Serializer | str | None = None,
    namekey: bool | None = None,
    wait: bool = False,
    *,
    conflict: str | None = None,
    extra_args: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> UploadFuture:
    """Write ``obj`` to ``filepath`` and upload it to S3.

    Parameters
    ----------
    obj
        The object to save.
    filepath
        The local file (missing parent directories are created), or an
        ``s3://bucket/key`` URL, whose local copy is kept in the managed cache
        (see :func:`local_path`).
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
        They win over s3bp's own ContentType and metadata.
    metadata
        Your own ``x-amz-meta-*`` keys and values (ASCII), stored with the
        object beside s3bp's (format, s3bp version); at most S3's 2 KB in all.

    Returns
    -------
    UploadFuture
        Done when the upload is (``result()`` raises :class:`~s3bp.errors.UploadError`);
        its ``unchanged`` is then True when S3 already held these bytes from
        this machine's last sync, so nothing was uploaded.

    Raises
    ------
    NoBucketError
        When no bucket is given, mapped or set as default (before anything is written).
    SerializationError
        When the serializer raises or writes nothing; the previous file is left intact.
    InvalidArgumentError
        For unusable ``metadata`` or ``extra_args`` (before anything is written).
    UploadError
        With ``wait=True``, when the upload fails.
    """
    return get_default_store().save_object(
        obj, filepath, bucket_name=bucket_name, serializer=serializer, namekey=namekey, wait=wait, conflict=conflict, extra_args=extra_args,
        metadata=metadata,
    )  # fmt: skip


def load_object(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    deserializer: Deserializer | str | None = None,
    namekey: bool | None = None,
    verbose: bool = False,
    max_age: float | None = None,
    *,
    offline: str | None = None,
    version: VersionSpec | None = None,
) -> Any:
    """Load an object, from the local file when it is current, else from S3.

    Parameters
    ----------
    filepath
        The local file, or an ``s3://bucket/key`` URL (its copy in the managed cache).
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
    version
        Load this version instead of the latest: a version id, a name given
        with :func:`tag`, or a ``datetime`` (the version current then). The
        version is read from its copy in the managed cache (downloaded the
        first time, no request after); the file at ``filepath`` and its sync
        state are not touched.

    Returns
    -------
    object

    Raises
    ------
    ObjectNotFoundError
        When the object is neither on disk nor in S3 (or has no such version).
    SerializationError
        When the deserializer fails (the file is left in place).
    VersioningError
        When ``version`` is given and the bucket has no versioning.
    """
    return get_default_store().load_object(
        filepath, bucket_name=bucket_name, deserializer=deserializer, namekey=namekey, verbose=verbose, max_age=max_age, offline=offline,
        version=version,
    )  # fmt: skip


def save_dataframe(
    df: Any,
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    format: str | None = None,
    namekey: bool | None = None,
    wait: bool = False,
    *,
    conflict: str | None = None,
    extra_args: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    **writer_kwargs: Any,
) -> UploadFuture:
    """Write a DataFrame (pandas, or polars through polars' writers) in a registered format and upload it.

    ``format`` is a format name (case-insensitive); default: the format
    registered for the file's suffix, else ``"csv"``. ``writer_kwargs`` go to
    the format's writer. The object's metadata records the format and the
    DataFrame's rows and columns. Other parameters are as for :func:`save_object`.
    """
    return get_default_store().save_dataframe(
        df,
        filepath,
        bucket_name=bucket_name,
        format=format,
        namekey=namekey,
        wait=wait,
        conflict=conflict,
        extra_args=extra_args,
        metadata=metadata,
        **writer_kwargs,
    )


def load_dataframe(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    format: str | None = None,
    namekey: bool | None = None,
    verbose: bool = False,
    max_age: float | None = None,
    *,
    offline: str | None = None,
    backend: str = "pandas",
    version: VersionSpec | None = None,
    **reader_kwargs: Any,
) -> Any:
    """Load a DataFrame, from the local file when it is current, else from S3.

    ``format`` as for :func:`save_dataframe`; ``backend`` is ``"pandas"`` or
    ``"polars"`` (parquet, feather and csv; needs ``s3bp[polars]``);
    ``reader_kwargs`` go to the format's reader. Other parameters (``version``
    among them) are as for :func:`load_object`.
    """
    return get_default_store().load_dataframe(
        filepath,
        bucket_name=bucket_name,
        format=format,
        namekey=namekey,
        verbose=verbose,
        max_age=max_age,
        offline=offline,
        backend=backend,
        version=version,
        **reader_kwargs,
    )


def upload_file(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    namekey: bool | None = None,
    wait: bool = False,
    *,
    conflict: str | None = None,
    extra_args: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> UploadFuture:
    """Upload an existing local file to S3; the upload reads a copy taken now.

    Parameters are as for :func:`save_object`; the Content-Type comes from the
    file name. Raises :class:`~s3bp.errors.ObjectNotFoundError` when the file
    does not exist.
    """
    return get_default_store().upload_file(
        filepath, bucket_name=bucket_name, namekey=namekey, wait=wait, conflict=conflict, extra_args=extra_args, metadata=metadata
    )


def download_file(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    namekey: bool | None = None,
    verbose: bool = False,
    max_age: float | None = None,
    *,
    offline: str | None = None,
    version: VersionSpec | None = None,
) -> str:
    """Make sure the local file holds the newest version, downloading only if S3 has a newer one.

    Parameters are as for :func:`load_object`; returns the local file's
    absolute path. With ``version``, returns the path of that version's
    read-only copy in the managed cache instead, and leaves the file at
    ``filepath`` as it is (copy it from there if you want it elsewhere).
    """
    return get_default_store().download_file(
        filepath, bucket_name=bucket_name, namekey=namekey, verbose=verbose, max_age=max_age, offline=offline, version=version
    )


def set_default_bucket(name: str) -> None:
    """Use bucket ``name`` when none is given or mapped; persists across sessions."""
    get_default_store().set_default_bucket(name)


def unset_default_bucket() -> None:
    """Forget the default bucket; calls with no bucket then raise :class:`~s3bp.errors.NoBucketError`."""
    get_default_store().unset_default_bucket()


def map_base_directory_to_bucket(directory: str | os.PathLike[str], bucket: str) -> None:
    """Map a directory tree to a bucket; keys are paths below the directory, prefixed by its name."""
    get_default_store().map_base_directory_to_bucket(directory, bucket)


def remove_base_directory_mapping(directory: str | os.PathLike[str]) -> None:
    """Remove a directory's bucket mapping."""
    get_default_store().remove_base_directory_mapping(directory)


def configure(**settings: Any) -> dict[str, Any]:
    """Change settings in the config file, each checked as the file's are; None sets one back to its default.

    Any key of the config file: ``default_bucket``, ``endpoint_url``, ``profile``,
    ``region``, ``max_age``, ``max_workers``, ``conflict``, ``offline``, ... (see
    the README's Configuration section). All are checked before any is written.

    Returns
    -------
    dict
        Every setting, as now in effect.

    Raises
    ------
    ConfigError
        For an unknown setting or a wrong value; nothing is written then.

    Examples
    --------
    >>> s3bp.configure(endpoint_url="http://localhost:9000", max_age=60)  # doctest: +SKIP
    """
    return get_default_store().configure(**settings)


def set_max_workers(n: int) -> None:
    """Use ``n`` background upload threads (persisted); nothing queued is dropped."""
    get_default_store().set_max_workers(n)


def flush(timeout: float | None = None, *, retarget: bool = False) -> None:
    """Upload everything queued or left journaled (failures included), and wait.

    Parameters
    ----------
    timeout
        Seconds to wait at most.
    retarget
        First point every failed upload at the current settings: the
        configured endpoint, and the bucket and key its path resolves to now
        (as a save without ``bucket_name`` resolves). Use it after fixing a
        wrong endpoint, bucket or mapping.

    Raises
    ------
    UploadError
        Listing every upload that still failed (they stay journaled).
    """
    get_default_store().flush(timeout=timeout, retarget=retarget)


def pending_uploads() -> list[PendingUpload]:
    """Every journaled upload with its state: queued, in flight or failed here, pending in another process, or orphaned.

    Reading takes nothing over and changes nothing.
    """
    return get_default_store().pending_uploads()


def forget(files: Iterable[str | os.PathLike[str]] = (), *, failed: bool = False) -> int:
    """Drop journaled uploads: those of ``files``, and with ``failed`` every one that failed.

    The local files stay as they are; only the pending uploads are dropped.
    Uploads of processes still running are left alone.

    Returns
    -------
    int
        How many journal entries were dropped.
    """
    return get_default_store().forget(files, failed=failed)


def push(
    directory: str | os.PathLike[str],
    local_dir: str | os.PathLike[str] | None = None,
    *,
    delete: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    progress: bool | None = None,
) -> FolderReport:
    """Upload every file under a mapped directory that is new or changed since it was last in sync.

    Uploads go through the upload journal with the same options as
    :func:`save_object` (the ``conflict`` and ``upload_args`` config keys).

    Parameters
    ----------
    directory
        A mapped base directory or a directory below one; or an
        ``s3://bucket/prefix/`` URL paired with ``local_dir`` (either order),
        whose files are keyed by their path below ``local_dir`` after the prefix.
    local_dir
        The local directory paired with a URL (nothing is mapped or remembered).
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
        When ``directory`` is a file or not under a mapped base directory, or a URL's prefix is not a safe local path.
    """
    return get_default_store().push(directory, local_dir, delete=delete, dry_run=dry_run, wait=wait, progress=progress)


def pull(
    directory: str | os.PathLike[str],
    local_dir: str | os.PathLike[str] | None = None,
    *,
    delete: bool = False,
    dry_run: bool = False,
    progress: bool | None = None,
    as_of: datetime.datetime | None = None,
) -> FolderReport:
    """Download every object under a mapped directory's prefix that is newer than the local copy.

    As :func:`push`; with ``delete``, also delete local files whose object was
    deleted in S3 since the last sync, if they are unchanged since.

    With ``as_of`` (a ``datetime``; naive means local time; the bucket needs
    versioning), the directory is brought to the state S3 had at that time:
    each file gets the version current then (one ListObjectVersions for the
    whole prefix), files whose object did not exist then are left alone (with
    ``delete``, deleted if unchanged since their last sync), and local changes
    are never overwritten (they are reported as conflicts). A file that
    receives an older version is recorded as such: a later ``pull`` brings the
    latest again, ``push`` and ``sync`` never send it as new (an edited one is
    a conflict where S3 has a newer version), and a save of it is checked like
    any save against the version S3 holds.
    """
    return get_default_store().pull(directory, local_dir, delete=delete, dry_run=dry_run, progress=progress, as_of=as_of)


def sync(
    directory: str | os.PathLike[str],
    local_dir: str | os.PathLike[str] | None = None,
    *,
    delete: bool = False,
    dry_run: bool = False,
    progress: bool | None = None,
) -> FolderReport:
    """Pull, then push: afterwards both sides hold the newest version of every file.

    A file changed on both sides since the last sync is a conflict: neither
    side is overwritten, and the S3 version is put beside the local file as
    ``NAME.s3bp-remote``. Without ``delete``, a file deleted on one side is
    restored from the other; with it, the deletion is mirrored.
    """
    return get_default_store().sync(directory, local_dir, delete=delete, dry_run=dry_run, progress=progress)


def ls(directory: str | os.PathLike[str]) -> list[FileState]:
    """The state of every file under a mapped directory (same, local newer, remote newer, ...), sorted by path."""
    return get_default_store().ls(directory)


def resolve_conflict(filepath: str | os.PathLike[str], keep: str, bucket_name: str | None = None, namekey: bool | None = None) -> None:
    """Settle a :class:`~s3bp.errors.ConflictError` (or a sync conflict) for one file.

    ``keep="local"`` uploads the local file over the S3 version (and waits);
    ``keep="remote"`` drops this file's pending uploads, moves the local file
    to ``NAME.s3bp-local`` and downloads the S3 version.
    """
    get_default_store().resolve_conflict(filepath, keep=keep, bucket_name=bucket_name, namekey=namekey)


def info(path: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None) -> ObjectInfo:
    """What S3 holds for a local path and how the local copy relates to it, with one HEAD request.

    Parameters
    ----------
    path
        The local file (it need not exist); resolved to a bucket and key as a load would.
    bucket_name, namekey
        As for :func:`load_object`.

    Returns
    -------
    ObjectInfo
        Bucket, key, endpoint; S3's version id, ETag, size, last modified,
        content type and metadata; the local state (``same``, ``local newer``,
        ``remote newer``, ``conflict``, ``local only``, ``remote only``, ...);
        and the pending upload of the path, if any, with its attempts and last error.
    """
    return get_default_store().info(path, bucket_name=bucket_name, namekey=namekey)


def verify(directory: str | os.PathLike[str], *, repair: bool = False) -> VerifyReport:
    """Check that the synced files under a mapped directory still hold what was synced, locally and in S3, without downloading.

    For every file with a sync record, the local bytes are hashed and compared
    with the recorded ETag, and S3's ETag (from the folder's listing, one
    request per 1,000 objects) with the record.

    Parameters
    ----------
    directory
        A mapped base directory or a directory below one.
    repair
        Download S3's version over every corrupt local copy (one whose size and
        modification time are as synced but whose bytes are not). Files edited
        since their sync are never touched.

    Returns
    -------
    VerifyReport
        Each file's status (``ok``, ``local changed``, ``S3 changed``,
        ``corrupt local copy``, ``not checkable``), what was repaired, and ``ok``.
    """
    return get_default_store().verify(directory, repair=repair)


def versions(filepath: str | os.PathLike[str], bucket_name: str | None = None, namekey: bool | None = None) -> list[Version]:
    """Every version of the object ``filepath`` maps to, newest first.

    Parameters
    ----------
    filepath, bucket_name, namekey
        As for :func:`save_object`: the object is the one a save would write.

    Returns
    -------
    list of Version
        Each with ``version_id``, ``last_modified`` (UTC), ``size``, ``etag``,
        ``is_latest``, ``is_delete_marker`` and the ``names`` given to it with :func:`tag`.

    Raises
    ------
    VersioningError
        When the bucket has no versioning (the message says how to turn it on).
    """
    return get_default_store().versions(filepath, bucket_name=bucket_name, namekey=namekey)


def restore(
    filepath: str | os.PathLike[str],
    version: VersionSpec,
    bucket_name: str | None = None,
    namekey: bool | None = None,
    *,
    conflict: str | None = None,
    verbose: bool = False,
) -> str:
    """Make an older version the latest again, then bring the local file up to date.

    The version is copied server-side (nothing passes through this machine)
    as a new latest version; every version stays. Returns the local file's path.

    Parameters
    ----------
    filepath, bucket_name, namekey
        As for :func:`save_object`.
    version
        A version id, a name given with :func:`tag`, or a ``datetime``.
    conflict
        ``"raise"`` (default, or the ``conflict`` config key): restore only
        over the version this machine last synced, and only when the local
        file has no changes that are not in S3; else
        :class:`~s3bp.errors.ConflictError`. ``"overwrite"``: regardless.
    verbose
        Print how the local file was brought up to date.

    Raises
    ------
    ConflictError
        When another writer changed the object (also during the restore), or the local file has unsaved changes.
    VersioningError
        When the bucket has no versioning.
    """
    return get_default_store().restore(filepath, version, bucket_name=bucket_name, namekey=namekey, conflict=conflict, verbose=verbose)


def tag(
    filepath: str | os.PathLike[str],
    name: str,
    version: VersionSpec | None = None,
    bucket_name: str | None = None,
    namekey: bool | None = None,
) -> str:
    """Give a version (default: the latest) a name such as ``"prod"`` or a git commit; ``version="prod"`` then loads it.

    A name moves when given to another version. Names are kept in the bucket
    (``.s3bp/names/KEY.json``), so every machine sees them; a lookup is one request.
    Returns the version id named.
    """
    return get_default_store().tag(filepath, name, version, bucket_name=bucket_name, namekey=namekey)


def untag(filepath: str | os.PathLike[str], name: str, bucket_name: str | None = None, namekey: bool | None = None) -> None:
    """Remove the name ``name`` (the version itself stays)."""
    get_default_store().untag(filepath, name, bucket_name=bucket_name, namekey=namekey)


def prune(
    filepath: str | os.PathLike[str],
    *,
    keep: int | None = None,
    older_than: datetime.timedelta | None = None,
    dry_run: bool = True,
    bucket_name: str | None = None,
    namekey: bool | None = None,
) -> list[Version]:
    """Delete old versions for good; never the latest, never a named one.

    Parameters
    ----------
    keep
        Keep the ``keep`` newest versions (the latest among them).
    older_than
        Delete only versions replaced longer ago than this (by the store's clock).
    dry_run
        Only say what would be deleted (the default: pass ``dry_run=False`` to delete).

    Returns
    -------
    list of Version
        What was deleted (or would be).
    """
    return get_default_store().prune(filepath, keep=keep, older_than=older_than, dry_run=dry_run, bucket_name=bucket_name, namekey=namekey)


def local_path(url: str | os.PathLike[str]) -> str:
    """Where the local copy of ``s3://bucket/key`` lives: ``<cache dir>/<endpoint id>/<bucket>/<key>``.

    The cache directory is ``$S3BP_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3bp``,
    else ``~/.cache/s3bp``. Nothing is downloaded: load first, e.g.
    ``s3bp.download_file(url)`` then ``pd.read_parquet(s3bp.local_path(url))``.
    A local path is returned normalised.

    Raises
    ------
    InvalidPathError
        When the key cannot be a safe local path (``..``, empty segments, backslashes, absolute).
    """
    return get_default_store().local_path(url)


def list_objects(url: str) -> list[Listed]:
    """The objects under ``s3://bucket/prefix`` as S3 lists them (key, size, last modified, ETag), with the state of
    the local copy where a mapped file or a managed-cache copy exists. No mapping is needed; s3bp's reserved
    ``.s3bp/`` keys are left out. One listing request per 1,000 objects.
    """
    return get_default_store().list_objects(url)


def cache_info() -> CacheInfo:
    """The managed cache: its directory, size, number of files, limits (``cache_max_size``, ``cache_max_age``),
    the oldest use and how many files cannot be evicted now."""
    return get_default_store().cache_info()


def cache_prune(max_size: int | str | None = None, older_than: float | str | None = None, *, dry_run: bool = False) -> PruneReport:
    """Evict the least recently used files of the managed cache.

    Parameters
    ----------
    max_size
        Evict until the cache holds at most this many bytes (``"20GB"``,
        ``"500MiB"`` or a number); default: the ``cache_max_size`` config key.
    older_than
        Evict files not used for this long (``"30d"``, ``"12h"`` or seconds);
        default: the ``cache_max_age`` config key.
    dry_run
        Report what would go; remove nothing.

    Only the managed cache is touched, and never a file with a pending or
    failed upload, one edited since its last sync, one under a mapped
    directory, or one being read or written (each is removed under the lock
    loads and saves of it take). An evicted file comes back on its next load.

    Returns
    -------
    PruneReport
        What was removed, the bytes freed, what was kept and why, and the size left.
    """
    return get_default_store().cache_prune(max_size, older_than, dry_run=dry_run)


def cache_clear(*, dry_run: bool = False) -> PruneReport:
    """Evict every file of the managed cache that may go (the rules of :func:`cache_prune`)."""
    return get_default_store().cache_clear(dry_run=dry_run)
