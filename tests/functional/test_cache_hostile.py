"""The managed cache and ``s3://`` URLs under a hostile user: killed processes, odd cache directories, hostile keys.

Each test here failed before the fix it names: the cache stays bounded, nothing
is lost, and every refusal is an s3bp error naming the URL or path.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import subprocess

import pytest
import yaml

import s3bp
from s3bp.cache import endpoint_id
from s3bp.errors import ConfigError, InvalidArgumentError, InvalidPathError

from .test_local_files import _DIE_ON_SECOND_GET, PROBE, _run_killed
from .test_state_faults import _mount, _unmount


def _debris(root) -> list[str]:
    """s3bp's temp files and directories anywhere under ``root``."""
    return sorted(os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if n.startswith(".s3bp-"))


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_load_killed_mid_download_leaves_nothing_that_prune_does_not_remove(tmp_path, bucket, raw, isolated):
    blob = pickle.dumps(os.urandom(3 * PROBE))
    raw.put_object(Bucket=bucket, Key="deep/big.pkl", Body=blob)
    url = f"s3://{bucket}/deep/big.pkl"
    _run_killed(_DIE_ON_SECOND_GET + f"\ns3bp.load_object({url!r})\n", tmp_path)
    cache = isolated / "cache"
    assert _debris(cache), "the killed load should have left its temp file in the cache"
    assert s3bp.cache_info().files == 0
    s3bp.cache_clear()  # nobody loads that URL again: the cache's own walk must take the partial download away
    assert _debris(cache) == []
    assert s3bp.load_object(url) == pickle.loads(blob)


def test_a_relative_cache_dir_stays_where_it_was_after_a_chdir(tmp_path, bucket, proxy, monkeypatch):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    monkeypatch.setenv("S3BP_CACHE_DIR", "relcache")
    s3bp.set_default_store(None)
    url = f"s3://{bucket}/x.pkl"
    s3bp.save_object("v1", url, wait=True)
    copy = s3bp.local_path(url)
    proxy.script("delay:1.5")  # the next upload is still in flight when we load
    s3bp.save_object("v2", url)
    monkeypatch.chdir(tmp_path / "two")  # a notebook changes directory
    assert s3bp.local_path(url) == copy
    assert s3bp.load_object(url) == "v2"  # the save just made, not S3's older version
    s3bp.flush()
    assert not (tmp_path / "two" / "relcache").exists()


def test_prune_of_a_read_only_cache_reports_what_it_could_not_remove(bucket, raw, isolated):
    for i in range(2):
        raw.put_object(Bucket=bucket, Key=f"d/{i}.bin", Body=b"x" * 100)
        s3bp.download_file(f"s3://{bucket}/d/{i}.bin")
    cache = isolated / "cache"
    _mount(["--bind", "-o", "ro", str(cache)], cache)  # chmod does not stop root; a read-only mount does
    try:
        if os.access(cache, os.W_OK):
            subprocess.run(["mount", "-o", "remount,ro,bind", str(cache)], capture_output=True)
        report = s3bp.cache_clear()
        assert report.removed == [] and len(report.kept) == 2
        assert all("could not be removed" in why and "Read-only" in why for _, why in report.kept)
        assert report.size == 200
    finally:
        _unmount(cache)
    assert s3bp.cache_info().files == 2
    assert len(s3bp.cache_clear().removed) == 2


def test_a_cache_inside_a_mapped_directory_is_still_bounded(machine, bucket, raw):
    m = machine("m", cache_max_size="2500B")
    m.store.map_base_directory_to_bucket(m.root, bucket)  # e.g. a user who maps ~, which holds ~/.cache/s3bp
    mine = m.store.save_object("a mapped file", m.root / "notes.pkl", wait=True)
    assert mine.done()
    for i in range(4):
        raw.put_object(Bucket=bucket, Key=f"f{i}.bin", Body=bytes([i]) * 1000)
        m.store.download_file(f"s3://{bucket}/f{i}.bin")
    present = [os.path.exists(m.store.local_path(f"s3://{bucket}/f{i}.bin")) for i in range(4)]
    assert present == [False, False, True, True]
    assert (m.root / "notes.pkl").exists()  # outside the cache: never touched
    report = m.store.cache_clear()
    assert len(report.removed) == 2 and report.kept == []
    assert (m.root / "notes.pkl").exists()


def test_a_file_in_the_cache_whose_record_is_for_another_object_is_kept(machine, bucket, raw):
    m = machine("m")
    # a file of the cache whose sync record is about another object (as a save through some other path would leave)
    inside = m.root / "cache" / endpoint_id(m.store.settings()["endpoint_url"]) / bucket / "sub"
    inside.mkdir(parents=True)
    raw.put_object(Bucket=bucket, Key="sub/k.bin", Body=b"in S3")
    copy = m.store.download_file(f"s3://{bucket}/sub/k.bin")
    assert copy == str(inside / "k.bin")
    record = m.store._index().load_state(copy)[0]
    m.store._index().put_record(dataclasses.replace(record, key="elsewhere/k.bin"))
    report = m.store.cache_clear()
    assert report.removed == [] and "s3://" in report.kept[0][1]
    assert os.path.exists(copy)


def test_stale_use_notes_of_files_gone_by_hand_are_dropped_by_a_prune(machine, bucket, raw):
    m = machine("m", cache_max_size="150B")
    for i in range(2):
        raw.put_object(Bucket=bucket, Key=f"d/{i}.bin", Body=b"x" * 100)
        m.store.download_file(f"s3://{bucket}/d/{i}.bin")
    shutil.rmtree(m.root / "cache")  # by hand (or a prune killed between its unlinks and its bookkeeping)
    db, root = m.store._index(), os.path.abspath(m.root / "cache")
    assert db.use_totals(root, os.sep)[0] == 100  # the notes still say the cache is full
    m.store.cache_prune()
    assert db.use_totals(root, os.sep) == (0, None)  # else every later download walks the whole cache again


@pytest.mark.parametrize("key", ["x" * 256, "d/" + "é" * 128 + "/k", "a.pkl.s3bp-local", "d/a.pkl.s3bp-remote"])
def test_keys_no_local_file_can_be_named_after_are_refused_before_any_request(bucket, raw, requests_log, key):
    raw.put_object(Bucket=bucket, Key=key, Body=b"fine in S3")
    url = f"s3://{bucket}/{key}"
    for call in (s3bp.download_file, s3bp.load_object, s3bp.local_path, lambda u: s3bp.save_object(1, u)):
        with pytest.raises(InvalidPathError, match="Cannot use"):
            call(url)
    assert requests_log.operations == []
    [listed] = s3bp.list_objects(f"s3://{bucket}/")
    assert listed.key == key and listed.local_path is None


@pytest.mark.parametrize("value", [10**400, "1" + "0" * 400, "1" + "0" * 400 + "TB", "1" * 310 + "w"])
def test_limits_too_large_for_a_number_are_clear_errors(value, isolated):
    with pytest.raises(InvalidArgumentError, match="max_size"):
        s3bp.cache_prune(max_size=value, dry_run=True)
    with pytest.raises(InvalidArgumentError, match="older_than"):
        s3bp.cache_prune(older_than=value, dry_run=True)
    config = isolated / "config" / "config.yml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(yaml.safe_dump({"cache_max_size": value, "cache_max_age": 5}))
    s3bp.set_default_store(None)
    with pytest.raises(ConfigError, match="cache_max_size"):
        s3bp.cache_info()


def test_keys_a_and_a_slash_b_in_one_bucket_both_load_in_turn(bucket, raw):
    raw.put_object(Bucket=bucket, Key="a", Body=b"the file a")
    raw.put_object(Bucket=bucket, Key="a/b", Body=b"the file a/b")
    raw.put_object(Bucket=bucket, Key="a/c/d", Body=b"the file a/c/d")
    read = lambda path: open(path, "rb").read()  # noqa: E731
    for _ in range(2):  # one local tree cannot hold both: each load makes way for itself, the other comes back later
        assert s3bp.load_object(f"s3://{bucket}/a", deserializer=read) == b"the file a"
        assert s3bp.load_object(f"s3://{bucket}/a/b", deserializer=read) == b"the file a/b"
        assert s3bp.load_object(f"s3://{bucket}/a/c/d", deserializer=read) == b"the file a/c/d"
    s3bp.download_file(f"s3://{bucket}/a")
    with open(s3bp.local_path(f"s3://{bucket}/a"), "ab") as f:
        f.write(b", edited here")  # an edit in the way is never evicted: a clear error instead
    with pytest.raises(InvalidPathError, match="in the way and is kept"):
        s3bp.load_object(f"s3://{bucket}/a/b")
    assert read(s3bp.local_path(f"s3://{bucket}/a")) == b"the file a, edited here"
