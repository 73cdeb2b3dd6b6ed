"""The 0.1.x API against a real S3 endpoint: round trips, buckets and keys."""

from __future__ import annotations

import os
import pathlib

import pytest

import s3bp
from s3bp.errors import NoBucketError, ObjectNotFoundError

from ..support import body


def test_save_then_load_round_trip(tmp_path, bucket, raw):
    path = tmp_path / "data" / "name_to_id_map"
    fut = s3bp.save_object({"Dan": 8382, "Alon": 2993}, path, bucket, wait=True)
    assert fut.done() and fut.result() == "name_to_id_map"
    assert raw.head_object(Bucket=bucket, Key="name_to_id_map")["ContentLength"] == path.stat().st_size
    assert s3bp.load_object(path, bucket) == {"Dan": 8382, "Alon": 2993}


def test_background_save_is_uploaded_by_flush(tmp_path, bucket, raw):
    fut = s3bp.save_object([1, 2, 3], tmp_path / "a.pkl", bucket)
    s3bp.flush()
    assert fut.done() and fut.exception() is None
    os.remove(tmp_path / "a.pkl")
    assert s3bp.load_object(tmp_path / "a.pkl", bucket) == [1, 2, 3]


def test_load_downloads_missing_file_creating_directories(tmp_path, bucket):
    s3bp.save_object("hello", tmp_path / "x.pkl", bucket, wait=True)
    target = tmp_path / "deep" / "er" / "x.pkl"
    assert s3bp.load_object(target, bucket) == "hello"
    assert target.is_file()


def test_download_sets_mtime_to_last_modified(tmp_path, bucket, raw):
    raw.put_object(Bucket=bucket, Key="f.bin", Body=b"abc")
    last_modified = raw.head_object(Bucket=bucket, Key="f.bin")["LastModified"].timestamp()
    path = s3bp.download_file(tmp_path / "f.bin", bucket)
    assert pathlib.Path(path).read_bytes() == b"abc"
    assert os.stat(path).st_mtime == last_modified


def test_missing_everywhere_raises_object_not_found(tmp_path, bucket):
    with pytest.raises(ObjectNotFoundError, match="nothing.pkl") as info:
        s3bp.load_object(tmp_path / "nothing.pkl", bucket)
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "nothing.pkl").exists()


def test_custom_serializer_and_deserializer(tmp_path, bucket, raw):
    def write(obj, filepath):
        pathlib.Path(filepath).write_text(",".join(obj))

    def read(filepath):
        return pathlib.Path(filepath).read_text().split(",")

    s3bp.save_object(["a", "b"], tmp_path / "l.txt", bucket, serializer=write, wait=True)
    assert body(raw, bucket, "l.txt") == b"a,b"
    os.remove(tmp_path / "l.txt")
    assert s3bp.load_object(tmp_path / "l.txt", bucket, deserializer=read) == ["a", "b"]


def test_format_names_work_as_serializers(tmp_path, bucket, raw):
    s3bp.save_object({"a": [1, 2]}, tmp_path / "d.json", bucket, serializer="json", wait=True)
    assert body(raw, bucket, "d.json") == b'{"a": [1, 2]}'
    assert s3bp.load_object(tmp_path / "d.json", bucket, deserializer="JSON") == {"a": [1, 2]}


def test_serializer_keeps_target_suffix(tmp_path, bucket):
    seen = []
    s3bp.save_object(1, tmp_path / "t.csv.gz", bucket, serializer=lambda o, p: (seen.append(p), open(p, "w").close()), wait=True)
    # a fresh path in a private directory beside the target, ending with the target's whole name (suffixes kept)
    assert os.path.basename(seen[0]) == "t.csv.gz" and os.path.dirname(os.path.dirname(seen[0])) == str(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["t.csv.gz"]  # and nothing left beside it


def test_a_serializer_may_create_its_path_exclusively_and_write_more_files(tmp_path, bucket):
    def exclusive_with_sidecar(obj, path):
        with open(path, "xb") as fh:  # h5py's "w-", numpy writers and friends refuse an existing file
            fh.write(obj)
        with open(path + ".idx", "w") as fh:  # a writer that leaves a file of its own beside
            fh.write("index")

    s3bp.save_object(b"payload", tmp_path / "x.bin", bucket, serializer=exclusive_with_sidecar, wait=True)
    assert (tmp_path / "x.bin").read_bytes() == b"payload" and sorted(os.listdir(tmp_path)) == ["x.bin"]


def test_raising_serializer_keeps_old_file_and_uploads_nothing(tmp_path, bucket, raw):
    path = tmp_path / "keep.pkl"
    s3bp.save_object("old", path, bucket, wait=True)
    before = path.read_bytes()

    def broken(obj, filepath):
        with open(filepath, "wb") as fh:
            fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(s3bp.S3bpError, match="disk full"):
        s3bp.save_object("new", path, bucket, serializer=broken, wait=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.pkl"]
    s3bp.flush()
    assert s3bp.load_object(path, bucket) == "old"
    assert body(raw, bucket, "keep.pkl") == before


def test_upload_file_and_download_file(tmp_path, bucket, raw):
    path = tmp_path / "notes.txt"
    path.write_text("v1")
    s3bp.upload_file(path, bucket, wait=True)
    assert body(raw, bucket, "notes.txt") == b"v1"
    path.unlink()
    assert s3bp.download_file(str(path), bucket) == str(path)
    assert path.read_text() == "v1"


def test_upload_file_reads_snapshot_not_later_edits(tmp_path, bucket, raw):
    path = tmp_path / "n.txt"
    path.write_text("first")
    s3bp.set_max_workers(1)
    fut = s3bp.upload_file(path, bucket)
    path.write_text("second, written right after")
    fut.result(timeout=30)
    assert body(raw, bucket, "n.txt") == b"first"


def test_upload_missing_file_raises(tmp_path, bucket):
    with pytest.raises(ObjectNotFoundError, match="nope.txt"):
        s3bp.upload_file(tmp_path / "nope.txt", bucket)


def test_default_bucket(tmp_path, bucket, raw):
    s3bp.set_default_bucket(bucket)
    s3bp.save_object(5, tmp_path / "five", wait=True)
    assert raw.head_object(Bucket=bucket, Key="five")
    assert s3bp.load_object(tmp_path / "five") == 5
    s3bp.unset_default_bucket()
    with pytest.raises(NoBucketError) as info:
        s3bp.load_object(tmp_path / "five")
    message = str(info.value)
    assert "bucket_name" in message and "map_base_directory_to_bucket" in message and "set_default_bucket" in message
    assert isinstance(info.value, ValueError)


def test_no_bucket_fails_before_writing_anything(tmp_path):
    with pytest.raises(NoBucketError):
        s3bp.save_object(1, tmp_path / "sub" / "f.pkl")
    assert not (tmp_path / "sub").exists()


def test_readme_base_directory_example(tmp_path, make_bucket, raw, monkeypatch):
    labels_bucket = make_bucket()
    home = pathlib.Path(os.environ["HOME"])
    (home / "Desktop" / "labels").mkdir(parents=True)
    s3bp.map_base_directory_to_bucket("~/Desktop/labels", labels_bucket)
    s3bp.save_object({"skunk": 1}, "~/Desktop/labels/user_generated/skunks.csv", wait=True)
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=labels_bucket)["Contents"]]
    assert keys == ["labels/user_generated/skunks.csv"]
    os.remove(home / "Desktop/labels/user_generated/skunks.csv")
    assert s3bp.load_object(home / "Desktop/labels/user_generated/skunks.csv") == {"skunk": 1}


def test_prefix_confusable_directories(tmp_path, make_bucket, raw):
    data_bucket, other = make_bucket(), make_bucket()
    s3bp.map_base_directory_to_bucket(tmp_path / "data", data_bucket)
    s3bp.set_default_bucket(other)
    s3bp.save_object(1, tmp_path / "database" / "f.pkl", wait=True)
    assert raw.list_objects_v2(Bucket=data_bucket)["KeyCount"] == 0
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=other)["Contents"]] == ["f.pkl"]


def test_explicit_bucket_overrides_mapping(tmp_path, make_bucket, raw):
    mapped, explicit = make_bucket(), make_bucket()
    s3bp.map_base_directory_to_bucket(tmp_path / "proj", mapped)
    s3bp.save_object(1, tmp_path / "proj" / "sub" / "f.pkl", explicit, wait=True)
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=explicit)["Contents"]] == ["f.pkl"]
    assert raw.list_objects_v2(Bucket=mapped)["KeyCount"] == 0


def test_namekey_forces_base_name(tmp_path, bucket, raw):
    s3bp.map_base_directory_to_bucket(tmp_path / "proj", bucket)
    s3bp.save_object(1, tmp_path / "proj" / "sub" / "f.pkl", namekey=True, wait=True)
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]] == ["f.pkl"]


def test_pathlike_everywhere(tmp_path, bucket):
    s3bp.map_base_directory_to_bucket(tmp_path / "p", bucket)
    s3bp.save_object(3, tmp_path / "p" / "x", wait=True)
    assert s3bp.load_object(tmp_path / "p" / "x") == 3
    s3bp.remove_base_directory_mapping(tmp_path / "p")
    with pytest.raises(NoBucketError):
        s3bp.load_object(tmp_path / "p" / "x")


def test_two_saves_of_one_key_leave_the_later(tmp_path, bucket, raw):
    path = tmp_path / "k.pkl"
    for i in range(5):
        s3bp.save_object(i, path, bucket)
    s3bp.flush()
    os.remove(path)
    assert s3bp.load_object(path, bucket) == 4


def test_set_max_workers_persists(tmp_path, bucket):
    s3bp.set_max_workers(3)
    assert s3bp.get_default_store().settings()["max_workers"] == 3
    with pytest.raises(ValueError):
        s3bp.set_max_workers(0)


def test_verbose_says_where_the_object_came_from(tmp_path, bucket, capsys):
    s3bp.save_object(1, tmp_path / "v.pkl", bucket, wait=True)
    s3bp.load_object(tmp_path / "v.pkl", bucket, verbose=True)
    assert "304" in capsys.readouterr().out
