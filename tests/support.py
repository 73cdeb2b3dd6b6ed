"""Test helpers: a raw boto3 client and what it reads, simulated machines, a request counter, and a fault-injecting TCP proxy."""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import queue
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

import s3bp


def raw_client(endpoint: str, **config):
    """A plain boto3 S3 client on ``endpoint`` with test credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(**config) if config else None,
    )


def body(raw, bucket: str, key: str) -> bytes:
    """The bytes stored in S3 at ``bucket``/``key``, read with the raw client."""
    return raw.get_object(Bucket=bucket, Key=key)["Body"].read()


def unpickled(raw, bucket: str, key: str) -> Any:
    """The object pickled at ``bucket``/``key``: ``pickle.loads(body(raw, bucket, key))``."""
    return pickle.loads(body(raw, bucket, key))


def start_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen:
    """Start ``code`` (dedented) in a new interpreter with this test's environment; pipes for its output."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def eventually(check: Callable[[], Any], what: str, limit: float = 90.0) -> Any:
    """Poll ``check()`` until it returns a true value (at most ``limit`` seconds, generous: no timing is asserted)."""
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def stored(raw, bucket: str, key: str) -> Any:
    """The unpickled object at ``key``, or None while there is none."""
    try:
        return unpickled(raw, bucket, key)
    except raw.exceptions.NoSuchKey:
        return None


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    """Run the block under umask ``value``, restoring the old one after."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def damage_pages(db: str | os.PathLike[str], *tables: str) -> None:
    """Overwrite the pages of ``tables`` (and their indexes) in an SQLite file with garbage, checkpointed first; the rest stays sound."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        marks = ", ".join("?" * len(tables))
        roots = [r for (r,) in conn.execute(f"SELECT rootpage FROM sqlite_master WHERE tbl_name IN ({marks})", tables)]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    with open(db, "r+b") as fh:
        for root in roots:
            fh.seek((root - 1) * page)
            fh.write(b"\xde\xad\xbe\xef" * (page // 4))


class RequestLog:
    """Records (method, operation) of every request a client sends, via botocore's before-send event."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self._client = None

    def _record(self, request, **kwargs):
        self.calls.append((request.method, kwargs.get("event_name", "").split(".")[-1]))

    def attach(self, client) -> None:
        """Start counting ``client``'s requests."""
        self._client = client
        client.meta.events.register("before-send.s3", self._record, unique_id=f"s3bp-test-{id(self)}")

    def detach(self) -> None:
        """Stop counting."""
        if self._client is not None:
            self._client.meta.events.unregister("before-send.s3", unique_id=f"s3bp-test-{id(self)}")

    def clear(self) -> None:
        """Forget what was counted so far."""
        self.calls.clear()

    @property
    def operations(self) -> list[str]:
        """The operation names counted, in order."""
        return [op for _, op in self.calls]

    def __len__(self) -> int:
        return len(self.calls)


@dataclass
class Machine:
    """One simulated computer: its own config file and state dir under ``root``, its own S3 client, and a local folder.

    Several machines on one endpoint share only what is in S3, as separate computers would.
    """

    root: Path
    store: s3bp.Store
    dir: Path
    log: RequestLog

    def write(self, rel: str, text: str) -> Path:
        """Write ``text`` to ``rel`` under :attr:`dir` (making parent dirs); return the path."""
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def read(self, rel: str) -> str:
        """The text of ``rel`` under :attr:`dir`."""
        return (self.dir / rel).read_text()

    def tree(self) -> list[str]:
        """The files under :attr:`dir`, relative to it, sorted."""
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())

    def close(self) -> None:
        """Stop counting requests, then close the store (waiting for its uploads)."""
        self.log.detach()
        self.store.close()


def make_machine(root: str | os.PathLike[str], endpoint: str, *, folder: str = "data", bucket: str | None = None, **settings: Any) -> Machine:
    """A :class:`Machine` under ``root``: ``root/config.yml``, ``root/state``, ``root/cache``, local folder ``root/folder``.

    Its store talks to ``endpoint`` (written to its config as ``endpoint_url``) and
    ``settings`` are written to its config too (e.g. ``default_bucket=...``). With
    ``bucket``, the folder is created and mapped to ``bucket`` (its files get keys
    ``folder/...``); without, the folder is not created, so the code under test must
    make it. :attr:`Machine.log` counts every request the store's client sends.
    The caller closes the machine.
    """
    root = Path(root)
    store = s3bp.Store(config=root / "config.yml", state_dir=root / "state", cache_dir=root / "cache")
    try:
        store.config.update(lambda d: d.update(endpoint_url=endpoint, **settings))
        local = root / folder
        if bucket is not None:
            local.mkdir(parents=True, exist_ok=True)
            store.map_base_directory_to_bucket(local, bucket)
        log = RequestLog()
        log.attach(store.client())
    except BaseException:
        store.close()
        raise
    return Machine(root, store, local, log)


class FaultProxy:
    """A threaded TCP proxy on 127.0.0.1 that can misbehave on cue.

    Each accepted connection takes the next scripted action (default
    ``"pass"``): ``"pass"`` pipes bytes to the upstream; ``"reset"`` pipes the
    request, then resets the connection before answering; ``"delay:S"``
    waits S seconds, then pipes; ``("replace-request", OLD, NEW[, DENY])`` swaps them in what the client sends
    (and answers 403 to a request whose request line holds the bytes DENY);
    ``("replace", OLD, NEW)`` pipes but swaps
    the bytes OLD for NEW in what the upstream answers; ``("truncate", N)`` relays HTTP messages
    but cuts the first GET answer with a body (200 or 206) short by its last N bytes and frames
    it as complete (Content-Length, and Content-Range when present, made to match: no client can
    tell), counting it in :attr:`cut`; ``("hold", EVENT)`` waits until the :class:`threading.Event`
    EVENT is set (at most 60 s), then pipes; an int answers that HTTP status with an S3
    error body (503 is ``SlowDown``, 403 ``AccessDenied``, 500
    ``InternalError``). ``off()`` closes the listening socket so connections
    are refused; ``on()`` listens again on the same port.

    moto's server closes the connection after each answer, so each request
    takes a new connection, and so the next action.
    """

    _ERRORS = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self._script: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.connections = 0
        self.cut = 0
        self.port = 0
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        #: (method, path) of the first request on every connection since the last :meth:`forget_requests`: every
        #: process's requests, including a child uploader's (moto answers one request per connection).
        self.requests: list[tuple[str, str]] = []

    def forget_requests(self) -> None:
        """Start :attr:`requests` afresh."""
        with self._lock:
            self.requests.clear()

    def count(self, method: str, path_part: str = "") -> int:
        """How many requests seen so far were ``method`` with ``path_part`` in their path."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and path_part in p)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.on()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.off()

    def script(self, *actions) -> None:
        """Queue actions for the next connections."""
        with self._lock:
            self._script.extend(actions)

    def always(self, action) -> None:
        """Make every following connection take ``action`` (until ``clear()``)."""
        with self._lock:
            self._script.clear()
            self._default = action

    def clear(self) -> None:
        """Back to plain pass-through."""
        with self._lock:
            self._script.clear()
            self._default = "pass"

    _default = "pass"

    def on(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before if there was one."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.2)
        self.port = srv.getsockname()[1]
        self._server = srv
        t = threading.Thread(target=self._accept, args=(srv,), daemon=True)
        t.start()
        self._threads.append(t)

    def off(self) -> None:
        """Stop listening: new connections are refused."""
        srv, self._server = self._server, None
        if srv is not None:
            srv.close()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()

    def _next(self):
        with self._lock:
            self.connections += 1
            return self._script.popleft() if self._script else self._default

    def _accept(self, srv: socket.socket) -> None:
        while self._server is srv and not self._stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, self._next()), daemon=True).start()

    def _handle(self, conn: socket.socket, action) -> None:
        conn.settimeout(30)
        self._note_request(conn)
        try:
            if isinstance(action, int):
                _read_request(conn)
                self._answer(conn, action)
            elif action == "reset":
                _read_request(conn)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif isinstance(action, tuple) and action[0] == "replace":
                self._pipe(conn, action[1], action[2])
            elif isinstance(action, tuple) and action[0] == "replace-request":
                head = _peek_head(conn)
                if len(action) > 3 and action[3] in head.split(b"\r\n", 1)[0]:
                    _read_rest(conn, head)
                    self._answer(conn, 403)
                else:
                    self._pipe(conn, request=(action[1], action[2]), first=head)
            elif isinstance(action, tuple) and action[0] == "truncate":
                self._relay(conn, drop=action[1])
            elif isinstance(action, tuple) and action[0] == "hold":
                action[1].wait(60)  # generous: the test sets the event as soon as it has done what it must first
                self._pipe(conn)
            else:
                if isinstance(action, str) and action.startswith("delay:"):
                    time.sleep(float(action.split(":", 1)[1]))
                self._pipe(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _note_request(self, conn: socket.socket) -> None:
        """Add the request line of the connection's first request to :attr:`requests` (peeked: the actions still read it)."""
        try:
            line = conn.recv(2048, socket.MSG_PEEK).split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        except OSError:
            return
        if len(line) >= 2:
            with self._lock:
                self.requests.append((line[0], line[1].split("?", 1)[0]))

    def _answer(self, conn: socket.socket, status: int) -> None:
        code = self._ERRORS.get(status, "InternalError")
        body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>'.encode()
        head = f"HTTP/1.1 {status} {code}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        conn.sendall(head.encode() + body)

    def _pipe(
        self, conn: socket.socket, old: bytes = b"", new: bytes = b"", request: tuple[bytes, bytes] = (b"", b""), first: bytes = b""
    ) -> None:
        up = socket.create_connection(self.upstream, timeout=30)
        if first:
            up.sendall(first.replace(*request) if request[0] else first)

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    if old and src is up:
                        data = data.replace(old, new)
                    if request[0] and src is conn:
                        data = data.replace(*request)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join(timeout=60)
        up.close()


    def _relay(self, conn: socket.socket, drop: int) -> None:
        """Relay HTTP messages both ways, cutting the first GET answer with a body short by ``drop`` bytes, re-framed."""
        up = socket.create_connection(self.upstream, timeout=30)
        methods: queue.Queue[bytes] = queue.Queue()

        def requests() -> None:
            src = _Messages(conn)
            try:
                while (head := src.head()) is not None:
                    methods.put(head.split(b" ", 1)[0].upper())
                    up.sendall(head)
                    for piece in src.body(head, answer=False):
                        up.sendall(piece)
            except OSError:
                pass
            finally:
                _shut(up)

        t = threading.Thread(target=requests, daemon=True)
        t.start()
        src, pending = _Messages(up), drop
        try:
            while (head := src.head()) is not None:
                status = int(head.split(b" ", 2)[1])
                if status < 200:  # 100 Continue: the answer itself follows
                    conn.sendall(head)
                    continue
                method = methods.get(timeout=30)
                if method == b"HEAD" or status in (204, 304):
                    conn.sendall(head)
                    continue
                data = b"".join(src.body(head, answer=True))
                cut = 0
                if pending and method == b"GET" and status in (200, 206) and data:
                    cut, pending = min(pending, len(data)), 0
                    with self._lock:
                        self.cut += 1
                conn.sendall(_reframed(head, data[: len(data) - cut], cut))
        except (OSError, queue.Empty):
            pass
        finally:
            _shut(conn)
            t.join(timeout=60)
            up.close()


class _Messages:
    """Reads HTTP/1.1 messages (head, then body by Content-Length, chunks or end of stream) from a socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def head(self) -> bytes | None:
        """The next message's start line and header fields (with the blank line), or None at the end of the stream."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        end = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:end], self.buf[end:]
        return head

    def _exactly(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self.buf and not self._fill():
                raise OSError("the stream ended inside a message")
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise OSError("the stream ended inside a message")
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def body(self, head: bytes, *, answer: bool) -> Iterator[bytes]:
        """The body after ``head``: as sent for a request; decoded (no chunk framing) for an answer."""
        fields = _fields(head)
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            while True:
                line = self._line()
                size = int(line.split(b";")[0], 16)
                if not answer:
                    yield line
                if size == 0:  # the last chunk: trailer fields up to a blank line
                    while (line := self._line()) != b"\r\n":
                        yield line if not answer else b""
                    yield line if not answer else b""
                    break
                data = b"".join(self._exactly(size + 2))
                yield data if not answer else data[:-2]
        elif b"content-length" in fields:
            yield from self._exactly(int(fields[b"content-length"]))
        elif answer:  # no length: the body runs to the end of the stream
            while self.buf or self._fill():
                piece, self.buf = self.buf, b""
                yield piece


def _fields(head: bytes) -> dict[bytes, bytes]:
    """A message head's header fields, names lowercased."""
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _reframed(head: bytes, data: bytes, cut: int) -> bytes:
    """An answer carrying ``data`` with a Content-Length to match; a Content-Range ends ``cut`` bytes earlier."""
    lines = [line for line in head.split(b"\r\n") if line]
    out = [lines[0]]
    for line in lines[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name in (b"content-length", b"transfer-encoding"):
            continue
        if name == b"content-range" and cut:
            unit, _, rest = line.partition(b":")[2].strip().partition(b" ")
            span, _, total = rest.partition(b"/")
            start, _, end = span.partition(b"-")
            line = b"Content-Range: %s %d-%d/%s" % (unit, int(start), int(end) - cut, total)
        out.append(line)
    out.append(b"Content-Length: %d" % len(data))
    return b"\r\n".join(out) + b"\r\n\r\n" + data


def _shut(sock: socket.socket) -> None:
    """Half-close ``sock`` for writing, if it is still open."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (head and Content-Length body) from ``conn``."""
    _read_rest(conn, _peek_head(conn))


def _peek_head(conn: socket.socket) -> bytes:
    """Read from ``conn`` until a request's head is complete (or the peer stops); what was read."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_rest(conn: socket.socket, head: bytes) -> None:
    """Read the rest of a request whose first bytes are ``head`` (its Content-Length body; none after Expect: 100-continue,
    answered before the body is sent, as S3 does on an early error)."""
    top, _, body = head.partition(b"\r\n\r\n")
    length = 0
    for line in top.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if b"expect: 100-continue" in top.lower():
        return
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
