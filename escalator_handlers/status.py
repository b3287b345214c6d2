"""What is going on: the read-only view behind ``escalator status`` and check_escalator.

``gather`` folds the snapshot, the journal after it and the spool entries not
yet collected, without taking the collector lock and without writing
anything, and asks the planner what it would do now.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from . import kinds, spool, spool_reader, storage
from .config import Config
from .event import Event, arrival_record, check_name
from .planning.downtime import in_downtime
from .planning.planner import decide, survey, unreachable_checks
from .planning.rollout import running as wave_running
from .planning.state import State


def gather(config: Config, now: float) -> Dict[str, Any]:
    """A JSON-ready report; see README "escalator status" for the fields."""
    view = None
    if config.cluster is not None:
        from .cluster.view import read

        view = read(config)  # the journal and snapshot live in etcd
        loaded = view.loaded
    else:
        loaded = storage.load(config)
    state = loaded.state
    problem = _spool_problem(config)
    pending_count, oldest = spool_reader.pending_stats(config.spool) if _spool_exists(config) else (0, None)
    rejected = fold_pending(config, state) if pending_count else 0
    pid = spool.collector_running(config.spool) if _spool_exists(config) else None
    refresh_acks(config, state, now)
    refresh_downtimes(config, state, now)
    s = survey(state)
    acked = state.acks.active(state.checks)
    d = decide(state, config, now)
    last = state.last_run()
    quiet_left = max(0.0, last.quiet_until - now) if last is not None and not last.judged else 0.0
    levels = config.levels
    runs = list(view.runs) if view else storage.recent(config, (kinds.RUN,), limit=10)
    verdicts = list(view.verdicts) if view else storage.recent(config, (kinds.VERDICT,), limit=20)
    # With cluster:, the collector that matters is the leader, wherever it runs.
    alive = (view.leader is not None) if view else pid is not None
    running = running_run(state, config, now, alive)
    nxt = {"why": d.why, "run": [lv.name for lv in d.run.levels] if d.run else None,
           "in": (d.wake - now) if d.wake is not None else None}
    if running is not None:
        # The fold sees a `start` without its `run`: that run is what happens now,
        # not the plan a fresh collector would make.
        nxt = {"why": "run in progress" if running["collector_alive"] else
               "run interrupted: its collector is gone (the next collector records it)",
               "run": None, "in": None}
    report = {
        "time": now,
        "paths": {"config": config.source, "spool": config.spool, "journal": config.journal,
                  "state": config.state_path},
        "running": running,
        "collector": {"running": pid is not None, "pid": pid if pid and pid > 0 else None},
        "spool": {"pending": pending_count, "oldest_age": (now - oldest) if oldest else None,
                  "unreadable": rejected, "problem": problem},
        "paused": state.paused is not None,
        "pause_reason": state.paused,
        "held_hosts": dict(state.held_hosts),
        "holds": [dict(h.to_json(), label=h.label) for h in state.holds.values()],
        "held_levels": {name: ep.reason for name, ep in state.episodes.items() if ep.held},
        "escalated_levels": [name for name, ep in state.episodes.items() if ep.escalated],
        "attempts": {name: ep.attempts for name, ep in state.episodes.items() if ep.pending},
        "failing": [
            {"check": check_name(a.key), "host": a.key[0], "service": a.key[1], "state": a.state,
             "state_type": a.state_type, "level": levels[a.level - 1].name,
             "held": a in s.held, "target": a.target,
             "acknowledged": ({"by": acked[a.key[0]].author, "comment": acked[a.key[0]].comment}
                              if a.key[0] in acked else None),
             "host_limited": a.key[0] in state.brakes.braked}
            for a in sorted(s.asking + s.held, key=lambda a: (a.level, a.key[0], a.key[1] or ""))
        ],
        "in_downtime": downtime_held(state, config),
        "unmapped": [check_name(k) for k in s.unmapped],
        "unreachable": [check_name(k) for k in sorted(unreachable_checks(state), key=lambda k: (k[0], k[1] or ""))],
        "required_level": levels[min(a.level for a in s.asking) - 1].name if s.asking else None,
        "next": nxt,
        "quiescence_left": quiet_left,
        "runs_last_hour": len(state.runs_since(now - 3600)),
        "last_runs": [with_verdict(r, verdicts) for r in runs],
        "last_verdicts": verdicts[-5:],
        "journal_unreadable": loaded.corrupt,
        "approvals": [a.view() for a in sorted(state.approvals.pending.values(), key=lambda a: a.asked)],
        "acknowledged": {h: {"by": a.author, "comment": a.comment, "check": check_name(a.key)}
                         for h, a in sorted(acked.items())},
        "host_limits": dict(sorted(state.brakes.braked.items())),
        "clock_step": state.clock_step,
        "rollout": rollout_view(state),
        "gaps": gap_report(config, state, now),
    }
    if view is not None:
        report.update(view.report())
        # The collector that matters is the leader, wherever it runs.
        report["collector"] = {"running": view.leader is not None, "pid": None}
    return report


def rollout_view(state: State) -> Optional[Dict[str, Any]]:
    """The rollout in progress (wave n of m, hosts done, converged, failed, waiting), else the
    last one that ended; None when there never was one."""
    a = state.rollouts.active
    if a is None:
        last = state.rollouts.last
        return None if last is None else dict(last, active=False)
    done, run = a.done, wave_running(state.rollouts, state.open_run)
    return {"active": True, "rollout": a.id, "level": a.level, "wave": len(a.waves) + (1 if run else 0),
            "waves": a.planned, "hosts": list(a.hosts), "done": done, "converged": list(a.converged),
            "failed": list(a.failed), "judging": [h for h in done if h not in a.converged and h not in a.failed],
            "running": run, "waiting": a.waiting(run), "progress": a.progress(run)}

def refresh_downtimes(config: Config, state: State, now: float) -> None:
    """Fold the ends of downtimes Nagios/Icinga show now for the checks downtime holds back
    (read-only views: nothing is journalled; the collector journals them within seconds)."""
    from .monitoring.downtimes import poll

    held = in_downtime(state)
    for rec in poll(config, state, [d.key for d in held], now) if held else ():
        state.apply(rec)


def downtime_held(state: State, config: Config) -> List[Dict[str, Any]]:
    """The problem checks scheduled downtime holds back (rule 1), with the level each would ask for."""
    levels = config.levels
    return [{"check": check_name(d.key), "host": d.key[0], "service": d.key[1], "state": d.state,
             "state_type": d.state_type, "level": levels[d.level - 1].name if d.level else None,
             "downtime": d.own, "host_downtime": d.host, "why": d.why}
            for d in in_downtime(state)]


def gap_report(config: Config, state: State, now: float) -> Dict[str, Any]:
    """The gap open now (``escalator listen`` cannot hear Icinga) and the last closed ones."""
    from .listen_state import heartbeat_gap
    from .planning.gaps import current

    return {"open": current(state.gaps, heartbeat_gap(config, now)), "recent": list(state.gaps.recent)}


def load_state(config: Config) -> State:
    """The collector's state as of its journal: local files, or etcd with ``cluster:``."""
    return storage.load(config).state


def running_run(state: State, config: Config, now: float, collector_alive: bool) -> Optional[Dict[str, Any]]:
    """The run in progress (a journalled ``start`` without its ``run``), or None.

    Everything comes from the journal: the ``start`` record (written before the
    first step) and the ``step`` records (each written as its step ends), so a
    run is visible even when its collector died and its steps run on orphaned.
    """
    from .steps.run_plan import progress

    open_run = state.open_run
    if not open_run:
        return None
    started = float(open_run.get("time") or now)
    done = list(open_run.get("steps_done") or ())
    pending, running, _ = progress(open_run, config)
    step = None
    if pending:
        cur = pending[0]
        # The current step began when the last step before it ended (or the run started).
        before = [d for d in done if d.get("step") != cur.where and d.get("time") is not None]
        since = float(before[-1]["time"]) if before else started
        step = {"level": cur.level, "index": cur.index, "where": cur.where, "host": cur.host,
                "hosts": [p.host for p in pending[:max(running, 1)] if p.host is not None],
                "started": since, "for": max(0.0, now - since)}
    return {"run": open_run.get("run"), "levels": list(open_run.get("levels") or ()),
            "targets": dict(open_run.get("targets") or {}), "started": started,
            "for": max(0.0, now - started), "checks": list(open_run.get("checks") or ()),
            "dry_run": bool(open_run.get("dry_run")),
            "steps_done": len(done), "steps_left": len(pending),
            "step": step, "collector_alive": collector_alive}


def with_verdict(run: Dict[str, Any], verdicts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A ``run`` record with ``verdict`` (its verdict record, or None while not judged yet)."""
    rid = run.get("run")
    match = [v for v in verdicts if rid is not None and v.get("run_id") == rid]
    return dict(run, verdict=match[-1] if match else None)


def refresh_acks(config: Config, state: State, now: float) -> None:
    """Fold the acknowledgements Nagios/Icinga show now (read-only views: nothing is journalled)."""
    from .monitoring.acks import poll

    for rec in poll(config, state.acks, now):
        state.apply(rec)




def missing_paths(config: Config) -> List[str]:
    """What makes a report meaningless: a spool or journal that does not exist.

    The first handler creates the spool and every collector creates the journal
    when it starts, so a missing spool, or a missing journal with no event
    waiting for the first collector, means the config names paths nothing uses
    (events would sit unseen), not a quiet site.  Unreadable is not missing:
    reading them says why.
    """
    out: List[str] = []
    if getattr(config, "cluster", None) is not None:
        return out  # the journal lives in etcd, and a node's spool is created by its forwarder
    if not _exists(config.spool):
        out.append(f"spool directory {config.spool} does not exist: no handler or collector uses it "
                   f"(does the config name the spool the handlers record to?)")
    if not _exists(config.journal) and not _exists(f"{config.spool}/collector.lock"):
        try:
            waiting = not out and spool_reader.pending_stats(config.spool)[0] > 0
        except OSError:
            waiting = False
        # Events waiting and no journal yet: the first collector is about to create it; a
        # collector's lock in the spool: one ran here (and may have died before writing).
        if not waiting:
            out.append(f"journal {config.journal} does not exist: no collector has run with this config "
                       f"(run `escalator collect` once, or fix `journal:`)")
    return out


def _exists(path: str) -> bool:
    import os

    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not for us: the read says why
    return True


def fold_pending(config: Config, state: State, now: Optional[float] = None) -> int:
    """Fold the spool entries no collector has taken yet into ``state``; return how many
    could not be read as events (the collector will journal them as rejected)."""
    import time

    rejected = 0
    now = time.time() if now is None else now
    if config.cluster is None:  # the operators' commands not yet taken (control directory)
        from .control_dir import pending as commands
        from .storage.local import state_dir

        for rec in commands(state_dir(config)):
            if rec.get("kind") in kinds.CONTROL_KINDS:
                state.apply(dict(rec, time=float(rec.get("time") or now)))
    if not _spool_exists(config):
        return 0
    for rec in spool_reader.pending(config.spool):
        if rec.get("kind") in kinds.CONTROL_KINDS:
            rejected += 1  # the collector rejects it: the spool proves no operator
            continue
        if rec.get("kind") in kinds.LISTEN_KINDS:
            state.apply(rec)
            continue
        try:
            state.apply(arrival_record(Event.from_dict(rec), rec, now)[0])  # as the collector will
        except (ValueError, TypeError):
            rejected += 1
    return rejected


def _spool_problem(config: Config) -> Optional[str]:
    """Why the collector would refuse the spool (symlink, world-writable...), or None.

    A spool that does not exist yet is no problem: the first handler or
    collector creates it.
    """
    import os

    from .errors import SpoolError

    if not os.path.lexists(config.spool):
        return None
    try:
        spool.check_spool_dir(config.spool, create=False)
    except SpoolError as exc:
        return str(exc)
    bad = spool_reader.bad_entries(config.spool)
    return "; ".join(bad) if bad else None


def _spool_exists(config: Config) -> bool:
    import os

    return os.path.isdir(config.spool)


def last_run(report: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The latest non-skipped run record in a report, if any."""
    runs: List[Dict[str, Any]] = [r for r in report.get("last_runs") or () if not kinds.is_skip(r)]
    return runs[-1] if runs else None
