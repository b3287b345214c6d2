"""Replay: drive the collector's loop over recorded events on their own clock.

Sources are Nagios 4 ``nagios.log`` files, JSON-lines event or journal files,
Icinga 2 event streams captured by ``escalator listen --capture``,
and spool directories; the format is detected from the first line.  Events
stream through the state fold while a simulated clock jumps from one planner
wake-up to the next, so a day of log replays in well under a second.  After
the last event the clock runs on (debounce, quiescence, verdicts,
re-convergence, exhaustion) until nothing is pending or ``until``.  Dry-run
by default: runs are recorded as ``dry-run`` with the would-be commands.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import os
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, BinaryIO, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from .config import Config
from .errors import UsageError
from .event import GOOD_STATES, Event, LimitError, limit_fields
from . import kinds
from .monitoring import icinga_events, nagioslog
from .planning.loop import Simulation
from .planning.planner import RunPlan
from .planning.state import State
from .steps.run_plan import DryRunner, execute, notify_steps

#: An observation tuple (time, host, service, state, state_type, attempt,
#: downtime, output), or a control record as (time, record).
Item = Tuple[Any, ...]


@dataclass
class SourceStats:
    files: List[str] = field(default_factory=list)
    lines: int = 0
    events: int = 0
    ignored: int = 0
    unparsed: int = 0
    unparsed_where: List[str] = field(default_factory=list)
    replayed: int = 0          # events inside --since/--until (``events`` counts all read)
    refused: List[str] = field(default_factory=list)   # "FILE:LINE: why": a field over its limit
    before: int = 0            # events before --since, folded as the starting state


def _open(path: str) -> BinaryIO:
    """A file for reading, decompressed when it is gzip (rotated archives often are)."""
    f = open(path, "rb")
    if f.peek(2)[:2] == b"\x1f\x8b":
        import gzip  # only replay of a compressed archive pays for it

        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    return f


def detect(path: str) -> str:
    """``spool``, ``nagios`` or ``jsonl``; raise UsageError when it is none of them."""
    if os.path.isdir(path):
        return "spool"
    try:
        with _open(path) as f:
            for raw in f:
                s = raw.lstrip()
                if not s:
                    continue
                if s[:1] == b"[":
                    return "nagios"
                if s[:1] == b"{":
                    return "jsonl"
                raise UsageError(f"{path}: not a nagios.log, JSON-lines or spool file "
                                 f"(first line starts with {s[:20]!r})")
    except (OSError, EOFError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return "jsonl"  # empty file: nothing to replay, not an error


def _nagios_items(path: str, stats: SourceStats, downtimes: nagioslog.Downtimes) -> Iterator[Item]:
    """The observation tuples of one nagios.log (time first), counted in ``stats`` at its end."""
    # Blocks taken apart in C: no generator of ours is resumed per observation.
    return chain.from_iterable(_nagios_blocks(path, stats, downtimes))


def _nagios_blocks(path: str, stats: SourceStats, downtimes: nagioslog.Downtimes) -> Iterator[List[Item]]:
    ps = nagioslog.ParseStats()
    try:
        with _open(path) as f:
            yield from nagioslog.parse_blocks(f, ps, downtimes)
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz archive
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    stats.lines += ps.lines
    stats.events += ps.used
    stats.ignored += ps.ignored
    stats.unparsed += ps.unparsed
    stats.unparsed_where.extend(f"{path}:{n}" for n in ps.unparsed_lines)


def _json_items(paths: Sequence[str], stats: SourceStats) -> Iterator[Item]:
    items: List[Item] = []
    for path in paths:
        try:
            f = _open(path)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        try:
            with f:
                for lineno, raw in enumerate(f, 1):
                    stats.lines += 1
                    if not raw.strip():
                        continue
                    try:
                        rec = json.loads(raw)
                        if "kind" not in rec and rec.get("type") in icinga_events.STREAM_TYPES:
                            rec = icinga_events.from_captured(rec)  # `listen --capture`
                            if rec is None:
                                stats.ignored += 1
                                continue
                        kind = rec.get("kind", kinds.EVENT)
                        t = float(rec["time"])
                        if not math.isfinite(t):  # "inf", NaN: no clock runs to or from it (as in nagioslog)
                            raise ValueError("time")
                        if kind == kinds.EVENT:
                            try:
                                rec, _ = limit_fields(rec)  # the collector's limits (event_limits)
                            except LimitError as exc:
                                stats.refused.append(f"{path}:{lineno}: {exc}")
                                continue
                            # The collector's own parser: states and state types normalised
                            # ("critical", "hard", 2) exactly as when the spool is taken.
                            e = Event.from_dict(rec)
                            item: Any = (t, e.host, e.service, e.state, e.state_type, e.attempt, e.downtime,
                                         e.output)
                            stats.events += 1
                        elif kind in kinds.CONTROL_KINDS and kind != kinds.REQUEST \
                                and (kind in (kinds.PAUSE, kinds.RESUME) or rec.get("host")):
                            item = (t, rec)  # an operator's action; a level's `release` is the planner's own
                        else:
                            stats.ignored += 1
                            continue
                    except Exception:  # noqa: BLE001 -- any bad line (RecursionError too) costs that line only
                        stats.unparsed += 1
                        stats.unparsed_where.append(f"{path}:{lineno}")
                        continue
                    items.append(item)
        except (OSError, EOFError) as exc:  # a truncated or corrupt .gz file
            raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    items.sort(key=_time)  # stable: equal times keep their order in the files
    return iter(items)


_time = itemgetter(0)

#: The cyclic collector's first threshold while replaying (Python's default: 700).
GC_THRESHOLD = 100_000


def _first_time(path: str) -> float:
    """The timestamp of a nagios.log's first log line (inf when it has none)."""
    with _open(path) as f:
        for raw in f:
            end = raw.find(b"]")
            if raw[:1] == b"[" and end > 1:
                try:
                    t = float(raw[1:end])
                except ValueError:
                    continue
                if math.isfinite(t):  # not "[nan]" or "[inf]", which the parser counts as unparsed
                    return t
    return float("inf")


def _nagios_history(paths: Sequence[str], stats: SourceStats) -> Iterator[Item]:
    """Several nagios.log files as one history, in time order whatever order they came in.

    Files are taken in the order of their first timestamps and share one
    :class:`nagioslog.Downtimes`, so a downtime that STARTED in one archive and
    STOPPED in the next is one downtime.  A file is opened only when the
    history reaches its first timestamp: consecutive archives are read one
    after the other, exactly like their concatenation; files that overlap in
    time (two pollers' logs) are merged by time.
    """
    downtimes = nagioslog.Downtimes()
    pending = sorted(((_first_time(p), i, p) for i, p in enumerate(paths)), reverse=True)
    active: List[Tuple[float, int, Item, Iterator[Item]]] = []
    while active or pending:
        if pending and (not active or pending[-1][0] < active[0][0]):
            _, i, path = pending.pop()
            stream = _nagios_items(path, stats, downtimes)
            first = next(stream, None)
            if first is not None:
                heapq.heappush(active, (first[0], i, first, stream))
            continue
        t, i, item, stream = active[0]
        limit = pending[-1][0] if pending else None
        yield item
        if len(active) == 1:
            # The common case, one archive at a time: no heap work per line.
            if limit is None:
                yield from stream  # the last archive: no check per line either
                active.pop()
                continue
            for item in stream:
                if limit is not None and item[0] > limit:
                    active[0] = (item[0], i, item, stream)
                    break
                yield item
            else:
                active.pop()
            continue
        nxt = next(stream, None)
        if nxt is None:
            heapq.heappop(active)
        else:
            heapq.heapreplace(active, (nxt[0], i, nxt, stream))


def sources(paths: Sequence[str], stats: SourceStats) -> Iterator[Item]:
    """All inputs merged into one time-ordered stream (at equal times: in the order given).

    All nagios.log files form one history (:func:`_nagios_history`); JSON-lines
    files and spools carry the handler's own downtime depth.
    """
    streams: List[Iterator[Item]] = []
    logs: List[str] = []
    for path in paths:
        kind = detect(path)
        stats.files.append(f"{path} ({kind})")
        if kind == "nagios":
            if not logs:
                streams.append(_nagios_history(logs, stats))  # reads ``logs`` once all are known
            logs.append(path)
        elif kind == "spool":
            names = sorted(n for n in os.listdir(path)
                           if n == "events.jsonl" or (n.startswith("taken-") and n.endswith(".jsonl")))
            streams.append(_json_items([os.path.join(path, n) for n in names], stats))
        else:
            streams.append(_json_items([path], stats))
    if len(streams) == 1:
        if len(logs) == 1:  # one nagios.log, the common case: its items straight, no generator per item
            return _nagios_items(logs[0], stats, nagioslog.Downtimes())
        return streams[0]
    return heapq.merge(*streams, key=_time)  # stable: ties go to the earlier stream


def replay(config: Config, paths: Sequence[str], out: Callable[[dict], None], *,
           until: Optional[float] = None,
           since: Optional[float] = None, show_events: str = "none") -> SourceStats:
    """Replay ``paths`` through the collector's loop on a simulated clock; call ``out``
    with every record.

    ``since``: the events before it only build the starting state (what the
    collector would have known at that time); the clock starts there.
    ``until``: the clock stops there; later events are read only to be counted.
    """
    stats = SourceStats()
    replay_items(config, sources(paths, stats), out, until=until,
                 since=since, show_events=show_events, stats=stats)
    return stats


def hand_over(config: Config, paths: Sequence[str], until: Optional[float] = None) -> Tuple[int, SourceStats]:
    """``replay --execute``: append the events of ``paths`` to the live spool, for the collector.

    Replay never runs a step itself: steps run only in the collector, under its
    lock and journal, pause, holds and limits, with real quiescence.  Each event
    keeps its own time (an older observation never overrides a newer one) and
    is debounced on its arrival like any other; operator records in the files
    (old holds, pauses) are not re-applied.
    """
    from . import spool
    from .event import Event

    stats = SourceStats()
    n = 0
    for item in sources(paths, stats):
        if len(item) == 2 or (until is not None and item[0] > until):
            continue
        t, host, service, state, state_type, attempt, downtime, output = item[:8]
        rec = Event(t, host, service, state, state_type, attempt, downtime, output).to_dict()
        spool.append(config.spool, dict(rec, source="replay"), mode=config.spool_mode)
        n += 1
    return n, stats


def replay_items(config: Config, items: Iterable[Item], out: Callable[[dict], None], *,
                 until: Optional[float] = None,
                 since: Optional[float] = None, show_events: str = "none",
                 stats: Optional[SourceStats] = None) -> None:
    """Drive the collector's loop over time-ordered ``items`` on their own clock (``escalator
    test`` feeds a scenario's events here); the clock starts at ``since`` (see ``replay``)
    and stops at ``until`` (epoch), else when nothing is pending, at most a day after the
    last item.  Always a dry run: the steps are rendered, never run (``hand_over`` gives
    events to the collector).  ``stats`` counts the events inside and before the window."""
    stats = stats if stats is not None else SourceStats()
    state = State(config)
    dry = True
    runner: Any = DryRunner()

    def record(records: Sequence[dict]) -> None:
        for rec in records:
            state.apply(rec)
            out(rec)
            if rec.get("kind") == kinds.NOTIFY:
                notify_steps(config, rec, runner, record, sim.clock, dry_run=dry)

    def act(plan: RunPlan) -> None:
        execute(plan, config, runner, record, sim.clock, dry_run=True)

    # Lazy: ask the planner only when an event can change its answer (a busy day of
    # log has mostly events that cannot); explain=False: replay never shows it.
    sim = Simulation(state, config, record, act, explain=False, lazy=True)
    show = None
    if show_events != "none":
        def show(item: Item) -> None:
            if _shown(state, item, show_events):
                out({"time": item[0], "kind": kinds.EVENT, "host": item[1], "service": item[2],
                     "state": item[3], "state_type": item[4], "attempt": item[5],
                     "downtime": item[6], "output": item[7]})
    # Replay allocates a few tuples per line, nearly all freed at once; the cyclic collector's
    # default pass every 700 allocations only walks them (about a hundredth of replay's time).
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_THRESHOLD), *threshold[1:])
    try:
        if since is not None or until is not None:
            items = _window(items, sim, since, until, stats)
        replayed, last_t = sim.feed(items, show)
        stats.replayed += replayed
        if since is not None and sim.wake is None and sim.now < since:
            sim.resume(since)  # every event came before --since: act on the state they left
        sim.run_until(until if until is not None else (last_t or since or 0.0) + 86400.0)
    finally:
        gc.set_threshold(*threshold)
        runner.close()


def _window(items: Iterable[Item], sim: Simulation, since: Optional[float], until: Optional[float],
            stats: SourceStats) -> Iterator[Item]:
    """The items for the simulated clock between ``since`` and ``until``: a later one is
    read only to be counted; an earlier one only builds the state the collector would
    have had then (folded, no planner), and the clock starts at ``since``."""
    state = sim.state
    for item in items:
        t = item[0]
        if until is not None and t > until:
            continue
        if since is not None and t < since:
            if len(item) == 2:
                state.apply(dict(item[1]))
            else:
                stats.before += 1
                state.observe(*item)
            continue
        if since is not None and sim.wake is None and sim.now < since:
            sim.resume(since)
        yield item


def _shown(state: State, item: Any, mode: str) -> bool:
    """``all`` events, or only ``changes``: a new HARD state or a downtime change."""
    if mode == "all":
        return True
    cs = state.checks.get((item[1], item[2]))
    if item[3] is None:
        return cs is None or cs.downtime != item[6]
    if item[4] != "HARD":
        return False
    if cs is None or cs.state is None:
        return item[3] not in GOOD_STATES  # first sight: only problems are news
    return cs.state != item[3] or cs.state_type != "HARD"
