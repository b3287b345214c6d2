"""File operations another user cannot redirect: for files root may write in others' directories.

The spool belongs to the monitoring user, and a collector or an operator
command may run as root.  Whatever they create there is opened relative to
the directory's descriptor with ``O_NOFOLLOW`` (a planted symlink is refused,
never followed), temporary files get ``O_EXCL`` and unpredictable names, and
whole files are replaced by a rename inside that descriptor.  Nothing here
truncates an existing file.

Files root creates follow their directory's owner and group
(:func:`follow_owner`): after a root collect the spool's owner and the state
directory's owner (escalator's own user) can still use what root left there.

Standard library only: the handler's hot path imports the spool, which may
import this module.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path is not what escalator expects there (a symlink, a FIFO, a directory...)."""


def open_dir(path: str) -> int:
    """The directory ``path`` as a descriptor; its last component must not be a symlink."""
    try:
        return os.open(path, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise UnsafePath(exc.errno, f"{path} is a symbolic link, not a directory") from None
        raise


def follow_owner(fd: int, dir_st: os.stat_result, group_only: bool = False) -> None:
    """Running as root: give the file on ``fd`` its directory's owner and group.

    So that a root collector or root's ``escalator pause`` never leaves a file
    that the directory's owner (the spool's monitoring user, or escalator's
    own user in the state directory) can no longer write.  ``group_only``:
    keep root as the owner (an operator command, whose owner says who gave it).
    """
    if os.geteuid() != 0:
        return
    st = os.fstat(fd)
    uid = st.st_uid if group_only else dir_st.st_uid
    if (st.st_uid, st.st_gid) != (uid, dir_st.st_gid):
        os.fchown(fd, uid, dir_st.st_gid)


def write_atomic(dir_path: str, name: str, data: bytes, mode: int = 0o640) -> None:
    """Replace ``dir_path/name`` with ``data`` whole: an O_EXCL temporary file, then a rename.

    Raises OSError.  A symlink planted at ``name`` is replaced, never followed.
    """
    dfd = open_dir(dir_path)
    try:
        write_atomic_at(dfd, name, data, mode)
    finally:
        os.close(dfd)


def write_atomic_at(dfd: int, name: str, data: bytes, mode: int = 0o640, keep_owner: bool = False) -> None:
    """:func:`write_atomic` in the open directory ``dfd`` (``keep_owner``: see :func:`follow_owner`)."""
    tmp = f".{name}.{os.getpid()}.{os.urandom(8).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    try:
        try:
            os.fchmod(fd, mode)  # exact, whatever the umask
            follow_owner(fd, os.fstat(dfd), group_only=keep_owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise


def open_regular(dfd: int, name: str, flags: int, mode: int = 0o640) -> int:
    """Open (creating with ``mode`` when ``flags`` has O_CREAT) a regular file in ``dfd``.

    Never follows a symlink, never blocks on a FIFO, never truncates; raises
    UnsafePath for anything but a regular file with one link (a hard link to
    someone else's file is refused too).
    """
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(exc.errno, f"{name} is a symbolic link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise UnsafePath(exc.errno, f"{name} is not a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        what = "has other hard links" if stat.S_ISREG(st.st_mode) else "is not a regular file"
        raise UnsafePath(errno.EPERM, f"{name} {what}")
    if flags & os.O_CREAT:
        follow_owner(fd, os.fstat(dfd))
    return fd


class FlockFile:
    """An exclusive ``flock`` on ``dir_path/name``, created safely (see :func:`open_regular`).

    After locking, the name must still be the file locked (someone may have
    removed or replaced it meanwhile): otherwise it locks again.
    """

    def __init__(self, dir_path: str, name: str, mode: int = 0o600) -> None:
        self.dir_path = dir_path
        self.name = name
        self.mode = mode
        self.fd = -1

    @property
    def path(self) -> str:
        return os.path.join(self.dir_path, self.name)

    @property
    def is_locked(self) -> bool:
        return self.fd >= 0

    def acquire(self, timeout: float) -> bool:
        """True once locked; False when another holder kept it for ``timeout`` seconds.

        Raises OSError (UnsafePath included) when the file cannot be opened.
        """
        if self.fd >= 0:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            dfd = open_dir(self.dir_path)
            try:
                fd = open_regular(dfd, self.name, os.O_RDWR | os.O_CREAT, self.mode)
                try:
                    locked = _try_flock(fd)
                    if locked and _same_file(dfd, self.name, fd):
                        self.fd, fd = fd, -1
                        return True
                finally:
                    if fd >= 0:
                        os.close(fd)
            finally:
                os.close(dfd)
            if locked:
                continue  # the file was replaced under us: lock the new one
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def release(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)  # closing the last descriptor drops the flock


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _same_file(dfd: int, name: str, fd: int) -> bool:
    try:
        now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    st = os.fstat(fd)
    return (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev)


def describe_entry(dir_path: str, name: str) -> Optional[str]:
    """What is wrong with ``dir_path/name`` when it should be a regular file (None: fine or absent)."""
    try:
        st = os.lstat(os.path.join(dir_path, name))
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


__all__ = ["UnsafePath", "open_dir", "follow_owner", "write_atomic", "write_atomic_at", "open_regular",
           "FlockFile", "describe_entry"]
