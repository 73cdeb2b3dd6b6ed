"""Saved means uploaded: how long a saving process takes to exit, and when its last upload is in S3.

    python benchmarks/delivery.py                # 200 saves, each request delayed 0.2 s
    python benchmarks/delivery.py --objects 50 --delay 0.3

Three endings of a process that saved ``--objects`` small objects with
``wait=False`` through a proxy that delays every request: a normal exit with
the hand-off policy, a normal exit of a script (the ``wait`` policy), SIGTERM
two seconds after the last save, and a notebook kernel shut down through
nbclient. For each: seconds from the last save to the process's exit, and to
the last object in S3 (S3 is polled directly, with no s3bp call).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import FaultProxy, raw_client  # noqa: E402


def count(raw, bucket: str) -> int:
    return sum(p.get("KeyCount", 0) for p in raw.get_paginator("list_objects_v2").paginate(Bucket=bucket))


def until_all(raw, bucket: str, n: int, started: float, timeout: float = 300) -> float:
    while count(raw, bucket) < n:
        if time.monotonic() - started > timeout:
            return float("nan")
        time.sleep(0.1)
    return time.monotonic() - started


def saver(folder: str, bucket: str, n: int, on_exit: str, then: str = "") -> str:
    return textwrap.dedent(
        f"""
        import os, time, s3bp
        s3bp.get_default_store().config.update(lambda d: d.update(on_exit={on_exit!r}))
        for i in range({n}):
            s3bp.save_object(i, os.path.join({folder!r}, f"o{{i}}.pkl"), {bucket!r})
        print("saved", flush=True)
        {then}
        """
    )


def run_case(name: str, raw, env: dict[str, str], root: Path, n: int) -> tuple[str, float, float]:
    bucket = f"s3bp-bench-{uuid.uuid4().hex[:10]}"
    raw.create_bucket(Bucket=bucket)
    folder = root / name
    folder.mkdir()
    if name == "notebook":
        import nbclient
        import nbformat

        code = saver(str(folder), bucket, n, "auto")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3")
        with client.setup_kernel(env=env):
            client.execute_cell(nb.cells[0], 0)
            saved = time.monotonic()
        exited = time.monotonic() - saved  # the kernel is shut down when setup_kernel's block ends
        return name, exited, until_all(raw, bucket, n, saved)
    policy, then = {"handoff": ("handoff", ""), "script": ("auto", ""), "sigterm": ("auto", "time.sleep(600)")}[name]
    p = subprocess.Popen([sys.executable, "-c", saver(str(folder), bucket, n, policy, then)], stdout=subprocess.PIPE, text=True, env=env)
    p.stdout.readline()
    saved = time.monotonic()
    if name == "sigterm":
        time.sleep(2)
        p.send_signal(signal.SIGTERM)
    p.wait()
    return name, time.monotonic() - saved, until_all(raw, bucket, n, saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--cases", default="handoff,script,sigterm,notebook")
    args = parser.parse_args()
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto's own server closes every connection after its answer, so the proxy delays every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with FaultProxy(endpoint) as proxy, tempfile.TemporaryDirectory() as tmp:
        proxy.always(f"delay:{args.delay}")
        raw = raw_client(endpoint)
        root = Path(tmp)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "S3BP_CONFIG": str(root / "config.yml"),
            "S3BP_STATE_DIR": str(root / "state"),
        }
        print(f"{args.objects} saves with wait=False, every request delayed {args.delay} s by a proxy\n")
        print("| ending | last save -> process gone | last save -> last object in S3 |")
        print("|---|---|---|")
        for name in args.cases.split(","):
            case, exited, arrived = run_case(name, raw, env, root, args.objects)
            print(f"| {case} | {exited:.2f} s | {arrived:.2f} s |", flush=True)
    server.stop()


if __name__ == "__main__":
    main()
