"""The planner: what to do now, as a pure function of state, config and time.

``decide(state, config, now)`` reads the folded ``State`` and returns a
``Decision``: records to journal (verdicts, notifications, skipped runs,
releases), at most one ``RunPlan`` to execute, and when to ask again.  It
reads no clock, does no I/O and changes nothing: the caller journals the
records, folds them into the state and calls again.  The collector and
replay share it, which is what makes a replay show what would have happened.

The rules are the planning rules 1-9 of docs/planning.rst; comments cite them by number.
Rule 7, judging a run, is in :mod:`~escalator_handlers.planning.verdicts`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..config import Config, Level
from ..display import iso
from ..event import CheckKey, check_name, iso_time
from . import approvals, brakes, interlocks, rollout
from .state import State
from .survey import Asking, Survey, hosts_by_level, joined, survey, targets_of as _targets
from .verdicts import SUMMARY_CHECKS, episode_attempts, judge, names, notify_record

@dataclass(frozen=True)
class RunPlan:
    """One run to execute: a level and every less drastic one (rule 2)."""

    levels: Tuple[Level, ...]
    targets: Mapping[str, Tuple[str, ...]]     # level name -> hosts (rule 3)
    checks: Tuple[Asking, ...]
    attempt: int
    escalated: bool
    summary: str
    explain: Tuple[str, ...] = ()
    unmapped: Tuple[CheckKey, ...] = ()
    request: Optional[Mapping[str, Any]] = None   # the `escalator run` record that asked for it
    rollout: Optional[Mapping[str, Any]] = None   # a wave's run: rollout id, wave n, waves m

    @property
    def dry_run(self) -> bool:
        return bool(self.request and self.request.get("dry_run"))
    approval: Optional[str] = None      # the approval a person gave this run

    @property
    def start(self) -> Level:
        return self.levels[0]

    def record(self, config: Config, now: float, **extra) -> dict:
        rec = {
            "time": now, "kind": "run",
            "levels": [lv.name for lv in self.levels],
            "start_level": self.start.name,
            "targets": {k: list(v) for k, v in self.targets.items()},
            "checks": [a.record(config) for a in self.checks],
            "attempt": self.attempt,
            "summary": self.summary,
        }
        if self.escalated:
            rec["escalated"] = True
        if self.unmapped:
            rec["unmapped"] = [check_name(k) for k in self.unmapped]
        if self.request:
            rec["request"] = self.request.get("id")
            rec["requested_by"] = self.request.get("user") or "operator"
            if self.request.get("reason"):
                rec["request_reason"] = self.request["reason"]
        if self.approval:
            rec["approval"] = self.approval
        rec.update(self.rollout or {}, **extra)
        return rec


@dataclass
class Decision:  # not frozen: replay makes hundreds of thousands, and a frozen __init__ is 3x slower
    records: Tuple[dict, ...] = ()
    run: Optional[RunPlan] = None
    wake: Optional[float] = None     # ask again at this time, events or not
    why: str = ""
    explain: Tuple[str, ...] = ()
    steady: bool = False  # rule 6's wait: the same answer until wake, unless records or releases_due()


def required_level(state: State) -> Optional[int]:
    """Rule 1: the most drastic level among failing, mapped, not held checks
    (nor on a host a person acknowledged or ``limits.per_host`` keeps escalator off)."""
    acked = state.acks.active(state.checks) if state.acks.by_check else {}
    braked = state.brakes.braked
    levels = [a.level for a in survey(state).asking if a.key[0] not in acked and a.key[0] not in braked]
    return min(levels) if levels else None


def releases_due(state: State) -> List[str]:
    """The held or escalated levels whose checks all recovered (``decide`` releases them)."""
    return [name for name, ep in state.episodes.items() if (ep.held or ep.escalated) and not ep.pending]


def decide(state: State, config: Config, now: float, *, explain: bool = True) -> Decision:
    """What to do at ``now``; see the module docstring.

    ``explain=False`` leaves ``Decision.explain`` and ``RunPlan.explain`` empty,
    and ``Decision.why`` too when no record is made: replay, which never shows
    them, asks tens of thousands of times a day of log.
    """
    levels = config.levels
    if state.holds:
        # An operator's hold given `--for` ends by itself, like an Alertmanager silence.
        expired = [{"time": now, "kind": "release", "host": h.host, "service": h.service,
                    "reason": f"hold expired (held since {iso_time(h.since)} by {h.user or 'an operator'})"}
                   for h in state.holds.values() if h.until is not None and h.until <= now]
        if expired:
            return Decision(tuple(expired), wake=now, why="operator holds expired")
    if state.episodes:
        # Holds and escalations end when the checks that caused them recovered (rule 7).
        releases = [{"time": now, "kind": "release", "level": name, "reason": "checks recovered"}
                    for name in releases_due(state)]
        if releases:
            return Decision(tuple(releases), wake=now, why="checks recovered: releasing held levels")
    due = interlocks.due(state, config, now)
    if due:
        return Decision(tuple(due), wake=now, why="approvals, per-host limits or backoff counters to update")

    if state.requests:
        # An operator asked for a level now (`escalator run`): neither the debounce nor the last
        # run's quiescence makes them wait; pause, holds and limits still apply.
        return _requested(state, config, now, state.requests[0])

    last = state.last_run()
    if last is not None and not last.judged:
        if now < last.quiet_until:
            # Rule 6: no new run while the last run's quiescence lasts.
            return Decision(wake=last.quiet_until,
                            why=f"quiescence after run of {', '.join(last.levels)} "
                                f"until {iso(last.quiet_until)} ({last.quiet_until - now:.0f}s left)"
                            if explain else "", steady=True)
        verdict = rollout.after_verdict(state, config, last, judge(state, config, last, now), now, notify_record)
        return Decision(tuple(verdict), wake=now, why="judging the last run")

    due = debounce_due(state, config)
    if due is not None and now < due:
        return _later(Decision(wake=due, why=f"waiting for quiet: {due - now:.1f}s left" if explain else ""),
                      state, config, now)

    s = survey(state)
    aside = interlocks.set_aside(state, config, now, s.asking, levels)
    if aside.records:
        return Decision(aside.records, wake=now, why="per-host limits reached")
    s = Survey(aside.asking, s.unmapped, s.held)
    d = _decide(state, config, now, s, aside, _explain(s, levels, state) + aside.explain if explain else (),
                explain)
    if s.held:
        # A check held by an expiring hold must be looked at again when the hold ends.
        ends = [h.until for h in state.holds.values() if h.until is not None]
        if ends and (d.wake is None or min(ends) < d.wake):
            d.wake = min(ends)
    return d if d.records or d.run is not None else _later(d, state, config, now)


def _later(d: Decision, state: State, config: Config, now: float) -> Decision:
    """Wake ``d`` in time for an approval's timeout, a per-host window or a backoff reset."""
    t = interlocks.next_due(state, config, now)
    if t is not None and (d.wake is None or t < d.wake):
        d.wake = t
    return d


def debounce_due(state: State, config: Config) -> Optional[float]:
    """When the current burst of events may be acted on (None: no burst).

    Debounce: act after ``quiescence`` of quiet, but never later than
    ``max_delay`` after the burst began.
    """
    burst, last = state.burst_start, state.last_event
    if burst is None or last is None:
        return None
    due = last + config.quiescence
    latest = burst + config.max_delay
    return latest if latest < due else due


def _explain(s: Survey, levels: Sequence[Level], state: State) -> Tuple[str, ...]:
    """Which check asked for which level (``plan --explain``); ``s.asking`` is sorted already."""
    return tuple(
        f"{check_name(a.key)} {a.state} {a.state_type} asks for level {a.level} "
        f"({levels[a.level - 1].name})" + ("" if a.target else f"; host {a.key[0]} is no target (target: false)")
        for a in s.asking
    ) + tuple(f"{check_name(k)} is failing but no rule maps it (ignored)" for k in s.unmapped) + tuple(
        f"{check_name(a.key)} asks for level {levels[a.level - 1].name} but is held by an operator: "
        f"{_hold_text(state.held(a.key))}" for a in s.held) + tuple(
        f"{check_name(k)} {cs.state}: host {k[0]} is unreachable (a parent is down): "
        f"no level asked, no target (unreachable: ignore)"
        for k, cs in sorted(unreachable_checks(state).items(), key=lambda kv: (kv[0][0], kv[0][1] or "")))


def _hold_text(h) -> str:
    if h is None:
        return "(hold gone)"
    until = f" until {iso_time(h.until)}" if h.until is not None else ""
    return f"hold {h.label}{f' by {h.user}' if h.user else ''}{until}" + (f" ({h.reason})" if h.reason else "")


def unreachable_checks(state: State) -> Dict[CheckKey, object]:
    """Problem checks not asking only because their host is UNREACHABLE (``unreachable: ignore``)."""
    if not state.unreachable or state.config.unreachable != "ignore":
        return {}
    return {k: cs for k, cs in state.problems.items() if k[0] in state.unreachable}


def _decide(state: State, config: Config, now: float, s: Survey, aside: interlocks.Aside,
            explain: Tuple[str, ...], why: bool = True) -> Decision:
    """Rules 1-4 and 8 once the failing checks are surveyed.

    Reasons are passed to ``_skip`` as functions: most skips repeat the last
    one, record nothing, and need no reason unless ``why`` asks for it.
    """
    levels = config.levels

    new_held = [a for a in s.held if a.key not in state.held_recorded]
    if new_held:
        # Rule 8, holds: the held checks are recorded once (then only those newly held),
        # whether or not other hosts run; never paged: the operator holding them knows.
        rec = {"time": now, "kind": "run", "outcome": "skipped", "skip_key": "held-host",
               "reason": "hosts held by an operator: " + ", ".join(sorted({a.key[0] for a in new_held})),
               "levels": [lv.name for lv in levels[min(a.level for a in new_held) - 1:]],
               "start_level": levels[min(a.level for a in new_held) - 1].name,
               "checks": [a.record(config) for a in new_held]}
        return Decision((rec,), why=f"skipped: {rec['reason']}", explain=explain)
    if not s.asking:
        if state.rollouts.active is not None:  # every host of a rollout recovered
            return Decision(rollout.finished(state.rollouts, now), wake=now, why="rollout done", explain=explain)
        if state.approvals.pending:
            why = aside.reason() if aside.left_alone else "the checks that asked recovered"
            return Decision(tuple(approvals.withdraw(state.approvals, now, why)), wake=now,
                            why="withdrawing approval requests", explain=explain)
        if aside.left_alone:  # no page: the person who acknowledged knows; a limit paged once
            return _skip(state, config, now, "hands-off", levels[aside.left_alone[0].level - 1],
                         aside.left_alone, aside.reason, explain, why, notify=False)
        if s.held:
            return Decision(why=("skipped: hosts held by an operator: " + ", ".join(sorted({a.key[0] for a in s.held}))) if why else "", explain=explain)
        return Decision(why="nothing to do", explain=explain)

    required = s.asking[0].level  # survey sorts by level first: the most drastic
    start = required
    while start > 1 and (ep := state.episodes.get(levels[start - 1].name)) is not None and ep.escalated:
        start -= 1  # rule 7, escalate: one level more drastic than the exhausted one
    start_level = levels[start - 1]
    ep = state.episodes.get(start_level.name)
    if ep is not None and ep.held:
        return _skip(state, config, now, "held-level", start_level, s.asking,
                     lambda: f"{ep.reason}; held until the checks recover or `escalator resume`",
                     explain, why, notify=False)
    if state.paused is not None:
        paused = state.paused
        # Never page the operator for their own pause.
        return _skip(state, config, now, "paused", start_level, s.asking,
                     lambda: "paused by operator" + (f": {paused}" if paused else ""), explain, why, notify=False)

    limits = config.limits
    if limits.max_runs_per_hour:
        recent = state.runs_since(now - 3600)
        if len(recent) >= limits.max_runs_per_hour:
            d = _skip(state, config, now, "max_runs_per_hour", start_level, s.asking,
                      lambda: f"limit max_runs_per_hour ({limits.max_runs_per_hour}) reached: "
                              f"{len(recent)} runs in the last hour", explain, why, notify=True)
            d.wake = min(r.started for r in recent) + 3600
            return d

    run_levels = levels[start - 1:]
    if limits.max_targets and not rollout.takes_over(state.rollouts, config, start_level):
        # Rule 3 counted, not listed: a host is a target of the most drastic level its
        # checks ask for and every later one (an escalated run's start counts as the
        # exhausted level).  The survey cache keeps the counts: a decision held back
        # by the limit costs O(changes), whatever the number of failing checks.
        at = hosts_by_level(state, s.asking)
        if sum(at.values()) > limits.max_targets:
            for lv in run_levels:
                upto = max(lv.index, required)
                n = sum(c for level, c in at.items() if level <= upto)
                if n > limits.max_targets:
                    return _skip(state, config, now, "max_targets", start_level, s.asking,
                                 lambda: f"limit max_targets ({limits.max_targets}) exceeded: "
                                         f"{n} hosts at level {lv.name}", explain, why, notify=True)

    until = brakes.backoff_until(state.brakes, start_level)
    if until is not None and now < until:
        wait = brakes.backoff_wait(state.brakes, start_level, until, now)
        return Decision(tuple(wait), wake=now if wait else until, explain=explain,
                        why=f"retry_backoff: next attempt of level {start_level.name} at {until:.0f} "
                            f"({until - now:.0f}s left)")

    asking = tuple(s.asking)  # survey sorted it
    targets = _targets(asking, run_levels, start, required)
    wave = rollout.plan_wave(state.rollouts, config, run_levels, targets, now)
    if wave.records:
        return Decision(wave.records, wake=now, why=wave.why, explain=explain)
    targets, asking = wave.cut(targets, asking)  # a wave: its hosts only, at every level
    attempt = episode_attempts(ep) + 1
    hosts = sorted({a.key[0] for a in asking})
    summary = (f"{wave.label + ': ' if wave.label else ''}levels {', '.join(lv.name for lv in run_levels)} for "
               f"{', '.join(hosts[:SUMMARY_CHECKS])}{' and more' if len(hosts) > SUMMARY_CHECKS else ''}: "
               f"{names([a.key for a in asking])} "
               f"{'escalated after exhausting ' + levels[required - 1].name if start < required else 'failing'}")
    plan = RunPlan(tuple(run_levels), targets, asking, attempt, start < required, summary, explain,
                   tuple(s.unmapped), rollout=wave.fields or None)
    if state.approvals.pending or any(lv.approval is not None for lv in run_levels):  # else no gate
        gate = approvals.gate(state.approvals, config, plan.record(config, now), run_levels, now)
        if gate.records or gate.wake is not None:
            return Decision(gate.records, wake=gate.wake, why=gate.why, explain=explain)
        if gate.approval:
            plan = replace(plan, approval=gate.approval)
    return Decision(run=plan, why=f"run levels {', '.join(lv.name for lv in run_levels)}", explain=explain)


def _requested(state: State, config: Config, now: float, req: Mapping[str, Any]) -> Decision:
    """The run an operator asked for: their level and every later one, on their hosts
    (default: the hosts rule 3 gives), judged by the failing checks it covers."""
    try:
        start: Optional[Level] = config.level(req.get("level"))  # type: ignore[arg-type]
    except (KeyError, IndexError, TypeError, ValueError):
        start = None
    run_levels = config.levels[start.index - 1:] if start else ()

    def refuse(reason: str) -> Decision:
        rec = {"time": now, "kind": "run", "outcome": "skipped", "reason": reason,
               "request": req.get("id"), "requested_by": req.get("user") or "operator",
               "levels": [lv.name for lv in run_levels], "checks": []}
        return Decision((rec,), wake=now, why=f"request refused: {reason}")

    if start is None:
        return refuse(f"no level {req.get('level')!r} in the config")
    asked = [str(h) for h in req.get("hosts") or ()]
    held = [h for h in asked if state.held((h, None)) is not None]
    if state.paused is not None:
        return refuse("paused by operator" + (f": {state.paused}" if state.paused else ""))
    if asked and len(held) == len(asked):
        return refuse(f"hosts held by an operator: {', '.join(held)}")
    hosts = [h for h in asked if h not in held]
    # The failing checks this run covers: mapped to its levels (on its hosts, if named).
    checks = tuple(a for a in survey(state).asking
                   if a.level >= start.index and (not asked or a.key[0] in hosts))
    targets = {lv.name: tuple(hosts) if asked else tuple(sorted({a.key[0] for a in checks if a.level <= lv.index}))
               for lv in run_levels}
    limits = config.limits
    if limits.max_runs_per_hour and len(state.runs_since(now - 3600)) >= limits.max_runs_per_hour:
        return refuse(f"limit max_runs_per_hour ({limits.max_runs_per_hour}) reached")
    if limits.max_targets and any(len(h) > limits.max_targets for h in targets.values()):
        return refuse(f"limit max_targets ({limits.max_targets}) exceeded")
    names = ", ".join(lv.name for lv in run_levels)
    summary = (f"levels {names} for {', '.join(sorted({h for t in targets.values() for h in t})) or 'no host'}: "
               f"asked for by {req.get('user') or 'an operator'}" + (f" ({req['reason']})" if req.get("reason") else "")
               + (f"; leaving held {', '.join(held)} alone" if held else ""))
    plan = RunPlan(tuple(run_levels), targets, checks, 1, False, summary, request=req)
    return Decision(run=plan, why=f"run levels {names} (asked for by an operator)")


def _skip(state: State, config: Config, now: float, code: str, level: Level,
          checks: Sequence[Asking], why_not: Callable[[], str], explain: Tuple[str, ...], why: bool = True, *,
          notify: bool) -> Decision:
    """Rule 8: record once per episode, then only the checks that joined it; page once.

    An episode of a skip lasts until a run starts, ``resume``, or every check it
    listed recovered.  Its first record lists the asking checks; a check that
    starts asking later gets a small ``continued`` record of its own (journal
    bytes per event stay bounded in a long outage: an afternoon of hosts failing
    one after another costs the journal the same per event as its first minute)
    and no new page.  ``why_not()`` words the reason, only when it is needed.
    """
    key = f"{code}:{level.name}"
    continued = state.last_skip == key
    if continued:
        checks = joined(state, checks)
        if not checks:
            return Decision(why=f"skipped: {why_not()}" if why else "", explain=explain)
    reason = why_not()
    rec = {"time": now, "kind": "run", "outcome": "skipped", "reason": reason, "skip_key": key,
           "levels": [lv.name for lv in config.levels[level.index - 1:]],
           "start_level": level.name,
           "checks": [a.record(config) for a in checks]}
    if continued:
        rec["continued"] = True
    recs = [rec]
    if notify and not continued:
        recs.append(notify_record(config, now, code, f"not acting on {names([a.key for a in checks])}: {reason}"))
    return Decision(tuple(recs), why=f"skipped: {reason}", explain=explain)


__all__ = ["Asking", "Decision", "RunPlan", "debounce_due", "decide", "notify_record", "releases_due",
           "required_level", "survey", "unreachable_checks"]
