"""Empty uploads go out without ``Expect: 100-continue`` (a server may wait forever for a body that never comes)."""

from __future__ import annotations

import threading

import pytest

from ..support import make_machine


def _expect_headers(client) -> list[tuple[str, bytes | None]]:
    """Start recording (operation, Expect header) of every request ``client`` sends."""
    seen: list[tuple[str, bytes | None]] = []

    def record(request, event_name="", **kwargs):
        seen.append((event_name.rsplit(".", 1)[-1], request.headers.get("Expect")))

    client.meta.events.register("before-send.s3", record, unique_id="test-expect-headers")
    return seen


def test_an_empty_file_is_pushed_without_expect_continue(machine, bucket, raw):
    m = machine("m", bucket=bucket)
    m.write("empty.txt", "")
    m.write("full.txt", "x")
    seen = _expect_headers(m.store.client())
    m.store.push(m.dir)
    puts = [expect for op, expect in seen if op == "PutObject"]
    assert sorted(puts, key=lambda e: e or b"") == [None, b"100-continue"]  # only the one with a body asks first
    assert raw.get_object(Bucket=bucket, Key="data/empty.txt")["Body"].read() == b""


def test_an_empty_file_and_the_probe_reach_a_waitress_server(tmp_path, bucket, raw):
    """waitress (which serves moto in many set-ups) answers ``100 Continue`` to an empty body, then waits for it."""
    pytest.importorskip("waitress")
    from moto.server import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    server = create_server(DomainDispatcherApplication(create_backend_app), host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.effective_port}"  # the same moto backend as the test server's, so ``bucket`` is there
    m = make_machine(tmp_path / "w", endpoint, bucket=bucket, read_timeout=3, max_attempts=1)
    try:
        m.write("empty.txt", "")
        m.store.push(m.dir)  # a zero-byte PUT
        assert raw.get_object(Bucket=bucket, Key="data/empty.txt")["Body"].read() == b""
        m.store.save_object("v1", m.dir / "x.pkl", wait=True)
        m.store.save_object("v2", m.dir / "x.pkl", wait=True)  # the second save probes for conditional writes (an empty PUT)
        honoured = m.store._index().endpoint_mode(endpoint)
        assert honoured is not None and honoured[0] is True  # answered, and remembered
    finally:
        m.close()
        server.close()
