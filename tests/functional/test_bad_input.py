"""Bad input: a clear error from s3bp.errors naming what is wrong, and nothing written or uploaded."""

from __future__ import annotations

import logging

import pytest

import s3bp
from s3bp.errors import InvalidBucketNameError, InvalidPathError, SerializationError


def nothing_in(raw, bucket):
    return "Contents" not in raw.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("bad", [None, "", "   ", 42, b"/tmp/x"])
def test_bad_paths(bucket, raw, bad):
    with pytest.raises(InvalidPathError, match="file path"):
        s3bp.save_object(1, bad, bucket)
    with pytest.raises(InvalidPathError):
        s3bp.load_object(bad, bucket)
    assert nothing_in(raw, bucket)


def test_a_directory_is_not_a_file(tmp_path, bucket, raw):
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidPathError, match=r"d: it is a directory"):
        s3bp.save_object(1, tmp_path / "d", bucket)
    assert nothing_in(raw, bucket) and (tmp_path / "d").is_dir()


def test_a_parent_that_is_a_file(tmp_path, bucket, raw):
    (tmp_path / "f").write_text("keep me")
    with pytest.raises(InvalidPathError, match="a parent of it is a file"):
        s3bp.save_object(1, tmp_path / "f" / "x.pkl", bucket)
    assert (tmp_path / "f").read_text() == "keep me" and nothing_in(raw, bucket)


@pytest.mark.parametrize("name", ["UPPER", "a", "has_underscore", "-dash", "a..b", "192.168.0.1", "x" * 64])
def test_invalid_bucket_names_before_any_request(tmp_path, name, requests_log):
    with pytest.raises(InvalidBucketNameError, match=repr(name)):
        s3bp.save_object(1, tmp_path / "x.pkl", name)
    assert len(requests_log) == 0 and not (tmp_path / "x.pkl").exists()


@pytest.mark.parametrize(
    "serializer, match",
    [
        ("not a format", "Unknown format"),
        (42, "must be a callable"),
        (lambda obj, path: None, "wrote no file"),
        (lambda obj, path: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_bad_serializers_leave_the_old_file(tmp_path, bucket, raw, serializer, match):
    path = tmp_path / "x.pkl"
    s3bp.save_object("old", path, bucket, wait=True)
    before = path.read_bytes()
    with pytest.raises(s3bp.S3bpError, match=match):
        s3bp.save_object("new", path, bucket, serializer=serializer, wait=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.pkl"]
    assert s3bp.load_object(path, bucket) == "old"


def test_a_deserializer_failing_on_a_corrupt_file_names_it_and_keeps_it(tmp_path, bucket):
    path = tmp_path / "x.pkl"
    s3bp.save_object("v", path, bucket, wait=True)
    path.write_bytes(b"not a pickle")
    with pytest.raises(SerializationError, match=str(path)):
        s3bp.load_object(path, bucket)
    assert path.read_bytes() == b"not a pickle"


@pytest.mark.parametrize("target", ["/", "file"])
def test_mapping_the_root_or_a_file_is_refused(tmp_path, target):
    directory = "/" if target == "/" else tmp_path / "file.txt"
    if target == "file":
        directory.write_text("x")
    with pytest.raises(InvalidPathError, match="Cannot map"):
        s3bp.map_base_directory_to_bucket(directory, "some-bucket")
    assert s3bp.get_default_store().settings()["base_dir_to_bucket_map"] == {}


def test_mapping_a_dir_twice_keeps_the_last_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="s3bp")
    s3bp.map_base_directory_to_bucket(tmp_path / "d", "first-bucket")
    s3bp.map_base_directory_to_bucket(tmp_path / "d", "second-bucket")
    assert s3bp.get_default_store().settings()["base_dir_to_bucket_map"] == {str(tmp_path / "d"): "second-bucket"}
    assert "first-bucket" in caplog.text and "second-bucket" in caplog.text


def test_overlong_key(tmp_path, bucket, raw):
    with pytest.raises(InvalidPathError, match="over S3's limit of 1024"):
        s3bp.save_object(1, tmp_path / ("x" * 1100), bucket)
    assert nothing_in(raw, bucket)


def test_a_broken_config_file_is_named_and_left_alone(tmp_path, bucket, monkeypatch):
    import os

    cfg = os.environ["S3BP_CONFIG"]
    os.makedirs(os.path.dirname(cfg), exist_ok=True)
    with open(cfg, "w") as f:
        f.write("max_workers: lots\n")
    s3bp.set_default_store(None)
    with pytest.raises(s3bp.errors.ConfigError, match="'max_workers'") as info:
        s3bp.save_object(1, tmp_path / "x.pkl", bucket)
    assert cfg in str(info.value)
    with pytest.raises(s3bp.errors.ConfigError):
        s3bp.set_default_bucket("other-bucket")
    assert open(cfg).read() == "max_workers: lots\n"
