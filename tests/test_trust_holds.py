"""Operator trust, item 4: ``escalator hold`` takes globs, expires, refuses nonsense."""

from __future__ import annotations

import json
import re

from collector_fixtures import Site

LEVELS = [{"name": "vm", "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]},
          {"name": "converge", "steps": [{"shell": "echo {host} >> OUT/converge", "foreach": "host"}]}]
RULES = [{"host": "*", "level": "vm"}, {"service": "HTTP", "level": "converge"}]


def setup(site: Site, **top) -> None:
    levels = json.loads(json.dumps(LEVELS).replace("OUT", str(site.out)))
    site.write_config(levels, RULES, **top)


def cli(site: Site, *args: str):
    return site.cli(*args, "--config", str(site.config))


def planned(site: Site) -> dict:
    r = cli(site, "plan", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_glob_hold_keeps_hands_off_every_matching_host(site: Site) -> None:
    setup(site)
    r = cli(site, "hold", "--host", "web-*", "--reason", "replacing the switch")
    assert r.returncode == 0, r.stderr
    for h in ("web-01", "web-02", "db-01"):
        site.event(h, "DOWN")
    assert planned(site)["targets"]["vm"] == ["db-01"]
    explain = cli(site, "plan", "--explain").stdout
    web2 = [" ".join(line.split()) for line in explain.splitlines() if line.startswith("  web-02 ")]
    assert web2 and web2[0].startswith("web-02 DOWN HARD held asks for level vm (1), but held by ") \
        and "(escalator hold web-*)" in web2[0], explain
    proc = site.start(daemon=False)
    assert proc.wait(timeout=30) == 0, site.log(proc)
    assert set(site.lines("vm")) == {"db-01"}  # re-converged while it stays DOWN: never web-*
    status = cli(site, "status").stdout
    assert "held:        web-*" in status and "replacing the switch" in status, status


def test_a_service_hold_holds_only_that_check(site: Site) -> None:
    setup(site)
    assert cli(site, "hold", "--host", "web-0[12]", "--service", "HTT*").returncode == 0
    site.event("web-01", "CRITICAL", service="HTTP")
    site.event("web-02", "DOWN")
    out = planned(site)
    assert out["targets"] == {"vm": ["web-02"], "converge": ["web-02"]}, out


def test_empty_and_control_character_names_are_refused(site: Site) -> None:
    setup(site)
    for args in (["--host", ""], ["--host", "  "], ["--host", "web\n01"], ["--host", "web-01", "--service", "a\x1bb"],
                 ["--host", "web-01", "--for", "soon"], ["--host", "web-01", "--for", "0"]):
        r = cli(site, "hold", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Error:" in r.stderr and "Traceback" not in r.stderr
    assert "held:" not in cli(site, "status").stdout
    assert not [r for r in site.records() if r["kind"] == "hold"]


def test_release_of_something_not_held_says_so(site: Site) -> None:
    setup(site)
    r = cli(site, "release", "--host", "web-01")
    assert r.returncode == 1 and "web-01 is not held" in r.stderr, r.stderr
    assert cli(site, "hold", "--host", "web-*").returncode == 0
    r = cli(site, "release", "--host", "web-01")
    assert r.returncode == 1 and "covered by web-*" in r.stderr, r.stderr
    r = cli(site, "release", "--host", "web-*")
    assert r.returncode == 0, r.stderr
    assert "held:" not in cli(site, "status").stdout


def test_a_hold_for_a_while_expires_by_itself(site: Site) -> None:
    setup(site)
    assert cli(site, "hold", "--host", "web-01", "--for", "1.5s").returncode == 0
    site.event("web-01", "DOWN")
    proc = site.start()
    (run,) = site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=20)
    (hold,) = site.records("hold")
    (rel,) = site.records("release")
    assert "hold expired" in rel["reason"]
    # Shown to people as it is journalled: ISO 8601, never a raw epoch.
    assert re.search(r"held since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ by ", rel["reason"]), rel
    assert run["time"] >= rel["time"] >= hold["until"]
    assert set(site.lines("vm")) == {"web-01"}
    assert proc.poll() is None
