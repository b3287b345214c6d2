"""Checks held back by scheduled downtime (rule 1), as the fold knows them.

A problem check in downtime -- its own, or its host's -- asks for nothing
while ``act_in_downtime`` is false.  Nagios and Icinga run no event handler
when a downtime ends, so these are the checks whose downtime the collector
must look up itself (``monitoring.downtimes``), and the ones ``escalator
status`` and ``check_escalator`` list as held by downtime.  Pure: reads the
state, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from ..event import GOOD_STATES, CheckKey
from .state import State


@dataclass(frozen=True)
class InDowntime:
    """A check that would fail (rule 1) but for a scheduled downtime."""

    key: CheckKey
    state: str
    state_type: str
    level: Optional[int]           # the level it would ask for; None = unmapped
    own: int                       # the check's own downtime depth
    host: int                      # its host's downtime depth

    @property
    def why(self) -> str:
        if self.own > 0:
            return "in scheduled downtime"
        return f"its host {self.key[0]} is in scheduled downtime"


def in_downtime(state: State) -> List[InDowntime]:
    """The problem checks that downtime alone keeps from failing, ordered by host and service.

    Empty with ``act_in_downtime: true`` (downtime holds nothing back then)."""
    config = state.config
    if config.act_in_downtime:
        return []
    out = []
    for key, cs in state.problems.items():
        if cs.state is None or cs.state in GOOD_STATES or cs.state_type not in config.state_types:
            continue
        if config.unreachable == "ignore" and key[0] in state.unreachable:
            continue
        own, host = cs.downtime, state.host_downtime.get(key[0], 0)
        if own > 0 or host > 0:
            out.append(InDowntime(key, cs.state, cs.state_type, cs.level, own, host))
    out.sort(key=lambda d: (d.key[0], d.key[1] or ""))
    return out


__all__ = ["InDowntime", "in_downtime"]
