"""What an upload says about itself: its Content-Type and its ``x-amz-meta-*`` metadata.

Every upload (save, ``upload_file``, push) carries a Content-Type: the
format's when s3bp wrote the file, else one guessed from the file name (as
``aws s3 cp`` guesses), else ``application/octet-stream``. It also carries
s3bp's own metadata (``s3bp-version``; ``s3bp-format`` and, for DataFrames,
``s3bp-rows``/``s3bp-columns`` when s3bp serialized it; ``s3bp-host`` and
``s3bp-user`` only with the ``record_origin`` setting) and the caller's
``metadata={...}``. Upload arguments the caller gives (``extra_args``, the
``upload_args`` setting) win over all of these. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .serializers import Format
    from .uploads import UploadOptions

#: S3's limit on user metadata: the UTF-8 bytes of every key and value, summed.
METADATA_LIMIT = 2048
#: The prefix of the metadata keys s3bp writes itself (reserved: a caller's key may not start with it).
PREFIX = "s3bp-"
DEFAULT_TYPE = "application/octet-stream"
#: The type of a file the name says is compressed (``.csv.gz``): its bytes are the archive's, not the text's.
_COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz", "br": "application/x-brotli"}
_ARCHIVES = frozenset({"application/zip", "application/zstd", "application/x-zstd"})
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an HTTP header name


def content_type(path: str, fmt: Format | None = None) -> str:
    """The Content-Type of a file uploaded from ``path``, written in the format ``fmt`` (None: not written by s3bp).

    A format's own type, unless the name's suffix is one of the format's that
    compresses it (``.csv.gz``: the bytes are gzip's); without a format, the one
    registered for the name's suffix, else Python's ``mimetypes`` guess (what
    ``aws s3 cp`` sends), else ``application/octet-stream``.
    """
    from .serializers import format_for_suffix

    guessed, encoding = mimetypes.guess_type(path, strict=False)
    packed = _COMPRESSED.get(encoding, DEFAULT_TYPE) if encoding else guessed if guessed in _ARCHIVES else None
    known = fmt if fmt is not None else format_for_suffix(path)
    if known is None:
        return packed or guessed or DEFAULT_TYPE
    lower = path.lower()
    if packed and any(lower.endswith(s) and s.count(".") > 1 for s in known.suffixes):
        return packed
    return known.content_type or (DEFAULT_TYPE if fmt is not None else guessed or DEFAULT_TYPE)


def s3bp_metadata(*, fmt: str | None, version: str, shape: tuple[int, ...] | None = None, origin: tuple[str, str] | None = None) -> dict[str, str]:
    """s3bp's own metadata for an upload: its version, the format and a DataFrame's rows and columns, and (when asked) host and user."""
    meta = {f"{PREFIX}version": version}
    if fmt:
        meta[f"{PREFIX}format"] = fmt
    if shape is not None and len(shape) == 2:
        meta[f"{PREFIX}rows"], meta[f"{PREFIX}columns"] = str(shape[0]), str(shape[1])
    if origin is not None:
        meta[f"{PREFIX}host"], meta[f"{PREFIX}user"] = origin
    return meta


def check_metadata(metadata: Any, path: str) -> dict[str, str]:
    """A caller's ``metadata=`` as a dict of str, or :class:`InvalidArgumentError` naming ``path`` and what is wrong.

    Keys must be HTTP header names (ASCII letters, digits, ``-`` and ``_``, ...),
    not start with ``s3bp-`` (s3bp's own) and differ in more than case (S3 keeps
    them in lower case); values must be ASCII text (S3 would mangle the rest).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"Cannot save {path}: metadata must be a dict of str to str, got {type(metadata).__name__}. Nothing was written.")
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise InvalidArgumentError(
                f"Cannot save {path}: metadata key {key!r} is not usable in S3; use ASCII letters, digits, '-' and '_'. Nothing was written."
            )
        if key.lower().startswith(PREFIX):
            raise InvalidArgumentError(
                f"Cannot save {path}: metadata key {key!r} starts with {PREFIX!r}, which s3bp keeps for its own keys. Nothing was written."
            )
        if key.lower() in (k.lower() for k in out):
            raise InvalidArgumentError(
                f"Cannot save {path}: metadata key {key!r} is given twice (S3 keeps keys in lower case). Nothing was written."
            )
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise InvalidArgumentError(
                f"Cannot save {path}: the value of metadata key {key!r} must be printable ASCII text, got {value!r} "
                f"(encode other text, e.g. with urllib.parse.quote). Nothing was written."
            )
        if value != value.strip():
            raise InvalidArgumentError(
                f"Cannot save {path}: the value of metadata key {key!r} starts or ends with a space, which S3 drops "
                f"(HTTP trims header values), got {value!r}; strip or quote it. Nothing was written."
            )
        out[key] = value
    return out


def metadata_size(metadata: Mapping[str, str]) -> int:
    """How much of S3's 2 KB of user metadata ``metadata`` takes (UTF-8 bytes of keys and values)."""
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in metadata.items())


def labelled(options: UploadOptions, *, content: str, metadata: Mapping[str, str], path: str) -> UploadOptions:
    """``options`` with ``content`` as ContentType and ``metadata`` under the caller's own Metadata, unless the caller gave them.

    Raises
    ------
    InvalidArgumentError
        When the metadata would exceed S3's 2 KB (naming ``path`` and the size), before anything is written.
    """
    given = options.arguments()
    _check_given(given, path)
    merged = {**metadata, **(given.get("Metadata") or {})}
    size = metadata_size(merged)
    if size > METADATA_LIMIT:
        own = metadata_size({k: v for k, v in merged.items() if k.startswith(PREFIX)})
        raise InvalidArgumentError(
            f"Cannot save {path}: its metadata takes {size} bytes ({own} of them s3bp's own keys), over S3's limit of "
            f"{METADATA_LIMIT} bytes for keys and values together. Keep less in metadata=; put the rest in the object itself. "
            f"Nothing was written."
        )
    args = {"ContentType": content, **given, "Metadata": merged}
    return dataclasses.replace(options, extra_args=json.dumps(args, sort_keys=True))


def _check_given(given: Mapping[str, Any], path: str) -> None:
    """Refuse, before anything is written, a ``Metadata`` or ``ContentType`` in ``extra_args``/``upload_args`` that the upload would fail on."""
    where = "in extra_args (or the upload_args setting)"
    if "ContentType" in given and not isinstance(given["ContentType"], str):
        raise InvalidArgumentError(f"Cannot save {path}: ContentType {where} must be text, got {given['ContentType']!r}. Nothing was written.")
    meta = given.get("Metadata")
    if meta is None:
        return
    if not isinstance(meta, Mapping):
        raise InvalidArgumentError(
            f"Cannot save {path}: Metadata {where} must be a dict of str to str, got {type(meta).__name__}. Nothing was written."
        )
    for key, value in meta.items():
        if not (isinstance(key, str) and _TOKEN.fullmatch(key) and isinstance(value, str) and value.isascii() and value.isprintable()):
            raise InvalidArgumentError(
                f"Cannot save {path}: Metadata {where} has {key!r}: {value!r}; keys must be ASCII header names and values "
                f"printable ASCII text. Nothing was written."
            )


def args_digest(extra_args: str | None) -> str:
    """A short fingerprint of an upload's arguments (the journal's JSON), kept in sync records to tell same-settings saves."""
    import hashlib

    return hashlib.sha256((extra_args or "").encode()).hexdigest()[:16]


def label(
    options: UploadOptions, settings: Mapping[str, Any], path: str, *, fmt: Format | None = None, metadata: Any = None,
    shape: tuple[int, ...] | None = None,
) -> UploadOptions:
    """The upload options of a file at ``path``, labelled: its Content-Type and metadata (see the module's docstring).

    Parameters
    ----------
    options
        The conflict rule and the caller's upload arguments (they win).
    settings
        The configuration (``record_origin``).
    path
        The local file (its name decides the type when ``fmt`` does not).
    fmt
        The format s3bp wrote the file in, if it did.
    metadata
        The caller's ``metadata={...}``, checked here.
    shape
        A DataFrame's (rows, columns).

    Raises
    ------
    InvalidArgumentError
        For unusable metadata, before anything is written.
    """
    from . import __version__

    user = check_metadata(metadata, path)
    origin = _origin() if settings.get("record_origin") else None
    own = s3bp_metadata(fmt=fmt.name if fmt is not None else None, version=__version__, shape=shape, origin=origin)
    return labelled(options, content=content_type(path, fmt), metadata={**own, **user}, path=path)


def format_of(serializer: Any) -> Format | None:
    """The registered format a ``serializer=`` argument names or is (None: pickle), else None for a caller's own callable."""
    from .serializers import formats, get_format

    if serializer is None or isinstance(serializer, str):
        return get_format(serializer or "pickle")
    return next((f for f in formats().values() if f.serializer is serializer), None)


def _origin() -> tuple[str, str]:
    """This machine's host name and this process's user name, ASCII only (the ``record_origin`` setting)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown"
    host = socket.gethostname()
    return host.encode("ascii", "replace").decode(), user.encode("ascii", "replace").decode()
