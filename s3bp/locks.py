"""Inter-process file locks, held by an open file: released when the holder exits, however it exits.

POSIX ``flock`` from the standard library (importing the ``filelock``
package costs ~40 ms, paid by every process's first load); elsewhere the
``filelock`` package.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


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
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

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
