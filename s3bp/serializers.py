"""The format registry: named serializers and deserializers.

A serializer is ``callable(obj, filepath)`` and writes ``obj`` to
``filepath``; a deserializer is ``callable(filepath)`` and returns the
object. Formats are registered under a name with the file suffixes they
usually carry; the registry is exposed read-only through :func:`formats`.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import frames
from .errors import InvalidArgumentError, SerializationError, UnknownFormatError

Serializer = Callable[..., None]
Deserializer = Callable[..., Any]


@dataclass(frozen=True)
class Format:
    """A named way to write an object to a file and read it back."""

    name: str
    serializer: Serializer
    deserializer: Deserializer
    suffixes: tuple[str, ...] = ()
    frames: bool = field(default=False, compare=False)
    #: the Content-Type of its files in S3 (None: guessed from the file name)
    content_type: str | None = field(default=None, compare=False)


_REGISTRY: dict[str, Format] = {}
_FORMATS = MappingProxyType(_REGISTRY)


def register_format(
    name: str,
    serializer: Serializer,
    deserializer: Deserializer,
    suffixes: Iterable[str] = (),
    *,
    clobber: bool = False,
    frames: bool = False,
    content_type: str | None = None,
) -> Format:
    """Add a format to the registry.

    Parameters
    ----------
    name
        The format's name (case-insensitive).
    serializer
        ``callable(obj, filepath, **kwargs)``.
    deserializer
        ``callable(filepath, **kwargs) -> obj``.
    suffixes
        File suffixes (``".csv"``) that select this format for DataFrames.
    clobber
        Replace an existing format of the same name instead of raising.
    frames
        Whether the format is for DataFrames (used by ``load_dataframe``).
    content_type
        The Content-Type its files get in S3; default: guessed from the file
        name, else ``application/octet-stream``.

    Returns
    -------
    Format

    Raises
    ------
    ValueError
        When ``name`` is taken and ``clobber`` is False, or a callable is missing.
    """
    key = name.lower()
    if not callable(serializer) or not callable(deserializer):
        raise ValueError(f"Format {name!r}: serializer and deserializer must be callables.")
    if key in _REGISTRY and not clobber:
        raise ValueError(f"Format {name!r} is already registered; pass clobber=True to replace it.")
    fmt = Format(key, serializer, deserializer, tuple(s.lower() for s in suffixes), frames, content_type)
    _REGISTRY[key] = fmt
    return fmt


def unregister_format(name: str) -> Format | None:
    """Remove the format called ``name`` (case-insensitive) from the registry; return it, or None if there was none."""
    return _REGISTRY.pop(str(name).lower(), None)


def formats() -> Mapping[str, Format]:
    """The registered formats, by name (a read-only view)."""
    return _FORMATS


def get_format(name: str) -> Format:
    """The format called ``name`` (case-insensitive).

    Raises
    ------
    UnknownFormatError
        Listing the known formats.
    """
    try:
        return _REGISTRY[str(name).lower()]
    except KeyError:
        raise UnknownFormatError(
            f"Unknown format {name!r}; known formats are {', '.join(sorted(_REGISTRY))}. "
            f"Add one with s3bp.register_format(name, serializer, deserializer)."
        ) from None


def format_for_suffix(filepath: str) -> Format | None:
    """The format registered for the end of ``filepath`` (the longest matching suffix wins), if any."""
    lower = filepath.lower()
    best: tuple[int, Format] | None = None
    for fmt in _REGISTRY.values():
        for suffix in fmt.suffixes:
            if lower.endswith(suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), fmt)
    return best[1] if best else None


def frame_format(filepath: str, format: str | None = None) -> Format:
    """The format for a DataFrame file: ``format`` if given, else the one registered for its suffix, else csv."""
    if format is not None:
        return get_format(format)
    return format_for_suffix(filepath) or get_format("csv")


def codec(given: Any, role: str, path: str) -> Any:
    """The serializer (``role="serializer"``) or deserializer for a callable, a format name or None (pickle)."""
    if given is None or isinstance(given, str):
        return getattr(get_format(given or "pickle"), role)
    if not callable(given):
        signature = "callable(obj, filepath)" if role == "serializer" else "callable(filepath)"
        raise SerializationError(f"Cannot use {path}: {role} must be a {signature} or a format name, got {given!r}.")
    return given


def frame_codec(path: str, format: str | None, kwargs: dict[str, Any], role: str, backend: str) -> Any:
    """The serializer or deserializer of a DataFrame file's format and backend, with the caller's keyword arguments bound."""
    if backend not in frames.BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(frames.BACKENDS)}, got {backend!r}.")
    fmt = frame_format(path, kwargs.pop("dformat", None) if format is None else format)
    function = frames.polars_function(fmt.name, role) if backend == "polars" else getattr(fmt, role)
    return functools.partial(function, **kwargs) if kwargs else function


def deserialize(read: Deserializer, path: str) -> Any:
    """Read a loaded file with ``read``, wrapping a failure in :class:`SerializationError`."""
    try:
        return read(path)
    except Exception as exc:  # KeyboardInterrupt and SystemExit pass as they are
        raise SerializationError(
            f"Could not load {path}: the deserializer raised {exc!r}. The file is left in place; "
            f"check that it was saved in the format you are reading it with."
        ) from exc


def _pickle_dump(obj: Any, filepath: str) -> None:
    """Pickle ``obj`` with the highest protocol into a new file (created exclusively: never through a planted link)."""
    with open(filepath, "xb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def writes_exclusively(write: Any) -> bool:
    """Whether the serializer ``write`` creates its file exclusively and writes nothing else (so it may write beside the
    target, with no private directory made and removed for it: see :class:`~s3bp.localfiles.Placement`)."""
    return write is _pickle_dump


def _pickle_load(filepath: str) -> Any:
    """Unpickle a file (only from sources you trust)."""
    with open(filepath, "rb") as fh:
        return pickle.load(fh)


def _json_dump(obj: Any, filepath: str, **kwargs: Any) -> None:
    """Write ``obj`` as JSON."""
    with open(filepath, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, **kwargs)


def _json_load(filepath: str, **kwargs: Any) -> Any:
    """Read a JSON file."""
    with open(filepath, encoding="utf-8") as fh:
        return json.load(fh, **kwargs)


register_format("pickle", _pickle_dump, _pickle_load, (".pkl", ".pickle"), frames=True, content_type="application/octet-stream")
register_format("json", _json_dump, _json_load, (".json",), content_type="application/json")
register_format(
    "csv",
    frames.csv_write,
    frames.csv_read,
    (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip", ".csv.zst"),
    frames=True,
    content_type="text/csv",
)
register_format(
    "excel", frames.excel_write, frames.excel_read, (".xlsx", ".xls", ".xlsm"), frames=True,
    content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)  # fmt: skip
register_format(
    "feather", frames.feather_write, frames.feather_read, (".feather", ".ftr"), frames=True, content_type="application/vnd.apache.arrow.file"
)
register_format("parquet", frames.parquet_write, frames.parquet_read, (".parquet", ".pq"), frames=True, content_type="application/vnd.apache.parquet")
