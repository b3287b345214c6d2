"""The storage seam: the four things the collector keeps or holds outside itself.

The collector talks only to these interfaces.  :mod:`.local` implements them
with files (one node: the spool directory, ``journal.jsonl``, ``state.json``,
a file lock); :mod:`escalator_handlers.cluster.storage` implements them on
etcd (several nodes, one logical collector).  The handler's hot path is not
behind the seam: it appends to the local spool directly
(:mod:`escalator_handlers.spool`); bringing that spool into a shared intake is
the intake's business (``Intake.gather``).

The collector uses them in one order, and every implementation must make that
order safe (this is the whole crash-safety argument: read it before writing
a backend):

1. ``leadership.acquire()``: at most one collector acts per escalator.
2. ``snapshot.load()`` then ``journal.read(position)``: the state is the
   snapshot plus every journal record after the position it covers
   (:func:`recover`).
3. ``intake.take()`` -> ``journal.append(records, batch)`` ->
   ``intake.acknowledge(batch)``: an event may leave the intake only once the
   journal holds it.  A batch taken but not acknowledged (a crash) is taken
   again; the collector drops records whose ``id`` it journalled already, so
   an implementation may deliver a record twice but must never lose one.
4. Decisions and run records are appended *before* the effect they describe
   (a run's ``start`` before its first step); just before each step starts,
   ``leadership.announce()`` then ``leadership.check()``.
5. ``snapshot.save(state, position)`` when ``snapshot.due()``, and when the
   collector leaves; skipping a save is always safe (the journal is the
   write-ahead log).

Every method may raise :class:`~escalator_handlers.errors.EscalatorError`
(a message for the operator).  A backend shared by several nodes raises
:class:`LeadershipLost` when a write shows another collector leads now, and
:class:`StorageUnavailable` when it cannot reach its store; the collector
then stops acting, forgets its state and campaigns again.  A local backend
raises neither.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Container, Iterable, Iterator, List, Optional, Tuple

from ..display import safe
from ..event import Event, arrival_record, check_name, observation_id
from .. import kinds

from .seam import (Batch, Intake, Journal, Leadership, LeadershipLost, Position, PositionLost, ReadStats,
                   Recovered, Snapshot, Storage, StorageUnavailable, Taken)

if TYPE_CHECKING:
    from ..config import Config
    from ..planning.state import State
    from ..system import System

log = logging.getLogger("escalator")


def intake_records(items: Iterable[Taken], seen: Container[str], now: float) -> List[dict]:
    """Journal records for taken (source, line, record or None, raw text) items.

    Events (oldest first), then operator actions, then ``rejected`` records for
    lines that are not events; ids in ``seen`` (journalled before a crash, the
    spool entry outlived it) are skipped.  Nothing a line holds stops the
    others: whatever goes wrong with one (any exception) rejects that line alone.  An event whose
    observation (``event.observation_id``: same check, state and check time) was journalled
    already, heard from another source (two Icinga masters, stream and handler), is skipped.
    """
    events: List[dict] = []
    controls: List[dict] = []
    rejected: List[dict] = []
    observed: set = set()
    for item in items:
        where, lineno, rec, raw = item[:4]
        trusted, distrust = (item[4], item[5]) if len(item) > 5 else (False, None)
        try:
            if rec is None:
                rejected.append(rejected_record(now, where, "not a complete JSON record", raw, lineno))
                continue
            rid = rec.get("id")
            if rid is not None and not isinstance(rid, str):
                raise ValueError(f"its id must be a string, not {type(rid).__name__}")
            if rid is not None and rid in seen:
                continue
            kind = rec.get("kind")
            if kind in kinds.CONTROL_KINDS:
                if trusted:
                    controls.append(_control(rec, now))
                    continue
                # Whoever can write the event spool (the monitoring user) is no operator.
                why = distrust or "an operator command in the event spool, which the monitoring user writes"
                log.warning("rejected a %s record from %s: %s; operator commands come from `escalator` "
                            "run by root or escalator's user", safe(kind), safe(where), why)
                rejected.append(rejected_record(now, where, f"{why}: not obeyed", raw, lineno))
                continue
            if trusted:
                rejected.append(rejected_record(now, where, "not an operator command", raw, lineno))
                continue
            if kind == kinds.REJECTED:
                # The handler refused an event (a field over its limit) and says so here.
                rejected.append(rejected_record(
                    _time(rec.get("time"), now), str(rec.get("source") or where)[:200],
                    str(rec.get("reason") or "refused by the handler"), str(rec.get("text") or ""), lineno,
                    file=where))
                continue
            if kind in kinds.LISTEN_KINDS:  # what `escalator listen` says of itself (a gap): no command
                controls.append(_control(rec, now))
                continue
            ev = Event.from_dict(rec)
            obs = observation_id(ev.host, ev.service, ev.state, ev.state_type, ev.downtime, ev.check_time)
            if obs is not None:
                if obs in seen or obs in observed:
                    continue  # the same observation, heard twice
                observed.add(obs)
            record, why = arrival_record(ev, rec, now)
            if obs is not None:
                record["observation"] = obs
            if why:
                log.warning("event for %s: %s; recorded at the current time", safe(check_name(ev.key)), why)
        except Exception as exc:  # noqa: BLE001 -- one bad line costs that line only
            reason = str(exc) if isinstance(exc, (ValueError, TypeError)) else \
                f"cannot be read ({type(exc).__name__}: {exc})"
            rejected.append(rejected_record(now, where, reason, raw, lineno))
            continue
        events.append(record)
    events.sort(key=lambda r: r["time"])
    return events + controls + rejected


def _control(rec: dict, now: float) -> dict:
    """An operator's record as journalled: a hold ``--for`` a while runs from ``now``, on the
    collector's clock (not the command's, which may be another, or stepped since)."""
    out = dict(rec, time=_time(rec.get("time"), now))
    lasts = rec.get("for")
    if rec.get("kind") == kinds.HOLD and isinstance(lasts, (int, float)) and not isinstance(lasts, bool) \
            and 0 < lasts < float("inf"):
        out["until"] = now + float(lasts)
    return out


def _time(value: object, now: float) -> float:
    """A record's own ``time`` when it is a finite number, else ``now``."""
    try:
        t = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return now
    return t if t - t == 0.0 else now


def rejected_record(now: float, source: str, reason: str, text: str, line: Optional[int] = None, *,
                    file: Optional[str] = None) -> dict:
    """The ``rejected`` record of something refused from an intake: why (plain English), where
    (``source``: a spool file, a control file, a stream) and what, truncated.  ``file``: the
    intake entry it was read from (default ``source``), which the intake consumes."""
    rec = {"time": now, "kind": kinds.REJECTED, "source": source, "file": file or source,
           "reason": reason[:500], "text": text[:2000]}
    if line is not None:
        rec["line"] = line
    return rec


def open_storage(config: Config, system: Optional[System] = None) -> Storage:
    """The backend ``config`` asks for (nothing opened or created yet): etcd with
    ``cluster:``, local files without; local effects go through ``system``."""
    if getattr(config, "cluster", None) is not None:
        from ..cluster.storage import open_cluster

        return open_cluster(config)
    from ..system import REAL
    from .local import open_local

    return open_local(config, system or REAL)


def load(config: Config) -> Recovered:
    """The state as of the end of the journal, for readers (status, plan, control): the
    backend ``config`` asks for, recovered without taking the leadership."""
    storage = open_storage(config)
    try:
        return recover(storage, config)
    finally:
        storage.leadership.close()


def recent(config: Config, of: Tuple[str, ...], limit: int = 20) -> List[dict]:
    """The last ``limit`` journal records of the kinds ``of``, for readers."""
    storage = open_storage(config)
    try:
        return storage.journal.recent(of, limit)
    finally:
        storage.leadership.close()


def recover(storage: Storage, config: Config) -> Recovered:
    """Load the snapshot and fold every later journal record into it (from scratch when
    the journal cannot continue from the snapshot's position)."""
    from ..planning.state import State

    loaded = storage.snapshot.load(config)
    state, position = loaded if loaded is not None else (State(config), None)
    stats = ReadStats()
    tail: List[dict] = []
    try:
        _fold(storage.journal.read(position, stats), state, tail, stats)
    except PositionLost as exc:
        log.warning("%s; rebuilding the state from every journal record", exc)
        state, position, tail, stats = State(config), None, [], ReadStats()
        _fold(storage.journal.read(None, stats), state, tail, stats)
    return Recovered(state, stats.end if stats.end is not None else position, tail, stats.corrupt)


def _fold(records: Iterator[Tuple[Position, dict]], state: State, tail: List[dict], stats: ReadStats) -> None:
    for _, rec in records:
        try:
            state.apply(rec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A damaged or hand-edited record must not keep every collector from starting.
            stats.corrupt += 1
            import json

            log.warning(
                "journal: skipping a record that cannot be folded (%s: %s): %.200s",
                type(exc).__name__, exc, json.dumps(rec, default=str))
            continue
        tail.append(rec)


__all__ = ["intake_records", "rejected_record", "Batch", "Intake", "Journal", "Leadership", "LeadershipLost", "Position", "PositionLost", "ReadStats",
           "Recovered", "Snapshot", "Storage", "StorageUnavailable", "Taken", "load", "open_storage", "recent",
           "recover"]
