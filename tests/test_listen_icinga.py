"""``escalator listen`` against the real Debian Icinga 2, its API on 127.0.0.1, NO EventCommand.

Icinga runs the test services without an event handler: everything the
collector learns comes through ``escalator listen`` (the event stream plus
its catch-up from /v1/objects).  A real ``escalator collect --daemon`` acts;
its step repairs the service (the check's state file goes back to OK).
Cadence: checks every 1-2 s, max_check_attempts 2, the level's quiescence
0.5 s (shorter than a check interval).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import List

import pytest

from collector_fixtures import ESCALATOR, Site, runs
from icinga_fixtures import API_USER, IcingaDaemon, restart_icinga, start_icinga
from nagios_fixtures import HOST, SERVICE
from spool_fixtures import handler_env, wait_for

pytestmark = pytest.mark.slow

DB = "DB"


def db_service(state_dir: Path) -> str:
    """A second service on the test host, also without an event handler."""
    (state_dir / "db.state").write_text("OK\n")
    return f"""
object Service "{DB}" {{
  host_name = "{HOST}"
  check_command = "escalator-test-flip"
  vars.flip_file = "{state_dir}/db.state"
  check_interval = 2s
  retry_interval = 1s
  max_check_attempts = 2
}}
"""


def configure(site: Site, ic: IcingaDaemon, quiescence: float = 0.5) -> Path:
    pw = site.root / "api-password"
    pw.write_text(f"{ic.api_password}\n")
    fix = (f"echo fix {{host}} >> {site.out}/fix.txt; echo OK > {ic.root}/service.state; "
           f"echo OK > {site.root}/db.state")
    return site.write_config(
        [{"name": "fix", "quiescence": quiescence, "steps": [{"shell": fix, "foreach": "host"}]}],
        [{"host": HOST, "service": SERVICE, "level": "fix"}, {"host": HOST, "service": DB, "level": "fix"}],
        quiescence=0.3,
        nagios={"icinga_api": {"url": ic.api_url, "user": API_USER, "password_file": str(pw),
                               "ca_file": str(ic.ca_file)}, "host": "monitor"})


def start_listen(site: Site, *args: str) -> subprocess.Popen:
    log = site.root / f"listen-{len(site.procs)}.log"
    with open(log, "wb") as err:
        p = subprocess.Popen([ESCALATOR, "listen", "--config", str(site.config), "--daemon", "-v",
                              "--watchdog", "20s", *args],
                             stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, env=handler_env())
    site.procs.append(p)
    return p


def listening(site: Site) -> bool:
    """listen.json says connected: a catch-up done, no gap open."""
    import json

    try:
        data = json.loads((site.root / "listen.json").read_text())
    except (OSError, ValueError):
        return False
    return data.get("gap") is None and data.get("heard") is not None


def fix_runs(site: Site) -> List[dict]:
    return [r for r in runs(site.records("run")) if r.get("outcome") == "ok"]


def documented_permissions() -> List[str]:
    """The least-privilege ApiUser's permissions, as docs/icinga.rst lists them."""
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "icinga.rst").read_text()
    block = text.split('object ApiUser "escalator"', 1)[1].split("]", 1)[0]
    return re.findall(r'"([a-z-]+(?:/[A-Za-z-]+)+)"', block)


def test_critical_hard_heard_through_the_stream_is_acted_on(site: Site, tmp_path: Path):
    """With exactly the ApiUser permissions docs/icinga.rst gives (stream, catch-up, feedback)."""
    perms = documented_permissions()
    assert "events/StateChange" in perms and "actions/process-check-result" in perms
    with start_icinga(tmp_path, api=True, event_handlers=False, permissions=perms) as ic:
        configure(site, ic)
        listen = start_listen(site)
        wait_for(lambda: listening(site), 20, what="listen connected")
        site.start()
        ic.flip("CRITICAL", output="synthetic failure")
        [run] = site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=30)
        assert run["levels"] == ["fix"] and run["targets"] == {"fix": [HOST]}
        assert site.lines("fix.txt") == [f"fix {HOST}"]
        events = [e for e in site.records("event") if e.get("service") == SERVICE]
        hard = [e for e in events if e["state"] == "CRITICAL" and e["state_type"] == "HARD"]
        assert hard and hard[0]["source"] == "icinga-stream"
        assert hard[0]["attempt"] == 1                       # Icinga's HARD transition says 1
        assert hard[0]["check_time"] <= hard[0]["time"]      # execution_start, not the emission time
        assert {e.get("source") for e in site.records("event")} <= {"icinga-stream", "icinga-catch-up"}
        assert site.records("feedback") == []                # comments and passive results through the API
        # The repair is heard too: the recovery comes through the stream.
        site.wait_records("event", where=lambda e: e.get("service") == SERVICE and e["state"] == "OK"
                          and e["time"] > run["time"], timeout=15)
        assert listen.poll() is None
        listen.send_signal(signal.SIGTERM)
        assert listen.wait(timeout=10) == 0
        assert ic.api_password not in site.journal.read_text()
        assert ic.api_password not in (site.root / "listen-0.log").read_text()


def api_client(ic: IcingaDaemon, author: str = "alice"):
    from escalator_handlers.monitoring.icinga_api import IcingaClient

    return IcingaClient(str(ic.api_url), API_USER, str(ic.api_password), str(ic.ca_file), author=author)


def hard_in_icinga(ic: IcingaDaemon, service: str) -> bool:
    [obj] = api_client(ic).objects("services", "host.name==h && service.name==s", ["state", "state_type"],
                                   filter_vars={"h": HOST, "s": service})
    return obj.get("state") == 2 and obj.get("state_type") == 1


def test_acknowledgement_set_through_the_api_keeps_hands_off_and_its_removal_releases(site: Site, tmp_path: Path):
    with start_icinga(tmp_path, api=True, event_handlers=False) as ic:
        configure(site, ic)
        start_listen(site)
        wait_for(lambda: listening(site), 20, what="listen connected")
        ic.flip("CRITICAL", output="disk gone")
        wait_for(lambda: hard_in_icinga(ic, SERVICE), 20, what="HARD in Icinga")
        alice = api_client(ic)
        alice.acknowledge(HOST, SERVICE, "replacing the disk")
        site.start()
        skipped = site.wait_records("run", where=lambda r: r.get("outcome") == "skipped", timeout=20)[0]
        assert skipped["reason"] == f"hands off {HOST}: acknowledged by alice: replacing the disk"
        assert not site.lines("fix.txt")
        alice.action("remove-acknowledgement", HOST, SERVICE)   # AcknowledgementCleared on the stream
        site.wait_records("ack", where=lambda r: r.get("outcome") == "removed", timeout=20)
        site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=20)
        assert site.lines("fix.txt") == [f"fix {HOST}"]


def test_listen_killed_while_a_service_fails_leaves_a_gap_and_the_catch_up_acts(site: Site, tmp_path: Path):
    with start_icinga(tmp_path, api=True, event_handlers=False, extra=db_service(site.root)) as ic:
        configure(site, ic)
        listen = start_listen(site)
        wait_for(lambda: listening(site), 20, what="listen connected")
        site.start()
        listen.kill()
        listen.wait(timeout=10)
        (site.root / "db.state").write_text("CRITICAL\n")
        wait_for(lambda: hard_in_icinga(ic, DB), 20, what="DB HARD in Icinga (nobody listening)")
        assert not site.lines("fix.txt")
        start_listen(site)
        [gap] = site.wait_records("gap", where=lambda r: r.get("outcome") == "closed", timeout=20)
        assert gap["reason"].startswith("escalator listen was not running")
        assert gap["start"] < gap["end"]
        [run] = site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=20)
        assert [c.get("service") for c in run["checks"]] == [DB]
        [ev] = [e for e in site.records("event") if e.get("service") == DB and e["state"] == "CRITICAL"]
        assert ev["source"] == "icinga-catch-up" and ev["state_type"] == "HARD"
        history = site.cli("history", "--config", str(site.config))
        assert "GAP  escalator could not hear Icinga" in history.stdout, history.stdout
        assert "escalator listen was not running" in history.stdout


def test_icinga_restarted_mid_stream_reconnects_with_a_gap_and_no_duplicate_run(site: Site, tmp_path: Path):
    with start_icinga(tmp_path, api=True, event_handlers=False) as ic:
        # Judged once the repair's OK result is in: Icinga 2.13 sends events up to 5 s late.
        configure(site, ic, quiescence=7)
        start_listen(site)
        wait_for(lambda: listening(site), 20, what="listen connected")
        site.start()
        ic.flip("CRITICAL")
        site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=30)
        [verdict] = site.wait_records("verdict", timeout=15)
        assert verdict["converged"] is True
        restart_icinga(ic)

        def reconnected() -> bool:
            gaps = site.records("gap")
            closed = [g for g in gaps if g["outcome"] == "closed"]
            return bool(closed) and len(closed) == len(gaps) - len(closed) and listening(site)
        wait_for(reconnected, 30, what="a gap opened and closed again")
        gap = site.records("gap")[0]
        assert gap["outcome"] == "open" and gap["reason"] == "Icinga closed the event stream"
        site.wait_settled()
        assert len(fix_runs(site)) == 1 and site.lines("fix.txt") == [f"fix {HOST}"]
