"""A keep-alive S3 server for benchmarks: moto's S3 app under waitress, on 127.0.0.1.

moto's own server closes the connection after every response, which would
hide whether a client reuses connections. Run as a script, it prints
``READY <port>`` once listening and serves until killed.
"""

from __future__ import annotations

import logging
import subprocess
import sys


def serve(threads: int = 8) -> None:
    """Serve moto's S3 backend on a free loopback port."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    logging.getLogger("waitress").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    server = create_server(app, host="127.0.0.1", port=0, threads=threads, channel_timeout=300)
    print(f"READY {server.effective_port}", flush=True)
    server.run()


class Server:
    """Start :func:`serve` in a child process; a context manager yielding the endpoint URL."""

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.proc.kill()
            raise RuntimeError("the benchmark S3 server did not start")
        return f"http://127.0.0.1:{line[1]}"

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":
    serve()
