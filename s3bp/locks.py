"""Inter-process file locks, held by an open file: released when the holder exits, however it exits.

POSIX ``flock`` from the standard library (importing the ``filelock``
package costs ~40 ms, paid by every process's first load); elsewhere the
``filelock`` package.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from collections.abc import Iterable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


#: Locks holding a descriptor: a forked child closes its copies (a flock belongs to the open file,
#: so a child that kept one would keep its parent's lock alive after the parent is gone).
_held: weakref.WeakSet = weakref.WeakSet()


_forked = False


def forked() -> bool:
    """Whether this process is a forked copy of another (started by ``os.fork`` without a new program)."""
    return _forked


def _close_inherited() -> None:
    """In a forked child: close the descriptors of every lock inherited from the parent (the parent keeps its locks)."""
    global _forked
    _forked = True
    for lock in list(_held):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class FileLock:
    """An exclusive lock on ``path`` (created if missing).

    Parameters
    ----------
    path
        The lock file.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.lock_file = os.fspath(path)
        self._fd: int | None = None
        self._fallback = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, return False at once if another holder has it."""
        if fcntl is None:  # pragma: no cover - Windows
            import filelock

            self._fallback = self._fallback or filelock.FileLock(self.lock_file)
            try:
                self._fallback.acquire(timeout=-1 if blocking else 0)
            except filelock.Timeout:
                return False
            return True
        fd = _open_lock_file(self.lock_file)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _held.add(self)
        return True

    def _forget(self) -> None:
        """Close an inherited descriptor without unlocking (the lock is the parent's)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    @classmethod
    def holding(cls, path: str | os.PathLike[str], fd: int) -> FileLock:
        """The lock on ``path`` held through the descriptor ``fd`` (inherited from the process that took it)."""
        lock = cls(path)
        lock._fd = fd
        _held.add(lock)
        return lock

    def fileno(self) -> int | None:
        """The descriptor holding the lock, or None."""
        return self._fd

    def let_go(self) -> None:
        """Close this descriptor without unlocking: another process holding the same open file keeps the lock."""
        self._forget()

    def release(self) -> None:
        """Give the lock up."""
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
        elif self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class StripedLocks:
    """Exclusive locks on names, spread over a fixed set of lock files so that none accumulate.

    Every thread and process using the same ``directory`` sees the same locks:
    a thread lock per stripe orders the threads of one process, and ``flock``
    on the stripe's file orders the processes. The files stay open for the
    lifetime of the object (a lock then costs two system calls, not five);
    :meth:`close` closes them. Two names may share a stripe: they then only
    wait for each other.

    Parameters
    ----------
    directory
        Where the lock files live (created if missing).
    prefix
        Names the lock files, so that several families of locks can share a directory.
    stripes
        How many lock files.
    """

    def __init__(self, directory: str | os.PathLike[str], prefix: str, stripes: int = 64):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _tighten(directory, 0o700)
        self._dir, self._prefix, self._stripes = os.fspath(directory), prefix, stripes
        self._pid = os.getpid()
        self._guards = [threading.Lock() for _ in range(self._stripes)]
        self._fds: dict[int, int] = {}
        _held.add(self)

    def _forget(self) -> None:
        """In a forked child: close the inherited lock files (never unlocking: the locks are the parent's) and start afresh."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pid = os.getpid()
        self._guards = [threading.Lock() for _ in range(self._stripes)]

    def _stripe(self, name: str) -> int:
        """The stripe ``name`` falls on."""
        import hashlib  # here: OpenSSL's start-up is not for every command that imports this module

        return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big") % self._stripes

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock of ``name`` for the duration of the block."""
        with self._hold_stripe(self._stripe(name)):
            yield

    @contextlib.contextmanager
    def hold_all(self, names: Iterable[str]) -> Iterator[None]:
        """Hold the locks of every name in ``names`` for the duration of the block.

        Their stripes are taken in ascending order, each once: two holders of
        several locks never wait for each other in a circle, and a holder of
        one (:meth:`hold`) waits for nothing else while it holds it.
        """
        with contextlib.ExitStack() as stack:
            for stripe in sorted({self._stripe(name) for name in names}):
                stack.enter_context(self._hold_stripe(stripe))
            yield

    @contextlib.contextmanager
    def _hold_stripe(self, stripe: int) -> Iterator[None]:
        """Hold one stripe: its thread lock, then its file lock."""
        path = os.path.join(self._dir, f"{self._prefix}-{stripe:03d}.lock")
        if fcntl is None:  # pragma: no cover - Windows
            with FileLock(path):
                yield
            return
        with self._guards[stripe]:
            fd = self._fds.get(stripe)
            if fd is None:
                fd = self._fds[stripe] = _open_lock_file(path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock files (no lock may be held)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def open_own(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """Open one of s3bp's own files with ``flags``, never through a symlink: one planted at its name is removed first."""
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    os.unlink(path)  # a symlink where s3bp keeps its own file: replaced, never followed
    return os.open(path, flags, mode)


def _open_lock_file(path: str) -> int:
    """Open (creating, 0600 whatever the umask) a lock file; read-only when it exists on a read-only file system.

    ``flock`` works on a descriptor opened for reading, so a lock can still be
    taken (e.g. to tell whether a journal's owner is alive) where nothing can be written.
    """
    try:
        fd = open_own(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or not os.path.exists(path):
            raise
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        _tighten(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _tighten(target: int | str | os.PathLike[str], mode: int) -> None:
    """Give our file or directory (a path or a descriptor) exactly ``mode`` if it has other bits (made by an older version, or under an odd umask)."""
    if os.name != "posix":
        return
    st = os.stat(target)
    if st.st_mode & 0o777 != mode and st.st_uid == os.geteuid():
        with contextlib.suppress(OSError):  # a read-only file system: it stays as it is
            os.chmod(target, mode)
