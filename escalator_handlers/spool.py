"""The spool: a crash-safe, multi-writer queue of events on disk.

Handlers append one JSON line each to ``<spool>/events.jsonl`` under an
exclusive ``flock``; the collector *takes* the file by renaming it to
``taken-<ns>-<pid>.jsonl`` and removes a taken file only after its records
are durably journalled.  Layout of a spool directory:

``events.jsonl``
    the live file handlers append to;
``taken-<ns>-<pid>.jsonl``
    files the collector has taken (leftovers of a crashed collector are taken
    again by the next one);
``collector.lock`` / ``collector.pid``
    a sign that a collector runs, and its pid (handlers only probe the lock);
    the lock that decides who acts is beside the journal, where the spool's
    owner cannot remove it (``storage/local.py``);
``wakeup``
    a FIFO the collector reads; a handler writes one byte to wake it.

A record is one line of ASCII JSON, so newlines, NUL and undecodable bytes in
untrusted text are escaped and a line is a record.  Writers hold the lock for
the whole write and cut a failed write back off, so readers that lock never
see a torn record; readers that do not lock (``pending``) skip an unfinished
last line.

This module is the writer's side and sits on the handler's hot path: it
imports only light standard modules, and
:class:`~escalator_handlers.errors.SpoolError` (whose module pulls in
dataclasses and typing) is imported only when an error is raised.  The
collector's side (take, read_records, finish, pending, the wakeup FIFO's
reading end) lives in :mod:`escalator_handlers.spool_reader`, which imports
this module (never the other way round) for the layout, the safety checks
and ``fail``/``refuse``/``open_dir``/``check_dir_fd``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at import; the handler avoids it
    from typing import NoReturn, Optional

# The two defaults the handler's hot path needs live here, not in defaults.py
# (which re-exports them), so that the handler imports no module more.
#: The spool directory without ``spool:``, ``--spool`` or ``$ESCALATOR_SPOOL``.
DEFAULT_SPOOL = "/var/spool/escalator"
#: The spool directory's permissions when escalator creates it (``spool_mode:``).
DEFAULT_MODE = 0o750

EVENTS = "events.jsonl"
WAKEUP = "wakeup"
LOCK = "collector.lock"
PID = "collector.pid"
TAKEN_PREFIX = "taken-"
TAKEN_SUFFIX = ".jsonl"

_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def fail(message: str) -> NoReturn:
    from .errors import SpoolError  # lazy: see the module docstring

    raise SpoolError(message)


def refuse(spool: str, why: str, fix: str) -> NoReturn:
    fail(f"refusing to use spool {spool}: {why}; {fix}")


def new_id() -> str:
    """A record id unique across processes: time, pid and 32 random bits."""
    return f"{time.time_ns():x}-{os.getpid():x}-{os.urandom(4).hex()}"


try:
    # The C string encoder json itself uses.  ``import json`` would load
    # json.decoder -> re -> enum, half the handler's own start-up cost.
    from _json import encode_basestring_ascii as _json_str
except ImportError:  # not CPython: json's pure-Python one
    from json.encoder import py_encode_basestring_ascii as _json_str

_INF = float("inf")


def _json_general(record: dict) -> str:
    """Any record, as json.dumps would write it; for what ``encode`` has no fast path for."""
    import json

    return json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def encode(record: dict) -> bytes:
    """One record as its spool line: ASCII JSON ending in a newline.

    Byte for byte what ``json.dumps(record, ensure_ascii=True,
    separators=(",", ":"), allow_nan=False)`` writes (``tests/test_spool.py``
    checks it): event records are flat (strings, numbers, null), so they are
    written here and anything else goes to the json module.
    """
    parts = []
    for k, v in record.items():
        t = type(v)
        if t is str:
            s = _json_str(v)
        elif v is None:
            s = "null"
        elif t is int:
            s = int.__repr__(v)
        elif t is float:
            if v != v or v == _INF or v == -_INF:
                raise ValueError(f"Out of range float values are not JSON compliant: {v!r}")
            s = float.__repr__(v)
        elif t is bool:
            s = "true" if v else "false"
        else:
            return (_json_general(record) + "\n").encode("ascii")
        if type(k) is not str:
            return (_json_general(record) + "\n").encode("ascii")
        parts.append(f"{_json_str(k)}:{s}")
    return ("{" + ",".join(parts) + "}\n").encode("ascii")


def open_dir(path: str, create: bool, mode: int) -> int:
    """Open the spool directory without following a symlink; create it if asked."""
    try:
        return os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            fail(f"spool {path} does not exist")
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # Linux says ENOTDIR for a symlink here
            _refuse_not_dir(path)
        fail(f"cannot open spool {path}: {exc.strerror}")
    try:
        os.makedirs(path, mode)
        os.chmod(path, mode)  # makedirs honours the umask; the spool mode is exact
    except FileExistsError:
        pass  # another handler created it meanwhile
    except OSError as exc:
        fail(f"cannot create spool {path}: {exc.strerror}")
    return open_dir(path, False, mode)


def _refuse_not_dir(path: str) -> NoReturn:
    try:
        st = os.lstat(path)
    except OSError:
        refuse(path, "a parent of it is not a directory", "fix the spool path")
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        refuse(path, f"it is a symbolic link (to {target})", "point the spool at the real directory")
    refuse(path, "it is not a directory", "fix the spool path")


def check_dir_fd(path: str, dfd: int) -> os.stat_result:
    st = os.fstat(dfd)
    if st.st_mode & stat.S_IWOTH:
        refuse(path, f"it is world-writable (mode {stat.S_IMODE(st.st_mode):04o})", f"chmod o-w {path}")
    return st


def _check_entries(path: str, dfd: int, names: tuple = (EVENTS, WAKEUP)) -> None:
    for name in names:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        full = os.path.join(path, name)
        if stat.S_ISLNK(st.st_mode):
            refuse(path, f"{full} is a symbolic link", f"remove {full}")
        if name == EVENTS:
            _check_events_stat(path, full, st)


def _check_events_stat(path: str, full: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        refuse(path, f"{full} is not a regular file", f"remove {full}")
    if st.st_mode & stat.S_IWOTH:
        refuse(path, f"{full} is world-writable (mode {stat.S_IMODE(st.st_mode):04o})", f"chmod o-w {full}")


def check_spool_dir(path: str, create: bool = True, mode: int = DEFAULT_MODE) -> None:
    """Make sure *path* is a spool we may use, creating it with *mode* if asked.

    Refuses (SpoolError) a symlink or non-directory, a world-writable
    directory or ``events.jsonl``, and a symlink at ``events.jsonl`` or
    ``wakeup``, like sshd's StrictModes: a spool others can write into could
    be fed fake events.
    """
    dfd = open_dir(path, create, mode)
    try:
        check_dir_fd(path, dfd)
        _check_entries(path, dfd)
    finally:
        os.close(dfd)


def append(spool_dir: str, record: dict, *, mode: int = DEFAULT_MODE) -> str:
    """Append *record* durably and wake the collector; return its id.

    The record gets a fresh ``id`` unless it has one.  On return the line is
    on disk (fsync).  Raises SpoolError with the reason when it cannot be
    written; a failed write is cut off again, so no torn record remains.
    """
    record = dict(record)
    rid = record.get("id") or new_id()
    record["id"] = rid
    line = encode(record)
    dfd = open_dir(spool_dir, True, mode)
    try:
        dir_st = check_dir_fd(spool_dir, dfd)
        _check_entries(spool_dir, dfd, (WAKEUP,))  # events.jsonl is checked on its open fd
        _append_line(spool_dir, dfd, dir_st, line)
        _wake(dfd)
    finally:
        os.close(dfd)
    return rid


def _open_live(spool_dir: str, dfd: int, dir_st: os.stat_result) -> tuple[int, os.stat_result]:
    """Open and lock the live events file; retry while the collector renames it."""
    full = f"{spool_dir.rstrip('/')}/{EVENTS}"
    for _ in range(1000):
        try:
            fd = os.open(EVENTS, _APPEND_FLAGS, 0o640, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse(spool_dir, f"{full} is a symbolic link", f"remove {full}")
            if exc.errno == errno.ENXIO:  # a FIFO planted instead of the file
                refuse(spool_dir, f"{full} is not a regular file", f"remove {full}")
            fail(f"cannot open {full}: {exc.strerror}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                now = os.stat(EVENTS, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if st.st_nlink > 0 and now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                _check_events_stat(spool_dir, full, st)
                if st.st_size == 0 and st.st_uid != dir_st.st_uid and os.geteuid() == 0:
                    # root (the CLI, a root collector) must not leave a file
                    # the spool's owner (the nagios user) can no longer append to
                    os.fchown(fd, dir_st.st_uid, dir_st.st_gid)
                return fd, st
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the collector took this file between our open and lock
    fail(f"cannot append to {full}: it keeps being replaced")


def _append_line(spool_dir: str, dfd: int, dir_st: os.stat_result, line: bytes) -> None:
    full = f"{spool_dir.rstrip('/')}/{EVENTS}"
    fd, st = _open_live(spool_dir, dfd, dir_st)
    try:
        size = st.st_size
        try:
            write_at_end(fd, size, line)
        except OSError as exc:
            _cut_back(fd, size, full, exc)
        fcntl.flock(fd, fcntl.LOCK_UN)  # release before fsync: others need not wait for the disk
        try:
            os.fsync(fd)
            if size == 0:
                os.fsync(dfd)  # a new file's directory entry must be durable too
        except OSError as exc:
            fail(f"cannot write {full}: fsync failed: {exc.strerror}")
    finally:
        os.close(fd)


def write_at_end(fd: int, size: int, data: bytes, write=os.write) -> int:
    """Write ``data`` (whole lines) at the end of the O_APPEND file ``fd``, ``size`` bytes long.

    A writer killed mid-write can leave a line without its newline; ``data``
    then starts on a fresh line, so only that torn one is lost.  Raises
    OSError when not all of it got written: the caller cuts the file back to
    ``size``.  Returns the bytes written.  Shared by the spool and the journal
    (which passes its ``System``'s ``write``).
    """
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data
    view = memoryview(data)
    while view:
        n = write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]
    return len(data)


def _cut_back(fd: int, size: int, full: str, exc: OSError) -> NoReturn:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EFBIG:
        reason += " (the file size limit, RLIMIT_FSIZE, was reached)"
    try:
        os.ftruncate(fd, size)
    except OSError as texc:
        reason += f"; removing the partial record failed too: {texc.strerror}"
    fail(f"cannot write {full}: {reason}")


def _wake(dfd: int) -> bool:
    try:
        fd = os.open(WAKEUP, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return False  # ENXIO: no collector reading; ENOENT: none ever started
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        os.write(fd, b"!")
        return True
    except OSError:
        return False  # EAGAIN: the FIFO is full of wake-ups already
    finally:
        os.close(fd)


def wake(spool_dir: str) -> bool:
    """Poke the collector through the wakeup FIFO; True when a byte was written."""
    try:
        dfd = os.open(spool_dir, _DIR_FLAGS)
    except OSError:
        return False
    try:
        return _wake(dfd)
    finally:
        os.close(dfd)


def collector_running(spool_dir: str) -> Optional[int]:
    """The running collector's pid (-1 when unknown), or None when none holds the lock.

    Probes ``collector.lock`` with a shared non-blocking flock, without
    creating it.  A lock file we may not read counts as "not running": the
    caller may then start a collector, which finds the lock held and exits.
    """
    try:
        fd = os.open(os.path.join(spool_dir, LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(spool_dir)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(spool_dir: str) -> int:
    try:
        # O_NONBLOCK, O_NOFOLLOW: nothing planted here can hang a handler or status.
        fd = os.open(os.path.join(spool_dir, PID), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return -1
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return -1
        return int(os.read(fd, 32).strip() or b"-1")
    except (OSError, ValueError):
        return -1
    finally:
        os.close(fd)


__all__ = [
    "EVENTS", "WAKEUP", "LOCK", "PID", "TAKEN_PREFIX", "TAKEN_SUFFIX", "new_id", "encode",
    "check_spool_dir", "append", "wake", "collector_running", "write_at_end",
]
