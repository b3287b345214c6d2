"""Folding one observed check state into the ``State`` (``State.observe``).

The hot path of replay, which folds every event of a log: a busy day of
Nagios log is mostly SOFT chatter and recoveries of service checks, so that
case takes a short path (:func:`observe`) and everything else -- a check seen
for the first time, a host check, a downtime alert, an observation older than
the last -- the general one (:func:`observe_any`), which also defines what
the short path must do.  Replay's ``Simulation.feed`` has the short path
inline, :func:`_new_state` included, since a call per event costs it a
thirtieth of its time (``tests/test_state_observe.py`` holds both equal to
the general path).

What the fold keeps of a check is ``CheckState``; what an observation can
change beyond it: the problem checks (``State.problems``), hosts' downtime
and unreachability, the checks that episodes and skips wait for, the debounce
window, and which checks the planner's survey must look at again.
"""

from __future__ import annotations

from typing import Any, Optional

from ..event import GOOD_STATES, CheckKey
from .statetypes import CheckState

#: ``planning.state.State`` (which binds these functions as its methods).
State = Any


def observe(self: State, time: float, host: str, service: Optional[str], state: Optional[str],
            state_type: str, attempt: int, downtime: int, output: str,
            arrived: Optional[float] = None) -> bool:
    """Fold one observed state.

    ``time`` orders observations of a check; ``arrived`` (the collector's
    clock when it took the event, default ``time``) drives the debounce, so
    an event claiming another time can neither stall nor rush a decision.

    Return whether it can change a decision: a check started or stopped failing
    or changed level, a host's downtime changed, or a check that an episode or a
    skip waits for recovered.  Replay asks an idle planner again only then.
    ``State.observed_failing`` says afterwards whether the check fails (rule 1).

    The survey cache is told about the check only when what the survey
    keeps of it can have changed: whether it fails, and if it does, its
    state, state type or level (SOFT chatter and repeated alerts are most
    of a busy log, and each would otherwise be surveyed again).
    """
    key = (host, service)
    cs = self.checks.get(key)
    if cs is None or service is None or state is None or time < cs.time:
        return observe_any(self, key, cs, time, state, state_type, attempt, downtime, output, arrived)
    # A known service check's newer state: observe_any's steps for that case only.
    old_state, old_type, old_level = cs.state, cs.state_type, cs.level
    good = state in GOOD_STATES
    old_good = old_state is None or old_state in GOOD_STATES
    if state_type == "SOFT" and old_type == "HARD" and state == old_state and not good:
        state_type = "HARD"  # see observe_any
    if state != old_state:
        _new_state(self, key, cs, time, state, good, old_good)
    cs.state_type = state_type
    cs.attempt = attempt
    cs.output = output
    old_downtime = cs.downtime
    cs.downtime = downtime
    cs.time = time
    config = self.config
    counted = config.state_types
    was_problem = not old_good and old_type in counted
    problem = not good and state_type in counted
    if was_problem or problem:
        hide = not config.act_in_downtime
        masked = (hide and self.host_downtime.get(host, 0) > 0) \
            or (config.unreachable == "ignore" and host in self.unreachable)
        was_failing = was_problem and not masked and not (hide and old_downtime > 0)
        failing = problem and not masked and not (hide and downtime > 0)
    else:
        was_failing = failing = False  # SOFT chatter (when only HARD counts) and recoveries
    self.observed_failing = failing
    relevant = failing != was_failing or (failing and cs.level != old_level)
    if good and (self.episodes or self.held_recorded or self.skip_checks):
        relevant = recovered(self, key) or relevant
    if relevant or (failing and (state != old_state or state_type != old_type)):
        self._note_changed(key)
    if relevant:
        debounce(self, time if arrived is None else arrived)
    return relevant


def observe_any(self: State, key: CheckKey, cs: Optional[CheckState], time: float, state: Optional[str],
                state_type: str, attempt: int, downtime: int, output: str, arrived: Optional[float]) -> bool:
    """:func:`observe` for any observation; ``cs`` is ``self.checks.get(key)``."""
    host, service = key
    config = self.config
    counted = config.state_types
    hide_downtime = not config.act_in_downtime
    ignore_unreachable = config.unreachable == "ignore"
    # Rule 1's host part: the host's downtime or unreachability hides the check.
    masked = (hide_downtime and self.host_downtime.get(host, 0) > 0) \
        or (ignore_unreachable and host in self.unreachable)
    if cs is None:
        cs = self.checks[key] = CheckState()
        cs.since = time
        was_failing, old_level, old_state, old_type, old_good = False, None, None, None, True
    elif time < cs.time:
        # An older observation arriving late never overrides a newer one --
        # except a HARD of the same problem: Nagios runs the SOFT and HARD
        # handlers in the same second and their stamps can come out swapped
        # (seen with a real Nagios 4).  Dropping the HARD would leave the
        # check SOFT for good, since Nagios sends nothing more while it stays.
        if state_type == "HARD" and state == cs.state and cs.state_type == "SOFT" \
                and state not in GOOD_STATES and state is not None:
            cs.state_type = "HARD"
            cs.attempt = max(cs.attempt, attempt)
            self._note_changed(key)
            self.observed_failing = self.failing(key, cs)
            return True
        self.observed_failing = self.failing(key, cs)
        return False
    else:
        old_state, old_type, old_level = cs.state, cs.state_type, cs.level
        old_good = old_state is None or old_state in GOOD_STATES
        was_failing = not old_good and old_type in counted and not masked \
            and not (hide_downtime and cs.downtime > 0)
    good = state in GOOD_STATES
    if state is not None:
        if state_type == "SOFT" and old_type == "HARD" and state == old_state and not good:
            # Same race, other order: HARD never goes back to SOFT without a
            # recovery in between, so a SOFT of the same problem is the stale one.
            state_type = "HARD"
        if state != old_state:
            _new_state(self, key, cs, time, state, good, old_good)
        cs.state_type = state_type
        cs.attempt = attempt
        cs.output = output
    cs.downtime = downtime
    cs.time = time
    relevant = False
    if service is None:
        host_downtime = self.host_downtime
        relevant = host_downtime.get(host, 0) != downtime
        host_downtime[host] = downtime
        if state is not None and (state == "UNREACHABLE") != (host in self.unreachable):
            relevant = True
            if state == "UNREACHABLE":
                self.unreachable.add(host)
            else:
                self.unreachable.discard(host)
        masked = (hide_downtime and downtime > 0) or (ignore_unreachable and host in self.unreachable)
    if good:
        relevant = recovered(self, key) or relevant
        failing = False
    else:  # a problem now, or (state None: a downtime alert) still what it was
        failing = (state is not None or not old_good) and cs.state_type in counted and not masked \
            and not (hide_downtime and downtime > 0)
    self.observed_failing = failing
    relevant = relevant or failing != was_failing or (failing and cs.level != old_level)
    if relevant or (failing and (cs.state != old_state or cs.state_type != old_type)):
        self._note_changed(key)  # see observe()
    if relevant:
        debounce(self, time if arrived is None else arrived)
    return relevant


def _new_state(self: State, key: CheckKey, cs: CheckState, time: float, state: str, good: bool,
               old_good: bool) -> None:
    """The check's state changed: its level, and whether it is one of the problems."""
    cs.since = time
    cs.state = state
    if good:
        cs.level = None
        if not old_good:
            self.problems.pop(key, None)
        return
    # Each problem state's mapped level is remembered with the check: a busy log
    # changes a check's state back and forth, and the config maps it alike each time.
    levels = cs.levels
    if levels is None:
        levels = cs.levels = {}
    level = levels.get(state, 0)  # 0: not looked up yet (levels count from 1)
    if level == 0:
        rule = self.match_rule(key[0], key[1], state)
        level = levels[state] = None if rule is None else rule.level
    cs.level = level
    if old_good:
        self.problems[key] = cs


def recovered(self: State, key: CheckKey) -> bool:
    """A check recovered: the episodes and skips that wait for it hear of it."""
    relevant = False
    if self.episodes:
        for ep in self.episodes.values():
            if key in ep.pending:
                ep.pending.discard(key)
                relevant = True
    if self.held_recorded:
        self.held_recorded.discard(key)
    if self.skip_checks and key in self.skip_checks:
        relevant = True
        # The skip is news again only once all its checks recovered: one
        # record per episode, not one per partial recovery.
        self.skip_checks.discard(key)
        if not self.skip_checks:
            self.last_skip = None
    return relevant


def debounce(self: State, clock: float) -> None:
    """An event that can change a decision arrived at ``clock``.

    Debounce counts only those: on a busy site OK and SOFT chatter would
    otherwise keep every burst open until max_delay and turn the debounce
    off.  A gap of a whole quiescence period starts a new burst.
    """
    last = self.last_event
    if last is None or self.burst_start is None or clock - last >= self.config.quiescence:
        self.burst_start = clock
    if last is None or clock > last:
        self.last_event = clock
