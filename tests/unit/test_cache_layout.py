"""The managed cache's layout: where URL copies and pinned versions live."""

from pathlib import Path

from s3bp import cache


def test_root_from_environment():
    assert cache.cache_root({"S3BP_CACHE_DIR": "/c"}) == Path("/c")
    assert cache.cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/s3bp")
    assert cache.cache_root({"S3BP_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache.cache_root({}) == Path("~/.cache/s3bp").expanduser()


def test_endpoint_ids_are_readable_directory_names():
    assert cache.endpoint_id("https://s3.eu-west-1.amazonaws.com") == "s3.eu-west-1.amazonaws.com"
    assert cache.endpoint_id("http://127.0.0.1:9000") == "127.0.0.1_9000"
    assert cache.endpoint_id("http://minio.local:9000/tenant/") == "minio.local_9000_tenant"
    assert "/" not in cache.endpoint_id("http://h/../../etc")
    assert not cache.endpoint_id("http://h/../../etc").startswith(".")


def test_url_copies_and_versions_do_not_clash():
    root = Path("/c")
    url = cache.url_copy_path(root, "http://127.0.0.1:9000", "bkt", "a/b.pkl")
    pinned = cache.version_copy_path(root, "http://127.0.0.1:9000", "bkt", "a/b.pkl", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert url == Path("/c/127.0.0.1_9000/bkt/a/b.pkl")
    assert pinned == Path("/c/127.0.0.1_9000/.versions/bkt/3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY/a/b.pkl")


def _f(path, size, used, kept=None):
    return cache.CachedFile(path, size, used, kept)


def test_eviction_takes_the_least_recently_used_first_and_skips_kept_files():
    files = [_f("a", 100, 1.0), _f("b", 100, 2.0, "a save of it waits"), _f("c", 100, 3.0), _f("d", 100, 4.0)]
    evict, kept = cache.plan_eviction(files, max_size=200, max_age=None, now=10.0)
    assert [f.path for f in evict] == ["a", "c"] and [f.path for f in kept] == ["b"]
    evict, _ = cache.plan_eviction(files, max_size=400, max_age=None, now=10.0)
    assert evict == []
    evict, _ = cache.plan_eviction(files, max_size=None, max_age=7.5, now=10.0)
    assert [f.path for f in evict] == ["a"]  # unused for over 7.5 s: only a (b is kept)
    evict, kept = cache.plan_eviction(files, max_size=0, max_age=None, now=10.0, keep={"d"})
    assert [f.path for f in evict] == ["a", "c"] and [f.path for f in kept] == ["b", "d"]
    assert cache.plan_eviction([], max_size=0, max_age=0, now=0.0) == ([], [])


def test_why_a_file_is_kept():
    from s3bp.freshness import LocalStat, SyncRecord

    local = LocalStat(10, 5)
    rec = SyncRecord("/c/e/b/k", "http://e", "b", "k", '"x"', 10, 5, 0.0)
    assert cache.why_kept("/c/e/b/k", local, rec, False, {}, pinned=False) is None
    assert "mapped" in cache.why_kept("/c/e/b/k", local, rec, False, {"/c": "b"}, pinned=False)
    assert "upload" in cache.why_kept("/c/e/b/k", local, rec, True, {}, pinned=True)
    assert "edited" in cache.why_kept("/c/e/b/k", LocalStat(11, 5), rec, False, {}, pinned=False)
    assert "no sync record" in cache.why_kept("/c/e/b/k", local, None, False, {}, pinned=False)
    assert cache.why_kept("/c/e/.versions/b/v/k", local, None, False, {}, pinned=True) is None
