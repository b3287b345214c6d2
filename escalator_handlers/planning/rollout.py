"""Rollouts: a ``foreach: host`` level run on a canary first, then in waves, each wave
only after the monitoring said the previous one converged (docs/planning.rst, rollouts).

A rollout is a sequence of ordinary runs (``run`` records with ``rollout``,
``wave`` and ``waves``), each restricted to the hosts of one wave for every
level of the run, judged by the ordinary verdict (rule 7).  Its own records
(kind ``rollout``) say when it began (``outcome: begin``: the hosts, the canary,
the wave size) and how it ended (``done`` or ``stopped``, with the hosts done,
converged, failed and not started).  A wave verdict that is not converged --
whatever the verdict says instead, ``inconclusive`` included -- is never a
reason to go on: the hosts whose checks still fail count as failed.

:class:`Rollouts` is the part of the state fold that keeps the rollout in
progress; a collector killed mid-rollout finds it again in the journal (the
wave runs it started, the hosts each touched), so a wave is never started
twice and no host is run twice.  The functions are pure, like the planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import kinds
from ..config import Config, Level, Rollout
from ..display import plural
from .runs import RunRecord
from .statetypes import keys_of

#: Record kinds this part folds (wave runs through ``fold_run``).
KINDS = (kinds.ROLLOUT, kinds.VERDICT)

#: How a wave's verdict leaves the rollout (the verdict's ``rollout_outcome``).
CONTINUE, STOPPED, DONE, BEGIN = "continue", "stopped", "done", "begin"

#: Hosts a page names before "and N more".
PAGE_HOSTS = 10


@dataclass
class Active:
    """The rollout in progress, as folded from its records."""

    id: str
    level: str                      # the level that declared it (or the one over max_targets)
    hosts: List[str]                # the hosts it began with, in wave order
    canary: int
    size: int                       # hosts per wave after the canary
    max_failed: int
    waves: List[List[str]] = field(default_factory=list)  # hosts each started wave touched
    converged: List[str] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)
    last_run: Optional[str] = None  # the id of the last wave's run
    judged: int = 0                 # waves judged
    start: str = ""                 # the start level of its runs (its waves are runs starting there)

    @property
    def done(self) -> List[str]:
        return [h for w in self.waves for h in w]

    @property
    def planned(self) -> int:
        """Waves in all: the canary, then the rest in waves of ``size`` (at least those begun)."""
        rest = max(0, len(self.hosts) - self.canary)
        return max(len(self.waves), 1 + -(-rest // self.size))

    def waiting(self, running: Sequence[str] = ()) -> List[str]:
        done = set(self.done) | set(running)
        return [h for h in self.hosts if h not in done]

    def progress(self, running: Sequence[str] = ()) -> str:
        """``wave 2 of 3: 7 of 12 hosts done (1 converged, 0 failed, 6 being judged), 5 waiting``;
        ``running``: the hosts of the wave whose run is in progress."""
        done = self.done
        judging = len(done) - len(self.converged) - len(self.failed)
        return (f"wave {len(self.waves) + (1 if running else 0)} of {self.planned}: {len(done)} of "
                f"{len(self.hosts)} hosts done ({len(self.converged)} converged, {len(self.failed)} failed"
                + (f", {judging} being judged" if judging > 0 else "") + ")"
                + (f", {len(running)} running" if running else "") + f", {len(self.waiting(running))} waiting")

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Rollouts:
    """The rollout in progress (if any) and how the last one ended."""

    active: Optional[Active] = None
    last: Optional[dict] = None      # the last ``rollout`` record that ended one

    def fold_run(self, run: RunRecord) -> None:
        """A wave's run ended (or was closed as interrupted): its hosts are done."""
        a = self.active
        if run.skipped or a is None or run.details.get("rollout") != a.id:
            return
        wave = int(run.details.get("wave") or len(a.waves) + 1)
        if wave <= len(a.waves):
            return  # folded already (a run record read twice)
        hosts = run.hosts
        if run.interrupted:
            # Only the hosts a step ran (or may still run) on are done; the others
            # were never touched and go to the next wave.
            touched = {n.rpartition("@")[2] for n in (run.steps_done or ()) if "@" in n}
            touched |= {n.rpartition("@")[2] for n in run.details.get("may_be_running") or () if "@" in n}
            if any("@" not in n for n in run.steps_done or ()):
                touched = set(hosts)  # a step run once for the whole wave: every host had it
            hosts = [h for h in hosts if h in touched]
        while len(a.waves) < wave - 1:
            a.waves.append([])
        a.waves.append(list(hosts))
        a.last_run = str(run.run or run.time)

    def apply(self, rec: Mapping[str, Any], state: Any) -> None:
        kind = rec.get("kind")
        if kind == kinds.ROLLOUT:
            if rec.get("outcome") == BEGIN:
                self.active = Active(str(rec["rollout"]), str(rec.get("level") or ""),
                                     [str(h) for h in rec.get("hosts") or ()], int(rec.get("canary") or 1),
                                     int(rec.get("wave_size") or 1), int(rec.get("max_failed") or 0),
                                     start=str(rec.get("start_level") or rec.get("level") or ""))
            elif self.active is not None and rec.get("rollout") == self.active.id:
                self.active, self.last = None, dict(rec)
        elif kind == kinds.VERDICT and self.active is not None and rec.get("rollout") == self.active.id:
            a = self.active
            a.converged += [h for h in rec.get("converged_hosts") or () if h not in a.converged]
            a.failed += [h for h in rec.get("failed_hosts") or () if h not in a.failed]
            a.judged = max(a.judged, int(rec.get("wave") or 0))

    def to_json(self) -> dict:
        return {"active": None if self.active is None else self.active.to_json(), "last": self.last}

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> "Rollouts":
        d = data or {}
        act = d.get("active")
        return cls(None if not act else Active(**act), d.get("last"))


# -- planning (pure) ---------------------------------------------------------


def rollout_for(config: Config, run_levels: Sequence[Level],
                targets: Mapping[str, Sequence[str]]) -> Optional[Tuple[Level, Rollout]]:
    """Which level of a run is rolled out, and how: its start level when that declares
    ``rollout`` and has more hosts than the canary (a run starting more drastic, say a
    VM rebuild, is that level's business), else (``limits.max_targets`` with ``rollout``)
    the first level with more hosts than the limit."""
    first = run_levels[0] if run_levels else None
    if first is not None and first.rollout is not None and \
            len(targets.get(first.name, ())) > _canary(first.rollout, config):
        return first, first.rollout
    limits = config.limits
    if limits.max_targets_rollout is not None and limits.max_targets:
        for lv in run_levels:
            if len(targets.get(lv.name, ())) > limits.max_targets:
                return lv, limits.max_targets_rollout
    return None


def _canary(ro: Rollout, config: Config) -> int:
    """The canary, never more hosts than ``limits.max_targets``."""
    most = config.limits.max_targets
    return min(ro.canary, most) if most else ro.canary


def takes_over(rollouts: Rollouts, config: Config, start: Level) -> bool:
    """Whether a run starting at ``start`` may be rolled out instead of refused over
    ``limits.max_targets`` (its waves then stay within the limit)."""
    a = rollouts.active
    return (a is not None and a.start == start.name) or start.rollout is not None \
        or config.limits.max_targets_rollout is not None


@dataclass(frozen=True)
class Wave:
    """What the planner does about rollouts for the run it is about to start."""

    records: Tuple[dict, ...] = ()         # journal these first (a rollout begins or ends)
    hosts: Optional[Tuple[str, ...]] = None   # the wave's hosts (None: no rollout, run as planned)
    fields: Mapping[str, Any] = field(default_factory=dict)  # what the wave's run records carry
    label: str = ""                        # "wave 2 of 3" for summaries

    @property
    def why(self) -> str:
        return f"rollout: {self.records[0].get('summary') or self.records[0].get('reason')}" if self.records else ""

    def cut(self, targets: Mapping[str, Sequence[str]], asking: Sequence[Any]) -> Tuple[Any, Tuple[Any, ...]]:
        """The run's targets and asking checks cut to this wave's hosts (unchanged without a wave):
        every level of a wave's run targets its hosts only; its checks judge it."""
        if self.hosts is None:
            return targets, tuple(asking)
        keep = set(self.hosts)
        return restrict(targets, self.hosts), tuple(a for a in asking if a.key[0] in keep)


def plan_wave(rollouts: Rollouts, config: Config, run_levels: Sequence[Level],
              targets: Mapping[str, Sequence[str]], now: float) -> Wave:
    """The next wave of the rollout in progress, or a rollout to begin, or none (``Wave()``)."""
    order = list(dict.fromkeys(h for lv in run_levels for h in targets.get(lv.name, ())))
    a = rollouts.active
    if a is None:
        found = rollout_for(config, run_levels, targets)
        if found is None:
            return Wave()
        level, ro = found
        hosts = order
        rid = f"{int(now * 1000):x}"
        most = config.limits.max_targets
        size = min(ro.wave_size(len(hosts)), most) if most else ro.wave_size(len(hosts))
        canary = _canary(ro, config)  # a wave is never larger than limits.max_targets
        rest = max(0, len(hosts) - canary)
        rec = {"time": now, "kind": kinds.ROLLOUT, "outcome": BEGIN, "rollout": rid, "level": level.name,
               "start_level": run_levels[0].name, "hosts": hosts, "canary": canary, "wave_size": size, "max_failed": ro.max_failed,
               "waves": 1 + -(-rest // size),
               "summary": f"rolling out levels {', '.join(lv.name for lv in run_levels)} on "
                          f"{plural(len(hosts), 'host')}: {ro.describe()}"}
        return Wave(records=(rec,))
    if run_levels and a.start and run_levels[0].name != a.start:
        return Wave()  # a run starting elsewhere (more drastic, say) is no wave of this rollout
    if a.judged < len(a.waves):
        # The last wave's run was stopped on purpose (superseded, paused, held): it never
        # gets a verdict, so the rollout cannot go on from it.
        return Wave(records=(end_record(a, STOPPED, now, f"wave {len(a.waves)} was stopped before its "
                                        "verdict (a pause, a hold or a more drastic level)"),))
    done = set(a.done)
    pool = [h for h in a.hosts if h in order and h not in done] + \
        sorted(h for h in order if h not in done and h not in a.hosts)
    if not pool:
        return Wave(records=(end_record(a, DONE, now, "every host of the rollout had its wave"),))
    n = len(a.waves) + 1
    hosts = tuple(pool[:a.canary if n == 1 else a.size])
    planned = max(a.planned, n + (1 if len(pool) > len(hosts) else 0))
    return Wave(hosts=hosts, fields={"rollout": a.id, "wave": n, "waves": planned},
                label=f"wave {n} of {planned}" + (" (canary)" if n == 1 else ""))


def restrict(targets: Mapping[str, Sequence[str]], hosts: Sequence[str]) -> Dict[str, Tuple[str, ...]]:
    """Every level's targets cut to a wave's hosts (later levels run per wave too)."""
    keep = set(hosts)
    return {name: tuple(h for h in hs if h in keep) for name, hs in targets.items()}


def end_record(a: Active, outcome: str, now: float, reason: str, failed: Sequence[str] = (),
               converged: Sequence[str] = ()) -> dict:
    """The ``rollout`` record ending ``a`` (``done`` or ``stopped``), with every host's fate."""
    conv = list(a.converged) + [h for h in converged if h not in a.converged]
    fail = list(a.failed) + [h for h in failed if h not in a.failed]
    return {"time": now, "kind": kinds.ROLLOUT, "outcome": outcome, "rollout": a.id, "level": a.level,
            "wave": len(a.waves), "waves": a.planned, "reason": reason,
            "done": a.done, "converged": conv, "failed": fail, "not_started": a.waiting()}


def finished(rollouts: Rollouts, now: float) -> Tuple[dict, ...]:
    """The record ending the rollout in progress once no host of it fails any more."""
    a = rollouts.active
    return () if a is None else (end_record(a, DONE, now, "no host left failing"),)


def after_verdict(state: Any, config: Config, run: Any, records: List[dict], now: float,
                  notify: Callable[..., dict]) -> List[dict]:
    """A wave's verdict (``records``, as ``verdicts.judge`` made them): which of its hosts
    converged or failed, and whether the rollout goes on or stops (then one page, and the
    level is held like an exhausted one).  Other runs' verdicts pass through unchanged."""
    a = state.rollouts.active
    if a is None or not records or a.last_run != run.id or a.judged >= len(a.waves):
        return records
    verdict = dict(records[0])
    wave = a.waves[-1] if a.waves else []
    still = {h for h, _ in keys_of(verdict.get("failing_checks") or ())}
    failed = [h for h in wave if h in still]
    converged = [h for h in wave if h not in still]
    n = len(a.waves)
    verdict.update(rollout=a.id, wave=n, waves=a.planned, converged_hosts=converged, failed_hosts=failed)
    for k in ("attempt", "exhausted"):   # a wave is not an attempt of its level: the rollout judges it
        verdict.pop(k, None)
    total_failed = len(a.failed) + len(failed)
    # Hosts an interrupted wave never reached are still failing, and waiting for their wave.
    unexplained = still - set(wave) - set(a.waiting())
    unsure = _inconclusive(verdict) or (not verdict.get("converged") and not failed
                                        and (not still or bool(unexplained)))
    if unsure or (failed and (n == 1 or total_failed > a.max_failed)):
        if unsure:
            # Not converged without a host of the wave to blame (an inconclusive verdict,
            # a check elsewhere still failing): never a reason to go on.
            why = f"the verdict on wave {n} was not converged" + (
                f" (still failing: {', '.join(str(c) for c in verdict.get('failing') or ())})"
                if verdict.get("failing") else " (inconclusive)")
        else:
            why = ("the canary did not converge" if n == 1 else
                   f"{plural(total_failed, 'host')} did not converge (max_failed {a.max_failed})")
        end = end_record(a, STOPPED, now, why, failed, converged)
        waiting = set(end["not_started"])
        verdict["rollout_outcome"] = STOPPED
        verdict["rollout_reason"] = f"rollout stopped at wave {n} of {a.planned}: {why}"
        verdict["held_checks"] = [list(k) for k, cs in state.problems.items()
                                  if k[0] in waiting and cs.level is not None]
        page = _page(config, now, a, end, run.start_level, notify)
        return [verdict, end, page]
    verdict["rollout_outcome"] = CONTINUE
    return [verdict]


def _inconclusive(verdict: Mapping[str, Any]) -> bool:
    """A verdict that says neither converged nor not (however it is spelt)."""
    return bool(verdict.get("inconclusive")) or "inconclusive" in (verdict.get("outcome"), verdict.get("verdict")) \
        or verdict.get("converged") is None


def _page(config: Config, now: float, a: Active, end: Mapping[str, Any], level: str,
          notify: Callable[..., dict]) -> dict:
    def hosts(hs: Sequence[str]) -> str:
        shown = ", ".join(hs[:PAGE_HOSTS])
        return (shown + (f" and {len(hs) - PAGE_HOSTS} more" if len(hs) > PAGE_HOSTS else "")) or "none"

    summary = (f"rollout of level {a.level} stopped at wave {end['wave']} of {end['waves']}: {end['reason']}; "
               f"done: {hosts(end['done'])}; converged: {hosts(end['converged'])}; "
               f"failed: {hosts(end['failed'])}; not started: {hosts(end['not_started'])}; "
               f"holding level {level} until the checks recover or `escalator resume`")
    return notify(config, now, "rollout", summary, level=level, rollout=a.id)


def running(rollouts: Rollouts, open_run: Optional[Mapping[str, Any]]) -> List[str]:
    """The hosts of the rollout's wave whose run is open (started, not ended)."""
    a = rollouts.active
    if a is None or not open_run or open_run.get("rollout") != a.id:
        return []
    return list(dict.fromkeys(h for hs in (open_run.get("targets") or {}).values() for h in hs or ()))


def explain(rollouts: Rollouts, open_run: Optional[Mapping[str, Any]] = None) -> Tuple[str, ...]:
    """``plan``'s line about the rollout in progress."""
    a = rollouts.active
    if a is None:
        return ()
    return (f"rollout of level {a.level} in progress: {a.progress(running(rollouts, open_run))}",)


__all__ = ["Active", "Rollouts", "Wave", "after_verdict", "end_record", "explain", "finished", "plan_wave", "restrict",
           "rollout_for", "running", "takes_over"]
