"""Interlocks: hosts escalator keeps its hands off although their checks ask.

Two reasons, both decided here so the planner asks one question:

- **A person acknowledged a problem** on the host in Nagios or Icinga (an
  acknowledgement whose author is not escalator's own).  The collector reads
  acknowledgements (``monitoring.acks``) and journals ``ack`` records when they
  appear (``outcome: set``, with who and their comment) and go
  (``outcome: removed``); ``Acks`` folds them.  An acknowledgement counts
  while its check is still a problem: a recovery ends it even before the
  next read notices that Nagios removed it.  No page: the person knows.
- **``limits.per_host``** (see ``brakes``): the host was a target too often.

``set_aside`` splits the asking checks into those escalator may act on and
those it must leave alone, with the records and ``plan --explain`` lines
that say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import approvals, brakes
from .. import kinds
from ..config import Config
from ..display import safe
from ..event import CheckKey, check_name

KINDS = (kinds.ACK,)


@dataclass(frozen=True)
class Ack:
    """A person's acknowledgement of one problem."""

    host: str
    service: Optional[str]
    author: str
    comment: str
    time: float = 0.0

    @property
    def key(self) -> CheckKey:
        return (self.host, self.service)

    def record(self, now: float, outcome: str = "set") -> dict:
        return {"time": now, "kind": kinds.ACK, "outcome": outcome, "host": self.host, "service": self.service,
                "author": self.author, "comment": self.comment, "entry_time": self.time}

    @property
    def by(self) -> str:
        return f"acknowledged by {self.author or '(unknown)'}" + (f": {self.comment}" if self.comment else "")


@dataclass
class Acks:
    """The acknowledgements by people in force, as journalled."""

    by_check: Dict[CheckKey, Ack] = field(default_factory=dict)

    def apply(self, rec: Mapping[str, Any], state: Any) -> None:
        key = (str(rec.get("host") or ""), rec.get("service") or None)
        if rec.get("outcome") == "removed":
            self.by_check.pop(key, None)
        else:
            self.by_check[key] = Ack(key[0], key[1], str(rec.get("author") or ""),
                                     str(rec.get("comment") or ""), float(rec.get("entry_time") or 0.0))

    def active(self, checks: Mapping[CheckKey, Any]) -> Dict[str, Ack]:
        """Host -> an acknowledgement on one of its checks that is still a problem."""
        out: Dict[str, Ack] = {}
        for key, ack in self.by_check.items():
            cs = checks.get(key)
            if cs is None or not cs.good:
                out.setdefault(key[0], ack)
        return out

    def changes(self, current: Mapping[CheckKey, Ack], now: float) -> List[dict]:
        """Records that bring the journalled acknowledgements in line with ``current``."""
        out = [a.record(now) for k, a in sorted(current.items(), key=_order) if self.by_check.get(k) != a]
        out += [a.record(now, "removed") for k, a in sorted(self.by_check.items(), key=_order) if k not in current]
        return out

    def to_json(self) -> list:
        return [a.record(0.0) for a in self.by_check.values()]

    @classmethod
    def from_json(cls, data: Optional[Sequence[Mapping[str, Any]]]) -> "Acks":
        acks = cls()
        for rec in data or ():
            acks.apply(rec, None)
        return acks


def _order(item: Tuple[CheckKey, Any]) -> tuple:
    return (item[0][0], item[0][1] or "")


@dataclass(frozen=True)
class Aside:
    """The asking checks escalator may act on, and those it leaves alone (and why)."""

    asking: List[Any]
    acked: List[Tuple[Any, Ack]] = field(default_factory=list)
    braked: List[Any] = field(default_factory=list)
    records: Tuple[dict, ...] = ()
    explain: Tuple[str, ...] = ()

    @property
    def left_alone(self) -> List[Any]:
        return [a for a, _ in self.acked] + list(self.braked)

    def reason(self) -> str:
        parts = [f"{h}: {safe(ack.by, 300)}" for h, ack in
                 sorted({a.key[0]: ack for a, ack in self.acked}.items())]
        hosts = sorted({a.key[0] for a in self.braked})
        if hosts:
            parts.append(f"{', '.join(hosts)}: limits.per_host reached")
        return "hands off " + "; ".join(parts)


def set_aside(state: Any, config: Config, now: float, asking: List[Any], levels: Sequence[Any]) -> Aside:
    """Split ``asking`` (planner ``Asking`` items); see the module docstring."""
    acked_hosts = state.acks.active(state.checks) if state.acks.by_check else {}
    limited = config.limits.per_host is not None or state.brakes.braked
    if not acked_hosts and not limited:
        return Aside(asking)
    braked_hosts, records = brakes.host_brakes(state.brakes, config, {a.key[0] for a in asking}, now) \
        if limited else (set(), [])
    kept, acked, braked, lines = [], [], [], []
    for a in asking:
        host = a.key[0]
        what = f"{check_name(a.key)} asks for level {levels[a.level - 1].name} but host {host} is"
        if host in acked_hosts:
            ack = acked_hosts[host]
            acked.append((a, ack))
            lines.append(f"{what} {ack.by}")
        elif host in braked_hosts:
            braked.append(a)
            lines.append(f"{what} left alone: limits.per_host reached")
        else:
            kept.append(a)
    return Aside(kept, acked, braked, tuple(records), tuple(lines))


def due(state: Any, config: Config, now: float) -> List[dict]:
    """What is due now: approval timeouts, per-host windows passed, backoff counters to reset."""
    out = approvals.expire(state.approvals, now) if state.approvals.pending else []
    if state.brakes.braked:
        out += brakes.lifted(state.brakes, config, now)
    if state.brakes.counters:
        out += brakes.resets(state.brakes, config, state.checks, now)[0]
    return out


def next_due(state: Any, config: Config, now: float) -> Optional[float]:
    """When ``due`` will next have something to say (the planner wakes then)."""
    times = [t for t in (state.approvals.next_expiry(), brakes.next_lift(state.brakes),
                         brakes.resets(state.brakes, config, state.checks, now)[1] if state.brakes.counters else None)
             if t is not None]
    return min(times) if times else None


def stays_idle(state: Any, config: Config) -> bool:
    """Whether the planner's idle answer holds until its wake-up for as long as nothing is
    folded but observations that leave every failing check as it was: none of the things
    read with the clock or with the other checks is in play (operator holds and requests,
    acknowledgements, approvals, per-host limits, backoff)."""
    b = state.brakes
    return not (state.holds or state.requests or state.acks.by_check or state.approvals.pending
                or b.braked or b.counters or b.waits or config.limits.per_host is not None)


__all__ = ["Ack", "Acks", "Aside", "KINDS", "due", "next_due", "set_aside", "stays_idle"]
