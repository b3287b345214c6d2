"""Approval gates on a simulated clock: requested, approved, denied, timed out, withdrawn, replaced."""

from __future__ import annotations

from planner_fixtures import T0, Sim, make_config

#: vm (level 1) needs a person's approval; converge and deploy do not.
GATED = {"vm": {"approval": {"timeout": "30m"}}}


def requested(sim: Sim) -> list:
    return sim.of("approval", outcome="requested")


def test_run_with_an_approval_level_waits_and_notifies_with_the_command():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "PING").advance(T0 + 60)
    assert sim.starts == []
    [req] = requested(sim)
    assert req["levels"] == ["vm", "converge", "deploy"]
    assert req["targets"]["vm"] == ["web-01"]
    assert req["checks"] == [{"host": "web-01", "service": "PING", "state": "CRITICAL", "level": "vm"}]
    assert req["expires"] == req["asked"] + 1800
    [note] = sim.of("notify", reason="approval")
    assert f"escalator approve {req['approval']}" in note["summary"]
    assert "web-01/PING" in note["summary"] and "levels vm, converge, deploy" in note["summary"]
    # Events keep being recorded while it waits; the request stays the same one.
    sim.event(T0 + 120, "web-01", "HTTP").advance(T0 + 300)
    assert len(requested(sim)) == 1 and sim.starts == []


def test_approved_run_starts_and_carries_the_approval():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "PING").advance(T0 + 60)
    rid = requested(sim)[0]["approval"]
    sim.control(T0 + 100, "approve", approval=rid, user="alice", reason="go")
    [start] = sim.starts
    assert start["approval"] == rid and start["levels"] == ["vm", "converge", "deploy"]
    assert sim.state.approvals.pending == {}


def test_levels_without_approval_run_as_before():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "HTTP").advance(T0 + 60)
    assert [s["levels"] for s in sim.starts] == [["converge", "deploy"]]
    assert requested(sim) == []


def test_denied_run_never_starts_and_holds_its_start_level_until_recovery():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "PING").advance(T0 + 60)
    rid = requested(sim)[0]["approval"]
    sim.control(T0 + 100, "deny", approval=rid, user="bob", reason="I am on it")
    sim.advance(T0 + 7200)
    assert sim.starts == []
    assert len(requested(sim)) == 1                      # not asked again while held
    assert sim.state.episodes["vm"].held
    assert "denied by bob (I am on it)" in sim.state.episodes["vm"].reason
    sim.event(T0 + 7300, "web-01", "PING", state="OK").advance(T0 + 7400)
    assert sim.of("release", level="vm")
    sim.event(T0 + 8000, "web-01", "PING").advance(T0 + 8100)
    assert len(requested(sim)) == 2                      # a new problem asks again


def test_unanswered_request_times_out_as_a_denial_and_is_notified():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "PING")
    sim.advance(T0 + 3600)
    [req] = requested(sim)
    [deny] = sim.of("deny")
    assert deny["approval"] == req["approval"] and deny["user"] == "escalator" and deny["timeout"]
    assert deny["time"] == req["expires"]                # the planner woke for it
    assert sim.of("notify", reason="approval-timeout")
    assert sim.starts == [] and sim.state.episodes["vm"].held


def test_request_is_withdrawn_when_the_checks_recover():
    sim = Sim(make_config(GATED)).event(T0, "web-01", "PING").advance(T0 + 60)
    sim.event(T0 + 90, "web-01", "PING", state="OK").advance(T0 + 3600)
    [w] = sim.of("approval", outcome="withdrawn")
    assert w["approval"] == requested(sim)[0]["approval"]
    assert sim.of("deny") == [] and sim.starts == []


def test_request_is_replaced_when_a_more_drastic_level_is_needed():
    cfg = make_config({"converge": {"approval": True}})
    sim = Sim(cfg).event(T0, "web-01", "HTTP").advance(T0 + 60)
    [first] = requested(sim)
    assert first["levels"] == ["converge", "deploy"]
    sim.event(T0 + 100, "web-02", "PING").advance(T0 + 200)
    [gone] = sim.of("approval", outcome="replaced")
    assert gone["approval"] == first["approval"]
    second = requested(sim)[1]
    assert second["levels"] == ["vm", "converge", "deploy"]
    assert second["targets"]["converge"] == ["web-01", "web-02"]
    assert second["expires"] == second["asked"] + 1800   # `approval: true`
    sim.control(T0 + 300, "approve", approval=second["approval"], user="alice")
    assert [s["levels"] for s in sim.starts] == [["vm", "converge", "deploy"]]


def test_escalator_test_scenarios_can_expect_an_approval_wait(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from planner_fixtures import BASE

    config = dict(BASE, levels=[dict(lv) for lv in BASE["levels"]])
    config["levels"][0]["approval"] = {"timeout": "30m"}
    (tmp_path / "escalator.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "wait.yaml").write_text(
        "name: a node fails - the rebuild waits for a person, nobody answers\n"
        "config: escalator.yaml\n"
        "events:\n"
        "  - {at: 0s, host: web-01, service: PING, state: CRITICAL}\n"
        "expect:\n"
        "  runs: []\n"
        "  approvals: 1\n"
        "  notifications: 2        # the request and its timeout\n")
    escalator = str(Path(sys.executable).with_name("escalator"))
    p = subprocess.run([escalator, "test", str(tmp_path / "wait.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1] == "1 scenario: 1 passed, 0 failed"
    (tmp_path / "wait.yaml").write_text((tmp_path / "wait.yaml").read_text().replace("approvals: 1", "approvals: 0"))
    p = subprocess.run([escalator, "test", str(tmp_path / "wait.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "approvals: expected 0, got 1" in p.stdout
