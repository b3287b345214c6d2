"""A handler that Nagios runs but that cannot run: check_escalator --nagios-log says so (real Nagios 4).

web01/HTTP uses the shipped handler; web01/app an escalator handler
command whose script is not executable (as when the Nagios user cannot read
its interpreter): Nagios logs ``SERVICE EVENT HANDLER`` lines for both and
discards the exit code.  check_escalator is OK while every handler run
reached the spool or journal, CRITICAL once one recorded nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from escalator_handlers.monitoring.commandfile import CommandFile
from nagios_fixtures import HANDLER, HOST, SERVICE, start_nagios

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
APP = "app"


def objects(tmp_path: Path, spool: Path) -> str:
    broken = tmp_path / "escalator-handler-unrunnable"
    broken.write_bytes(HANDLER.read_bytes())
    broken.chmod(0o644)  # not executable: exec fails (sh: Permission denied, exit 126)
    (tmp_path / "app.state").write_text("OK\n")
    return f"""
define command {{
    command_name escalator-broken-handler
    command_line {broken} --spool {spool} --host '$HOSTNAME$' --service '$SERVICEDESC$' --state '$SERVICESTATE$' --state-type '$SERVICESTATETYPE$' --attempt '$SERVICEATTEMPT$'
}}

define service {{
    use generic-service
    host_name {HOST}
    service_description {APP}
    check_command escalator-test-flip!{tmp_path / 'app.state'}
    check_interval 300
    retry_interval 1
    max_check_attempts 2
    event_handler escalator-broken-handler
}}
"""


def check(conf: Path, log: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check_escalator"), "-C", str(conf), "--nagios-log", str(log),
                           "--handler-grace", "0", "-v"], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_check_escalator_is_critical_when_the_handler_nagios_ran_recorded_nothing(tmp_path):
    spool = tmp_path / "spool"
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"""spool: {spool}
journal: {tmp_path / 'journal.jsonl'}
levels:
  - name: fix
    steps: [{{shell: "true"}}]
checks: []
""")
    with start_nagios(tmp_path, spool=spool, extra_objects=objects(tmp_path, spool)) as ng:
        ng.flip("CRITICAL")  # HTTP: the working handler
        ng.wait_for(lambda: len([e for e in ng.events() if e.get("service") == SERVICE]) >= 2, timeout=15,
                    what="HTTP's SOFT and HARD events in the spool")
        collected = subprocess.run([str(BIN / "escalator"), "-C", str(conf), "collect"], capture_output=True,
                                   text=True, timeout=60)
        assert collected.returncode == 0, collected.stderr
        ok = check(conf, ng.log)
        assert f"SERVICE EVENT HANDLER: {HOST};{SERVICE};CRITICAL;HARD" in ng.log_text()
        assert ok.returncode == 0, ok.stdout + ok.stderr

        (tmp_path / "app.state").write_text("CRITICAL\n")
        CommandFile(str(ng.command_file)).command("SCHEDULE_FORCED_SVC_CHECK", HOST, APP, int(time.time()))
        ng.wait_for(lambda: f"SERVICE EVENT HANDLER: {HOST};{APP};CRITICAL;HARD" in ng.log_text(), timeout=15,
                    what="Nagios running the broken handler")
        bad = check(conf, ng.log)
    assert not [e for e in ng.events() if e.get("service") == APP]
    assert bad.returncode == 2, bad.stdout + bad.stderr
    first = bad.stdout.splitlines()[0]
    assert first.startswith("ESCALATOR CRITICAL - event handler ran 2 times without recording an event"), first
    assert f"{HOST}/{APP} CRITICAL HARD" in first and f"{HOST}/{APP} CRITICAL SOFT" in first
    assert f"{HOST}/{SERVICE}" not in first
    assert f"lost event: handler ran for {HOST}/{APP} CRITICAL HARD at " in bad.stdout


def test_check_escalator_warns_when_it_cannot_read_the_nagios_log(tmp_path):
    conf = tmp_path / "escalator.yaml"
    (tmp_path / "spool").mkdir(mode=0o700)
    (tmp_path / "journal.jsonl").write_text("")
    conf.write_text(f"spool: {tmp_path / 'spool'}\njournal: {tmp_path / 'journal.jsonl'}\n"
                    "levels: [{name: fix, steps: [{shell: 'true'}]}]\n")
    out = check(conf, tmp_path / "absent.log")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot tell whether the event handler records: cannot read" in out.stdout
    assert "Traceback" not in out.stderr
