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

Besides the sorted lists it keeps what the planner would otherwise count by
walking every failing check at every decision (a site with 10,000 failing
checks held back by a limit): per host the most drastic level a target
check of its asks for (:func:`hosts_by_level`, for ``max_targets``) and the
asking checks a continued skip has not listed yet (:func:`joined`).  A
decision then costs O(checks changed since the last one).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..event import CheckKey

if TYPE_CHECKING:
    from ..config import Config, Level

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


def hosts_by_level(state: State, asking: List[Asking]) -> Dict[int, int]:
    """Level -> how many hosts have it as the most drastic level one of their target
    checks in ``asking`` asks for (rule 3: a host is a target of that level and every
    less drastic one).  From the cache when ``asking`` is its list, else counted."""
    cache = state.survey_cache
    if asking is cache.asking.values:
        return cache.hosts_at
    first: Dict[str, int] = {}
    for a in asking:
        if a.target and a.level < first.get(a.key[0], 1 << 30):
            first[a.key[0]] = a.level
    out: Dict[int, int] = {}
    for level in first.values():
        out[level] = out.get(level, 0) + 1
    return out


def joined(state: State, asking: List[Asking]) -> List[Asking]:
    """The checks of ``asking`` not in ``state.skip_checks``: those that joined a skip
    episode since its last record (rule 8), in ``asking``'s order."""
    cache = state.survey_cache
    if asking is cache.asking.values:
        return cache.joined(state)
    covered = state.skip_checks
    return [a for a in asking if a.key not in covered]


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

    def replace(self, skey: tuple, value: Any) -> None:
        self.values[bisect_left(self.keys, skey)] = value

    def remove(self, skey: tuple) -> None:
        i = bisect_left(self.keys, skey)
        del self.keys[i]
        del self.values[i]


class SurveyCache:
    """What :func:`survey` keeps between decisions (owned by ``State``; module docstring)."""

    __slots__ = ("changed", "config", "held_hosts", "entries", "asking", "unmapped", "held", "given_up",
                 "host_view", "host_levels", "hosts_at", "covered", "skip_key", "fresh")

    def __init__(self) -> None:
        self.changed: Set[CheckKey] = set()     # observed since the last survey (State.observe adds)
        self.config: Optional[Config] = None    # what the lists were sorted for
        self.held_hosts: Dict[str, str] = {}
        self.entries: Dict[CheckKey, Tuple[SortedValues, tuple, Any]] = {}
        self.asking, self.unmapped, self.held = SortedValues(), SortedValues(), SortedValues()
        self.given_up = False                   # see update(): survey from scratch from now on
        # host -> (downtime, unreachable) as last surveyed: only a change hides or shows its services
        self.host_view: Dict[str, Tuple[int, bool]] = {}
        # host -> level -> its target checks asking for it; level -> hosts whose most drastic it is
        self.host_levels: Dict[str, Dict[int, int]] = {}
        self.hosts_at: Dict[int, int] = {}
        # The asking checks not in ``covered`` (the state's skip_checks set, while
        # its skip episode ``skip_key`` lasts); None: work it out afresh (joined()).
        self.covered: Optional[Set[CheckKey]] = None
        self.skip_key: Optional[str] = None
        self.fresh: Set[CheckKey] = set()

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
        else:
            hosts = self._hosts_seen_anew(state)
            if len(changed) > len(state.problems) + len(self.entries):
                keys = set(state.problems).union(self.entries)  # long since the last survey: look at all
            elif hosts:  # a host's downtime hides or shows every check of that host
                keys = changed.union(k for k in state.problems if k[0] in hosts)
        if self.covered is not None and (state.skip_checks is not self.covered or state.last_skip is None
                                         or state.last_skip != self.skip_key):
            self.covered = None  # a new skip episode (or none): joined() starts afresh
        ok = self.update(state, keys)
        changed.clear()
        if not ok:
            self.given_up = True
            return survey_all(state)
        # The cache's own lists, not copies: valid until the next survey, never to be changed.
        return Survey(self.asking.values, self.unmapped.values, self.held.values)

    def _hosts_seen_anew(self, state: State) -> Set[str]:
        """The hosts among the changed host checks whose downtime or unreachability changed."""
        out = set()
        view, downtime, unreachable = self.host_view, state.host_downtime, state.unreachable
        for host, service in self.changed:
            if service is None:
                now = (downtime.get(host, 0), host in unreachable)
                if view.get(host, (0, False)) != now:
                    out.add(host)
                    view[host] = now
        return out

    def _reset(self, state: State) -> None:
        self.config = state.config
        self.held_hosts = dict(state.held_hosts)
        self.entries = {}
        self.asking, self.unmapped, self.held = SortedValues(), SortedValues(), SortedValues()
        self.host_levels, self.hosts_at, self.covered = {}, {}, None
        self.host_view = {h: (d, h in state.unreachable) for h, d in state.host_downtime.items()}
        self.host_view.update((h, (state.host_downtime.get(h, 0), True)) for h in state.unreachable)

    def _count(self, host: str, level: int, n: int) -> None:
        """``n`` more (or fewer) target checks of ``host`` ask for ``level``."""
        levels = self.host_levels.get(host)
        if levels is None:
            levels = self.host_levels[host] = {}
        before = min(levels) if levels else 0
        k = levels.get(level, 0) + n
        if k:
            levels[level] = k
        else:
            del levels[level]
        after = min(levels) if levels else 0
        if before != after:
            at = self.hosts_at
            if before:
                if at[before] == 1:
                    del at[before]
                else:
                    at[before] -= 1
            if after:
                at[after] = at.get(after, 0) + 1
        if not levels:
            del self.host_levels[host]

    def _drop(self, key: CheckKey, old: Tuple[SortedValues, tuple, Any]) -> None:
        """Take ``key``'s old entry out of its list (and of the counts)."""
        old[0].remove(old[1])
        if old[0] is self.asking:
            self.fresh.discard(key)
            if old[2].target:
                self._count(key[0], old[2].level, -1)

    def joined(self, state: State) -> List[Asking]:
        """:func:`joined` of the cache's own asking list, in O(checks that joined)."""
        covered = state.skip_checks
        if self.covered is None:
            self.fresh = {a.key for a in self.asking.values if a.key not in covered}
            self.covered, self.skip_key = covered, state.last_skip
        else:  # a continued skip record since: what it listed is covered now
            self.fresh = {k for k in self.fresh if k not in covered}
        entries = self.entries
        return [v for _, v in sorted((entries[k][1], entries[k][2]) for k in self.fresh)]

    def update(self, state: State, keys: Iterable[CheckKey]) -> bool:
        """Re-examine ``keys``; False when the order could differ from :func:`survey_all`'s."""
        problems, holds, failing, entries = state.problems, state.holds, state.failing, self.entries
        asking, fresh, covered = self.asking, self.fresh, self.covered
        counted = state.config.state_types
        for key in keys:
            if key[1] == "":
                # (host, "") sorts level with the host check (host, None): only
                # survey_all's order of failing settles that tie.
                return False
            old = entries.get(key)
            cs = problems.get(key)
            # Rule 1's state type first: most changes between surveys are SOFT chatter.
            if cs is None or cs.state_type not in counted or not failing(key, cs):
                if old is not None:
                    del entries[key]
                    self._drop(key, old)
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
            if old is not None:
                if old[0] is where and old[1] == skey:
                    # The same place in the same list (most re-examined checks): what
                    # removing and adding it again would leave, without the bisections.
                    if old[2] is not value:
                        where.replace(skey, value)
                        entries[key] = (where, skey, value)
                        if where is asking and old[2].target != value.target:
                            self._count(key[0], value.level, 1 if value.target else -1)
                    if where is asking:
                        if covered is not None and key not in covered:
                            fresh.add(key)
                        else:
                            fresh.discard(key)
                    continue
                self._drop(key, old)
            where.add(skey, value)
            entries[key] = (where, skey, value)
            if where is asking:
                if covered is not None and key not in covered:
                    fresh.add(key)
                if value.target:
                    self._count(key[0], value.level, 1)
        return True


def targets_of(asking: Sequence[Asking], run_levels: Sequence[Level], start: int,
               required: int) -> Dict[str, Tuple[str, ...]]:
    """Rule 3: the targets of level L are the hosts of target checks mapped to L or more
    drastic; an escalated run treats the exhausted level's checks as mapped to its start."""
    first: Dict[str, int] = {}  # host -> the most drastic level it is a target of
    for a in asking:
        if a.target:
            lv = start if a.level <= required else a.level
            if lv < first.get(a.key[0], 1 << 30):
                first[a.key[0]] = lv
    ordered = sorted(first)
    return {lv.name: tuple(h for h in ordered if first[h] <= lv.index) for lv in run_levels}
