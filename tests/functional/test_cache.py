"""The managed cache: bounded by size and age, least recently used first, never losing what is not safely in S3."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

import s3bp
from s3bp.cache import VERSIONS_DIR, endpoint_id, record_use
from s3bp.errors import InvalidArgumentError, UploadError

from ..support import unpickled
from .test_cli import run


def test_loads_past_the_limit_evict_the_least_recently_used(machine, bucket, raw):
    m = machine("m", cache_max_size="3500B")
    for i in range(6):
        raw.put_object(Bucket=bucket, Key=f"f{i}.bin", Body=bytes([i]) * 1000)
    url = [f"s3://{bucket}/f{i}.bin" for i in range(6)]
    edited = m.store.download_file(url[0])
    with open(edited, "ab") as f:
        f.write(b"edited here")
    pending = "s3://s3bp-no-such-bucket-here/p.pkl"  # its upload fails for good: it stays journaled
    m.store.save_object("not in S3 yet", pending)
    with pytest.raises(UploadError):
        m.store.flush()
    for u in url[1:]:
        m.store.download_file(u)
    present = [os.path.exists(m.store.local_path(u)) for u in url]
    assert present == [True, False, False, False, True, True]
    assert os.path.exists(m.store.local_path(pending)) and open(edited, "rb").read().endswith(b"edited here")
    m.log.clear()
    assert open(m.store.download_file(url[1]), "rb").read() == bytes([1]) * 1000  # an evicted file comes back
    assert m.log.operations == ["GetObject"]
    assert [os.path.exists(m.store.local_path(u)) for u in url] == [True, True, False, False, False, True]
    info = m.store.cache_info()
    assert info.files == 4 and info.max_size == 3500 and info.kept == 2 and info.size <= 3500


def test_prune_and_clear_keep_what_is_not_safely_in_s3(machine, bucket, raw):
    m = machine("m")
    for i in range(3):
        raw.put_object(Bucket=bucket, Key=f"k{i}.pkl", Body=pickle.dumps(i))
        assert m.store.load_object(f"s3://{bucket}/k{i}.pkl") == i
    m.store.save_object("mine", f"s3://{bucket}/mine.pkl", wait=True)
    m.store.save_object("newer", f"s3://{bucket}/mine.pkl", wait=False)  # may still be uploading: kept if so
    report = m.store.cache_prune(older_than="1h")
    assert report.removed == []
    report = m.store.cache_prune(max_size="10 KiB", dry_run=True)
    assert report.removed == [] and report.dry_run
    m.store.flush()
    with pytest.raises(InvalidArgumentError, match="max_size"):
        m.store.cache_prune(max_size="lots")
    inside = m.root / "cache" / endpoint_id(m.store.settings()["endpoint_url"])
    m.store.map_base_directory_to_bucket(inside, bucket)  # a mapped directory inside the cache: never evicted
    report = m.store.cache_clear()
    assert report.removed == [] and len(report.kept) == 4 and all("mapped directory" in why for _, why in report.kept)
    m.store.remove_base_directory_mapping(inside)
    report = m.store.cache_clear()
    assert len(report.removed) == 4 and report.size == 0 and m.store.cache_info().files == 0
    cache_dirs = [p for p in (m.root / "cache").rglob("*") if p.is_dir()]
    assert cache_dirs and not any(p.is_file() for p in (m.root / "cache").rglob("*"))
    m.store.cache_clear()
    assert all(p.exists() for p in cache_dirs)  # just emptied: a save may be about to place a file there
    for _ in cache_dirs:  # an empty directory left unchanged for a while goes, one level per prune
        for p in cache_dirs:
            if p.exists():
                os.utime(p, (0, 0))
        m.store.cache_clear()
    assert not os.listdir(m.root / "cache")
    assert m.store.load_object(f"s3://{bucket}/mine.pkl") == "newer" and unpickled(raw, bucket, "mine.pkl") == "newer"


def test_pinned_version_copies_are_evictable_without_a_record(machine, endpoint):
    m = machine("m")
    pinned = m.root / "cache" / endpoint_id(endpoint) / VERSIONS_DIR / "bkt" / "v1" / "k.pkl"
    pinned.parent.mkdir(parents=True)
    pinned.write_bytes(b"one version")
    record_use(m.store._index(), str(pinned))
    assert m.store.cache_info().files == 1
    assert m.store.cache_prune(max_size=0).removed == [str(pinned)]


def test_prune_dry_run_on_the_command_line_changes_nothing(bucket, raw, isolated):
    for i in range(3):
        raw.put_object(Bucket=bucket, Key=f"d/{i}.bin", Body=b"x" * 100)
        s3bp.download_file(f"s3://{bucket}/d/{i}.bin")
    s3bp.set_default_store(None).close()
    files = sorted(p for p in (isolated / "cache").rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    res = run("cache", "prune", "--max-size", "150B", "--dry-run", "-v")
    assert res.returncode == 0, res.stderr
    assert "would remove 2 file(s)" in res.stdout and res.stdout.count("would remove: ") == 2
    assert sorted(p for p in (isolated / "cache").rglob("*") if p.is_file()) == files and [p.stat() for p in files] == stats
    res = run("cache", "info")
    assert "300 B in 3 file(s)" in res.stdout and "cache_max_size no limit" in res.stdout
    res = run("cache", "clear", "--dry-run")
    assert "would remove 3 file(s)" in res.stdout and all(p.exists() for p in files)
    res = run("cache", "prune", "--older-than", "soon")
    assert res.returncode == 1 and "older_than" in res.stderr
    res = run("cache", "clear")
    assert res.returncode == 0 and "removed 3 file(s)" in res.stdout and not any(p.exists() for p in files)


LOADER = """
import pickle, sys, time
import s3bp

bucket, rounds, done = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def slow(path):
    time.sleep(0.003)  # widen the gap between a load and the read of its file
    with open(path, "rb") as f:
        return pickle.load(f)

try:
    for i in range(rounds):
        for k in range(4):
            assert s3bp.load_object(f"s3://{bucket}/k{k}.pkl", deserializer=slow) == ("value", k)
        s3bp.save_object(("saved", i), f"s3://{bucket}/mine.pkl")
        assert s3bp.load_object(f"s3://{bucket}/mine.pkl") == ("saved", i)
    s3bp.flush()
finally:
    open(done, "w").close()
print("loaded", flush=True)
"""

PRUNER = """
import os, sys
import s3bp

done, removed = sys.argv[1], 0
while not os.path.exists(done):
    removed += len(s3bp.cache_clear().removed)
print(removed, flush=True)
"""


def test_two_processes_loading_and_pruning_lose_nothing(bucket, raw, tmp_path):
    for k in range(4):
        raw.put_object(Bucket=bucket, Key=f"k{k}.pkl", Body=pickle.dumps(("value", k)))
    done = tmp_path / "done"
    loader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LOADER), bucket, "25", str(done)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pruner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PRUNER), str(done)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = loader.communicate(timeout=300)
    assert loader.returncode == 0 and out.strip() == "loaded", err
    out, err = pruner.communicate(timeout=300)
    assert pruner.returncode == 0, err
    assert int(out) > 0  # the pruner did evict files while they were being loaded
    assert unpickled(raw, bucket, "mine.pkl") == ("saved", 24)
    assert s3bp.pending_uploads() == []
