"""A check still failing when its scheduled downtime ends is acted on (real Nagios 4).

Nagios runs no event handler when a downtime ends, nor again while a check
stays CRITICAL HARD, so only the collector's own look at status.dat can
notice.  The service here is checked every 300 s: once it is CRITICAL HARD
(forced check, 1 s retries) Nagios checks it no more during the test, so a
run soon after the downtime's end can come from nothing but that look.

Also: ``escalator status`` lists the check as held by downtime meanwhile,
and a host downtime scheduled after the service's last event (which no
service event carries) keeps the collector's hands off until it ends; and
the Icinga 2 API's ``downtime_depth`` as the collector reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from escalator_handlers import spool
from escalator_handlers.monitoring.commandfile import CommandFile
from escalator_handlers.monitoring.downtimes import status_depths
from nagios_fixtures import HOST, schedule_downtime, service_status, start_nagios

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ESCALATOR = Path(sys.executable).parent / "escalator"
APP = "app"


def app_objects(state_file: Path) -> str:
    """web01/app: checked every 300 s, retried every 1 s, HARD at the second attempt."""
    return f"""
define service {{
    use escalated-service,generic-service
    host_name {HOST}
    service_description {APP}
    check_command escalator-test-flip!{state_file}
    check_interval 300
    retry_interval 1
    max_check_attempts 2
}}
"""


def write_config(tmp_path: Path, status_file: Path) -> Path:
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"""spool: {tmp_path / 'spool'}
journal: {tmp_path / 'journal.jsonl'}
quiescence: 1s
max_delay: 10s
levels:
  - name: fix
    quiescence: 60s
    steps:
      - shell: echo fix {{host}} >> {tmp_path / 'marker'}
        foreach: host
checks:
  - {{host: {HOST}, service: {APP}, level: fix}}
nagios:
  status_file: {status_file}
""")
    return conf


def journal(tmp_path: Path, kind: str) -> List[dict]:
    path = tmp_path / "journal.jsonl"
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("kind") == kind]


def app_events(tmp_path: Path) -> List[dict]:
    return [e for e in journal(tmp_path, "event") if e.get("service") == APP]


def hard(tmp_path: Path) -> List[dict]:
    return [e for e in app_events(tmp_path) if e.get("state") == "CRITICAL" and e.get("state_type") == "HARD"
            and e.get("source") is None]


def hard_check(ng) -> str:
    """status.dat's last_check of app once it shows CRITICAL HARD, else ''."""
    st = service_status(ng.status_file, HOST, APP) or {}
    return st["last_check"] if st.get("current_state") == "2" and st.get("state_type") == "1" else ""


def status_json(conf: Path) -> dict:
    out = subprocess.run([str(ESCALATOR), "--config", str(conf), "status", "--json"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def stop_collector(tmp_path: Path) -> Iterator[None]:
    """The handler spawns a one-shot collector that stays while a downtime holds a check back
    (and while the run's quiescence lasts): end it after the test."""
    yield
    deadline = time.monotonic() + 10
    while (pid := spool.collector_running(str(tmp_path / "spool"))) is not None:
        if pid > 0:
            os.kill(pid, signal.SIGTERM)
        if time.monotonic() > deadline:
            pytest.fail(f"collector (pid {pid}) still running 10 s after SIGTERM")
        time.sleep(0.1)


@contextlib.contextmanager
def collector_daemon(tmp_path: Path, conf: Path) -> Iterator[subprocess.Popen]:
    """``escalator collect --daemon``, stopped and reaped afterwards."""
    log = open(tmp_path / "collector.log", "wb")
    proc = subprocess.Popen([str(ESCALATOR), "--config", str(conf), "collect", "--daemon"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def break_app(ng, cf: CommandFile, state_file: Path) -> None:
    state_file.write_text("CRITICAL\n")
    cf.command("SCHEDULE_FORCED_SVC_CHECK", HOST, APP, int(time.time()))


@pytest.mark.usefixtures("stop_collector")
def test_a_check_still_critical_when_its_downtime_ends_is_acted_on_within_seconds(tmp_path):
    state_file = tmp_path / "app.state"
    state_file.write_text("OK\n")
    conf = tmp_path / "escalator.yaml"
    with start_nagios(tmp_path, config=conf, extra_objects=app_objects(state_file)) as ng:
        write_config(tmp_path, ng.status_file)
        ng.wait_for(lambda: service_status(ng.status_file, HOST, APP), timeout=15, what="app's first check")
        cf = CommandFile(str(ng.command_file))
        now = time.time()
        schedule_downtime(cf, HOST, APP, now - 1, now + 12, "maintenance")
        ng.wait_for(lambda: f"SERVICE DOWNTIME ALERT: {HOST};{APP};STARTED" in ng.log_text(), what="downtime start")
        break_app(ng, cf, state_file)
        ng.wait_for(lambda: hard(tmp_path), timeout=15, what="CRITICAL HARD in the journal")
        assert hard(tmp_path)[-1]["downtime"] == 1
        last_check = ng.wait_for(lambda: hard_check(ng), timeout=5, what="CRITICAL HARD in status.dat")

        # Held by downtime: status says so (text and --json), and nothing runs.
        report = status_json(conf)
        assert [(d["check"], d["state"], d["level"], d["why"]) for d in report["in_downtime"]] == [
            (f"{HOST}/{APP}", "CRITICAL", "fix", "in scheduled downtime")]
        assert report["failing"] == []
        text = subprocess.run([str(ESCALATOR), "--config", str(conf), "status"], capture_output=True,
                              text=True, timeout=30).stdout
        assert f"{HOST}/{APP}" in text and "-> fix: held by scheduled downtime (its own)" in text, text
        assert journal(tmp_path, "run") == [] and journal(tmp_path, "start") == []

        ng.wait_for(lambda: f"SERVICE DOWNTIME ALERT: {HOST};{APP};STOPPED" in ng.log_text(), timeout=20,
                    what="downtime end")
        ended = time.time()
        ng.wait_for(lambda: journal(tmp_path, "run"), timeout=15, what="a run after the downtime ended")
        took = time.time() - ended
        # Nagios did not check the service again: only the downtime's end explains the run.
        assert service_status(ng.status_file, HOST, APP)["last_check"] == last_check
    run = journal(tmp_path, "run")[0]
    assert run["outcome"] == "ok" and run["targets"] == {"fix": [HOST]}, run
    assert (tmp_path / "marker").read_text().splitlines() == [f"fix {HOST}"]
    noticed = [e for e in app_events(tmp_path) if e.get("noticed")]
    assert [(e["state"], e["downtime"], e["noticed"]) for e in noticed] == [
        (None, 0, "scheduled downtime ended (status.dat)")]
    assert took < 12, f"the run came {took:.1f} s after the downtime ended"


@pytest.mark.usefixtures("stop_collector")
def test_a_host_downtime_no_event_carries_holds_the_run_back_until_it_ends(tmp_path):
    state_file = tmp_path / "app.state"
    state_file.write_text("OK\n")
    conf = tmp_path / "escalator.yaml"
    with start_nagios(tmp_path, config=conf, extra_objects=app_objects(state_file)) as ng, \
            collector_daemon(tmp_path, write_config(tmp_path, ng.status_file)):
        ng.wait_for(lambda: service_status(ng.status_file, HOST, APP), timeout=15, what="app's first check")
        # The collector runs (and has read status.dat) before the downtime: only a new look can see it.
        ng.wait_for(lambda: (tmp_path / "journal.jsonl").exists(), timeout=15, what="the collector's start")
        cf = CommandFile(str(ng.command_file))
        now = time.time()
        # The host stays UP: no host event tells escalator of its downtime.
        schedule_downtime(cf, HOST, None, now - 1, now + 14, "host maintenance")
        ng.wait_for(lambda: f"HOST DOWNTIME ALERT: {HOST};STARTED" in ng.log_text(), what="host downtime start")
        ng.wait_for(lambda: status_depths(str(ng.status_file)).depth.get((HOST, None)) == 1, timeout=10,
                    what="the host's downtime in status.dat")
        break_app(ng, cf, state_file)
        ng.wait_for(lambda: hard(tmp_path), timeout=15, what="CRITICAL HARD in the journal")
        assert hard(tmp_path)[-1]["downtime"] == 0   # the service's own depth: the host's is not in it
        ng.wait_for(lambda: [e for e in journal(tmp_path, "event") if e.get("noticed")], timeout=10,
                    what="the host's downtime noticed before acting")
        assert journal(tmp_path, "start") == []
        report = status_json(conf)
        assert [(d["check"], d["why"]) for d in report["in_downtime"]] == [
            (f"{HOST}/{APP}", f"its host {HOST} is in scheduled downtime")]

        ng.wait_for(lambda: f"HOST DOWNTIME ALERT: {HOST};STOPPED" in ng.log_text(), timeout=20,
                    what="host downtime end")
        ng.wait_for(lambda: journal(tmp_path, "run"), timeout=15, what="a run after the host downtime ended")
    noticed = [(e["host"], e["service"], e["downtime"], e["noticed"])
               for e in journal(tmp_path, "event") if e.get("noticed")]
    assert noticed == [(HOST, None, 1, "scheduled downtime started (status.dat)"),
                       (HOST, None, 0, "scheduled downtime ended (status.dat)")]
    assert [r["outcome"] for r in journal(tmp_path, "run")] == ["ok"]


def test_icinga_api_depths_show_a_downtime_and_its_end(tmp_path):
    """The Icinga 2 side of the look-up: ``downtime_depth`` of the objects in downtime, read
    from a real Icinga 2 API; the check's event carries the depth, the API its end."""
    from escalator_handlers.config import NagiosFeedback
    from escalator_handlers.monitoring.downtimes import changes, icinga_depths
    from escalator_handlers.monitoring.icinga_api import IcingaClient
    from escalator_handlers.planning.state import State
    from icinga_fixtures import critical_via_api, start_icinga
    from nagios_fixtures import SERVICE
    from planner_fixtures import make_config

    with start_icinga(tmp_path, api=True) as ic:
        api = critical_via_api(ic, tmp_path)
        nagios = NagiosFeedback(icinga_api=api)
        client = IcingaClient.from_config(api)
        assert icinga_depths(nagios, time.time()).depth == {}
        now = time.time()
        schedule_downtime(client, HOST, SERVICE, now - 1, now + 600, "maintenance")
        schedule_downtime(client, HOST, None, now - 1, now + 600, "host maintenance")
        ic.wait_for(lambda: len(icinga_depths(nagios, time.time()).depth) == 2, what="both downtimes in the API")
        assert icinga_depths(nagios, time.time()).depth == {(HOST, SERVICE): 1, (HOST, None): 1}

        st = State(make_config(checks=[{"host": HOST, "service": SERVICE, "level": "vm"}]))
        st.apply({"kind": "event", "time": time.time(), "host": HOST, "service": SERVICE, "state": "CRITICAL",
                  "state_type": "HARD", "downtime": 1})
        client.action("remove-downtime", HOST, SERVICE)
        ic.wait_for(lambda: (HOST, SERVICE) not in icinga_depths(nagios, time.time()).depth,
                    what="the service downtime gone from the API")
        found = changes(st, [icinga_depths(nagios, time.time() + 1)], [(HOST, SERVICE)], time.time() + 1)
    assert sorted((r["service"] or "", r["downtime"], r["noticed"]) for r in found) == [
        ("", 1, "scheduled downtime started (icinga api)"),
        (SERVICE, 0, "scheduled downtime ended (icinga api)")]
