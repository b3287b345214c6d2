"""The collector's conversation with the monitoring system, both ways.

- **status.dat** (``nagios.status_file``): at start-up, seed the state with
  the checks status.dat knows better (changes the collector missed while
  down); before a run, confirm that the checks asking for it still fail
  there.
- **Acknowledgements** by people (:mod:`.acks`): polled, and journalled when
  one appears or goes, so the planner leaves acknowledged hosts alone.
- **Scheduled downtime** (:mod:`.downtimes`): polled while a failing check is
  held back by downtime, and before a run for the checks asking for it, and
  journalled when a depth changed (no event handler runs when a downtime ends).
- **Feedback** (:mod:`.feedback`): tell Nagios or Icinga that a run started
  or finished, when ``nagios.command_file`` or ``nagios.icinga_api`` is set.

Every method returns journal records for the collector to write; none acts.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, List, Optional

from .. import kinds
from ..defaults import DOWNTIME_POLL
from ..config import Config
from ..errors import EscalatorError
from ..event import GOOD_STATES, CheckKey
from ..planning.downtime import in_downtime
from ..planning.state import State

log = logging.getLogger("escalator")


def _read(config: Config, reader: str, what: str) -> Optional[object]:
    """``statusdat.<reader>(status_file)``, or None without one or when unreadable."""
    path = config.nagios.status_file if config.nagios else None
    if not path:
        return None
    from . import statusdat

    try:
        return getattr(statusdat, reader)(path)
    except EscalatorError as exc:
        log.warning("cannot %s with %s: %s", what, path, exc)
        return None


def recovered_since(config: Config, state: State, asking: Iterable[CheckKey]) -> List[dict]:
    """Events for the asking checks that status.dat has seen OK since we last heard of them."""
    statuses = _read(config, "parse_status", "confirm")
    fresh: List[dict] = []
    for key in asking if statuses is not None else ():
        st = statuses.get(key)  # type: ignore[union-attr]
        cs = state.checks.get(key)
        if st is not None and st.state in GOOD_STATES and cs is not None and st.last_check > cs.time:
            fresh.append(dict(st.to_event().to_dict(), kind=kinds.EVENT, source="status.dat"))
    return fresh


def seed_events(config: Config, state: State) -> List[dict]:
    """Events for the checks whose status.dat state is newer and different from ours, oldest first."""
    new = []
    for ev in _read(config, "status_events", "seed") or ():  # type: ignore[union-attr]
        cs = state.checks.get(ev.key)
        if cs is None or (ev.time > cs.time and (ev.state != cs.state or ev.state_type != cs.state_type
                                                 or ev.downtime != cs.downtime)):
            new.append(dict(ev.to_dict(), kind=kinds.EVENT, source="status.dat"))
    new.sort(key=lambda r: r["time"])
    return new


class MonitoringLink:
    """One collector's link; ``dry_run`` (shadow mode) tells the monitoring nothing."""

    def __init__(self, config: Config, dry_run: bool = False) -> None:
        self.config = config
        self.dry_run = dry_run
        self._feedback: Any = None

    def reconfigure(self, config: Config) -> None:
        self.config, self._feedback = config, None

    def acks(self, state: State, now: float) -> List[dict]:
        """Records for acknowledgements by people that appeared or went since ``state`` saw them."""
        from . import acks

        return acks.poll(self.config, state.acks, now)

    def downtimes(self, state: State, keys: Iterable[CheckKey], now: float) -> List[dict]:
        """Downtime-only events for ``keys`` (and their hosts) whose downtime depth changed."""
        from . import downtimes

        return downtimes.poll(self.config, state, keys, now)

    def downtime_ends(self, state: State, now: float) -> List[dict]:
        """:meth:`downtimes` of the problem checks that downtime holds back: their downtime ending."""
        held = in_downtime(state)
        return self.downtimes(state, [d.key for d in held], now) if held else []

    def downtime_wake(self, state: State, wake: Optional[float], now: float) -> Optional[float]:
        """``wake``, or sooner (``DOWNTIME_POLL``) while downtime holds back a problem check
        whose downtime this link can look up: no event handler runs when a downtime ends."""
        from .downtimes import configured

        if configured(self.config.nagios) and in_downtime(state):
            return min(wake if wake is not None else float("inf"), now + DOWNTIME_POLL)
        return wake

    def tell(self, method: str, *args: object, now: float) -> List[dict]:
        """``Feedback.<method>(*args)`` if feedback is configured; a ``feedback`` record if it failed."""
        n = self.config.nagios
        if self.dry_run or n is None or not (n.command_file or n.icinga_api):
            return []
        from .feedback import Feedback

        if self._feedback is None:
            self._feedback = Feedback.from_config(n)
        try:
            getattr(self._feedback, method)(*args)
        except EscalatorError as exc:
            return [{"time": now, "kind": kinds.FEEDBACK, "outcome": "failed", "reason": f"{method}: {exc}"[:2000]}]
        return []
