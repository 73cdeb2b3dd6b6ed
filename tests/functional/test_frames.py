"""DataFrames through every registered format, against the S3 server."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
from pandas.testing import assert_frame_equal, assert_index_equal  # noqa: E402

import s3bp  # noqa: E402
from s3bp.errors import MissingDependencyError, UnknownFormatError  # noqa: E402

INDEXES = {
    "int": lambda: pd.Index([1, 2]),
    "named-str": lambda: pd.Index(["a", "b"], name="key"),
    "multi": lambda: pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["l1", "l2"]),
}


def frame(index: str):
    return pd.DataFrame(
        {
            "i": [1, 2],
            "f": [1.5, np.nan],
            "b": [True, False],
            "s": ["x", "y"],
            "t": pd.to_datetime(["2024-01-01 10:00", "2024-06-01 11:30"]).tz_localize("Europe/Berlin"),
            "c": pd.Categorical(["lo", "hi"]),
            7: [3, 4],
        },
        index=INDEXES[index](),
    )


def cold_load(path, bucket, **kwargs):
    """Delete the local copy, so the load must come from S3."""
    os.remove(path)
    return s3bp.load_dataframe(path, bucket, **kwargs)


@pytest.mark.parametrize("index", INDEXES)
@pytest.mark.parametrize("fmt", ["parquet", "feather", "pickle"])
def test_exact_round_trip(tmp_path, bucket, fmt, index):
    df = frame(index)
    path = tmp_path / f"frame.{fmt}"
    s3bp.save_dataframe(df, path, bucket, format=fmt, wait=True)
    assert_frame_equal(cold_load(path, bucket, format=fmt), df)
    assert_frame_equal(s3bp.load_dataframe(path, bucket, format=fmt), df)  # and from the local copy


@pytest.mark.parametrize("index", INDEXES)
def test_csv_round_trip(tmp_path, bucket, index):
    df = frame(index)
    path = tmp_path / "frame.csv"
    s3bp.save_dataframe(df, path, bucket, wait=True)
    kwargs = {"index_col": [0, 1]} if index == "multi" else {}
    got = cold_load(path, bucket, **kwargs)
    assert_index_equal(got.index, df.index, exact="equiv")
    assert list(got.columns) == [str(c) for c in df.columns]
    assert_frame_equal(got[["i", "f", "b", "s", "7"]], df[["i", "f", "b", "s", 7]].set_axis(["i", "f", "b", "s", "7"], axis=1))
    assert (pd.to_datetime(got["t"], utc=True) == df["t"].dt.tz_convert("UTC")).all()
    assert list(got["c"]) == list(df["c"])


@pytest.mark.parametrize("index", INDEXES)
def test_excel_round_trip(tmp_path, bucket, index):
    df = frame(index)
    path = tmp_path / "frame.xlsx"
    s3bp.save_dataframe(df, path, bucket, wait=True)
    kwargs = {"index_col": [0, 1]} if index == "multi" else {}
    got = cold_load(path, bucket, **kwargs)
    assert_index_equal(got.index, df.index, exact="equiv")
    assert list(got.columns) == list(df.columns)
    plain = ["i", "f", "b", "s", 7]
    assert_frame_equal(got[plain], df[plain])
    expected_t = df["t"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert (got["t"] == expected_t).all()
    assert list(got["c"]) == list(df["c"])


def test_every_registered_format_round_trips_a_frame_it_claims(tmp_path, bucket):
    df = frame("named-str")[["i", "s"]]
    for name, fmt in s3bp.formats().items():
        if not fmt.frames:
            continue
        path = tmp_path / f"every-{name}{fmt.suffixes[0]}"
        s3bp.save_dataframe(df, path, bucket, wait=True)
        got = cold_load(path, bucket)
        assert list(got["i"]) == [1, 2] and list(got.index) == ["a", "b"], name


def test_format_from_suffix_case_and_dformat_alias(tmp_path, bucket, raw):
    df = pd.DataFrame({"i": [1, 2]})
    s3bp.save_dataframe(df, tmp_path / "a.parquet", bucket, wait=True)
    assert raw.get_object(Bucket=bucket, Key="a.parquet")["Body"].read(4) == b"PAR1"
    s3bp.save_dataframe(df, tmp_path / "b.data", bucket, format="PARQUET", wait=True)
    assert raw.get_object(Bucket=bucket, Key="b.data")["Body"].read(4) == b"PAR1"
    s3bp.save_dataframe(df, tmp_path / "c.data", bucket, dformat="feather", wait=True)
    assert raw.get_object(Bucket=bucket, Key="c.data")["Body"].read(6) == b"ARROW1"
    s3bp.save_dataframe(df, tmp_path / "d.data", bucket, wait=True)  # no suffix match: csv
    assert raw.get_object(Bucket=bucket, Key="d.data")["Body"].read().startswith(b",i\n")
    assert_frame_equal(s3bp.load_dataframe(tmp_path / "c.data", bucket, dformat="Feather"), df)


def test_writer_and_reader_kwargs(tmp_path, bucket, raw):
    df = frame("named-str")
    s3bp.save_dataframe(df, tmp_path / "z.csv", bucket, compression="gzip", wait=True)
    assert raw.get_object(Bucket=bucket, Key="z.csv")["Body"].read(2) == b"\x1f\x8b"
    assert list(cold_load(tmp_path / "z.csv", bucket, compression="gzip")["s"]) == ["x", "y"]
    s3bp.save_dataframe(df, tmp_path / "p.parquet", bucket, wait=True)
    assert list(s3bp.load_dataframe(tmp_path / "p.parquet", bucket, columns=["i", "s"]).columns) == ["i", "s"]
    s3bp.save_dataframe(df, tmp_path / "s.xlsx", bucket, sheet_name="data", wait=True)
    assert list(cold_load(tmp_path / "s.xlsx", bucket, sheet_name="data")["i"]) == [1, 2]


def test_format_names_in_save_and_load_object(tmp_path, bucket):
    df = frame("int")
    s3bp.save_object(df, tmp_path / "o.bin", bucket, serializer="parquet", wait=True)
    os.remove(tmp_path / "o.bin")
    assert_frame_equal(s3bp.load_object(tmp_path / "o.bin", bucket, deserializer="parquet"), df)


def test_unknown_format(tmp_path, bucket):
    with pytest.raises(UnknownFormatError, match="known formats are .*csv.*parquet") as info:
        s3bp.save_dataframe(frame("int"), tmp_path / "x", bucket, format="hdf9")
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "x").exists()


def test_register_format(tmp_path, bucket):
    def write(obj, path):
        with open(path, "wb") as fh:
            pickle.dump(("wrapped", obj), fh)

    def read(path):
        with open(path, "rb") as fh:
            return pickle.load(fh)[1]

    s3bp.register_format("wrapped-test", write, read, suffixes=(".wrp",))
    try:
        with pytest.raises(ValueError, match="already registered"):
            s3bp.register_format("Wrapped-Test", write, read)
        s3bp.save_object([1], tmp_path / "x.wrp", bucket, serializer="wrapped-test", wait=True)
        assert s3bp.load_object(tmp_path / "x.wrp", bucket, deserializer="wrapped-test") == [1]
        with pytest.raises(TypeError):
            s3bp.formats()["x"] = None
    finally:
        s3bp.unregister_format("wrapped-test")


def test_import_does_not_load_pandas_or_pyarrow():
    code = "import sys, s3bp; print([m for m in ('pandas', 'pyarrow', 'boto3', 'botocore') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_engine_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from s3bp.frames import parquet_write\n"
        "try:\n    parquet_write(None, 'x.parquet')\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.startswith(MissingDependencyError.__name__) and "pip install 's3bp[pandas]'" in out
