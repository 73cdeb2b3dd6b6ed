"""``s3bp verify``: do a folder's local copies still hold what was synced, and does S3 still hold it?

For every file with a sync record, without downloading anything: the local
bytes are hashed and compared with the recorded ETag (one MD5, or the MD5s of
its parts in the recorded part size), and S3's ETag, from the folder's
listing (one request per 1,000 keys, no HEAD per file), with the record. The
walk, the listing and the records are :func:`s3bp.folders.survey`'s, as for
``s3bp ls``. ``repair`` re-downloads the corrupt local copies, and only them:
a file whose size or modification time changed since its record is a local
edit and is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

from . import paths
from .errors import S3bpError
from .folders import FileState, FolderOps, survey
from .freshness import SyncRecord, etag_parts, md5_of_etag, parts_for
from .localfiles import file_md5, file_multipart_etag
from .tree import State


class Check(Enum):
    """What :func:`verify` found for one file (in order of precedence)."""

    CORRUPT = "corrupt local copy"  #: unchanged since the sync by size and mtime, yet other bytes than the record's ETag
    LOCAL_CHANGED = "local changed"  #: edited, deleted or saved again (a pending upload) since the sync
    S3_CHANGED = "S3 changed"  #: S3's ETag is no longer the record's, or the object is gone
    UNCHECKABLE = "not checkable"  #: an ETag that is no MD5 of the bytes (SSE-KMS, parts of unknown sizes)
    OK = "ok"


@dataclass(frozen=True)
class Verified:
    """One file's findings."""

    path: str
    bucket: str
    key: str
    status: Check
    findings: tuple[str, ...] = ()  #: every problem found, in words

    @property
    def ok(self) -> bool:
        """Nothing wrong (or nothing that could be checked wrong)."""
        return self.status in (Check.OK, Check.UNCHECKABLE)


@dataclass
class VerifyReport:
    """What :func:`s3bp.verify` found under a directory, and what ``repair`` re-downloaded."""

    directory: str
    files: list[Verified] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  #: repairs that failed, and why
    unrecorded: int = 0  #: files with no sync record on this machine (never synced): not checked

    @property
    def ok(self) -> bool:
        """Every file is as synced (corrupt copies that were repaired count as mended)."""
        return not self.failed and all(f.ok or f.path in self.repaired for f in self.files)

    def summary(self) -> str:
        """One line of counts."""
        counts = {c: sum(f.status is c for f in self.files) for c in Check}
        parts = [f"{counts[c]} {c.value}" for c in Check if counts[c] or c is Check.OK]
        if self.repaired:
            parts.append(f"{len(self.repaired)} repaired")
        if self.failed:
            parts.append(f"{len(self.failed)} repairs failed")
        return f"verify {self.directory}: " + ", ".join(parts) + f" ({self.unrecorded} never synced, not checked)"


def findings(f: FileState, local_bytes: bool | None) -> Verified:
    """Judge one surveyed file with a sync record; ``local_bytes``: whether its bytes give the recorded ETag (None: not known)."""
    assert f.record is not None
    found: list[tuple[Check, str]] = []
    if f.state is State.PENDING:
        found.append((Check.LOCAL_CHANGED, "a newer save waits in the upload journal"))
    elif f.local is None:
        found.append((Check.LOCAL_CHANGED, "deleted locally"))
    elif not f.record.matches(f.local):
        found.append((Check.LOCAL_CHANGED, "size or modification time changed since the last sync"))
    elif local_bytes is False:
        found.append((Check.CORRUPT, f"size and time as synced, but the bytes do not give the recorded ETag {f.record.etag}"))
    elif local_bytes is None:
        found.append((Check.UNCHECKABLE, f"the recorded ETag {f.record.etag} is no MD5 of the bytes"))
    if f.remote is None:
        found.append((Check.S3_CHANGED, "not in S3 any more"))
    elif f.remote.etag.strip('"') != f.record.etag.strip('"'):
        found.append((Check.S3_CHANGED, f"S3 holds {f.remote.etag}, the last sync {f.record.etag}"))
    status = min((c for c, _ in found), key=list(Check).index, default=Check.OK)
    return Verified(f.path, f.bucket, f.key, status, tuple(text for _, text in found))


def needs_bytes(f: FileState) -> bool:
    """Whether the local bytes must be read: the file is there, not pending, and unchanged since its record by size and mtime."""
    return f.record is not None and f.state is not State.PENDING and f.local is not None and f.record.matches(f.local)


def bytes_match(path: str, record: SyncRecord, default_part_size: Callable[[int], int]) -> bool | None:
    """Whether the file's bytes give the recorded ETag: one MD5, or a multipart ETag in the recorded part size
    (else s3transfer's, ``default_part_size``); None when the ETag cannot tell (encrypted, parts of unknown sizes)."""
    md5 = md5_of_etag(record.etag)
    if md5 is not None:
        return file_md5(path) == md5
    count = etag_parts(record.etag)
    if count is None:
        return None
    part_size = record.part_size or default_part_size(record.size)
    if parts_for(record.size, part_size) != count:
        return False if record.part_size else None
    same = file_multipart_etag(path, part_size).strip('"') == record.etag.strip('"').lower()
    return same if same or record.part_size else None  # a guessed part size that fails proves nothing


def verify(ops: FolderOps, directory: str | os.PathLike[str], *, repair: bool = False, workers: int = 4) -> VerifyReport:
    """Check every synced file under a mapped directory against its record, locally and in S3; see :func:`s3bp.verify`."""
    from .remote import upload_part_size

    files, _, _ = survey(ops, directory)  # listing=True: S3 is listed whatever the records say
    report = VerifyReport(paths.normalize(directory))
    recorded = [f for f in files if f.record is not None]
    report.unrecorded = sum(1 for f in files if f.record is None and f.local is not None)

    def check(f: FileState) -> Verified:
        assert f.record is not None
        try:
            same = bytes_match(f.path, f.record, upload_part_size) if needs_bytes(f) else None
        except FileNotFoundError:
            return findings(FileState(f.path, f.bucket, f.key, f.state, None, f.remote, f.record), None)
        return findings(f, same)

    with ThreadPoolExecutor(max(1, min(workers, len(recorded)))) as pool:  # hashlib lets go of the GIL
        report.files = list(pool.map(check, recorded))
    states = {f.path: f for f in recorded}
    for i, v in enumerate(report.files):
        if v.status is Check.CORRUPT and _encrypted(ops, states[v.path]):
            report.files[i] = findings(states[v.path], None)
    if repair:
        for v in report.files:
            if v.status is Check.CORRUPT:
                _repair(ops, states[v.path], report)
    return report


def _encrypted(ops: FolderOps, f: FileState) -> bool:
    """Whether S3 holds the recorded version encrypted with SSE-KMS or SSE-C, whose ETag is no MD5 of the bytes.

    Asked (one HEAD) only of a copy whose bytes do not give the recorded ETag,
    before it is called corrupt: a listing does not say how an object is encrypted.
    """
    if ops.head is None or f.remote is None or f.record is None or f.remote.etag.strip('"') != f.record.etag.strip('"'):
        return False
    return bool(getattr(ops.head(f.bucket, f.key), "encrypted", False))


def _repair(ops: FolderOps, f: FileState, report: VerifyReport) -> None:
    """Download S3's version over a corrupt local copy, only if the file is still as surveyed (never over an edit)."""
    if f.remote is None:
        report.failed.append((f.path, "not in S3 any more: nothing to repair it from"))
        return
    try:
        record = ops.download(f.path, f.bucket, f.key, expect=f.local)
    except (OSError, S3bpError) as exc:
        report.failed.append((f.path, str(exc)))
        return
    ops.db.put_records([record])
    report.repaired.append(f.path)

