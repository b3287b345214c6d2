"""Planning rules 1-9 (docs/planning.rst), proven on a simulated clock.

Each test feeds events into ``Sim`` (a collector on a simulated clock, see
planner_fixtures) and asserts the records the planner journals: runs with
their levels and targets, verdicts, notifications, skips and releases, and
when they happen.  Times are seconds after ``T0``.
"""

from __future__ import annotations

import pytest

from escalator_handlers.steps.run_plan import execute
from escalator_handlers.planning.planner import decide, required_level, survey
from escalator_handlers.planning.state import State

from planner_fixtures import (DAY, T0, FakeRunner, Sim, example_config,
                              make_config)

ALL_SIX = ("account", "core", "tier", "vm", "converge", "deploy")


def at(t: float) -> float:
    return T0 + t


def start_times(sim: Sim) -> list:
    return [r["time"] - T0 for r in sim.starts]


def targets(rec: dict) -> dict:
    return {k: tuple(v) for k, v in rec["targets"].items()}


# -- the three worked examples of docs/planning.rst, on the bundled six-level config

def test_nothing_in_place_runs_levels_1_to_6():
    sim = Sim(example_config())
    for i, (host, service, state) in enumerate([
            ("iaas-api", "IaaS API", "CRITICAL"), ("tier-web", "App tier", "CRITICAL"),
            ("web01", None, "DOWN"), ("web01", "HTTP", "CRITICAL"),
            ("db01", "PostgreSQL", "CRITICAL"), ("app", "Smoke test", "CRITICAL")]):
        sim.event(at(i), host, service, state)
    sim.advance(at(34))
    assert sim.starts == []                      # still quiescing: last event at +5
    sim.advance(at(35))
    (run,) = sim.starts
    assert tuple(run["levels"]) == ALL_SIX
    # The IaaS API check asks for account but says `target: false`: iaas-api is
    # a service endpoint, never a VM to create or converge.
    assert targets(run) == {
        "account": (), "core": (),
        "tier": ("tier-web",),
        "vm": ("tier-web", "web01"),
        "converge": ("db01", "tier-web", "web01"),
        "deploy": ("app", "db01", "tier-web", "web01"),
    }
    asked = {(c["host"], c["service"]): c["level"] for c in run["checks"]}
    assert asked == {("iaas-api", "IaaS API"): "account", ("tier-web", "App tier"): "tier",
                     ("web01", None): "vm", ("web01", "HTTP"): "converge",
                     ("db01", "PostgreSQL"): "converge", ("app", "Smoke test"): "deploy"}
    # One step per target for foreach steps, once otherwise, every level in order.
    steps = [(r["level"], r["host"]) for r in sim.of("step")]
    assert [lv for lv, _ in steps] == ["account", "core", "tier"] + ["vm"] * 2 + ["converge"] * 3 + ["deploy"]
    (end,) = sim.runs
    assert end["outcome"] == "dry-run"
    assert end["quiescence_until"] == end["time"] + 15 * 60   # account's, the largest


def test_node_failure_runs_vm_converge_deploy_for_that_node_only():
    sim = Sim(example_config())
    for host in ("web01", "web02", "db01"):
        sim.event(at(0), host, None, "UP")
    sim.event(at(100), "web01", None, "DOWN")
    sim.event(at(104), "web01", "HTTP", "CRITICAL")
    sim.advance(at(134))
    (run,) = sim.starts
    assert run["time"] == at(134)
    assert tuple(run["levels"]) == ("vm", "converge", "deploy")
    assert targets(run) == {"vm": ("web01",), "converge": ("web01",), "deploy": ("web01",)}
    assert [(s["level"], s["host"]) for s in sim.of("step")] == [
        ("vm", "web01"), ("converge", "web01"), ("deploy", None)]


def test_smoke_test_failure_runs_deploy_only():
    sim = Sim(example_config())
    sim.event(at(0), "app", "Smoke test", "CRITICAL")
    sim.advance(at(30))
    (run,) = sim.starts
    assert tuple(run["levels"]) == ("deploy",)
    assert targets(run) == {"deploy": ("app",)}
    assert sim.runs[0]["quiescence_until"] == at(30 + 120)


# -- rules 1-3 and debounce -------------------------------------------------------

def test_burst_of_failures_within_quiescence_becomes_one_run_at_most_drastic_level():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.event(at(10), "web01", "HTTP")
    sim.event(at(25), "web01", None, "DOWN")
    sim.advance(at(54))
    assert sim.starts == [] and "waiting for quiet" in sim.decisions[-1][1].why
    sim.advance(at(55 + 599))
    assert start_times(sim) == [55]
    (run,) = sim.starts
    assert tuple(run["levels"]) == ("vm", "converge", "deploy")
    assert targets(run) == {"vm": ("web01",), "converge": ("web01",), "deploy": ("app", "web01")}


def test_recovery_inside_the_quiescence_window_cancels_the_run():
    sim = Sim(make_config())
    sim.event(at(0), "web01", "HTTP", "CRITICAL")
    sim.event(at(10), "web01", "HTTP", "OK")
    sim.settle()
    assert sim.records == []
    assert sim.decisions[-1][1].why == "nothing to do"


def test_chatter_that_changes_no_decision_does_not_postpone_action():
    sim = Sim(make_config())
    sim.event(at(0), "web01", "HTTP")
    for t in range(10, 1000, 5):         # OK results and SOFT attempts every 5 s
        sim.event(at(t), "web09", "Load", "OK")
        sim.event(at(t), "web08", "Load", "WARNING", state_type="SOFT")
    assert start_times(sim)[0] == 30


def test_a_held_level_records_a_new_failure_it_swallows_without_paging_again():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.settle()
    assert len(sim.skipped) == 1
    notifies = len(sim.of("notify"))
    sim.event(at(1000), "app2", "Smoke test")          # a new check asks for the held level
    sim.settle()
    assert len(sim.skipped) == 2 and len(sim.of("notify")) == notifies


def test_max_delay_forces_action_during_a_never_ending_burst():
    sim = Sim(make_config())
    sim.event(at(0), "web01", "HTTP")
    for t in range(10, 1000, 20):        # another check flaps HARD: relevant events never stop
        sim.event(at(t), "web09", "Load", "OK" if (t - 10) % 40 else "WARNING")
    assert start_times(sim)[0] == 300    # max_delay after the burst's first event
    # The run reset the burst: the next one is measured from the first event after it
    # (+310), although the run's quiescence (converge: 2m) ended at +420.
    assert start_times(sim)[1] == 310 + 300


def test_a_quiet_gap_starts_a_new_burst_for_max_delay():
    sim = Sim(make_config())
    for t in range(0, 201, 20):          # a flapping check, then a quiet gap of 50 s
        sim.event(at(t), "web09", "Load", "WARNING" if t % 40 else "OK")
    for t in range(250, 1000, 20):
        sim.event(at(t), "web09", "Load", "OK" if (t - 250) % 40 else "WARNING")
        if t == 270:
            sim.event(at(t), "web01", "HTTP")
    assert start_times(sim)[0] == 250 + 300


def test_run_targets_count_escalated_and_less_drastic_checks_per_level():
    cfg = make_config()
    st = State(cfg)
    st.observe(at(0), "web01", None, "DOWN", "HARD", 1, 0, "")
    st.observe(at(0), "web02", "HTTP", "CRITICAL", "HARD", 1, 0, "")
    st.observe(at(0), "app", "Smoke test", "CRITICAL", "HARD", 1, 0, "")
    assert required_level(st) == 1
    d = decide(st, cfg, at(30))
    assert [lv.name for lv in d.run.levels] == ["vm", "converge", "deploy"]
    assert dict(d.run.targets) == {"vm": ("web01",), "converge": ("web01", "web02"),
                                   "deploy": ("app", "web01", "web02")}
    assert d.run.attempt == 1 and not d.run.escalated
    assert "web01 DOWN HARD asks for level 1 (vm)" in d.explain
    assert "app/Smoke test CRITICAL HARD asks for level 3 (deploy)" in d.explain


# -- SOFT / HARD and downtime -----------------------------------------------------

def test_soft_states_are_ignored_by_default():
    sim = Sim(make_config())
    for t in (0, 10, 20):
        sim.event(at(t), "web01", "HTTP", "CRITICAL", state_type="SOFT")
    sim.settle()
    assert sim.records == []
    sim.event(at(DAY + 100), "web01", "HTTP", "CRITICAL", state_type="HARD")
    sim.advance(at(DAY + 130))
    assert start_times(sim) == [DAY + 130]


def test_soft_states_are_acted_on_with_state_types_soft_and_hard():
    sim = Sim(make_config(state_types=["SOFT", "HARD"]))
    for t in (0, 10, 20):                # repeated SOFT attempts of the same problem
        sim.event(at(t), "web01", "HTTP", "CRITICAL", state_type="SOFT")
    sim.advance(at(50))
    assert start_times(sim) == [30]      # they change no decision, so they do not extend the wait
    assert sim.starts[0]["checks"][0]["level"] == "converge"


@pytest.mark.parametrize("where", ["service", "host"])
def test_checks_in_scheduled_downtime_are_ignored_by_default(where):
    sim = Sim(make_config())
    if where == "host":
        sim.event(at(0), "web01", None, None, downtime=1)     # HOST DOWNTIME ALERT: STARTED
        sim.event(at(5), "web01", "HTTP", "CRITICAL")         # the service's own depth is 0
    else:
        sim.event(at(5), "web01", "HTTP", "CRITICAL", downtime=1)
    sim.settle()
    assert sim.records == []
    assert "nothing to do" in sim.decisions[-1][1].why


@pytest.mark.parametrize("where", ["service", "host"])
def test_checks_in_scheduled_downtime_are_acted_on_with_act_in_downtime(where):
    sim = Sim(make_config(act_in_downtime=True))
    if where == "host":
        sim.event(at(0), "web01", None, None, downtime=1)
        sim.event(at(5), "web01", "HTTP", "CRITICAL")
    else:
        sim.event(at(5), "web01", "HTTP", "CRITICAL", downtime=1)
    sim.advance(at(35))
    assert start_times(sim) == [35]


def test_a_check_still_failing_when_its_downtime_ends_is_acted_on():
    sim = Sim(make_config())
    sim.event(at(0), "web01", "HTTP", "CRITICAL", downtime=1)
    sim.event(at(600), "web01", "HTTP", None, downtime=0)    # SERVICE DOWNTIME ALERT: STOPPED
    sim.advance(at(630))
    assert start_times(sim) == [630]


# -- rule 6/7: quiescence after a run, verdicts --------------------------------------

def test_level_quiescence_holds_further_runs_and_events_during_it_are_planned_after():
    sim = Sim(make_config())
    sim.event(at(0), "web01", None, "DOWN")
    sim.advance(at(30))
    assert sim.runs[0]["quiescence_until"] == at(30 + 600)      # vm's 10m, the largest
    sim.event(at(100), "web02", None, "DOWN")                   # recorded, not acted on
    sim.advance(at(629))
    assert start_times(sim) == [30]
    assert "quiescence after run" in sim.decisions[-1][1].why
    assert sim.state.checks[("web02", None)].state == "DOWN"
    sim.advance(at(630))
    assert start_times(sim) == [30, 630]
    (verdict,) = sim.of("verdict")
    assert (verdict["time"], verdict["converged"], verdict["failing"]) == (at(630), False, ["web01"])
    assert targets(sim.starts[1])["vm"] == ("web01", "web02")


def test_run_quiescence_is_the_largest_among_the_levels_that_ran():
    sim = Sim(make_config())
    sim.event(at(0), "web01", "HTTP")                # converge (2m) + deploy (1m)
    sim.advance(at(30))
    assert sim.runs[0]["quiescence_until"] == at(30 + 120)
    sim2 = Sim(make_config())
    sim2.event(at(0), "app", "Smoke test")           # deploy only: its own 1m, not vm's 10m
    sim2.advance(at(30))
    assert sim2.runs[0]["quiescence_until"] == at(30 + 60)


def test_a_level_without_quiescence_gets_the_top_level_quiescence():
    cfg = make_config(quiescence="45s", levels={"deploy": {"quiescence": None}})
    assert cfg.level("deploy").quiescence == 45.0
    sim = Sim(cfg)
    sim.event(at(0), "app", "Smoke test")
    sim.advance(at(45))
    assert sim.runs[0]["quiescence_until"] == at(45 + 45)


def test_failed_step_stops_the_run_and_only_levels_that_ran_count_for_quiescence():
    cfg = make_config(levels={"deploy": {"quiescence": "1h"}})
    sim = Sim(cfg)
    sim.event(at(0), "web01", None, "DOWN")
    d = decide(sim.state, cfg, at(30))
    runner = FakeRunner(failing=[("chef-client-on", "web01")])
    sim.now = at(30)
    rec = execute(d.run, cfg, runner, sim.emit, lambda: sim.now)
    assert runner.ran == [("create-vm", "web01"), ("chef-client-on", "web01")]   # deploy never ran
    assert rec["outcome"] == "failed" and "chef-client-on" not in rec["reason"]
    assert "levels[1].steps[0] of level converge failed on web01: exit status 1" in rec["reason"]
    assert rec["levels_run"] == ["vm", "converge"]
    assert rec["quiescence_until"] == at(30 + 600)                  # not deploy's hour
    assert [s["exit"] for s in sim.of("step")] == [0, 1]
    sim.wake = at(30)
    sim.advance(at(630))
    (verdict,) = sim.of("verdict")
    assert verdict["time"] == at(630) and verdict["converged"] is False


def test_verdict_is_converged_when_every_check_that_asked_recovered():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.advance(at(30))
    sim.event(at(50), "app", "Smoke test", "OK")
    sim.event(at(60), "web02", "HTTP")               # a new problem did not ask for this run
    sim.advance(at(89))
    assert sim.of("verdict") == []
    sim.advance(at(90))
    (verdict,) = sim.of("verdict")
    assert (verdict["converged"], verdict["failing"], verdict["run"]) == (True, [], at(30))
    assert start_times(sim) == [30, 90]              # web02 quiesced meanwhile: acted on at once
    assert tuple(sim.starts[1]["levels"]) == ("converge", "deploy")


def test_check_staying_critical_hard_without_new_events_is_reconverged_after_quiescence():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.settle()
    assert start_times(sim) == [30, 90, 150]         # deploy: 1m quiescence, 3 attempts
    assert [r["attempt"] for r in sim.starts] == [1, 2, 3]
    verdicts = sim.of("verdict")
    assert len(verdicts) == len(sim.runs) == 3       # one verdict per run
    assert [(v["time"] - T0, v["attempt"], v.get("exhausted")) for v in verdicts] == [
        (90, 1, None), (150, 2, None), (210, 3, "notify")]
    assert [v["run"] for v in verdicts] == [r["time"] for r in sim.runs]


# -- rule 7: exhaustion ------------------------------------------------------------

def test_exhaustion_notifies_once_and_holds_the_level():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.settle(3 * DAY)
    assert sim.story()[-3:] == [(210, "verdict", "deploy", False, "notify"), (210, "notify", "exhausted"),
                                (210, "skipped", "deploy", "held-level")]
    (note,) = sim.of("notify")
    assert "deploy did not converge after 3 attempts" in note["summary"]
    assert len(sim.starts) == 3
    # Another event about the held check changes nothing: still one skip record.
    sim.event(at(5000), "app", "Smoke test", "CRITICAL", output="still broken")
    sim.settle()
    assert len(sim.skipped) == 1 and len(sim.of("notify")) == 1 and len(sim.starts) == 3


def test_held_level_is_released_when_its_checks_recover_and_a_new_failure_starts_afresh():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.settle()
    sim.event(at(1000), "app", "Smoke test", "OK")
    assert sim.story()[-1] == (1000, "release", "deploy")
    assert "deploy" not in sim.state.episodes
    sim.event(at(2000), "app", "Smoke test")
    sim.advance(at(2030))
    assert start_times(sim)[-1] == 2030 and sim.starts[-1]["attempt"] == 1


def test_one_skip_record_per_held_episode_even_when_some_of_its_checks_recover():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.event(at(0), "app", "Smoke login")
    sim.settle()
    assert len(sim.skipped) == 1
    sim.event(at(1000), "app", "Smoke login", "OK")    # half the episode recovered
    sim.settle()
    assert len(sim.skipped) == 1 and sim.of("release") == []
    sim.event(at(DAY * 2), "app", "Smoke test", "OK")
    assert sim.story()[-1] == (DAY * 2, "release", "deploy")


def test_resume_lifts_an_exhausted_hold():
    sim = Sim(make_config())
    sim.event(at(0), "app", "Smoke test")
    sim.settle()
    sim.control(at(1000), "resume", reason="fixed the smoke test data")
    assert start_times(sim) == [30, 90, 150, 1000]
    assert sim.starts[-1]["attempt"] == 1


def test_escalate_starts_the_next_run_one_level_more_drastic():
    sim = Sim(example_config())          # vm: max_attempts 2, on_exhausted: escalate
    sim.event(at(0), "web01", None, "DOWN")
    sim.settle()
    story = sim.story()
    vm_run = ("vm", "converge", "deploy")
    tier_run = ("tier",) + vm_run
    assert [s[:3] for s in story] == [
        (30, "run", vm_run), (330, "verdict", "vm"), (330, "run", vm_run),
        (630, "verdict", "vm"), (630, "run", tier_run),
        (1230, "verdict", "tier"), (1230, "run", tier_run),
        (1830, "verdict", "tier"), (1830, "run", tier_run),
        (2430, "verdict", "tier"), (2430, "notify", "exhausted"), (2430, "skipped", "tier")]
    assert story[3][4] == "escalate" and story[9][4] == "notify"
    escalated = sim.starts[2]
    assert escalated["escalated"] is True and escalated["start_level"] == "tier"
    assert targets(escalated) == {"tier": ("web01",), "vm": ("web01",), "converge": ("web01",),
                                  "deploy": ("web01",)}
    assert "escalated after exhausting vm" in escalated["summary"]
    # Recovery ends both the escalation and the hold.
    sim.event(at(3000), "web01", None, "UP")
    assert sorted(s[2] for s in sim.story() if s[1] == "release") == ["tier", "vm"]
    assert sim.state.episodes == {}


def test_converged_escalated_run_ends_the_escalation():
    sim = Sim(example_config())
    sim.event(at(0), "web01", None, "DOWN")
    sim.advance(at(630))
    assert sim.starts[-1]["start_level"] == "tier"
    sim.event(at(700), "web01", None, "UP")
    sim.advance(at(1230))
    assert sim.of("verdict")[-1]["converged"] is True
    assert sim.state.episodes == {}
    sim.event(at(5000), "web01", None, "DOWN")
    sim.advance(at(5030))
    assert sim.starts[-1]["start_level"] == "vm" and sim.starts[-1]["attempt"] == 1


def test_escalating_level_1_notifies_instead():
    sim = Sim(make_config(levels={"vm": {"on_exhausted": "escalate"}}))
    sim.event(at(0), "web01", None, "DOWN")
    sim.settle()
    assert [s for s in sim.story() if s[1] != "run"] == [
        (630, "verdict", "vm", False, None), (1230, "verdict", "vm", False, "notify"),
        (1230, "notify", "exhausted"), (1230, "skipped", "vm", "held-level")]


# -- rule 8: limits, pause, hold ---------------------------------------------------

def test_max_runs_per_hour_stops_runs_notifies_once_and_acts_when_the_window_frees():
    cfg = make_config(limits={"max_runs_per_hour": 2}, levels={"deploy": {"max_attempts": 100}})
    sim = Sim(cfg)
    sim.event(at(0), "app", "Smoke test")
    sim.advance(at(3 * 3600))
    starts = start_times(sim)
    assert starts == [30, 90, 3630, 3690, 7230, 7290]
    for s in starts:                     # never more than 2 runs started in any hour
        assert sum(1 for x in starts if s <= x < s + 3600) <= 2
    skips = [(r["time"] - T0, r["skip_key"]) for r in sim.skipped]
    assert skips == [(150, "max_runs_per_hour:deploy"), (3750, "max_runs_per_hour:deploy"),
                     (7350, "max_runs_per_hour:deploy")]
    notes = sim.of("notify", reason="max_runs_per_hour")
    assert [n["time"] - T0 for n in notes] == [150, 3750, 7350]
    assert "limit max_runs_per_hour (2) reached" in notes[0]["summary"]


def test_max_targets_exceeded_at_any_level_skips_and_notifies_until_fewer_hosts_fail():
    sim = Sim(make_config(limits={"max_targets": 2}))
    sim.event(at(0), "web01", None, "DOWN")
    sim.event(at(1), "web02", "HTTP")
    sim.event(at(2), "app", "Smoke test")          # deploy would have 3 targets
    sim.settle()
    assert sim.starts == []
    (skip,) = sim.skipped
    assert "limit max_targets (2) exceeded: 3 hosts at level deploy" in skip["reason"]
    assert len(sim.of("notify", reason="max_targets")) == 1
    sim.event(at(DAY + 100), "app", "Smoke test", "OK")
    sim.advance(at(DAY + 130))
    assert start_times(sim) == [DAY + 130]
    assert targets(sim.starts[0])["deploy"] == ("web01", "web02")


def test_pause_skips_once_never_pages_the_operator_and_resume_acts():
    sim = Sim(make_config())
    sim.control(at(0), "pause", reason="maintenance")
    sim.event(at(10), "app", "Smoke test")
    sim.event(at(20), "web01", "HTTP")
    sim.settle()
    assert sim.starts == []
    assert [s[1:] for s in sim.story()] == [("skipped", "converge", "paused")]  # no page: their own pause
    assert sim.skipped[0]["reason"] == "paused by operator: maintenance"
    sim.control(at(DAY), "resume")
    assert start_times(sim) == [DAY]


def test_failing_check_on_a_held_host_is_excluded_from_planning():
    sim = Sim(make_config())
    sim.control(at(0), "hold", host="web01", reason="rebuilding by hand")
    sim.event(at(10), "web01", None, "DOWN")
    sim.event(at(10), "web02", None, "DOWN")
    sim.advance(at(40))
    (run,) = sim.starts
    assert targets(run) == {"vm": ("web02",), "converge": ("web02",), "deploy": ("web02",)}
    assert [c["host"] for c in run["checks"]] == ["web02"]
    (d,) = [d for _, d in sim.decisions if d.run is not None]     # its explanation names the hold
    assert "web01 asks for level vm but is held by an operator: hold web01 (rebuilding by hand)" in d.explain


def test_only_held_hosts_failing_skips_once_without_a_page_then_release_acts():
    sim = Sim(make_config())
    sim.control(at(0), "hold", host="web01")
    sim.event(at(10), "web01", None, "DOWN")
    sim.settle()
    assert [s[1:] for s in sim.story()] == [("skipped", "vm", "held-host")]
    assert "hosts held by an operator: web01" in sim.skipped[0]["reason"]
    sim.control(at(DAY), "release", host="web01")
    assert start_times(sim) == [DAY]


# -- rule 9 and check mapping -----------------------------------------------------

def test_unmapped_failing_checks_change_nothing_but_are_reported():
    cfg = make_config()
    sim = Sim(cfg)
    sim.event(at(0), "web02", "Disk /var")
    sim.settle()
    assert sim.records == []
    assert "web02/Disk /var is failing but no rule maps it (ignored)" in sim.decisions[-1][1].explain
    sim.event(at(DAY), "app", "Smoke test")
    sim.advance(at(DAY + 30))
    (run,) = sim.starts
    assert run["unmapped"] == ["web02/Disk /var"]
    assert targets(run) == {"deploy": ("app",)}


def test_first_matching_rule_wins():
    cfg = example_config()
    st = State(cfg)
    st.observe(at(0), "tier-web", "PING", "CRITICAL", "HARD", 1, 0, "")   # tier-* before PING
    st.observe(at(0), "iaas-api", "IaaS API", "CRITICAL", "HARD", 1, 0, "")
    assert {a.key: a.level for a in survey(st).asking} == {("tier-web", "PING"): 3, ("iaas-api", "IaaS API"): 1}
    st2 = State(cfg)
    st2.observe(at(0), "tier-web", "PING", "CRITICAL", "HARD", 1, 0, "")
    d = decide(st2, cfg, at(30))
    assert d.run.start.name == "tier"


def test_state_narrowed_rule_maps_only_its_states():
    cfg = make_config(checks=[{"service": "HTTP", "state": ["CRITICAL"], "level": "vm"},
                              {"service": "HTTP", "level": "deploy"}])
    sim = Sim(cfg)
    sim.event(at(0), "web01", "HTTP", "WARNING")
    sim.advance(at(30))
    assert tuple(sim.starts[0]["levels"]) == ("deploy",)
    sim.event(at(40), "web01", "HTTP", "CRITICAL")     # same check, now a worse state
    sim.advance(at(90))
    assert tuple(sim.starts[1]["levels"]) == ("vm", "converge", "deploy")
    assert sim.starts[1]["checks"][0]["level"] == "vm"


# -- superseded runs (interrupted by the collector) ---------------------------------

def test_superseded_run_has_no_quiescence_and_no_verdict():
    cfg = make_config()
    sim = Sim(cfg)
    sim.event(at(0), "web01", "HTTP")
    d = decide(sim.state, cfg, at(30))
    sim.now = at(30)
    calls = []

    def interrupt():
        calls.append(1)
        return "a more drastic level is required" if len(calls) > 1 else None

    rec = execute(d.run, cfg, FakeRunner(), sim.emit, lambda: sim.now, interrupt=interrupt)
    assert rec["superseded"] is True and rec["quiescence_until"] == at(30)
    assert rec["reason"] == "a more drastic level is required"
    assert sim.state.last_run().judged
    d2 = decide(sim.state, cfg, at(30))
    assert d2.run is not None and d2.records == ()


def test_a_run_whose_start_level_recovered_is_not_counted_against_that_level():
    # vm: max_attempts 2, on_exhausted escalate.  The node comes back but the smoke
    # test still fails: the next runs are deploy-only, and the vm level's episode
    # is over, so a later node failure starts at vm again, not one level up.
    sim = Sim(example_config())
    sim.event(at(0), "web01", None, "DOWN")
    sim.event(at(0), "app", "Smoke test")
    sim.event(at(100), "web01", None, "UP")
    sim.advance(at(400))
    verdict = sim.of("verdict")[0]
    assert verdict["level"] == "vm" and not verdict["converged"] and verdict["level_converged"]
    assert "exhausted" not in verdict and "vm" not in sim.state.episodes
    assert [s["levels"][0] for s in sim.starts] == ["vm", "deploy"]
    sim.event(at(2000), "app", "Smoke test", "OK")
    sim.event(at(5000), "web02", None, "DOWN")
    sim.advance(at(6000))
    first = [s for s in sim.starts if s["time"] > at(5000)][0]
    assert first["levels"][0] == "vm" and first["attempt"] == 1
