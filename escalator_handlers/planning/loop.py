"""The one decide -> record -> act loop, for the collector, replay, ``escalator test`` and tests.

:func:`settle` asks the planner what to do at ``clock()``, hands the records
it decides to ``record``, carries out a run with ``act``, and asks again,
until the planner has nothing more to do now.  Everything that differs
between the callers is in those two callables:

``record(records)``
    journal the records, fold them into the state (``state.apply``: the
    planner reads nothing else, so a record not folded makes it loop), then
    carry out their side effects (notifications, feedback to Nagios).  The
    collector appends to its journal first; a simulation keeps a list.
``act(plan)``
    carry out a :class:`~escalator_handlers.planning.planner.RunPlan`, recording its
    ``start``, ``step`` and ``run`` records through ``record`` as it goes
    (``steps.run_plan.execute``, for real or dry).

:class:`Simulation` drives :func:`settle` on a simulated clock: push events
and operator records in time order; the clock jumps from one wake-up the
planner asked for to the next, so a day of events takes well under a second
and nothing ever sleeps.  To drive the loop on a simulated clock::

    sim = Simulation(state, config, record, act, start=t0)
    sim.observe(t0 + 5, "web01", "HTTP", "CRITICAL", "HARD", 1, 0, "down")
    sim.record(t0 + 9, {"time": t0 + 9, "kind": "pause", "reason": "x"})
    sim.advance(t0 + 60)          # act at every wake-up up to t0 + 60
    sim.run_until(t0 + 86400)     # run on until nothing is pending (or then)

``act`` and ``record`` may read ``sim.now`` (pass ``sim.clock`` as the
clock of ``execute``): the simulated clock does not move while they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple

from ..config import Config
from ..event import GOOD_STATES, check_name
from .interlocks import stays_idle
from .observe import debounce, observe_any, recovered
from .planner import Decision, RunPlan, debounce_due, decide, releases_due, required_level
from .state import State

#: Decisions at one instant before the planner is taken to be looping (a bug).
MAX_DECISIONS = 100

Record = Callable[[Sequence[dict]], None]
Act = Callable[[RunPlan], None]


@dataclass
class Settled:  # not frozen: replay settles tens of thousands of times, a frozen __init__ is slower
    """How :func:`settle` ended."""

    __slots__ = ("decision", "ran", "looping")

    decision: Decision          # the last decision: idle, or the run carried out
    ran: bool                   # returned after a run (``stop_after_run``): call again to go on
    looping: bool               # MAX_DECISIONS at one instant without settling

    @property
    def wake(self) -> Optional[float]:
        """When to ask again, events or not (None: only when something happens)."""
        return None if self.ran or self.looping else self.decision.wake


def settle(state: State, config: Config, clock: Callable[[], float], record: Record, act: Act, *,
           confirm: Optional[Callable[[RunPlan], bool]] = None, stop_after_run: bool = False,
           explain: bool = False, watch: Optional[Callable[[float, Decision], None]] = None) -> Settled:
    """Decide, record and act until the planner has nothing more to do at ``clock()``.

    ``confirm(plan)`` may veto a run just before it starts (the collector asks
    status.dat whether the checks still fail); it records why (fresher events)
    and the loop decides again.  ``stop_after_run`` returns after each run so
    the caller can take in what arrived meanwhile.  ``watch(now, decision)``
    sees every decision (tests, ``plan``).  ``explain`` words ``Decision.explain``
    and every ``why``: off by default, since only people read them (``plan``,
    tests) and wording a line per failing check at every cycle made a big site's
    collector cost grow with its size.
    """
    d = Decision()
    for _ in range(MAX_DECISIONS):
        now = clock()
        d = decide(state, config, now, explain=explain)
        if watch is not None:
            watch(now, d)
        if d.records:
            record(d.records)
            continue
        if d.run is not None:
            if confirm is not None and not confirm(d.run):
                continue
            act(d.run)
            if stop_after_run:
                return Settled(d, True, False)
            continue
        return Settled(d, False, False)
    return Settled(d, False, True)


def stop_reason(state: State, config: Config, plan: RunPlan) -> Optional[str]:
    """Between the steps of a run (new events folded): a reason to stop it there, or None.

    The operator's pause or a hold on an asking check stops it; so does a
    newly required level more drastic than the run's first (it is superseded:
    the loop plans that level next), unless the run is an operator's request.
    """
    if state.paused is not None:
        return "paused by operator"
    held = [a.key for a in plan.checks if state.held(a.key) is not None]
    if held:
        return f"held by operator: {check_name(held[0])} (hold arrived during the run)"
    req = required_level(state)
    if req is not None and req < plan.start.index and plan.request is None:  # an operator's word stands
        return (f"superseded: level {config.levels[req - 1].name} is now required, "
                f"more drastic than {plan.start.name}")
    return None


class Simulation:
    """:func:`settle` on a simulated clock (see the module docstring).

    ``lazy`` asks the planner after an event only when the event can change its
    answer (``State.observe`` says so) and otherwise at the debounce's due
    time: the same decisions as asking after every event, without asking tens
    of thousands of times a day of log (replay).  Eager (the default) asks at
    every event, as the collector does at every batch it takes in.

    Lazy, it also takes the planner at its word: after an idle answer with a
    wake-up, when ``interlocks.stays_idle`` and until the wake-up, asking again
    gives the same answer unless a record was folded, an event was relevant
    or an event touched a failing check (whose state a run or skip record
    would list).  Until one of those, events are folded and nothing else
    (``idle_until``); the first of them is taken in as if every event before
    it had been, wake-up included (``_forget``).
    """

    def __init__(self, state: State, config: Config, record: Record, act: Act, *, start: float = 0.0,
                 explain: bool = True, lazy: bool = False,
                 watch: Optional[Callable[[float, Decision], None]] = None) -> None:
        self.state = state
        self.config = config
        self._record = record
        self._act = act
        self.now = start
        self.wake: Optional[float] = None
        self.explain = explain
        self.lazy = lazy
        self.watch = watch
        self.last: Optional[Settled] = None
        # Lazy: the planner's idle answer holds until then (class docstring); the
        # debounce's due time then, and whether events were let by since.
        self.idle_until: Optional[float] = None
        self.idle_due: Optional[float] = None
        self.let_by = False
        # Lazy: the last answer is steady (``Decision.steady``) until then, unless a record is folded.
        self.steady_until: Optional[float] = None

    def clock(self) -> float:
        return self.now

    def settle(self) -> Settled:
        """Decide at ``now`` until idle; the next wake-up becomes ``wake``."""
        s = self.last = settle(self.state, self.config, self.clock, self._record, self._act,
                               explain=self.explain, watch=self.watch)
        w = s.wake
        self.wake = w if w is not None and w > self.now else None
        self.idle_until, self.let_by, self.steady_until = None, False, None
        if self.lazy and self.watch is None and self.wake is not None and not s.looping \
                and stays_idle(self.state, self.config):
            self.idle_until, self.idle_due = self.wake, debounce_due(self.state, self.config)
            if s.decision.steady:
                self.steady_until = self.wake
        return s

    def _wake_up(self) -> None:
        """Settle at the wake-up ``now`` -- or, before a steady answer's wake-up when no level's
        checks all recovered since, take the planner's answer as given: it would say the same
        again (``Decision.steady``), and this leaves everything as :meth:`settle` would."""
        until = self.steady_until
        if until is None or self.now >= until or releases_due(self.state):
            self.settle()
            return
        self.wake = self.idle_until = until
        self.idle_due, self.let_by = debounce_due(self.state, self.config), False

    def _forget(self) -> None:
        """The idle answer no longer holds.  Had the events let by been taken in, each would
        have moved the wake-up to the debounce's due time (``_heard``): it is there if it
        is still ahead (otherwise the clock passed it, and the planner said the same again)."""
        due = self.idle_due
        if self.let_by and due is not None and self.wake is not None and self.now < due < self.wake:
            self.wake = due
        self.idle_until, self.let_by = None, False

    def advance(self, t: float) -> None:
        """Let the clock run to ``t``, settling at every wake-up on the way."""
        while self.wake is not None and self.wake <= t:
            self.now = max(self.now, self.wake)
            self._wake_up()
        if t > self.now:
            self.now = t

    def run_until(self, end: float) -> None:
        """Settle at every wake-up up to ``end``; the clock stops at the last one."""
        while self.wake is not None and self.wake <= end:
            self.now = max(self.now, self.wake)
            self._wake_up()

    def resume(self, t: float) -> None:
        """Start the clock at ``t`` on a state folded without asking the planner (``replay
        --since``): it is asked at the debounce's due time, or at once if checks fail."""
        if t > self.now:
            self.now = t
        self.idle_until, self.let_by, self.steady_until = None, False, None  # folded without the loop
        due = debounce_due(self.state, self.config)
        if due is None:
            self.wake = self.now if self.state.problems else None
        else:
            self.wake = max(self.now, due)

    def observe(self, t: float, host: str, service: Optional[str], state: Optional[str], state_type: str,
                attempt: int, downtime: int, output: str) -> None:
        """An event observed at ``t`` (one older than the clock counts at the clock's time):
        :meth:`feed` of that one event."""
        self.feed(((t, host, service, state, state_type, attempt, downtime, output),))

    def feed(self, items: Iterable[Tuple[Any, ...]], show: Optional[Callable[[Tuple[Any, ...]], None]] = None
             ) -> Tuple[int, Optional[float]]:
        """Take in time-ordered ``items``: events as :meth:`observe`'s arguments, or an
        operator's records as ``(time, record)`` (journalled at the clock's time, which
        can be later than theirs: logs are not quite in order); return how many events
        there were and the time of the last item.  ``show(event)`` sees each event after
        the records due before it, before it is folded.

        Replay's hot path, so two calls per event are inlined: ``State.observe``'s short
        path (``planning.observe``: a known service check's newer state; anything else
        goes to ``observe_any``, which defines both, ``tests/test_state_observe.py``) and
        :meth:`_heard`.  An event older than the clock counts at the clock's time.
        """
        st = self.state
        checks, problems, good_states = st.checks, st.problems, GOOD_STATES
        config = st.config
        counted, hide, ignore_unreachable = config.state_types, not config.act_in_downtime, \
            config.unreachable == "ignore"
        quiescence, max_delay, lazy = self.config.quiescence, self.config.max_delay, self.lazy
        n = 0
        last_t: Optional[float] = None
        # A wake-up found no later than the debounce's due time, which only a relevant
        # event or a record (folded in advance()) can move: no need to look again.
        kept: Optional[float] = None
        for item in items:
            t = last_t = item[0]
            if len(item) == 2:
                self.advance(t)
                self._operator_record(dict(item[1]))
                kept = None
                continue
            n += 1
            if show is not None:
                self.advance(t)  # the records due before the event come before it
                show(item)
                kept = None
            now = self.now
            if t > now:
                now = t
            wake = self.wake
            if wake is not None and wake <= now:
                self.advance(now)
                kept = None
            else:
                self.now = now
            _, host, service, state, state_type, attempt, downtime, output = item
            key = (host, service)
            cs = checks.get(key)
            if cs is None or service is None or state is None or now < cs.time:
                relevant = observe_any(st, key, cs, now, state, state_type, attempt, downtime, output, None)
                failing = st.observed_failing
            else:  # State.observe's short path, as planning.observe has it
                old_state, old_type, old_level = cs.state, cs.state_type, cs.level
                good = state in good_states
                old_good = old_state is None or old_state in good_states
                if state_type == "SOFT" and old_type == "HARD" and state == old_state and not good:
                    state_type = "HARD"
                if state != old_state:
                    cs.since = now
                    cs.state = state
                    if good:
                        cs.level = None
                        if not old_good:
                            problems.pop(key, None)
                    else:
                        levels = cs.levels
                        if levels is None:
                            levels = cs.levels = {}
                        level = levels.get(state, 0)
                        if level == 0:
                            rule = st.match_rule(host, service, state)
                            level = levels[state] = None if rule is None else rule.level
                        cs.level = level
                        if old_good:
                            problems[key] = cs
                cs.state_type = state_type
                cs.attempt = attempt
                cs.output = output
                old_downtime = cs.downtime
                cs.downtime = downtime
                cs.time = now
                was_problem = not old_good and old_type in counted
                problem = not good and state_type in counted
                if was_problem or problem:
                    masked = (hide and st.host_downtime.get(host, 0) > 0) \
                        or (ignore_unreachable and host in st.unreachable)
                    was_failing = was_problem and not masked and not (hide and old_downtime > 0)
                    failing = problem and not masked and not (hide and downtime > 0)
                else:
                    was_failing = failing = False
                st.observed_failing = failing
                relevant = failing != was_failing or (failing and cs.level != old_level)
                if good and (st.episodes or st.held_recorded or st.skip_checks):
                    relevant = recovered(st, key) or relevant
                if relevant or (failing and (state != old_state or state_type != old_type)):
                    st._note_changed(key)
                if relevant:
                    debounce(st, now)
            if not lazy:
                self.settle()  # eager: ask after every event, as the collector after each batch
                continue
            if self.idle_until is not None:
                if not relevant and not failing:
                    self.let_by = True  # the planner's idle answer holds (class docstring)
                    continue
                self._forget()
            wake = self.wake
            if not relevant and (wake is None or wake is kept):
                continue
            # _heard(True), with debounce_due inlined
            burst, last = st.burst_start, st.last_event
            if burst is None or last is None:
                due = now
            else:
                due = last + quiescence
                if burst + max_delay < due:
                    due = burst + max_delay
            if wake is None or due < wake:
                self.wake = wake = due
            kept = wake if burst is not None and last is not None else None
        return n, last_t

    def _operator_record(self, rec: dict) -> None:
        rec["time"] = self.now
        self.record(self.now, rec)

    def record(self, t: float, rec: dict) -> None:
        """A record (an operator's pause, hold, ...) journalled at ``t``."""
        self.advance(t)
        if self.idle_until is not None:
            self._forget()
        self.steady_until = None  # a record can change any answer
        self._record([rec])
        self._heard(True)

    def _heard(self, relevant: bool) -> None:
        if not self.lazy:
            self.settle()
            return
        if not relevant and self.wake is None:
            return  # idle, and nothing the planner reads changed: it would only say so again
        due = debounce_due(self.state, self.config)
        if due is None:
            due = self.now
        if self.wake is None or due < self.wake:
            self.wake = due


__all__ = ["MAX_DECISIONS", "Settled", "Simulation", "settle"]
