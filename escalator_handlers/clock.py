"""The collector's clock: epoch seconds that advance at the monotonic clock's pace.

Everything the collector measures -- the debounce, ``max_delay``, a level's
quiescence, a hold's ``--for``, an approval's timeout, retry backoff, the
per-host window, the hourly limit -- is a difference of two readings of this
clock, so a step of the wall clock (``date -s``, a VM resumed, NTP stepping a
clock that was hours off) changes none of them.  It reads like the wall
clock (journal stamps are times a person can read), because it starts on it
and is put back on it whenever the two part:

* :meth:`SteadyClock.jumped` compares it with the wall clock; a gap larger
  than the tolerance is a :class:`Jump`;
* the collector then journals a ``clock`` record with the jump's size and
  :meth:`SteadyClock.follow`\\ s the wall clock; folding that record moves every
  time the state holds by the same amount (``State.shift``), so whatever was
  counting keeps exactly the time it had left, and records written after it
  carry wall-clock times again.

Monotonic time does not survive a reboot: a collector starting afresh takes
the wall clock as it finds it (``Collector._recover`` compares it with the
journal's newest stamp, so a clock found behind the journal is a step back too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Sequence

from . import defaults as default
from . import kinds
from .display import duration
from .storage.seam import Taken
from .system import System


@dataclass(frozen=True)
class Jump:
    """The wall clock and the collector's clock, read at the same instant, apart."""

    steady: float      # what the collector's clock said
    wall: float        # what the wall clock said
    monotonic: float   # the monotonic reading they were taken at

    @property
    def size(self) -> float:
        """Seconds the wall clock stepped: positive forward, negative back."""
        return self.wall - self.steady

    def record(self, source: str = "collector") -> dict:
        """The ``clock`` journal record of this jump (stamped on the wall clock it follows)."""
        return clock_record(self.wall, self.size, self.steady, source)


def clock_record(now: float, jump: float, was: float, source: str) -> dict:
    """A ``clock`` record: at ``now`` (the new clock) the wall clock is ``jump`` seconds
    from where the collector's clock (``was``) had it."""
    direction = "forward" if jump > 0 else "back"
    seen = "" if source == "collector" else " (found behind the journal's newest record at start)"
    return {"time": now, "kind": kinds.CLOCK, "jump": round(jump, 3), "was": was, "source": source,
            "reason": f"the wall clock stepped {direction} by {duration(abs(jump))}{seen}; durations under way "
                      f"keep the time they had left"}


class SteadyClock:
    """Epoch seconds on the monotonic clock's pace (see the module docstring).  Call it to read."""

    def __init__(self, system: System, tolerance: float = default.CLOCK_TOLERANCE) -> None:
        self._system = system
        self.tolerance = tolerance
        self._wall = system.time()
        self._mono = system.monotonic()

    def __call__(self) -> float:
        return self._wall + (self._system.monotonic() - self._mono)

    def jumped(self) -> Optional[Jump]:
        """The wall clock, if it is more than the tolerance from this clock (not followed yet)."""
        mono = self._system.monotonic()
        wall = self._system.time()
        steady = self._wall + (mono - self._mono)
        if abs(wall - steady) <= self.tolerance:
            return None
        return Jump(steady, wall, mono)

    def follow(self, jump: Jump) -> None:
        """Read the wall clock again from now on (the jump's size is journalled and folded)."""
        self._wall, self._mono = jump.wall, jump.monotonic


def stepped(clock: Callable[[], float]) -> Optional[dict]:
    """The ``clock`` record of a step of the wall clock since ``clock`` last followed it
    (which it now does), or None.  A clock that is no :class:`SteadyClock` (one a test
    hands in) is taken at its word."""
    if not isinstance(clock, SteadyClock):
        return None
    jump = clock.jumped()
    if jump is None:
        return None
    clock.follow(jump)
    return jump.record()


def restamp(items: Sequence[Taken], step: Mapping[str, Any]) -> List[Taken]:
    """Spool items taken in with the ``clock`` record ``step``: an event stamped before the
    step (on the old clock) gets its ``time`` and ``check_time`` moved with the state, so
    it still orders before later observations and is neither dropped as older nor taken
    for a future one.  Old-clock stamps are told apart by where they fall: after a step
    forward, at or before the collector's old reading (``was``); after a step back, later
    than now -- the new clock, on which nothing written yet can be later."""
    jump, was = float(step["jump"]), float(step["was"])
    out = []
    for item in items:
        rec = item.record
        t = rec.get("time") if rec is not None and rec.get("kind", kinds.EVENT) == kinds.EVENT else None
        if isinstance(t, (int, float)) and not isinstance(t, bool) and ((jump > 0 and t <= was)
                                                                      or (jump < 0 and t > was + jump)):
            moved = dict(rec, time=t + jump)
            if isinstance(rec.get("check_time"), (int, float)) and not isinstance(rec["check_time"], bool):
                moved["check_time"] = rec["check_time"] + jump
            item = item._replace(record=moved)
        out.append(item)
    return out


def behind_journal(clock: Callable[[], float], seen: Optional[float]) -> Optional[dict]:
    """At a start: a clock found behind the newest time the journal's collector stamped
    (``seen``) stepped back meanwhile (or the previous leader's ran ahead): the ``clock``
    record of that step, or None.  A step forward meanwhile looks like time gone by."""
    if not isinstance(clock, SteadyClock) or seen is None:
        return None
    now = clock()
    if seen - now <= clock.tolerance:
        return None
    return clock_record(now, now - seen, seen, "journal")


__all__ = ["Jump", "SteadyClock", "behind_journal", "clock_record", "restamp", "stepped"]
