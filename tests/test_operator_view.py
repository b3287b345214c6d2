"""The operator's view during an incident: what is running, what ran, how times and names read.

Everything here goes through the installed console scripts (``escalator``,
``escalator-handler``, ``check_escalator``) as subprocesses, and asserts what
a person or a tool sees: text lines, JSON fields, exit codes.  Collectors are
real processes; the ``site`` fixture reaps them and their steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from collector_fixtures import ESCALATOR, HANDLER, Site, handler_env, wait_for

pytestmark = pytest.mark.integration

BIN = Path(ESCALATOR).parent
REPO = Path(__file__).resolve().parent.parent
EXAMPLE_LOG = REPO / "nagios-conf" / "examples" / "outage.log"
EXAMPLE_CONFIG = REPO / "nagios-conf" / "examples" / "escalator.yaml"


def slow_site(site: Site) -> None:
    """vm (a 30 s step per host, recording its pid) then deploy."""
    site.write_config(
        [{"name": "vm", "quiescence": 60,
          "steps": [{"shell": f"echo $$ > {site.out}/vm-{{host}}.pid; exec sleep 30", "foreach": "host"}]},
         {"name": "deploy", "steps": [{"shell": "true"}]}],
        [{"host": "*", "level": "vm"}])


def esc(site: Site, *args: str) -> subprocess.CompletedProcess:
    r = site.cli(*args)
    assert "Traceback" not in r.stderr
    return r


def test_status_shows_the_run_in_progress_its_step_host_and_how_long(site: Site) -> None:
    slow_site(site)
    site.event("web-01", "DOWN", spawn=True)
    wait_for(lambda: (site.out / "vm-web-01.pid").exists(), 15)
    r = esc(site, "status", "--json", "--config", str(site.config))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    run = rep["running"]
    assert run["levels"] == ["vm", "deploy"] and run["targets"] == {"vm": ["web-01"], "deploy": ["web-01"]}
    assert run["step"]["level"] == "vm" and run["step"]["index"] == 0 and run["step"]["host"] == "web-01"
    assert 0 <= rep["time"] - run["started"] < 30 and run["collector_alive"] is True
    assert rep["paths"] == {"config": str(site.config), "spool": str(site.spool), "journal": str(site.journal),
                            "state": str(site.root / "state.json")}
    assert rep["next"]["why"] == "run in progress" and rep["next"]["run"] is None

    text = esc(site, "-C", str(site.config), "status").stdout  # -C before the subcommand too
    assert "running:     run of levels vm, deploy since 20" in text
    assert "  step:      level vm step 1 (levels[0].steps[0]) on web-01 for " in text
    assert f"config:      {site.config}" in text and f"journal:     {site.journal}" in text

    plugin = subprocess.run([str(BIN / "check_escalator"), "--config", str(site.config)],
                            capture_output=True, text=True, env=handler_env())
    assert "run of levels vm, deploy running for" in plugin.stdout and "no runs yet" not in plugin.stdout

    # The collector dies (SIGKILL); its step runs on, orphaned: still shown, and said so.
    os.kill(site.collector_pid(), signal.SIGKILL)
    wait_for(lambda: site.collector_pid() is None, 10)
    rep = json.loads(esc(site, "status", "--json", "--config", str(site.config)).stdout)
    assert rep["running"]["collector_alive"] is False and rep["running"]["step"]["host"] == "web-01"
    text = esc(site, "status", "--config", str(site.config)).stdout
    assert "its collector is NOT running" in text
    plugin = subprocess.run([str(BIN / "check_escalator"), "--config", str(site.config)],
                            capture_output=True, text=True, env=handler_env())
    assert "no runs yet" not in plugin.stdout and "its collector is gone" in plugin.stdout


def test_idle_status_json_has_running_null_and_english_counts(site: Site) -> None:
    site.write_config([{"name": "vm", "steps": [{"shell": "true"}]}], [{"host": "*", "level": "vm"}])
    site.event("web-01", "DOWN")
    rep = json.loads(esc(site, "status", "--json", "--config", str(site.config)).stdout)
    assert rep["running"] is None
    text = esc(site, "status", "--config", str(site.config)).stdout
    assert "failing:     1 check, required level vm" in text and "check(s)" not in text


def test_status_columns_stay_aligned_and_bad_bytes_show_as_x_escapes(site: Site) -> None:
    site.write_config([{"name": "vm", "steps": [{"shell": "true"}]}], [{"host": "*", "level": "vm"}])
    long = "web-" + "x" * 60 + ".example.com"
    site.event(long, "DOWN")
    site.event("db1", "DOWN")
    r = subprocess.run([HANDLER, "--spool", str(site.spool), "--host", b"caf\xff", "--state", "DOWN"],
                       env=handler_env(), capture_output=True)
    assert r.returncode == 0, r.stderr
    text = esc(site, "status", "--config", str(site.config)).stdout
    rows = [line for line in text.splitlines() if "-> vm" in line]
    assert len(rows) == 3 and len({line.index("DOWN") for line in rows}) == 1, rows
    assert "caf\\xff" in text and "udcff" not in text


def test_handler_time_takes_iso_8601_or_epoch(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    for t in ("2026-11-24T06:00:00Z", "2026-11-24T07:00:00+01:00", "1795500000"):
        r = subprocess.run([HANDLER, "--spool", str(spool), "--host", "a", "--state", "DOWN", "--time", t],
                           env=handler_env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    times = [json.loads(line)["time"] for line in (spool / "events.jsonl").read_text().splitlines()]
    assert times == [1795500000.0] * 3


def test_replay_since_until_count_only_their_window_and_vv_lists_unparsed_lines() -> None:
    def replay(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ESCALATOR, "replay", str(EXAMPLE_LOG), "-C", str(EXAMPLE_CONFIG), *args],
                              capture_output=True, text=True, env=handler_env())

    whole = replay()
    assert whole.stderr.startswith("replayed 40 events from 45 lines")
    assert "1 unparsed (-vv lists them)" in whole.stderr and "outage.log:45" not in whole.stderr
    until = replay("--until", "2026-11-24T06:30:00Z")
    assert until.stderr.startswith("replayed 30 events") and "10 later events after --until" in until.stderr
    assert all(line[:20] <= "2026-11-24T06:30:00Z" for line in until.stdout.splitlines() if line[:1] == "2")
    since = replay("--since", "1795501800")  # epoch for 06:30:00Z
    assert since.stderr.startswith("replayed 10 events") and "30 earlier events as the starting state" in since.stderr
    first = since.stdout.splitlines()[0]
    assert first[:20] >= "2026-11-24T06:30:00Z", first
    v = replay("-v")
    assert "outage.log:45" not in v.stderr and "db01/PostgreSQL CRITICAL HARD 1 (in downtime)" in v.stdout
    vv = replay("-vv")
    assert f"unparsed lines: {EXAMPLE_LOG}:45" in vv.stderr
    bad = replay("--since", "yesterday")
    assert bad.returncode == 2 and "Invalid value for '--since'" in bad.stderr and "ISO 8601" in bad.stderr


def test_route_names_the_rule_its_line_and_the_level() -> None:
    def route(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ESCALATOR, "route", *args, "-C", str(EXAMPLE_CONFIG)],
                              capture_output=True, text=True, env=handler_env())

    r = route("web01", "HTTP")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == [
        f"web01/HTTP CRITICAL: rule 5 ({EXAMPLE_CONFIG}:51: {{host: *, service: HTTP}})",
        "  asks for level 5 (converge): run converge, deploy"]
    j = json.loads(route("web01", "--json").stdout)
    assert (j["state"], j["rule"], j["level"], j["run"]) == ("DOWN", 4, "vm", ["vm", "converge", "deploy"])
    assert "no rule matches: unmapped" in route("web02", "Disk /var", "--state", "warning").stdout
    assert "not a problem state" in route("web01", "HTTP", "--state", "OK").stdout
    assert "asks for nothing and is no target" in route("web01", "--state", "UNREACHABLE").stdout
    j = json.loads(route("iaas-api", "IaaS API", "--json").stdout)
    assert (j["level"], j["target"], j["pattern"]["target"]) == ("account", False, False)
    bad = route("web01", "--state", "PURPLE")
    assert bad.returncode == 2 and "invalid host state 'PURPLE'" in bad.stderr


def test_plan_explain_accounts_for_every_check_that_is_not_ok(site: Site) -> None:
    site.write_config([{"name": "vm", "steps": [{"shell": "true"}]},
                       {"name": "deploy", "quiescence": 120, "steps": [{"shell": "true"}]}],
                      [{"host": "*", "level": "vm"}, {"service": "Smoke*", "level": "deploy"}], quiescence=600)
    cfg = str(site.config)
    site.event("web-01", "DOWN")
    site.event("web-02", "CRITICAL", "Smoke test", state_type="SOFT", attempt=2)
    site.event("db-01", "CRITICAL", "Backup")                                  # unmapped
    r = subprocess.run([HANDLER, "--spool", str(site.spool), "--host", "web-03", "--state", "DOWN",
                        "--downtime", "1"], env=handler_env(), capture_output=True)
    assert r.returncode == 0
    site.event("sw-07", "UNREACHABLE")                                         # a parent is down
    out = esc(site, "plan", "--explain", "-C", cfg).stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "->" not in line}
    assert "waits" in rows["web-01"] and "asks for level vm (1): waiting for quiet" in rows["web-01"]
    assert "soft" in rows["web-02/Smoke"] and "only HARD states count" in rows["web-02/Smoke"]
    assert "unmapped" in rows["db-01/Backup"]
    assert "downtime" in rows["web-03"] and "in scheduled downtime" in rows["web-03"]
    assert "unreachable" in rows["sw-07"] and "asks for nothing, no target" in rows["sw-07"]

    assert esc(site, "pause", "--reason", "change window", "-C", cfg).returncode == 0
    j = json.loads(esc(site, "plan", "--explain", "--json", "-C", cfg).stdout)
    by = {e["check"]: e for e in j["accounting"]}
    assert set(by) == {"web-01", "web-02/Smoke test", "db-01/Backup", "web-03", "sw-07"}
    assert by["web-01"]["status"] == "paused" and "paused by operator: change window" in by["web-01"]["why"]
    assert by["web-02/Smoke test"]["status"] == "soft" and by["web-03"]["status"] == "downtime"

    assert esc(site, "resume", "-C", cfg).returncode == 0
    assert esc(site, "hold", "--host", "web-0*", "--for", "2h", "--reason", "disk swap", "-C", cfg).returncode == 0
    j = json.loads(esc(site, "plan", "--explain", "--json", "-C", cfg).stdout)
    web1 = [e for e in j["accounting"] if e["check"] == "web-01"][0]
    assert web1["status"] == "held" and "but held by " in web1["why"] and " until 20" in web1["why"]
    assert web1["why"].endswith("(escalator hold web-0*): disk swap")


def test_history_shows_runs_steps_verdicts_and_operator_records_across_rotated_journals(site: Site) -> None:
    import gzip

    site.write_config([{"name": "vm", "quiescence": 0.3, "steps": [
        {"shell": f"echo rebuilt {{host}}; {HANDLER} --spool {site.spool} --host {{host}} --state UP",
         "foreach": "host"}]}], [{"host": "*", "level": "vm"}])
    cfg = str(site.config)
    site.event("web-01", "DOWN", spawn=True)
    site.wait_records("verdict")
    wait_for(lambda: site.collector_pid() is None, 15)
    # logrotate with compress: the old journal becomes journal.jsonl.1.gz
    with open(site.journal, "rb") as src, gzip.open(str(site.journal) + ".1.gz", "wb") as dst:
        dst.write(src.read())
    site.journal.unlink()
    assert esc(site, "pause", "--reason", "change window", "-C", cfg).returncode == 0

    text = esc(site, "history", "-C", cfg).stdout
    lines = text.splitlines()
    assert lines[0].endswith("RUN  levels vm  [targets vm: web-01]"), lines[0]
    assert "asked by web-01 DOWN -> vm" in lines[1]
    assert "step vm levels[0].steps[0] on web-01: exit 0 in " in lines[2] and lines[2].endswith(": rebuilt web-01")
    assert ": ok; verdict 20" in lines[3] and lines[3].endswith(": converged")
    assert "  PAUSE by " in lines[4] and lines[4].endswith(": change window")
    js = [json.loads(line) for line in esc(site, "history", "--json", "-C", cfg).stdout.splitlines()]
    assert [e["kind"] for e in js] == ["run", "pause"]
    assert js[0]["outcome"] == "ok" and js[0]["verdict"]["converged"] is True
    assert js[0]["steps"][0]["host"] == "web-01" and js[0]["steps"][0]["exit"] == 0
    assert [e["kind"] for e in map(json.loads, esc(site, "history", "--json", "--host", "web-0*", "-C", cfg)
                                   .stdout.splitlines())] == ["run"]
    assert esc(site, "history", "--host", "db*", "-C", cfg).stdout == ""
    assert esc(site, "history", "--since", "2100-01-01T00:00:00Z", "-C", cfg).stdout == ""
    until = esc(site, "history", "--json", "--until", str(js[0]["time"]), "-C", cfg).stdout.splitlines()
    assert len(until) == 1
    bad = site.cli("history", "--level", "nope", "-C", cfg)
    assert bad.returncode == 2 and "no level 'nope'" in bad.stderr


def test_collect_logs_one_line_per_decision_and_dry_run_executes_nothing(site: Site) -> None:
    site.write_config([{"name": "vm", "quiescence": 0.2, "max_attempts": 1,
                        "steps": [{"shell": f"echo vm {{host}} >> {site.out}/vm.txt", "foreach": "host"}]}],
                      [{"host": "*", "level": "vm"}],
                      notify=[{"shell": f"echo paged >> {site.out}/notify.txt"}])
    cfg = str(site.config)

    def collect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ESCALATOR, "collect", "-C", cfg, *args], capture_output=True, text=True,
                              env=handler_env(), timeout=60)

    site.event("web-01", "DOWN")
    shadow = collect("--dry-run")
    assert shadow.returncode == 0, shadow.stderr
    assert not (site.out / "vm.txt").exists() and not (site.out / "notify.txt").exists()
    start = site.records("start")[0]
    assert start["dry_run"] is True and start["targets"] == {"vm": ["web-01"]}
    assert [r["outcome"] for r in site.records("run")][:1] == ["dry-run"]
    assert all(s.get("dry_run") for s in site.records("step"))
    log = shadow.stderr.splitlines()
    assert any("RUN      dry-run: levels vm [targets vm: web-01] asked by web-01 DOWN -> vm" in x for x in log), log
    assert any("would  vm levels[0].steps[0] on web-01: echo vm web-01" in x for x in log)
    assert any("RUN END  dry-run: levels vm" in x for x in log)
    assert any("VERDICT" in x and "NOT converged" in x for x in log)
    assert any("NOTIFY" in x and "did not converge after 1 attempt;" in x for x in log)
    assert not any("event    " in x for x in log)  # events only with -v
    assert all(x.startswith("escalator: ") for x in log)

    site.event("web-02", "DOWN")
    quiet = collect("--dry-run", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""   # only warnings, and there were none:
    assert site.records("run")[-1]["outcome"] == "skipped"  # the held level's skip is journalled all the same
    site.event("web-03", "UP")
    verbose = collect("--dry-run", "-v")
    assert "event    web-03 UP HARD 1" in verbose.stderr
    assert collect("--help").stdout.count("--dry-run") == 1


def test_run_asks_for_a_level_through_the_collector_and_is_judged_like_any_other(site: Site) -> None:
    site.write_config([{"name": "vm", "quiescence": 0.3,
                        "steps": [{"shell": f"echo vm {{host}} >> {site.out}/vm.txt", "foreach": "host"}]},
                       {"name": "deploy", "quiescence": 0.3,
                        "steps": [{"shell": f"echo deploy {{hosts}} >> {site.out}/deploy.txt"}]}],
                      [{"host": "*", "level": "vm"}])
    cfg = str(site.config)
    r = esc(site, "run", "--level", "vm", "--host", "web-01", "--host", "web-02", "--reason", "rebuild", "-C", cfg)
    assert r.returncode == 0, r.stderr
    assert "started: run " in r.stdout and "levels vm, deploy on 2 hosts: web-01, web-02" in r.stdout
    site.wait_records("verdict")
    assert sorted(site.lines("vm.txt")) == ["vm web-01", "vm web-02"] and site.lines("deploy.txt") == ["deploy web-01 web-02"]
    start = site.records("start")[0]
    assert start["requested_by"] and start["targets"] == {"vm": ["web-01", "web-02"], "deploy": ["web-01", "web-02"]}
    assert site.records("run")[0]["outcome"] == "ok" and site.records("verdict")[0]["converged"] is True
    assert "(asked for by " in esc(site, "history", "-C", cfg).stdout

    dry = esc(site, "run", "--level", "deploy", "--dry-run", "-C", cfg)
    assert dry.returncode == 0 and "started: run " in dry.stdout
    wait_for(lambda: len(site.records("run")) == 2, 15)
    assert site.records("run")[1]["outcome"] == "dry-run" and site.lines("deploy.txt") == ["deploy web-01 web-02"]

    assert esc(site, "pause", "--reason", "change window", "-C", cfg).returncode == 0
    refused = esc(site, "run", "--level", "1", "-C", cfg)
    assert refused.returncode == 1 and "refused: paused by operator: change window" in refused.stdout
    assert esc(site, "resume", "-C", cfg).returncode == 0
    assert esc(site, "hold", "--host", "web-01", "-C", cfg).returncode == 0
    held = esc(site, "run", "--level", "vm", "--host", "web-01", "-C", cfg)
    assert held.returncode == 1 and "refused: hosts held by an operator: web-01" in held.stdout
    assert sorted(site.lines("vm.txt")) == ["vm web-01", "vm web-02"]
    bad = esc(site, "run", "--level", "nope", "-C", cfg)
    assert bad.returncode == 2 and "no level 'nope'" in bad.stderr


def test_every_option_of_every_command_has_help_text() -> None:
    import click

    from escalator_handlers.cli import cli

    ctx = click.Context(cli)
    commands = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}  # imports them all
    missing = [f"{name} {p.opts}" for name, cmd in [("escalator", cli), *commands.items()]
               for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert missing == [] and None not in commands.values()
    for name in commands:
        r = subprocess.run([ESCALATOR, name, "--help"], capture_output=True, text=True, env=handler_env())
        assert r.returncode == 0 and "Usage: escalator " + name in r.stdout


def test_explain_names_a_level_quiescence_and_a_host_downtime_and_local_time_on_request(site: Site) -> None:
    site.write_config([{"name": "vm", "quiescence": 600,
                        "steps": [{"shell": f"echo vm {{host}} >> {site.out}/vm.txt", "foreach": "host"}]}],
                      [{"host": "*", "level": "vm"}, {"service": "*", "level": "vm"}])
    cfg = str(site.config)
    site.event("web-01", "DOWN", spawn=True)
    site.wait_records("run")
    site.event("web-02", "CRITICAL", "HTTP")
    r = subprocess.run([HANDLER, "--spool", str(site.spool), "--host", "db-01", "--state", "UP", "--downtime", "1"],
                       env=handler_env(), capture_output=True)
    assert r.returncode == 0
    site.event("db-01", "CRITICAL", "PostgreSQL")
    by = {e["check"]: e for e in json.loads(esc(site, "plan", "--explain", "--json", "-C", cfg).stdout)["accounting"]}
    assert by["web-02/HTTP"]["status"] == "quiescence"
    assert "inside the quiescence after run of vm until 20" in by["web-02/HTTP"]["why"]
    assert by["db-01/PostgreSQL"]["status"] == "downtime"
    assert by["db-01/PostgreSQL"]["why"] == "its host db-01 is in scheduled downtime (act_in_downtime: false)"

    env = dict(os.environ, TZ="Asia/Kolkata")  # +05:30 all year, no daylight saving
    utc = subprocess.run([ESCALATOR, "history", "-C", cfg], capture_output=True, text=True, env=env).stdout
    local = subprocess.run([ESCALATOR, "--local", "history", "-C", cfg], capture_output=True, text=True, env=env).stdout
    also = subprocess.run([ESCALATOR, "history", "-C", cfg], capture_output=True, text=True,
                          env=dict(env, ESCALATOR_LOCAL_TIME="1")).stdout
    assert utc.split()[0].endswith("Z") and local.split()[0].endswith("+05:30") and also == local


def test_config_before_the_command_name_counts_for_every_command(tmp_path: Path) -> None:
    tests_dir = REPO / "nagios-conf" / "examples" / "tests"
    for argv in (["-C", str(tmp_path / "missing.yaml"), "test", str(tests_dir)],
                 ["-C", str(tmp_path / "missing.yaml"), "status"],
                 ["-C", str(tmp_path / "missing.yaml"), "validate"]):
        r = subprocess.run([ESCALATOR, *argv], capture_output=True, text=True, env=handler_env())
        assert "missing.yaml: cannot read config file" in r.stdout + r.stderr, (argv, r.stdout, r.stderr)
    ok = subprocess.run([ESCALATOR, "-C", str(EXAMPLE_CONFIG), "test", str(tests_dir)],
                        capture_output=True, text=True, env=handler_env())
    assert ok.returncode == 0 and " passed, 0 failed" in ok.stdout
