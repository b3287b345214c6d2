"""The planner's survey, kept up to date between decisions instead of redone.

``planner.survey`` sorts the failing checks into asking, unmapped and held.
Replay decides tens of thousands of times a day of log, a few events apart,
so the sorted lists live here (in ``state.survey_cache``) and each decision
re-examines only the checks observed since the last one.  The result is
exactly ``planner._survey_all``'s; the planner falls back to that whenever it
cannot be sure (see ``SurveyCache.update``).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Tuple

from ..event import CheckKey

if TYPE_CHECKING:
    from ..config import Config
    from .state import State


class SortedValues:
    """Values kept in the order of their (unique) sort keys, by bisection."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: List[tuple] = []
        self.values: List[Any] = []

    def add(self, skey: tuple, value: Any) -> None:
        i = bisect_left(self.keys, skey)
        self.keys.insert(i, skey)
        self.values.insert(i, value)

    def remove(self, skey: tuple) -> None:
        i = bisect_left(self.keys, skey)
        del self.keys[i]
        del self.values[i]


class SurveyCache:
    """What ``planner.survey`` keeps between decisions: every failing check's entry.

    ``make_asking`` is ``planner.Asking`` (this module cannot import the planner).
    """

    __slots__ = ("config", "held_hosts", "make_asking", "is_target", "entries", "asking", "unmapped", "held")

    def __init__(self, config: Config, held_hosts: Dict[str, str], make_asking: Callable[..., Any],
                 is_target: Callable[..., bool]) -> None:
        self.config = config
        self.held_hosts = held_hosts
        self.make_asking = make_asking
        self.is_target = is_target
        self.entries: Dict[CheckKey, Tuple[SortedValues, tuple, Any]] = {}
        self.asking, self.unmapped, self.held = SortedValues(), SortedValues(), SortedValues()

    def update(self, state: State, keys: Iterable[CheckKey]) -> bool:
        """Re-examine ``keys``; False when the order could differ from ``planner._survey_all``'s."""
        problems, holds, failing, entries = state.problems, state.holds, state.failing, self.entries
        for key in keys:
            if key[1] == "":
                # (host, "") sorts level with the host check (host, None): only
                # planner._survey_all's order of failing settles that tie.
                return False
            old = entries.pop(key, None)
            if old is not None:
                old[0].remove(old[1])
            cs = problems.get(key)
            if cs is None or not failing(key, cs):
                continue
            if cs.level is None:
                where, skey, value = self.unmapped, (key[0], key[1] or ""), key
            else:
                where = self.held if holds and state.held(key) is not None else self.asking
                skey = (cs.level, key[0], key[1] or "")
                if old is not None and old[1] == skey and old[2].state == cs.state \
                        and old[2].state_type == cs.state_type:
                    value = old[2]  # unchanged: an Asking costs half a microsecond to make
                else:
                    value = self.make_asking(key, cs.state or "", cs.state_type, cs.level,
                                             self.is_target(key, cs.state))
            where.add(skey, value)
            entries[key] = (where, skey, value)
        return True
