"""How bytes land on the local disk: written beside the target, moved into place last.

:class:`Placement` is used by every writer of a user's file (save, load,
pull, conflict resolution): the new bytes go to a temp file in the target's
directory whose name keeps the target's suffixes, and only a complete file
replaces the target, with ``os.replace``. A failure leaves the old file as
it was and no temp file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid

from .errors import ConflictError, InvalidPathError
from .freshness import LocalStat

ANY = object()  #: no expectation about the target


def from_stat(st: os.stat_result) -> LocalStat:
    """The :class:`LocalStat` of an ``os.stat`` result."""
    return LocalStat(st.st_size, st.st_mtime_ns)


def local_stat(path: str) -> LocalStat | None:
    """The file's size and mtime, or None when there is no such file."""
    try:
        return from_stat(os.stat(path))
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove(path: str | os.PathLike[str]) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def refuse_directory(path: str) -> None:
    """Raise :class:`InvalidPathError` when ``path`` is a directory, not a file."""
    if os.path.isdir(path):
        raise InvalidPathError(f"Cannot use {path}: it is a directory. Give the path of a file inside it.")


def check_file_target(path: str) -> None:
    """Refuse a directory as a file path; create missing parent directories (refusing a file as parent).

    Raises
    ------
    InvalidPathError
        When ``path`` is a directory or a parent of it is a file.
    """
    refuse_directory(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidPathError(f"Cannot use {path}: a parent of it is a file, not a directory.") from None


def file_md5(path: str) -> str:
    """The MD5 hex digest of a file's bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_snapshot(src: str, dest: str | os.PathLike[str]) -> None:
    """Copy ``src`` to ``dest`` for upload, in the kernel where possible.

    A copy, not a hard link: a hard link shares the inode, so rewriting the
    file in place (``open(path, "w")``) would change the snapshot too.
    ``copy_file_range`` clones instead of copying on filesystems that can
    (btrfs, XFS, NFS 4.2).
    """
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            with open(src, "rb") as fin, open(dest, "xb") as fout:
                while copy_range(fin.fileno(), fout.fileno(), 1 << 30):
                    pass
            return
        except OSError:
            remove(dest)
    shutil.copyfile(src, dest)


class Placement:
    """A new version of ``target``, written to :attr:`tmp` and moved into place by :meth:`commit`.

    Parameters
    ----------
    target
        The file to (re)place; missing parent directories are created.
    expect
        If given (a :class:`LocalStat`, or None for "no file"), :meth:`commit`
        refuses with :class:`ConflictError` when the target no longer matches it.

    Use as a context manager: leaving it removes the temp file if it was not committed.
    """

    def __init__(self, target: str, *, expect: object = ANY):
        check_file_target(target)
        self.target = target
        head, name = os.path.split(target)
        self.tmp = os.path.join(head, f".s3bp-{uuid.uuid4().hex[:8]}-{name}")
        self._expect = expect

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, *exc_info: object) -> None:
        remove(self.tmp)

    def written(self) -> bool:
        """Whether something was written to :attr:`tmp`."""
        return os.path.isfile(self.tmp)

    def commit(self, mtime: float | None = None) -> LocalStat:
        """Move the temp file into place, first setting its mtime to ``mtime`` if given; return its stat.

        Raises
        ------
        ConflictError
            When ``expect`` was given and the target changed meanwhile (it is kept).
        """
        if mtime is not None:
            stamp = int(mtime)
            os.utime(self.tmp, (stamp, stamp))
        stat = from_stat(os.stat(self.tmp))
        if self._expect is not ANY and local_stat(self.target) != self._expect:
            raise ConflictError(f"{self.target} changed while its new version was being written; the local file was kept.", self.target)
        os.replace(self.tmp, self.target)
        return stat


def set_aside(path: str, suffix: str) -> None:
    """Move ``path`` to ``path + suffix`` (replacing what was there), if it exists."""
    if os.path.exists(path):
        os.replace(path, path + suffix)

