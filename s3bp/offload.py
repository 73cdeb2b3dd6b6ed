"""Uploads in a child process, so that the network work never holds the saving process's GIL.

The saving process journals each background save as usual, but under a
claim (an owner lock) it took for its child uploader and passed to it by
descriptor: the child holds that lock for its lifetime, so the entries are
its own from the moment their rows are committed. One line on the child's
stdin (``save <entry id>``) wakes it; one line back (``ok <id> <unchanged>``
or ``fail <id> <pickled error>``) settles the caller's
:class:`~s3bp.uploads.UploadFuture`. The child (``python -m s3bp.uploader
--serve``) runs an ordinary :class:`~s3bp.uploads.UploadQueue`: the same
per-object order, conflict rule, retries and journal.

* The parent is killed: the child reads the end of its stdin, queues the
  entries of its claim it was never told about, finishes and exits.
* The child dies: its claim is free, the parent takes its entries back and
  uploads them in its own threads (a later save starts a new child).
* A failure is handed back to the parent's claim with the error: flush,
  status, forget and retarget see it as any failure of the parent.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .locks import FileLock

if TYPE_CHECKING:
    from .uploads import UploadFuture

logger = logging.getLogger("s3bp")

#: How long a save waits for a child whose stdin is full before giving up on it (seconds).
SEND_WAIT = 10.0

_links: weakref.WeakSet[ChildLink] = weakref.WeakSet()


def _close_inherited() -> None:
    """In a forked child: close the pipes to the parent's uploader (its end of stdin would keep the uploader waiting)."""
    for link in list(_links):
        link._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class ChildLink:
    """The saving process's end of one child uploader: submit entries, get their outcomes.

    Parameters
    ----------
    proc
        The child, with pipes on its stdin and stdout.
    token
        The owner token of the claim the child holds.
    cond
        The queue's condition: notified whenever an entry is settled.
    on_failed
        ``on_failed(link, entry_id, future, report, error)``, from the reader thread.
    on_lost
        ``on_lost(link, waiting)`` when the child ended with entries unsettled (``waiting``: id -> (future, report)).
    """

    def __init__(
        self, proc: subprocess.Popen, token: str, cond: threading.Condition, *,
        on_failed: Callable[[ChildLink, str, UploadFuture, bool, BaseException], None],
        on_lost: Callable[[ChildLink, dict[str, tuple[UploadFuture, bool]]], None],
    ):  # fmt: skip
        self.proc, self.pid, self.token = proc, proc.pid, token
        self._cond, self._on_failed, self._on_lost = cond, on_failed, on_lost
        self._waiting: dict[str, tuple[UploadFuture, bool]] = {}
        self._returning: set[str] = set()  # taken back after the child ended, not queued again yet
        self._send_lock = threading.Lock()
        assert proc.stdin is not None and proc.stdout is not None
        self._in, self._out = proc.stdin, proc.stdout
        os.set_blocking(self._in.fileno(), False)
        self.alive = True
        self.ready = False  #: whether the child has started serving (it says so once its queue and client are up)
        self.stopped = False  #: whether this process stopped it on purpose (see :meth:`stop`)
        self._quiet = False  # closed on purpose with entries left to the child: its end is no loss
        _links.add(self)
        threading.Thread(target=self._read, name="s3bp-uploader-link", daemon=True).start()

    def pending(self) -> int:
        """How many entries the child has not settled yet (call with the condition held)."""
        return len(self._waiting) + len(self._returning)

    def waiting_ids(self) -> set[str]:
        """The ids of the entries the child has not settled yet (call with the condition held)."""
        return set(self._waiting) | self._returning

    def submit(self, entry_id: str, fut: UploadFuture, report: bool) -> bool:
        """Hand the journaled entry ``entry_id`` to the child; False when the child is gone (the entry is still its)."""
        with self._cond:
            if not self.alive:
                return False
            self._waiting[entry_id] = (fut, report)
        if self._send(f"save {entry_id}\n"):
            return True
        with self._cond:  # already taken by the loss handler: it answers for the entry
            return self._waiting.pop(entry_id, None) is None

    def resize(self, workers: int) -> None:
        """Tell the child to use ``workers`` upload threads."""
        self._send(f"workers {workers}\n")

    def _send(self, text: str) -> bool:
        """Write one line to the child's stdin; False when the child is gone or stuck (then it is killed)."""
        data = text.encode()
        with self._send_lock:
            fd = self._in.fileno() if not self._in.closed else -1
            try:
                while data:
                    try:
                        data = data[os.write(fd, data) :]
                    except BlockingIOError:
                        if not select.select([], [fd], [], SEND_WAIT)[1]:
                            logger.warning("s3bp: the uploader process (pid %d) takes no work; it is stopped", self.pid)
                            with contextlib.suppress(OSError):
                                self.proc.kill()
                            return False
            except (OSError, ValueError):
                return False
        return True

    def _read(self) -> None:
        """The reader thread: settle futures from the child's answers until its stdout ends."""
        fd, buf = self._out.fileno(), b""
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                *lines, buf = (buf + data).split(b"\n")
                for line in lines:
                    self._answer(line)
        except OSError:
            pass
        with contextlib.suppress(OSError, ValueError):
            self._out.close()
        self._ended()

    def _answer(self, line: bytes) -> None:
        """Settle the future one answer is about."""
        kind, _, rest = line.partition(b" ")
        if kind == b"ready":
            self.ready = True
            return
        entry_id, _, detail = rest.decode("ascii", "replace").partition(" ")
        with self._cond:
            got = self._waiting.get(entry_id)
        if got is None:
            return
        fut, report = got
        try:
            if kind == b"ok":
                fut.unchanged = detail == "1"
                fut.set_result(fut.key)
            else:
                self._on_failed(self, entry_id, fut, report, decode_error(detail))
        finally:  # settled before it stops counting as pending: a flush that waited sees its outcome
            with self._cond:
                self._waiting.pop(entry_id, None)
                self._cond.notify_all()

    def _ended(self) -> None:
        """The child's stdout ended: it exited. Hand what it left unsettled to ``on_lost``."""
        with self._cond:
            self.alive = False
            waiting, self._waiting = self._waiting, {}
            self._returning = set(waiting)  # still counted as pending until queued again: a waiter never sees a gap
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._in.close()
        try:
            if not self._quiet:
                self._on_lost(self, waiting)
        finally:
            with self._cond:
                self._returning = set()
                self._cond.notify_all()

    def halted(self) -> bool:
        """Whether the child is stopped by a signal (SIGSTOP): it answers nothing until it is continued (Linux; elsewhere False)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[1].split()[0] == b"T"
        except (OSError, IndexError):
            return False

    def stop(self) -> None:
        """Kill the child (e.g. one still starting when this process would rather upload itself): its entries come back."""
        self.stopped = True
        with contextlib.suppress(OSError):
            self.proc.kill()

    def close(self, *, leave: bool = False) -> None:
        """Close the child's stdin: it finishes its entries and exits. ``leave``: what it has left is no longer waited for here."""
        self._quiet = leave
        with self._send_lock, contextlib.suppress(OSError):
            self._in.close()

    def _forget(self) -> None:
        """In a forked child: close the inherited pipe ends without telling the uploader anything."""
        self.alive = False
        self._quiet = True
        for f in (self._in, self._out):
            with contextlib.suppress(OSError, ValueError):
                f.close()


def spawn(
    *, owners_dir: Path, cond: threading.Condition, config: str | os.PathLike[str], state_dir: str | os.PathLike[str],
    overrides: Mapping[str, Any], workers: int, on_failed: Callable[..., None], on_lost: Callable[..., None],
) -> ChildLink | None:  # fmt: skip
    """Start a child uploader holding a new claim in ``owners_dir``; None when it cannot be started (saves then use threads)."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    lock = FileLock(owners_dir / f"{token}.lock")
    lock.acquire()
    fd = lock.fileno()
    assert fd is not None
    cmd = [sys.executable, "-m", "s3bp.uploader", "--config", os.fspath(config), "--state-dir", os.fspath(state_dir)]
    cmd += ["--serve", token, "--owner-fd", str(fd), "--workers", str(workers), "--overrides", json.dumps(dict(overrides))]
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the child runs this very copy of s3bp
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        from .locks import open_own

        log = open_own(Path(state_dir) / "uploader.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, pass_fds=(fd,), close_fds=True,
                start_new_session=True, env=env,
            )  # fmt: skip
        finally:
            os.close(log)
    except OSError as exc:
        lock.release()
        with contextlib.suppress(OSError):
            os.unlink(lock.lock_file)
        logger.warning("s3bp: could not start an uploader process (%s); saves upload in this process's threads", exc)
        return None
    lock.let_go()  # the child holds the claim now, for as long as it lives
    return ChildLink(proc, token, cond, on_failed=on_failed, on_lost=on_lost)


def encode_error(error: BaseException) -> str:
    """An error as one line of ASCII (the exception pickled; its text when it cannot be)."""
    try:
        return "p" + base64.b64encode(pickle.dumps(error)).decode("ascii")
    except Exception:  # an unpicklable error: its type and text
        return "t" + base64.b64encode(f"{type(error).__name__}: {error}".encode()).decode("ascii")


def decode_error(text: str) -> BaseException:
    """The error :func:`encode_error` wrote."""
    from .errors import UploadError

    try:
        raw = base64.b64decode(text[1:])
        if text[:1] == "p":
            error = pickle.loads(raw)
            if isinstance(error, BaseException):
                return error
        return UploadError(raw.decode("utf-8", "replace"))
    except Exception as exc:  # a garbled line: still a failure the caller sees
        return UploadError(f"the uploader process reported a failure that could not be read ({exc})")


def serve(*, config: str, overrides: Mapping[str, Any], state_dir: str, token: str, fd: int, workers: int) -> int:
    """The child's side (``python -m s3bp.uploader --serve``): upload the entries named on stdin, answer on stdout.

    Returns when stdin ends (the parent closed it or exited) and every entry
    of the claim is uploaded or kept journaled as failed.
    """
    from .config import ConfigFile
    from .core import Store
    from .uploads import Owner

    owner = Owner.inherited(Path(state_dir) / "owners", token, fd)
    # Linux's batch policy: the same CPU share, but the child's threads, waking on each answer from S3, do not preempt
    # the saving process (a nice value instead would starve the uploads on a busy machine).
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
    store = Store(config=ConfigFile(config, overrides), state_dir=state_dir)
    out = threading.Lock()

    def answer(entry_id: str, fut: Any) -> None:
        error = fut.exception()
        line = f"ok {entry_id} {int(bool(fut.unchanged))}\n" if error is None else f"fail {entry_id} {encode_error(error)}\n"
        with out, contextlib.suppress(OSError):
            os.write(1, line.encode())

    try:
        queue = store.serve_claim(owner, workers)
        store.client()  # connected before the first upload
        with out, contextlib.suppress(OSError):
            os.write(1, b"ready\n")
        for raw in sys.stdin.buffer:
            kind, _, arg = raw.strip().partition(b" ")
            if kind == b"save":
                entry_id = arg.decode("ascii", "replace")
                fut = queue.take(entry_id)
                if fut is None:  # gone meanwhile (superseded or taken back): nothing left to send
                    with out, contextlib.suppress(OSError):
                        os.write(1, f"ok {entry_id} 0\n".encode())
                else:
                    fut.add_done_callback(functools.partial(answer, entry_id))
            elif kind == b"workers" and arg.isdigit() and int(arg) > 0:
                queue.resize(int(arg))
        queue.take_rest()  # journaled for us by a parent that exited before naming them
    finally:
        store.close()
    return 0

