"""Per-host limits and retry backoff on a simulated clock, including a restart
(the state rebuilt from its snapshot) in the middle."""

from __future__ import annotations

import json

from escalator_handlers.planning.state import State
from planner_fixtures import T0, Sim, make_config

PER_HOST = {"per_host": {"max_runs": 2, "within": "1h"}}
BACKOFF = {"converge": {"retry_backoff": {"initial": "5m", "factor": 2, "max": "20m"}, "max_attempts": 10}}


def restarted(sim: Sim) -> Sim:
    """The same journal and clock, the state rebuilt from a snapshot as a new collector does."""
    snap = json.loads(json.dumps(sim.state.to_json()))
    sim.state = State.from_json(sim.config, snap)
    return sim


def flap(sim: Sim, t: float, host: str = "web-01") -> Sim:
    """HTTP fails at t and is repaired 5 minutes later."""
    return sim.event(t, host, "HTTP").event(t + 300, host, "HTTP", state="OK")


def test_host_targeted_too_often_is_left_alone_with_one_notification_until_the_window_passes():
    sim = Sim(make_config(limits=PER_HOST))
    flap(sim, T0)
    flap(restarted(sim), T0 + 600)
    assert len(sim.runs) == 2
    restarted(sim).event(T0 + 1200, "web-01", "HTTP").advance(T0 + 1500)
    assert len(sim.runs) == 2                                  # left alone
    [on] = sim.of("brake", outcome="on")
    assert on["host"] == "web-01" and on["runs"] == 2
    assert on["until"] == sim.runs[0]["started"] + 3600
    [note] = sim.of("notify", reason="per-host-limit")
    assert "limits.per_host" in note["summary"] and "escalator resume --host web-01" in note["summary"]
    # More events in the same episode: no more pages.
    sim.event(T0 + 1600, "web-01", "Smoke test").advance(T0 + 2000)
    assert len(sim.of("notify", reason="per-host-limit")) == 1 and len(sim.runs) == 2
    # The window passes (the planner woke for it): lifted, and the host is acted on again.
    restarted(sim).advance(T0 + 3700)
    [off] = sim.of("brake", outcome="off")
    assert off["time"] == on["until"]
    assert len(sim.runs) == 3 and sim.runs[-1]["targets"]["converge"] == ["web-01"]


def test_other_hosts_are_still_acted_on_while_one_is_left_alone():
    sim = Sim(make_config(limits=PER_HOST))
    flap(flap(sim, T0), T0 + 600)
    sim.event(T0 + 1200, "web-01", "HTTP").event(T0 + 1201, "web-02", "HTTP").advance(T0 + 1300)
    assert sim.runs[-1]["targets"]["converge"] == ["web-02"]
    assert [r["host"] for r in sim.of("brake", outcome="on")] == ["web-01"]


def test_resume_host_lifts_the_limit_and_earlier_runs_no_longer_count():
    sim = Sim(make_config(limits=PER_HOST))
    flap(flap(sim, T0), T0 + 600)
    sim.event(T0 + 1200, "web-01", "HTTP").advance(T0 + 1300)
    assert len(sim.runs) == 2
    sim.control(T0 + 1310, "resume", host="web-01", user="alice")
    sim.advance(T0 + 1400)
    assert len(sim.runs) == 3
    assert sim.state.paused is None and "web-01" not in sim.state.brakes.braked


def test_backoff_grows_between_unconverged_attempts_up_to_its_max():
    sim = Sim(make_config(BACKOFF)).event(T0, "web-01", "HTTP")
    sim.advance(T0 + 4 * 3600)
    starts = [r["time"] for r in sim.starts]
    verdicts = [r["time"] for r in sim.of("verdict")]
    waits = [s - v for v, s in zip(verdicts, starts[1:])]
    assert waits[:5] == [300, 600, 1200, 1200, 1200]
    waited = sim.of("backoff", outcome="wait")
    assert [w["attempts"] for w in waited[:3]] == [1, 2, 3]
    assert waited[0]["until"] == starts[1]


def test_backoff_survives_a_restart():
    sim = Sim(make_config(BACKOFF)).event(T0, "web-01", "HTTP")
    sim.advance(T0 + 1000)                                     # two attempts so far
    assert len(sim.starts) == 2
    restarted(sim).advance(T0 + 4000)
    starts = [r["time"] for r in sim.starts]
    verdicts = [r["time"] for r in sim.of("verdict")]
    assert [s - v for v, s in zip(verdicts, starts[1:])][:3] == [300, 600, 1200]


def test_backoff_counter_resets_only_after_a_whole_quiescence_of_ok():
    sim = Sim(make_config(BACKOFF)).event(T0, "web-01", "HTTP").advance(T0 + 600)
    assert len(sim.starts) == 2 and len(sim.of("verdict")) == 2  # attempts 1 and 2 did not converge
    # Fixed for one minute (less than converge's 2m quiescence), then broken again:
    # the counter stands, the next wait is the third one.
    t = sim.of("verdict")[-1]["time"]
    sim.event(T0 + 610, "web-01", "HTTP", state="OK").event(T0 + 670, "web-01", "HTTP")
    assert sim.of("backoff", outcome="reset") == []
    sim.advance(T0 + 1180)
    assert sim.starts[2]["time"] - t == 600                    # the wait after two attempts, not none
    # Now OK for good: after 2 minutes the counter is reset (the planner woke for it) ...
    t = sim.starts[2]["time"] + 30
    sim.event(t, "web-01", "HTTP", state="OK").advance(t + 200)
    [reset] = sim.of("backoff", outcome="reset")
    assert reset["time"] == t + 120 and reset["level"] == "converge"
    # ... and the next failure is tried again without a wait.
    sim.event(t + 1000, "web-01", "HTTP").advance(t + 1100)
    assert sim.starts[-1]["time"] == t + 1030


def test_acknowledged_host_is_left_alone_without_a_page_until_its_check_recovers():
    sim = Sim(make_config())
    sim.control(T0, "ack", outcome="set", host="web-01", service="HTTP", author="alice", comment="on it")
    sim.event(T0 + 1, "web-01", "HTTP").event(T0 + 2, "web-02", "HTTP").advance(T0 + 100)
    assert [r["targets"]["converge"] for r in sim.starts] == [["web-02"]]
    sim.event(T0 + 200, "web-02", "HTTP", state="OK").advance(T0 + 400)
    [skip] = [r for r in sim.of("run", outcome="skipped")]
    assert skip["reason"] == "hands off web-01: acknowledged by alice: on it"
    assert sim.of("notify") == []
    # The acknowledged problem recovers (Nagios drops the acknowledgement with it);
    # a new problem on the host is acted on even before the removal is read.
    sim.event(T0 + 500, "web-01", "HTTP", state="OK").event(T0 + 600, "web-01", "Smoke test").advance(T0 + 700)
    assert sim.starts[-1]["levels"] == ["deploy"]


def test_a_drastic_check_on_an_acknowledged_host_does_not_supersede_a_running_run():
    from escalator_handlers.planning.planner import required_level

    sim = Sim(make_config())
    sim.event(T0, "web-02", "HTTP")                       # converge is required
    assert required_level(sim.state) == 2
    sim.control(T0 + 1, "ack", outcome="set", host="web-01", service=None, author="alice", comment="mine")
    sim.state.observe(T0 + 2, "web-01", None, "DOWN", "HARD", 1, 0, "")   # vm, but web-01 is alice's
    assert required_level(sim.state) == 2
