"""Pure path logic: which bucket and key a local file maps to.

Nothing here touches the disk or the network, so every rule is unit-tested
with plain strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidArgumentError, InvalidBucketNameError, InvalidPathError, NoBucketError

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
    #: for an ``s3://`` URL: the endpoint whose managed cache holds the local copy (None for a local path)
    endpoint: str | None = None


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


# -- s3:// URLs -------------------------------------------------------------------

URL_SCHEME = "s3://"
#: The longest file name (one path component) nearly every filesystem holds, in bytes.
MAX_NAME_BYTES = 255
#: s3bp's own files beside a local copy: the S3 side of a folder conflict, yours set aside by ``keep='remote'``.
_SIDECAR_SUFFIXES = (".s3bp-remote", ".s3bp-local")


def is_url(path: object) -> bool:
    """Whether ``path`` is an ``s3://`` URL (a str; an ``os.PathLike`` is always a local path)."""
    return isinstance(path, str) and path[:5].lower() == URL_SCHEME


def safe_key_parts(key: str) -> tuple[str, ...] | None:
    """The path components ``key`` names as a local relative path, or None when it cannot be one safely.

    Refused: an empty or absolute key, empty, ``.`` or ``..`` segments,
    backslashes, NUL bytes, segments starting with ``.s3bp-`` (s3bp's own
    temp files beside a local copy) or ending with ``.s3bp-local`` or
    ``.s3bp-remote`` (the two sides of a conflict, put beside a copy), and
    segments longer than a file name can be (:data:`MAX_NAME_BYTES`).
    """
    if not key or key.startswith("/"):
        return None
    parts = tuple(key.split("/"))
    for part in parts:
        if part in ("", ".", "..") or "\\" in part or "\0" in part or part.startswith(".s3bp-") or part.endswith(_SIDECAR_SUFFIXES):
            return None
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return None
    return parts


def split_url(url: str, *, prefix: bool = False) -> tuple[str, str]:
    """The bucket and key (or, with ``prefix``, key prefix) of ``s3://bucket/key``.

    A key must name a file that can be a safe local relative path (see
    :func:`safe_key_parts`). A prefix may be empty (the whole bucket) and is
    returned ending with ``/`` when not empty.

    Raises
    ------
    InvalidPathError
        For a URL without a bucket, or a key or prefix that is not safe, naming the URL.
    InvalidBucketNameError
        When the bucket breaks S3's naming rules.
    """
    if not is_url(url):
        raise InvalidPathError(f"Expected an s3://bucket/key URL, got {url!r}.")
    bucket, _, key = url[len(URL_SCHEME) :].partition("/")
    if not bucket:
        raise InvalidPathError(f"Cannot use {url!r}: it names no bucket. Write s3://BUCKET/KEY.")
    check_bucket_name(bucket)
    if prefix:
        key = key.rstrip("/")
        if key and safe_key_parts(key) is None:
            raise InvalidPathError(
                f"Cannot use {url!r} as a folder: its prefix {key!r} cannot be a local directory "
                f"(empty, '.' or '..' segments, backslashes, names over {MAX_NAME_BYTES} bytes, or s3bp's own '.s3bp-' names). "
                f"Use a plain prefix."
            )
        return bucket, key + "/" if key else ""
    if not key or key.endswith("/"):
        raise InvalidPathError(f"Cannot use {url!r}: it does not name an object. Write s3://{bucket}/KEY.")
    if safe_key_parts(key) is None:
        raise InvalidPathError(
            f"Cannot use {url!r}: its key {key!r} cannot be a safe local file name (an absolute key, empty, '.' or '..' "
            f"segments, backslashes, NUL, a name over {MAX_NAME_BYTES} bytes, or s3bp's own names: '.s3bp-*', "
            f"'*.s3bp-local', '*.s3bp-remote'). Copy the object to a plain key first."
        )
    return bucket, check_key(key, url)


def resolve_url(url: str, cache_dir: str, endpoint: str, bucket: str | None = None) -> Resolution:
    """The :class:`Resolution` of ``s3://bucket/key``: its local copy is ``cache_dir/bucket/key``.

    Parameters
    ----------
    url
        The URL.
    cache_dir
        The managed cache's directory for ``endpoint`` (``<cache root>/<endpoint id>``).
    endpoint
        The endpoint the copy belongs to (recorded in the resolution).
    bucket
        A bucket also given as an argument: it must be the URL's.

    Raises
    ------
    InvalidPathError, InvalidBucketNameError
        See :func:`split_url`.
    InvalidArgumentError
        When ``bucket`` is another bucket than the URL's.
    """
    name, key = split_url(url)
    if bucket is not None and bucket != name:
        raise InvalidArgumentError(f"{url!r} is in bucket {name!r} but bucket_name={bucket!r} was given: pass one or the other.")
    path = os.path.join(os.path.abspath(cache_dir), name, *key.split("/"))
    return Resolution(path, name, key, None, "s3:// URL; its local copy is in the managed cache", endpoint)


def url_of_copy(path: str, cache_dir: str) -> str:
    """The ``s3://bucket/key`` URL whose copy is the normalised ``path`` in ``cache_dir`` (an endpoint's managed cache).

    Raises
    ------
    InvalidPathError
        When ``path`` is not the copy of an object in that directory (another endpoint's, a pinned version's).
    """
    parts = os.path.relpath(path, cache_dir).split(os.sep) if contains(cache_dir, path) else []
    if len(parts) < 2 or parts[0].startswith("."):
        raise InvalidPathError(
            f"{path} is in s3bp's managed cache but is not a copy of an object on the configured endpoint ({cache_dir}): "
            f"use its s3://bucket/key URL instead."
        )
    return URL_SCHEME + "/".join(parts)


def resolve_in_pair(path: str, local_dir: str, bucket: str, prefix: str) -> Resolution:
    """The :class:`Resolution` of a file under ``local_dir`` paired with ``s3://bucket/prefix`` (keys relative to the prefix).

    Raises
    ------
    InvalidPathError
        When ``path`` is not below ``local_dir``, or its key cannot be stored.
    """
    norm = normalize(path)
    if norm == local_dir or not contains(local_dir, norm):
        raise InvalidPathError(f"{norm} is not inside {local_dir}, the directory paired with s3://{bucket}/{prefix}.")
    key = prefix + os.path.relpath(norm, local_dir).replace(os.sep, "/")
    return Resolution(norm, bucket, check_key(key, norm), local_dir, f"inside {local_dir}, paired with s3://{bucket}/{prefix}")


def folder_pair(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> tuple[str, str, str]:
    """``(local dir, bucket, prefix)`` from an ``s3://bucket/prefix/`` URL and a local directory, in either order.

    Raises
    ------
    InvalidPathError
        Unless exactly one of the two is a URL, or when the prefix is not safe.
    """
    urls = [p for p in (first, second) if is_url(p)]
    if len(urls) != 1:
        raise InvalidPathError(
            f"Give one s3://bucket/prefix/ URL and one local directory, got {os.fspath(first)!r} and {os.fspath(second)!r}."
        )
    url = urls[0]
    local = second if first is url else first
    bucket, prefix = split_url(str(url), prefix=True)
    return normalize(local), bucket, prefix
