"""The collector's side of the spool: take pending events, read them, finish.

The collector (holding ``collector.lock``) calls :func:`take`, reads each
taken file with :func:`read_records`, journals the effects durably and only
then calls :func:`finish`.  ``escalator status`` and ``plan`` peek with
:func:`pending` and :func:`pending_stats`.  The wakeup FIFO's reading end is
opened here too.  The writer's side, the layout and the safety checks are in
:mod:`escalator_handlers.spool`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time

from .spool import (
    DEFAULT_MODE, EVENTS, TAKEN_PREFIX, TAKEN_SUFFIX, WAKEUP, check_dir_fd, check_spool_dir, fail, open_dir, refuse,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator, Optional

    from .system import System

#: Longest line read_records parses; anything longer is reported corrupt.
MAX_LINE = 8 * 1024 * 1024


def open_wakeup(spool_dir: str) -> int:
    """For the collector: the wakeup FIFO, created if missing, opened read-write.

    Read-write so that select() never reports EOF when no handler has it
    open; non-blocking so ``system.drain`` can empty it.
    """
    dfd = open_dir(spool_dir, False, DEFAULT_MODE)
    try:
        dir_st = check_dir_fd(spool_dir, dfd)
        created = False
        try:
            os.mkfifo(WAKEUP, 0o620, dir_fd=dfd)
            created = True
        except FileExistsError:
            pass
        full = os.path.join(spool_dir, WAKEUP)
        try:
            fd = os.open(WAKEUP, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse(spool_dir, f"{full} is a symbolic link", f"remove {full}")
            fail(f"cannot open {full}: {exc.strerror}")
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.close(fd)
            refuse(spool_dir, f"{full} is not a FIFO", f"remove {full}")
        if created:
            os.fchmod(fd, 0o620)  # exact, whatever the umask: handlers of the group write
            if os.geteuid() == 0 and dir_st.st_uid != 0:
                os.fchown(fd, dir_st.st_uid, dir_st.st_gid)
        return fd
    finally:
        os.close(dfd)


def bad_entries(spool_dir: str) -> list[str]:
    """What is wrong with the spool's own entries (a directory, FIFO or symlink where a file
    belongs...), one plain sentence each naming the entry; empty when nothing is.

    Readers say it as a warning and carry on: nothing here is needed to pause.
    """
    from .operator_config import RUNNING_CONFIG
    from .safefs import describe_entry
    from .spool import LOCK, PID

    try:
        names = set(os.listdir(spool_dir))
    except OSError:
        return []
    out = []
    files = [n for n in (EVENTS, LOCK, PID, RUNNING_CONFIG) if n in names]
    files += sorted(n for n in names if n.startswith(TAKEN_PREFIX) and n.endswith(TAKEN_SUFFIX))
    for name in files:
        what = describe_entry(spool_dir, name)
        if what is not None:
            full = os.path.join(spool_dir, name)
            out.append(f"{full} is {what}, not a file: remove it")
    if WAKEUP in names:
        try:
            st = os.lstat(os.path.join(spool_dir, WAKEUP))
        except OSError:
            st = None
        if st is not None and not stat.S_ISFIFO(st.st_mode):
            out.append(f"{os.path.join(spool_dir, WAKEUP)} is not a FIFO: remove it (the collector makes it)")
    return out


def _taken(spool_dir: str) -> list[str]:
    try:
        names = os.listdir(spool_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        os.path.join(spool_dir, n) for n in names if n.startswith(TAKEN_PREFIX) and n.endswith(TAKEN_SUFFIX)
    )


def take(spool_dir: str, system: Optional[System] = None) -> list[str]:
    """For the collector (holding the collector lock): take the pending events.

    Renames a non-empty ``events.jsonl`` to a new taken file and returns every
    taken file in the spool, oldest first (including those a crashed collector
    left).  When it returns, no handler is still writing into them.  The rename
    goes through ``system`` (default: the real one).
    """
    check_spool_dir(spool_dir, create=False)
    live = os.path.join(spool_dir, EVENTS)
    try:
        size = os.stat(live, follow_symlinks=False).st_size
    except FileNotFoundError:
        size = 0
    if size:
        # Zero-padded so that name order is time order.
        target = os.path.join(spool_dir, f"{TAKEN_PREFIX}{time.time_ns():020d}-{os.getpid()}{TAKEN_SUFFIX}")
        try:
            (system.rename if system is not None else os.rename)(live, target)
        except OSError as exc:
            fail(f"cannot take {live}: {exc.strerror}")
    paths = _taken(spool_dir)
    for path in paths:
        # A handler that locked the file before the rename may still be
        # writing; its lock ends when its record is complete.
        try:
            # O_NONBLOCK: a FIFO planted under a taken- name must not hang us here.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                refuse(spool_dir, f"{path} is a symbolic link", f"remove {path}")
            fail(f"cannot open {path}: {exc.strerror}")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                refuse(spool_dir, f"{path} is not a regular file", f"remove {path}")
            fcntl.flock(fd, fcntl.LOCK_EX)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return [p for p in paths if os.path.exists(p)]


def open_entry(path: str) -> Optional[BinaryIO]:
    """A spool file opened for reading, or None when it is missing or not a regular file.

    Never follows a symlink and never waits on a FIFO: whatever the spool's
    owner plants there, readers (``status``, ``plan``, the brake) neither hang
    nor read another file through it.  ``take`` refuses such entries by name.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO, errno.ENOTDIR):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_records(path: str) -> Iterator[tuple[int, Optional[dict], str]]:
    """Yield (line number, record or None when corrupt, raw text) for each line.

    A line that is not a JSON object, is longer than MAX_LINE, or is the last
    one and lacks its newline (a torn write) yields None; nothing here raises
    for bad content.  A missing file (or anything but a regular file) yields nothing.
    """
    f = open_entry(path)
    if f is None:
        return
    with f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            complete = raw.endswith(b"\n")
            if not complete and len(raw) > MAX_LINE:
                while True:  # skip the rest of an overlong line
                    rest = f.readline(MAX_LINE)
                    if not rest or rest.endswith(b"\n"):
                        break
                yield number, None, raw[:200].decode("utf-8", "backslashreplace") + "..."
                continue
            text = raw.rstrip(b"\n").decode("utf-8", "backslashreplace")
            record = None
            if complete:
                try:
                    record = json.loads(raw)
                except Exception:  # not only ValueError: a deeply nested line raises RecursionError
                    record = None
                if not isinstance(record, dict):
                    record = None
            yield number, record, text


def finish(paths: list[str], system: Optional[System] = None) -> None:
    """Remove taken files whose records are durably journalled, durably (through ``system``)."""
    if system is None:
        from .system import REAL as system
    dirs = set()
    for path in paths:
        try:
            system.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            fail(f"cannot remove {path}: {exc.strerror}")
        dirs.add(os.path.dirname(path) or ".")
    for d in dirs:
        dfd = system.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            system.fsync(dfd)
        finally:
            system.close(dfd)


def _pending_files(spool_dir: str) -> list[str]:
    return _taken(spool_dir) + [os.path.join(spool_dir, EVENTS)]


def pending(spool_dir: str) -> list[dict]:
    """Every record not yet consumed (taken files, then the live file), without taking."""
    out = []
    for path in _pending_files(spool_dir):
        out.extend(rec for _, rec, _ in read_records(path) if rec is not None)
    return out


def pending_stats(spool_dir: str) -> tuple[int, Optional[float]]:
    """(number of pending lines, ``time`` of the first pending record or None).

    Counts newline-terminated lines without parsing them (a corrupt line
    counts too) and parses only up to the first good record, which has waited
    longest.
    """
    count = 0
    oldest = None
    for path in _pending_files(spool_dir):
        f = open_entry(path)
        if f is None:
            continue
        with f:
            if oldest is None:
                for _, rec, _ in read_records(path):
                    t = rec.get("time") if rec else None
                    if isinstance(t, (int, float)) and not isinstance(t, bool):
                        oldest = float(t)
                        break
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                count += chunk.count(b"\n")
    return count, oldest
