"""The hand-off at exit: wait or hand pending uploads to a background uploader, and say which one runs.

A process that exits (or is sent SIGTERM) with uploads pending and the
``handoff`` exit policy starts ``python -m s3bp.uploader`` detached, with the
same interpreter and environment (so the same credentials). The uploader
waits for that process to be gone, takes over its journal entries through the
owner locks, uploads them with the usual retries and exits when nothing it
can deliver is left. One uploader works per state directory at a time
(``uploader.lock``); ``s3bp status`` names it. The uploader itself is
:mod:`s3bp.uploader`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .locks import FileLock, open_own

if TYPE_CHECKING:
    from .uploads import UploadQueue

#: How long the uploader waits for the process that handed over to exit.
WAIT_FOR_EXIT = 120.0
LOCK, PID, _LOG = "uploader.lock", "uploader.pid", "uploader.log"


def exit_policy(setting: str, *, kernel: bool, interactive: bool) -> str:
    """``"wait"`` or ``"handoff"`` for the ``on_exit`` setting: ``auto`` hands off in a notebook kernel or an interactive session.

    A script, a container or a CI job may lose its machine when the main
    process ends, and a detached uploader with it: there the process waits.
    """
    if setting != "auto":
        return setting
    return "handoff" if kernel or interactive else "wait"


def context() -> dict[str, bool]:
    """Whether this interpreter is a notebook kernel (IPython's) or an interactive session."""
    from .progress import in_kernel

    return {"kernel": in_kernel(), "interactive": hasattr(sys, "ps1") or bool(sys.flags.interactive)}


def spawn(config: str | os.PathLike[str], state_dir: str | os.PathLike[str], after_pid: int | None = None) -> int | None:
    """Start a detached uploader for ``state_dir``; its pid, or None when it could not be started."""
    import subprocess

    state = Path(state_dir)
    cmd = [sys.executable, "-m", "s3bp.uploader", "--config", os.fspath(config), "--state-dir", os.fspath(state)]
    cmd += ["--after-pid", str(os.getpid() if after_pid is None else after_pid)]
    try:
        fd = open_own(state / _LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
    except OSError:
        return None
    return child.pid


def close_at_exit(queue: UploadQueue, settings: Mapping[str, Any], config: str | os.PathLike[str], state_dir: str | os.PathLike[str]) -> None:
    """At interpreter exit: wait for the queue, or (``handoff`` policy) wait ``exit_grace`` seconds and hand the rest over."""
    policy = exit_policy(settings["on_exit"], **context())
    handoff = (lambda pending: spawn(config, state_dir)) if policy == "handoff" else None
    queue.close(at_exit=True, handoff=handoff, grace=settings["exit_grace"])


def hand_over_on_sigterm(pending: Callable[[], bool], config: str | os.PathLike[str], state_dir: str | os.PathLike[str]) -> None:
    """On SIGTERM, start an uploader for what is pending, then die of the signal as before.

    Installed only from the main thread and only where SIGTERM still has its
    default action (the process's own handlers are never replaced). Python
    runs no exit handlers on SIGTERM, so without this a killed kernel or
    service would leave its saves to whichever process runs next.
    """
    import signal
    import threading

    from .locks import forked

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    if forked():  # a forked worker: its parent adopts what it leaves (see _default_sigterm_at_fork)
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        if pending():
            spawn(config, state_dir)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    global _on_sigterm
    _on_sigterm = on_sigterm
    signal.signal(signal.SIGTERM, on_sigterm)


#: The SIGTERM handler :func:`hand_over_on_sigterm` installed in this process, if any.
_on_sigterm: Callable[[int, Any], None] | None = None


def _default_sigterm_at_fork() -> None:
    """In a forked child (a multiprocessing worker): SIGTERM back to its default action, ending the process at once.

    A handler written in Python runs only when the main thread gets back to the interpreter; a worker whose main
    thread waits in a lock (a pool's task queue) while a SIGTERM lands on one of its upload threads never would, and
    ``Pool.terminate()`` would wait for it for ever. What such a worker leaves journaled, its parent adopts.
    """
    import signal

    if _on_sigterm is not None and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        with contextlib.suppress(ValueError):  # not the main thread after all: nothing to restore from here
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_sigterm_at_fork)


def running(state_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the uploader working on ``state_dir``, or None."""
    state = Path(state_dir)
    if not (state / LOCK).exists():
        return None
    lock = FileLock(state / LOCK)
    if lock.acquire(blocking=False):
        lock.release()
        return None
    try:
        return int((state / PID).read_text())
    except (OSError, ValueError):
        return -1
