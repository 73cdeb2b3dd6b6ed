"""The module-level API of s3bp 0.1.x, served by one default :class:`Store` per process."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store and its dependencies are imported on first use, keeping `import s3bp` cheap
    from .core import Store
    from .folders import FileState, FolderReport
    from .serializers import Deserializer, Serializer
    from .uploads import PendingUpload, UploadFuture

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
) -> UploadFuture:
    """Write ``obj`` to ``filepath`` and upload it to S3 (see :meth:`Store.save_object`)."""
    return get_default_store().save_object(
        obj, filepath, bucket_name=bucket_name, serializer=serializer, namekey=namekey, wait=wait, conflict=conflict, extra_args=extra_args
    )


def load_object(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    deserializer: Deserializer | str | None = None,
    namekey: bool | None = None,
    verbose: bool = False,
    max_age: float | None = None,
    *,
    offline: str | None = None,
) -> Any:
    """Load an object from the local file if current, else from S3 (see :meth:`Store.load_object`)."""
    return get_default_store().load_object(
        filepath, bucket_name=bucket_name, deserializer=deserializer, namekey=namekey, verbose=verbose, max_age=max_age, offline=offline
    )


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
    **writer_kwargs: Any,
) -> UploadFuture:
    """Write a DataFrame in a registered format and upload it (see :meth:`Store.save_dataframe`)."""
    return get_default_store().save_dataframe(
        df,
        filepath,
        bucket_name=bucket_name,
        format=format,
        namekey=namekey,
        wait=wait,
        conflict=conflict,
        extra_args=extra_args,
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
    **reader_kwargs: Any,
) -> Any:
    """Load a DataFrame from the local file if current, else from S3 (see :meth:`Store.load_dataframe`)."""
    return get_default_store().load_dataframe(
        filepath,
        bucket_name=bucket_name,
        format=format,
        namekey=namekey,
        verbose=verbose,
        max_age=max_age,
        offline=offline,
        backend=backend,
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
) -> UploadFuture:
    """Upload an existing local file (see :meth:`Store.upload_file`)."""
    return get_default_store().upload_file(filepath, bucket_name=bucket_name, namekey=namekey, wait=wait, conflict=conflict, extra_args=extra_args)


def download_file(
    filepath: str | os.PathLike[str],
    bucket_name: str | None = None,
    namekey: bool | None = None,
    verbose: bool = False,
    max_age: float | None = None,
    *,
    offline: str | None = None,
) -> str:
    """Bring the local file up to date with S3 (see :meth:`Store.download_file`)."""
    return get_default_store().download_file(filepath, bucket_name=bucket_name, namekey=namekey, verbose=verbose, max_age=max_age, offline=offline)


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


def set_max_workers(n: int) -> None:
    """Use ``n`` background upload threads (persisted); nothing queued is dropped."""
    get_default_store().set_max_workers(n)


def flush(timeout: float | None = None) -> None:
    """Upload everything queued or left journaled, and wait; raise one :class:`~s3bp.errors.UploadError` for all failures."""
    get_default_store().flush(timeout=timeout)


def pending_uploads() -> list[PendingUpload]:
    """What is queued, in flight, failed, or journaled by earlier processes."""
    return get_default_store().pending_uploads()


def push(
    directory: str | os.PathLike[str], *, delete: bool = False, dry_run: bool = False, wait: bool = True, progress: bool | None = None
) -> FolderReport:
    """Upload what is new or changed under a mapped directory (see :meth:`Store.push`)."""
    return get_default_store().push(directory, delete=delete, dry_run=dry_run, wait=wait, progress=progress)


def pull(directory: str | os.PathLike[str], *, delete: bool = False, dry_run: bool = False, progress: bool | None = None) -> FolderReport:
    """Download what is newer in S3 under a mapped directory (see :meth:`Store.pull`)."""
    return get_default_store().pull(directory, delete=delete, dry_run=dry_run, progress=progress)


def sync(directory: str | os.PathLike[str], *, delete: bool = False, dry_run: bool = False, progress: bool | None = None) -> FolderReport:
    """Pull, then push a mapped directory; conflicts are reported, never overwritten (see :meth:`Store.sync`)."""
    return get_default_store().sync(directory, delete=delete, dry_run=dry_run, progress=progress)


def ls(directory: str | os.PathLike[str]) -> list[FileState]:
    """The sync state of every file under a mapped directory (see :meth:`Store.ls`)."""
    return get_default_store().ls(directory)


def resolve_conflict(filepath: str | os.PathLike[str], keep: str, bucket_name: str | None = None, namekey: bool | None = None) -> None:
    """Settle a conflict for one file: ``keep="local"`` uploads yours, ``"remote"`` takes S3's (see :meth:`Store.resolve_conflict`)."""
    get_default_store().resolve_conflict(filepath, keep=keep, bucket_name=bucket_name, namekey=namekey)
