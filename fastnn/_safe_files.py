"""File-system plumbing for the model files: an atomic, symlink-safe write and a careful open.

Writing. ``write_atomically`` never opens the destination for writing. It creates a new file
with a random name in the destination's directory (O_CREAT | O_EXCL | O_NOFOLLOW: it cannot
land on anything that already exists, a planted symlink included), writes and fsyncs it, then
``os.replace``s it onto the destination, so a reader opening the path at any moment sees the
complete old file or the complete new one, and concurrent writers never share a temporary
file. The directory is fsynced afterwards where the platform allows (best effort). On any
failure, KeyboardInterrupt included, the temporary file is removed and the destination is
untouched.

- A destination that is a symlink is resolved (``os.path.realpath``) and the link's *target*
  is replaced, in the target's directory, so the link stays a link. A dangling link creates
  its target, as ``open(path, "w")`` would.
- An existing destination keeps its permission bits (``st_mode & 0o777``; setuid, setgid and
  sticky bits are not carried over, nor is the owner). A new one gets what ``open`` gives,
  0o666 less the umask (or the directory's default ACL): the kernel applies it, so the umask
  is never read or changed (``os.umask`` is process-wide and racy between threads).
- A destination that is a directory raises ``PathIsADirectoryError``; any other file that is
  not a regular file (FIFO, device, socket) raises ValueError. Nothing is written then.

Reading. ``open_without_blocking`` opens only what ``stat`` says is a regular file, with
O_NONBLOCK (a FIFO swapped in meanwhile does not block), and returns the ``fstat`` of the
opened descriptor, so the caller checks the kind and size of the very file it reads, not of
whatever the path named a moment earlier; it then reads no more than that size announces
(``read_up_to``).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from typing import BinaryIO, Optional

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)       # Windows: no newline translation
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | _O_CLOEXEC | _O_BINARY)
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | _O_CLOEXEC | _O_BINARY)
_NAME_ATTEMPTS = 100


class PathIsADirectoryError(IsADirectoryError, ValueError):
    """A directory where a file was expected: both an OSError (IsADirectoryError) and a
    ValueError, so either ``except`` clause catches it (like NumPy's AxisError)."""


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "not a regular file"


def describe_non_regular(mode: int) -> str:
    """'not a regular file (a FIFO)' and the like, for error messages."""
    return f"not a regular file ({_file_kind(mode)})"


def _create_unique(directory: str, base: str, mode: int) -> tuple[int, str]:
    # Like tempfile.mkstemp, but with ``mode`` (umask applied by the kernel) instead of 0o600.
    prefix = "." + base[:64] + "."     # stays under NAME_MAX whatever the destination's name
    for _ in range(_NAME_ATTEMPTS):
        tmp = os.path.join(directory, prefix + secrets.token_hex(8) + ".tmp")
        try:
            return os.open(tmp, _CREATE_FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name found", directory)


def _set_mode(fd: int, name: str, mode: int) -> None:
    # Exactly the old bits, whatever the umask. A file system that refuses chmod leaves the
    # bits it was created with: the old ones less the umask, never wider.
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:
            os.chmod(name, mode)
    except PermissionError:
        pass


def _fsync_directory(directory: str) -> None:
    # Makes the rename durable; not possible everywhere (Windows), hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> str:
    """Replace the file at ``path`` (or a symlink's target) by ``data``; return the file
    written. See the module docstring for the guarantees.

    Raises
    ------
    PathIsADirectoryError
        If ``path`` (or its symlink's target) is a directory.
    ValueError
        If it is another kind of file that is not a regular file.
    OSError
        If the file cannot be written (the destination is then unchanged).
    """
    target = os.path.realpath(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        keep_mode = None
    else:
        if stat.S_ISDIR(st.st_mode):
            raise PathIsADirectoryError(f"cannot save to {path!r}: it is a directory")
        if stat.S_ISLNK(st.st_mode):        # realpath stopped at a link: a loop
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"cannot save to {path!r}: {describe_non_regular(st.st_mode)}")
        keep_mode = stat.S_IMODE(st.st_mode) & 0o777
    directory, base = os.path.split(target)
    fd, tmp = _create_unique(directory, base, 0o666 if keep_mode is None else keep_mode)
    try:
        try:
            if keep_mode is not None:
                _set_mode(fd, tmp, keep_mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory or os.curdir)
    return target


def open_without_blocking(path: str) -> tuple[Optional[BinaryIO], os.stat_result]:
    """Open ``path`` for reading without blocking on a FIFO. Return the unbuffered file and the
    ``fstat`` of its descriptor; the file is None (and nothing left open) when it is not a
    regular file, so the caller refuses it by ``st_mode``."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):    # not even opened: opening some devices does things
        return None, st
    fd = os.open(path, _READ_FLAGS)     # the path may have changed since: fstat decides
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            return os.fdopen(fd, "rb", buffering=0), st
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None, st


def read_up_to(f: BinaryIO, n: int) -> bytearray:
    """Read ``n`` bytes from ``f``, fewer only at end of file (short reads are retried)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        chunk = f.readinto(view[got:])      # type: ignore[attr-defined]
        if not chunk:                       # 0: end of file (None cannot happen: regular file)
            break
        got += chunk
    view.release()
    del buf[got:]
    return buf
