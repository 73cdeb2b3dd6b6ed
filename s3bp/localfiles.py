"""How bytes land on the local disk: written beside the target, moved into place last.

:class:`Placement` is used by every writer of a user's file (save, load,
pull, conflict resolution): the new bytes go to a file named like the target
(suffixes kept) in a private directory made beside it, and only a complete
file replaces the target, with ``os.replace``. A failure leaves the old file
as it was and nothing behind.

The directories are made exclusively (``mkdir`` follows no link planted at
their name) and named ``.s3bp-<pid>.<host><random>-NAME``, NAME shortened in
the middle when needed so that names fit the file-name limit; snapshots in
the spool are created ``O_EXCL|O_NOFOLLOW``. A process killed mid-write
leaves its directory behind: the first :class:`Placement` in a directory
(once per directory per process) removes those of processes that are gone on
this host, and those of other hosts older than :data:`STALE_AFTER`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import stat as stat_module
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import ConflictError, InvalidPathError
from .freshness import LocalStat, multipart_etag
from .tree import REMOTE_SUFFIX

#: errno values of a disk that cannot take a write (not of a serializer's own failure).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

ANY = object()  #: no expectation about the target

#: A temp file whose status last changed this long ago (seconds) is debris, whoever made it.
STALE_AFTER = 6 * 3600

_NAME_MAX = 255  # bytes in one file name, on nearly every filesystem
_S3TRANSFER_ROOM = 9  # s3transfer writes a large download to TMP + ".XXXXXXXX" first
_KEEP_SUFFIXES = 64  # bytes of trailing suffixes (".csv.gz") kept whole when a name is shortened
def _pid_namespace() -> str:
    """This process's pid namespace (containers sharing a host name and a folder have different ones), or ''."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


#: Tags temp names: pids are only compared between processes of one host name and pid namespace.
_HOST = hashlib.sha256(f"{socket.gethostname()}/{_pid_namespace()}".encode()).hexdigest()[:6]
# .s3bp-<pid>.<host tag><random>-NAME, or the 0.2 form .s3bp-<random>-NAME (no owner: stale by age only)
_TEMP = re.compile(r"\.s3bp-(?:(\d+)\.([0-9a-f]{6})[0-9a-f]{6}|[0-9a-f]{8})-.")
#: The suffix of the local side of a conflict settled in favour of S3.
LOCAL_SUFFIX = ".s3bp-local"
_SIDECARS = (REMOTE_SUFFIX, LOCAL_SUFFIX)  # s3bp's own files beside the user's: a link there is replaced


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


def file_multipart_etag(path: str, part_size: int) -> str:
    """The multipart ETag of a file uploaded in ``part_size`` parts (as :func:`s3bp.freshness.multipart_etag`), its
    parts hashed on a few threads at once (hashlib lets go of the GIL): a large file costs a fraction of one read's time."""
    from concurrent.futures import ThreadPoolExecutor

    size = os.path.getsize(path)
    count = max(1, -(-size // part_size))

    def part_md5(fd: int, number: int) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        offset, end = number * part_size, min(size, (number + 1) * part_size)
        while offset < end:
            chunk = os.pread(fd, min(1 << 20, end - offset), offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.digest()

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, count)) as pool:
            digests = list(pool.map(lambda n: part_md5(fd, n), range(count)))
    finally:
        os.close(fd)
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{count}"'


def make_snapshot(src: str, dest: str | os.PathLike[str], *, part_size: int | None = None) -> str | None:
    """Copy ``src`` to ``dest`` for upload, in the kernel where possible; with ``part_size``, return the copy's ETag.

    A copy, not a hard link: a hard link shares the inode, so rewriting the
    file in place (``open(path, "w")``) would change the snapshot too.
    ``copy_file_range`` clones instead of copying on filesystems that can
    (btrfs, XFS, NFS 4.2).

    With ``part_size`` (0: one MD5; else the multipart ETag of parts that
    size), the bytes go through this process instead and are hashed on the
    way: the ETag of exactly what was copied, without a second read.

    The snapshot is created exclusively (mode 0600) and removed again if the
    copy fails or is interrupted part-way. Only a regular file is copied:
    anything else now at ``src`` (a FIFO, a device) raises an
    :class:`OSError` naming ``src``, without waiting for a writer.
    """
    with open(_open_regular(src), "rb") as fin:
        fd = _create_exclusive(dest, 0o600)
        try:
            with open(fd, "wb") as fout:
                if part_size is None:
                    _copy_all(fin, fout)
                    return None
                return _copy_hashing(fin, fout, part_size)
        except BaseException:
            remove(dest)
            raise


def _open_regular(path: str) -> int:
    """Open ``path`` for reading if it is a regular file (never blocking on a FIFO); its descriptor."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat_module.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat_module.S_ISREG(mode):  # (on a regular file, O_NONBLOCK changes nothing)
            raise OSError(errno.EINVAL, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_hashing(fin: BinaryIO, fout: BinaryIO, part_size: int) -> str:
    """Copy ``fin`` to ``fout`` a chunk at a time; the ETag of the bytes copied (quoted, as S3 sends it)."""

    def chunks() -> Iterator[bytes]:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            fout.write(chunk)
            yield chunk

    if part_size > 0:
        return multipart_etag(chunks(), part_size)
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks():
        digest.update(chunk)
    return f'"{digest.hexdigest()}"'


def _copy_all(fin: BinaryIO, fout: BinaryIO) -> None:
    """Copy the open file ``fin`` to the empty ``fout``: in the kernel if it can, else through a buffer."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while copy_range(fin.fileno(), fout.fileno(), 1 << 30):
                pass
            return
        except OSError:  # not across these filesystems: start again by hand
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
    shutil.copyfileobj(fin, fout, 1 << 20)


class Placement:
    """A new version of ``target``, written to :attr:`tmp` and moved into place by :meth:`commit`.

    Parameters
    ----------
    target
        The file to (re)place; missing parent directories are created. When
        it is a symlink to a file, the file it points to is replaced and the
        link kept (as ``open(target, "w")`` would), except for s3bp's own
        ``NAME.s3bp-remote``/``.s3bp-local`` files, where a link is replaced.
    expect
        If given (a :class:`LocalStat`, or None for "no file"), :meth:`commit`
        refuses with :class:`ConflictError` when the target no longer matches
        it, unless the target now holds exactly the new bytes.

    :attr:`tmp` is a path that does not exist yet, inside a private directory
    made for this placement beside the target (``mkdir`` is exclusive and
    follows no link): a serializer may create it as it likes, even exclusively,
    and whatever else it writes there goes with the directory. Its name keeps
    the target's suffixes. The replaced file keeps its permission bits; a new
    one gets the umask's. Use as a context manager: leaving it removes the
    directory and anything left in it.

    With ``beside=True`` (for a writer that creates :attr:`tmp` exclusively,
    ``open(tmp, "xb")``, as a download does), :attr:`tmp` is a fresh temp name
    in the target's own directory instead: no private directory is made and
    removed for each file, which a pull of many small files notices. Leaving
    the context removes :attr:`tmp` if it is still there; a crash leaves a
    temp file that :func:`sweep` removes later, as it removes a directory.
    """

    def __init__(self, target: str, *, expect: object = ANY, beside: bool = False):
        refuse_directory(target)
        self.target = target
        self._dest = _write_path(target)
        head, name = os.path.split(self._dest)
        self._expect = expect
        self._dir = ""
        if beside:
            if not os.path.isdir(head):
                check_file_target(self._dest)  # a missing parent directory: make it (or say why not)
            sweep_once(head)
            self.tmp = os.path.join(head, temp_name(name, os.getpid(), uuid.uuid4().hex[:6]))
            return
        try:
            try:
                self._dir = _new_temp_dir(head, name)
            except (FileNotFoundError, NotADirectoryError):
                check_file_target(self._dest)  # a missing parent directory: make it (or say why not), then try again
                self._dir = _new_temp_dir(head, name)
        except OSError as exc:
            raise OSError(exc.errno, f"Cannot write a new version of {target} in {head}: {exc.strerror or exc}") from exc
        sweep_once(head)
        self.tmp = os.path.join(self._dir, shorten(name, _NAME_MAX - _S3TRANSFER_ROOM))

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._dir:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)  # not moved into place: a failed or refused download
            return
        try:
            os.rmdir(self._dir)  # the usual case: the new version was moved out, leaving the directory empty
        except OSError:
            shutil.rmtree(self._dir, ignore_errors=True)

    def written(self) -> bool:
        """Whether a file was written at :attr:`tmp`."""
        try:
            return stat_module.S_ISREG(os.lstat(self.tmp).st_mode)
        except OSError:
            return False

    def commit(self, mtime: float | None = None) -> LocalStat:
        """Move the new version into place, first setting its mtime to ``mtime`` if given; return the target's stat.

        Raises
        ------
        ConflictError
            When ``expect`` was given and the target changed meanwhile to other bytes (it is kept).
            A target that already holds exactly the new bytes is left as it is, and its stat returned.
        """
        if mtime is not None:
            stamp = int(mtime)
            os.utime(self.tmp, (stamp, stamp))
        st = os.lstat(self.tmp)
        if not stat_module.S_ISREG(st.st_mode):
            raise ConflictError(f"The new version of {self.target} is not a file; the local file was kept.", self.target)
        _keep_mode(self.tmp, st, self._dest)
        stat = from_stat(st)
        if self._expect is not ANY:
            now = local_stat(self._dest)
            if now != self._expect:
                if now is not None and now.size == stat.size and same_bytes(self.tmp, self._dest) and local_stat(self._dest) == now:
                    return now  # e.g. another process just placed the same version: in sync, nothing to do
                raise ConflictError(f"{self.target} changed while its new version was being written; the local file was kept.", self.target)
        os.replace(self.tmp, self._dest)
        return stat


def same_bytes(a: str, b: str) -> bool:
    """Whether two files hold the same bytes."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def temp_name(name: str, pid: int, token: str) -> str:
    """The temp file name for ``name``: ``.s3bp-<pid>.<host><token>-NAME``, NAME shortened in the middle to fit.

    Room is left for s3transfer's ``.XXXXXXXX`` on top, and the trailing
    suffixes (up to three, e.g. ``.csv.gz``) are kept: serializers pick
    engines and compression by suffix.
    """
    prefix = f".s3bp-{pid}.{_HOST}{token}-"
    return prefix + shorten(name, _NAME_MAX - _S3TRANSFER_ROOM - len(prefix))


def shorten(name: str, room: int) -> str:
    """``name`` cut to at most ``room`` bytes (as the filesystem encodes it), its trailing suffixes kept whole."""
    if len(os.fsencode(name)) <= room:
        return name
    tail = ""
    dot = len(name)
    for _ in range(3):
        dot = name.rfind(".", 1, dot)
        if dot <= 0 or len(os.fsencode(name[dot:])) > min(_KEEP_SUFFIXES, room // 2):
            break
        tail = name[dot:]
    stem = os.fsencode(name[: len(name) - len(tail)])[: room - len(os.fsencode(tail))]
    for cut in range(4):  # end on a whole character
        try:
            return stem[: len(stem) - cut].decode(sys.getfilesystemencoding()) + tail
        except UnicodeDecodeError:
            continue
    return os.fsdecode(stem) + tail


def is_temp(name: str) -> bool:
    """Whether ``name`` is an s3bp temp name (a save or download being written, see :func:`temp_name`)."""
    return _TEMP.match(name) is not None


def temp_is_stale(name: str, changed: float, now: float, *, alive: Callable[[int], bool] | None = None, host: str = _HOST) -> bool:
    """Whether the entry ``name``, whose status last changed at ``changed``, is an s3bp temp file left by no live operation.

    Stale: made on this host by a process that is gone (whatever its age: a
    live process's temp file is never taken, even by a process whose clock
    runs ahead); of another host, or named by an older version, when older
    than :data:`STALE_AFTER`.
    """
    match = _TEMP.match(name)
    if match is None:
        return False
    pid, tag = match.group(1), match.group(2)
    if pid is not None and tag == host:
        return not (alive or pid_alive)(int(pid))
    return now - changed > STALE_AFTER


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (True when that cannot be told)."""
    if os.name != "posix" or pid <= 0:
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def sweep(directory: str, now: float | None = None) -> list[str]:
    """Remove the stale s3bp temp files and directories in ``directory`` (see :func:`temp_is_stale`); return their paths."""
    now = time.time() if now is None else now
    removed = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.name.startswith(".s3bp-"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    # ctime, not mtime: a download sets its temp's mtime to S3's LastModified before the rename
                    if stat_module.S_ISREG(st.st_mode) and temp_is_stale(entry.name, st.st_ctime, now):
                        os.unlink(entry.path)
                        removed.append(entry.path)
                    elif stat_module.S_ISDIR(st.st_mode) and temp_is_stale(entry.name, st.st_ctime, now):
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed.append(entry.path)
                except OSError:
                    continue
    except OSError:
        pass
    return removed


_swept: set[str] = set()
_swept_lock = threading.Lock()
_swept_pid = os.getpid()


def sweep_once(directory: str) -> None:
    """:func:`sweep` ``directory`` if this process has not done so yet."""
    global _swept_pid
    with _swept_lock:
        if _swept_pid != os.getpid():  # a forked child sweeps for itself
            _swept.clear()
            _swept_pid = os.getpid()
        if directory in _swept:
            return
        _swept.add(directory)
    sweep(directory)


def _write_path(target: str) -> str:
    """Where a new version of ``target`` goes: the file a symlink at ``target`` points to, if it is one of the user's."""
    if target.endswith(_SIDECARS) or not os.path.islink(target):
        return target
    real = os.path.realpath(target)
    return real if os.path.isfile(real) else target  # a dangling link, or one to a non-file, is replaced


def _new_temp_dir(head: str, name: str) -> str:
    """Make a private directory for a new version of ``name`` in ``head``, under a fresh s3bp temp name; its path."""
    for _ in range(100):
        path = os.path.join(head, temp_name(name, os.getpid(), uuid.uuid4().hex[:6]))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"Cannot make a temp directory beside {os.path.join(head, name)}: every name tried exists.")


def _create_exclusive(path: str | os.PathLike[str], mode: int) -> int:
    """Create ``path`` for writing, failing if anything (a symlink included) is there; its descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, mode)


def _keep_mode(tmp: str, st: os.stat_result, dest: str) -> None:
    """Give ``tmp`` the permission bits (and, where allowed, the group) of the file it replaces; a new file keeps its own."""
    try:
        old = os.stat(dest)
    except (FileNotFoundError, NotADirectoryError):
        return
    mode, gid = stat_module.S_IMODE(old.st_mode) & 0o777, old.st_gid
    if gid != st.st_gid and hasattr(os, "chown"):
        with contextlib.suppress(OSError):  # not a member of that group
            os.chown(tmp, -1, gid)
    if stat_module.S_IMODE(st.st_mode) != mode:
        os.chmod(tmp, mode)


def sidecar(path: str, suffix: str) -> str:
    """The path of s3bp's own file beside ``path``: ``NAME`` + ``suffix``, NAME shortened in the middle if that is too long."""
    head, name = os.path.split(path)
    return os.path.join(head, shorten(name, _NAME_MAX - len(os.fsencode(suffix))) + suffix)


def drop_sidecar(path: str, suffix: str) -> bool:
    """Remove s3bp's own file beside ``path`` (``NAME`` + ``suffix``) if there is one (a regular file, never a directory)."""
    try:
        os.unlink(sidecar(path, suffix))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return True


def set_aside(path: str, aside: str) -> bool:
    """Move ``path`` to ``aside`` (replacing what was there); whether there was anything to move."""
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return False
    return True
