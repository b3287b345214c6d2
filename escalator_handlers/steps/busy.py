"""Config management in flight: before a step on a host, wait while a converge already runs there.

A ``chef`` step first looks at chef-client's own run lock (``Chef::RunLock``: an
exclusive ``flock`` on ``file_cache_path``/chef-client-running.pid, or on the
``lockfile`` client.rb names; chef-client leaves the file behind after a run,
so only the lock says whether one is running).  A level's ``busy_check`` (a
shell or ssh command, exit 0 = free) is asked before any of its per-host steps.
While a host is busy escalator looks again, up to the level's ``busy_wait``;
then it skips that host (a ``step`` record with ``skipped``) instead of starting
a second chef-client next to the one running.  A look that cannot be made
(connection refused, no ``flock`` there) is no reason to skip: the step itself
then runs and fails or waits on the lock as chef-client would.
"""

from __future__ import annotations

import shlex
import time
from typing import Callable, Optional, Sequence, Tuple

from .. import defaults as default
from ..config import Step
from .result import TailBuffer
from .shell import fmt_seconds

#: flock(1)'s exit status when the lock is held by someone else (util-linux, ``-n``).
LOCK_HELD = 1


def lock_script(lockfile: str) -> str:
    """Exit 0 when no chef-client holds ``lockfile``, LOCK_HELD when one does (other: can't tell)."""
    f = shlex.quote(lockfile)
    return (f"[ -e {f} ] || exit 0; command -v flock >/dev/null 2>&1 || exit 0; "
            f"exec flock -n {f} true")


#: A look: its name, the exit statuses that mean busy (None: any but 0), and a function
#: returning (exit status, or None when it could not look; output).
Probe = Tuple[str, Optional[Tuple[int, ...]], Callable[[], Tuple[Optional[int], str]]]


def poll_interval(wait: float) -> float:
    """Pause between two looks: a tenth of the wait, at least 0.2 s, at most ``BUSY_POLL``."""
    return min(default.BUSY_POLL, max(0.2, wait / 10))


def wait_free(step: Step, probes: Sequence[Probe], tail: TailBuffer, sleep: Callable[[float], bool],
              clock: Callable[[], float] = time.monotonic) -> Optional[str]:
    """Ask every probe until none says busy; return why the host is skipped, or None to go on.

    ``sleep(s)`` pauses and returns True when the run is cancelled meanwhile.
    """
    start = clock()
    deadline = start + step.busy_wait
    looks = 0
    while True:
        looks += 1
        busy = []
        for name, busy_exits, probe in probes:
            code, out = probe()
            if code is None:
                continue  # could not look: the step itself will tell
            if code in busy_exits if busy_exits is not None else code != 0:
                last = out.strip().splitlines()[-1][:200] if out.strip() else ""
                busy.append(name if busy_exits is not None else f"{name} exit {code}" + (f": {last}" if last else ""))
        if not busy:
            if looks > 1:
                tail.note(f"[escalator] converge in flight ended after {fmt_seconds(clock() - start)}; running")
            return None
        if clock() >= deadline:
            return (f"a converge is already in flight ({'; '.join(busy)}): waited "
                    f"{fmt_seconds(step.busy_wait)} ({looks} look{'s' if looks != 1 else ''}), "
                    f"skipped this host rather than start another")
        if looks == 1:
            tail.note(f"[escalator] a converge is in flight ({'; '.join(busy)}); waiting up to "
                      f"{fmt_seconds(step.busy_wait)}")
        if sleep(min(poll_interval(step.busy_wait), max(0.0, deadline - clock()))):
            return "cancelled while waiting for a converge in flight"


__all__ = ["LOCK_HELD", "Probe", "lock_script", "poll_interval", "wait_free"]
