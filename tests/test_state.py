"""The state fold: observations, late events, downtime, control records, episodes,
and the state.json snapshot giving exactly the decisions of the live fold."""

from __future__ import annotations

import json

from escalator_handlers.planning.planner import decide
from escalator_handlers.planning.state import State

from planner_fixtures import (DAY, T0, Sim, decision_key, example_config, make_config,
                              snapshot_copy)


def failing_checks(st: State):
    """The failing checks among the state's problems (rule 1), with their state."""
    return [(k, cs) for k, cs in st.problems.items() if st.failing(k, cs)]


def obs(st: State, t: float, host: str, service=None, state="CRITICAL", state_type="HARD",
        downtime=0, output="") -> None:
    st.observe(T0 + t, host, service, state, state_type, 1, downtime, output)


def test_observe_keeps_the_latest_state_and_when_it_began():
    st = State(make_config())
    obs(st, 0, "web01", "HTTP", "WARNING", "SOFT")
    obs(st, 10, "web01", "HTTP", "CRITICAL", "SOFT")
    obs(st, 20, "web01", "HTTP", "CRITICAL", "HARD", output="refused")
    cs = st.checks[("web01", "HTTP")]
    assert (cs.state, cs.state_type, cs.output) == ("CRITICAL", "HARD", "refused")
    assert (cs.time, cs.since) == (T0 + 20, T0 + 10)        # CRITICAL since the SOFT at +10
    assert cs.level == 2                                  # converge
    assert [k for k, _ in failing_checks(st)] == [("web01", "HTTP")]
    obs(st, 30, "web01", "HTTP", "OK")
    assert cs.good and cs.level is None and failing_checks(st) == []


def test_older_event_arriving_late_never_overrides_a_newer_one():
    st = State(make_config())
    obs(st, 10, "web01", "HTTP", "CRITICAL")
    obs(st, 5, "web01", "HTTP", "OK")                     # older, delivered late
    assert st.checks[("web01", "HTTP")].state == "CRITICAL"
    assert st.last_event == T0 + 10
    obs(st, 20, "web01", "HTTP", "OK")
    obs(st, 15, "web01", "HTTP", "CRITICAL")              # a stale problem after the recovery
    assert st.checks[("web01", "HTTP")].good
    obs(st, 8, "web01", "HTTP", None, downtime=1)         # a stale downtime change too
    assert st.checks[("web01", "HTTP")].downtime == 0


def test_a_late_hard_of_the_same_problem_still_counts():
    # Nagios runs the SOFT and HARD handlers of one problem in the same second; their
    # stamps can come out swapped.  The HARD is the one exception to "older loses".
    st = State(make_config())
    obs(st, 10, "web01", "HTTP", "CRITICAL", "SOFT")
    obs(st, 9.5, "web01", "HTTP", "CRITICAL", "HARD")
    assert st.checks[("web01", "HTTP")].state_type == "HARD" and len(failing_checks(st)) == 1
    obs(st, 11, "web01", "HTTP", "CRITICAL", "SOFT")        # and a stale SOFT does not demote it
    assert st.checks[("web01", "HTTP")].state_type == "HARD"
    obs(st, 12, "web01", "HTTP", "OK", "HARD")
    obs(st, 11.5, "web01", "HTTP", "CRITICAL", "HARD")      # but never revives a recovered problem
    assert failing_checks(st) == []


def test_late_recovery_does_not_cancel_a_run_and_late_problem_does_not_cause_one():
    sim = Sim(make_config())
    sim.event(T0 + 10, "web01", "HTTP", "CRITICAL")
    sim.event(T0 + 12, "web01", "HTTP", "OK")
    sim.state.observe(T0 + 11, "web01", "HTTP", "CRITICAL", "HARD", 1, 0, "late")
    sim.settle()
    assert sim.starts == []
    sim2 = Sim(make_config())
    sim2.event(T0 + 10, "web01", "HTTP", "CRITICAL")
    sim2.state.observe(T0 + 5, "web01", "HTTP", "OK", "HARD", 1, 0, "late")
    sim2.advance(T0 + 40)
    assert len(sim2.starts) == 1


def test_downtime_only_observation_keeps_the_state():
    st = State(make_config())
    obs(st, 0, "web01", "HTTP", "CRITICAL")
    obs(st, 5, "web01", "HTTP", None, downtime=1)
    cs = st.checks[("web01", "HTTP")]
    assert (cs.state, cs.downtime) == ("CRITICAL", 1) and failing_checks(st) == []
    obs(st, 9, "web01", "HTTP", None, downtime=0)
    assert len(failing_checks(st)) == 1


def test_host_downtime_covers_the_host_and_its_services():
    st = State(make_config())
    obs(st, 0, "web01", None, None, downtime=1)
    obs(st, 1, "web01", None, "DOWN", downtime=1)
    obs(st, 2, "web01", "HTTP", "CRITICAL")
    obs(st, 2, "web02", "HTTP", "CRITICAL")
    assert [k for k, _ in failing_checks(st)] == [("web02", "HTTP")]
    obs(st, 3, "web01", None, "DOWN", downtime=0)
    assert {k for k, _ in failing_checks(st)} == {("web01", None), ("web01", "HTTP"), ("web02", "HTTP")}


def test_soft_states_count_only_when_configured():
    for types, failing in ((["HARD"], 0), (["SOFT", "HARD"], 1)):
        st = State(make_config(state_types=types))
        obs(st, 0, "web01", "HTTP", "CRITICAL", "SOFT")
        assert len(failing_checks(st)) == failing


def test_debounce_bursts_are_split_by_a_whole_quiescence_and_reset_by_a_run():
    st = State(make_config())                    # quiescence 30s
    for t, host in ((0, "web01"), (29, "web02"), (58, "web03")):
        obs(st, t, host, "HTTP", "CRITICAL")
    assert (st.burst_start, st.last_event) == (T0, T0 + 58)
    obs(st, 70, "web03", "HTTP", "CRITICAL")     # same problem again: changes nothing
    assert st.last_event == T0 + 58
    obs(st, 88, "web04", "HTTP", "CRITICAL")     # gap of exactly the quiescence
    assert st.burst_start == T0 + 88
    st.apply({"time": T0 + 90, "kind": "start", "run": "r1", "levels": ["converge"]})
    assert st.burst_start is None and st.open_run["run"] == "r1"
    obs(st, 95, "web05", "HTTP", "CRITICAL")
    assert st.burst_start == T0 + 95


def test_event_records_fold_like_observations_and_remember_their_ids():
    st = State(make_config())
    st.apply({"time": T0, "kind": "event", "id": "abc", "host": "web01", "service": "HTTP",
              "state": "CRITICAL", "state_type": "HARD", "attempt": 3, "downtime": 0, "output": "x"})
    st.apply({"time": T0, "host": "web02", "service": None, "state": "DOWN"})   # kind defaults to event
    assert "abc" in st.seen_ids
    assert st.checks[("web01", "HTTP")].attempt == 3
    assert st.checks[("web02", None)].state_type == "HARD"
    st.apply({"time": T0, "kind": "some-future-kind", "id": "zz"})             # unknown kinds are harmless
    assert "zz" in st.seen_ids


def test_hold_release_pause_resume_records():
    st = State(make_config())
    st.apply({"time": T0, "kind": "hold", "host": "web01", "reason": "rebuilding"})
    st.apply({"time": T0, "kind": "pause", "reason": ""})
    assert st.held_hosts == {"web01": "rebuilding"} and st.paused == ""
    st.apply({"time": T0, "kind": "release", "host": "web01"})
    st.apply({"time": T0, "kind": "resume"})
    assert st.held_hosts == {} and st.paused is None


def test_verdict_records_count_attempts_and_converged_runs_end_episodes():
    cfg = make_config()
    st = State(cfg)
    st.apply({"time": T0, "kind": "verdict", "run": T0, "level": "converge", "converged": False,
              "attempt": 1, "failing_checks": [["web01", "HTTP"]]})
    st.apply({"time": T0 + 1, "kind": "verdict", "run": T0, "level": "deploy", "converged": False,
              "attempt": 3, "exhausted": "notify", "failing_checks": [["app", "Smoke test"]]})
    assert st.episodes["converge"].attempts == 1
    assert st.episodes["deploy"].held and st.episodes["deploy"].pending == {("app", "Smoke test")}
    # A converged run at converge covers converge and every less drastic level.
    st.apply({"time": T0 + 2, "kind": "verdict", "run": T0, "level": "converge", "converged": True})
    assert st.episodes == {}


def test_recovery_clears_pending_checks_of_every_episode():
    st = State(make_config())
    st.apply({"time": T0, "kind": "verdict", "run": T0, "level": "deploy", "converged": False,
              "attempt": 3, "exhausted": "notify",
              "failing_checks": [["app", "Smoke test"], ["app", "Smoke login"]]})
    obs(st, 10, "app", "Smoke login", "OK")
    assert st.episodes["deploy"].pending == {("app", "Smoke test")}
    d = decide(st, st.config, T0 + 100)
    assert not any(r["kind"] == "release" for r in d.records)
    obs(st, 20, "app", "Smoke test", "OK")
    d = decide(st, st.config, T0 + 100)
    assert [(r["kind"], r["level"]) for r in d.records] == [("release", "deploy")]


def test_remap_adopts_a_new_config():
    st = State(make_config())
    obs(st, 0, "web01", "Load", "CRITICAL")
    assert st.checks[("web01", "Load")].level is None      # unmapped
    st.remap(make_config(checks=[{"service": "Load", "level": "converge"}]))
    assert st.checks[("web01", "Load")].level == 2


def _busy_scenario(cfg):
    """Exhaustion, escalation, holds, pause, skips, downtime: everything a snapshot must keep."""
    sim = Sim(cfg)
    sim.event(T0, "web01", None, "DOWN")
    sim.event(T0 + 5, "app", "Smoke test")
    sim.event(T0 + 6, "web02", "HTTP", "CRITICAL", downtime=1)
    sim.event(T0 + 7, "web03", "Disk /var")                # unmapped
    sim.control(T0 + 8, "hold", host="web04", reason="by hand")
    sim.event(T0 + 9, "web04", "HTTP")
    yield sim
    sim.advance(T0 + 2000)
    yield sim
    sim.control(T0 + 2450, "pause", reason="change freeze")
    sim.event(T0 + 2500, "web05", "HTTP")
    sim.advance(T0 + 3050)
    yield sim
    sim.control(T0 + 3100, "resume")
    sim.event(T0 + 3200, "web01", None, "UP")
    yield sim
    sim.advance(T0 + 5000)
    sim.control(T0 + 5000, "pause", reason="change freeze")
    sim.event(T0 + 5010, "web07", None, "DOWN")
    sim.advance(T0 + 5100)
    assert sim.story()[-1][1:3] == ("skipped", "tier")  # paused: recorded, no page
    yield sim
    sim.settle()
    yield sim


def canonical(snapshot: dict) -> str:
    """A snapshot as text, with the lists that come from sets sorted."""
    d = json.loads(json.dumps(snapshot))
    d["skip_checks"] = sorted(d["skip_checks"], key=json.dumps)
    for ep in d["episodes"].values():
        ep["pending"] = sorted(ep["pending"], key=json.dumps)
    return json.dumps(d, sort_keys=True)


def test_snapshot_round_trip_gives_identical_decisions_at_every_point():
    cfg = example_config()
    for sim in _busy_scenario(cfg):
        copy = snapshot_copy(sim.state, cfg)
        assert canonical(copy.to_json()) == canonical(sim.state.to_json())
        for dt in (0, 1, 30, 299, 300, 900, 3600, DAY):
            now = sim.now + dt
            assert decision_key(decide(copy, cfg, now)) == decision_key(decide(sim.state, cfg, now)), dt


def test_collector_restarted_from_a_snapshot_makes_the_same_story():
    cfg = example_config()

    def drive(sim, restart_at=None):
        steps = [
            lambda s: s.event(T0, "web01", None, "DOWN"),
            lambda s: s.event(T0 + 400, "app", "Smoke test"),
            lambda s: s.advance(T0 + 700),
            lambda s: s.event(T0 + 800, "web02", "HTTP"),
            lambda s: s.advance(T0 + 2000),
            lambda s: s.event(T0 + 3000, "web01", None, "UP"),
            lambda s: s.settle(),
        ]
        for i, step in enumerate(steps):
            if i == restart_at:
                # A new process: only state.json survives (wake-up time is re-derived by asking).
                fresh = Sim(cfg, start=sim.now, state=snapshot_copy(sim.state, cfg))
                fresh.records = sim.records
                fresh.wake = sim.now
                sim = fresh
            step(sim)
        return sim.story()

    reference = drive(Sim(cfg))
    assert any(s[1] == "verdict" for s in reference) and any(s[1] == "release" for s in reference)
    for restart_at in range(1, 7):
        assert drive(Sim(cfg), restart_at) == reference, restart_at
