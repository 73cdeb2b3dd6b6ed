"""Pure folder decisions: where a key may land, what to skip, and each file's sync state.

Used by :mod:`s3bp.folders` for push, pull, sync and ls. Nothing here touches
the network; the ignore rules read one file, the rest works on plain values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from .freshness import LocalStat, SyncRecord, compare_seconds

#: Skipped by push, pull and sync unless a ``.s3bpignore`` line re-includes them (``!pattern``).
DEFAULT_IGNORE = (
    ".s3bp-*",  # s3bp's own temp files while a save or download is being written
    "*.s3bp-remote",  # the S3 side of a sync conflict
    "*.s3bp-local",  # the local side of a conflict settled in favour of S3
    ".s3bpignore",
    "*~",  # editor backups
    ".*.swp",
    ".*.swo",
    ".~lock.*#",  # LibreOffice locks
    "*.tmp",
    "*.part",
    "*.crdownload",
    ".DS_Store",
    "Thumbs.db",
    "__pycache__/",
    ".ipynb_checkpoints/",
)

#: The file, in a base directory, whose gitignore-style lines add to :data:`DEFAULT_IGNORE`.
IGNORE_FILE = ".s3bpignore"

#: The suffix under which sync puts the S3 version of a conflicting file.
REMOTE_SUFFIX = ".s3bp-remote"

#: Keys under this prefix are s3bp's own (names of versions, ...): never a user's file in push, pull, sync or ls.
RESERVED_PREFIX = ".s3bp/"


def reserved(key: str) -> bool:
    """Whether ``key`` is under s3bp's reserved prefix (:data:`RESERVED_PREFIX`)."""
    return key.startswith(RESERVED_PREFIX)


class Ignore:
    """Gitignore-style rules: :data:`DEFAULT_IGNORE` and then the lines of ``.s3bpignore``.

    Parameters
    ----------
    lines
        Extra gitignore-style patterns (later lines win, ``!`` re-includes).
    """

    def __init__(self, lines: Iterable[str] = ()):
        import pathspec

        self._spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_IGNORE, *lines])

    @classmethod
    def for_base_dir(cls, base_dir: str) -> Ignore:
        """The rules of a base directory (its ``.s3bpignore``, if any)."""
        try:
            with open(os.path.join(base_dir, IGNORE_FILE), encoding="utf-8") as f:
                return cls(f.read().splitlines())
        except FileNotFoundError:
            return cls()

    def __call__(self, relpath: str) -> bool:
        """Whether the file at ``relpath`` (``/``-separated, relative to the base directory) is skipped."""
        return self._spec.match_file(relpath)


def key_parts(key: str, prefix: str) -> tuple[str, ...] | None:
    """The path components a key names below ``prefix``, or None when it must not be written locally.

    Refused: keys outside the prefix, absolute keys, and keys with empty,
    ``.`` or ``..`` segments, backslashes or NUL bytes.
    """
    if not key.startswith(prefix) or key.startswith("/"):
        return None
    parts = tuple(key[len(prefix) :].split("/"))
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or "\0" in part:
            return None
    return parts


class State(Enum):
    """How a local file and its S3 object relate, as ``s3bp ls`` shows it."""

    SAME = "same"
    LOCAL_NEWER = "local newer"
    REMOTE_NEWER = "remote newer"
    LOCAL_ONLY = "local only"
    REMOTE_ONLY = "remote only"
    PENDING = "pending upload"
    CONFLICT = "conflict"
    LOCAL_DELETED = "deleted locally"
    REMOTE_DELETED = "deleted in S3"
    GONE = "deleted on both sides"
    OLD_VERSION = "old version, deleted in S3"  # written by pull(as_of=...), unchanged since, and no longer in S3


@dataclass(frozen=True)
class Remote:
    """One object as listed by S3."""

    key: str
    etag: str
    size: int
    last_modified: float
    version_id: str | None = None  #: the version listed (an as-of listing), or None for the latest
    latest: bool = True  #: whether this is the object's current version


def classify(
    local: LocalStat | None,
    record: SyncRecord | None,
    remote: Remote | None,
    *,
    pending: bool = False,
    same_content: Callable[[], bool] = lambda: False,
) -> State:
    """Decide the state of one file.

    Parameters
    ----------
    local
        The local file's stat, or None.
    record
        The sync record of this path for this very object, or None.
    remote
        The object in S3, or None.
    pending
        Whether a save of the path waits in the upload journal.
    same_content
        Called only when both sides exist and cannot be told apart otherwise:
        whether their bytes are equal.

    Returns
    -------
    State
        With a record, a side "changed" when it differs from the record; both
        changed is a conflict unless the bytes are equal. Without one, the
        newer whole second wins (S3's LastModified resolution); equal seconds
        with different bytes are a conflict.
    """
    if pending and local is not None:
        return State.PENDING
    if local is None and remote is None:
        return State.GONE
    if record is None:
        if remote is None:
            return State.LOCAL_ONLY
        if local is None:
            return State.REMOTE_ONLY
        if same_content():
            return State.SAME
        newer = compare_seconds(local.mtime_ns, remote.last_modified)
        # A tie of whole seconds with different bytes: neither side can be called newer, so both are kept.
        return State.LOCAL_NEWER if newer > 0 else State.REMOTE_NEWER if newer < 0 else State.CONFLICT
    local_changed = local is not None and not record.matches(local)
    remote_changed = remote is not None and remote.etag != record.etag
    if local is None:
        return State.REMOTE_NEWER if remote_changed else State.LOCAL_DELETED
    if remote is None:
        if local_changed:
            return State.LOCAL_NEWER
        # An older version that pull(as_of=...) brought back is not the user's new file: push must not send it.
        return State.OLD_VERSION if record.as_of else State.REMOTE_DELETED
    if local_changed and remote_changed:
        return State.SAME if same_content() else State.CONFLICT
    if local_changed:
        return State.LOCAL_NEWER
    return State.REMOTE_NEWER if remote_changed else State.SAME


class Action(Enum):
    """What an operation does with one file."""

    NOTHING = "nothing"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    DELETE_LOCAL = "delete local"
    DELETE_REMOTE = "delete remote"
    CONFLICT = "conflict"
    FORGET = "forget"  # both sides gone: drop the record


def action(state: State, operation: str, delete: bool = False) -> Action:
    """What ``push``, ``pull`` or ``sync`` does with a file in ``state``.

    Without ``delete`` nothing is deleted: push and pull leave a deletion on
    the other side alone, and sync restores the missing side from the other.
    """
    if state is State.GONE:
        return Action.FORGET
    if state is State.CONFLICT:
        return Action.CONFLICT
    up = operation in ("push", "sync")
    down = operation in ("pull", "sync")
    if state in (State.LOCAL_NEWER, State.LOCAL_ONLY):
        return Action.UPLOAD if up else Action.NOTHING
    if state in (State.REMOTE_NEWER, State.REMOTE_ONLY):
        return Action.DOWNLOAD if down else Action.NOTHING
    if state is State.LOCAL_DELETED:
        if delete and up:
            return Action.DELETE_REMOTE
        return Action.DOWNLOAD if down else Action.NOTHING
    if state is State.REMOTE_DELETED:
        if delete and down:
            return Action.DELETE_LOCAL
        return Action.UPLOAD if up else Action.NOTHING
    if state is State.OLD_VERSION:  # never uploaded by a folder operation: a save or an edit makes it the user's again
        return Action.DELETE_LOCAL if delete and down else Action.NOTHING
    return Action.NOTHING


def needs_listing(*, conditional: bool, unrecorded: bool) -> bool:
    """Whether a push (without ``delete``) must list S3 first.

    Not when every local file has a sync record of its object and uploads are
    conditional: an unchanged file needs nothing, and a changed one goes out
    with a PUT that only replaces the recorded version, so a change in S3
    still comes back as a conflict. A file with no record needs the listing
    (is it in S3 already, and newer?); so does an unconditional upload rule,
    which would otherwise overwrite a version it never saw.
    """
    return unrecorded or not conditional
