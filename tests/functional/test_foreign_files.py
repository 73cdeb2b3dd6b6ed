"""DataFrame files s3bp did not write (pandas', a spreadsheet's, s3bp 0.1.8's) load as their tools would read them."""

from __future__ import annotations

import os

import pytest

pd = pytest.importorskip("pandas")
from pandas.testing import assert_frame_equal  # noqa: E402

import s3bp  # noqa: E402

FOREIGN_CSV = {
    "pandas without index": lambda df, p: df.to_csv(p, index=False),
    "quoted everywhere": lambda df, p: open(p, "w").write('"id","name"\n"1","a"\n"2","b"\n'),
    "a first column named like an index": lambda df, p: open(p, "w").write("key,name\nx,a\ny,b\n"),
}


@pytest.mark.parametrize("how", FOREIGN_CSV)
def test_a_foreign_csv_from_s3_reads_as_pandas_reads_it(tmp_path, bucket, raw, how):
    df = pd.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    made = tmp_path / "made.csv"
    FOREIGN_CSV[how](df, made)
    raw.put_object(Bucket=bucket, Key="theirs.csv", Body=made.read_bytes())  # uploaded by another tool
    got = s3bp.load_dataframe(tmp_path / "theirs.csv", bucket)
    assert_frame_equal(got, pd.read_csv(made))
    assert isinstance(got.index, pd.RangeIndex)


def test_a_foreign_gzipped_csv_reads_as_pandas_reads_it(tmp_path, bucket):
    path = tmp_path / "theirs.csv.gz"
    pd.DataFrame({"id": [1, 2], "v": [0.5, 1.5]}).to_csv(path, index=False)
    assert_frame_equal(s3bp.load_dataframe(path, bucket), pd.read_csv(path))


@pytest.mark.parametrize("name", [None, "key", "a,b"])
def test_an_s3bp_csv_keeps_its_index_and_others_read_plain_values(tmp_path, bucket, name):
    df = pd.DataFrame({"i": [1, 2], "s": ["x", "y"]}, index=pd.Index(["a", "b"], name=name))
    path = tmp_path / "ours.csv"
    s3bp.save_dataframe(df, path, bucket, wait=True)
    os.remove(path)
    assert_frame_equal(s3bp.load_dataframe(path, bucket), df)
    plain = pd.read_csv(path)  # any CSV reader sees the index as an ordinary first column
    assert list(plain.columns) == [name or "Unnamed: 0", "i", "s"] and list(plain.iloc[:, 0]) == ["a", "b"]


def test_a_csv_written_by_s3bp_0_1_8_keeps_its_index(tmp_path, bucket):
    # 0.1.8's CSV serializer was `df.to_csv(filepath)`: an unnamed index under an empty first header cell
    df = pd.DataFrame({"A": [1, 6], "B": [3, 2]}, index=[1, 2])
    path = tmp_path / "weasels.csv"
    df.to_csv(path)
    assert path.read_text().startswith(",A,B")
    assert_frame_equal(s3bp.load_dataframe(path, bucket), df)


def test_index_col_given_decides(tmp_path, bucket):
    path = tmp_path / "theirs.csv"
    path.write_text("key,name\nx,a\ny,b\n")
    assert list(s3bp.load_dataframe(path, bucket, index_col=0).index) == ["x", "y"]
    path.write_text(",name\nx,a\n")
    assert list(s3bp.load_dataframe(path, bucket, index_col=None).columns) == ["Unnamed: 0", "name"]


def test_excel_foreign_ours_and_old(tmp_path, bucket):
    pytest.importorskip("openpyxl")
    df = pd.DataFrame({"i": [1, 2], "s": ["x", "y"]}, index=pd.Index(["a", "b"], name="key"))
    theirs = tmp_path / "theirs.xlsx"
    df.reset_index().to_excel(theirs, index=False)  # a sheet whose first column is data
    assert_frame_equal(s3bp.load_dataframe(theirs, bucket), pd.read_excel(theirs))
    ours = tmp_path / "ours.xlsx"
    s3bp.save_dataframe(df, ours, bucket, wait=True)
    os.remove(ours)
    assert_frame_equal(s3bp.load_dataframe(ours, bucket), df)
    old = tmp_path / "old.xlsx"
    df.rename_axis(None).to_excel(old)  # as 0.1.8 wrote it: `df.to_excel(filepath)`, top-left cell empty
    assert_frame_equal(s3bp.load_dataframe(old, bucket), df.rename_axis(None))
