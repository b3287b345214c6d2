"""limits.per_host end to end: real handler and collectors, a restart in the middle,
`escalator status` and `escalator resume --host`."""

from __future__ import annotations

import json
import signal

import pytest

from collector_fixtures import Site, runs, stop, wait_for

pytestmark = pytest.mark.integration


def configure(site: Site) -> str:
    """converge never fixes web1/HTTP: every verdict says not converged, and it is tried again."""
    return str(site.write_config(
        [{"name": "converge", "quiescence": 0.2, "max_attempts": 10,
          "steps": [{"shell": f"echo converge {{host}} >> {site.out}/converge.txt", "foreach": "host"}]}],
        [{"service": "HTTP", "level": "converge"}],
        notify=[{"shell": f"printf '%s\\n' {{summary}} >> {site.out}/notify.txt"}],
        limits={"per_host": {"max_runs": 2, "within": "1h"}}))


def test_host_run_too_often_is_left_alone_across_a_restart_until_resume_host(site: Site) -> None:
    cfg = configure(site)
    collector = site.start()
    site.wait_ready(collector)
    site.event("web1", "CRITICAL", service="HTTP")
    [on] = site.wait_records("brake")
    assert on["host"] == "web1" and on["outcome"] == "on" and on["runs"] == 2
    assert len(runs(site.records(), "ok")) == 2
    wait_for(lambda: site.lines("notify.txt"), 10)
    [note] = site.lines("notify.txt")
    assert "limits.per_host" in note and "escalator resume --host web1" in note

    # A new collector rebuilds the same state: still hands off, no second page.
    assert stop(collector) == 0
    collector = site.start()
    site.wait_ready(collector)
    site.event("web1", "CRITICAL", service="HTTP", output="still broken")
    site.event("web2", "CRITICAL", service="HTTP")
    site.wait_records("run", 3, where=lambda r: r.get("outcome") == "ok")
    assert runs(site.records(), "ok")[2]["targets"] == {"converge": ["web2"]}
    status = site.cli("status", "--config", cfg).stdout
    assert "hands off:   web1: limits.per_host reached" in status
    assert json.loads(site.cli("status", "--json", "--config", cfg).stdout)["host_limits"]["web1"] == on["until"]
    # web2 is never fixed either: it gets its own episode; web1 was paged about once.
    assert len([n for n in site.lines("notify.txt") if "web1 was a target" in n]) == 1

    r = site.cli("resume", "--host", "web1", "--reason", "disk replaced", "--config", cfg)
    assert r.returncode == 0, r.stderr
    site.wait_records("run", where=lambda r: r.get("outcome") == "ok" and "web1" in r["targets"]["converge"]
                      and r["time"] > on["time"])
    [resumed] = site.records("resume")
    assert (resumed["host"], resumed["reason"]) == ("web1", "disk replaced")
    assert collector.poll() is None and stop(collector, signal.SIGTERM) == 0
