"""Operator trust, item 9: one rule for skipped records and pages.

A decision not to act is journalled once per episode, and a check that joins
the episode later gets a small record of its own (not the whole list again);
escalator pages once per episode when it holds itself back (limits, an
exhausted level), never for the operator's own word (pause, hold); a run cut
short by the operator is no failure; a notification with no ``notify:`` steps
says it reached nobody, and ``validate`` warns about that config.
"""

from __future__ import annotations

import json
import subprocess

from collector_fixtures import ESCALATOR, Site, handler_env, runs

LEVELS = [{"name": "vm", "max_attempts": 1, "quiescence": 0.3,
           "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]}]


def setup(site: Site, notify: bool = True) -> None:
    levels = json.loads(json.dumps(LEVELS).replace("OUT", str(site.out)))
    site.write_config(levels, [{"host": "*", "level": "vm"}],
                      notify=[{"shell": f"echo {{summary}} >> {site.out}/pages"}] if notify else None)


def collect(site: Site) -> subprocess.CompletedProcess:
    return subprocess.run([ESCALATOR, "collect", "--config", str(site.config)], capture_output=True,
                          text=True, timeout=60, env=handler_env())


def test_a_held_host_failing_with_another_is_recorded_like_alone_and_never_paged(site: Site) -> None:
    setup(site)
    assert site.cli("hold", "--host", "web-01", "--config", str(site.config)).returncode == 0
    site.event("web-01", "DOWN")
    site.event("web-03", "DOWN")
    assert collect(site).returncode == 0
    recs = site.records()
    held = [r for r in recs if r["kind"] == "run" and r.get("skip_key") == "held-host"]
    assert len(held) == 1 and [c["host"] for c in held[0]["checks"]] == ["web-01"]
    assert [r["targets"]["vm"] for r in runs(recs)] == [["web-03"]]
    # web-03 stays DOWN, so vm (max_attempts 1) is exhausted and paged -- about web-03 only
    assert not [p for p in site.lines("pages") if "web-01" in p]
    assert not [r for r in recs if r["kind"] == "notify" and r["reason"] == "held-host"]


def test_pause_never_pages_and_collect_does_not_fail_because_of_it(site: Site) -> None:
    setup(site)
    assert site.cli("pause", "--config", str(site.config)).returncode == 0
    for h in ("web-01", "web-02"):
        site.event(h, "DOWN")
    r = collect(site)
    assert r.returncode == 0, r.stderr
    skipped = [x for x in site.records("run") if x["outcome"] == "skipped"]
    assert len(skipped) == 1 and len(skipped[0]["checks"]) == 2
    site.event("web-03", "DOWN")  # joins the paused episode: a small record of its own
    assert collect(site).returncode == 0
    skipped = [x for x in site.records("run") if x["outcome"] == "skipped"]
    assert len(skipped) == 2 and skipped[1]["continued"] is True
    assert [c["host"] for c in skipped[1]["checks"]] == ["web-03"]
    assert not site.lines("pages") and not site.records("notify")


def test_a_notification_with_no_notify_steps_says_it_reached_nobody(site: Site) -> None:
    setup(site, notify=False)
    v = site.cli("validate", str(site.config))
    assert v.returncode == 0 and "nothing can reach an administrator" in v.stderr
    site.event("web-01", "DOWN")  # never recovers: vm (max_attempts 1) is exhausted
    r = collect(site)
    assert r.returncode == 0, r.stderr
    (note,) = site.records("notify")
    assert note["reason"] == "exhausted" and note["channels"] == 0
    assert note["undelivered"] == "no notify steps configured"
    assert "notification NOT sent (no notify steps configured)" in r.stderr
