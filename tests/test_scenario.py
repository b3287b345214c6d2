"""``escalator test``: scenario files through the planner on a simulated clock.

The shipped scenarios (nagios-conf/examples/tests) pass on the shipped
config and fail, with a readable diff, when one of its rules is broken; a
malformed scenario exits 2 naming the file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from escalator_handlers import cli
from escalator_handlers.scenario import COUNTS, load, run

from planner_fixtures import EXAMPLE_CONFIG, example_config

EXAMPLES = EXAMPLE_CONFIG.parent / "tests"
ESCALATOR = str(Path(sys.executable).with_name("escalator"))


def escalator_test(capsys, *args: str):
    capsys.readouterr()
    rc = cli.main(["test", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def broken_config(tmp_path: Path, change) -> Path:
    """The shipped config with one rule changed by ``change(data)``."""
    data: Dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    change(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def scenario(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_scenarios_pass_on_the_shipped_config():
    p = subprocess.run([ESCALATOR, "test", str(EXAMPLES)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["PASS"] * 8
    assert lines[-1] == "8 scenarios: 8 passed, 0 failed"
    assert f"PASS  {EXAMPLES}/02-node-fails.yaml: a node fails - vm, converge, deploy for that node" in lines


def _nodes_to_converge(data):
    # Node checks (PING and host checks) ask for converge instead of a new VM.
    for rule in data["checks"]:
        if rule.get("service") == "PING" or (rule.get("host") == "*" and "service" not in rule):
            rule["level"] = "converge"


def _host_checks_unmapped(data):
    data["checks"] = [r for r in data["checks"] if not (r.get("host") == "*" and "service" not in r)]


def _deploy_once(data):
    data["levels"][5]["max_attempts"] = 1


def _no_debounce(data):
    data["quiescence"] = "0s"


def _act_in_downtime(data):
    data["act_in_downtime"] = True


def _iaas_to_tier(data):
    data["checks"][0]["level"] = "tier"


def _no_rollout(data):
    del data["levels"][4]["rollout"]


@pytest.mark.parametrize("change,failing", [
    (_nodes_to_converge, {"01-nothing-in-place", "02-node-fails", "04-downtime", "06-burst"}),
    (_host_checks_unmapped, {"04-downtime"}),
    (_deploy_once, {"05-exhaustion"}),
    (_no_debounce, {"01-nothing-in-place", "06-burst", "07-rollout", "08-rollout-canary-fails"}),
    (_act_in_downtime, {"04-downtime"}),
    (_iaas_to_tier, {"01-nothing-in-place"}),
    (_no_rollout, {"07-rollout", "08-rollout-canary-fails"}),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_shipped_scenarios_fail_when_a_rule_of_the_config_is_broken(tmp_path, capsys, change, failing):
    rc, out, _ = escalator_test(capsys, "--config", str(broken_config(tmp_path, change)), str(EXAMPLES))
    assert rc == 1
    failed = {Path(line.split()[1].rstrip(":")).stem for line in out.splitlines() if line.startswith("FAIL")}
    assert failed == failing


def test_a_failure_shows_expected_and_actual_runs_side_by_side(tmp_path, capsys):
    rc, out, _ = escalator_test(capsys, "--config", str(broken_config(tmp_path, _nodes_to_converge)),
                                str(EXAMPLES / "02-node-fails.yaml"), str(EXAMPLES / "01-nothing-in-place.yaml"))
    assert rc == 1
    assert out.splitlines() == [
        f"FAIL  {EXAMPLES}/02-node-fails.yaml: a node fails - vm, converge, deploy for that node",
        "      runs: expected 1, got 2 (- expected, + actual)",
        "      - run 1: levels vm, converge, deploy; targets vm: web02; converge: web02; deploy: web02",
        "      + run 1: levels converge, deploy; targets vm: -; converge: web02; deploy: web02 at +31s",
        "      + run 2: levels converge, deploy; targets converge: web02; deploy: web02 at +2m31s",
        f"FAIL  {EXAMPLES}/01-nothing-in-place.yaml: nothing in place - levels 1-6",
        "      runs: 1 as expected, but not the same (- expected, + actual)",
        "      - run 1: levels account, core, tier, vm, converge, deploy; targets account: -; "
        "vm: tier-app, web01; deploy: app, tier-app, web01",
        "      + run 1: levels account, core, tier, vm, converge, deploy; targets account: -; "
        "vm: tier-app; deploy: app, tier-app, web01 at +35s",
        "2 scenarios: 0 passed, 2 failed",
    ]


def test_counts_and_level_mismatches_are_each_reported(tmp_path, capsys):
    s = scenario(tmp_path, f"""
name: wrong on purpose
config: {EXAMPLE_CONFIG}
events:
  - {{at: 0s, host: app, service: Smoke test, state: CRITICAL}}
expect:
  runs:
    - levels: [converge, deploy]
  notifications: 0
  skipped: 2
""")
    rc, out, _ = escalator_test(capsys, str(s))
    assert rc == 1
    assert out.splitlines()[1:] == [
        "      runs: expected 1, got 3 (- expected, + actual)",
        "      - run 1: levels converge, deploy",
        "      + run 1: levels deploy; targets deploy: app at +30s",
        "      + run 2: levels deploy; targets deploy: app at +2m30s",
        "      + run 3: levels deploy; targets deploy: app at +4m30s",
        "      notifications: expected 0, got 1",
        "      skipped: expected 2, got 1",
        "1 scenario: 0 passed, 1 failed",
    ]


def test_until_stops_the_clock_after_the_last_event_and_defaults_apply(tmp_path):
    base = f"""
config: {EXAMPLE_CONFIG}
events:
  - {{at: 1m, host: app, service: Smoke test, state: CRITICAL}}
  - {{at: 0s, host: web09, service: HTTP, state: CRITICAL, state_type: SOFT}}
expect: {{runs: [{{levels: [deploy]}}]}}
"""
    short = load(str(scenario(tmp_path, base.replace("state_type: SOFT", "state_type: soft") + "until: 2m\n",
                              "short.yaml")))    # states in any case, as in a hand-written file
    assert short.events[0][1:] == ("web09", "HTTP", "CRITICAL", "SOFT", 1, 0, "")   # sorted by at
    assert short.events[1][1:] == ("app", "Smoke test", "CRITICAL", "HARD", 1, 0, "")
    assert run(short, example_config()).passed                 # one deploy within 2m of the last event
    whole = run(load(str(scenario(tmp_path, base, "whole.yaml"))), example_config())
    assert not whole.passed and whole.diff[0] == "runs: expected 1, got 3 (- expected, + actual)"


def test_config_is_relative_to_the_scenario_and_the_option_overrides_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "escalator.yaml").write_text(EXAMPLE_CONFIG.read_text())
    (tmp_path / "tests").mkdir()
    s = scenario(tmp_path / "tests", """
config: ../conf/escalator.yaml
events: [{at: 0s, host: app, service: Smoke test, state: CRITICAL}, {at: 1m, host: app, service: Smoke test, state: OK}]
expect: {runs: [{levels: [deploy], targets: {deploy: [app]}}]}
""")
    monkeypatch.chdir("/")
    other = broken_config(tmp_path, lambda d: d["checks"].insert(0, {"service": "Smoke*", "level": "vm"}))
    monkeypatch.setenv("ESCALATOR_CONFIG", str(other))       # the file's config: comes first
    assert escalator_test(capsys, str(s))[0] == 0
    assert escalator_test(capsys, "--config", str(other), str(s))[0] == 1
    capsys.readouterr()
    assert cli.main(["-C", str(other), "test", str(s)]) == 1  # the group's -C too


@pytest.mark.parametrize("text,where", [
    ("events: []\nexpect: {runs: []}\nbogus: 1\n", "s.yaml:3: bogus: unknown key 'bogus'"),
    ("events:\n  - {at: 0s, host: web01, sevice: HTTP, state: CRITICAL}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].sevice: unknown key 'sevice'; did you mean 'service'?"),
    ("events:\n  - {host: web01, state: DOWN}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].at: missing required key 'at'"),
    ("events:\n  - {at: soon, host: web01, state: DOWN}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].at: expected a duration"),
    ("events:\n  - {at: 0s, host: web01, state: BROKEN}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].state: invalid host state 'BROKEN': expected one of UP, DOWN, UNREACHABLE"),
    ("events:\n  - {at: 0s, host: web01, service: HTTP, state: DOWN, state_type: hard}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].state: invalid service state 'DOWN': expected one of OK, WARNING, CRITICAL, UNKNOWN"),
    ("events:\n  - {at: 0s, host: web01, state: DOWN, state_type: FIRM}\nexpect: {runs: []}\n",
     "s.yaml:2: events[0].state_type: invalid state type 'FIRM': expected SOFT or HARD"),
    ("events: []\nexpect:\n  runs:\n    - levels: [vmm]\n",
     "s.yaml:4: expect.runs[0]: no level 'vmm' in"),
    ("events: []\nexpect: {runs: [], approval: 1}\n",
     "s.yaml:2: expect.approval: unknown key 'approval'; did you mean 'approvals'?"),
    ("events: []\n", "s.yaml:1: expect: missing required key 'expect'"),
    ("events: [\nexpect: 1\n", "s.yaml:3: YAML syntax error"),
    ("- just a list\n", "s.yaml:1: expected a scenario"),
])
def test_a_malformed_scenario_exits_2_naming_file_line_and_key(tmp_path, capsys, text, where):
    s = scenario(tmp_path, text)
    rc, out, _ = escalator_test(capsys, "--config", str(EXAMPLE_CONFIG), str(s))
    assert rc == 2
    assert out.splitlines()[0] == f"ERROR {s}"
    assert out.splitlines()[1].startswith(f"      {tmp_path}/{where}"), out


def test_one_malformed_scenario_does_not_stop_the_others_but_the_exit_is_2(tmp_path, capsys):
    scenario(tmp_path, "events: oops\nexpect: {}\n", "a-bad.yaml")
    scenario(tmp_path, f"config: {EXAMPLE_CONFIG}\nevents: []\nexpect: {{runs: []}}\n", "b-good.yaml")
    rc, out, _ = escalator_test(capsys, str(tmp_path))
    assert rc == 2
    assert out.splitlines()[-1] == "2 scenarios: 1 passed, 0 failed, 1 could not run"


def test_bad_usage_exits_2(tmp_path, capsys):
    assert escalator_test(capsys)[0] == 2
    assert escalator_test(capsys, str(tmp_path / "missing.yaml"))[0] == 2
    assert escalator_test(capsys, str(tmp_path))[0] == 2                      # no *.yaml in it
    s = scenario(tmp_path, "events: []\nexpect: {runs: []}\n")
    rc, out, _ = escalator_test(capsys, "--config", str(tmp_path / "nope.yaml"), str(s))
    assert rc == 2 and "cannot read config file" in out


def test_counted_expectations_are_one_table():
    # A new counted expectation (approvals...) is one entry in COUNTS; the loader and diff follow.
    assert set(COUNTS) == {"notifications", "skipped", "approvals", "rollouts_stopped"}


def test_event_states_follow_the_handlers_rules(tmp_path):
    s = load(str(scenario(tmp_path, """
events:
  - {at: 0s, host: web01, state: critical}              # a host check's plugin word: DOWN, as Nagios reads it
  - {at: 1s, host: web01, service: HTTP, state: 2, state_type: 0}
expect: {runs: []}
""")))
    assert [e[1:5] for e in s.events] == [("web01", None, "DOWN", "HARD"), ("web01", "HTTP", "CRITICAL", "SOFT")]
