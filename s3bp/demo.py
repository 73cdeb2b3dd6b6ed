"""``s3bp demo``: the README's example against an embedded local S3 server.

Two "machines" (two stores, each with its own config, state directory and S3
client) share one bucket on moto's server, run in a child process on a free
loopback port; every step prints the requests it sent. The environment is
left alone: the clients get the server's address and throwaway keys explicitly.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

_BUCKET = "user-data-bucket"
_KEY = "demo"  # the embedded server accepts any keys


_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("%s %s" % server.get_host_and_port(), flush=True)
sys.stdin.read()
server.stop()
"""


def main() -> int:
    """Run the demo; return the exit code of ``s3bp demo``."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("moto") is None:
        print("s3bp demo needs the embedded S3 server: pip install 's3bp[demo]'", file=sys.stderr)
        return 1
    # The server runs in a child process with no AWS_* settings of yours: moto reads them when it answers errors.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        host, port = server.stdout.readline().split()  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory(prefix="s3bp-demo-") as tmp:
            _run(f"http://{host}:{port}", tmp)
    finally:
        server.communicate(input="", timeout=30)
    return 0


def _client(url: str) -> Any:
    """A client for the embedded server, whatever AWS_* settings the environment holds."""
    from .remote import new_client

    return new_client(endpoint_url=url, region="us-east-1", access_key=_KEY, secret_key=_KEY)


def _run(url: str, tmp: str) -> None:
    """The demo's steps: two machines sharing one bucket on the local server."""
    from .core import Store

    _client(url).create_bucket(Bucket=_BUCKET)
    print(f"local S3 server at {url}, bucket {_BUCKET!r}, files under {tmp}\n")

    def machine(name: str) -> tuple[Store, list[str], str]:
        root = os.path.join(tmp, name)
        client = _client(url)
        store = Store(config=os.path.join(root, "config.yml"), state_dir=os.path.join(root, "state"), client=client)
        store.config.update(lambda d: d.update(endpoint_url=url, default_bucket=_BUCKET))
        sent: list[str] = []
        client.meta.events.register("before-send.s3", lambda request, **kw: sent.append(request.method))
        return store, sent, os.path.join(root, "data", "name_to_id_map")

    def step(label: str, sent: list[str], started: float, result: object = None) -> None:
        ms = (time.perf_counter() - started) * 1000
        shown = "" if result is None else f" -> {result!r}"
        print(f"  {label}{shown}\n      {len(sent)} request(s) {sent}, {ms:.1f} ms")
        sent.clear()

    laptop, sent_a, path_a = machine("laptop")
    server, sent_b, path_b = machine("server")
    with laptop, server:
        print("laptop:")
        t = time.perf_counter()
        laptop.save_object({"Dan": 8382, "Alon": 2993}, path_a, wait=True)
        step("save_object({'Dan': 8382, 'Alon': 2993}, ..., wait=True)", sent_a, t)
        t = time.perf_counter()
        step("load_object(...)  [local copy is current: S3 answers 304, no body]", sent_a, t, laptop.load_object(path_a))
        print("server (another machine, same bucket):")
        t = time.perf_counter()
        step("load_object(...)  [no local copy: downloaded]", sent_b, t, server.load_object(path_b))
        t = time.perf_counter()
        step("load_object(...)  [now cached: one cheap request]", sent_b, t, server.load_object(path_b))
        print("laptop saves a newer version:")
        t = time.perf_counter()
        laptop.save_object({"Dan": 8382, "Alon": 2993, "Noa": 1}, path_a, wait=True)
        # A PUT with IfMatch on the version it synced; the first such save to an endpoint sends one probe PUT before it.
        step("save_object(..., wait=True)  [PUT only over the version it synced; a probe PUT once per endpoint]", sent_a, t)
        t = time.perf_counter()
        step("server load_object(...)  [S3 is newer: downloaded]", sent_b, t, server.load_object(path_b))
    print("\ndone; the local server is stopped and the temp files removed.")
