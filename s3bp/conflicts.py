"""Pure conflict decisions: which condition a PUT carries, and what a refusal means.

A save under ``conflict="raise"`` may replace only the version this machine
last synced. A small object's PUT says so with ``IfMatch``; one sent in parts
cannot carry the condition, so it is checked with a HEAD first. When S3
refuses, :func:`after_refusal` tells a real conflict (another writer) from
the cases that are not one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import Enum

from .errors import ConflictError
from .freshness import SyncRecord


@dataclass(frozen=True)
class Condition:
    """What a PUT requires of the object it replaces."""

    if_match: str | None = None  #: send ``IfMatch`` with this ETag
    head_check: str | None = None  #: HEAD first and refuse unless the object is missing or has this ETag


#: How long a finding about an endpoint's conditional writes is trusted before it is checked again.
RECHECK_SECONDS = 7 * 24 * 3600


def put_condition(size: int, over: SyncRecord | None, multipart_threshold: int, *, conditional: bool = True) -> Condition:
    """The condition for uploading ``size`` bytes over the version ``over`` records (None: unconditional).

    ``conditional`` says whether the endpoint honours ``IfMatch``; where it does
    not, every upload is checked with a HEAD first, as multipart ones are.
    """
    if over is None:
        return Condition()
    if size < multipart_threshold and conditional:
        return Condition(if_match=over.etag)
    return Condition(head_check=over.etag)


class Identical(Enum):
    """Whether a save holds the version this machine last synced, and what it takes to skip its upload."""

    NO = "other bytes than the synced version's (or not known): upload"
    CHECK = "the synced version's bytes: one HEAD tells whether S3 still holds it, with these upload settings"
    TRUSTED = "the synced version's bytes and upload settings, confirmed less than max_age ago: no request"


def identical_save(local_etag: str | None, record: SyncRecord | None, args: str, *, now: float, max_age: float = 0.0) -> Identical:
    """Decide whether a save's upload can be skipped because S3 already holds its bytes.

    Parameters
    ----------
    local_etag
        The ETag of the save's snapshot, computed as it was taken (None: not computed).
    record
        This machine's sync record of the path, for this very object.
    args
        The fingerprint of the save's upload arguments (:func:`s3bp.labels.args_digest`).
    now, max_age
        A record confirmed less than ``max_age`` seconds ago, for an upload with the same arguments, is trusted.
    """
    if record is None or local_etag is None or local_etag.strip('"').lower() != record.etag.strip('"').lower():
        return Identical.NO
    if max_age > 0 and record.args == args and 0 <= now - record.verified_at < max_age:
        return Identical.TRUSTED
    return Identical.CHECK


def needs_check(known: tuple[bool, float] | None, now: float) -> bool:
    """Whether an endpoint's conditional writes must be (re)checked, given what is known: (honoured, checked_at)."""
    return known is None or not 0 <= now - known[1] < RECHECK_SECONDS


def head_allows(condition: Condition, current_etag: str | None) -> bool:
    """Whether a HEAD-checked upload may go ahead: the object is missing or still the expected version."""
    return condition.head_check is None or current_etag is None or current_etag == condition.head_check


class Refusal(Enum):
    """What a refused conditional PUT means, and what to do next."""

    RETRY = "the object was deleted, or the store cannot do conditions and still holds ours: upload unconditionally"
    OVER_LATEST = "another process of this machine uploaded an older save meanwhile: upload over its version"
    SUPERSEDED = "another process of this machine uploaded a newer save meanwhile: nothing to send"
    CONFLICT = "another writer changed the object: keep ours journaled and raise"


def after_refusal(
    *, record: SyncRecord, current_etag: str | None, latest: SyncRecord | None, newest_upload: int, seq: int
) -> Refusal:
    """Decide what a refused upload means.

    Parameters
    ----------
    record
        The sync record the upload was conditioned on.
    current_etag
        The object's ETag now (HEAD after the refusal), or None when it is gone.
    latest
        The path's sync record now (another process of this machine may have written it).
    newest_upload
        The save sequence of the newest recorded upload of this object.
    seq
        This save's sequence.
    """
    if current_etag is None or current_etag == record.etag:
        return Refusal.RETRY
    if latest is None or latest.etag != current_etag:
        return Refusal.CONFLICT
    return Refusal.SUPERSEDED if newest_upload >= seq else Refusal.OVER_LATEST


def conflict_error(
    *, path: str, bucket: str, key: str, saved_at: float, changed_at: float | None, synced_at: float | None
) -> ConflictError:
    """The error for a save that would replace someone else's newer version.

    Parameters
    ----------
    path, bucket, key
        The local file and the object.
    saved_at
        When this save was made (seconds since the epoch).
    changed_at
        S3's LastModified of the other writer's version, if known.
    synced_at
        When this machine last synced the path, if it did.
    """
    theirs = f" at {_utc(changed_at)}" if changed_at is not None else ""
    synced = f" (this machine last synced it at {_utc(synced_at)})" if synced_at is not None else ""
    return ConflictError(
        f"Not uploaded: s3://{bucket}/{key} was changed in S3{theirs} by another writer{synced}; "
        f"your version of {path}, saved at {_utc(saved_at)}, would replace it. Yours stays on disk and in the upload journal.",
        path,
        bucket,
        key,
    ).with_remedy(
        f"Keep yours: s3bp.resolve_conflict(path, keep='local'); take theirs (yours is kept as {path}.s3bp-local): keep='remote'.",
        f"Keep yours: `s3bp resolve {path} --keep local`; take theirs (yours is kept as {path}.s3bp-local): `--keep remote`.",
    )


def _utc(stamp: float) -> str:
    """A time for messages."""
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
