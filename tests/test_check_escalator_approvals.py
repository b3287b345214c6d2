"""check_escalator and runs waiting for a person's approval (levels with ``approval:``).

As in test_check_escalator: the state is built by the project's own code (a
config whose vm level needs approval, a failing check spooled as the handler
does, a collector pass -- in-process at a chosen clock or a real daemon --
that journals the request, ``escalator approve|deny`` from the command line),
then the installed ``check_escalator`` runs as Nagios runs it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from escalator_handlers import storage
from escalator_handlers.config import Config, load_config
from escalator_handlers.control import control
from escalator_handlers.plugins.health import contexts
from escalator_handlers.plugins.health_facts import ApprovalFacts, Waiting
from test_check_escalator import BIN, assert_line, check, collect_at, daemon, journal_runs, make_config, \
    spool_event, wait_for  # noqa: F401 (daemon: a fixture)

pytestmark = pytest.mark.integration

PERF = ("backlog=0;;;0 oldest_age=0s;120;600;0 runs_last_hour=0;;;0;6 failing=1;;;0 quiescence_left=0s;;;0 "
        "approvals_waiting={n};;;0 approval_age={age}s;;;0")


def gated(root: Path, **kw) -> Config:
    """The test site's config with ``approval: {timeout: 30m}`` on level vm."""
    cfg = make_config(root, **kw)
    path = Path(cfg.source)
    path.write_text(path.read_text().replace("  - name: vm\n", "  - name: vm\n    approval: {timeout: 30m}\n", 1))
    return load_config(str(path))


def requested(cfg: Config) -> dict:
    [req] = [r for r in storage.recent(cfg, ("approval",)) if r.get("outcome") == "requested"]
    return req


def escalator(cfg: Config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "escalator"), *args, "--config", cfg.source], cwd="/",
                          capture_output=True, text=True, timeout=60)


def asked_5m_ago(tmp_path: Path) -> tuple:
    """A request journalled by a collector pass 5 minutes ago (times out in 25m); no collector now."""
    cfg = gated(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "PING", "CRITICAL", now - 400)
    collect_at(cfg, now - 300)
    return cfg, requested(cfg)["approval"]


@pytest.mark.slow
def test_run_waiting_for_approval_is_warning_until_a_person_approves(tmp_path, daemon):
    cfg = gated(tmp_path, quiet="0.2s")
    proc = daemon(cfg)
    spool_event(cfg, "web01", "PING", "CRITICAL", time.time())
    wait_for(lambda: [r for r in storage.recent(cfg, ("approval",)) if r.get("outcome") == "requested"])
    rid = requested(cfg)["approval"]
    done = check(cfg, "-v")
    out = done.stdout.splitlines()
    assert_line(out[0], f"ESCALATOR WARNING - 1 run waiting for approval: {rid} (levels vm, deploy) asked ~0s ago, "
                        f"times out in 30m, collector running (pid {proc.pid}), 0 pending, 1 failing check "
                        "(level vm), no runs yet | " + PERF.format(n=1, age="~0"))
    assert done.returncode == 1
    [line] = [x for x in out if x.startswith("approval: ")]
    assert_line(line, f"approval: {rid} waiting ~0s: levels vm, deploy for web01; times out in 30m "
                      f"({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(requested(cfg)['expires']))}), "
                      f"then denied; answer with `escalator approve {rid}` or `escalator deny {rid}`")

    assert escalator(cfg, "approve", rid, "--reason", "go").returncode == 0
    wait_for(lambda: journal_runs(cfg))
    done = check(cfg, "-v")
    assert "approval" not in done.stdout.split(" | ")[0], done.stdout
    assert " approvals_waiting=0;;;0 approval_age=0s;;;0" in done.stdout.splitlines()[0]
    assert not [x for x in done.stdout.splitlines() if x.startswith("approval: ")]
    assert done.returncode == 0, done.stdout


def test_request_asked_by_a_past_collector_pass_names_id_levels_and_timeout(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    done = check(cfg)
    # No collector: the planner's wake-up for the timeout is work nobody waits for (its own WARNING).
    assert_line(done.stdout.rstrip("\n"),
                f"ESCALATOR WARNING - collector not running with work due in 25m, 1 run waiting for approval: "
                f"{rid} (levels vm, deploy) asked 5m ago, times out in 25m, 0 pending, 1 failing check "
                "(level vm), no runs yet | " + PERF.format(n=1, age="~300"))
    assert done.returncode == 1


def test_approval_critical_range_on_the_oldest_wait(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    done = check(cfg, "--approval-critical", "240")
    assert_line(done.stdout.rstrip("\n"),
                "ESCALATOR CRITICAL - approval_age ~300s (outside range 0:240), collector not running with work "
                f"due in 25m, 1 run waiting for approval: {rid} (levels vm, deploy) asked 5m ago, times out in 25m, "
                "0 pending, 1 failing check (level vm), no runs yet | "
                + PERF.format(n=1, age="~300").replace("approval_age=~300s;;;0", "approval_age=~300s;;240;0"))
    assert done.returncode == 2
    assert check(cfg, "--approval-critical", "900").returncode == 1
    bad = check(cfg, "--approval-critical", "soon")
    assert bad.returncode == 3 and bad.stdout.startswith("ESCALATOR UNKNOWN - "), bad.stdout


def test_denied_request_no_longer_waits_and_its_level_is_held(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    assert escalator(cfg, "deny", rid, "--reason", "I am on it").returncode == 0
    done = check(cfg, "-v")   # the denial is still in the spool: read as the collector will fold it
    first = done.stdout.splitlines()[0]
    assert "waiting for approval" not in first and " approvals_waiting=0;;;0 approval_age=0s;;;0" in first
    assert "level vm held: run denied by " in first, first
    assert not [x for x in done.stdout.splitlines() if x.startswith("approval: ")]
    assert done.returncode == 1


def test_approved_request_no_longer_waits_for_a_person(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    # Paused, so that the collector `approve` starts cannot run it before the check looks.
    control(cfg, {"kind": "pause", "time": time.time(), "user": "test", "reason": "change window"})
    assert escalator(cfg, "approve", rid).returncode == 0
    done = check(cfg, "-v")
    first = done.stdout.splitlines()[0]
    assert first.startswith("ESCALATOR WARNING - paused: change window, ") and "waiting for approval" not in first
    assert " approvals_waiting=0;;;0 approval_age=0s;;;0" in first, first
    [line] = [x for x in done.stdout.splitlines() if x.startswith("approval: ")]
    assert line.startswith(f"approval: {rid} approved by ") and line.endswith(
        ": levels vm, deploy for web01 (the collector starts it)"), line


def test_timed_out_request_no_longer_warns(tmp_path):
    cfg = gated(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "PING", "CRITICAL", now - 2100)
    collect_at(cfg, now - 2000)                  # asked; expired at now - 200
    done = check(cfg, "-v")
    first = done.stdout.splitlines()[0]
    # Nobody can usefully answer now: the collector that is not there must deny it (CRITICAL).
    assert first.startswith("ESCALATOR CRITICAL - collector not running with work due now"), first
    assert "waiting for approval" not in first and " approvals_waiting=0;;;0 approval_age=0s;;;0" in first
    rid = requested(cfg)["approval"]
    assert any(x.startswith(f"approval: {rid} timed out ") for x in done.stdout.splitlines()), done.stdout
    collect_at(cfg, now - 100)                   # the collector denies it by timeout
    [deny] = storage.recent(cfg, ("deny",))
    assert deny["timeout"] and deny["approval"] == rid
    done = check(cfg, "-v")
    assert_line(done.stdout.rstrip("\n").splitlines()[0],
                "ESCALATOR WARNING - level vm held: run denied by escalator (no answer within 30m), idle, "
                "0 pending, 1 failing check (level vm), no recent runs | " + PERF.format(n=0, age=0))
    assert not [x for x in done.stdout.splitlines() if x.startswith("approval: ")]


def test_invalid_config_still_reports_the_wait(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    path = Path(cfg.source)
    path.write_text(path.read_text() + "bogus_key: 1\n")
    done = check(cfg)
    first = done.stdout.splitlines()[0]
    assert first.startswith("ESCALATOR WARNING - collector not running; config "), first
    assert f", 1 run waiting for approval: {rid} (levels vm, deploy) asked 5m ago, times out in 25m, " in first
    assert " approvals_waiting=1;;;0 approval_age=" in first
    assert done.returncode == 1


def test_status_json_and_check_escalator_agree(tmp_path):
    cfg, rid = asked_5m_ago(tmp_path)
    rep = json.loads(escalator(cfg, "status", "--json").stdout)
    assert [a["id"] for a in rep["approvals"]] == [rid]
    assert f"1 run waiting for approval: {rid} " in check(cfg).stdout


def test_several_waiting_name_the_oldest_and_count_the_rest():
    # The planner keeps one open request per run it needs; a cluster's journal may hold more.
    now = 1_000_000.0
    waits = ApprovalFacts(tuple(Waiting(f"id{i}", ("vm", "deploy"), ("web0%d" % i,), 600.0 - i * 60,
                                        1200.0 + i * 60, now + 1200 + i * 60) for i in range(3)))
    approvals = next(c for c in contexts((None, None), (None, None)) if c.name == "approvals")
    state, text = approvals.judge(waits)
    assert str(state) == "warning"
    assert text == ("3 runs waiting for approval: id0 (levels vm, deploy) asked 10m ago, times out in 20m, "
                    "and 2 more")
