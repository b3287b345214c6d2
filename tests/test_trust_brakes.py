"""Operator trust, items 2 and 7: the brake works with a broken config; events never sit unseen.

Driven through the escalator CLI, escalator-handler and check_escalator as
subprocesses only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from collector_fixtures import BIN, HANDLER, Site, handler_env

LEVELS = [{"name": "vm", "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]}]
RULES = [{"host": "*", "level": "vm"}]


def setup(site: Site) -> None:
    site.write_config(json.loads(json.dumps(LEVELS).replace("OUT", str(site.out))), RULES)


def cli(site: Site, *args: str, env=None):
    return site.cli(*args, "--config", str(site.config), env=env)


def break_config(site: Site) -> None:
    text = site.config.read_text().replace("level: vm", "level: vmm")  # an unknown level name
    site.config.write_text(text)


def test_pause_hold_status_work_with_an_invalid_config_and_the_daemon_obeys(site: Site) -> None:
    setup(site)
    proc = site.start()
    site.wait_ready(proc)
    break_config(site)
    os.kill(proc.pid, signal.SIGHUP)  # the daemon rejects the edit and keeps its last good config
    site.wait_records("config", where=lambda r: r.get("outcome") == "rejected")
    r = cli(site, "pause", "--reason", "3am brake")
    assert r.returncode == 0, r.stderr
    assert "is not a valid config" in r.stderr and "unknown level 'vmm'" in r.stderr
    site.wait_records("pause")
    r = cli(site, "hold", "--host", "db-*")
    assert r.returncode == 0, r.stderr
    site.event("web-01", "DOWN")
    site.wait_records("run", where=lambda r: r.get("outcome") == "skipped")  # paused: recorded, not run
    status = cli(site, "status")
    assert status.returncode == 0, status.stderr
    assert "PAUSED: 3am brake" in status.stdout and "held:        db-*" in status.stdout
    assert "is INVALID" in status.stdout and "the running collector obeys the version it loaded" in status.stdout
    check = subprocess.run([str(BIN / "check_escalator"), "--config", str(site.config)],
                           capture_output=True, text=True, timeout=30, env=handler_env())
    assert check.returncode == 1 and "on its last good config" in check.stdout, check.stdout
    assert cli(site, "resume").returncode == 0
    site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    assert set(site.lines("vm")) == {"web-01"}


def test_an_unreadable_config_still_reaches_the_collector_with_spool_and_journal_options(site: Site) -> None:
    setup(site)
    assert cli(site, "pause").returncode == 0
    site.config.write_text("levels: [unclosed\n")
    r = site.cli("resume", "--config", str(site.config), "--spool", str(site.spool),
                 "--journal", str(site.journal))
    assert r.returncode == 0, r.stderr
    assert "active" in site.cli("status", "--config", str(site.config), "--spool", str(site.spool),
                                "--journal", str(site.journal)).stdout
    r = cli(site, "status")  # without them there is no way to know where to look
    assert r.returncode == 2 and "YAML syntax error" in r.stderr


def test_status_says_when_the_file_on_disk_is_not_what_the_collector_runs(site: Site) -> None:
    setup(site)
    proc = site.start()
    site.wait_ready(proc)
    assert "differs" not in json.dumps(json.loads(cli(site, "status", "--json").stdout)["config"]["differs"])
    site.write_config(json.loads(json.dumps(LEVELS).replace("OUT", str(site.out))), RULES, quiescence=2)
    out = json.loads(cli(site, "status", "--json").stdout)["config"]
    assert out["valid"] is True and out["differs"] is True


def test_handler_refuses_to_leave_an_event_where_no_collector_looks(site: Site, tmp_path: Path) -> None:
    setup(site)
    other = tmp_path / "other-spool"
    r = subprocess.run([HANDLER, "--spool", str(other), "--host", "h", "--state", "DOWN",
                        "--spawn-collector", "--config", str(site.config)],
                       capture_output=True, text=True, timeout=30, env=handler_env())
    assert r.returncode == 1 and f"reads spool {site.spool}" in r.stderr, r.stderr
    assert "would never see this event" in r.stderr
    assert (other / "events.jsonl").read_text().count('"host":"h"') == 1  # still recorded
    r = subprocess.run([HANDLER, "--spool", str(site.spool), "--host", "h", "--state", "DOWN",
                        "--spawn-collector", "--config", "/nonexistent.yaml"],
                       capture_output=True, text=True, timeout=30, env=handler_env())
    assert r.returncode == 1 and "/nonexistent.yaml" in r.stderr and "cannot be read" in r.stderr


def test_escalator_spool_means_the_same_to_every_command(site: Site, tmp_path: Path) -> None:
    setup(site)
    elsewhere = tmp_path / "env-spool"
    env = {"ESCALATOR_SPOOL": str(elsewhere)}
    r = subprocess.run([HANDLER, "--host", "web-07", "--state", "DOWN"], capture_output=True, text=True,
                       timeout=30, env=handler_env(env))
    assert r.returncode == 0, r.stderr
    status = json.loads(cli(site, "status", "--json", env=env).stdout)
    assert status["spool"]["pending"] == 1
    proc = subprocess.run([str(BIN / "escalator"), "collect", "--config", str(site.config)],
                          capture_output=True, text=True, timeout=60, env=handler_env(env))
    assert proc.returncode == 0, proc.stderr
    assert set(site.lines("vm")) == {"web-07"}


def test_status_and_check_escalator_fail_on_a_spool_and_journal_that_do_not_exist(site: Site) -> None:
    setup(site)  # nothing has ever used these paths
    r = cli(site, "status")
    assert r.returncode == 1 and "does not exist" in r.stderr, (r.stdout, r.stderr)
    check = subprocess.run([str(BIN / "check_escalator"), "--config", str(site.config)],
                           capture_output=True, text=True, timeout=30, env=handler_env())
    assert check.returncode == 2 and check.stdout.startswith("ESCALATOR CRITICAL - spool directory")
