"""The JSON form of ``state.State``: its snapshot (``state.json``) and journal checkpoints.

A ``checkpoint`` record heads every journal file (after a logrotate): what must
survive the loss of older journal files and of the snapshot.  The collector
builds it with ``State.checkpoint``; folding it gives that state back.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import kinds
from . import approvals, brakes, gaps, interlocks, rollout
from .runs import RunInfo
from .statetypes import CheckState, Episode, Hold


def state_to_json(st: Any) -> dict:  # a planning.state.State (no import: state imports us)
    """The ``state.json`` form of a State (also the body of a journal ``checkpoint``)."""
    return {
        "version": 1,
        "checks": [[k[0], k[1], cs.to_json()] for k, cs in st.checks.items()],
        "host_downtime": st.host_downtime,
        "last_event": st.last_event,
        "burst_start": st.burst_start,
        "runs": [r.to_json() for r in st.runs],
        "open_run": st.open_run,
        "episodes": {
            name: {"attempts": ep.attempts, "pending": [list(k) for k in ep.pending],
                   "held": ep.held, "escalated": ep.escalated, "reason": ep.reason}
            for name, ep in st.episodes.items()
        },
        "holds": [h.to_json() for h in st.holds.values()],
        "paused": st.paused,
        "requests": st.requests,
        "last_skip": st.last_skip,
        "skip_checks": [list(k) for k in st.skip_checks],
        "held_recorded": [list(k) for k in st.held_recorded],
        "seen_ids": list(st.seen_ids)[-20_000:],
        "approvals": st.approvals.to_json(),
        "acks": st.acks.to_json(),
        "brakes": st.brakes.to_json(),
        "clock_seen": st.clock_seen,
        "clock_step": st.clock_step,
        "rollouts": st.rollouts.to_json(),
        "gaps": st.gaps.to_json(),
    }


def fill_from_json(st: Any, data: Mapping[str, Any]) -> Any:
    """Fill a new State from its ``state_to_json`` form (older snapshots too)."""
    for host, service, cs in data.get("checks", ()):
        c = st.checks[(host, service)] = CheckState.from_json(cs)
        c.level = None if c.good else st.level_for((host, service), c.state)
        if not c.good:
            st.problems[(host, service)] = c
    st.host_downtime = dict(data.get("host_downtime") or {})
    st.unreachable = {h for (h, svc), c in st.checks.items() if svc is None and c.state == "UNREACHABLE"}
    st.last_event = data.get("last_event")
    st.burst_start = data.get("burst_start")
    st.runs.extend(RunInfo.from_json(r) for r in data.get("runs", ()))
    st.open_run = data.get("open_run")
    for name, ep in (data.get("episodes") or {}).items():
        st.episodes[name] = Episode(ep["attempts"], {(h, s) for h, s in ep["pending"]},
                                    ep["held"], ep["escalated"], ep.get("reason", ""))
    for host, why in (data.get("held_hosts") or {}).items():  # snapshots before holds had globs
        st.holds[host] = Hold(host, reason=why or "")
    for h in data.get("holds") or ():
        hold = Hold(**h)
        st.holds[hold.label] = hold
    st.paused = data.get("paused")
    st.requests = list(data.get("requests") or ())
    st.last_skip = data.get("last_skip")
    st.skip_checks = {(h, s) for h, s in data.get("skip_checks", ())}
    st.held_recorded = {(h, s) for h, s in data.get("held_recorded", ())}
    st.seen_ids = dict.fromkeys(data.get("seen_ids", ()))
    st.approvals = approvals.Approvals.from_json(data.get("approvals"))
    st.acks = interlocks.Acks.from_json(data.get("acks"))
    st.brakes = brakes.Brakes.from_json(data.get("brakes"))
    st.clock_seen = data.get("clock_seen")
    st.clock_step = data.get("clock_step")
    st.rollouts = rollout.Rollouts.from_json(data.get("rollouts"))
    st.gaps = gaps.Gaps.from_json(data.get("gaps"))
    return st


#: Runs a checkpoint carries: enough for the hourly limit and the verdicts still due.
CHECKPOINT_RUNS = 20

#: What folding a checkpoint leaves as it was: the checks are merged (the checkpoint
#: has only the failing ones), the ids seen and the derived caches are the fold's own.
_KEPT = frozenset(("checks", "problems", "seen_ids", "survey_cache", "_note_changed", "config",
                   "_rule_cache", "_service_rules", "_host_rules"))


def worth_carrying(st: Any) -> bool:
    """Whether the state holds anything a new journal file must carry."""
    return bool(st.problems or st.holds or st.paused is not None or st.episodes
                or st.runs or st.open_run or st.rollouts.active is not None)


def checkpoint_record(st: Any, now: float) -> dict:
    """A ``checkpoint`` record: pause, holds, held levels and every failing check, with recent runs."""
    data = state_to_json(st)
    data["checks"] = [[k[0], k[1], cs.to_json()] for k, cs in st.problems.items()]
    data["runs"] = data["runs"][-CHECKPOINT_RUNS:]
    data["seen_ids"] = []
    return {"time": now, "kind": kinds.CHECKPOINT, "state": data}


def fold_checkpoint(st: Any, rec: Mapping[str, Any]) -> None:
    """Fold a ``checkpoint`` record into ``st``: its failing checks join, the rest replaces."""
    other = fill_from_json(type(st)(st.config), rec["state"])
    for key, cs in other.checks.items():
        st.checks[key] = cs
        st.problems[key] = cs
    for name, value in vars(other).items():
        if name not in _KEPT:
            setattr(st, name, value)
    # A fresh cache surveys every check from scratch at the next decision.
    st.fresh_survey()
