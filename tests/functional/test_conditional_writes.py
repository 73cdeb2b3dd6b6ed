"""Stores that ignore conditional writes: detected once per endpoint, and saves there are checked with a HEAD."""

from __future__ import annotations

import logging

import pytest

from s3bp import ConflictError

from ..support import make_machine, unpickled

IGNORES_IF_MATCH = ("replace-request", b"If-Match:", b"X-Ignored:")  # the store never sees the condition


@pytest.fixture
def lax(tmp_path, proxy, bucket):
    """A machine whose endpoint (the proxy in front of moto) drops every If-Match header."""
    proxy.always(IGNORES_IF_MATCH)
    m = make_machine(tmp_path / "lax", proxy.url, default_bucket=bucket)
    yield m
    m.close()


def test_a_store_ignoring_if_match_still_gets_no_silent_overwrite(lax, raw, bucket, caplog):
    path = lax.root / "data.pkl"
    lax.store.save_object("v1", path, wait=True)
    raw.put_object(Bucket=bucket, Key="data.pkl", Body=b"another machine's newer version")
    with caplog.at_level(logging.WARNING, logger="s3bp"), pytest.raises(ConflictError):
        lax.store.save_object("v2", path, wait=True)
    assert raw.get_object(Bucket=bucket, Key="data.pkl")["Body"].read() == b"another machine's newer version"
    assert [r.message for r in caplog.records if "ignores conditional writes" in r.message]
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["data.pkl"]  # the probe is cleaned up


def test_the_finding_is_remembered_per_endpoint(lax, raw, bucket):
    path = lax.root / "data.pkl"
    lax.store.save_object("v1", path, wait=True)
    lax.log.clear()
    lax.store.save_object("v2", path, wait=True)  # probe PUT (+ DELETE), HEAD check, PUT
    assert lax.log.operations == ["PutObject", "DeleteObject", "HeadObject", "PutObject"]
    lax.log.clear()
    lax.store.save_object("v3", path, wait=True)  # known: HEAD check, PUT
    assert lax.log.operations == ["HeadObject", "PutObject"]
    assert unpickled(raw, bucket, "data.pkl") == "v3"


def test_an_honest_store_is_probed_once_and_keeps_if_match(machine, raw, bucket):
    m = machine("honest", default_bucket=bucket)
    path = m.root / "data.pkl"
    m.store.save_object("v1", path, wait=True)
    m.log.clear()
    m.store.save_object("v2", path, wait=True)
    assert m.log.operations == ["PutObject", "PutObject"]  # the probe (refused: 404), then the conditional PUT
    m.log.clear()
    m.store.save_object("v3", path, wait=True)
    assert m.log.operations == ["PutObject"]


def test_config_shows_the_mode_of_each_endpoint(lax, proxy):
    import os
    import subprocess
    import sys

    lax.store.save_object("v1", lax.root / "data.pkl", wait=True)
    lax.store.save_object("v2", lax.root / "data.pkl", wait=True)
    env = {**os.environ, "S3BP_CONFIG": str(lax.root / "config.yml"), "S3BP_STATE_DIR": str(lax.root / "state")}
    out = subprocess.run([sys.executable, "-m", "s3bp", "config"], capture_output=True, text=True, env=env, timeout=60).stdout
    assert f"endpoint {proxy.url}: ignores conditional writes" in out


def test_a_probe_that_is_denied_never_fails_the_save(lax, raw, bucket, proxy):
    path = lax.root / "data.pkl"
    lax.store.save_object("v1", path, wait=True)
    proxy.always((*IGNORES_IF_MATCH, b".s3bp-probe-"))  # the probe PUT is answered 403 (a key policy of data.pkl only, say)
    lax.store.save_object("v2", path, wait=True)
    assert unpickled(raw, bucket, "data.pkl") == "v2"


def test_a_probe_the_store_does_not_answer_never_holds_up_the_save(tmp_path, proxy, raw, bucket, monkeypatch):
    from s3bp import remote

    m = make_machine(tmp_path / "slow", proxy.url, default_bucket=bucket, read_timeout=2)
    try:
        path = m.root / "data.pkl"
        m.store.save_object("v1", path, wait=True)
        monkeypatch.setattr(remote, "PROBE_WAIT", 0.2)
        proxy.script("delay:30")  # the next connection (the probe's PUT) is not answered for 30 s
        m.store.save_object("v2", path, wait=True)  # goes on with a HEAD check instead
        assert unpickled(raw, bucket, "data.pkl") == "v2"
        # A save that had waited for the probe would have its answer by now (the client's 2 s read timeout,
        # then a retry on a connection that passes): nothing is remembered from an unanswered probe.
        assert m.store._index().endpoint_mode(proxy.url) is None
        assert "HeadObject" in m.log.operations
    finally:
        m.close()
