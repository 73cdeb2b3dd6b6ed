"""Versions of an object: what a ``version=`` names, pinned copies, restoring, names and pruning.

With bucket versioning on, S3 keeps every version of an object. The decisions
here are pure (:func:`current_at`, :func:`to_prune`, the names document); the
rest are short protocols over a :class:`~s3bp.remote.Wire`, each saying what
it costs in requests.

A pinned copy lives in the managed cache, keyed by endpoint, bucket, key and
version id (:func:`s3bp.cache.version_copy_path`): a version never changes,
so once there it is used without a request. The version id ``"null"`` (an
object written before versioning was turned on, or while it was suspended)
can be overwritten in place, so it is never taken from the cache: it is
downloaded again on every pinned load.

Names ("prod", a git commit) live in the bucket beside the data, one small
JSON object per key under :data:`NAMES_PREFIX`: a lookup is one GET and never
a scan of the versions (object tags would need one: S3 cannot find an object
version by its tags). Each change is a conditional PUT over the document
read, retried when another writer changed it meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from .cache import version_copy_path
from .errors import ConflictError, InvalidArgumentError, InvalidPathError, ObjectNotFoundError, S3bpError, VersioningError
from .freshness import SyncRecord, record_of
from .localfiles import local_stat
from .receiving import receive
from .remote import Body, Head, Missing, ObjectVersion, Refused, Stored, Wire
from .tree import RESERVED_PREFIX, Remote, key_parts, reserved

if TYPE_CHECKING:
    from .index import StateDB

logger = logging.getLogger("s3bp")

#: Where the names of an object's versions are kept: ``.s3bp/names/<key>.json`` in the same bucket.
NAMES_PREFIX = RESERVED_PREFIX + "names/"
#: The version id of an object written while the bucket had no versioning (it can be overwritten in place).
NULL = "null"
#: How often a change of the names document is tried when other writers keep changing it.
_NAME_ATTEMPTS = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,199}")
#: A string the managed cache keeps as it is in a copy's path (other characters are replaced there).
_ID = re.compile(r"[A-Za-z0-9._-]+")

#: What ``version=`` takes: a version id, a name given with :func:`s3bp.tag`, or a time (the version current then).
VersionSpec = Union[str, dt.datetime]


@dataclass(frozen=True)
class Version:
    """One version of an object (or a delete marker), as :func:`s3bp.versions` lists it."""

    version_id: str
    last_modified: dt.datetime
    size: int
    etag: str
    is_latest: bool
    is_delete_marker: bool
    names: tuple[str, ...] = ()


# -- pure decisions ------------------------------------------------------------


def age_seconds(older_than: dt.timedelta | None) -> float | None:
    """The seconds of a prune's ``older_than`` (a :class:`~datetime.timedelta`), or None."""
    if older_than is None:
        return None
    if not isinstance(older_than, dt.timedelta):
        raise InvalidArgumentError(f"older_than must be a datetime.timedelta (e.g. timedelta(days=30)), got {older_than!r}.")
    return older_than.total_seconds()


def timestamp(when: dt.datetime) -> float:
    """Seconds since the epoch of ``when`` (a naive datetime is local time, as :meth:`datetime.timestamp` reads it)."""
    if not isinstance(when, dt.datetime):
        raise InvalidArgumentError(f"Expected a datetime, got {type(when).__name__}: {when!r}.")
    return when.timestamp()


def of_key(versions: Iterable[ObjectVersion], key: str) -> list[ObjectVersion]:
    """The entries of exactly ``key`` (a prefix listing also has ``key2``, ``key/x``), newest first as listed."""
    return [v for v in versions if v.key == key]


def current_at(versions: Sequence[ObjectVersion], at: float) -> ObjectVersion | None:
    """The version that was current at time ``at``; None when the object did not exist then (not yet, or deleted).

    ``versions`` are one key's, newest first. S3 keeps LastModified in whole
    seconds: a version made in the second of ``at`` counts as made by then.
    """
    for v in versions:
        if v.last_modified <= at:
            return None if v.is_delete_marker else v
    return None


def to_prune(
    versions: Sequence[ObjectVersion], tagged: Iterable[str], *, keep: int | None, older_than: float | None, now: float
) -> list[ObjectVersion]:
    """The versions a prune deletes: old non-current ones, never the latest, never a tagged one, never a delete marker.

    Parameters
    ----------
    versions
        One key's versions and delete markers, newest first.
    tagged
        Version ids that have a name.
    keep
        Keep the ``keep`` newest versions (the latest among them).
    older_than
        Delete only versions replaced more than this many seconds before ``now``
        (the age that counts is since a newer version or a delete replaced it).
    now
        The store's clock (the listing's Date), so that this machine's clock does not matter.
    """
    if keep is None and older_than is None:
        raise InvalidArgumentError("Say which versions to prune: keep=N (the N newest stay), older_than=timedelta, or both.")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise InvalidArgumentError(f"keep must be a whole number of at least 1 (the latest version always stays), got {keep!r}.")
    if older_than is not None and older_than < 0:
        raise InvalidArgumentError(f"older_than must not be negative, got {older_than!r}.")
    protected = set(tagged)
    doomed: list[ObjectVersion] = []
    seen = 0
    replaced_at: float | None = None  # when the entry above this one was made: this one stopped being current then
    for v in versions:
        if not v.is_delete_marker:
            seen += 1
            stays = v.is_latest or replaced_at is None or v.version_id in protected or (keep is not None and seen <= keep)
            if older_than is not None and replaced_at is not None and now - replaced_at < older_than:
                stays = True
            if not stays:
                doomed.append(v)
        replaced_at = v.last_modified
    return doomed


def check_name(name: str) -> str:
    """``name`` if it can name a version (letters, digits and ``. _ : @ + = / -``, up to 200), else raise.

    Refused too: ``null`` (the id S3 gives a version written without
    versioning) and what ``s3bp --version`` reads as a time (``2024-05-01``,
    ``2024-05-01T12:00``): ``version=`` would not mean the name.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"{name!r} cannot name a version: use 1-200 letters, digits and . _ : @ + = / - (starting with a letter or digit), "
            f"e.g. 'prod' or a git commit."
        )
    if name == NULL or time_argument(name) is not None:
        raise InvalidArgumentError(
            f"{name!r} cannot name a version: it would be read as "
            f"{'the id of a version written without versioning' if name == NULL else 'a time'}. Choose another name, e.g. 'prod-{name}'."
        )
    return name


def time_argument(text: str) -> dt.datetime | None:
    """The time a command-line ``--version``/VERSION argument names (an ISO time such as ``2024-05-01T12:00Z``), else None (an id or a name)."""
    try:
        when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return when if ("T" in text or " " in text or len(text) == 10) else None


def names_key(key: str) -> str:
    """The key of the names document of ``key``."""
    return f"{NAMES_PREFIX}{key}.json"


def parse_names(data: bytes, where: str) -> dict[str, str]:
    """The name -> version id map of a names document."""
    try:
        doc = json.loads(data.decode("utf-8"))
        names = doc["names"]
        return {str(n): str(v["version_id"]) for n, v in names.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise S3bpError(f"The names document {where} cannot be read ({exc}). Delete it to start afresh (names are then lost).") from exc


def parse_pruning(data: bytes) -> frozenset[str]:
    """The version ids a prune is deleting, from a names document (see :func:`prune`); empty when it has none."""
    try:
        return frozenset(str(v) for v in json.loads(data.decode("utf-8")).get("pruning", ()))
    except (ValueError, TypeError, AttributeError):
        return frozenset()


def names_document(names: dict[str, str], pruning: Iterable[str] = ()) -> bytes:
    """The JSON document that stores ``names`` (and the ids a prune is deleting: no name may be given to them)."""
    body: dict[str, object] = {"format": 1, "names": {n: {"version_id": v} for n, v in sorted(names.items())}}
    if pruning:
        body["pruning"] = sorted(pruning)
    return (json.dumps(body, indent=1) + "\n").encode("utf-8")


def check_writable(path: str, bucket: str, key: str) -> None:
    """Refuse a save of ``path`` to a key under s3bp's reserved prefix (it would replace the names of versions)."""
    if reserved(key):
        raise InvalidPathError(
            f"Cannot save {path} to s3://{bucket}/{key}: keys under {RESERVED_PREFIX} hold s3bp's names of versions, "
            f"and a save there would replace them. Save it under another name or directory."
        )


def versioning_error(bucket: str, doing: str = "use older versions") -> VersioningError:
    """The error for a version asked of a bucket without versioning."""
    return VersioningError(
        f"Cannot {doing}: bucket {bucket!r} has no versioning, so S3 keeps no older versions there. "
        f"Turn it on with `s3bp versioning {bucket} --enable` (versions are kept from then on)."
    )


# -- protocols -------------------------------------------------------------------


def require_versioning(wire: Wire, bucket: str, doing: str = "use older versions") -> None:
    """Raise :class:`VersioningError` unless versioning is (or was) on in ``bucket``; one request."""
    if wire.versioning(bucket) == "":
        raise versioning_error(bucket, doing)


def _check_listing(wire: Wire, bucket: str, entries: Sequence[ObjectVersion], doing: str) -> None:
    """A listing with no real version id may be an unversioned bucket's: ask (one request) and raise if so."""
    if not any(v.version_id != NULL for v in entries):
        require_versioning(wire, bucket, doing)


def _missing(wire: Wire, bucket: str, key: str, version_id: str) -> S3bpError:
    """Why version ``version_id`` could not be read: no versioning in the bucket (one request to ask), or no such version."""
    if wire.versioning(bucket) == "":
        return versioning_error(bucket, f"read version {version_id} of s3://{bucket}/{key}")
    if any(v.version_id == version_id and v.is_delete_marker for v in of_key(wire.list_versions(bucket, key).versions, key)):
        return ObjectNotFoundError(
            f"Version {version_id} of s3://{bucket}/{key} is a delete marker (the object was deleted then), not saved bytes: "
            f"there is nothing to load or restore. Pick the version below it in `s3bp versions PATH`."
        )
    return ObjectNotFoundError(
        f"s3://{bucket}/{key} has no version {version_id!r} (nor a name {version_id!r}). "
        f"List its versions with `s3bp versions PATH` or s3bp.versions(path)."
    )


def read_names(wire: Wire, bucket: str, key: str) -> tuple[dict[str, str], str | None]:
    """The names of ``key``'s versions and the ETag of their document (None: there is none); one GET."""
    names, _, etag = _read_document(wire, bucket, key)
    return names, etag


def _read_document(wire: Wire, bucket: str, key: str) -> tuple[dict[str, str], frozenset[str], str | None]:
    """The names document of ``key``: its names, the ids being pruned, and its ETag (None: there is none); one GET."""
    got = wire.get_bytes(bucket, names_key(key))
    if isinstance(got, Missing):
        return {}, frozenset(), None
    data, etag = got
    return parse_names(data, f"s3://{bucket}/{names_key(key)}"), parse_pruning(data), etag


#: A change of the names document: (names, ids being pruned) -> the new (names, ids being pruned).
_Change = Callable[[dict[str, str], frozenset[str]], tuple[dict[str, str], frozenset[str]]]


def change_names(wire: Wire, bucket: str, key: str, change: Callable[[dict[str, str]], dict[str, str]]) -> dict[str, str]:
    """Apply ``change`` to the names of ``key``'s versions: a GET and a conditional PUT, again if another writer came between."""
    return _change_document(wire, bucket, key, lambda names, pruning: (change(names), pruning))[0]


def _change_document(wire: Wire, bucket: str, key: str, change: _Change) -> tuple[dict[str, str], frozenset[str]]:
    """Apply ``change`` to the names document of ``key``: a GET and a conditional PUT, again if another writer came between."""
    where = names_key(key)
    for _ in range(_NAME_ATTEMPTS):
        names, pruning, etag = _read_document(wire, bucket, key)
        new, new_pruning = change(dict(names), pruning)
        if (new, new_pruning) == (names, pruning):
            return new, new_pruning
        outcome = wire.put_bytes(bucket, where, names_document(new, new_pruning), if_match=etag, if_none_match=etag is None)
        if isinstance(outcome, Stored):
            return new, new_pruning
        if outcome.code == "501":  # the store cannot do conditional writes: last writer wins
            logger.warning("s3bp: %s cannot write s3://%s/%s conditionally; writing it unconditionally", wire.endpoint, bucket, where)
            wire.put_bytes(bucket, where, names_document(new, new_pruning))
            return new, new_pruning
    raise ConflictError(
        f"Could not change the names of s3://{bucket}/{key}: other writers kept changing s3://{bucket}/{where}. Try again.",
        None, bucket, key,
    )  # fmt: skip


def resolve(wire: Wire, db: StateDB, bucket: str, key: str, version: VersionSpec) -> str:
    """The version id ``version`` stands for.

    A datetime: the version current then (one ListObjectVersions; remembered in
    the state database when that time was already past for the store, so the
    next time costs nothing). A string: a name given with :func:`tag` (one GET
    of the names), else a version id as it is.

    Raises
    ------
    ObjectNotFoundError
        When the object did not exist at that time.
    VersioningError
        When the bucket has no versioning.
    """
    if isinstance(version, dt.datetime):
        at = timestamp(version)
        known = db.as_of_version(wire.endpoint, bucket, key, at)
        if known is not None:
            return known
        listing = wire.list_versions(bucket, key)
        mine = of_key(listing.versions, key)
        _check_listing(wire, bucket, mine, f"find the version of s3://{bucket}/{key} as of {version.isoformat()}")
        found = current_at(mine, at)
        if found is None:
            raise ObjectNotFoundError(
                f"s3://{bucket}/{key} did not exist at {version.isoformat()} (not saved yet, or deleted then). "
                f"List its versions with `s3bp versions PATH`."
            )
        if found.version_id != NULL and at < listing.server_time - 1:  # no later version can claim that time any more
            db.remember_as_of(wire.endpoint, bucket, key, at, found.version_id)
        return found.version_id
    if not isinstance(version, str) or not version:
        raise InvalidArgumentError(f"version must be a version id, a name or a datetime, got {version!r}.")
    names, _ = read_names(wire, bucket, key)
    return names.get(version, version)


def pinned_copy(wire: Wire, db: StateDB, cache_dir: Path, bucket: str, key: str, version: VersionSpec, *, progress: bool | None = None) -> str:
    """The path of the managed cache's copy of one version of ``s3://bucket/key``, downloaded if it is not there yet.

    Requests: none when the version id (or a time remembered as resolved) is
    cached; else a GET of the names (for a string) or a ListObjectVersions
    (for a datetime), and one GET of the version (more for a large one).
    """
    version_id, target = pinned_target(wire, db, cache_dir, bucket, key, version)
    fetch_pinned(wire, db, bucket, key, version_id, target, progress=progress)
    return target


def pinned_target(wire: Wire, db: StateDB, cache_dir: Path, bucket: str, key: str, version: VersionSpec) -> tuple[str, str]:
    """The version id ``version`` stands for and where its copy lives in the managed cache (no request when a version
    id's copy is there already; else what :func:`resolve` costs)."""
    if key_parts(key, "") is None:
        raise InvalidPathError(f"Cannot keep a copy of s3://{bucket}/{key}: the key is not a safe relative path.")
    if isinstance(version, str) and _ID.fullmatch(version) and version not in (NULL, ".", ".."):  # its copy's directory is named as it is
        cached = version_copy_path(cache_dir, wire.endpoint, bucket, key, version)
        if cached.is_file():
            return version, str(cached)
    version_id = resolve(wire, db, bucket, key, version)
    return version_id, str(version_copy_path(cache_dir, wire.endpoint, bucket, key, version_id))


def fetch_pinned(
    wire: Wire, db: StateDB, bucket: str, key: str, version_id: str, target: str, *, progress: bool | None = None
) -> None:
    """Download version ``version_id`` to its copy ``target`` unless an intact copy is there (see :func:`intact`).

    A ``null`` version is always downloaded: it can change in place.
    """
    if version_id != NULL and intact(db, wire.endpoint, bucket, key, version_id, target):
        return
    first = wire.get(bucket, key, version_id=version_id)
    if not isinstance(first, Body):
        raise _missing(wire, bucket, key, version_id)
    record = receive(wire, target, bucket, key, first, progress=progress)
    with contextlib.suppress(OSError):
        os.chmod(target, 0o444)  # a version never changes: its copy is not for editing
    db.put_record(record, best_effort=True)  # what the copy's bytes were, to tell an edited copy from an intact one


def intact(db: StateDB, endpoint: str, bucket: str, key: str, version_id: str, target: str) -> bool:
    """Whether ``target`` is the copy of that version as it was downloaded: its sync record says so and its size and
    mtime are unchanged since (no request). A copy edited, truncated, or without a record is not."""
    record = db.record(target)
    return record is not None and record.version_id == version_id and record.describes(local_stat(target), endpoint, bucket, key)


def list_versions(wire: Wire, bucket: str, key: str) -> list[Version]:
    """Every version of ``key``, newest first, with its names; two requests (a ListObjectVersions and a GET of the names)."""
    listing = wire.list_versions(bucket, key)
    mine = of_key(listing.versions, key)
    _check_listing(wire, bucket, mine, f"list the versions of s3://{bucket}/{key}")
    names, _ = read_names(wire, bucket, key)
    return _described(mine, names)


def _described(entries: Iterable[ObjectVersion], names: dict[str, str]) -> list[Version]:
    """The public :class:`Version` of each listed entry, with its names."""
    by_id: dict[str, list[str]] = {}
    for name, vid in names.items():
        by_id.setdefault(vid, []).append(name)
    return [
        Version(
            v.version_id, dt.datetime.fromtimestamp(v.last_modified, tz=dt.timezone.utc), v.size, v.etag, v.is_latest,
            v.is_delete_marker, tuple(sorted(by_id.get(v.version_id, ()))),
        )  # fmt: skip
        for v in entries
    ]


def restore(wire: Wire, db: StateDB, *, path: str, bucket: str, key: str, version: VersionSpec, conflict: str) -> tuple[Stored | None, bool]:
    """Make version ``version`` the latest again with a server-side copy.

    Returns the copy's outcome (None when that version is the latest already)
    and whether the local file has changes that are not in S3 (only possible
    under ``conflict="overwrite"``: the caller sets them aside).

    Under ``conflict="raise"`` the copy replaces only the version this
    machine last synced for ``path``: the local file must be unchanged since
    and have no pending save, the latest version (a HEAD, on every store) must
    be the one recorded, and the copy carries ``IfMatch`` with its ETag (for
    stores that honour it on a copy). Requests: the names GET (or listing) of
    :func:`resolve`, a HEAD, a CopyObject.

    Raises
    ------
    ConflictError
        When the file or the object changed since the last sync, or another
        machine saved the object during the restore.
    """
    version_id = resolve(wire, db, bucket, key, version)
    record, pending = db.load_state(path)
    record = record_of(record, wire.endpoint, bucket, key)
    local = local_stat(path)
    changes = pending or (local is not None and (record is None or not record.matches(local)))
    if conflict == "raise":
        if changes:
            raise ConflictError(
                f"Not restored: {path} has changes that are not in S3 (a pending save, or edits since it was last synced); "
                f"restoring would replace them. Save or drop them first, or pass conflict='overwrite'.",
                path, bucket, key,
            )  # fmt: skip
    head = wire.head(bucket, key)
    latest = head if isinstance(head, Head) else None
    if conflict == "raise" and record is not None and not _is_recorded(latest, record):
        raise ConflictError(
            f"Not restored: s3://{bucket}/{key} was changed in S3 by another writer since this machine last synced {path}. "
            f"Load it first (then restore again), or pass conflict='overwrite'.",
            path, bucket, key,
        )  # fmt: skip
    if latest is not None and latest.version_id == version_id:
        return None, changes
    if conflict == "raise":
        outcome = wire.copy_version(bucket, key, version_id, if_match=latest.etag if latest else None, if_none_match=latest is None)
    else:
        outcome = wire.copy_version(bucket, key, version_id)
    if isinstance(outcome, Missing):
        raise _missing(wire, bucket, key, version_id)
    if isinstance(outcome, Refused):
        raise ConflictError(
            f"Not restored: another writer saved s3://{bucket}/{key} while the restore of {path} was under way. "
            f"Load it first (then restore again), or pass conflict='overwrite'.",
            path, bucket, key,
        )  # fmt: skip
    return outcome, changes


def _is_recorded(latest: Head | None, record: SyncRecord) -> bool:
    """Whether the latest version is the one ``record`` describes (by version id where both have one, else by ETag)."""
    if latest is None:
        return False
    if latest.version_id is not None and record.version_id is not None:
        return latest.version_id == record.version_id
    return latest.etag == record.etag


def tag(wire: Wire, db: StateDB, bucket: str, key: str, name: str, version: VersionSpec | None = None) -> str:
    """Give a version (default: the latest) the name ``name``; return its version id.

    Requests: a HEAD to check that ``name`` is no version id, a HEAD (of
    the latest, or of the version to check it exists), plus what
    :func:`resolve` costs for a given version, a GET and a conditional PUT
    of the names, and a HEAD of the version after (a prune may have deleted
    it meanwhile: then the name is taken back and ObjectNotFoundError raised).
    """
    check_name(name)
    if isinstance(wire.head(bucket, key, version_id=name), Head):  # version="NAME" would load that version, not the name's
        raise InvalidArgumentError(
            f"{name!r} cannot name a version of s3://{bucket}/{key}: it is the id of one of its versions. Choose another name."
        )
    if version is None:
        head = wire.head(bucket, key)
        if isinstance(head, Missing):
            raise ObjectNotFoundError(f"Cannot tag s3://{bucket}/{key}: it has no current version (never saved, or deleted).")
        version_id = head.version_id or NULL
    else:
        version_id = resolve(wire, db, bucket, key, version)
        if isinstance(wire.head(bucket, key, version_id=version_id), Missing):
            raise _missing(wire, bucket, key, version_id)
    if version_id == NULL:
        require_versioning(wire, bucket, f"name a version of s3://{bucket}/{key}")
        raise VersioningError(
            f"Cannot name that version of s3://{bucket}/{key}: it was written while versioning was off (its id is 'null'), "
            f"so the next such write replaces it in place. Save the object again with versioning on, then tag it."
        )

    def give(names: dict[str, str], pruning: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        if version_id in pruning:
            raise ConflictError(
                f"Cannot name version {version_id} of s3://{bucket}/{key}: a prune is deleting it. Name another version. "
                f"(If no prune is running, one stopped part way: run `s3bp prune` on the file again to finish it.)",
                None, bucket, key,
            )  # fmt: skip
        return {**names, name: version_id}, pruning

    _change_document(wire, bucket, key, give)
    if isinstance(wire.head(bucket, key, version_id=version_id), Missing):  # deleted (pruned) while the name was being written
        change_names(wire, bucket, key, lambda names: {n: v for n, v in names.items() if not (n == name and v == version_id)})
        raise ObjectNotFoundError(
            f"Cannot name version {version_id} of s3://{bucket}/{key}: it was deleted (by a prune?) while it was being named. "
            f"List its versions with `s3bp versions PATH`."
        )
    return version_id


def untag(wire: Wire, bucket: str, key: str, name: str) -> None:
    """Remove the name ``name`` from ``key``'s versions (the version itself stays); a GET and a conditional PUT."""

    def drop(names: dict[str, str]) -> dict[str, str]:
        if not names:
            require_versioning(wire, bucket, f"remove a name of s3://{bucket}/{key}")
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            raise InvalidArgumentError(f"{name!r} names no version of s3://{bucket}/{key} (its names: {known}).")
        del names[name]
        return names

    change_names(wire, bucket, key, drop)


def prune(
    wire: Wire, bucket: str, key: str, *, keep: int | None, older_than: float | None, dry_run: bool
) -> list[Version]:
    """Delete old non-current versions of ``key`` (see :func:`to_prune`); return them (with ``dry_run``, those it would delete).

    Versions to delete are first claimed in the names document (a
    conditional PUT over the names read), so that a name given to one of them
    at the same time either stops the prune from deleting it or is refused.

    Requests: a ListObjectVersions, a GET of the names, and (unless
    ``dry_run``, when there is something to delete) the claim's PUT, one
    DeleteObjects per 1000 versions, and a GET and PUT to drop the claim.
    """
    listing = wire.list_versions(bucket, key)
    mine = of_key(listing.versions, key)
    _check_listing(wire, bucket, mine, f"prune the versions of s3://{bucket}/{key}")
    listed = {v.version_id for v in mine}
    for _ in range(_NAME_ATTEMPTS):
        names, pruning, etag = _read_document(wire, bucket, key)
        doomed = to_prune(mine, names.values(), keep=keep, older_than=older_than, now=listing.server_time)
        if not doomed or dry_run:
            return _described(doomed, names)
        ids = frozenset(v.version_id for v in doomed)
        # Claim them first, over the names just read: a name given since then makes this PUT fail (and the prune
        # look again); a name asked for after it sees the claim and is refused. Claims of versions gone are dropped.
        claim = names_document(names, (pruning & listed) | ids)
        outcome = wire.put_bytes(bucket, names_key(key), claim, if_match=etag, if_none_match=etag is None)
        if isinstance(outcome, Refused) and outcome.code == "501":
            wire.put_bytes(bucket, names_key(key), claim)  # no conditional writes: a name given meanwhile is not seen
        elif isinstance(outcome, Refused):
            continue
        break
    else:
        raise ConflictError(
            f"Not pruned: other writers kept changing the names of s3://{bucket}/{key}. Try again.", None, bucket, key
        )
    wire.delete_versions(bucket, [(key, v.version_id) for v in doomed])
    _change_document(wire, bucket, key, lambda names, pruning: (names, pruning - ids))
    return _described(doomed, names)


def listing_as_of(wire: Wire, bucket: str, prefix: str, at: float) -> list[Remote]:
    """The version of each object under ``prefix`` that was current at time ``at`` (objects absent then are left out).

    One ListObjectVersions per 1000 versions (and, when none of them has a
    version id, one request to check that the bucket has versioning).
    """
    listing = wire.list_versions(bucket, prefix)
    if listing.versions:
        _check_listing(wire, bucket, listing.versions, f"list s3://{bucket}/{prefix} as of a past time")
    elif wire.versioning(bucket) == "":
        raise versioning_error(bucket, f"list s3://{bucket}/{prefix} as of a past time")
    found = []
    for _, entries in itertools.groupby(listing.versions, key=lambda v: v.key):
        v = current_at(list(entries), at)
        if v is not None:
            found.append(Remote(v.key, v.etag, v.size, v.last_modified, version_id=v.version_id, latest=v.is_latest))
    return found
