"""How an object lands in a local file: fetched beside it, checked, moved into place, and its sync record made.

The counterpart of :mod:`s3bp.sending`: the bytes come through
:meth:`s3bp.remote.Wire.fetch` (counted and checked against the ETag) into a
:class:`s3bp.localfiles.Placement`, which replaces the file only when they are
complete. Loads, pulls and conflict resolution all receive through here.
"""

from __future__ import annotations

import time
from typing import Any

from . import remote
from .errors import DownloadError, ObjectNotFoundError
from .freshness import SyncRecord
from .localfiles import ANY, Placement
from .remote import Body, Wire
from .tree import Remote


def receive(
    wire: Wire, path: str, bucket: str, key: str, first: Body, *, target: str | None = None, expect: Any = ANY, progress: bool | None = None
) -> SyncRecord:
    """Fetch the object whose first bytes are ``first`` beside ``target`` (default ``path``) and move it into place.

    Parameters
    ----------
    wire
        The connection the first bytes came on.
    path
        The local file the object belongs to.
    bucket, key
        The object.
    first
        The answer to the load's first GET.
    target
        Where to write, if not ``path`` (e.g. ``NAME.s3bp-remote``).
    expect
        The target's stat as last seen: a target that no longer matches it is
        kept and :class:`~s3bp.errors.ConflictError` raised.
    progress
        Show a progress bar for a large object (default: on a terminal or in a notebook).

    Returns
    -------
    SyncRecord
        What was received, to be recorded for ``target``.
    """
    target = path if target is None else target
    with Placement(target, expect=expect, beside=True) as place:
        part_size = wire.fetch(first, bucket, key, place.tmp, progress=progress)
        stat = place.commit(mtime=first.last_modified)
    return SyncRecord(
        path=target, endpoint=wire.endpoint, bucket=bucket, key=key, etag=first.etag, size=stat.size,
        mtime_ns=stat.mtime_ns, verified_at=time.time(), part_size=part_size, version_id=first.version_id,
    )  # fmt: skip


def download(
    wire: Wire, path: str, bucket: str, key: str, *, target: str | None = None, expect: Any = ANY, version_id: str | None = None,
    listed: Remote | None = None,
) -> SyncRecord:
    """Download the object (or its version ``version_id``) unconditionally (see :func:`receive`), without a progress bar; for folders and conflicts.

    ``listed`` is the object as a listing showed it: one smaller than
    :data:`~s3bp.remote.MULTIPART_THRESHOLD` comes whole in one GET, its size
    checked against the listing's (a body cut short but framed as complete is
    caught so). When S3 answers with another version than the one listed (it
    changed meanwhile), or without ``listed``, the object is fetched as a load
    fetches it.

    Raises
    ------
    ObjectNotFoundError
        When the object does not exist.
    DownloadError
        When the bytes are cut short or do not match the ETag.
    """
    first = None
    if listed is not None and listed.size < remote.MULTIPART_THRESHOLD:
        first = wire.get(bucket, key, version_id=version_id, whole=True)
        if isinstance(first, Body) and first.etag.strip('"').lower() != listed.etag.strip('"').lower():
            first.stream.close()  # another version than the listed one: its size is not known beforehand
            first = None
        elif isinstance(first, Body) and first.size != listed.size:
            first.stream.close()
            raise DownloadError(
                f"Download of s3://{bucket}/{key} was cut short (S3 answered {first.size} bytes where its listing gave {listed.size}); "
                f"the local file was left as it was. Try again; if it persists, check proxies on the way."
            )
    if first is None:
        first = wire.get(bucket, key, version_id=version_id)
    if not isinstance(first, Body):
        which = f" version {version_id}" if version_id is not None else ""
        raise ObjectNotFoundError(f"Cannot download s3://{bucket}/{key}{which}: no such object in S3.")
    return receive(wire, path, bucket, key, first, target=target, expect=expect, progress=False)
