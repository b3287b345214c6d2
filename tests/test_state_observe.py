"""State.observe takes a short path for its common case (a known service check's newer
state, escalator_handlers/planning/observe.py), and replay's Simulation.feed has the same
short path inline (planning/loop.py); whatever the events, each must fold exactly what the
general path (observe_any) folds, and say the same about each event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from escalator_handlers.planning import observe as observe_mod
from escalator_handlers.planning.loop import Simulation
from escalator_handlers.planning.state import Episode, State
from planner_fixtures import example_config_with

HOSTS = ["web01", "db01", "tier-web"]
SERVICES = [None, "PING", "HTTP", "Smoke test", "Disk /var"]
STATES = {None: ["UP", "DOWN", "UNREACHABLE", None], "svc": ["OK", "WARNING", "CRITICAL", "UNKNOWN", None]}

event = st.tuples(st.sampled_from(HOSTS), st.sampled_from(SERVICES), st.integers(0, 3),
                  st.sampled_from(["SOFT", "HARD"]), st.integers(1, 3), st.integers(0, 2), st.integers(-5, 40))
# Checks that an episode and a skip wait for, so that recoveries have someone to tell.
waiting = st.sets(st.tuples(st.sampled_from(HOSTS), st.sampled_from(SERVICES)), max_size=6)


def general(state: State, t, host, service, *rest):
    key = (host, service)
    return observe_mod.observe_any(state, key, state.checks.get(key), t, *rest, None)


def snapshot(state: State) -> dict:
    return {
        "checks": {k: (cs.state, cs.state_type, cs.attempt, cs.downtime, cs.output, cs.time, cs.since, cs.level)
                   for k, cs in state.checks.items()},
        "problems": {k: cs is state.checks[k] for k, cs in state.problems.items()},
        "host_downtime": dict(state.host_downtime), "unreachable": set(state.unreachable),
        "pending": {n: set(ep.pending) for n, ep in state.episodes.items()},
        "skip": (set(state.skip_checks), state.last_skip), "held_recorded": set(state.held_recorded),
        "debounce": (state.last_event, state.burst_start),
        "changed": set(state.survey_cache.changed), "failing": state.observed_failing,
    }


def states(config, waits, n=2):
    out = [State(config) for _ in range(n)]
    for state in out:
        state.episodes["vm"] = Episode(1, set(waits), held=True)
        state.skip_checks, state.last_skip = set(waits), "max_targets:vm"
        state.held_recorded = set(waits)
    return out


def variant(soft_counts, act_in_downtime, unreachable_fails, **more):
    return example_config_with(state_types=["SOFT", "HARD"] if soft_counts else ["HARD"],
                               act_in_downtime=act_in_downtime,
                               unreachable="fail" if unreachable_fails else "ignore", **more)


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=80), waiting, st.booleans(), st.booleans(), st.booleans())
def test_the_short_path_folds_what_the_general_path_folds(events, waits, soft_counts, act_in_downtime,
                                                          unreachable_fails):
    short, slow = states(variant(soft_counts, act_in_downtime, unreachable_fails), waits)
    t = 1000.0
    for host, service, n, stype, attempt, downtime, dt in events:
        t += dt  # sometimes back in time: a late observation
        s = STATES[None if service is None else "svc"][n]
        args = (t, host, service, s, stype, attempt, downtime, f"out {n}")
        assert short.observe(*args) == general(slow, *args), args
        assert snapshot(short) == snapshot(slow), args


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=80), waiting, st.booleans(), st.booleans(), st.booleans())
def test_replays_inline_fold_folds_what_the_general_path_folds(events, waits, soft_counts, act_in_downtime,
                                                               unreachable_fails):
    # A debounce longer than the events last: the planner is never asked, only the fold runs.
    config = variant(soft_counts, act_in_downtime, unreachable_fails, quiescence="10d", max_delay="10d")
    fed, slow = states(config, waits)
    sim = Simulation(fed, config, lambda records: None, lambda plan: None, start=1000.0, lazy=True)
    t = 1000.0
    for host, service, n, stype, attempt, downtime, dt in events:
        t += dt  # sometimes back in time: the simulated clock counts it at its own time
        s = STATES[None if service is None else "svc"][n]
        sim.feed([(t, host, service, s, stype, attempt, downtime, f"out {n}")])
        general(slow, max(t, sim.now), host, service, s, stype, attempt, downtime, f"out {n}")
        assert snapshot(fed) == snapshot(slow), (t, host, service, s)
