"""A run's facts as a value, and what the state keeps of runs.

``RunRecord`` is one ``run`` journal record: how a run ended (ok, failed,
dry-run) or why none happened (skipped).  ``steps.run_plan`` builds it once,
where a run ends; ``to_record()`` is its journal form and ``from_record()``
reads any ``run`` record back (older journals too), so the state folds a
value instead of looking into a dict here and there.  ``RunInfo`` is what
planning keeps of a run that happened (quiescence, verdicts, the hourly
limit), and ``fold_verdict`` what a verdict on a run leaves in the episodes.
"""

from __future__ import annotations

from collections import abc
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .. import kinds
from ..config import Level
from ..event import CheckKey
from .statetypes import Episode, key_of, keys_of

#: The fields of a ``start`` record that its ``run`` record does not repeat.
_START_ONLY = ("kind", "time", "steps_done")

#: The ``skip_key`` of the record listing checks an operator's hold keeps (rule 8).
HELD_HOST = "held-host"


def _tuple(value: Any) -> Optional[Tuple[Any, ...]]:
    return None if value is None else tuple(value)


@dataclass(frozen=True)
class RunRecord:
    """One ``run`` record (docs/operating.rst lists its fields).

    The fields planning and the operator's views read are typed; every other
    one (``attempt``, ``summary``, ``requested_by``, a cluster's ``node`` ...)
    is kept verbatim in ``details``, so a record read back and written again
    loses nothing.  ``None`` (and ``False`` for the flags) means the record
    does not have the field.
    """

    time: float                                   # when the run ended (or the skip was decided)
    outcome: str                                  # ok, failed, dry-run, skipped
    levels: Tuple[str, ...] = ()                  # the levels planned, the start level first
    checks: Tuple[Any, ...] = ()                  # the checks that asked, as journalled
    start_level: Optional[str] = None
    run: Optional[str] = None                     # the run's id, as in its start and step records
    started: Optional[float] = None
    quiescence_until: Optional[float] = None
    levels_run: Optional[Tuple[str, ...]] = None  # the levels whose steps ran
    targets: Optional[Mapping[str, Sequence[str]]] = None   # level name -> hosts (rule 3)
    reason: Optional[str] = None                  # why it failed or was skipped
    superseded: bool = False                      # stopped between steps on purpose
    interrupted: bool = False                     # closed by the next collector
    steps_done: Optional[Tuple[str, ...]] = None  # an interrupted run: the steps that ended ...
    not_done: Optional[Tuple[str, ...]] = None    # ... and those that did not
    request: Optional[str] = None                 # the operator's request it answers
    approval: Optional[str] = None                # the approval a person gave it
    skip_key: Optional[str] = None                # what a skip is about (repeats record nothing)
    continued: bool = False                       # a skip that only adds checks to the last one
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        """A run that did not happen: it records a decision, no step ran."""
        return self.outcome == kinds.SKIPPED

    @property
    def check_keys(self) -> Tuple[CheckKey, ...]:
        return keys_of(self.checks)

    @property
    def hosts(self) -> List[str]:
        """Every target host of the run, once each."""
        return list(dict.fromkeys(h for hs in (self.targets or {}).values() for h in hs or ()))

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "RunRecord":
        """Read a ``run`` record (one written by any version: absent fields are None)."""
        rest = {k: v for k, v in rec.items() if k not in _FIELDS and k != "kind"}
        started, quiet = rec.get("started"), rec.get("quiescence_until")
        return cls(
            time=rec["time"], outcome=str(rec.get("outcome") or ""),
            levels=tuple(rec.get("levels") or ()), checks=tuple(rec.get("checks") or ()),
            start_level=rec.get("start_level"), run=rec.get("run"),
            started=None if started is None else float(started),
            quiescence_until=None if quiet is None else float(quiet),
            levels_run=_tuple(rec.get("levels_run")), targets=rec.get("targets"),
            reason=rec.get("reason"), superseded=bool(rec.get("superseded")),
            interrupted=bool(rec.get("interrupted")),
            steps_done=_tuple(rec.get("steps_done")), not_done=_tuple(rec.get("not_done")),
            request=rec.get("request"), approval=rec.get("approval"), skip_key=rec.get("skip_key"),
            continued=bool(rec.get("continued")), details=rest,
        )

    @classmethod
    def ended(cls, start: Mapping[str, Any], time: float, outcome: str, **facts: Any) -> "RunRecord":
        """The record closing the run that ``start`` began (its ``start`` record, or the
        state's open run): the plan's facts as the start journalled them, and ``facts``."""
        opened = {k: v for k, v in start.items() if k not in _START_ONLY}
        return replace(cls.from_record(dict(opened, time=time, outcome=outcome, started=start.get("time"))),
                       **facts)

    def to_record(self) -> dict:
        """The journal form: the fields the record has, lists where JSON has lists."""
        rec: Dict[str, Any] = {"time": self.time, "kind": kinds.RUN, "levels": list(self.levels)}
        if self.start_level is not None:
            rec["start_level"] = self.start_level
        if self.targets is not None:
            rec["targets"] = {k: list(v) for k, v in self.targets.items()}
        rec["checks"] = [dict(c) if type(c) is dict or isinstance(c, abc.Mapping) else list(c) for c in self.checks]
        for name in ("run", "request", "approval"):
            if getattr(self, name) is not None:
                rec[name] = getattr(self, name)
        rec.update(self.details)
        for name in ("started", "outcome", "quiescence_until", "levels_run", "reason", "skip_key",
                     "steps_done", "not_done"):
            value = getattr(self, name)
            if value is not None:
                rec[name] = list(value) if isinstance(value, tuple) else value
        for name in ("superseded", "interrupted", "continued"):
            if getattr(self, name):
                rec[name] = True
        return rec


_FIELDS = frozenset(f for f in RunRecord.__dataclass_fields__ if f != "details")


@dataclass
class RunInfo:
    """A run that happened (or was simulated), as far as planning cares."""

    id: str
    time: float                  # when it ended
    started: float
    start_level: str
    levels: Tuple[str, ...]
    checks: Tuple[CheckKey, ...]
    outcome: str                 # ok, failed, dry-run
    quiet_until: float
    judged: bool = False
    superseded: bool = False
    start_checks: Tuple[CheckKey, ...] = ()   # the checks that asked for the start level itself

    @classmethod
    def of(cls, run: RunRecord, levels: Sequence[Level]) -> "RunInfo":
        return cls(
            id=str(run.run or run.time), time=float(run.time),
            started=float(run.time if run.started is None else run.started),
            start_level=run.start_level or (run.levels[0] if run.levels else ""),
            levels=run.levels, checks=run.check_keys, outcome=run.outcome or "failed",
            quiet_until=float(run.time if run.quiescence_until is None else run.quiescence_until),
            superseded=run.superseded, judged=run.superseded,
            start_checks=start_checks(run.checks, levels),
        )

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["checks"] = [list(k) for k in self.checks]
        d["start_checks"] = [list(k) for k in self.start_checks]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunInfo":
        d = dict(d)
        d["levels"] = tuple(d["levels"])
        d["checks"] = tuple((h, s) for h, s in d["checks"])
        d["start_checks"] = tuple((h, s) for h, s in d.get("start_checks", ()))
        return cls(**d)


def start_checks(checks: Iterable[Any], levels: Sequence[Level]) -> Tuple[CheckKey, ...]:
    """The checks mapped to the most drastic level among a run's checks."""
    names = {lv.name: lv.index for lv in levels}
    ranked = [(names.get(c.get("level"), 10**6), key_of(c)) for c in checks or ()
              if type(c) is dict or isinstance(c, abc.Mapping)]
    if not ranked:
        return keys_of(checks)
    top = min(r for r, _ in ranked)
    return tuple(k for r, k in ranked if r == top)


def runs_since(runs: Sequence[RunInfo], since: float) -> List[RunInfo]:
    """Runs started after ``since``, oldest first (runs never overlap, so
    ``started`` grows along the history: scan back from the newest)."""
    out = []
    for r in reversed(runs):
        if r.started <= since:
            break
        out.append(r)
    out.reverse()
    return out


def fold_verdict(rec: Mapping[str, Any], runs: Iterable[RunInfo], episodes: Dict[str, Episode],
                 levels: Sequence[Level]) -> None:
    """Rule 7: a verdict marks its run judged and opens, counts or ends an episode."""
    run_id = str(rec.get("run_id") or rec.get("run"))
    for r in runs:
        if r.id == run_id:
            r.judged = True
    level = rec.get("level")
    if level is None:
        return
    outcome = rec.get("rollout_outcome")
    if outcome == "continue" and not rec.get("converged"):
        return  # a wave within max_failed: the rollout goes on, no attempt of the level counted
    if outcome == "stopped":
        # A rollout stopped: the level is held, as an exhausted one, for its hosts not yet done too.
        ep = episodes.setdefault(level, Episode())
        ep.attempts += 1
        ep.pending |= set(keys_of(rec.get("failing_checks") or ())) | set(keys_of(rec.get("held_checks") or ()))
        ep.held = True
        ep.reason = str(rec.get("rollout_reason") or f"rollout of level {level} stopped")
        return
    if rec.get("level_converged") and not rec.get("converged"):
        # The start level did its job; what still fails asks for a less
        # drastic level and gets its own runs and its own episode.
        episodes.pop(level, None)
        return
    if rec.get("converged"):
        # A converged run covers its own level and every less drastic one.
        names = [lv.name for lv in levels]
        start = names.index(level) if level in names else 0
        for name in names[start:]:
            episodes.pop(name, None)
        return
    ep = episodes.setdefault(level, Episode())
    ep.attempts = int(rec.get("attempt") or ep.attempts + 1)
    ep.pending |= set(keys_of(rec.get("failing_checks") or rec.get("checks")))
    exhausted = rec.get("exhausted")
    if exhausted in ("notify", "escalate"):
        ep.reason = f"level {level} exhausted after {ep.attempts} attempt{'s' if ep.attempts != 1 else ''}"
        if exhausted == "notify":
            ep.held = True
        else:
            ep.escalated = True
            ep.reason += ": escalating"


__all__ = ["HELD_HOST", "RunInfo", "RunRecord", "fold_verdict", "runs_since", "start_checks"]
