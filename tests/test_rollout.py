"""Rollouts through the public commands: ``escalator collect`` acting, the real handler
recording what the monitoring says, and the journal, ``status`` and ``history`` read back.

The test plays the monitoring: after each wave's run it reports the hosts the run
fixed as OK (with ``escalator-handler``), the way Nagios would report a recovery
on their next check, before the level's quiescence ends and the wave is judged.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from collector_fixtures import Site, stop

HOSTS = [f"node{i:02d}" for i in range(1, 13)]


def write_site(site: Site, *, quiescence: float, rollout: dict, step: str, concurrency: int = 10) -> None:
    site.write_config(
        levels=[{"name": "converge", "quiescence": quiescence, "rollout": rollout, "max_attempts": 3,
                 "steps": [{"shell": step, "foreach": "host", "concurrency": concurrency}]},
                {"name": "deploy", "quiescence": quiescence,
                 "steps": [{"shell": f"echo {{hosts}} >> {site.out}/deploy"}]}],
        checks=[{"service": "app", "level": "converge"}],
        notify=[{"shell": f"echo {{summary}} >> {site.out}/pages"}])


def fail_all(site: Site, hosts: Sequence[str]) -> None:
    for h in hosts:
        site.event(h, "CRITICAL", "app", output="app down")


def recover(site: Site, hosts: Sequence[str]) -> None:
    for h in hosts:
        site.event(h, "OK", "app", output="app up")


def wave_runs(site: Site) -> List[dict]:
    return [r for r in site.records("run") if r.get("rollout") and r.get("outcome") != "skipped"]


def test_twelve_hosts_canary_one_waves_half_run_one_then_six_then_five_each_after_a_converged_verdict(site):
    write_site(site, quiescence=1.5, rollout={"canary": 1, "waves": "50%", "max_failed": 0},
               step=f"echo {{host}} >> {site.out}/converge")
    fail_all(site, HOSTS)
    p = site.start()
    try:
        for n in (1, 2, 3):
            run = site.wait_records("run", n, timeout=30, where=lambda r: bool(r.get("rollout")))[-1]
            recover(site, run["targets"]["converge"])  # the monitoring sees them fixed
        end = site.wait_records("rollout", 2, timeout=30)[-1]
    finally:
        stop(p)
    assert end["outcome"] == "done" and end["failed"] == [] and end["not_started"] == []
    assert end["converged"] == HOSTS
    runs = wave_runs(site)
    assert [r["wave"] for r in runs] == [1, 2, 3] and all(r["waves"] == 3 for r in runs)
    assert [r["targets"]["converge"] for r in runs] == [HOSTS[:1], HOSTS[1:7], HOSTS[7:]]
    # Later levels of the run go per wave, for that wave's hosts.
    assert [r["targets"]["deploy"] for r in runs] == [HOSTS[:1], HOSTS[1:7], HOSTS[7:]]
    lines = site.lines("converge")  # hosts of one wave run concurrently: in any order
    assert [lines[:1], sorted(lines[1:7]), sorted(lines[7:])] == [HOSTS[:1], HOSTS[1:7], HOSTS[7:]]
    # Each wave only after the previous one's converged verdict.
    verdicts = {v["run_id"]: v for v in site.records("verdict")}
    starts = site.records("start")
    for prev, nxt in zip(runs, runs[1:]):
        v = verdicts[prev["run"]]
        assert v["converged"] and v["rollout_outcome"] == "continue"
        start = next(s for s in starts if s["run"] == nxt["run"])
        assert start["time"] >= v["time"]
    assert not (site.out / "pages").exists()
    hist = site.cli("history", "--config", str(site.config))
    assert hist.returncode == 0, hist.stderr
    assert "(rollout wave 2 of 3)" in hist.stdout and "ROLLOUT  level converge done at wave 3 of 3" in hist.stdout


def test_a_canary_that_does_not_converge_touches_no_other_host_and_pages_once(site):
    write_site(site, quiescence=1.0, rollout={"canary": 1, "waves": 4},
               step=f"echo {{host}} >> {site.out}/converge")
    fail_all(site, HOSTS[:6])
    p = site.start()
    try:
        end = site.wait_records("rollout", 2, timeout=30)[-1]
        site.wait_records("step", 1, timeout=10, where=lambda r: r.get("level") == "notify")
        site.wait_settled()
        status = site.cli("status", "--config", str(site.config))
    finally:
        stop(p)
    assert end["outcome"] == "stopped" and end["reason"] == "the canary did not converge"
    assert end["done"] == ["node01"] and end["failed"] == ["node01"] and end["converged"] == []
    assert end["not_started"] == HOSTS[1:6]
    assert site.lines("converge") == ["node01"]
    pages = site.lines("pages")
    assert len(pages) == 1 and len(site.records("notify")) == 1
    assert "rollout of level converge stopped at wave 1 of 3" in pages[0]
    assert "failed: node01" in pages[0] and "not started: node02, node03, node04, node05, node06" in pages[0]
    # The level is held: no other run started, however long the checks keep failing.
    assert len(wave_runs(site)) == 1 and len(site.records("start")) == 1
    assert status.returncode == 0, status.stderr
    assert "held level:  converge: rollout stopped at wave 1 of 3: the canary did not converge" in status.stdout
    assert "rollout:     last one stopped at wave 1 of 3" in status.stdout


def test_a_collector_killed_mid_wave_is_followed_by_one_that_continues_without_running_a_host_twice(site):
    # Wave 2 (6 hosts, 2 at a time, each step 1 s) is killed while its first two run:
    # the next collector closes it as interrupted, counts only the hosts it touched as
    # done, and the hosts it never reached go to the next wave.
    step = (f"echo {{host}} begin >> {site.out}/steps; "
            f"case {{host}} in node01) ;; *) sleep 1 ;; esac; echo {{host}} end >> {site.out}/steps")
    write_site(site, quiescence=1.5, rollout={"canary": 1, "waves": "50%"}, step=step, concurrency=2)
    fail_all(site, HOSTS)
    p = site.start()
    try:
        first = site.wait_records("run", 1, timeout=30, where=lambda r: bool(r.get("rollout")))[-1]
        recover(site, first["targets"]["converge"])
        site.wait_records("start", 2, timeout=30)
        begun = lambda: [x for x in site.lines("steps") if x.endswith("begin")]  # noqa: E731
        deadline = time.monotonic() + 10
        while len(begun()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(begun()) == 3, site.lines("steps")
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        touched = [x.split()[0] for x in begun()][1:]
        # The steps a kill left running finish on their own; then the monitoring sees them fixed.
        deadline = time.monotonic() + 10
        while sum(x.endswith("end") for x in site.lines("steps")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        recover(site, touched)
        # Between the two collectors, status and plan read the rollout from the journal.
        status = site.cli("status", "--config", str(site.config))
        assert "rollout:     level converge, wave 2 of 3: 1 of 12 hosts done (1 converged, 0 failed), " \
               "6 running, 5 waiting" in status.stdout, status.stdout
        plan = site.cli("plan", "--config", str(site.config))
        assert "rollout of level converge in progress: wave 2 of 3" in plan.stdout, plan.stdout
        p = site.start()
        closed = site.wait_records("run", 2, timeout=30, where=lambda r: bool(r.get("rollout")))[-1]
        assert closed["interrupted"] and closed["wave"] == 2
        seen = {first["run"], closed["run"]}
        deadline = time.monotonic() + 60
        ends: List[dict] = []
        while not ends:
            for r in wave_runs(site):
                if r["run"] not in seen:  # a wave ran: the monitoring sees its hosts fixed
                    seen.add(r["run"])
                    recover(site, r["targets"]["converge"])
            ends = [r for r in site.records("rollout") if r["outcome"] != "begin"]
            assert time.monotonic() < deadline, site.records()
            time.sleep(0.05)
    finally:
        stop(p)
    end = ends[-1]
    assert end["outcome"] == "done", end
    runs = wave_runs(site)
    assert [r["wave"] for r in runs] == list(range(1, len(runs) + 1))  # no wave started twice
    assert runs[2]["targets"]["converge"][:4] == [h for h in HOSTS[1:7] if h not in touched][:4]
    per_host: Dict[str, int] = {}
    for line in site.lines("steps"):
        host, what = line.split()
        if what == "begin":
            per_host[host] = per_host.get(host, 0) + 1
    assert per_host == {h: 1 for h in HOSTS}, per_host  # no host run twice
    assert sorted(end["converged"]) == HOSTS


@pytest.mark.slow
def test_a_host_where_chef_client_is_running_is_waited_for_then_skipped_with_a_record(site, sshd, tmp_path):
    from test_steps_chef import FakeChef

    chef = FakeChef(tmp_path / "chefbin")
    cache = tmp_path / "chef-cache"
    lock = cache / "chef-client-running.pid"
    chef.set(lockfile=lock, sleep=20)
    # A chef-client already converging there (started by its own timer, say), holding its lock.
    import subprocess

    running = subprocess.Popen([str(chef.path), "-o", "role[app]"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        o = sshd.options()
        site.write_config(
            levels=[{"name": "converge", "quiescence": 1, "busy_wait": 2,
                     "steps": [{"chef": {"host": "{host}", "port": o.port, "user": o.user, "key_file": o.key_file,
                                         "known_hosts": o.known_hosts, "run_list": ["role[app]"],
                                         "chef_client": str(chef.path), "file_cache_path": str(cache)},
                                "foreach": "host"}]}],
            checks=[{"service": "app", "level": "converge"}])
        site.event("127.0.0.1", "CRITICAL", "app")
        t0 = time.monotonic()
        p = site.start()
        try:
            step = site.wait_records("step", 1, timeout=30, where=lambda r: r.get("level") == "converge")[0]
        finally:
            stop(p)
        waited = time.monotonic() - t0
    finally:
        running.kill()
        running.wait(timeout=10)
    assert step["host"] == "127.0.0.1" and step["exit"] is None and "error" not in step
    assert step["skipped"].startswith(f"a converge is already in flight (chef-client's run lock {lock} is held)")
    assert "waited 2s" in step["skipped"]
    assert waited >= 2
    assert len(chef.runs()) == 1  # only the chef-client that was already running: no second one
    run = next(r for r in site.records("run") if r.get("outcome") != "skipped")
    assert run["outcome"] == "ok"
    hist = site.cli("history", "--config", str(site.config))
    assert "skipped: a converge is already in flight" in hist.stdout, hist.stdout


# -- the rules on a simulated clock, through `escalator test` ---------------------------------

CONFIG = """quiescence: 30s
levels:
  - name: converge
    quiescence: 2m
{rollout}    steps:
      - shell: echo converge {{host}}
        foreach: host
checks:
  - {{service: app, level: converge}}
notify:
  - shell: echo page {{summary}}
{limits}"""


def scenario(tmp_path: Path, *, rollout: str = "", limits: str = "", events: Sequence[str], expect: str,
             until: str = "") -> "subprocess.CompletedProcess[str]":
    import subprocess

    from collector_fixtures import ESCALATOR

    (tmp_path / "c.yaml").write_text(CONFIG.format(rollout=rollout, limits=limits))
    (tmp_path / "s.yaml").write_text("name: s\nconfig: c.yaml\nevents:\n" + "".join(f"  - {e}\n" for e in events)
                                     + "expect:\n" + expect + (f"until: {until}\n" if until else ""))
    return subprocess.run([ESCALATOR, "test", "-v", str(tmp_path / "s.yaml")], capture_output=True, text=True,
                          timeout=60)


def failing(hosts: Sequence[str], at: str = "0s") -> List[str]:
    return [f"{{at: {at}, host: {h}, service: app, state: CRITICAL}}" for h in hosts]


def ok(hosts: Sequence[str], at: str) -> List[str]:
    return [f"{{at: {at}, host: {h}, service: app, state: OK}}" for h in hosts]


def test_max_targets_rollout_rolls_out_more_hosts_than_the_limit_in_waves_of_the_limit(tmp_path):
    hosts = [f"n{i}" for i in range(1, 8)]
    r = scenario(tmp_path, limits="limits: {max_targets: {hosts: 3, rollout: true}}",
                 events=failing(hosts) + ok(hosts[:1], "1m") + ok(hosts[1:4], "3m") + ok(hosts[4:], "5m"),
                 expect="  runs:\n    - {wave: 1, targets: {converge: [n1]}}\n"
                        "    - {wave: 2, targets: {converge: [n2, n3, n4]}}\n"
                        "    - {wave: 3, targets: {converge: [n5, n6, n7]}}\n  notifications: 0\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ROLLOUT  level converge on 7 hosts in 3 waves (canary 1, then 3 at a time, max_failed 0)" in r.stdout


def test_max_targets_without_rollout_still_refuses_and_pages(tmp_path):
    r = scenario(tmp_path, limits="limits: {max_targets: 3}", events=failing([f"n{i}" for i in range(1, 8)]),
                 expect="  runs: []\n  notifications: 1\n  skipped: 1\n", until="1h")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_wave_within_max_failed_goes_on_and_one_past_it_stops_the_rollout(tmp_path):
    hosts = [f"n{i}" for i in range(1, 8)]
    # Wave 2 (n2, n3) leaves n3 failing: 1 failed, max_failed 1, go on; wave 3 (n4, n5)
    # leaves n5 failing: 2 failed, stop; n6 and n7 are never touched.
    r = scenario(tmp_path, rollout="    rollout: {canary: 1, waves: 2, max_failed: 1}\n",
                 events=failing(hosts) + ok(["n1"], "1m") + ok(["n2"], "3m") + ok(["n4"], "5m"),
                 expect="  runs:\n    - {wave: 1, targets: {converge: [n1]}}\n"
                        "    - {wave: 2, targets: {converge: [n2, n3]}}\n"
                        "    - {wave: 3, targets: {converge: [n4, n5]}}\n"
                        "  notifications: 1\n  rollouts_stopped: 1\n", until="3h")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stopped at wave 3 of 4: 2 hosts did not converge (max_failed 1)" in r.stdout
    assert "failed n3, n5; not started n6, n7" in r.stdout


def test_without_a_rollout_twelve_hosts_run_at_once_as_before(tmp_path):
    hosts = [f"n{i:02d}" for i in range(1, 13)]
    r = scenario(tmp_path, events=failing(hosts) + ok(hosts, "1m"),
                 expect="  runs:\n    - {targets: {converge: [" + ", ".join(hosts) + "]}}\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ROLLOUT" not in r.stdout and "wave" not in r.stdout


def test_a_scenario_expecting_the_wrong_wave_fails_and_says_which(tmp_path):
    r = scenario(tmp_path, rollout="    rollout: {canary: 1, waves: 50%}\n",
                 events=failing(["a", "b", "c"]), expect="  runs:\n    - {wave: 2, targets: {converge: [a]}}\n",
                 until="1h")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "- run 1: wave 2; targets converge: a" in r.stdout and "+ run 1: wave 1;" in r.stdout


def test_the_rollout_in_progress_survives_the_snapshot_and_a_checkpoint(tmp_path):
    # What a restarted collector reads back (state.json, or the checkpoint heading a
    # rotated journal) knows the rollout as the journal did: waves begun, hosts judged.
    from escalator_handlers import kinds
    from escalator_handlers.config import load_config
    from escalator_handlers.planning.state import State
    from escalator_handlers.scenario import load as load_scenario, run as run_scenario

    hosts = [f"n{i}" for i in range(1, 6)]
    scenario(tmp_path, rollout="    rollout: {canary: 1, waves: 2}\n",
             events=failing(hosts) + ok(["n1"], "1m"), expect="  notifications: 0\n", until="3m")
    cfg = load_config(str(tmp_path / "c.yaml"))
    outcome = run_scenario(load_scenario(str(tmp_path / "s.yaml")), cfg)
    st = State(cfg)
    for rec in outcome.records:
        st.apply(rec)
    a = st.rollouts.active
    assert a is not None and a.done == ["n1", "n2", "n3"] and a.converged == ["n1"] and a.start == "converge"
    again = State.from_json(cfg, json.loads(json.dumps(st.to_json())))
    assert again.rollouts.to_json() == st.rollouts.to_json()
    fresh = State(cfg)
    fresh.apply(json.loads(json.dumps(st.checkpoint(0.0))))
    assert fresh.rollouts.to_json() == st.rollouts.to_json()
    assert any(r.get("kind") == kinds.ROLLOUT for r in outcome.records)


def test_an_inconclusive_wave_verdict_stops_the_rollout_even_with_no_host_failing(tmp_path):
    # The verdict may one day say neither converged nor not (fresh results missing):
    # the rollout never goes on on the strength of such a verdict.
    from types import SimpleNamespace

    from escalator_handlers.config import load_config_text
    from escalator_handlers.planning.rollout import Active, Rollouts, after_verdict
    from escalator_handlers.planning.verdicts import notify_record

    cfg = load_config_text(CONFIG.format(rollout="    rollout: {canary: 1, waves: 2}\n", limits=""))
    active = Active("r1", "converge", ["a", "b", "c"], 1, 2, 0, waves=[["a"]], last_run="run1", start="converge")
    state = SimpleNamespace(rollouts=Rollouts(active), problems={})
    run = SimpleNamespace(id="run1", start_level="converge")
    for verdict in ({"converged": False, "inconclusive": True}, {"converged": None}, {"outcome": "inconclusive"}):
        rec = dict(verdict, time=1.0, kind="verdict", failing=[], failing_checks=[])
        out = after_verdict(state, cfg, run, [rec], 2.0, notify_record)
        assert out[0]["rollout_outcome"] == "stopped", verdict
        assert out[1]["kind"] == "rollout" and out[1]["outcome"] == "stopped"
        assert out[1]["reason"] == "the verdict on wave 1 was not converged (inconclusive)"
        assert out[2]["kind"] == "notify" and out[2]["reason"] == "rollout"
    ok = after_verdict(state, cfg, run, [{"time": 1.0, "kind": "verdict", "converged": True, "failing_checks": []}],
                       2.0, notify_record)
    assert [r["rollout_outcome"] for r in ok] == ["continue"]
