"""The gap ledger: intervals during which escalator could not hear Icinga.

``escalator listen`` spools a ``gap`` record (kinds.GAP) when it stops
hearing the event stream (not connected, reconnecting, the stream silent
longer than its watchdog, listen stopped) with ``outcome: open``, and one
with ``outcome: closed`` (``start``, ``end``, ``reason``) once a catch-up from
``/v1/objects`` has recorded what changed meanwhile.  ``Gaps`` folds them for
``status``, ``plan --explain``, ``history`` and the collector, which notes an
open gap on every run it starts (``gap`` field of ``start`` and ``run``).

A listen that died without a word (SIGKILL, a crash) writes no record: its
heartbeat file goes stale instead (see :mod:`escalator_handlers.listen`),
and the readers treat a stale heartbeat as an open gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Mapping, Optional, Sequence

from .. import kinds

KINDS = (kinds.GAP,)
#: Closed gaps kept in the state (the journal keeps them all).
RECENT = 10


@dataclass
class Gaps:
    """The open gap (a ``gap`` record, or None) and the last closed ones, as journalled."""

    open: Optional[dict] = None
    recent: Deque[dict] = field(default_factory=lambda: deque(maxlen=RECENT))

    def apply(self, rec: Mapping[str, Any], state: Any) -> None:
        if rec.get("outcome") == "closed":
            self.open = None
            self.recent.append(gap_fields(rec))
        elif self.open is None:
            self.open = gap_fields(rec)  # a second open while one is open keeps the first start

    def to_json(self) -> dict:
        return {"open": self.open, "recent": list(self.recent)}

    @classmethod
    def from_json(cls, data: Optional[Mapping[str, Any]]) -> "Gaps":
        g = cls()
        if isinstance(data, Mapping):
            g.open = data.get("open") if isinstance(data.get("open"), dict) else None
            g.recent.extend(r for r in data.get("recent") or () if isinstance(r, dict))
        return g


def current(state_gaps: "Gaps", heartbeat: Optional[Mapping[str, Any]]) -> Optional[dict]:
    """The gap open now: what listen's heartbeat says (it knows better: a killed listen
    journals nothing), else the journal's open gap."""
    if heartbeat is not None:
        return dict(heartbeat)
    return dict(state_gaps.open) if state_gaps.open is not None else None


def note(records: Sequence[dict], gaps: "Gaps", heartbeat: Optional[Mapping[str, Any]]) -> List[dict]:
    """A decision taken while escalator cannot hear Icinga says so: ``start`` and ``run``
    records get ``gap`` (since when, why)."""
    gap = current(gaps, heartbeat)
    if gap is None:
        return list(records)
    return [dict(r, gap=gap) if r.get("kind") in (kinds.START, kinds.RUN) else r for r in records]


def gap_fields(rec: Mapping[str, Any]) -> dict:
    out = {"start": float(rec.get("start") or rec.get("time") or 0.0), "reason": str(rec.get("reason") or "")[:500]}
    if rec.get("end") is not None:
        out["end"] = float(rec["end"])
    return out


def describe(gap: Mapping[str, Any]) -> str:
    """``since 2026-12-08T01:02:03Z: reason`` or ``2026-...Z to ...Z (12s): reason``."""
    from ..event import iso_time as iso  # display imports this module: no cycle back

    start = gap.get("start")
    if gap.get("end") is None:
        return f"since {iso(start)}: {gap.get('reason', '')}"
    end = gap["end"]
    return f"{iso(start)} to {iso(end)} ({max(0.0, end - start):.0f}s): {gap.get('reason', '')}"


def lines(open_gap: Optional[Mapping[str, Any]], recent: Sequence[Mapping[str, Any]]) -> List[str]:
    """What ``status`` and ``plan --explain`` say about gaps."""
    out = []
    if open_gap is not None:
        out.append("OPEN gap, escalator cannot hear Icinga " + describe(open_gap))
    out += ["gap " + describe(g) for g in list(recent)[-3:]]
    return out


__all__ = ["Gaps", "KINDS", "RECENT", "current", "describe", "note", "gap_fields", "lines"]
