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
