"""Downtime in a real Nagios 4's log, read by the log parser.

A real Nagios 4 (temp dir, 127.0.0.1): two overlapping downtimes, restarts
(SIGHUP) in between, then both cancelled.  Nagios logs one STARTED for
depth 0 -> 1, again after each restart, and CANCELLED only at 0; the parser
reads that as on/off and agrees with the daemon's own depth being above 0.
Without state retention a restart drops the downtimes without a log line:
the case README lists where a replay cannot follow.
"""

from __future__ import annotations

import os
import signal
import time
from typing import List

import pytest

from escalator_handlers.monitoring.commandfile import CommandFile
from escalator_handlers.monitoring.statusdat import parse_blocks
from escalator_handlers.monitoring.nagioslog import ParseStats, parse

from nagios_fixtures import HOST, SERVICE, schedule_downtime, service_status, start_nagios

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def downtime_ids(ng) -> List[int]:
    return sorted(int(f["downtime_id"]) for kind, f in parse_blocks(ng.status_file.read_text(errors="replace"))
                  if kind == "servicedowntime")


def depth(ng) -> int:
    status = service_status(ng.status_file, HOST, SERVICE)
    return int(status["scheduled_downtime_depth"]) if status else -1


def log_lines(ng, *words: str) -> List[str]:
    return [line for line in ng.log.read_text(errors="replace").splitlines() if any(w in line for w in words)]


def restart(ng) -> None:
    starts = len(log_lines(ng, " starting..."))
    os.kill(ng.proc.pid, signal.SIGHUP)
    ng.wait_for(lambda: len(log_lines(ng, " starting...")) > starts and depth(ng) >= 0,
                timeout=20, what="Nagios restarted")


def test_nagios_logs_downtime_as_on_off_and_relogs_started_after_restarts(tmp_path):
    with start_nagios(tmp_path, main_extra="retain_state_information=1") as ng:
        cf = CommandFile(str(ng.command_file))
        now = time.time()
        schedule_downtime(cf, HOST, SERVICE, now - 1, now + 600, "one")
        schedule_downtime(cf, HOST, SERVICE, now - 1, now + 900, "two")
        ng.wait_for(lambda: depth(ng) == 2, timeout=15, what="two downtimes in effect")
        for n in (2, 3):
            restart(ng)
            ng.wait_for(lambda: len(log_lines(ng, ";STARTED;")) == n and depth(ng) == 2, timeout=15,
                        what="STARTED logged again after the restart, both downtimes back")
        first, second = downtime_ids(ng)
        cf.command("DEL_SVC_DOWNTIME", first)
        ng.wait_for(lambda: depth(ng) == 1, timeout=15, what="one downtime left")
        cf.command("DEL_SVC_DOWNTIME", second)
        ng.wait_for(lambda: depth(ng) == 0 and log_lines(ng, ";CANCELLED;"), timeout=15, what="no downtime")

        lines = log_lines(ng, "DOWNTIME ALERT", " starting...")
        words = [line.split(";")[2] if "DOWNTIME" in line else "restart" for line in lines]
        assert words == ["restart", "STARTED", "restart", "STARTED", "restart", "STARTED", "CANCELLED"], lines
        obs = list(parse(iter(line + "\n" for line in lines), ParseStats()))
        # On while the daemon's depth was 2, then 1 (no line for that), off at 0.
        assert [o[6] for o in obs] == [1, 1, 1, 0]


def test_without_retention_a_restart_drops_downtime_without_a_log_line(tmp_path):
    with start_nagios(tmp_path) as ng:        # the fixture's retain_state_information=0
        now = time.time()
        schedule_downtime(CommandFile(str(ng.command_file)), HOST, SERVICE, now - 1, now + 600, "one")
        ng.wait_for(lambda: depth(ng) == 1, timeout=15, what="downtime in effect")
        restart(ng)
        ng.wait_for(lambda: depth(ng) == 0 and not downtime_ids(ng), timeout=15, what="downtime forgotten")
        assert [line.split(";")[2] for line in log_lines(ng, "DOWNTIME ALERT")] == ["STARTED"]
