"""What the Nagios 4 and Icinga 2 fixtures share: a running daemon a test
flips and watches, polling with a useful failure, and a stop that leaves no
process of the daemon behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, List, Optional


class RunningDaemon:
    """What a test does with a running monitoring daemon, Nagios 4 or Icinga 2.

    Subclasses (dataclasses) have ``root`` (where the check script reads its
    state files), ``spool``, ``proc`` and a ``log`` property.
    """

    root: Path
    spool: Path
    proc: subprocess.Popen

    @property
    def log(self) -> Path:
        raise NotImplementedError

    @property
    def events_file(self) -> Path:
        return self.spool / "events.jsonl"

    def flip(self, state: str, output: Optional[str] = None, host: bool = False) -> None:
        """Make the next check of the service (or the host) report ``state``."""
        path = self.root / ("host.state" if host else "service.state")
        if output is not None:
            Path(str(path) + ".output").write_text(output)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(state + "\n")
        os.replace(tmp, path)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self) -> List[dict]:
        """The events the handler spooled, oldest first."""
        return read_events(self.events_file)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        """Poll ``predicate`` until it returns something truthy; fail with the log tail."""
        return wait_for(predicate, timeout, what or getattr(predicate, "__name__", "condition"),
                        lambda: self.log_text()[-3000:], self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def read_events(path: Path) -> List[dict]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             context: Callable[[], str] = lambda: "", proc: Optional[subprocess.Popen] = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for {what}\n{context()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{context()}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the daemon, reap it, and wait for its process group to go.

    Nagios's workers (command file reader, check workers) outlive the main
    process by a moment; a test that checks "Nagios is gone" must not race
    them.  The daemon was started in a session of its own, so its group id
    is its pid.  Anything left after ``timeout`` gets SIGKILL.
    """
    pgid = proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + timeout
    killed = False
    while group_alive(pgid):
        if time.monotonic() > deadline:
            if killed:
                raise AssertionError(f"process group {pgid} survived SIGKILL for {timeout}s")
            # SIGKILL is delivered asynchronously: wait for it to take effect too,
            # or a worker still holding the command FIFO open outlives stop().
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            for pid in _members(pgid):   # those in a process group of their own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + timeout
        time.sleep(0.02)


def _members(pgid: int) -> List[int]:
    """Live processes of group or session ``pgid`` (zombies waiting for init do not count).
    The session too: a daemon's helper that moved to a process group of its own still
    holds what the daemon opened, the command FIFO included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid pgrp session ...; comm may contain spaces.
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if pgid in (int(rest[2]), int(rest[3])) and rest[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def group_alive(pgid: int) -> bool:
    """Whether a process of group or session ``pgid`` still runs (see ``_members``)."""
    return bool(_members(pgid))
