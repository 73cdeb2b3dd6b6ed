"""Pure freshness decisions: may a load use the local file, what to ask S3, and what its answer means.

The seed rule compares the local modification time with S3's LastModified
in whole seconds (:func:`compare_seconds`, shared with folder sync); a sync
record (what we last uploaded or downloaded for a local path) makes the
common case exact: when the file is unchanged since we synced it, we ask S3
"has the ETag changed?" with one conditional GET. :func:`plan_load` decides
the request, :func:`after_answer` what to do with the answer.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class LocalStat:
    """The parts of ``os.stat`` that identify a version of a local file."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SyncRecord:
    """What s3bp last uploaded or downloaded for one local path."""

    path: str
    endpoint: str
    bucket: str
    key: str
    etag: str
    size: int
    mtime_ns: int
    verified_at: float
    saved_ns: int = 0
    part_size: int = 0  # the part size that reproduced a multipart ETag (0: not multipart, or not known)
    version_id: str | None = None  # S3's VersionId of the object synced (None: the bucket had no versioning, or not known)
    as_of: float = 0.0  # written by pull(as_of=...): the file holds an older version, as of this time (0: not so)
    args: str = ""  # a fingerprint of the upload arguments S3's version was uploaded with ("": downloaded, or not known)

    def is_of(self, endpoint: str, bucket: str, key: str) -> bool:
        """Whether this record is about the object ``endpoint/bucket/key``."""
        return (self.endpoint, self.bucket, self.key) == (endpoint, bucket, key)

    def matches(self, local: LocalStat | None) -> bool:
        """Whether the local file is unchanged since this record was made."""
        return local is not None and (self.size, self.mtime_ns) == (local.size, local.mtime_ns)

    def describes(self, local: LocalStat | None, endpoint: str, bucket: str, key: str) -> bool:
        """Whether this record is about this object and the file is unchanged since."""
        return self.is_of(endpoint, bucket, key) and self.matches(local)


def record_of(record: SyncRecord | None, endpoint: str, bucket: str, key: str) -> SyncRecord | None:
    """``record`` if it is about the object ``endpoint/bucket/key``, else None (the path now maps elsewhere)."""
    return record if record is not None and record.is_of(endpoint, bucket, key) else None


def snapshot_hashing(record: SyncRecord | None, size: int, default_part_size: Callable[[int], int]) -> int | None:
    """How to hash a new ``size``-byte snapshot so that it can be compared with the version ``record`` holds.

    0: one MD5 (the record's ETag is one); a part size: a multipart ETag (the
    record's part size, else ``default_part_size(size)``, s3transfer's);
    None: no need (no record, another size) or no way (an ETag that is no MD5).
    """
    if record is None or record.size != size:
        return None
    if md5_of_etag(record.etag) is not None:
        return 0
    if etag_parts(record.etag) is not None:
        return record.part_size or default_part_size(size)
    return None


def compare_seconds(local_mtime_ns: int, last_modified: float) -> int:
    """Which side is newer in whole seconds (S3's LastModified resolution): 1 local, -1 S3, 0 a tie."""
    local_s, remote_s = local_mtime_ns // 1_000_000_000, int(last_modified)
    return (local_s > remote_s) - (local_s < remote_s)


def md5_of_etag(etag: str, encrypted: bool = False) -> str | None:
    """The MD5 hex digest an ETag stands for, or None when it is not one (multipart, SSE-KMS, SSE-C)."""
    bare = etag.strip('"').lower()
    return bare if len(bare) == 32 and "-" not in bare and not encrypted else None


class Step(Enum):
    """What a load does first."""

    USE_LOCAL = "use the local file, no request"
    IF_NONE_MATCH = "GET if the ETag changed since our sync"
    IF_MODIFIED_SINCE = "GET if S3's copy is newer than the local file (whole seconds)"
    GET = "GET, there is no local file"


@dataclass(frozen=True)
class Plan:
    """A load's first step and the condition it sends."""

    step: Step
    etag: str | None = None
    since: float | None = None


def plan_load(
    local: LocalStat | None,
    record: SyncRecord | None,
    *,
    endpoint: str,
    bucket: str,
    key: str,
    pending: bool,
    now: float,
    max_age: float = 0.0,
) -> Plan:
    """Decide how to load ``bucket/key`` into a local file.

    Parameters
    ----------
    local
        The local file's stat, or None when it does not exist.
    record
        The sync record for the local path, or None.
    endpoint, bucket, key
        The object the path resolves to.
    pending
        Whether a save of this path is still waiting to be uploaded.
    now
        The current time (seconds since the epoch).
    max_age
        Trust a copy verified less than this many seconds ago without asking S3.

    Returns
    -------
    Plan
    """
    if local is None:
        return Plan(Step.GET)
    if pending:
        return Plan(Step.USE_LOCAL)  # the local file is a save not yet uploaded: the newest version
    if record is not None and record.describes(local, endpoint, bucket, key):
        if max_age > 0 and 0 <= now - record.verified_at < max_age:
            return Plan(Step.USE_LOCAL)
        return Plan(Step.IF_NONE_MATCH, etag=record.etag)
    # S3 answers 304 on a tie of whole seconds (compare_seconds == 0): the local copy is kept.
    return Plan(Step.IF_MODIFIED_SINCE, since=local.mtime_ns / 1e9)


class Answer(Enum):
    """What S3 said to a load's first request."""

    NOT_MODIFIED = "304"
    MISSING = "404"
    BODY = "200"
    UNREACHABLE = "no answer"


class Verdict(Enum):
    """What a load does once S3 has answered (or has not)."""

    LOCAL_CURRENT = "local copy is current"
    LOCAL_ONLY = "not in S3; the local file is used"
    OFFLINE = "S3 unreachable; the local copy is used"
    DOWNLOAD = "download"
    NOT_FOUND = "neither on disk nor in S3"
    FAIL = "S3 unreachable and no local copy to use"


def after_answer(plan: Plan, answer: Answer, *, offline: str = "warn") -> Verdict:
    """Decide what a load does with S3's answer to the request :func:`plan_load` chose.

    Parameters
    ----------
    plan
        The plan the request was made from (``plan.step`` is not ``USE_LOCAL``).
    answer
        What S3 answered.
    offline
        ``"warn"``: an unreachable S3 with a local copy loads that copy;
        ``"error"``: it fails.

    Returns
    -------
    Verdict
    """
    has_local = plan.step is not Step.GET
    if answer is Answer.BODY:
        return Verdict.DOWNLOAD
    if answer is Answer.NOT_MODIFIED:
        return Verdict.LOCAL_CURRENT
    if answer is Answer.MISSING:
        return Verdict.LOCAL_ONLY if has_local else Verdict.NOT_FOUND
    return Verdict.OFFLINE if has_local and offline == "warn" else Verdict.FAIL


# -- multipart ETags -------------------------------------------------------------

_MULTIPART_ETAG = re.compile(r"[0-9a-fA-F]{32}-([1-9][0-9]{0,4})")


def etag_parts(etag: str, encrypted: bool = False) -> int | None:
    """How many parts a multipart ETag (``"<hex MD5>-N"``) stands for; None when it is not one we can check.

    The ETag of an object encrypted with SSE-KMS or SSE-C is no MD5, multipart or not.
    """
    found = _MULTIPART_ETAG.fullmatch(etag.strip('"'))
    return int(found.group(1)) if found and not encrypted else None


def parts_for(size: int, part_size: int) -> int:
    """How many parts a ``size``-byte upload in ``part_size`` parts has (one for an empty object)."""
    return max(1, -(-size // part_size)) if part_size > 0 else 0


def multipart_etag(chunks: Iterable[bytes], part_size: int | Sequence[int]) -> str:
    """The ETag S3 gives an object uploaded in parts: ``"<md5 of the parts' MD5 digests>-<number of parts>"``.

    Parameters
    ----------
    chunks
        The object's bytes, in pieces of any size.
    part_size
        The size of every part but the last, or the length of each part in
        order (bytes beyond them make one more part).

    Returns
    -------
    str
        The ETag, quoted as S3 sends it.
    """
    import hashlib  # here: OpenSSL's start-up is not for every command that imports this module

    lengths = _part_lengths(part_size)
    digests: list[bytes] = []
    part, left, filled = hashlib.md5(usedforsecurity=False), next(lengths), False
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if left == 0:
                digests.append(part.digest())
                part, left, filled = hashlib.md5(usedforsecurity=False), next(lengths), False
            take = min(left, len(view))
            part.update(view[:take])
            view, left, filled = view[take:], left - take, True
    if filled or not digests:
        digests.append(part.digest())
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"'


def _part_lengths(part_size: int | Sequence[int]) -> Iterator[int]:
    """Part lengths without end: ``part_size`` each time, or the listed ones and then the rest as one part."""
    listed = [part_size] if isinstance(part_size, int) else list(part_size)
    if not listed or min(listed) <= 0:
        raise ValueError(f"part sizes must be positive, got {part_size!r}")
    return itertools.repeat(listed[0]) if isinstance(part_size, int) else itertools.chain(listed, itertools.repeat(sys.maxsize))
