"""Operator trust, items 5 and 6: only machines that are broken become targets.

UNREACHABLE (a parent is down) makes no target unless ``unreachable: fail``;
a host check's WARNING is UP and its UNKNOWN is DOWN, as Nagios itself
translates them; a rule with ``target: false`` asks for its level without
making its host a target.  Driven through escalator-handler and the escalator
CLI only.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from collector_fixtures import ESCALATOR, Site
from planner_fixtures import EXAMPLE_CONFIG, EXAMPLE_LOG

LEVELS = [{"name": "vm", "steps": [{"shell": "echo create {host}", "foreach": "host"}]},
          {"name": "deploy", "steps": [{"shell": "echo deploy"}]}]
RULES = [{"host": "*", "level": "vm"}, {"service": "Smoke*", "level": "deploy"}]


def plan(site: Site, *args: str) -> subprocess.CompletedProcess:
    r = site.cli("plan", "--config", str(site.config), *args)
    assert r.returncode == 0, r.stderr
    return r


def test_unreachable_hosts_behind_a_dead_switch_are_no_targets(site: Site) -> None:
    site.write_config(LEVELS, RULES)
    site.event("switch-1", "DOWN")
    for h in ("web-01", "web-02", "web-03", "web-04"):
        site.event(h, "UNREACHABLE")
        site.event(h, "CRITICAL", service="HTTP")  # its services fail too: same cause
    out = json.loads(plan(site, "--json").stdout)
    assert out["targets"] == {"vm": ["switch-1"], "deploy": ["switch-1"]}, out
    text = plan(site, "--explain").stdout
    web3 = [" ".join(line.split()) for line in text.splitlines() if line.startswith("  web-03 ")]
    assert web3 and web3[0].startswith("web-03 UNREACHABLE HARD unreachable web-03 is UNREACHABLE"), text
    status = site.cli("status", "--config", str(site.config), "--json")
    assert json.loads(status.stdout)["unreachable"] == [
        f"web-0{i}{s}" for i in range(1, 5) for s in ("", "/HTTP")], status.stdout
    assert "unreachable (a parent is down" in site.cli("status", "--config", str(site.config)).stdout


def test_unreachable_fail_makes_them_targets_again(site: Site) -> None:
    site.write_config(LEVELS, RULES, unreachable="fail")
    for h in ("web-01", "web-02"):
        site.event(h, "UNREACHABLE")
    out = json.loads(plan(site, "--json").stdout)
    assert out["targets"]["vm"] == ["web-01", "web-02"]


def test_unreachable_alone_runs_nothing_and_recovery_is_seen(site: Site) -> None:
    site.write_config(LEVELS, RULES)
    site.event("web-01", "UNREACHABLE")
    assert "nothing would run" in plan(site).stdout
    site.event("web-01", "DOWN")  # the parent came back, the host itself is down
    assert json.loads(plan(site, "--json").stdout)["targets"]["vm"] == ["web-01"]


def test_host_warning_is_up_and_host_unknown_is_down_as_in_nagios(site: Site) -> None:
    site.write_config(LEVELS, RULES)
    site.event("web-01", "WARNING")
    site.event("web-02", "UNKNOWN")
    out = json.loads(plan(site, "--json").stdout)
    assert out["targets"]["vm"] == ["web-02"], out
    recs = [json.loads(line) for line in (site.spool / "events.jsonl").read_text().splitlines()]
    assert [(r["host"], r["state"], r["reported_state"]) for r in recs] == [
        ("web-01", "UP", "WARNING"), ("web-02", "DOWN", "UNKNOWN")]


def test_target_false_asks_for_the_level_without_making_a_target(site: Site) -> None:
    site.write_config(LEVELS, [{"host": "api", "service": "IaaS API", "level": "vm", "target": False},
                               *RULES])
    site.event("api", "CRITICAL", service="IaaS API")
    out = json.loads(plan(site, "--json").stdout)
    assert out["levels"] == ["vm", "deploy"] and out["targets"] == {"vm": [], "deploy": []}, out
    assert out["checks"][0]["target"] is False
    assert "(its rule says target: false: api itself is no target)" in plan(site, "--explain").stdout


def test_bundled_outage_never_creates_or_converges_the_iaas_api(tmp_path: Path) -> None:
    r = subprocess.run([ESCALATOR, "replay", str(EXAMPLE_LOG), "--config", str(EXAMPLE_CONFIG), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    steps = [s for s in recs if s["kind"] == "step" and s["level"] != "notify"]  # a page may name it
    assert steps and not [s for s in steps if s.get("host") == "iaas-api" or "iaas-api" in s.get("command", "")]
    full = [s for s in recs if s["kind"] == "start" and s["levels"][0] == "account"]
    assert full and full[0]["targets"]["vm"] == ["web02"]
