"""How many requests a load costs, and which version it returns, on one or two machines."""

from __future__ import annotations

import os
import pathlib

import s3bp


def test_warm_load_is_one_conditional_get(tmp_path, bucket, requests_log):
    path = tmp_path / "d.pkl"
    s3bp.save_object({"a": 1}, path, bucket, wait=True)
    requests_log.clear()
    for _ in range(3):
        assert s3bp.load_object(path, bucket) == {"a": 1}
    assert requests_log.operations == ["GetObject"] * 3
    assert s3bp.get_default_store().settings()["max_age"] == 0


def test_load_right_after_background_save_sends_nothing(tmp_path, bucket, proxy, requests_log):
    path = tmp_path / "d.pkl"
    proxy.script("delay:1.5")  # the upload is still in flight while we load
    fut = s3bp.save_object({"a": 2}, path, bucket)
    assert s3bp.load_object(path, bucket) == {"a": 2}
    assert not fut.done()
    s3bp.flush()
    assert [method for method, _ in proxy.requests] == ["PUT"]  # every process's: the upload (by the uploader child), nothing else
    assert requests_log.operations == []  # the load sent nothing


def test_load_after_completed_save_downloads_no_body(tmp_path, bucket, raw, requests_log):
    path = tmp_path / "d.pkl"
    s3bp.save_object(list(range(100)), path, bucket)
    s3bp.flush()
    requests_log.clear()
    assert s3bp.load_object(path, bucket) == list(range(100))
    assert requests_log.operations == ["GetObject"]


def test_cold_load_is_one_get(tmp_path, bucket, raw, requests_log):
    raw.put_object(Bucket=bucket, Key="c.pkl", Body=__import__("pickle").dumps("cold"))
    assert s3bp.load_object(tmp_path / "c.pkl", bucket) == "cold"
    assert requests_log.operations == ["GetObject"]
    requests_log.clear()
    assert s3bp.load_object(tmp_path / "c.pkl", bucket) == "cold"
    assert requests_log.operations == ["GetObject"]  # answered 304 from the sync record


def test_file_without_record_is_checked_by_modification_time(tmp_path, bucket, raw, requests_log):
    import pickle

    raw.put_object(Bucket=bucket, Key="m.pkl", Body=pickle.dumps("remote"))
    remote_time = raw.head_object(Bucket=bucket, Key="m.pkl")["LastModified"].timestamp()
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps("local, newer"))
    os.utime(path, (remote_time + 5, remote_time + 5))
    assert s3bp.load_object(path, bucket) == "local, newer"
    assert requests_log.operations == ["GetObject"]
    os.utime(path, (remote_time - 5, remote_time - 5))
    assert s3bp.load_object(path, bucket) == "remote"


def test_local_edit_after_sync_is_loaded_as_is(tmp_path, bucket, raw, requests_log):
    import pickle

    path = tmp_path / "e.pkl"
    s3bp.save_object("synced", path, bucket, wait=True)
    remote_time = raw.head_object(Bucket=bucket, Key="e.pkl")["LastModified"].timestamp()
    path.write_bytes(pickle.dumps("edited locally"))
    os.utime(path, (remote_time + 60, remote_time + 60))
    requests_log.clear()
    assert s3bp.load_object(path, bucket) == "edited locally"
    assert requests_log.operations == ["GetObject"]


def test_max_age_trusts_a_recent_check(tmp_path, bucket, requests_log):
    path = tmp_path / "t.pkl"
    s3bp.save_object(7, path, bucket, wait=True)
    requests_log.clear()
    assert s3bp.load_object(path, bucket, max_age=3600) == 7
    assert s3bp.load_object(path, bucket, max_age=3600) == 7
    assert len(requests_log) == 0  # the upload just verified it
    assert s3bp.load_object(path, bucket) == 7
    assert len(requests_log) == 1


def test_two_machines_share_a_bucket(bucket, machine):
    a = machine("a")
    b = machine("b")
    a.store.save_object({"v": 1}, a.dir / "shared.pkl", bucket, wait=True)

    assert b.store.load_object(b.dir / "shared.pkl", bucket) == {"v": 1}
    assert b.log.operations == ["GetObject"]

    a.store.save_object({"v": 2}, a.dir / "shared.pkl", bucket, wait=True)
    b.log.clear()
    assert b.store.load_object(b.dir / "shared.pkl", bucket) == {"v": 2}
    assert b.log.operations == ["GetObject"]  # one conditional GET answered with the new body

    b.log.clear()
    assert b.store.load_object(b.dir / "shared.pkl", bucket) == {"v": 2}
    assert b.log.operations == ["GetObject"]  # 304: B's cached copy is current, no body
    assert pathlib.Path(b.dir / "shared.pkl").read_bytes() == pathlib.Path(a.dir / "shared.pkl").read_bytes()


def test_other_machines_write_replaces_unedited_copy_even_within_the_same_second(bucket, machine):
    a = machine("a")
    b = machine("b")
    for v in range(3):
        a.store.save_object(v, a.dir / "fast.pkl", bucket, wait=True)
        assert b.store.load_object(b.dir / "fast.pkl", bucket) == v
