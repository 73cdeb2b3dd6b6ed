"""Pure path logic: which bucket and key a local file maps to.

Nothing here touches the disk or the network, so every rule is unit-tested
with plain strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidBucketNameError, InvalidPathError, NoBucketError

MAX_KEY_BYTES = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class Resolution:
    """Where a local path lives in S3, and why."""

    path: str
    bucket: str
    key: str
    base_dir: str | None
    reason: str


def normalize(path: str | os.PathLike[str]) -> str:
    """Return ``path`` with ``~`` expanded, made absolute and normalised."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InvalidPathError(
            f"Expected a file path (str or os.PathLike), got {type(path).__name__}: {path!r}."
        )
    raw = os.fspath(path)
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPathError(f"Expected a non-empty file path, got {raw!r}.")
    return os.path.abspath(os.path.expanduser(raw))


def check_bucket_name(bucket: str) -> str:
    """Return ``bucket`` if it follows S3's bucket naming rules, else raise.

    Raises
    ------
    InvalidBucketNameError
        Naming the bucket and the rule it breaks.
    """
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_RE.match(bucket):
        raise InvalidBucketNameError(
            f"{bucket!r} is not a valid S3 bucket name: use 3-63 lowercase letters, "
            f"digits, dots and hyphens, starting and ending with a letter or digit."
        )
    return bucket


def check_key(key: str, path: str) -> str:
    """Return ``key`` if S3 can store it, else raise naming ``path``."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidPathError(
            f"Cannot store {path!r} in S3: its name is not valid UTF-8 ({exc.reason}). Rename the file."
        ) from None
    if size > MAX_KEY_BYTES:
        raise InvalidPathError(
            f"Cannot store {path!r}: its key is {size} bytes, over S3's limit of "
            f"{MAX_KEY_BYTES}. Use a shorter path or namekey=True."
        )
    if not key or key.endswith("/"):
        raise InvalidPathError(f"Cannot store {path!r}: it does not name a file.")
    return key


def contains(base_dir: str, path: str) -> bool:
    """Whether normalised ``path`` is ``base_dir`` or lies below it (whole components)."""
    if path == base_dir:
        return True
    prefix = base_dir if base_dir.endswith(os.sep) else base_dir + os.sep
    return path.startswith(prefix)


def base_dir_key(base_dir: str, path: str) -> str:
    """The key of ``path`` under ``base_dir``: the base dir's name, then the relative path."""
    rel = os.path.relpath(path, base_dir)
    name = os.path.basename(base_dir.rstrip(os.sep))
    parts = [name] if rel == os.curdir else [name, *rel.split(os.sep)]
    return "/".join(p for p in parts if p)


def deepest_base_dir(path: str, mappings: Mapping[str, str], bucket: str | None = None) -> str | None:
    """The deepest mapped directory containing ``path`` (mapped to ``bucket`` if given)."""
    best = None
    for base_dir, mapped in mappings.items():
        if bucket is not None and mapped != bucket:
            continue
        if contains(base_dir, path) and (best is None or len(base_dir) > len(best)):
            best = base_dir
    return best


def resolve(
    path: str | os.PathLike[str],
    mappings: Mapping[str, str],
    default_bucket: str | None,
    bucket: str | None = None,
    namekey: bool = False,
) -> Resolution:
    """Decide the bucket and key of a local file.

    Parameters
    ----------
    path
        The local file path; ``~`` is expanded.
    mappings
        Normalised base directory -> bucket.
    default_bucket
        The configured default bucket, or None.
    bucket
        An explicitly requested bucket, or None.
    namekey
        Force the file's base name as the key.

    Returns
    -------
    Resolution
        The normalised path, bucket, key, the base dir used (if any) and a
        sentence saying why.

    Raises
    ------
    NoBucketError
        When no bucket is given, mapped or set as default.
    """
    norm = normalize(path)
    name = os.path.basename(norm)
    if bucket is not None:
        check_bucket_name(bucket)
        base = None if namekey else deepest_base_dir(norm, mappings, bucket)
        if base is None:
            return Resolution(norm, bucket, check_key(name, norm), None, "bucket given explicitly; key is the file name")
        key = base_dir_key(base, norm)
        return Resolution(norm, bucket, check_key(key, norm), base, f"bucket given explicitly; key relative to base dir {base}")
    base = deepest_base_dir(norm, mappings)
    if base is not None:
        mapped = check_bucket_name(mappings[base])
        if namekey:
            return Resolution(norm, mapped, check_key(name, norm), base, f"base dir {base} maps to this bucket; namekey: key is the file name")
        return Resolution(norm, mapped, check_key(base_dir_key(base, norm), norm), base, f"under base dir {base}")
    if default_bucket:
        return Resolution(norm, check_bucket_name(default_bucket), check_key(name, norm), None, "default bucket; key is the file name")
    raise NoBucketError(norm)


def directory_of(bucket: str, prefix: str, mappings: Mapping[str, str]) -> str | None:
    """The local directory that holds the objects under ``bucket``/``prefix`` (the inverse of :func:`resolve` for a
    base directory's keys, which start with its name); the deepest such directory wins, as in :func:`resolve`. None
    when no mapped directory holds them."""
    best = None
    for directory, mapped in mappings.items():
        name = os.path.basename(directory.rstrip(os.sep)) + "/"
        if mapped == bucket and (prefix + "/").startswith(name):
            local = os.path.join(directory, *[p for p in prefix[len(name) :].split("/") if p])
            if best is None or len(local) > len(best):
                best = local
    return best


def normalize_mappings(raw: Mapping[str, str]) -> dict[str, str]:
    """Normalise the directories of a base-dir mapping (later duplicates win)."""
    return {normalize(d): b for d, b in raw.items()}
