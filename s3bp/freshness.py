"""Pure freshness decisions: may a load use the local file, and what to ask S3.

The seed rule compares the local modification time with S3's LastModified;
a sync record (what we last uploaded or downloaded for a local path) makes
the common case exact: when the file is unchanged since we synced it, we ask
S3 "has the ETag changed?" with one conditional GET.
"""

from __future__ import annotations

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

    def describes(self, local: LocalStat | None, endpoint: str, bucket: str, key: str) -> bool:
        """Whether this record is about this object and the file is unchanged since."""
        return (
            local is not None
            and (self.endpoint, self.bucket, self.key) == (endpoint, bucket, key)
            and (self.size, self.mtime_ns) == (local.size, local.mtime_ns)
        )


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
        return Plan(Step.USE_LOCAL)
    if record is not None and record.describes(local, endpoint, bucket, key):
        if max_age > 0 and 0 <= now - record.verified_at < max_age:
            return Plan(Step.USE_LOCAL)
        return Plan(Step.IF_NONE_MATCH, etag=record.etag)
    return Plan(Step.IF_MODIFIED_SINCE, since=local.mtime_ns / 1e9)

