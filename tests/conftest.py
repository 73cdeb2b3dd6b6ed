"""Shared fixtures: a real S3 endpoint (moto's server mode on loopback) and isolated settings.

Every test gets its own HOME, config file and state directory, and a fresh
default store; functional tests also get fresh buckets on the moto server.
"""

from __future__ import annotations

import logging
import uuid

import pytest

import s3bp

from .support import FaultProxy, Machine, RequestLog, make_machine, raw_client


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """Point every s3bp and AWS setting at this test's own temp dirs (apart from ``tmp_path``)."""
    env = tmp_path_factory.mktemp("env")
    home = env / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("S3BP_CONFIG", str(env / "config" / "config.yml"))
    monkeypatch.setenv("S3BP_STATE_DIR", str(env / "state"))
    monkeypatch.setenv("S3BP_CACHE_DIR", str(env / "cache"))
    monkeypatch.setenv("S3BP_LEGACY_CONFIG", "")  # never import a 0.1.x config installed on this machine
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3bp.set_default_store(None)
    yield env
    store = s3bp.set_default_store(None)
    if store is not None:
        store.close()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def endpoint(s3_server, monkeypatch):
    """The moto endpoint, reached by the code under test through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    return s3_server


@pytest.fixture
def raw(endpoint):
    """A plain boto3 client on the same endpoint, for arranging and checking S3 directly."""
    return raw_client(endpoint)


@pytest.fixture
def make_bucket(raw):
    """Create a fresh, uniquely named bucket."""

    def make() -> str:
        name = f"s3bp-test-{uuid.uuid4().hex[:16]}"
        raw.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture
def bucket(make_bucket):
    """A fresh bucket."""
    return make_bucket()


@pytest.fixture
def requests_log():
    """Counts the HTTP requests the default store's client sends."""
    log = RequestLog()
    log.attach(s3bp.get_default_store().client())
    yield log
    log.detach()


@pytest.fixture
def proxy(s3_server, monkeypatch):
    """A fault-injecting TCP proxy in front of the moto server; the code under test goes through it."""
    with FaultProxy(s3_server) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
        yield p


@pytest.fixture
def machine(tmp_path, endpoint):
    """Make simulated machines on the moto endpoint: ``machine(name, **kwargs)`` is
    ``make_machine(tmp_path / name, endpoint, **kwargs)``; all are closed after the test."""
    made: list[Machine] = []

    def make(name: str, **kwargs) -> Machine:
        root = tmp_path / name
        if root.exists():  # a second machine by that name would share the first one's config and state
            raise ValueError(f"{root} exists already; give each machine its own name")
        made.append(make_machine(root, endpoint, **kwargs))
        return made[-1]

    yield make
    for m in made:
        m.close()


@pytest.fixture
def versioned(make_bucket, raw):
    """A fresh bucket with versioning on."""
    name = make_bucket()
    raw.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def two(machine, versioned):
    """Machines a and b with the versioned bucket as their default bucket."""
    return [machine(name, default_bucket=versioned) for name in ("a", "b")]
