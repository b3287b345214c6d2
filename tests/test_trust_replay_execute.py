"""Operator trust, item 1: ``replay --execute`` never acts outside the collector."""

from __future__ import annotations

import json
from pathlib import Path

from collector_fixtures import Site, runs, wait_for


def setup(site: Site) -> None:
    site.write_config([{"name": "vm", "quiescence": 0.5,
                        "steps": [{"shell": f"echo {{host}} >> {site.out}/vm", "foreach": "host"}]}],
                      [{"host": "*", "level": "vm"}],
                      notify=[{"shell": f"echo {{summary}} >> {site.out}/pages"}])


def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"time": 1795500000.0 + i, "host": h, "state": "DOWN",
                                        "state_type": "HARD"}) + "\n"
                            for i, h in enumerate(("web-01", "web-02", "db-01"))))
    return path


def test_replay_execute_hands_events_to_the_collector_which_obeys_pause_and_holds(site: Site, tmp_path: Path):
    setup(site)
    cfg = str(site.config)
    assert site.cli("hold", "--host", "web-02", "--config", cfg).returncode == 0
    assert site.cli("pause", "--config", cfg).returncode == 0
    r = site.cli("replay", str(events_file(tmp_path)), "--execute", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert "handed 3 events" in r.stdout and str(site.spool) in r.stdout
    # Journalled by the collector, under the pause: recorded, nothing run, nobody paged.
    site.wait_records("run", where=lambda x: x.get("skip_key", "").startswith("paused"))
    evs = site.records("event")
    assert {e["host"] for e in evs} == {"web-01", "web-02", "db-01"} and {e["source"] for e in evs} == {"replay"}
    assert not site.lines("vm") and not site.lines("pages")
    assert site.cli("resume", "--config", cfg).returncode == 0
    wait_for(lambda: [x for x in runs(site.records()) if x["outcome"] == "ok"], 20, what="a run after resume")
    (run,) = [x for x in runs(site.records()) if x["outcome"] == "ok"][:1]
    assert run["targets"]["vm"] == ["db-01", "web-01"]  # web-02 held
    assert "web-02" not in site.lines("vm")
