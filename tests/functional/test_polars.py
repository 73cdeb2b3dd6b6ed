"""polars DataFrames: written and read by polars itself through parquet, feather and csv."""

from __future__ import annotations

import datetime
import os

import pytest

pl = pytest.importorskip("polars")
from polars.testing import assert_frame_equal  # noqa: E402

import s3bp  # noqa: E402
from s3bp.errors import InvalidArgumentError, UnknownFormatError  # noqa: E402


def frame():
    return pl.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, None, 2.5],
            "b": [True, False, None],
            "s": ["x", "y", "z"],
            "t": pl.Series([datetime.datetime(2024, 1, 1, 10), datetime.datetime(2024, 6, 1, 11, 30), None]).dt.replace_time_zone("Europe/Berlin"),
            "c": pl.Series(["lo", "hi", "lo"], dtype=pl.Categorical),
        }
    )


def cold_load(path, bucket, **kwargs):
    os.remove(path)
    return s3bp.load_dataframe(path, bucket, backend="polars", **kwargs)


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_arrow_formats_round_trip_exactly(tmp_path, bucket, suffix):
    path = tmp_path / f"df{suffix}"
    df = frame()
    s3bp.save_dataframe(df, path, bucket, wait=True)
    assert_frame_equal(cold_load(path, bucket), df)
    assert_frame_equal(s3bp.load_dataframe(path, bucket, backend="polars"), df)  # warm


def test_csv_round_trips_values(tmp_path, bucket, raw):
    path = tmp_path / "df.csv"
    df = frame().select("i", "f", "b", "s")
    s3bp.save_dataframe(df, path, bucket, wait=True)
    assert raw.get_object(Bucket=bucket, Key="df.csv")["Body"].read().decode().splitlines()[0] == "i,f,b,s"
    assert_frame_equal(cold_load(path, bucket), df)


def test_reader_kwargs_reach_polars(tmp_path, bucket):
    path = tmp_path / "df.parquet"
    s3bp.save_dataframe(frame(), path, bucket, wait=True)
    assert cold_load(path, bucket, columns=["s"]).columns == ["s"]


def test_a_polars_file_reads_in_pandas_too(tmp_path, bucket):
    pytest.importorskip("pandas")
    path = tmp_path / "df.parquet"
    s3bp.save_dataframe(frame(), path, bucket, wait=True)
    assert list(s3bp.load_dataframe(path, bucket)["s"]) == ["x", "y", "z"]


def test_formats_without_a_polars_engine_and_bad_backends(tmp_path, bucket):
    with pytest.raises(UnknownFormatError, match="no polars backend"):
        s3bp.save_dataframe(frame(), tmp_path / "df.xlsx", bucket)
    with pytest.raises(UnknownFormatError, match="no polars backend"):
        s3bp.load_dataframe(tmp_path / "df.pkl", bucket, backend="polars")
    with pytest.raises(InvalidArgumentError, match="backend"):
        s3bp.load_dataframe(tmp_path / "df.csv", bucket, backend="spark")
    assert os.listdir(tmp_path) == []


def test_missing_polars_names_the_extra(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['polars'] = None\n"
        "from s3bp.frames import polars_function\n"
        "try:\n    polars_function('parquet', 'deserializer')\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.startswith("MissingDependencyError") and "pip install 's3bp[polars]'" in out
