"""Per-host brakes and retry backoff: automation that stops hammering a struggling host.

``limits.per_host: {max_runs: 3, within: 1h}``: a host that was a target of
that many runs within the window is left alone.  The first time, a ``brake``
record (``outcome: on``) and one notification; then nothing until the
window has passed (``outcome: off``, journalled by the planner) or an
operator's ``escalator resume --host H`` (or a plain ``resume``) lifts it --
runs before a resume no longer count.

``retry_backoff: {initial, factor, max}`` on a level: after N unconverged
attempts (verdicts) of a run starting at that level, the next one waits
``min(max, initial * factor**(N-1))`` after the last verdict.  The counter
resets only once every check it counted was OK for a whole quiescence of
that level (a ``backoff`` record, ``outcome: reset``): a check that flaps
back for a minute does not wipe it (Monit's never-resetting counters and
counters reset by one good sample are both wrong).

``Brakes`` is the part of the state fold that keeps the counters; the
functions below are pure, like the planner that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .runs import RunRecord
from .statetypes import keys_of
from .. import kinds
from ..config import Config, Level
from ..display import span
from ..event import CheckKey, iso_time

#: Record kinds this part folds (``run`` records through ``fold_run``).
KINDS = (kinds.VERDICT, kinds.BRAKE, kinds.BACKOFF, kinds.RESUME)

#: Run start times kept per host: more than any sensible max_runs.
HOST_HISTORY = 100


@dataclass
class Counter:
    """Unconverged attempts of runs starting at one level."""

    attempts: int = 0
    last: float = 0.0                         # time of the last unconverged verdict
    checks: Set[CheckKey] = field(default_factory=set)


@dataclass
class Brakes:
    """Per-host run times, hosts braked now, and backoff counters (see the module docstring)."""

    host_runs: Dict[str, List[float]] = field(default_factory=dict)
    resumed: Dict[str, float] = field(default_factory=dict)     # host -> runs before this don't count
    braked: Dict[str, float] = field(default_factory=dict)      # host -> when the window frees it
    counters: Dict[str, Counter] = field(default_factory=dict)  # level name -> counter
    waits: Dict[str, float] = field(default_factory=dict)       # level -> backoff wait journalled

    def fold_run(self, run: RunRecord) -> None:
        """A run's targets count against ``limits.per_host``; its start level waited enough."""
        if run.skipped:
            return
        started = float(run.time if run.started is None else run.started)
        for host in run.hosts:
            times = self.host_runs.setdefault(host, [])
            times.append(started)
            del times[:-HOST_HISTORY]
        self.waits.pop(str(run.start_level or ""), None)

    def apply(self, rec: Mapping[str, Any], state: Any) -> None:
        kind = rec.get("kind")
        if kind == kinds.VERDICT:
            level = rec.get("level")
            if not _backs_off(state, level):
                return
            if not rec.get("converged") and not rec.get("level_converged"):
                c = self.counters.setdefault(level, Counter())
                c.attempts += 1
                c.last = float(rec["time"])
                c.checks |= set(keys_of(rec.get("failing_checks") or ()))
        elif kind == kinds.BRAKE:
            host = str(rec.get("host") or "")
            if rec.get("outcome") == "on":
                self.braked[host] = float(rec.get("until") or rec["time"])
            else:
                self.braked.pop(host, None)
        elif kind == kinds.BACKOFF:
            level = str(rec.get("level") or "")
            if rec.get("outcome") == "reset":
                self.counters.pop(level, None)
                self.waits.pop(level, None)
            elif rec.get("outcome") == "wait":
                self.waits[level] = float(rec.get("until") or rec["time"])
        elif kind == kinds.RESUME:
            hosts: Iterable[str] = [rec["host"]] if rec.get("host") else list(self.host_runs)
            for host in hosts:
                self.resumed[host] = float(rec["time"])
                self.braked.pop(host, None)
            if not rec.get("host"):
                self.counters.clear()
                self.waits.clear()

    def shift(self, delta: float) -> None:
        """The wall clock stepped (``State.shift``): windows and waits keep the time they had left."""
        self.host_runs = {h: [t + delta for t in ts] for h, ts in self.host_runs.items()}
        for times in (self.resumed, self.braked, self.waits):
            for k in times:
                times[k] += delta
        for c in self.counters.values():
            c.last += delta

    def runs_within(self, host: str, since: float) -> List[float]:
        start = max(since, self.resumed.get(host, float("-inf")))
        return [t for t in self.host_runs.get(host, ()) if t > start]

    def to_json(self) -> dict:
        return {"host_runs": self.host_runs, "resumed": self.resumed, "braked": self.braked,
                "counters": {k: {"attempts": c.attempts, "last": c.last, "checks": [list(x) for x in c.checks]}
                             for k, c in self.counters.items()},
                "waits": self.waits}

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> "Brakes":
        d = data or {}
        return cls({h: list(ts) for h, ts in (d.get("host_runs") or {}).items()},
                   dict(d.get("resumed") or {}), dict(d.get("braked") or {}),
                   {k: Counter(c["attempts"], c["last"], set(keys_of(c.get("checks"))))
                    for k, c in (d.get("counters") or {}).items()},
                   dict(d.get("waits") or {}))


def _backs_off(state: Any, level: Any) -> bool:
    """Whether ``level`` (a name) has ``retry_backoff`` in the state's config."""
    try:
        return bool(level) and state.config.level(level).retry_backoff is not None
    except (KeyError, IndexError, ValueError):
        return False


def host_brakes(brakes: Brakes, config: Config, hosts: Iterable[str], now: float) -> Tuple[Set[str], List[dict]]:
    """Which of ``hosts`` are left alone now, and the records that say so (once per episode)."""
    limit = config.limits.per_host
    if limit is None:
        return set(), []  # a limit removed by a reload: `lifted` journals the end
    out: List[dict] = []
    held: Set[str] = set()
    for host in hosts:
        runs = brakes.runs_within(host, now - limit.within)
        if len(runs) < limit.max_runs:
            continue
        held.add(host)
        if host in brakes.braked:
            continue
        # Free again when enough of the counted runs have left the window.
        until = sorted(runs)[len(runs) - limit.max_runs] + limit.within
        reason = (f"limits.per_host: {host} was a target of {len(runs)} runs within {span(limit.within)}; "
                  f"left alone until {iso_time(until)} or `escalator resume --host {host}`")
        out.append({"time": now, "kind": kinds.BRAKE, "outcome": "on", "host": host, "runs": len(runs),
                    "until": until, "reason": reason})
        out.append({"time": now, "kind": kinds.NOTIFY, "reason": "per-host-limit", "summary": f"not acting on {reason}"})
    return held, out


def lifted(brakes: Brakes, config: Config, now: float) -> List[dict]:
    """``brake off`` records for hosts whose window has passed (or whose limit went away)."""
    limit = config.limits.per_host
    out = []
    for host, until in brakes.braked.items():
        if limit is None or (now >= until and len(brakes.runs_within(host, now - limit.within)) < limit.max_runs):
            out.append({"time": now, "kind": kinds.BRAKE, "outcome": "off", "host": host,
                        "reason": "limits.per_host window passed" if limit else "limits.per_host removed"})
    return out


def next_lift(brakes: Brakes) -> Optional[float]:
    return min(brakes.braked.values()) if brakes.braked else None


def backoff_until(brakes: Brakes, level: Level) -> Optional[float]:
    """When the next attempt of a run starting at ``level`` may begin (None: now)."""
    c = brakes.counters.get(level.name)
    if level.retry_backoff is None or c is None or c.attempts <= 0:
        return None
    return c.last + level.retry_backoff.delay(c.attempts)


def backoff_wait(brakes: Brakes, level: Level, until: float, now: float) -> List[dict]:
    """The record of a backoff wait, journalled once per wait."""
    if brakes.waits.get(level.name) == until:
        return []
    c = brakes.counters[level.name]
    return [{"time": now, "kind": kinds.BACKOFF, "outcome": "wait", "level": level.name, "attempts": c.attempts,
             "until": until, "reason": f"retry_backoff: attempt {c.attempts + 1} of level {level.name} "
                                       f"not before {iso_time(until)}"}]


def resets(brakes: Brakes, config: Config, checks: Mapping[CheckKey, Any], now: float
           ) -> Tuple[List[dict], Optional[float]]:
    """Counters whose checks were all OK for a whole quiescence of their level: reset
    records; and the earliest time another one will be (to wake then)."""
    out: List[dict] = []
    wake: Optional[float] = None
    for name, c in brakes.counters.items():
        try:
            quiet = config.level(name).quiescence
        except (KeyError, IndexError):
            quiet = config.quiescence   # the level went with a reload
        since = 0.0
        for key in c.checks:
            cs = checks.get(key)
            if cs is not None and not cs.good:
                break
            since = max(since, cs.since if cs is not None else 0.0)
        else:
            since = max(since, c.last)
            if now >= since + quiet:
                out.append({"time": now, "kind": kinds.BACKOFF, "outcome": "reset", "level": name,
                            "reason": f"checks OK for {span(now - since)} (quiescence {span(quiet)})"})
            elif wake is None or since + quiet < wake:
                wake = since + quiet
    return out, wake


__all__ = ["Brakes", "Counter", "KINDS", "backoff_until", "backoff_wait", "host_brakes", "lifted",
           "next_lift", "resets"]
