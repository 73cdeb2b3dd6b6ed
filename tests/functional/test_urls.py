"""``s3://bucket/key`` wherever a path goes: the copy lives in the managed cache and behaves as a mapped path's file."""

from __future__ import annotations

import os
import pickle

import pytest

import s3bp
from s3bp.cache import endpoint_id
from s3bp.errors import ConflictError, InvalidArgumentError, InvalidBucketNameError, InvalidPathError

from ..support import raw_client, unpickled


def test_round_trip_of_an_object_and_a_dataframe(bucket, raw, endpoint, isolated):
    pd = pytest.importorskip("pandas")
    url = f"s3://{bucket}/team/names.pkl"
    s3bp.save_object({"Dan": 8382}, url, wait=True)
    assert unpickled(raw, bucket, "team/names.pkl") == {"Dan": 8382}
    copy = s3bp.local_path(url)
    assert copy == os.path.join(isolated / "cache", endpoint_id(endpoint), bucket, "team", "names.pkl")
    assert os.path.isfile(copy)
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    s3bp.save_dataframe(df, f"s3://{bucket}/frames/t.parquet", wait=True)
    s3bp.set_default_store(None).close()  # a new process of this machine
    os.unlink(copy)
    os.unlink(s3bp.local_path(f"s3://{bucket}/frames/t.parquet"))
    assert s3bp.load_object(url) == {"Dan": 8382}
    pd.testing.assert_frame_equal(s3bp.load_dataframe(f"s3://{bucket}/frames/t.parquet"), df)
    assert pd.read_parquet(s3bp.local_path(f"s3://{bucket}/frames/t.parquet")).equals(df)


def test_upload_and_download_file_take_urls(bucket, raw):
    raw.put_object(Bucket=bucket, Key="in/raw.bin", Body=b"raw bytes")
    path = s3bp.download_file(f"s3://{bucket}/in/raw.bin")
    assert path == s3bp.local_path(f"s3://{bucket}/in/raw.bin") and open(path, "rb").read() == b"raw bytes"
    with open(path, "ab") as f:
        f.write(b", edited")
    s3bp.upload_file(f"s3://{bucket}/in/raw.bin", wait=True)
    assert raw.get_object(Bucket=bucket, Key="in/raw.bin")["Body"].read() == b"raw bytes, edited"


def test_a_warm_url_load_is_one_conditional_get(bucket, requests_log):
    url = f"s3://{bucket}/d.pkl"
    s3bp.save_object({"a": 1}, url, wait=True)
    requests_log.clear()
    for _ in range(3):
        assert s3bp.load_object(url) == {"a": 1}
    assert requests_log.operations == ["GetObject"] * 3


def test_a_second_machines_newer_save_is_seen_with_one_request(machine, bucket):
    a, b = machine("a"), machine("b")
    url = f"s3://{bucket}/shared.pkl"
    a.store.save_object("v1", url, wait=True)
    assert b.store.load_object(url) == "v1"
    a.store.save_object("v2", url, wait=True)
    b.log.clear()
    assert b.store.load_object(url) == "v2"
    assert b.log.operations == ["GetObject"]
    assert a.store.local_path(url) != b.store.local_path(url)  # each machine has its own cache


def test_a_load_right_after_a_background_save_sends_nothing(bucket, proxy, requests_log):
    url = f"s3://{bucket}/d.pkl"
    proxy.script("delay:1.5")  # the upload is still in flight while we load
    fut = s3bp.save_object({"a": 2}, url)
    assert s3bp.load_object(url) == {"a": 2}
    assert not fut.done()
    s3bp.flush()
    assert [method for method, _ in proxy.requests] == ["PUT"]  # every process's: the upload (by the uploader child), nothing else
    assert requests_log.operations == []  # the load sent nothing


def test_a_conflict_on_a_url_is_settled_like_a_paths(machine, bucket):
    a, b = machine("a"), machine("b")
    url = f"s3://{bucket}/c.pkl"
    a.store.save_object("base", url, wait=True)
    assert b.store.load_object(url) == "base"
    a.store.save_object("theirs", url, wait=True)
    with pytest.raises(ConflictError):
        b.store.save_object("mine", url, wait=True)
    b.store.resolve_conflict(url, keep="remote")
    assert b.store.load_object(url) == "theirs"
    assert pickle.loads(open(b.store.local_path(url) + ".s3bp-local", "rb").read()) == "mine"
    # the path the conflict message names resolves to the URL's object too
    assert b.store.resolve(b.store.local_path(url)).key == "c.pkl"


@pytest.mark.parametrize(
    "url",
    ["s3://{b}/../escape.pkl", "s3://{b}/a/../../x", "s3://{b}/a//b", "s3://{b}//abs", "s3://{b}/a\\b", "s3://{b}/./x",
     "s3://{b}/", "s3://{b}", "s3://{b}/dir/", "s3://{b}/a/.s3bp-123.abc-x", "s3://{b}/nul\0"],
)  # fmt: skip
def test_hostile_keys_are_refused_before_anything(bucket, requests_log, isolated, url):
    url = url.format(b=bucket)
    for call in (lambda: s3bp.load_object(url), lambda: s3bp.save_object(1, url), lambda: s3bp.local_path(url)):
        with pytest.raises(InvalidPathError) as info:
            call()
        assert bucket in str(info.value)
    assert requests_log.operations == []
    assert not (isolated / "cache").exists() or not any(p.is_file() for p in (isolated / "cache").rglob("*"))


def test_bad_buckets_and_arguments(bucket):
    with pytest.raises(InvalidBucketNameError):
        s3bp.load_object("s3://Not_A_Bucket/k")
    with pytest.raises(InvalidPathError, match="no bucket"):
        s3bp.load_object("s3:///k")
    with pytest.raises(InvalidArgumentError, match="other-bucket"):
        s3bp.load_object(f"s3://{bucket}/k", "other-bucket")
    with pytest.raises(InvalidArgumentError, match="namekey"):
        s3bp.load_object(f"s3://{bucket}/k", namekey=True)


def test_each_endpoint_has_its_own_copy_and_record(bucket, endpoint, proxy, tmp_path, raw):
    url = f"s3://{bucket}/e.pkl"
    direct = s3bp.Store(config=tmp_path / "direct.yml", cache_dir=tmp_path / "cache")
    direct.config.update(lambda d: d.update(endpoint_url=endpoint))
    with direct:
        direct.save_object("one", url, wait=True)
        via_proxy = s3bp.load_object(url)  # the default store goes through the proxy: another endpoint
        assert via_proxy == "one" and s3bp.local_path(url) != direct.local_path(url)
        raw.put_object(Bucket=bucket, Key="e.pkl", Body=pickle.dumps("two"))
        assert direct.load_object(url) == "two"
        assert s3bp.load_object(url) == "two"


def test_a_url_folder_pair_pull_then_push_back(bucket, raw, tmp_path):
    for key, text in {"proj/a.txt": "a", "proj/sub/b.txt": "b", "other/c.txt": "c"}.items():
        raw.put_object(Bucket=bucket, Key=key, Body=text.encode())
    raw.put_object(Bucket=bucket, Key="proj/../evil.txt", Body=b"x")
    here = tmp_path / "here"
    report = s3bp.pull(f"s3://{bucket}/proj/", here)
    assert report.ok and sorted(os.path.relpath(p, here) for p in report.downloaded) == ["a.txt", os.path.join("sub", "b.txt")]
    assert (here / "sub" / "b.txt").read_text() == "b" and not (tmp_path / "evil.txt").exists()
    assert any("proj/../evil.txt" in p for p, _ in report.skipped)
    (here / "a.txt").write_text("a, edited")
    (here / "new.txt").write_text("new")
    report = s3bp.push(here, f"s3://{bucket}/proj")  # either order, with or without the trailing slash
    assert sorted(os.path.basename(p) for p in report.uploaded) == ["a.txt", "new.txt"]
    assert raw.get_object(Bucket=bucket, Key="proj/a.txt")["Body"].read() == b"a, edited"
    assert raw.get_object(Bucket=bucket, Key="proj/new.txt")["Body"].read() == b"new"
    assert s3bp.sync(f"s3://{bucket}/proj/", here).uploaded == []
    with pytest.raises(InvalidPathError):
        s3bp.pull(f"s3://{bucket}/proj/", f"s3://{bucket}/x/")
    with pytest.raises(InvalidPathError, match="local directory"):
        s3bp.pull(f"s3://{bucket}/proj/")


def test_list_objects_without_a_mapping(bucket, raw):
    raw.put_object(Bucket=bucket, Key="t/one.pkl", Body=pickle.dumps(1))
    raw.put_object(Bucket=bucket, Key="t/two.pkl", Body=pickle.dumps(2))
    raw.put_object(Bucket=bucket, Key=".s3bp/versions/t/one.pkl", Body=b"s3bp's own")
    assert s3bp.load_object(f"s3://{bucket}/t/one.pkl") == 1
    listed = {o.key: o for o in s3bp.list_objects(f"s3://{bucket}")}
    assert sorted(listed) == ["t/one.pkl", "t/two.pkl"]
    assert listed["t/one.pkl"].state.value == "same" and listed["t/one.pkl"].local_path == s3bp.local_path(f"s3://{bucket}/t/one.pkl")
    assert listed["t/two.pkl"].state is None and listed["t/two.pkl"].size == len(pickle.dumps(2))


def test_a_url_in_another_stores_cache_dir(bucket, endpoint, tmp_path):
    with s3bp.Store(config=tmp_path / "c.yml", cache_dir=tmp_path / "mine") as store:
        store.config.update(lambda d: d.update(endpoint_url=endpoint))
        store.save_object("x", f"s3://{bucket}/k.pkl", wait=True)
        assert store.local_path(f"s3://{bucket}/k.pkl").startswith(str(tmp_path / "mine") + os.sep)
    assert pickle.loads(raw_client(endpoint).get_object(Bucket=bucket, Key="k.pkl")["Body"].read()) == "x"
