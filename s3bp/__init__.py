"""s3bp: save and load Python objects and DataFrames to S3, with the local disk as a cache."""

import logging

from .api import (
    cache_clear,
    cache_info,
    cache_prune,
    configure,
    download_file,
    flush,
    forget,
    get_default_store,
    info,
    list_objects,
    load_dataframe,
    load_object,
    local_path,
    ls,
    map_base_directory_to_bucket,
    pending_uploads,
    prune,
    pull,
    push,
    remove_base_directory_mapping,
    resolve_conflict,
    restore,
    save_dataframe,
    save_object,
    set_default_bucket,
    set_default_store,
    set_max_workers,
    sync,
    tag,
    unset_default_bucket,
    untag,
    upload_file,
    verify,
    versions,
)
from .errors import (
    ConflictError,
    NoBucketError,
    ObjectNotFoundError,
    S3bpError,
    UploadError,
    VersioningError,
)

_LAZY = {
    "Store": "core",
    "PendingUpload": "uploads",
    "UploadFuture": "uploads",
    "FileState": "folders",
    "FolderReport": "folders",
    "Version": "versioning",
    "formats": "serializers",
    "register_format": "serializers",
    "unregister_format": "serializers",
    "ObjectInfo": "describing",
    "VerifyReport": "verifying",
}


def __getattr__(name: str):
    """Import the store, the queue and the format registry on first use (``import s3bp`` stays cheap)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's3bp' has no attribute {name!r}")

__version__ = "0.2.0"

__all__ = [
    "ConflictError",
    "FileState",
    "FolderReport",
    "NoBucketError",
    "ObjectNotFoundError",
    "PendingUpload",
    "S3bpError",
    "Store",
    "UploadError",
    "UploadFuture",
    "cache_clear",
    "cache_info",
    "cache_prune",
    "configure",
    "download_file",
    "flush",
    "forget",
    "formats",
    "get_default_store",
    "info",
    "list_objects",
    "load_dataframe",
    "load_object",
    "local_path",
    "ls",
    "map_base_directory_to_bucket",
    "pending_uploads",
    "pull",
    "push",
    "register_format",
    "remove_base_directory_mapping",
    "resolve_conflict",
    "save_dataframe",
    "save_object",
    "set_default_bucket",
    "set_default_store",
    "set_max_workers",
    "sync",
    "unregister_format",
    "unset_default_bucket",
    "upload_file",
    "verify",
    "ObjectInfo",
    "VerifyReport",
    "Version",
    "VersioningError",
    "prune",
    "restore",
    "tag",
    "untag",
    "versions",
]

logging.getLogger("s3bp").addHandler(logging.NullHandler())
