"""Run a local process the way a step must: bounded output, hard timeout, clean kill.

Used by shell steps (``/bin/sh -c <rendered>``) and by chef steps without a
host (chef-client's argv, no shell).  The child gets stdin from /dev/null,
stdout and stderr merged into one pipe that we drain in chunks keeping only
the tail, and its own session (so its process group id is its pid).  On
timeout or cancel the *whole process group* gets SIGTERM, then SIGKILL after
a grace period, so a step's background children cannot outlive it.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from ..system import REAL, System
from .result import TailBuffer

log = logging.getLogger("escalator_handlers.steps")

#: How often a waiting step looks at its cancel event (seconds).
POLL = 0.1
#: After the main process exits, how long to keep reading output that
#: background children still write to the inherited pipe.
LINGER = 0.5


@dataclass(frozen=True)
class Outcome:
    """How a process (local or remote) ended."""

    exit: Optional[int]
    error: Optional[str] = None
    stopped: Optional[str] = None   # "timeout" or "cancelled" when we stopped it


def fmt_seconds(s: float) -> str:
    return f"{s:g}s" if s < 100 else f"{s:.0f}s"


def stop_message(stopped: str, timeout: float) -> str:
    return f"timed out after {fmt_seconds(timeout)}" if stopped == "timeout" else "cancelled"


def kill_group(proc: "subprocess.Popen[bytes]", grace: float) -> None:
    """SIGTERM the process group, give it ``grace`` seconds, then SIGKILL what is left.

    ``proc`` must have been started with ``start_new_session=True`` (so its pid
    is its group's id).  Shell steps and check_cucumber's runner both stop
    their children this way.
    """
    pgid = proc.pid  # start_new_session=True made the child a group leader
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        proc.poll()  # reap the leader so it does not keep the group alive as a zombie
        if not group_alive(pgid):
            break
        time.sleep(0.02)
    else:
        log.debug("process group %d survived SIGTERM for %gs; sending SIGKILL", pgid, grace)
    # Always finish with SIGKILL: a member that ignores TERM may still be a
    # zombie-looking straggler in the check above.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    # SIGKILL is delivered asynchronously: on a busy machine a member can
    # still be running when killpg() returns. Wait (briefly) until it is gone
    # so that "timed out" in the record means the group is dead.
    end = time.monotonic() + 2.0
    while group_alive(pgid) and time.monotonic() < end:
        time.sleep(0.01)


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is still running (zombies do not count).

    Orphaned children are reaped by init, which may take a while (a
    container's pid 1 may reap only every second or so); a zombie has
    already released everything, so waiting for the reap only wastes time.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True  # no procfs: trust killpg
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


#: Asked before a step starts: None to go on, or why not.
Gate = Callable[[], Optional[str]]


def _child_gate(gate: Gate) -> Callable[[], None]:
    def check() -> None:
        # In the child, after fork: the parent may have been frozen since it asked.
        if gate():
            raise RuntimeError("gate closed")
    return check


def run_process(argv: Sequence[str], *, env: Mapping[str, str], timeout: float,
                tail: TailBuffer, cancel: Optional[threading.Event] = None,
                kill_grace: float = 2.0, gate: Optional[Gate] = None, system: System = REAL) -> Outcome:
    """Run ``argv`` (started through ``system``) to completion, timeout or cancel; output goes into ``tail``.

    ``gate``, when given, is asked just before the start and again in the
    child between fork and exec: a reason from it means the process is not
    started (a cluster leader whose lease may have lapsed starts nothing).
    """
    deadline = time.monotonic() + timeout
    why = gate() if gate is not None else None
    if why:
        return Outcome(None, f"not started: {why}")
    try:
        proc = system.spawn(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, env=dict(env), close_fds=True,
            preexec_fn=_child_gate(gate) if gate is not None else None)
    except subprocess.SubprocessError:
        # Only preexec_fn raises this: the gate closed between our question and the exec.
        return Outcome(None, f"not started: {(gate and gate()) or 'refused just before exec'}")
    except OSError as exc:
        return Outcome(None, f"cannot start {argv[0]}: {exc.strerror or exc}")
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    stopped: Optional[str] = None
    exited_at: Optional[float] = None
    lingered = False
    try:
        while True:
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
                break
            if now >= deadline:
                stopped = "timeout"
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > LINGER:
                # The shell is gone but a background child still holds the
                # pipe open; do not wait for it (it may be a daemon).
                lingered = True
                break
            if not sel.select(min(POLL, deadline - now)):
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            tail.add(data)
        if stopped:
            kill_group(proc, kill_grace)
            _drain(fd, tail)
            return Outcome(None, stop_message(stopped, timeout), stopped)
        rc = _wait(proc, deadline, cancel)
        if rc is None:  # closed stdout early, then hung
            stopped = "cancelled" if cancel is not None and cancel.is_set() else "timeout"
            kill_group(proc, kill_grace)
            return Outcome(None, stop_message(stopped, timeout), stopped)
        if lingered:
            tail.note("[escalator] background processes still hold the step's output; "
                      "output after the step exited is not captured")
        if rc < 0:
            name = _signame(-rc)
            return Outcome(128 - rc, f"killed by signal {name}")
        return Outcome(rc)
    finally:
        sel.close()
        proc.stdout.close()
        if proc.returncode is None:  # an exception escaped above: never leak the group
            kill_group(proc, 0.0)


def _wait(proc: "subprocess.Popen[bytes]", deadline: float,
          cancel: Optional[threading.Event]) -> Optional[int]:
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or (cancel is not None and cancel.is_set()):
            return None
        try:
            return proc.wait(timeout=min(POLL, left))
        except subprocess.TimeoutExpired:
            continue


def _drain(fd: int, tail: TailBuffer) -> None:
    """Collect what the killed group wrote last, without blocking on stragglers."""
    end = time.monotonic() + 0.2
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < end and sel.select(0.05):
            data = os.read(fd, 65536)
            if not data:
                return
            tail.add(data)


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
