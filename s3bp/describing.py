"""What :func:`s3bp.info` tells about one object: S3's side (one HEAD), the local file, the sync record and the journal.

The local state is decided by :func:`s3bp.tree.classify`, as ``s3bp ls``
decides it for a folder; this module only gathers the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .freshness import LocalStat, SyncRecord, md5_of_etag, record_of
from .localfiles import file_md5
from .remote import Head, Missing
from .tree import Remote, State, classify

if TYPE_CHECKING:
    from .uploads import PendingUpload

#: The state of an object that is neither on disk nor in S3.
NOT_FOUND = "not found"


@dataclass(frozen=True)
class ObjectInfo:
    """What :func:`s3bp.info` returns: one object in S3 and its local copy.

    S3's side (``etag`` to ``metadata``) is None (``metadata`` empty) when the
    object is not in S3. ``state`` is as ``s3bp ls`` shows it: ``same``,
    ``local newer``, ``remote newer``, ``conflict``, ``local only``,
    ``remote only``, ``deleted locally``, ``deleted in S3`` or ``not found``.
    """

    path: str
    bucket: str
    key: str
    endpoint: str
    state: str
    exists: bool  #: whether S3 holds the object
    version_id: str | None = None  #: S3's VersionId, in a bucket with versioning
    etag: str | None = None
    size: int | None = None
    last_modified: float | None = None  #: seconds since the epoch
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  #: the ``x-amz-meta-*`` keys (lower case) and values
    local_size: int | None = None
    local_mtime: float | None = None
    synced_at: float | None = None  #: when this machine last confirmed a version in sync, if it did
    pending: PendingUpload | None = None  #: the newest journaled upload of the path (state, attempts, last error)


def describe(
    *, path: str, bucket: str, key: str, endpoint: str, head: Head | Missing, local: LocalStat | None, record: SyncRecord | None,
    pending: PendingUpload | None,
) -> ObjectInfo:
    """Gather an :class:`ObjectInfo`; the file is read only when its bytes must decide the state (no record, both changed)."""
    record = record_of(record, endpoint, bucket, key)
    remote = Remote(key, head.etag, head.size, head.last_modified) if isinstance(head, Head) else None
    state = classify(local, record, remote, same_content=_same_bytes(path, local, remote))
    settings: dict[str, Any] = dict(head.settings) if isinstance(head, Head) else {}
    return ObjectInfo(
        path=path, bucket=bucket, key=key, endpoint=endpoint,
        state=NOT_FOUND if state is State.GONE and record is None else state.value, exists=remote is not None,
        version_id=head.version_id if isinstance(head, Head) else None, etag=remote.etag if remote else None,
        size=remote.size if remote else None, last_modified=remote.last_modified if remote else None,
        content_type=settings.get("ContentType"), metadata={str(k).lower(): v for k, v in (settings.get("Metadata") or {}).items()},
        local_size=local.size if local else None, local_mtime=local.mtime_ns / 1e9 if local else None,
        synced_at=record.verified_at if record else None, pending=pending,
    )  # fmt: skip


def _same_bytes(path: str, local: LocalStat | None, remote: Remote | None) -> Callable[[], bool]:
    """Whether the local file holds the object's bytes, where a single-part ETag (an MD5) can tell."""

    def same() -> bool:
        md5 = md5_of_etag(remote.etag) if remote is not None else None
        return md5 is not None and local is not None and remote is not None and local.size == remote.size and file_md5(path) == md5

    return same
