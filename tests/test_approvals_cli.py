"""`escalator approve` / `deny` and approval timeouts, end to end: real handler, real
collector (started detached by the handler, as Nagios would), the installed console script."""

from __future__ import annotations

import json

import pytest

from collector_fixtures import Site, runs, wait_for
from test_cli import CHECKS, levels

pytestmark = pytest.mark.integration


def gated(site: Site, timeout: str = "10m") -> str:
    lv = levels(site)
    lv[0]["approval"] = {"timeout": timeout}     # vm: the drastic one
    return str(site.write_config(lv, CHECKS, notify=[
        {"shell": f"printf '%s\\n' {{summary}} >> {site.out}/notify.txt"}]))


def ask(site: Site) -> dict:
    """web1 DOWN through the handler; the request the collector journals."""
    site.event("web1", "DOWN", spawn=True)
    return site.wait_records("approval", where=lambda r: r.get("outcome") == "requested")[0]


def test_approve_lets_the_waiting_run_start_and_is_journalled_with_who_and_why(site: Site) -> None:
    cfg = gated(site)
    req = ask(site)
    rid = req["approval"]
    wait_for(lambda: site.lines("notify.txt"), 10)
    [note] = site.lines("notify.txt")
    assert f"escalator approve {rid}" in note and "levels vm, converge, deploy for web1" in note

    r = site.cli("status", "--json", "--config", cfg)
    assert r.returncode == 0, r.stderr
    [a] = json.loads(r.stdout)["approvals"]
    assert a["id"] == rid and a["levels"] == ["vm", "converge", "deploy"]
    assert a["targets"]["vm"] == ["web1"] and a["checks"][0]["host"] == "web1"
    assert a["expires"] - a["asked"] == 600
    text = site.cli("status", "--config", cfg).stdout
    assert f"approval:    {rid}: levels vm, converge, deploy for web1" in text
    assert "waiting for approval" in text
    assert not site.lines("vm.txt")                      # nothing ran while it waited

    r = site.cli("approve", rid, "--reason", "go ahead", "--config", cfg, env={"USER": "alice"})
    assert r.returncode == 0, r.stderr
    run = site.wait_records("run", where=lambda r: r.get("outcome") == "ok")[0]
    assert run["approval"] == rid and run["levels"] == ["vm", "converge", "deploy"]
    assert site.lines("vm.txt") == ["vm web1"]
    [ok] = site.records("approve")
    assert (ok["approval"], ok["user"], ok["reason"]) == (rid, "alice", "go ahead")

    again = site.cli("approve", rid, "--config", cfg)
    assert again.returncode == 2 and "is not open" in again.stderr and "Traceback" not in again.stderr


def test_deny_skips_the_run_and_holds_its_start_level(site: Site) -> None:
    cfg = gated(site)
    rid = ask(site)["approval"]
    r = site.cli("deny", rid, "--reason", "I am fixing it by hand", "--config", cfg, env={"USER": "bob"})
    assert r.returncode == 0, r.stderr
    [no] = site.wait_records("deny")
    assert (no["approval"], no["user"], no["reason"]) == (rid, "bob", "I am fixing it by hand")
    wait_for(lambda: site.collector_pid() is None, 15)   # nothing left to wait for: it exits
    assert not site.lines("vm.txt") and runs(site.records(), "ok") == []
    status = json.loads(site.cli("status", "--json", "--config", cfg).stdout)
    assert status["approvals"] == []
    assert status["held_levels"] == {"vm": "run denied by bob (I am fixing it by hand)"}


def test_unanswered_approval_times_out_denied_and_notified_never_run(site: Site) -> None:
    cfg = gated(site, timeout="2s")
    rid = ask(site)["approval"]
    [no] = site.wait_records("deny", timeout=20)
    assert no["approval"] == rid and no["user"] == "escalator" and no["timeout"] is True
    wait_for(lambda: any("timed out" in line for line in site.lines("notify.txt")), 10)
    wait_for(lambda: site.collector_pid() is None, 15)
    assert not site.lines("vm.txt")
    late = site.cli("approve", rid, "--config", cfg)
    assert late.returncode == 2 and f"approval '{rid}' is not open" in late.stderr


def test_answering_an_unknown_approval_is_a_clean_usage_error(site: Site) -> None:
    cfg = gated(site)
    for verb in ("approve", "deny"):
        r = site.cli(verb, "nosuch1", "--config", cfg)
        assert r.returncode == 2
        assert r.stderr == "Error: approval 'nosuch1' is not open (answered, withdrawn, timed out or unknown); " \
                           "open requests: none\n"
    assert site.records("approve") == [] and site.records("deny") == []
