"""How one journaled save reaches S3: the condition its PUT carries, and what a refusal leads to.

The decisions are :mod:`s3bp.conflicts`' (pure); the requests are
:class:`~s3bp.remote.Wire`'s; the sync records come from the state database.
:func:`send_entry` is the ``upload`` function the upload queue is given.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from . import remote
from .conflicts import Identical, Refusal, after_refusal, conflict_error, head_allows, identical_save, needs_check, put_condition
from .errors import S3bpError
from .freshness import SyncRecord, record_of, snapshot_hashing
from .labels import args_digest
from .remote import HEAD_SETTINGS, Head, Refused, Replaced, Stored, Wire, holds
from .uploads import UploadOptions

if TYPE_CHECKING:
    from .index import JournalEntry, StateDB

logger = logging.getLogger("s3bp")


@dataclasses.dataclass(frozen=True)
class Unchanged(SyncRecord):
    """The sync record of a save whose bytes S3 already held (the version this machine last synced): nothing was sent."""

    unchanged: ClassVar[bool] = True


def send_entry(wire: Wire, db: StateDB, entry: JournalEntry, *, max_age: float = 0.0) -> SyncRecord:
    """Send one journal entry's snapshot to S3; return the sync record of what S3 now holds.

    A snapshot with the bytes and upload settings of the version this machine
    last synced is not sent when S3 still holds that version (one HEAD says so,
    or none when it was confirmed less than ``max_age`` seconds ago): the
    record returned is then an :class:`Unchanged`.

    Under ``conflict="raise"``, the upload may replace only the version this
    machine last synced: a refusal is then another writer's version
    (:class:`~s3bp.errors.ConflictError`), or one of the cases
    :func:`~s3bp.conflicts.after_refusal` tells apart from it.
    """
    extra = UploadOptions(entry.conflict, entry.extra_args).arguments()
    synced = record_of(db.record(entry.path), *entry.object_id)
    kept = _already_there(wire, entry, extra, synced, max_age)
    if kept is not None:
        return kept
    record = synced if entry.conflict == "raise" else None
    conditional = record is None or honours_conditions(db, wire, entry.bucket, entry.key)
    outcome = _put(wire, entry, extra, record, conditional)
    if isinstance(outcome, Replaced):  # our parts landed, and another writer's version right after them
        raise conflict_error(
            path=entry.path, bucket=entry.bucket, key=entry.key, saved_at=entry.created, changed_at=None,
            synced_at=record.verified_at if record else None,
        )  # fmt: skip
    if not isinstance(outcome, Stored):
        assert record is not None
        head = wire.head(entry.bucket, entry.key)
        if isinstance(head, Head) and _same_settings(extra, dict(head.settings)) and holds(head, entry.spool, entry.size):
            # S3 holds exactly this save's bytes: an earlier attempt of it landed (its answer was lost, or the
            # process was killed before recording it). That is no conflict.
            return _record(entry, head.etag, head.version_id)
        latest = db.record(entry.path)
        current, newest = head.etag if isinstance(head, Head) else None, db.newest_upload(*entry.object_id)
        refusal = after_refusal(record=record, current_etag=current, latest=latest, newest_upload=newest, seq=entry.seq)
        if refusal is Refusal.SUPERSEDED and latest is not None:
            outcome = Stored(latest.etag, latest.version_id)
        elif refusal is not Refusal.CONFLICT:
            outcome = _put(wire, entry, extra, latest if refusal is Refusal.OVER_LATEST else None, conditional)
        if not isinstance(outcome, Stored):
            raise conflict_error(
                path=entry.path, bucket=entry.bucket, key=entry.key, saved_at=entry.created,
                changed_at=head.last_modified if isinstance(head, Head) else None, synced_at=record.verified_at,
            )  # fmt: skip
    return _record(entry, outcome.etag, outcome.version_id)


def _already_there(wire: Wire, entry: JournalEntry, extra: dict[str, Any], synced: SyncRecord | None, max_age: float) -> Unchanged | None:
    """The record of a save S3 already holds (see :func:`~s3bp.conflicts.identical_save`), or None: upload it."""
    verdict = identical_save(entry.etag, synced, args_digest(entry.extra_args), now=time.time(), max_age=max_age)
    if verdict is Identical.NO or synced is None:
        return None
    verified_at = synced.verified_at  # trusted without a request: the max_age window is not extended
    if verdict is Identical.CHECK:
        head = wire.head(entry.bucket, entry.key)
        if not (isinstance(head, Head) and head.etag.strip('"') == synced.etag.strip('"') and _same_settings(extra, dict(head.settings))):
            return None  # changed in S3 meanwhile (the conflict rule applies), gone, or other settings: upload as usual
        verified_at = time.time()
    fields = _record(entry, synced.etag, synced.version_id).__dict__
    fields = {**fields, "verified_at": verified_at, "part_size": synced.part_size or fields["part_size"]}  # the part size that hashed alike
    return Unchanged(**fields)


def snapshot_digest(db: StateDB, endpoint: str, path: str, bucket: str, key: str) -> Callable[[int], int | None]:
    """``digest(size)`` for :meth:`~s3bp.uploads.UploadQueue.journal`: how to hash a save's snapshot so that it can be
    compared with the version this machine last synced for the object (see :func:`~s3bp.freshness.snapshot_hashing`)."""
    return digest_like(record_of(db.record(path), endpoint, bucket, key))


def digest_like(synced: SyncRecord | None) -> Callable[[int], int | None]:
    """``digest(size)`` for a save whose object this machine last synced as ``synced`` (see :func:`snapshot_digest`)."""
    return lambda size: snapshot_hashing(synced, size, remote.upload_part_size)


def _same_settings(extra: dict[str, Any], told: dict[str, Any]) -> bool:
    """Whether the object carries every upload argument of this save, as far as a HEAD tells (one it cannot tell: no)."""
    for name, wanted in extra.items():
        if name not in HEAD_SETTINGS:
            return False
        got = told.get(name, "STANDARD" if name == "StorageClass" else None)
        if name == "Metadata":  # names are case-insensitive: S3 gives them in lower case, some servers' front ends do not
            got, wanted = {str(k).lower(): v for k, v in (got or {}).items()}, {str(k).lower(): v for k, v in wanted.items()}
        if got != wanted:
            return False
    return True


def _record(entry: JournalEntry, etag: str, version_id: str | None) -> SyncRecord:
    """The sync record of an uploaded entry: S3 holds ``etag`` (as version ``version_id``), the file holds the snapshot's version."""
    return SyncRecord(
        path=entry.path, endpoint=entry.endpoint, bucket=entry.bucket, key=entry.key, etag=etag,
        size=entry.size, mtime_ns=entry.mtime_ns, verified_at=time.time(), saved_ns=entry.seq, version_id=version_id,
        args=args_digest(entry.extra_args),
        part_size=remote.upload_part_size(entry.size) if entry.size >= remote.MULTIPART_THRESHOLD else 0,  # s3transfer's parts
    )  # fmt: skip


def honours_conditions(db: StateDB, wire: Wire, bucket: str, key: str) -> bool:
    """Whether the endpoint honours conditional writes: checked once (one probe PUT beside ``key``), remembered, re-checked weekly.

    A probe that cannot be made (no permission for it, say) or that the
    store does not answer within :data:`~s3bp.remote.PROBE_WAIT` seconds
    never fails or holds up the upload: the answer is then "unknown", the
    HEAD check is used and nothing is remembered.
    """
    known = db.endpoint_mode(wire.endpoint)
    if known is not None and not needs_check(known, time.time()):
        return known[0]
    try:
        honoured = wire.honours_conditions(bucket, key)
    except S3bpError as exc:
        logger.info("s3bp: could not tell whether %s honours conditional writes (%s); checking with a HEAD", wire.endpoint, exc)
        return False
    if honoured is None:
        logger.info("s3bp: %s has not answered whether it honours conditional writes; checking with a HEAD", wire.endpoint)
        return False
    if not honoured:
        logger.warning("s3bp: %s ignores conditional writes; uploads there are checked with a HEAD first", wire.endpoint)
    db.set_endpoint_mode(wire.endpoint, honoured, time.time())
    return honoured


def _put(wire: Wire, entry: JournalEntry, extra: dict[str, Any], over: SyncRecord | None, conditional: bool) -> Stored | Refused | Replaced:
    """PUT the snapshot, only over the version ``over`` records when given."""
    condition = put_condition(entry.size, over, remote.MULTIPART_THRESHOLD, conditional=conditional)
    if condition.head_check is not None:
        head = wire.head(entry.bucket, entry.key)
        if not head_allows(condition, head.etag if isinstance(head, Head) else None):
            return Refused("412")
    return wire.put(entry.bucket, entry.key, entry.spool, entry.size, extra, if_match=condition.if_match)
