"""A keep-alive S3 server for benchmarks: moto's S3 app under waitress, on 127.0.0.1.

moto's own server closes the connection after every response, which would
hide whether a client reuses connections. Run as a script, it prints
``READY <port>`` once listening and serves until killed.
"""

from __future__ import annotations

import logging
import subprocess
import sys

COUNTS_PATH = "/_bench/requests"


class Counting:
    """WSGI middleware: counts requests by kind (LIST, GET, HEAD, PUT, POST, DELETE); ``GET /_bench/requests``
    answers the counts so far as JSON and starts again from zero."""

    def __init__(self, app):
        import collections
        import threading

        self.app, self.lock, self.counts = app, threading.Lock(), collections.Counter()

    def __call__(self, environ, start_response):
        import json

        if environ.get("PATH_INFO") == COUNTS_PATH:
            with self.lock:
                body, self.counts = json.dumps(dict(self.counts)).encode(), type(self.counts)()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        method, path, query = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
        bucket_only = path.strip("/").count("/") == 0
        kind = "LIST" if method == "GET" and (bucket_only or "list-type" in query) else method
        with self.lock:
            self.counts[kind] += 1
        return self.app(environ, start_response)


def counts(endpoint: str) -> dict[str, int]:
    """The requests the server counted since the last call, by kind."""
    import json
    import urllib.request

    with urllib.request.urlopen(endpoint + COUNTS_PATH) as answer:
        return json.loads(answer.read())


def serve(threads: int = 8) -> None:
    """Serve moto's S3 backend on a free loopback port, counting requests (see :class:`Counting`)."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    logging.getLogger("waitress").setLevel(logging.ERROR)
    app = Counting(DomainDispatcherApplication(create_backend_app))
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
