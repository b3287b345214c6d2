"""Approval gates: a run that includes a level with ``approval`` waits for a person.

The planner asks (``gate``) before it returns such a run.  The first time, it
journals an ``approval`` request (``outcome: requested``, with the run's
levels, targets, the checks that asked and when it expires) and a ``notify``
naming the command that answers it.  Until ``escalator approve ID`` arrives
(through the spool, like ``pause``) the run waits while events keep being
folded; then the run starts and carries ``approval: ID``.  ``escalator deny
ID`` -- or the timeout, which is a denial by escalator itself, notified --
holds the run's start level the way an exhausted level is held: until its
checks recover or ``escalator resume``.  A request the situation has
outgrown is closed: ``withdrawn`` when nothing asks any more (or the run no
longer needs approval), ``replaced`` when a different run (another start
level, or hosts the request did not name) is now needed, and that run asks
anew.

``Approvals`` is the part of the state fold that keeps the open requests;
the functions below are pure, like the planner that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .runs import RunRecord
from .statetypes import Episode, keys_of
from .. import kinds
from ..config import Config, Level
from ..display import span
from ..event import iso_time

#: Record kinds this part folds (``run`` records through ``fold_run``).
KINDS = (kinds.APPROVAL, kinds.APPROVE, kinds.DENY, kinds.START)

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Approval:
    """One open request."""

    id: str
    start_level: str
    levels: Tuple[str, ...]
    targets: Dict[str, List[str]]
    checks: List[dict]
    asked: float
    expires: float
    summary: str = ""
    approved_by: Optional[str] = None
    reason: str = ""

    @property
    def hosts(self) -> set:
        return {h for hosts in self.targets.values() for h in hosts}

    def to_json(self) -> dict:
        return dict(self.__dict__, levels=list(self.levels))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Approval":
        return cls(**dict(d, levels=tuple(d.get("levels") or ())))

    def view(self) -> dict:
        """The ``status --json`` form."""
        return {"id": self.id, "levels": list(self.levels), "targets": self.targets,
                "checks": self.checks, "asked": self.asked, "expires": self.expires,
                "approved_by": self.approved_by}


@dataclass
class Approvals:
    """Open approval requests, folded from journal records."""

    pending: Dict[str, Approval] = field(default_factory=dict)

    def apply(self, rec: Mapping[str, Any], state: Any) -> None:
        kind = rec.get("kind")
        rid = str(rec.get("approval") or "")  # "id" is the spool record's own
        if kind == kinds.APPROVAL:
            if rec.get("outcome", "requested") == "requested":
                self.pending[rid] = Approval(
                    id=rid, start_level=str(rec.get("start_level") or ""),
                    levels=tuple(rec.get("levels") or ()), targets=dict(rec.get("targets") or {}),
                    checks=list(rec.get("checks") or ()), asked=float(rec.get("asked", rec["time"])),
                    expires=float(rec.get("expires", rec["time"])), summary=str(rec.get("summary") or ""))
            else:
                self.pending.pop(rid, None)
        elif kind == kinds.APPROVE:
            a = self.pending.get(rid)
            if a is not None and a.approved_by is None:
                a.approved_by = str(rec.get("user") or "?")
                a.reason = str(rec.get("reason") or "")
        elif kind == kinds.DENY:
            a = self.pending.pop(rid, None)
            if a is not None:
                # Held as an exhausted level is held: until its checks recover or `resume`.
                ep = state.episodes.setdefault(a.start_level, Episode())
                ep.held = True
                ep.pending |= set(keys_of(a.checks))
                why = rec.get("reason") or "no reason given"
                ep.reason = f"run denied by {rec.get('user') or '?'} ({why})"
        elif kind == kinds.START and rid:
            self.pending.pop(rid, None)   # the approved run is under way

    def fold_run(self, run: RunRecord) -> None:
        if run.approval:
            self.pending.pop(str(run.approval), None)   # the approved run is over

    def to_json(self) -> dict:
        return {k: a.to_json() for k, a in self.pending.items()}

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> "Approvals":
        return cls({k: Approval.from_json(v) for k, v in (data or {}).items()})

    def shift(self, delta: float) -> None:
        """The wall clock stepped (``State.shift``): each request keeps the time it had left."""
        for a in self.pending.values():
            a.asked += delta
            a.expires += delta

    def next_expiry(self) -> Optional[float]:
        times = [a.expires for a in self.pending.values() if a.approved_by is None]
        return min(times) if times else None


@dataclass(frozen=True)
class Gate:
    """What ``gate`` says about a run: ``records`` to journal, or wait until ``wake``,
    or (all empty) go ahead, carrying ``approval`` when a person approved it."""

    records: Tuple[dict, ...] = ()
    wake: Optional[float] = None
    why: str = ""
    approval: Optional[str] = None


def expire(approvals: Approvals, now: float) -> List[dict]:
    """An unanswered request past its time is denied by escalator, and notified."""
    out: List[dict] = []
    for a in approvals.pending.values():
        if a.approved_by is None and now >= a.expires:
            reason = f"no answer within {span(a.expires - a.asked)}"
            out.append({"time": now, "kind": kinds.DENY, "approval": a.id, "user": "escalator", "timeout": True,
                        "reason": reason, "start_level": a.start_level, "levels": list(a.levels)})
            out.append({"time": now, "kind": kinds.NOTIFY, "reason": "approval-timeout", "level": a.start_level,
                        "summary": f"approval {a.id} timed out ({reason}): levels {', '.join(a.levels)} "
                                   f"for {_hosts(a.hosts)} denied, level {a.start_level} held until its "
                                   f"checks recover or `escalator resume`"})
    return out


def withdraw(approvals: Approvals, now: float, reason: str) -> List[dict]:
    """Close every open request: nothing that would run needs it any more."""
    return [{"time": now, "kind": kinds.APPROVAL, "outcome": "withdrawn", "approval": a.id,
             "start_level": a.start_level, "reason": reason} for a in approvals.pending.values()]


def gate(approvals: Approvals, config: Config, run: Mapping[str, Any], levels: Sequence[Level],
         now: float) -> Gate:
    """Whether the run described by ``run`` (a ``RunPlan.record``) may start now."""
    asking = [lv for lv in levels if lv.approval is not None]
    if not asking:
        if approvals.pending:
            return Gate(tuple(withdraw(approvals, now, "the run now needed does not need approval")),
                        wake=now, why="withdrawing approval requests")
        return Gate()
    hosts = {h for hs in run["targets"].values() for h in hs}
    out: List[dict] = []
    for a in approvals.pending.values():
        if a.start_level == run["start_level"] and hosts <= a.hosts:
            if a.approved_by is not None:
                return Gate(approval=a.id)
            return Gate(wake=a.expires, why=f"waiting for approval {a.id} of levels {', '.join(a.levels)} "
                                            f"(`escalator approve {a.id}`) until {iso_time(a.expires)}")
        out.append({"time": now, "kind": kinds.APPROVAL, "outcome": "replaced", "approval": a.id,
                    "start_level": a.start_level,
                    "reason": f"now needed: levels {', '.join(run['levels'])} for {_hosts(hosts)}"})
    rid = new_id(now, approvals.pending)
    timeout = asking[0].approval or 0.0
    names = ", ".join(lv.name for lv in asking)
    checks = run.get("checks") or []
    asked_by = ", ".join(f"{c['host']}/{c['service']}" if c.get("service") else c["host"] for c in checks[:5])
    if len(checks) > 5:
        asked_by += f" and {len(checks) - 5} more"
    out.append({"time": now, "kind": kinds.APPROVAL, "outcome": "requested", "approval": rid,
                "levels": list(run["levels"]), "start_level": run["start_level"], "targets": run["targets"],
                "checks": checks, "asked": now, "expires": now + timeout, "needs": names,
                "summary": run.get("summary", "")})
    out.append({"time": now, "kind": kinds.NOTIFY, "reason": "approval", "level": run["start_level"],
                "summary": f"approval {rid} needed: levels {', '.join(run['levels'])} for {_hosts(hosts)} "
                           f"(level {names} needs approval), asked by {asked_by}; "
                           f"run `escalator approve {rid}` or `escalator deny {rid}` "
                           f"before {iso_time(now + timeout)} (then denied)"})
    return Gate(tuple(out), wake=now, why=f"asking for approval {rid}")


def new_id(now: float, taken: Mapping[str, Any]) -> str:
    """A short id an operator can type: the request time in base-36 milliseconds (last 7 digits)."""
    n = int(now * 1000)
    while True:
        digits = ""
        m = n
        for _ in range(7):
            m, r = divmod(m, 36)
            digits = _ALPHABET[r] + digits
        if digits not in taken:
            return digits
        n += 1


def _hosts(hosts: Any) -> str:
    names = sorted(hosts)
    if not names:
        return "no hosts"
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


__all__ = ["Approval", "Approvals", "Gate", "KINDS", "expire", "gate", "new_id", "withdraw"]
