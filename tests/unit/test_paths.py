"""Path -> (bucket, key) rules, without S3."""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from s3bp import paths
from s3bp.errors import InvalidBucketNameError, InvalidPathError, NoBucketError
from s3bp.paths import check_bucket_name, contains, normalize, resolve
from s3bp.tree import key_parts


def test_base_name_key_with_explicit_bucket():
    r = resolve("/x/y/file.pkl", {}, None, bucket="my-bucket")
    assert (r.bucket, r.key, r.base_dir) == ("my-bucket", "file.pkl", None)


def test_base_dir_key_includes_the_dirs_own_name():
    r = resolve("/home/u/Desktop/labels/user_generated/skunks.csv", {"/home/u/Desktop/labels": "lab"}, None)
    assert (r.bucket, r.key) == ("lab", "labels/user_generated/skunks.csv")


def test_whole_components_only():
    assert not contains("/x/data", "/x/database/f")
    assert contains("/x/data", "/x/data/f")
    r = resolve("/x/database/f", {"/x/data": "data-bucket"}, "dflt")
    assert (r.bucket, r.key) == ("dflt", "f")


def test_deepest_base_dir_wins_whatever_the_order():
    maps = {"/a": "outer", "/a/b/c": "inner", "/a/b": "middle"}
    assert resolve("/a/b/c/d/f", maps, None).bucket == "inner"
    assert resolve("/a/b/c/d/f", maps, None).key == "c/d/f"
    assert resolve("/a/b/x", dict(reversed(list(maps.items()))), None).bucket == "middle"


def test_explicit_bucket_uses_base_dir_key_only_for_that_buckets_mapping():
    maps = {"/a": "one", "/a/b": "two"}
    assert resolve("/a/b/f", maps, None, bucket="one").key == "a/b/f"
    assert resolve("/a/b/f", maps, None, bucket="two").key == "b/f"
    assert resolve("/a/b/f", maps, None, bucket="three").key == "f"


def test_namekey_forces_the_file_name():
    assert resolve("/a/b/f", {"/a": "one"}, None, namekey=True).key == "f"


def test_default_bucket_then_error_naming_the_three_ways():
    assert resolve("/q/f", {}, "dflt").bucket == "dflt"
    with pytest.raises(NoBucketError, match="bucket_name=.*map_base_directory_to_bucket.*set_default_bucket"):
        resolve("/q/f", {}, None)


def test_tilde_and_pathlike(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert normalize("~/a/../b") == str(tmp_path / "b")
    r = resolve(tmp_path / "m" / "f", {str(tmp_path / "m"): "mb1"}, None)
    assert r.key == "m/f"


@pytest.mark.parametrize("bad", [None, "", "   ", 3, b"/bytes"])
def test_bad_paths(bad):
    with pytest.raises(InvalidPathError):
        normalize(bad)


@pytest.mark.parametrize("name", ["ab", "UPPER", "-lead", "trail-", "a..b", "192.168.1.1", "a" * 64, "under_score"])
def test_invalid_bucket_names(name):
    with pytest.raises(InvalidBucketNameError, match="not a valid S3 bucket name"):
        check_bucket_name(name)


def test_overlong_and_unencodable_keys():
    with pytest.raises(InvalidPathError, match="1024"):
        resolve("/x/" + "k" * 1100, {}, "dflt")
    with pytest.raises(InvalidPathError, match="UTF-8"):
        resolve("/x/bad\udcff", {}, "dflt")


segment = st.text(alphabet="abcxyz_-.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


@given(
    bases=st.lists(st.lists(segment, min_size=1, max_size=3), min_size=1, max_size=5),
    tail=st.lists(segment, min_size=1, max_size=4),
    pick=st.integers(min_value=0, max_value=4),
)
def test_key_lies_under_the_deepest_containing_base_dir(bases, tail, pick):
    mappings = {"/root/" + "/".join(b): f"bucket-{i:03d}" for i, b in enumerate(bases)}
    base = "/root/" + "/".join(bases[pick % len(bases)])
    path = base + "/" + "/".join(tail)
    assume(path not in mappings)  # a mapped directory is not a file
    r = resolve(path, mappings, None)
    containing = [d for d in mappings if contains(d, path)]
    deepest = max(containing, key=len)
    assert r.base_dir == deepest and r.bucket == mappings[deepest]
    assert r.key == os.path.basename(deepest) + "/" + os.path.relpath(path, deepest)
    assert ".." not in r.key.split("/") and "" not in r.key.split("/")
    # and a pull of that key lands back on the same path
    name = os.path.basename(deepest) + "/"
    assert os.path.join(deepest, *key_parts(r.key, name)) == path


def test_directory_of_inverts_base_dir_keys_and_the_deepest_wins():
    from s3bp.paths import directory_of

    mappings = {"/x/data": "b", "/x/data/sub": "b", "/y/other": "c"}
    assert directory_of("b", "data/a/b", mappings) == "/x/data/a/b"
    assert directory_of("b", "sub/k", mappings) == "/x/data/sub/k"
    assert directory_of("c", "other", mappings) == "/y/other"
    assert directory_of("b", "elsewhere/k", mappings) is None and directory_of("z", "data", mappings) is None


def test_urls_split_into_bucket_and_safe_key():
    from s3bp.errors import InvalidArgumentError

    assert paths.is_url("s3://b/k") and paths.is_url("S3://b/k") and not paths.is_url(pathlib.Path("s3://b/k"))
    assert paths.split_url("s3://bucket/a/b.pkl") == ("bucket", "a/b.pkl")
    assert paths.split_url("s3://bucket/a/b/", prefix=True) == ("bucket", "a/b/")
    assert paths.split_url("s3://bucket", prefix=True) == ("bucket", "")
    for bad in ("s3://bucket/../x", "s3://bucket/a//b", "s3://bucket//a", "s3://bucket/a\\b", "s3://bucket/", "s3://bucket/a/",
                "s3://bucket/./a", "s3://bucket/.s3bp-1.abc-x", "s3://", "s3:///k"):  # fmt: skip
        with pytest.raises(InvalidPathError):
            paths.split_url(bad)
    with pytest.raises(InvalidPathError):
        paths.split_url("s3://bucket/a/../b/", prefix=True)
    res = paths.resolve_url("s3://bucket/a/b.pkl", "/c/ep", "http://ep")
    assert (res.path, res.bucket, res.key, res.base_dir, res.endpoint) == ("/c/ep/bucket/a/b.pkl", "bucket", "a/b.pkl", None, "http://ep")
    with pytest.raises(InvalidArgumentError):
        paths.resolve_url("s3://bucket/a", "/c/ep", "http://ep", bucket="other")
    assert paths.url_of_copy("/c/ep/bucket/a/b.pkl", "/c/ep") == "s3://bucket/a/b.pkl"
    for bad in ("/c/ep/bucket", "/c/other/bucket/k", "/c/ep/.versions/b/v/k"):
        with pytest.raises(InvalidPathError):
            paths.url_of_copy(bad, "/c/ep")


def test_folder_pairs_in_either_order():
    assert paths.folder_pair("s3://bkt/p/", "/here") == ("/here", "bkt", "p/")
    assert paths.folder_pair("/here", "s3://bkt/p") == ("/here", "bkt", "p/")
    for first, second in (("/a", "/b"), ("s3://bkt/p", "s3://b/q")):
        with pytest.raises(InvalidPathError):
            paths.folder_pair(first, second)
    res = paths.resolve_in_pair("/here/sub/f.txt", "/here", "b", "p/")
    assert (res.bucket, res.key, res.base_dir) == ("b", "p/sub/f.txt", "/here")
    assert paths.resolve_in_pair("/here/f.txt", "/here", "b", "").key == "f.txt"
    with pytest.raises(InvalidPathError):
        paths.resolve_in_pair("/elsewhere/f.txt", "/here", "b", "p/")
