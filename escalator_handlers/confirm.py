"""What the collector learns from Nagios's status.dat (``nagios.status_file``).

At start-up it seeds the state with checks status.dat knows better (changes
the collector missed while down); before a run it confirms that the checks
asking for it still fail there.  Both return event records for the collector
to journal; neither acts.
"""

from __future__ import annotations

import logging
from typing import Iterable, List, Optional

from . import kinds
from .config import Config
from .errors import EscalatorError
from .event import GOOD_STATES, CheckKey
from .planning.state import State

log = logging.getLogger("escalator")


def _read(config: Config, reader: str, what: str) -> Optional[object]:
    """``monitoring.statusdat.<reader>(status_file)``, or None without one or when unreadable."""
    path = config.nagios.status_file if config.nagios else None
    if not path:
        return None
    from .monitoring import statusdat

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
