"""Operator trust, item 3: the collector debounces on its own clock.

An event that claims to come from the future (a skewed clock, a typo in
``--time``) must not stall the collector while a real failure waits, nor win
over later observations; one claiming 1970 is no observation time either.
Both are recorded at the current time with ``claimed_time`` kept and a
warning said.  ``--time`` takes ISO 8601 as well as epoch seconds.
"""

from __future__ import annotations

import json
import subprocess
import time

from collector_fixtures import HANDLER, Site, handler_env
from escalator_handlers import spool

LEVELS = [{"name": "vm", "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]}]


def setup(site: Site) -> None:
    levels = json.loads(json.dumps(LEVELS).replace("OUT", str(site.out)))
    site.write_config(levels, [{"host": "*", "level": "vm"}], quiescence=0.5, max_delay=2)


def handler(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HANDLER, "--spool", str(site.spool), *args], env=handler_env(),
                          capture_output=True, text=True, timeout=30)


def test_an_event_from_the_future_neither_stalls_nor_outranks_real_failures(site: Site) -> None:
    setup(site)
    r = handler(site, "--host", "web-01", "--state", "DOWN", "--time", str(int(time.time()) + 3600))
    assert r.returncode == 0 and "in the future" in r.stderr, r.stderr
    site.event("web-02", "DOWN")
    proc = site.start()
    t0 = time.time()
    (run,) = site.wait_records("run", timeout=15)
    assert run["targets"]["vm"] == ["web-01", "web-02"]
    assert time.time() - t0 < 10  # quiescence 0.5 s, max_delay 2 s: not an hour
    ev = [e for e in site.records("event") if e["host"] == "web-01"][0]
    assert ev["claimed_time"] > ev["time"] + 3000 and ev["time"] <= ev["arrived"]
    # A later real recovery wins over the claimed-future DOWN.
    site.event("web-01", "UP")
    site.wait_records("event", 3)
    assert proc.poll() is None


def test_an_event_written_to_the_spool_by_another_tool_is_clamped_by_the_collector(site: Site) -> None:
    setup(site)
    spool.append(str(site.spool), {"time": time.time() + 86400, "host": "web-03", "service": None,
                                   "state": "DOWN", "state_type": "HARD"})
    spool.append(str(site.spool), {"time": 1000.0, "host": "web-04", "service": None,
                                   "state": "DOWN", "state_type": "HARD"})
    proc = site.start()
    (run,) = site.wait_records("run", timeout=15)
    assert run["targets"]["vm"] == ["web-03", "web-04"]
    evs = {e["host"]: e for e in site.records("event")}
    assert "in the future" in evs["web-03"]["clamped"] and "before 2000" in evs["web-04"]["clamped"]
    assert evs["web-04"]["claimed_time"] == 1000.0
    assert "recorded at the current time" in site.log(proc)


def test_handler_time_takes_iso_8601_and_epoch(site: Site) -> None:
    for value, expected in (("2026-11-29T03:00:00Z", 1795921200.0), ("2026-11-29T04:00:00+01:00", 1795921200.0),
                            ("2026-11-29 03:00:00", 1795921200.0), ("1795921200", 1795921200.0)):
        r = handler(site, "--host", "h", "--state", "DOWN", "--time", value)
        assert r.returncode == 0, r.stderr
        rec = json.loads((site.spool / "events.jsonl").read_text().splitlines()[-1])
        assert rec["time"] == expected and "claimed_time" not in rec, (value, rec)
    r = handler(site, "--host", "h", "--state", "DOWN", "--time", "1000")
    assert r.returncode == 0 and "before 2000" in r.stderr
    rec = json.loads((site.spool / "events.jsonl").read_text().splitlines()[-1])
    assert rec["claimed_time"] == 1000.0 and rec["time"] > 1.7e9
