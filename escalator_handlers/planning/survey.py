"""The planner's survey: which failing checks ask for which level (rules 1, 8, 9).

:func:`survey` sorts the failing checks into asking (mapped, host not held),
unmapped (rule 9: reported, ignored) and held (rule 8).  :func:`survey_all`
does it from scratch; :func:`survey` gives exactly the same answer from a
:class:`SurveyCache` kept up to date between decisions, because replay
decides tens of thousands of times a day of log, a few events apart.

Who owns the cache: the :class:`~escalator_handlers.planning.state.State` does, as
``state.survey_cache``, like its other derived data.  ``State.observe`` notes
each observed check in ``cache.changed``; :func:`survey` re-examines only
those (and starts afresh after a new config or a change of holds).  The cache
is never journalled or snapshotted: it changes no decision, only how fast one
is made, so the planner stays a function of state, config and time.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Set, Tuple

from ..event import CheckKey

if TYPE_CHECKING:
    from ..config import Config

#: ``planning.state.State`` (not imported: the state owns this module's cache).
State = Any


@dataclass(frozen=True)
class Asking:
    """A failing check and the level it maps to."""

    key: CheckKey
    state: str
    state_type: str
    level: int          # mapped level (1-based)
    target: bool = True  # its rule makes its host a target (rule key ``target``)

    def record(self, config: Config) -> dict:
        rec = {"host": self.key[0], "service": self.key[1], "state": self.state,
               "level": config.levels[self.level - 1].name}
        if not self.target:
            rec["target"] = False
        return rec


@dataclass
class Survey:
    """The failing checks, sorted: by level (most drastic first), host, service."""

    asking: List[Asking] = field(default_factory=list)
    unmapped: List[CheckKey] = field(default_factory=list)
    held: List[Asking] = field(default_factory=list)


def survey(state: State) -> Survey:
    """Sort the failing checks into asking, unmapped (rule 9) and held (rule 8)."""
    return state.survey_cache.survey(state)


def survey_all(state: State) -> Survey:
    """Survey every problem check from scratch."""
    s = Survey()
    holds = state.holds
    for key, cs in state.problems.items():
        if not state.failing(key, cs):
            continue
        if cs.level is None:
            s.unmapped.append(key)
            continue
        a = Asking(key, cs.state or "", cs.state_type, cs.level, state.is_target(key, cs.state))
        (s.held if holds and state.held(key) is not None else s.asking).append(a)
    # A stable order, whatever order the checks failed in (or a snapshot listed them).
    s.unmapped.sort(key=lambda k: (k[0], k[1] or ""))
    s.asking.sort(key=_order)
    s.held.sort(key=_order)
    return s


def _order(a: Asking) -> tuple:
    return (a.level, a.key[0], a.key[1] or "")


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
    """What :func:`survey` keeps between decisions (owned by ``State``; module docstring)."""

    __slots__ = ("changed", "config", "held_hosts", "entries", "asking", "unmapped", "held", "given_up")

    def __init__(self) -> None:
        self.changed: Set[CheckKey] = set()     # observed since the last survey (State.observe adds)
        self.config: Optional[Config] = None    # what the lists were sorted for
        self.held_hosts: Dict[str, str] = {}
        self.entries: Dict[CheckKey, Tuple[SortedValues, tuple, Any]] = {}
        self.asking, self.unmapped, self.held = SortedValues(), SortedValues(), SortedValues()
        self.given_up = False                   # see update(): survey from scratch from now on

    def survey(self, state: State) -> Survey:
        if self.given_up:
            return survey_all(state)
        changed = self.changed
        keys: Iterable[CheckKey] = changed
        # Without holds, state.held_hosts (a new dict each time) is not even built.
        if self.config is not state.config \
                or ((state.holds or self.held_hosts) and self.held_hosts != state.held_hosts):
            self._reset(state)
            keys = list(state.problems)
        elif len(changed) > len(state.problems) + len(self.entries):
            keys = set(state.problems).union(self.entries)  # long since the last survey: look at all
        else:
            hosts = {k[0] for k in changed if k[1] is None}
            if hosts:  # a host's downtime hides or shows every check of that host
                keys = changed.union(k for k in state.problems if k[0] in hosts)
        ok = self.update(state, keys)
        changed.clear()
        if not ok:
            self.given_up = True
            return survey_all(state)
        # The cache's own lists, not copies: valid until the next survey, never to be changed.
        return Survey(self.asking.values, self.unmapped.values, self.held.values)

    def _reset(self, state: State) -> None:
        self.config = state.config
        self.held_hosts = dict(state.held_hosts)
        self.entries = {}
        self.asking, self.unmapped, self.held = SortedValues(), SortedValues(), SortedValues()

    def update(self, state: State, keys: Iterable[CheckKey]) -> bool:
        """Re-examine ``keys``; False when the order could differ from :func:`survey_all`'s."""
        problems, holds, failing, entries = state.problems, state.holds, state.failing, self.entries
        for key in keys:
            if key[1] == "":
                # (host, "") sorts level with the host check (host, None): only
                # survey_all's order of failing settles that tie.
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
                    value = Asking(key, cs.state or "", cs.state_type, cs.level, state.is_target(key, cs.state))
            where.add(skey, value)
            entries[key] = (where, skey, value)
        return True
