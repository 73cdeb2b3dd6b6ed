"""How an object lands in a local file: fetched beside it, checked, moved into place, and its sync record made.

The counterpart of :mod:`s3bp.sending`: the bytes come through
:meth:`s3bp.remote.Wire.fetch` (counted and checked against the ETag) into a
:class:`s3bp.localfiles.Placement`, which replaces the file only when they are
complete. Loads, pulls and conflict resolution all receive through here.
"""

from __future__ import annotations

import time
from typing import Any

from .errors import ObjectNotFoundError
from .freshness import SyncRecord
from .localfiles import ANY, Placement
from .remote import Body, Wire


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
    with Placement(target, expect=expect) as place:
        part_size = wire.fetch(first, bucket, key, place.tmp, progress=progress)
        stat = place.commit(mtime=first.last_modified)
    return SyncRecord(
        path=target, endpoint=wire.endpoint, bucket=bucket, key=key, etag=first.etag, size=stat.size,
        mtime_ns=stat.mtime_ns, verified_at=time.time(), part_size=part_size, version_id=first.version_id,
    )  # fmt: skip


def download(
    wire: Wire, path: str, bucket: str, key: str, *, target: str | None = None, expect: Any = ANY, version_id: str | None = None
) -> SyncRecord:
    """Download the object (or its version ``version_id``) unconditionally (see :func:`receive`), without a progress bar; for folders and conflicts.

    Raises
    ------
    ObjectNotFoundError
        When the object does not exist.
    """
    first = wire.get(bucket, key, version_id=version_id)
    if not isinstance(first, Body):
        which = f" version {version_id}" if version_id is not None else ""
        raise ObjectNotFoundError(f"Cannot download s3://{bucket}/{key}{which}: no such object in S3.")
    return receive(wire, path, bucket, key, first, target=target, expect=expect, progress=False)
