"""Config management in flight: a chef step waits while chef-client's run lock is held, a
level's busy_check is asked before each per-host step, and a host still busy is skipped."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace

from escalator_handlers.config import Step
from escalator_handlers.config.load import load_config_text
from escalator_handlers.steps import StepRunner

from test_steps_chef import FakeChef, chef_step


def hold_lock(chef: FakeChef, lock, seconds: float) -> subprocess.Popen:
    """A chef-client run already converging: the stand-in holding ``lock`` for ``seconds``."""
    p = subprocess.Popen(["env", f"FAKE_CHEF_LOCKFILE={lock}", f"FAKE_CHEF_SLEEP={seconds}", str(chef.path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


def test_a_chef_step_waits_for_a_run_in_flight_then_runs_once_it_ended(tmp_path):
    chef = FakeChef(tmp_path / "chefbin")
    lock = tmp_path / "cache" / "chef-client-running.pid"
    chef.set(lockfile=lock)
    other = hold_lock(chef, lock, 1)
    try:
        step = replace(chef_step(chef, file_cache_path=str(tmp_path / "cache")), busy_wait=10)
        with StepRunner() as runner:
            r = runner.run(step, {})
    finally:
        other.wait(timeout=10)
    assert r.ok and r.skipped is None and r.exit == 0, r
    assert "[escalator] a converge is in flight (chef-client's run lock" in r.output
    assert "converge in flight ended after" in r.output
    # Ours started after the other released the lock: it never had to wait on it itself.
    assert "will wait for it to finish" not in r.output
    assert len(chef.runs()) == 2


def test_a_lock_file_left_behind_by_a_finished_run_is_no_reason_to_wait(tmp_path):
    chef = FakeChef(tmp_path / "chefbin")
    lock = tmp_path / "cache" / "chef-client-running.pid"
    chef.set(lockfile=lock)
    hold_lock(chef, lock, 0).wait(timeout=10)
    assert lock.exists()  # chef-client leaves its pid file behind
    t0 = time.monotonic()
    with StepRunner() as runner:
        r = runner.run(replace(chef_step(chef, file_cache_path=str(tmp_path / "cache")), busy_wait=10), {})
    assert r.ok and "in flight" not in r.output and time.monotonic() - t0 < 5


def test_a_host_still_busy_after_busy_wait_is_skipped_and_the_step_never_starts(tmp_path):
    flag = tmp_path / "converging-web01"
    flag.write_text("")
    cfg = load_config_text(f"""
levels:
  - name: converge
    busy_check: {{shell: "test ! -e {tmp_path}/converging-{{host}} || {{ echo puppet agent running; exit 1; }}"}}
    busy_wait: 0.6s
    steps:
      - shell: echo ran {{host}} >> {tmp_path}/ran
        foreach: host
""")
    step: Step = cfg.levels[0].steps[0]
    t0 = time.monotonic()
    with StepRunner() as runner:
        results = runner.run_foreach(step, ["web01", "web02"], {"hosts": ["web01", "web02"]})
    busy, free = results
    assert busy.host == "web01" and busy.ok and busy.exit is None
    assert busy.skipped.startswith("a converge is already in flight (busy_check ")
    assert "exit 1: puppet agent running" in busy.skipped and "waited 0.6s" in busy.skipped
    assert time.monotonic() - t0 >= 0.6
    assert free.host == "web02" and free.exit == 0 and free.skipped is None
    assert (tmp_path / "ran").read_text() == "ran web02\n"
