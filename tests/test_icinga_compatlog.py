"""Downtime in a real Icinga 2's compat log, read by the log parser.

A real Icinga 2 (127.0.0.1, temp dir) with its CompatLogger: overlapping
downtimes and one cancelled before it started, scheduled and removed through
its API.  The log says what README's "Replaying Nagios and Icinga logs"
says it does, and the parser's depth differs from the daemon's exactly
where README says it can.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from base64 import b64encode
from typing import List

import pytest

from escalator_handlers.monitoring.nagioslog import ParseStats, parse

from icinga_fixtures import API_USER, start_icinga
from nagios_fixtures import HOST, SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPATLOG = """
object CompatLogger "compatlog" {
  log_dir = LogDir
  rotation_method = "DAILY"
}
"""


def api(daemon, path: str, body: dict = None) -> dict:
    ctx = ssl.create_default_context(cafile=str(daemon.ca_file))
    auth = b64encode(f"{API_USER}:{daemon.api_password}".encode()).decode()
    req = urllib.request.Request(daemon.api_url + path, data=json.dumps(body).encode() if body else None,
                                 method="POST" if body else "GET",
                                 headers={"Accept": "application/json", "Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.code} {exc.read()[:500]!r}") from None


def schedule(daemon, start: float, end: float) -> str:
    result = api(daemon, "/v1/actions/schedule-downtime", {
        "type": "Service", "filter": f'host.name=="{HOST}" && service.name=="{SERVICE}"',
        "author": "test", "comment": "maintenance", "start_time": int(start), "end_time": int(end),
        "fixed": True})
    return result["results"][0]["name"]


def remove(daemon, name: str) -> None:
    api(daemon, "/v1/actions/remove-downtime", {"type": "Downtime", "downtime": name})


def depth(daemon) -> int:
    return int(api(daemon, f"/v1/objects/services/{HOST}!{SERVICE}")["results"][0]["attrs"]["downtime_depth"])


def downtime_lines(daemon) -> List[str]:
    log = daemon.root / "d" / "log" / "icinga.log"
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if "DOWNTIME ALERT" in line]


def test_icinga2_compat_log_counts_overlapping_downtimes_and_cancels_unstarted_ones(tmp_path):
    with start_icinga(tmp_path, api=True, extra=COMPATLOG) as ic:
        truth = []

        def step(action, lines: int) -> None:
            action()
            ic.wait_for(lambda: len(downtime_lines(ic)) >= lines, timeout=15, what=f"{lines} downtime lines")
            truth.append(depth(ic))

        now = time.time()
        first = second = None

        def add_first():
            nonlocal first
            first = schedule(ic, now - 1, now + 600)

        def add_second():
            nonlocal second
            second = schedule(ic, now - 1, now + 600)

        step(add_first, 1)
        step(add_second, 2)
        future = schedule(ic, now + 3000, now + 3600)       # never starts
        step(lambda: remove(ic, future), 3)
        step(lambda: remove(ic, first), 4)
        step(lambda: remove(ic, second), 5)

        lines = downtime_lines(ic)
        words = [line.split(";")[2] for line in lines]
        assert words == ["STARTED", "STARTED", "CANCELLED", "CANCELLED", "CANCELLED"], lines
        assert all("Checkable has entered a period of scheduled downtime." in line for line in lines[:2])
        assert truth == [1, 2, 2, 1, 0]                     # what Icinga 2 itself says

        st = ParseStats()
        parsed = [o[6] for o in parse(iter(line + "\n" for line in lines), st) if o[3] is None]
        # Overlapping downtimes count; the CANCELLED of the one that never started
        # cannot be told apart, so the replay leaves downtime one line early.
        assert parsed == [1, 2, 1, 0, 0] and st.unparsed == 0
