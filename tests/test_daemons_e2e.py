"""End to end with the real daemons: Nagios 4 and Icinga 2 drive escalator.

The daemons run in the foreground from generated configs in temp dirs (see
nagios_fixtures / icinga_fixtures) with the shipped drop-in config; a test
flips a check script between OK and CRITICAL and watches what reaches
escalator-handler, what the collector runs and what escalator writes back.

The last four also exercise ``escalator collect`` (spawned by the handler) and
``escalator replay``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from escalator_handlers.config import NagiosFeedback
from escalator_handlers.monitoring.feedback import CommandFile, Feedback, FeedbackError
from escalator_handlers.monitoring.statusdat import parse_blocks, parse_status
from icinga_fixtures import (
    API_USER, ICINGA_CONF, compiled_objects, critical_via_api, icinga_available, start_icinga, validate,
)
from nagios_fixtures import (
    CONF_DIR, FEEDBACK_HOST, FEEDBACK_SERVICE, HOST, REPO, SERVICE, base_objects, main_config,
    nagios_available, parse_comments, schedule_downtime, service_alerts, short_tmpdir, start_nagios, verify,
)
from spool_fixtures import collector_settled, wait_for

pytestmark = pytest.mark.slow

ESCALATOR = Path(sys.executable).parent / "escalator"


@pytest.fixture
def reap_collector(tmp_path: Path) -> Iterator[None]:
    """After the test: the collector the handler spawned must be gone (or is ended)."""
    yield
    from escalator_handlers import spool

    spool_dir = str(tmp_path / "spool")
    deadline = time.monotonic() + 10
    while (pid := spool.collector_running(spool_dir)) is not None:
        if time.monotonic() > deadline:
            if pid > 0:
                os.kill(pid, signal.SIGTERM)
            pytest.fail(f"collector (pid {pid}) still running 10 s after the daemon stopped")
        time.sleep(0.05)


def fields(event: dict) -> tuple:
    return (event["host"], event.get("service"), event["state"], event["state_type"],
            int(event["attempt"]), int(event["downtime"]))


# --- the drop-in config as the daemons read it -----------------------------

def test_nagios_drop_in_config_verifies_with_nagios4_v(tmp_path):
    if nagios_available():
        pytest.skip(nagios_available())
    root = short_tmpdir()
    try:
        files = [base_objects(root), CONF_DIR / "commands.cfg", CONF_DIR / "templates.cfg",
                 CONF_DIR / "objects-example.cfg", REPO / "nagios-conf" / "plugins.cfg"]
        cfg = main_config(root, files)
        done = verify(cfg)
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Total Errors:   0" in done.stdout
        assert "Total Warnings: 0" in done.stdout, done.stdout[-3000:]

        # The global-handler alternative: its lines go into nagios.cfg itself.
        directives = [line for line in (CONF_DIR / "global-handler.cfg").read_text().splitlines()
                      if line and not line.startswith("#")]
        assert "global_service_event_handler=escalator-service-handler" in directives
        cfg = main_config(root, files, extra="\n".join(directives))
        done = verify(cfg)
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Total Errors:   0" in done.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_icinga_drop_in_config_validates_and_applies_the_templates(tmp_path):
    if icinga_available():
        pytest.skip(icinga_available())
    conf = tmp_path / "icinga2.conf"
    conf.write_text(f"""const PluginDir = "/usr/lib/nagios/plugins"
include <itl>
include <plugins>
include "{ICINGA_CONF}"
object Host "iaas-provider" {{ check_command = "dummy"; vars.escalator_iaas_api = "api.example.com" }}
object Host "web-01" {{
  import "escalated-host"
  check_command = "hostalive"
  address = "192.0.2.11"
  vars.escalator_node = "app"
  vars.escalator_tier = "tier-app"
  vars.escalator_smoke_features = "/etc/escalator/features/smoke"
}}
object Host "db-01" {{
  import "escalated-host"
  check_command = "hostalive"
  address = "192.0.2.21"
  vars.escalator_node = "db"
  vars.escalator_tier = "tier-db"
}}
object Host "tier-app" {{ check_command = "dummy"; vars.escalator_tier_of = "app" }}
object Host "tier-db" {{ check_command = "dummy"; vars.escalator_tier_of = "db" }}
object Host "monitor" {{ check_command = "dummy"; vars.escalator_feedback = true }}
""")
    done = validate(conf, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "does not match anywhere" not in done.stdout  # every example rule found its host
    objects = compiled_objects(tmp_path)
    services = {f'{o["properties"]["host_name"]}!{o["name"]}': o["properties"]
                for o in objects if o["type"] == "Service"}
    assert set(services) == {
        "iaas-provider!IaaS API", "web-01!PING", "web-01!App HTTP", "web-01!Smoke test",
        "db-01!PING", "db-01!DB PostgreSQL", "tier-app!Tier", "tier-db!Tier", "monitor!escalator"}
    for name, props in services.items():
        if name == "monitor!escalator":
            assert props["enable_active_checks"] is False and props["check_command"] == "passive"
        else:
            assert props["event_command"] == "escalator-service-handler", name
            assert props["enable_event_handler"] is True
    hosts = {o["name"]: o["properties"] for o in objects if o["type"] == "Host"}
    assert hosts["web-01"]["event_command"] == "escalator-host-handler"
    commands = {o["name"]: o["properties"] for o in objects if o["type"] == "EventCommand"}
    args = commands["escalator-service-handler"]["arguments"]
    assert args["--state-type"] == "$service.state_type$"
    assert args["--downtime"] == "$service.downtime_depth$"
    assert "--service" not in commands["escalator-host-handler"]["arguments"]


# --- Nagios 4 -> escalator-handler -----------------------------------------

def test_nagios_reports_soft_hard_and_recovery_to_the_handler(nagios, tmp_path):
    pwned = tmp_path / "pwned"
    # Untrusted plugin output: quotes, command substitution, a trailing backslash.
    hostile = f"it's \"down\"; $(touch {pwned}) `touch {pwned}` \\"
    nagios.flip("CRITICAL", output=hostile)
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="HARD event")
    nagios.flip("OK", output="fine")
    nagios.wait_for(lambda: nagios.events()[-1]["state"] == "OK", what="recovery event")
    events = nagios.events()
    assert [fields(e)[:5] for e in events] == [
        (HOST, SERVICE, "CRITICAL", "SOFT", 1),
        (HOST, SERVICE, "CRITICAL", "HARD", 2),
        (HOST, SERVICE, "OK", "HARD", events[-1]["attempt"] and int(events[-1]["attempt"])),
    ]
    assert all(int(e["downtime"]) == 0 for e in events)
    assert not pwned.exists()
    # Nagios strips `~$&|'"<> and turns ';' into ':'; the rest arrives intact.
    assert events[0]["output"] == f"CRITICAL - its down: (touch {pwned}) touch {pwned} \\"
    assert events[-1]["output"] == "OK - fine"
    alerts = service_alerts(nagios.log_text())
    assert [a.split(";")[:3] for a in alerts] == [
        ["CRITICAL", "SOFT", "1"], ["CRITICAL", "HARD", "2"], ["OK", "HARD", alerts[-1].split(";")[2]]]


def test_nagios_reports_host_checks_without_a_service(nagios):
    nagios.flip("DOWN", host=True)
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="host HARD")
    nagios.flip("UP", host=True)
    nagios.wait_for(lambda: nagios.events()[-1]["state"] == "UP", what="host recovery")
    got = [fields(e)[:5] for e in nagios.events()]
    # Nagios retries a failed host check at once: SOFT and HARD come in the
    # same second and the two handler processes race, so the spool may hold
    # them in either order (observed here about one run in four).
    assert sorted(got[:2], key=lambda f: f[4]) == [(HOST, None, "DOWN", "SOFT", 1),
                                                   (HOST, None, "DOWN", "HARD", 2)]
    assert got[-1][:4] == (HOST, None, "UP", "HARD")


def test_nagios_failure_in_scheduled_downtime_reaches_the_handler_with_depth(nagios):
    now = time.time()
    schedule_downtime(CommandFile(str(nagios.command_file)), HOST, SERVICE, now - 1, now + 600, "maintenance")
    nagios.wait_for(lambda: f"SERVICE DOWNTIME ALERT: {HOST};{SERVICE};STARTED" in nagios.log_text(),
                    what="downtime start")
    nagios.flip("CRITICAL")
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="HARD event")
    assert "EXTERNAL COMMAND: SCHEDULE_SVC_DOWNTIME;web01;HTTP;" in nagios.log_text()
    assert [(e["state"], e["state_type"], int(e["downtime"])) for e in nagios.events()] == [
        ("CRITICAL", "SOFT", 1), ("CRITICAL", "HARD", 1)]


def test_feedback_is_visible_in_nagios_log_and_status(nagios):
    nagios.flip("CRITICAL", output="broken")
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="HARD event")
    fb = Feedback.from_config(NagiosFeedback(command_file=str(nagios.command_file), acknowledge=True,
                                             host=FEEDBACK_HOST, service=FEEDBACK_SERVICE))
    fb.run_started([(HOST, SERVICE)], ["vm", "deploy"])
    fb.run_finished("failed", "step vm failed on web01")
    text = "escalator: running levels vm, deploy"
    expected = [
        f"EXTERNAL COMMAND: ADD_SVC_COMMENT;{HOST};{SERVICE};0;escalator;{text}",
        f"EXTERNAL COMMAND: ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};0;0;0;escalator;{text}",
        f"EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;{FEEDBACK_HOST};{FEEDBACK_SERVICE};2;"
        "ESCALATOR CRITICAL - step vm failed on web01",
        f"SERVICE ALERT: {FEEDBACK_HOST};{FEEDBACK_SERVICE};CRITICAL;HARD;1;ESCALATOR CRITICAL - step vm failed",
    ]
    nagios.wait_for(lambda: all(x in nagios.log_text() for x in expected), what="feedback in nagios.log")

    def in_status():
        status = parse_status(str(nagios.status_file))
        return status.get((FEEDBACK_HOST, FEEDBACK_SERVICE)) and \
            status[(FEEDBACK_HOST, FEEDBACK_SERVICE)].state == "CRITICAL" and status

    nagios.wait_for(in_status, what="passive result in status.dat")
    comments = [(c.host, c.service, c.text, c.entry_type) for c in parse_comments(str(nagios.status_file))]
    assert (HOST, SERVICE, text, 1) in comments   # the comment
    assert (HOST, SERVICE, text, 4) in comments   # the acknowledgement's comment
    http = [f for kind, f in parse_blocks(nagios.status_file.read_text())
            if kind == "servicestatus" and f.get("service_description") == SERVICE][0]
    assert http["problem_has_been_acknowledged"] == "1"
    assert http["acknowledgement_type"] == "1"    # normal, not sticky

    nagios.stop()
    with pytest.raises(FeedbackError) as exc:
        fb.run_finished("ok", "too late")
    assert exc.value.unreachable


# --- Icinga 2 -> escalator-handler -----------------------------------------

def test_icinga_reports_soft_hard_and_recovery_to_the_handler(icinga):
    # A check that fails from its very first run goes straight to HARD in Icinga:
    # flip only after the start-up UNKNOWN -> OK was reported (slow under load).
    icinga.wait_for(lambda: any(e.get("service") == SERVICE and e["state"] == "OK" for e in icinga.events()),
                    what="start-up OK")
    icinga.flip("CRITICAL", output="broken")
    icinga.wait_for(lambda: any(e["state_type"] == "HARD" for e in icinga.problem_events()), what="HARD")
    icinga.flip("OK")
    icinga.wait_for(lambda: icinga.problem_events()[-1]["state"] == "OK", what="recovery event")
    got = [fields(e) for e in icinga.problem_events()]
    # Icinga counts attempts differently from Nagios: 1 again at HARD.
    assert got == [(HOST, SERVICE, "CRITICAL", "SOFT", 1, 0), (HOST, SERVICE, "CRITICAL", "HARD", 1, 0),
                   (HOST, SERVICE, "OK", "HARD", 1, 0)]
    assert icinga.problem_events()[0]["output"] == "CRITICAL - broken"
    # At start-up Icinga reported UNKNOWN -> OK for the host and the service.
    assert {(e["host"], e.get("service"), e["state"]) for e in icinga.events()
            if e["state"] in ("OK", "UP")} >= {(HOST, SERVICE, "OK"), (HOST, None, "UP")}


def api_get(daemon, path: str) -> dict:
    ctx = ssl.create_default_context(cafile=str(daemon.ca_file))
    auth = b64encode(f"{API_USER}:{daemon.api_password}".encode()).decode()
    req = urllib.request.Request(daemon.api_url + path, headers={
        "Accept": "application/json", "Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
        return json.load(r)


def test_feedback_through_the_real_icinga_api(tmp_path):
    with start_icinga(tmp_path, api=True) as ic:
        api = critical_via_api(ic, tmp_path)
        fb = Feedback.from_config(NagiosFeedback(icinga_api=api, acknowledge=True, host=FEEDBACK_HOST))
        fb.run_started([(HOST, SERVICE)], ["vm", "converge", "deploy"])
        fb.run_finished("ok", "levels vm, converge, deploy ran")

        comments = api_get(ic, "/v1/objects/comments")["results"]
        texts = {(c["attrs"]["host_name"], c["attrs"]["service_name"], c["attrs"]["text"])
                 for c in comments}
        assert (HOST, SERVICE, "escalator: running levels vm, converge, deploy") in texts
        http = api_get(ic, f"/v1/objects/services/{HOST}!{SERVICE}")["results"][0]["attrs"]
        assert http["acknowledgement"] == 1   # normal, not sticky (2)
        result = api_get(ic, f"/v1/objects/services/{FEEDBACK_HOST}!{FEEDBACK_SERVICE}")["results"][0]["attrs"]
        assert result["last_check_result"]["exit_status"] == 0
        assert result["last_check_result"]["output"] == "ESCALATOR OK - levels vm, converge, deploy ran"

        # A check that has recovered cannot be acknowledged: Icinga says 409.
        ic.flip("OK")
        ic.wait_for(lambda: ic.problem_events()[-1]["state"] == "OK", what="recovery")
        with pytest.raises(FeedbackError, match="409"):
            fb.run_started([(HOST, SERVICE)], ["vm"])
        with pytest.raises(FeedbackError, match="no object"):
            Feedback.from_config(NagiosFeedback(icinga_api=api)).run_started([(HOST, "nope")], ["vm"])


# --- the whole loop: handler -> collector -> steps -> feedback --------------

def collector_config(tmp_path: Path, command_file: Optional[Path] = None,
                     status_file: Optional[Path] = None) -> Path:
    """tmp_path/escalator.yaml: web01/HTTP -> vm; vm and deploy append to tmp_path/marker."""
    marker = tmp_path / "marker"
    feedback = ""
    if command_file is not None:
        feedback = f"""nagios:
  command_file: {command_file}
  host: {FEEDBACK_HOST}
  acknowledge: true
"""
        if status_file is not None:
            feedback += f"  status_file: {status_file}\n"
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"""spool: {tmp_path / 'spool'}
journal: {tmp_path / 'journal.jsonl'}
quiescence: 1s
max_delay: 10s
levels:
  - name: vm
    quiescence: 4s
    steps:
      - shell: echo vm {{host}} >> {marker}
        foreach: host
  - name: deploy
    steps:
      - shell: echo deploy >> {marker}
checks:
  - {{host: {HOST}, service: {SERVICE}, level: vm}}
{feedback}""")
    return conf


def journal(tmp_path: Path) -> List[dict]:
    path = tmp_path / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kinds(tmp_path: Path, kind: str) -> List[dict]:
    return [r for r in journal(tmp_path) if r.get("kind") == kind]


def recovered(tmp_path: Path) -> bool:
    return any(r.get("state") == "OK" and r.get("service") == SERVICE for r in kinds(tmp_path, "event"))


def marker_lines(tmp_path: Path) -> List[str]:
    path = tmp_path / "marker"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.usefixtures("reap_collector")
def test_nagios_failure_runs_the_mapped_levels_once_and_recovery_ends_it(tmp_path):
    conf = tmp_path / "escalator.yaml"
    with start_nagios(tmp_path, config=conf) as ng:
        # Written once Nagios is up (its command file path is known then);
        # the first event, and so the first collector, comes after the flip.
        collector_config(tmp_path, command_file=ng.command_file, status_file=ng.status_file)
        ng.flip("CRITICAL")
        ng.wait_for(lambda: len(marker_lines(tmp_path)) >= 2, timeout=20, what="the run's steps")
        assert marker_lines(tmp_path) == ["vm web01", "deploy"]
        ng.wait_for(lambda: kinds(tmp_path, "run"), timeout=10, what="run record")
        ng.flip("OK")
        ng.wait_for(lambda: recovered(tmp_path), timeout=15, what="recovery in the journal")
        ng.wait_for(lambda: kinds(tmp_path, "verdict"), timeout=15, what="verdict")
        # the collector has nothing more due (or has exited): nothing else may run
        wait_for(lambda: collector_settled(conf, tmp_path / "spool"), 15, 0.05, what="the collector to settle")
        text = "escalator: running levels vm, deploy"
        ng.wait_for(lambda: f"ADD_SVC_COMMENT;{HOST};{SERVICE};0;escalator;{text}" in ng.log_text()
                    and f"PROCESS_SERVICE_CHECK_RESULT;{FEEDBACK_HOST};{FEEDBACK_SERVICE};0;" in ng.log_text(),
                    what="feedback from the collector")
    runs = kinds(tmp_path, "run")
    assert [(r["levels"], r["outcome"]) for r in runs] == [(["vm", "deploy"], "ok")]
    assert runs[0]["targets"]["vm"] == [HOST]
    assert kinds(tmp_path, "verdict")[0]["converged"] is True
    assert marker_lines(tmp_path) == ["vm web01", "deploy"]
    journalled = [e for e in kinds(tmp_path, "event") if e.get("service") == SERVICE]
    # The collector seeded its state from status.dat first (OK, or already
    # CRITICAL SOFT if Nagios rewrote the file before the collector read it),
    # then took the handler's events.
    assert journalled[0].get("source") == "status.dat"
    events = [(e["state"], e["state_type"]) for e in journalled if e.get("source") != "status.dat"]
    assert events == [("CRITICAL", "SOFT"), ("CRITICAL", "HARD"), ("OK", "HARD")]
    assert not [r for r in kinds(tmp_path, "feedback") if r.get("outcome") == "failed"]



@pytest.mark.usefixtures("reap_collector")
def test_nagios_failure_during_scheduled_downtime_does_not_act(tmp_path):
    with start_nagios(tmp_path, config=collector_config(tmp_path)) as ng:
        now = time.time()
        schedule_downtime(CommandFile(str(ng.command_file)), HOST, SERVICE, now - 1, now + 600, "maintenance")
        ng.wait_for(lambda: f"SERVICE DOWNTIME ALERT: {HOST};{SERVICE};STARTED" in ng.log_text(),
                    what="downtime start")
        ng.flip("CRITICAL")
        ng.wait_for(lambda: any(e.get("state_type") == "HARD" for e in kinds(tmp_path, "event")),
                    timeout=15, what="HARD event in the journal")
        # past the debounce the collector has decided: a run would have started by now
        wait_for(lambda: collector_settled(tmp_path / "escalator.yaml", tmp_path / "spool"), 15, 0.05,
                 what="the collector to settle")
    assert kinds(tmp_path, "run") == []
    assert marker_lines(tmp_path) == []
    assert all(int(e["downtime"]) == 1 for e in kinds(tmp_path, "event") if e.get("service") == SERVICE)


@pytest.mark.usefixtures("reap_collector")
def test_icinga_failure_runs_the_mapped_levels_once_and_recovery_ends_it(tmp_path):
    with start_icinga(tmp_path, config=collector_config(tmp_path)) as ic:
        ic.flip("CRITICAL")
        ic.wait_for(lambda: len(marker_lines(tmp_path)) >= 2, timeout=20, what="the run's steps")
        ic.wait_for(lambda: kinds(tmp_path, "run"), timeout=10, what="run record")
        ic.flip("OK")
        ic.wait_for(lambda: recovered(tmp_path) and kinds(tmp_path, "verdict"), timeout=15,
                    what="recovery and verdict")
        wait_for(lambda: collector_settled(tmp_path / "escalator.yaml", tmp_path / "spool"), 15, 0.05,
                 what="the collector to settle")
    runs = kinds(tmp_path, "run")
    assert [(r["levels"], r["outcome"]) for r in runs] == [(["vm", "deploy"], "ok")]
    assert kinds(tmp_path, "verdict")[0]["converged"] is True
    assert marker_lines(tmp_path) == ["vm web01", "deploy"]


def test_replay_of_the_log_a_real_nagios_wrote_finds_the_run(nagios, tmp_path):
    nagios.flip("CRITICAL", output="broken")
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="HARD event")
    # Recover inside the window the replayed run waits in: after the 1 s
    # debounce that starts it, before the 4 s level quiescence judges it.
    time.sleep(1.5)
    nagios.flip("OK")
    nagios.wait_for(lambda: nagios.events()[-1]["state"] == "OK", what="recovery event")
    log_copy = tmp_path / "nagios.log"
    shutil.copy(nagios.log, log_copy)
    conf = collector_config(tmp_path)
    done = subprocess.run([str(ESCALATOR), "replay", str(log_copy), "--config", str(conf), "--json"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    runs = [r for r in records if r.get("kind") == "run"]
    assert len(runs) == 1, records
    assert runs[0]["levels"] == ["vm", "deploy"] and runs[0]["outcome"] == "dry-run"
    assert runs[0]["targets"]["vm"] == [HOST]
    assert marker_lines(tmp_path) == []   # a dry run runs nothing
