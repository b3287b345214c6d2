"""Carry out a RunPlan: levels in order, steps in order, journal as it goes.

Only the collector runs steps for real; replay (always a dry run)
uses ``DryRunner``, which only renders the would-be command lines.  Either
way the records are the same shape: ``start``, one ``step`` per execution,
then one ``run`` with the outcome.  A failed step stops the run (rule 5);
between steps ``interrupt()`` may say that the run must stop (a more drastic
level became required, pause, SIGTERM) and why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import kinds
from ..config import Config, Step
from ..planning.planner import RunPlan
from ..planning.runs import RunRecord
from .template import render_dry

Emit = Callable[[Sequence[dict]], None]


class DryRunner:
    """Stands in for ``steps.StepRunner``: renders, never runs."""

    def __init__(self) -> None:
        self._renderer: Any = None

    def render(self, step: Step, values: Mapping[str, Any]) -> str:
        if step.kind == "shell" and step.command is not None:
            return render_dry(step.command, values, step.raw)  # what StepRunner.render shows, without loading it
        if self._renderer is None:
            from .runner import StepRunner

            self._renderer = StepRunner()
        return self._renderer.render(step, values)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()

    def __enter__(self) -> "DryRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_values(plan: RunPlan, level_name: str, checks: List[str]) -> Dict[str, Any]:
    """Template values for the steps of one level of a run (``checks``: :func:`check_names`)."""
    return {
        "level": level_name,
        "hosts": list(plan.targets.get(level_name, ())),
        "summary": plan.summary,
        "checks": checks,
    }


def check_names(plan: RunPlan) -> List[str]:
    """``{checks}``: the run's checks as host/service (host alone for a host check)."""
    return [f"{a.key[0]}/{a.key[1]}" if a.key[1] else a.key[0] for a in plan.checks]


def _step(now: float, run_id: Optional[str], level: str, where: str, host: Optional[str], **fields: Any) -> dict:
    """The one shape of a ``step`` record; ``run`` only for a run's steps (not notify steps)."""
    rec = {"time": now, "kind": kinds.STEP, "level": level, "step": where, "host": host,
           "exit": None, "duration": 0.0, "output": ""}
    if run_id:
        rec["run"] = run_id
    for k, v in fields.items():
        if v is not None:
            rec[k] = v
    return rec


def step_record(now: float, run_id: Optional[str], level: str, result: Any) -> dict:
    """The record of a step that ran (a StepResult)."""
    return _step(now, run_id, level, result.where, result.host, exit=result.exit,
                 duration=round(result.duration, 3), output=result.output, command=result.command,
                 error=result.error or None, warning=getattr(result, "warning", None) or None,
                 skipped=getattr(result, "skipped", None) or None)


def execute(plan: RunPlan, config: Config, runner: Any, emit: Emit, clock: Callable[[], float], *,
            dry_run: bool = False, interrupt: Callable[[], Optional[str]] = lambda: None,
            extra: Optional[Mapping[str, Any]] = None) -> dict:
    """Run (or simulate) ``plan``; emit every record; return the final ``run`` record (as journalled)."""
    started = clock()
    run_id = f"{int(started * 1000):x}"
    opened = plan.record(config, started, kind=kinds.START, run=run_id, **(extra or {}))
    emit([dict(opened, dry_run=True) if dry_run else opened])
    outcome, reason, superseded = ("dry-run" if dry_run else "ok"), None, False
    levels_run: List[str] = []
    checks = check_names(plan)
    for level in plan.levels:
        values = run_values(plan, level.name, checks)
        hosts = plan.targets.get(level.name, ())
        for step in level.steps:
            why = None if dry_run else interrupt()
            if why:
                outcome, reason, superseded = "failed", why, True
                break
            if step.foreach == "host" and not hosts:
                continue
            if level.name not in levels_run:
                levels_run.append(level.name)
            if dry_run:
                emit([_dry_step(clock(), run_id, level.name, step, values, h, runner)
                      for h in (hosts if step.foreach == "host" else (None,))])
                continue
            if step.foreach == "host":
                results = runner.run_foreach(
                    step, hosts, values,
                    on_result=lambda r, ln=level.name: emit([step_record(clock(), run_id, ln, r)]))
            else:
                r = runner.run(step, values)
                emit([step_record(clock(), run_id, level.name, r)])
                results = [r]
            failed = [r for r in results if not r.ok]
            if failed:
                f = failed[0]
                what = f.error or f"exit status {f.exit}"
                outcome = "failed"
                reason = f"step {step.where} of level {level.name} failed" + \
                         (f" on {f.host}" if f.host else "") + f": {what}"
                break
        if outcome == "failed":
            break
    end = clock()
    quiet = 0.0 if superseded else max(
        (config.level(n).quiescence for n in levels_run), default=0.0)
    rec = RunRecord.ended(opened, end, outcome, quiescence_until=end + quiet, levels_run=tuple(levels_run),
                          reason=reason or None, superseded=superseded).to_record()
    emit([rec])
    return rec


def _dry_step(now: float, run_id: Optional[str], level: str, step: Step, values: Mapping[str, Any],
              host: Optional[str], runner: Any) -> dict:
    vals = dict(values)
    if host is not None:
        vals["host"] = host
    # Set here, not as keywords to _step: those would cost replay of a busy log 1.5 %.
    rec = _step(now, run_id, level, step.where, host)
    rec["command"] = runner.render(step, vals)
    rec["dry_run"] = True
    return rec


def notify_steps(config: Config, notify_rec: Mapping[str, Any], runner: Any, emit: Emit,
                 clock: Callable[[], float], *, dry_run: bool = False) -> List[dict]:
    """Contact the administrator: run every ``notify`` step with ``{summary}``.

    A failing notify step is journalled and never stops the caller.
    """
    values = {"summary": notify_rec.get("summary", ""), "level": notify_rec.get("level") or "",
              "hosts": [], "checks": []}
    out: List[dict] = []
    for step in config.notify:
        if dry_run:
            rec = _dry_step(clock(), None, kinds.NOTIFY_LEVEL, step, values, None, runner)
        else:
            try:
                rec = step_record(clock(), None, kinds.NOTIFY_LEVEL, runner.run(step, values))
            except Exception as exc:  # a notify must never take the collector down
                rec = _step(clock(), None, kinds.NOTIFY_LEVEL, step.where, None,
                            error=f"{type(exc).__name__}: {exc}")
        out.append(rec)
        emit([rec])
    return out


@dataclass(frozen=True)
class Pending:
    """A step execution of an open run that has not ended (yet)."""

    level: str
    index: int                 # the step's 0-based position in its level
    where: str                 # e.g. levels[3].steps[0]
    host: Optional[str]

    @property
    def name(self) -> str:
        return f"{self.where}@{self.host}" if self.host else self.where


def progress(open_run: Mapping[str, Any], config: Config) -> Tuple[List[Pending], int, float]:
    """What an open run (a ``start`` without its ``run``) has not finished.

    Returns the step executions not done yet, in order; how many of the first
    of them may be running now (foreach hosts start in order, ``concurrency``
    at a time, so any of the first that many unfinished ones may be); and the
    largest quiescence among the run's levels.
    """
    done = {_done_name(r) for r in open_run.get("steps_done") or ()}
    quiet = 0.0
    not_done: List[Pending] = []
    running = 0
    for name in open_run.get("levels") or ():
        try:
            level = config.level(name)
        except (KeyError, IndexError):
            continue  # gone with a config change; the steps that did run are listed anyway
        quiet = max(quiet, level.quiescence)
        hosts = (open_run.get("targets") or {}).get(name) or ()
        for i, step in enumerate(level.steps):
            first = not not_done
            for h in (hosts if step.foreach == "host" else (None,)):
                p = Pending(level.name, i, step.where, h)
                if p.name not in done:
                    not_done.append(p)
            if first and not_done:
                running = min(len(not_done), step.concurrency if step.foreach == "host" else 1)
    return not_done, running, quiet


def _done_name(r: Mapping[str, Any]) -> str:
    return f"{r.get('step')}@{r.get('host')}" if r.get("host") else str(r.get("step"))


def interrupted_run(open_run: Mapping[str, Any], step_records: Iterable[Mapping[str, Any]],
                    now: float, config: Config, *, closed_by: Optional[str] = None,
                    previous: Optional[Mapping[str, Any]] = None) -> dict:
    """The `run` record closing a run whose collector died (or, in a cluster, whose
    leader stopped leading; ``closed_by`` names the node closing it): what was and was
    not done, and which steps may still be running there (a kill stops escalator, not
    its steps).  ``previous`` is the step start the old leader last announced."""
    records = list(step_records)
    done = [_done_name(r) for r in records]
    pending, running, quiet = progress(dict(open_run, steps_done=records), config)
    not_done = [p.name for p in pending]
    said = [w + " (running or next)" for w in not_done[:running]] + not_done[running:]
    who = "the collector stopped" if closed_by is None else \
        f"the leader ({open_run.get('node') or 'another node'}) stopped leading"
    reason = (f"interrupted: {who} during this run; steps completed: "
              + (", ".join(done) or "none") + "; not run: " + (", ".join(said) or "none"))
    ended = RunRecord.ended(open_run, now, "failed", reason=reason, quiescence_until=now + quiet, interrupted=True,
                            steps_done=tuple(done), not_done=tuple(not_done))
    extra: Dict[str, Any] = {"may_be_running": not_done[:running]}
    if closed_by is not None:
        extra["closed_by"] = closed_by
    if previous and previous.get("run") == open_run.get("run"):
        extra["last_step_start"] = previous.get("time")
    return replace(ended, details={**ended.details, **extra}).to_record()


def unsent_notifications(records: Iterable[Mapping[str, Any]], steps_per_notify: int) -> List[dict]:
    """``notify`` records among ``records`` (a journal tail) whose notify steps were never journalled.

    The collector journals a ``notify`` and then runs the notify steps, each
    journalled as it ends; a collector killed in between leaves a notify
    nobody was told about.  Notifications are sent in journal order, so the
    step records (level ``notify``, no run) are matched to them first come,
    first served.
    """
    waiting: List[List[Any]] = []
    if steps_per_notify <= 0:
        return []
    for r in records:
        if r.get("kind") == kinds.NOTIFY:
            waiting.append([dict(r), 0])
        elif r.get("kind") == kinds.STEP and r.get("level") == kinds.NOTIFY_LEVEL and not r.get("run") and waiting:
            waiting[0][1] += 1
            if waiting[0][1] >= steps_per_notify:
                waiting.pop(0)
    return [w[0] for w in waiting]
