"""The operating system behind one object, as the collector's side sees it.

The collector and its storage write, fsync, rename and remove files, read
the clock, start and kill processes; they do so through a :class:`System`
they are given, never through module functions looked up at call time.  A
test swaps the object (crash injection: ``tests/fault_fixtures.py`` kills the
process half-way through a journal write, after an fsync, while removing
spool files...) instead of patching module attributes, which stops working
silently the day a caller imports a function by name.  The idea is
supervisor's options object.

The handler's hot path (``spool.append``) does not go through it: it is a
short-lived process that imports as little as it can.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence


class System:
    """The real operating system.  Methods mirror the ``os`` functions they call."""

    # -- files -----------------------------------------------------------

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: Optional[int] = None) -> int:
        return os.open(path, flags, mode, dir_fd=dir_fd)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    # -- time ------------------------------------------------------------

    def time(self) -> float:
        """Epoch seconds (journal stamps)."""
        return time.time()

    def monotonic(self) -> float:
        """For durations and deadlines."""
        return time.monotonic()

    # -- processes -------------------------------------------------------

    def spawn(self, argv: Sequence[str], **popen: Any) -> Any:
        """Start a process (``subprocess.Popen(argv, **popen)``)."""
        import subprocess  # not at import time: most users of this module never spawn

        return subprocess.Popen(argv, **popen)

    def kill(self, pid: int, sig: int = signal.SIGTERM) -> None:
        os.kill(pid, sig)

    def killpg(self, pgid: int, sig: int = signal.SIGTERM) -> None:
        os.killpg(pgid, sig)


def drain(fd: int) -> int:
    """Read every byte pending on the non-blocking ``fd`` (a wake-up FIFO or pipe); how many."""
    total = 0
    while True:
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return total
        if not chunk:
            return total
        total += len(chunk)


class Signals:
    """SIGTERM, SIGINT and SIGHUP for a long-running process, also delivered on a pipe.

    The handlers run as Python signal handlers; the pipe (``fd``, non-blocking)
    turns readable when any signal arrives, so a process asleep in select()
    wakes at once.  Installed only from the main thread (Python's rule);
    elsewhere nothing is installed and ``fd`` is -1.
    """

    def __init__(self, on_stop: Callable[[int, object], None], on_hup: Callable[[int, object], None]) -> None:
        self._handlers = ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup))
        self._old: Dict[int, Any] = {}
        self._old_wakeup = -1
        self._r = self._w = -1

    @property
    def fd(self) -> int:
        return self._r

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_wakeup = signal.set_wakeup_fd(self._w)
        for sig, fn in self._handlers:
            self._old[sig] = signal.signal(sig, fn)

    def restore(self) -> None:
        for sig, fn in self._old.items():
            signal.signal(sig, fn)
        if self._old:
            signal.set_wakeup_fd(self._old_wakeup)
        self._old = {}
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1


#: The real system, for callers that were not handed another one.
REAL = System()

__all__ = ["REAL", "Signals", "System", "drain"]
