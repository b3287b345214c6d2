"""The ``escalator`` command: status, pause/resume, hold/release, plan, validate, replay,
and how it treats bad input (one clear line, exit 2 or 1, never a traceback).

Most commands run in-process through ``cli.main`` (the console entry point,
so exit codes and error lines are exactly what users get); the error cases
run the installed console script too.  Collectors are real processes: the
handler or the CLI starts them detached, and the ``site`` fixture reaps them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from collector_fixtures import HANDLER, Site, handler_env, runs, wait_for
from escalator_handlers import cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "tests" / "configs" / "broken"
CHECKS = [{"host": "*", "level": "vm"}, {"service": "HTTP", "level": "converge"},
          {"service": "Smoke*", "level": "deploy"}]


def levels(site: Site, recover: bool = True) -> list:
    """vm, converge, deploy writing out/<level>.txt; with ``recover`` the vm step
    reports the host UP through the handler, as Nagios would after a repair."""
    fix = f"; {HANDLER} --spool {site.spool} --host {{host}} --state UP" if recover else ""
    return [
        {"name": "vm", "quiescence": 0.2,
         "steps": [{"shell": f"echo vm {{host}} >> {site.out}/vm.txt{fix}", "foreach": "host"}]},
        {"name": "converge", "quiescence": 0.2,
         "steps": [{"shell": f"echo converge {{host}} >> {site.out}/converge.txt", "foreach": "host"}]},
        {"name": "deploy", "quiescence": 0.2, "steps": [{"shell": f"echo deploy {{hosts}} >> {site.out}/deploy.txt"}]},
    ]


def configure(site: Site, **kw) -> Path:
    return site.write_config(levels(site, **kw), CHECKS,
                             notify=[{"shell": f"printf '%s\\n' {{summary}} >> {site.out}/notify.txt"}])


def escalator(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str, str]:
    """Run the console entry point in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        rc = cli.main(list(args))
    finally:
        # collect/replay bind a log handler to this test's captured stderr; drop it
        logging.getLogger("escalator").handlers[:] = []
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def settled(site: Site) -> bool:
    """No collector (ours or spawned) left and nothing in the spool."""
    return site.collector_pid() is None and not site.strays() and site.spool_empty()


# -- status --------------------------------------------------------------------------


def test_status_over_a_live_spool_human_and_json(site: Site, capsys) -> None:
    cfg = str(configure(site))
    site.event("web1", "DOWN", output="100% packet loss")
    site.event("web2", "CRITICAL", "HTTP")
    site.event("db1", "CRITICAL", "Backup")           # unmapped
    site.event("web3", "CRITICAL", "HTTP", state_type="SOFT")

    rc, out, _ = escalator(capsys, "status", "--json", "--config", cfg)
    assert rc == 0
    r = json.loads(out)
    assert r["collector"] == {"running": False, "pid": None}
    assert r["spool"]["pending"] == 4 and r["spool"]["problem"] is None
    assert 0 <= r["spool"]["oldest_age"] < 30
    assert r["paused"] is False and r["held_hosts"] == {}
    assert [(f["check"], f["state"], f["level"], f["held"]) for f in r["failing"]] == [
        ("web1", "DOWN", "vm", False), ("web2/HTTP", "CRITICAL", "converge", False)]
    assert r["unmapped"] == ["db1/Backup"]
    assert r["required_level"] == "vm"
    assert r["next"]["why"].startswith("waiting for quiet")
    assert r["last_runs"] == [] and r["quiescence_left"] == 0.0

    rc, out, _ = escalator(capsys, "status", "--config", cfg)
    assert rc == 0
    assert "collector:   not running" in out
    assert "spool:       4 pending" in out
    assert "automation:  active" in out
    assert "failing:     2 checks, required level vm" in out
    assert "db1/Backup" in out and "unmapped" in out


def test_status_after_a_run_shows_it_and_the_quiescence_left(site: Site, capsys) -> None:
    site.write_config([{"name": "vm", "quiescence": 60, "steps": [{"shell": "true"}]}],
                      [{"host": "*", "level": "vm"}])
    site.event("web1", "DOWN", spawn=True)
    site.wait_records("run")
    rc, out, _ = escalator(capsys, "status", "--json", "--config", str(site.config))
    r = json.loads(out)
    assert r["collector"]["running"] is True and r["collector"]["pid"] == site.collector_pid()
    assert [x["outcome"] for x in r["last_runs"]] == ["ok"]
    assert 50 < r["quiescence_left"] <= 60
    rc, out, _ = escalator(capsys, "status", "--config", str(site.config))
    assert f"collector:   running (pid {site.collector_pid()})" in out
    assert "ok, verdict at " in out and "levels vm on web1" in out and "quiescence:  " in out


# -- pause / resume, hold / release ------------------------------------------------------


def test_pause_records_a_skipped_run_without_a_page_then_resume_acts(site: Site, capsys) -> None:
    cfg = str(configure(site))
    rc, out, _ = escalator(capsys, "pause", "--config", cfg, "--reason", "maintenance window")
    assert rc == 0 and out == "pause: recorded in the journal\n"
    assert site.collector_pid() is None and not site.strays()   # nothing to do: nobody started

    site.event("web1", "DOWN", spawn=True)
    skipped = site.wait_records("run")[0]
    assert skipped["outcome"] == "skipped"
    assert skipped["reason"] == "paused by operator: maintenance window"
    wait_for(lambda: settled(site), 10)
    assert not site.lines("notify.txt") and not site.records("notify")  # never paged for one's own pause
    assert not site.records("step") or all(s["level"] == "notify" for s in site.records("step"))
    assert not site.lines("vm.txt")
    rc, out, _ = escalator(capsys, "status", "--config", cfg)
    assert "automation:  PAUSED: maintenance window" in out

    rc, out, _ = escalator(capsys, "resume", "--config", cfg)
    assert rc == 0 and out.startswith("resume: ")
    (run,) = site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    assert run["levels"] == ["vm", "converge", "deploy"]
    assert site.lines("vm.txt") == ["vm web1"]
    wait_for(lambda: settled(site), 10)
    assert [r["converged"] for r in site.records("verdict")] == [True]
    assert [r["kind"] for r in site.records() if r["kind"] in ("pause", "resume")] == ["pause", "resume"]


def test_hold_keeps_hands_off_one_host_and_release_lets_the_collector_act(site: Site, capsys) -> None:
    cfg = str(configure(site))
    rc, out, _ = escalator(capsys, "hold", "--config", cfg, "--host", "web1", "--reason", "rebuilding by hand")
    assert rc == 0 and out == "hold: recorded in the journal\n"
    (hold,) = site.records("hold")
    assert hold["host"] == "web1" and hold["reason"] == "rebuilding by hand" and hold["user"]

    site.event("web1", "DOWN")
    site.event("web2", "DOWN", spawn=True)
    (run,) = site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    assert run["targets"]["vm"] == ["web2"]                 # web1 left alone
    skipped = site.wait_records("run", where=lambda r: r.get("outcome") == "skipped")[0]
    assert skipped["reason"] == "hosts held by an operator: web1"
    wait_for(lambda: settled(site), 10)
    assert site.lines("vm.txt") == ["vm web2"]
    rc, out, _ = escalator(capsys, "status", "--json", "--config", cfg)
    r = json.loads(out)
    assert r["held_hosts"] == {"web1": "rebuilding by hand"}
    assert [(f["check"], f["held"]) for f in r["failing"]] == [("web1", True)]

    rc, out, _ = escalator(capsys, "release", "--config", cfg, "--host", "web1")
    assert rc == 0 and out.startswith("release: ")
    site.wait_records("run", 2, where=lambda r: r.get("outcome") == "ok")
    wait_for(lambda: settled(site), 10)
    assert site.lines("vm.txt") == ["vm web2", "vm web1"]


def test_hold_while_events_wait_in_the_spool_still_gets_them_acted_on(site: Site, capsys) -> None:
    """`hold` journals under the collector lock; a handler that appended meanwhile saw the
    lock held and started no collector -- the CLI must start one."""
    cfg = str(configure(site))
    site.event("web1", "DOWN")          # as if its --spawn-collector had seen the lock held
    rc, _, _ = escalator(capsys, "hold", "--config", cfg, "--host", "other")
    assert rc == 0
    site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    wait_for(lambda: settled(site), 10)
    assert site.lines("vm.txt") == ["vm web1"]


# -- plan ------------------------------------------------------------------------------


def test_plan_over_the_live_spool(site: Site, capsys) -> None:
    cfg = str(configure(site))
    site.event("web1", "DOWN")
    site.event("web2", "CRITICAL", "HTTP")
    site.event("app", "CRITICAL", "Smoke test")
    rc, out, _ = escalator(capsys, "plan", "--config", cfg)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("would run levels vm, converge, deploy at ") and "(once quiet)" in lines[0]
    assert lines[1:] == ["  vm: web1", "  converge: web1, web2", "  deploy: app, web1, web2"]
    rc, out, _ = escalator(capsys, "plan", "--explain", "--config", cfg)
    rows = {line.split()[0]: " ".join(line.split()) for line in out.splitlines()[5:]}
    assert rows["web1"].startswith("web1 DOWN HARD waits asks for level vm (1): waiting for quiet")
    assert rows["web2/HTTP"].startswith("web2/HTTP CRITICAL HARD waits asks for level converge (2): waiting for quiet")
    rc, out, _ = escalator(capsys, "plan", "--json", "--config", cfg)
    rec = json.loads(out)
    assert rec["kind"] == "plan" and rec["levels"] == ["vm", "converge", "deploy"]
    assert rec["targets"]["deploy"] == ["app", "web1", "web2"] and rec["at"] > rec["time"]
    assert site.records() == [] and not site.spool_empty()   # plan only looks


def test_plan_over_an_event_file_and_nothing_to_do(site: Site, capsys, tmp_path: Path) -> None:
    cfg = str(configure(site))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in [
        {"time": 1000.0, "host": "web2", "service": "HTTP", "state": "CRITICAL", "state_type": "HARD"},
        {"time": 1001.0, "host": "db1", "service": "Backup", "state": "CRITICAL", "state_type": "HARD"},
    ]))
    rc, out, _ = escalator(capsys, "plan", "--explain", "--config", cfg, str(events))
    assert rc == 0
    assert out.splitlines()[0].startswith("would run levels converge, deploy at ")
    assert "  db1/Backup  CRITICAL  HARD  unmapped  no rule in checks: maps it; reported, never acted on" \
        in out.splitlines()
    quiet = tmp_path / "quiet.jsonl"
    quiet.write_text(json.dumps({"time": 5.0, "host": "web2", "service": "HTTP", "state": "OK"}) + "\n")
    rc, out, _ = escalator(capsys, "plan", "--config", cfg, str(quiet))
    assert rc == 0 and out.startswith("nothing would run: nothing to do")


def test_plan_over_events_and_operator_records_honours_a_hold(site: Site, capsys, tmp_path: Path) -> None:
    cfg = str(configure(site))
    events = tmp_path / "journal.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in [
        {"time": 1000.0, "host": "web2", "service": "HTTP", "state": "CRITICAL", "state_type": "HARD"},
        {"time": 1001.0, "kind": "hold", "host": "web2", "reason": "disk swap"},
    ]))
    rc, out, err = escalator(capsys, "plan", "--config", cfg, str(events))
    assert rc == 0, err
    assert "SKIPPED  levels converge, deploy: hosts held by an operator: web2" in out, out
    assert "nothing would run: skipped: hosts held by an operator: web2" in out
    assert not [line for line in out.splitlines() if line.startswith("would run")]


def test_plan_reads_a_nagios_log_with_the_shipped_example() -> None:
    example = REPO / "nagios-conf" / "examples"
    r = subprocess.run([str(Path(HANDLER).parent / "escalator"), "plan", "--explain", "--config",
                        str(example / "escalator.yaml"), str(example / "outage.log")],
                       capture_output=True, text=True, env=handler_env(), timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr and r.stdout.strip()


# -- validate and replay -------------------------------------------------------------------


def test_validate_exit_codes(site: Site, capsys) -> None:
    cfg = str(configure(site))
    rc, out, _ = escalator(capsys, "validate", cfg)
    assert rc == 0 and out == f"{cfg}: ok\n"
    bad = str(BROKEN / "05-unknown-top-key.yaml")
    rc, out, err = escalator(capsys, "validate", bad)
    assert rc == 2 and out == ""
    assert "quiesence: unknown key 'quiesence'; did you mean 'quiescence'?" in err
    assert err.splitlines()[-1] == f"{bad}: 1 error"
    rc, _, err = escalator(capsys, "validate", "--config", cfg)   # the --config form
    assert rc == 0


def test_replay_exit_codes(site: Site, capsys, tmp_path: Path) -> None:
    site.write_config([{"name": "vm", "quiescence": 60, "steps": [{"shell": "echo fixing {host}; exit 4",
                                                                   "foreach": "host"}]}],
                      [{"host": "*", "level": "vm"}])
    cfg = str(site.config)
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"time": 1000.0, "host": "web1", "state": "DOWN", "state_type": "HARD"}) + "\n")
    rc, out, err = escalator(capsys, "replay", "--config", cfg, str(events))
    assert rc == 0
    assert "would  vm levels[0].steps[0] on web1: echo fixing web1; exit 4" in out
    assert err.startswith("replayed 1 event from 1 line")
    rc, out, _ = escalator(capsys, "replay", "--json", "--config", cfg, str(events))
    recs = [json.loads(line) for line in out.splitlines()]
    assert {r["outcome"] for r in runs(recs)} == {"dry-run"}   # re-converged up to max_attempts
    assert site.records() == []                          # replay never writes the journal
    rc, _, err = escalator(capsys, "replay", "--config", cfg)
    assert rc == 2 and err.startswith("Error: replay needs at least one FILE")


# -- bad input: one clear line, the right exit status, never a traceback -----------------------


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temp dir other users can enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="escalator-cli-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def error_line(r: subprocess.CompletedProcess) -> str:
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


BAD_INPUT = [
    # (name, argv with {cfg}/{dir}/{...} placeholders, exit status, words in the Error line)
    ("unknown command", ["frobnicate"], 2, "No such command 'frobnicate'"),
    ("unknown option", ["status", "--bogus"], 2, "No such option '--bogus'"),
    ("missing option", ["hold", "--config", "{cfg}"], 2, "Missing option '--host'"),
    ("missing config", ["status", "--config", "{dir}/nope.yaml"], 2,
     "{dir}/nope.yaml: cannot read config file: No such file or directory"),
    ("config is a dir", ["collect", "--config", "{dir}"], 2, "{dir}: cannot read config file: Is a directory"),
    ("invalid config", ["collect", "--config", str(BROKEN / "07-bad-duration.yaml")], 2,
     "invalid config, 2 problems"),
    ("invalid config, one problem", ["plan", "--config", str(BROKEN / "05-unknown-top-key.yaml")], 2,
     "05-unknown-top-key.yaml:2: quiesence: unknown key 'quiesence'; did you mean 'quiescence'?"),
    ("no default config", ["status"], 2, "/etc/escalator/escalator.yaml: cannot read config file"),
    ("plan of a missing file", ["plan", "--config", "{cfg}", "{dir}/nope.log"], 2, "does not exist"),
    ("replay of a binary file", ["replay", "--config", "{cfg}", "{dir}/binary"], 2, "not a nagios.log"),
    ("replay --until junk", ["replay", "--config", "{cfg}", "--until", "soon", "{dir}/binary"], 2, "'soon'"),
    ("journal is a directory", ["status", "--config", "{cfg}"], 1, "cannot read journal {dir}/journal.jsonl"),
    ("journal is a directory (collect)", ["collect", "--config", "{cfg}"], 1, "cannot read journal"),
    ("world-writable spool", ["collect", "--config", "{cfg}"], 1, "world-writable"),
    ("spool is a file", ["collect", "--config", "{cfg}"], 1, "it is not a directory"),
]


@pytest.mark.parametrize("name,argv,status,words", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gives_one_error_line_and_no_traceback(world_tmp: Path, name: str, argv: list,
                                                           status: int, words: str) -> None:
    d = world_tmp
    cfg = d / "escalator.yaml"
    cfg.write_text(f"spool: {d}/spool\njournal: {d}/journal.jsonl\n"
                   "levels:\n  - name: vm\n    steps: [{shell: 'true'}]\n")
    (d / "binary").write_bytes(b"\x00\xff\xfe garbage \x00" * 20)
    if "journal" in name:
        (d / "journal.jsonl").mkdir()
        (d / "spool").mkdir()
    if "world-writable" in name:
        (d / "spool").mkdir()
        (d / "spool").chmod(0o777)
    if "spool is a file" in name:
        (d / "spool").write_text("not a spool\n")
    fill = {"cfg": str(cfg), "dir": str(d)}
    r = subprocess.run([str(Path(HANDLER).parent / "escalator"), *(a.format(**fill) for a in argv)],
                       capture_output=True, text=True, timeout=30, cwd=d,
                       env=handler_env())
    assert r.returncode == status, r.stderr
    assert words.format(**fill) in error_line(r)


def test_unreadable_files_are_reported_not_raised(world_tmp: Path) -> None:
    """As an unprivileged user (root reads everything): a config and an event file mode 000."""
    secret = world_tmp / "secret.yaml"
    secret.write_text("levels: []\n")
    secret.chmod(0)
    good = world_tmp / "good.yaml"
    good.write_text(f"spool: {world_tmp}/spool\njournal: {world_tmp}/j.jsonl\n"
                    "levels:\n  - name: vm\n    steps: [{shell: 'true'}]\n")
    good.chmod(0o644)
    log = world_tmp / "nagios.log"
    log.write_text("[1000] SERVICE ALERT: web1;HTTP;CRITICAL;HARD;3;down\n")
    log.chmod(0)
    esc = str(Path(HANDLER).parent / "escalator")
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to act as an unprivileged user")
    r = subprocess.run([*nobody, esc, "status", "--config", str(secret)], capture_output=True, text=True,
                       env=handler_env(), timeout=30, cwd="/")
    assert r.returncode == 2
    assert error_line(r).startswith(f"Error: {secret}: cannot read config file: Permission denied")
    assert "--spool DIR --journal PATH" in error_line(r)  # the brake's way round an unreadable file
    r = subprocess.run([*nobody, esc, "validate", str(secret)], capture_output=True, text=True,
                       env=handler_env(), timeout=30, cwd="/")
    assert r.returncode == 2 and "Permission denied" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*nobody, esc, "replay", "--config", str(good), str(log)], capture_output=True,
                       text=True, env=handler_env(), timeout=30, cwd="/")
    assert r.returncode == 2 and error_line(r).endswith(f"Path '{log}' is not readable.")


def test_a_damaged_journal_record_does_not_stop_the_collector(site: Site, capsys) -> None:
    cfg = str(configure(site))
    site.journal.write_text('{"kind": "run", "time": "yesterday"}\n{"kind": "event"}\nnot json\n')
    site.spool.mkdir(mode=0o750)  # a site whose handler recorded before (a missing spool is an error)
    site.skip_damaged = 3
    r = site.cli("status", "--json", "--config", cfg)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "skipping a record that cannot be folded (ValueError: could not convert string to float" in r.stderr
    assert json.loads(r.stdout)["journal_unreadable"] == 3
    site.event("web1", "DOWN", spawn=True)
    site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    wait_for(lambda: settled(site), 10)
    assert site.lines("vm.txt") == ["vm web1"]
