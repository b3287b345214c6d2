"""Rule 7 of docs/planning.rst: judging a run when its quiescence ends, and the pages planning writes.

:func:`judge` turns a run whose quiescence is over into a ``verdict`` record:
converged, or not, counted against the start level's ``max_attempts``, and
when they are used up the level's ``on_exhausted`` policy (``notify``: a
``notify`` record, see :func:`notify_record`; ``escalate``: the planner starts
one level more drastic).  What a verdict leaves in the episodes is folded by
:func:`~escalator_handlers.planning.runs.fold_verdict`.  Pure, like the planner.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from ..config import Config
from ..display import plural
from ..event import CheckKey, check_name
from .state import Episode, State

#: How many check names a summary spells out before "and N more".
SUMMARY_CHECKS = 5


def names(keys: Sequence[CheckKey]) -> str:
    """The first ``SUMMARY_CHECKS`` check names, "and N more" (summaries, pages)."""
    shown = [check_name(k) for k in keys[:SUMMARY_CHECKS]]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def episode_attempts(ep: Optional[Episode]) -> int:
    """The attempts counted against a level so far.  An episode whose checks have all
    been OK since its last verdict is over: a new one starts from 0."""
    if ep is None or not ep.pending:
        return 0
    return ep.attempts


def judge(state: State, config: Config, run: Any, now: float) -> List[dict]:
    """Rule 7: judge a run when its quiescence ends."""
    still = [k for k in run.checks if (cs := state.checks.get(k)) is not None and not cs.good]
    converged = not still
    rec = {"time": now, "kind": "verdict", "run": run.time, "run_id": run.id,
           "level": run.start_level, "converged": converged,
           "failing": [check_name(k) for k in still],
           "failing_checks": [list(k) for k in still]}
    out = [rec]
    if converged:
        return out
    if run.start_checks and all((cs := state.checks.get(k)) is None or cs.good for k in run.start_checks):
        # Only less drastic checks still fail: not an unconverged attempt of
        # this level (rebuilding a VM again will not fix a smoke test).
        rec["level_converged"] = True
        return out
    try:
        level = config.level(run.start_level)
    except (KeyError, IndexError):
        return out  # the level vanished with a config reload: nothing to count against
    attempt = episode_attempts(state.episodes.get(level.name)) + 1
    rec["attempt"] = attempt
    if attempt >= level.max_attempts:
        policy = level.on_exhausted
        if policy == "escalate" and level.index == 1:
            policy = "notify"  # nothing is more drastic than level 1
        rec["exhausted"] = policy
        if policy == "notify":
            out.append(notify_record(config, now, "exhausted",
                                     f"level {level.name} did not converge after {plural(attempt, 'attempt')}; "
                                     f"holding it until the checks recover: still failing {names(still)}",
                                     level=level.name))
    return out


def notify_record(config: Config, now: float, reason: str, summary: str, **extra) -> dict:
    """A ``notify`` record; ``channels`` says how many ``notify`` steps will carry it (0: it is
    journalled, and logged, but reaches nobody)."""
    rec = {"time": now, "kind": "notify", "reason": reason, **extra, "summary": summary,
           "channels": len(config.notify)}
    if not config.notify:
        rec["undelivered"] = "no notify steps configured"
    return rec


__all__ = ["SUMMARY_CHECKS", "episode_attempts", "judge", "names", "notify_record"]
