"""Operator trust, item 8: the operator's word and every check's last state survive
any number of logrotate rotations (the shipped snippet: .1, then .2.gz...) and the
loss or corruption of the state snapshot."""

from __future__ import annotations

import json
import os

from collector_fixtures import Site
from test_collector import rotate

LEVELS = [{"name": "vm", "quiescence": 60, "max_attempts": 1,
           "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]}]


def setup(site: Site) -> None:
    site.write_config(json.loads(json.dumps(LEVELS).replace("OUT", str(site.out))), [{"host": "*", "level": "vm"}])


def cli(site: Site, *args: str):
    r = site.cli(*args, "--config", str(site.config))
    assert r.returncode == 0, r.stderr
    return r


def status(site: Site) -> dict:
    return json.loads(cli(site, "status", "--json").stdout)


def test_pause_holds_and_failing_checks_survive_rotations_and_a_lost_snapshot(site: Site) -> None:
    setup(site)
    cli(site, "pause", "--reason", "storage migration")
    cli(site, "hold", "--host", "db-*", "--reason", "by hand")
    for h in ("web-01", "web-02", "db-01"):
        site.event(h, "DOWN")
    cli(site, "hold", "--host", "lb-01")  # journals the events (no collector runs: paused)
    for n in range(4):  # four rotations: .1, .2.gz, .3.gz, .4.gz
        rotate(site)
        cli(site, "hold", "--host", f"extra-{n}")  # something written to each new journal
    names = sorted(os.listdir(site.root))
    assert "journal.jsonl.1" in names and "journal.jsonl.2.gz" in names and "journal.jsonl.4.gz" in names
    for damage in ("none", "lost", "corrupt", "lost, and old journals gone"):
        snapshot = site.root / "state.json"
        if damage == "lost" or damage.startswith("lost,"):
            snapshot.unlink(missing_ok=True)
        if damage == "corrupt":
            snapshot.write_text('{"journal": {"dev": 1, "ino": 2, "offset": 3}, "state": {torn')
        if damage.startswith("lost,"):
            for name in os.listdir(site.root):  # as `rotate 1` would have left it
                if name.startswith("journal.jsonl.") and name != "journal.jsonl.1":
                    os.unlink(site.root / name)
        s = status(site)
        got = (s["paused"], s["pause_reason"], sorted(h["label"] for h in s["holds"]),
               sorted(f["check"] for f in s["failing"]))
        assert got == (True, "storage migration",
                       ["db-*", "extra-0", "extra-1", "extra-2", "extra-3", "lb-01"],
                       ["db-01", "web-01", "web-02"]), damage
    assert not site.lines("vm")


def test_runs_and_their_quiescence_survive_rotations_and_a_lost_snapshot(site: Site) -> None:
    setup(site)
    site.event("web-01", "DOWN")
    proc = site.start()
    site.wait_records("run")
    proc.terminate()
    proc.wait(timeout=10)
    assert status(site)["failing"][0]["check"] == "web-01"
    for _ in range(3):
        rotate(site)
        cli(site, "hold", "--host", "x")
        cli(site, "release", "--host", "x")
    (site.root / "state.json").unlink()
    for name in os.listdir(site.root):
        if name.startswith("journal.jsonl.") and name != "journal.jsonl.1":
            os.unlink(site.root / name)
    s = status(site)
    assert [f["check"] for f in s["failing"]] == ["web-01"]
    assert s["runs_last_hour"] == 1 and s["quiescence_left"] > 0  # the run and its quiescence carried
