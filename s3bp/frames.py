"""DataFrame serializers: csv, excel, feather and parquet.

pandas, pyarrow and openpyxl are imported inside the functions, so that
``import s3bp`` stays cheap and a missing engine is reported only when its
format is used, with the extra that installs it.

Arrow formats (parquet, feather) keep the index, its names and every dtype
through pyarrow's pandas metadata; column labels of mixed types (``"a"`` and
``7``), which Arrow would turn into strings, are kept in our own metadata key.
CSV and Excel keep values, column names and a single-level index with its
name; see the README for what they cannot carry.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from .errors import MissingDependencyError

_LABELS_KEY = b"s3bp.column_labels"
_LABEL_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def need(module: str, extra: str, fmt: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"The {fmt!r} format needs the {module.split('.')[0]!r} package: pip install 's3bp[{extra}]'"
        ) from exc


def _encode_labels(columns: Any) -> bytes | None:
    """JSON for column labels of mixed scalar types, or None when Arrow keeps them as they are."""
    kinds = {type(c) for c in columns}
    if len(kinds) <= 1 or not kinds <= set(_LABEL_TYPES.values()):
        return None
    names = {v: k for k, v in _LABEL_TYPES.items()}
    return json.dumps({str(c): [names[type(c)], c] for c in columns}).encode()


def _decode_labels(raw: bytes, fields: Any) -> list[Any]:
    """The original labels of columns named ``fields``, as stored by :func:`_encode_labels`."""
    labels = json.loads(raw)
    return [_LABEL_TYPES[labels[f][0]](labels[f][1]) if f in labels else f for f in fields]


def _to_table(df: Any, fmt: str) -> Any:
    """An Arrow table of ``df``, keeping its index (as columns) and mixed column labels."""
    pa = need("pyarrow", "pandas", fmt)
    labels = _encode_labels(df.columns) if not hasattr(df.columns, "levels") else None
    if labels is not None:
        df = df.set_axis([str(c) for c in df.columns], axis=1)
    table = pa.Table.from_pandas(df, preserve_index=None)
    if labels is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _LABELS_KEY: labels})
    return table


def _from_table(table: Any) -> Any:
    """The DataFrame of an Arrow table written by :func:`_to_table`."""
    meta = table.schema.metadata or {}
    df = table.to_pandas()
    if _LABELS_KEY in meta:
        df.columns = _decode_labels(meta[_LABELS_KEY], df.columns)
    return df


def parquet_write(df: Any, filepath: str, **kwargs: Any) -> None:
    """Write ``df`` as Parquet (pyarrow); ``kwargs`` go to ``pyarrow.parquet.write_table``."""
    pq = need("pyarrow.parquet", "pandas", "parquet")
    pq.write_table(_to_table(df, "parquet"), filepath, **kwargs)


def parquet_read(filepath: str, **kwargs: Any) -> Any:
    """Read a Parquet file; ``kwargs`` (e.g. ``columns=``) go to ``pyarrow.parquet.read_table``."""
    pq = need("pyarrow.parquet", "pandas", "parquet")
    return _from_table(pq.read_table(filepath, **kwargs))


def feather_write(df: Any, filepath: str, **kwargs: Any) -> None:
    """Write ``df`` as Feather v2 (the engine behind the feather-format package), index kept as columns."""
    feather = need("pyarrow.feather", "pandas", "feather")
    feather.write_feather(_to_table(df, "feather"), filepath, **kwargs)


def feather_read(filepath: str, **kwargs: Any) -> Any:
    """Read a Feather file, restoring its index; ``kwargs`` (e.g. ``columns=``) go to ``pyarrow.feather.read_table``."""
    feather = need("pyarrow.feather", "pandas", "feather")
    return _from_table(feather.read_table(filepath, **kwargs))


def csv_write(df: Any, filepath: str, **kwargs: Any) -> None:
    """Write ``df`` as CSV with its index; ``kwargs`` go to ``DataFrame.to_csv``.

    An unnamed index's header cell is empty, as pandas writes it; a named
    one's is written quoted. Every CSV reader sees the same values, and
    :func:`csv_read` knows either as a file whose first column is the index.
    """
    need("pandas", "pandas", "csv")
    if kwargs.get("index") is False or kwargs.get("header") is False or kwargs.get("quoting") is not None:
        df.to_csv(filepath, **kwargs)  # no index or header to mark: an ordinary CSV
        return
    from pandas.io.common import get_handle

    sep = kwargs.get("sep", ",")
    header = _marked_header(df.iloc[:0].to_csv(**{k: v for k, v in kwargs.items() if k in _HEADER_OPTIONS}), sep)
    options = {"compression": kwargs.pop("compression", "infer"), "encoding": kwargs.pop("encoding", None) or "utf-8"}
    with get_handle(filepath, "w", **options) as handles:
        handles.handle.write(header)
        df.to_csv(handles.handle, header=False, **kwargs)


#: ``DataFrame.to_csv`` options that shape the header row (the rest concern values).
_HEADER_OPTIONS = ("sep", "index_label", "columns", "lineterminator", "quotechar", "doublequote", "escapechar")


def _marked_header(header: str, sep: str) -> str:
    """The header lines pandas wrote, with the first cell quoted (if pandas did not quote it already)."""
    if header.startswith(('"', sep)):  # quoted by pandas already, or empty: an unnamed index
        return header
    first_line = len(header.splitlines()[0]) if header else 0
    end = min(i for i in (header.find(sep), first_line) if i >= 0)
    return f'"{header[:end]}"{header[end:]}'


def _csv_has_index(filepath: str, kwargs: dict[str, Any]) -> bool:
    """Whether the CSV's first column is an index: s3bp's quoted first header cell, or an empty one (pandas' mark of
    an unnamed index, which s3bp 0.1.x and 0.2 wrote)."""
    import csv

    from pandas.io.common import get_handle

    sep = kwargs.get("sep", kwargs.get("delimiter", ",")) or ","
    if len(sep) != 1:
        return False
    options = {"compression": kwargs.get("compression", "infer"), "encoding": kwargs.get("encoding") or "utf-8", "errors": "replace"}
    with get_handle(filepath, "r", **options) as handles:
        line = handles.handle.readline()
    line = line.lstrip("\ufeff").rstrip("\r\n")
    if line.startswith(sep):
        return True
    if not line.startswith('"'):
        return False
    fields = next(csv.reader([line], delimiter=sep), [])
    return bool(fields) and line == _marked_header(_render_row(fields, sep), sep)


def _render_row(fields: list[str], sep: str) -> str:
    """One CSV row as pandas writes it (quoted only where needed), without its line end."""
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(fields)
    return buf.getvalue()[:-1]


def csv_read(filepath: str, **kwargs: Any) -> Any:
    """Read a CSV: one s3bp wrote (or an older s3bp's) with its first column as the index, any other exactly as
    ``pandas.read_csv`` reads it; ``index_col`` (like every keyword, passed to ``read_csv``) decides when given."""
    pd = need("pandas", "pandas", "csv")
    if "index_col" not in kwargs and _csv_has_index(filepath, kwargs):
        kwargs["index_col"] = 0
    return pd.read_csv(filepath, **kwargs)


#: The workbook property that marks a workbook s3bp wrote (its first column is the index).
_EXCEL_MARK = "s3bp.index"


def excel_write(df: Any, filepath: str, **kwargs: Any) -> None:
    """Write ``df`` as an .xlsx workbook (openpyxl) with its index, marked as s3bp's by a custom document property.

    Excel has no time zones: zoned datetimes are written as UTC wall times.
    """
    pd = need("pandas", "pandas", "excel")
    need("openpyxl", "excel", "excel")
    from openpyxl.packaging.custom import StringProperty

    df = _drop_time_zones(df)
    kwargs.pop("engine", None)
    with pd.ExcelWriter(filepath, engine="openpyxl") as writer:
        df.to_excel(writer, **kwargs)
        if kwargs.get("index", True) is not False:
            writer.book.custom_doc_props.append(StringProperty(name=_EXCEL_MARK, value="1"))


def _excel_has_index(filepath: str, sheet: Any) -> bool:
    """Whether the sheet's first column is an index: the workbook carries s3bp's mark, or its top-left cell is empty
    (pandas' mark of an unnamed index, which s3bp 0.1.x and 0.2 wrote)."""
    pd = need("pandas", "pandas", "excel")
    if str(filepath).lower().endswith((".xlsx", ".xlsm")):
        import openpyxl

        book = openpyxl.load_workbook(filepath, read_only=True)
        try:
            if any(p.name == _EXCEL_MARK for p in book.custom_doc_props):
                return True
        finally:
            book.close()
    top = pd.read_excel(filepath, sheet_name=sheet, header=None, nrows=1)
    return bool(top.shape[1]) and pd.isna(top.iloc[0, 0]) if len(top) else False


def excel_read(filepath: str, **kwargs: Any) -> Any:
    """Read a workbook: one s3bp wrote (or an older s3bp's) with its first column as the index, any other exactly as
    ``pandas.read_excel`` reads it; ``index_col`` (like every keyword, passed to ``read_excel``) decides when given."""
    pd = need("pandas", "pandas", "excel")
    need("openpyxl", "excel", "excel")
    kwargs.setdefault("engine", "openpyxl")
    sheet = kwargs.get("sheet_name", 0)
    if "index_col" not in kwargs and isinstance(sheet, (str, int)) and _excel_has_index(filepath, sheet):
        kwargs["index_col"] = 0
    return pd.read_excel(filepath, **kwargs)


def _drop_time_zones(df: Any) -> Any:
    """A copy of ``df`` whose zoned datetime columns and index are naive UTC (only if there are any)."""
    pd = need("pandas", "pandas", "excel")
    zoned = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    index_zoned = isinstance(df.index.dtype, pd.DatetimeTZDtype)
    if not zoned and not index_zoned:
        return df
    df = df.copy()
    for c in zoned:
        df[c] = df[c].dt.tz_convert("UTC").dt.tz_localize(None)
    if index_zoned:
        df.index = df.index.tz_convert("UTC").tz_localize(None)
    return df


# -- polars ---------------------------------------------------------------------
#
# polars frames go through polars' own writers and readers (no pandas on the
# way): parquet and feather (Arrow IPC) keep every dtype; CSV keeps values and
# column names, dtypes as polars infers them on reading.

_POLARS = {
    "parquet": ("write_parquet", "read_parquet"),
    "feather": ("write_ipc", "read_ipc"),
    "csv": ("write_csv", "read_csv"),
}

#: The DataFrame backends ``save_dataframe``/``load_dataframe`` accept.
BACKENDS = ("pandas", "polars")


def is_polars(df: Any) -> bool:
    """Whether ``df`` is a polars DataFrame (checked without importing polars)."""
    return type(df).__module__.split(".")[0] == "polars"


def polars_function(fmt: str, role: str) -> Any:
    """polars' writer (``role="serializer"``) or reader for format ``fmt``.

    Raises
    ------
    UnknownFormatError
        When polars has no engine for ``fmt`` here.
    MissingDependencyError
        When polars is not installed.
    """
    from .errors import UnknownFormatError

    if fmt not in _POLARS:
        raise UnknownFormatError(
            f"The {fmt!r} format has no polars backend; with backend='polars' use one of {', '.join(sorted(_POLARS))}."
        )
    writer, reader = _POLARS[fmt]
    if role == "serializer":
        return lambda df, filepath, **kwargs: getattr(df, writer)(filepath, **kwargs)
    return getattr(need("polars", "polars", fmt), reader)
