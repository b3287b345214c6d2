"""Storm control: an alert storm is one decision, a broken fix is not retried
forever, and the meltdown limits hold across collector restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from escalator_handlers import spool
from fault_fixtures import (
    Daemon, clean_env, escalator, lock_holder, of_kind, read_journal, wait_for, write_config,
)
from spool_fixtures import collector_settled

pytestmark = pytest.mark.faults

HOSTS, SERVICES = 50, 10

STORM_CONFIG = """quiescence: 1s
max_delay: 60s
levels:
  - name: converge
    quiescence: 0s
    max_attempts: 1
    steps:
      - shell: echo "$ESCALATOR_HOST" >> '{tmp}/converged'
        foreach: host
  - name: deploy
    steps:
      - shell: echo deploy >> '{tmp}/deployed'
checks:
  - {{service: "*", level: converge}}
notify:
  - shell: echo "$ESCALATOR_SUMMARY" >> '{tmp}/notified'
limits:
  max_targets: 100
  max_runs_per_hour: 10
"""

WRITER = """
import sys, time
from escalator_handlers import handler
w, spool_dir = int(sys.argv[1]), sys.argv[2]
for h in range(w * 5, w * 5 + 5):
    for s in range({services}):
        assert handler.main(["--host", f"node{{h:02d}}", "--service", f"svc{{s}}", "--state", "CRITICAL",
                             "--output", "storm", "--spool", spool_dir], environ={{}}) == 0
    time.sleep(0.05)
"""


def lines(path: Path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def journal(tmp: Path) -> list:
    return read_journal(tmp / "journal.jsonl")[0]


def event(tmp: Path, host: str, service: str = "HTTP", state: str = "CRITICAL") -> None:
    spool.append(str(tmp / "spool"), {"time": time.time(), "host": host, "service": service, "state": state})


def test_500_checks_failing_at_once_produce_one_run_not_500(tmp_path):
    conf = write_config(tmp_path, STORM_CONFIG.format(tmp=tmp_path))
    started = time.monotonic()
    with Daemon(conf) as d:
        wait_for(lambda: lock_holder(tmp_path / "spool"), 15)
        writers = [subprocess.Popen([sys.executable, "-c", WRITER.format(services=SERVICES), str(w),
                                     str(tmp_path / "spool")], env=clean_env()) for w in range(HOSTS // 5)]
        for w in writers:
            assert w.wait(60) == 0
        wait_for(lambda: of_kind(journal(tmp_path), "notify"), 30, 0.05, what="the run and its verdict")
        # anything that would follow the hold is due by the time the collector settles
        wait_for(lambda: collector_settled(conf, tmp_path / "spool"), 15, 0.05, what="the collector to settle")
        rc, err = d.stop()
        assert rc == 0, err
    took = time.monotonic() - started
    records = journal(tmp_path)
    assert len(of_kind(records, "event")) == HOSTS * SERVICES
    (start,) = of_kind(records, "start")
    assert len(start["checks"]) == HOSTS * SERVICES and len(start["targets"]["converge"]) == HOSTS
    assert len([r for r in of_kind(records, "run") if r["outcome"] != "skipped"]) == 1
    assert sorted(lines(tmp_path / "converged")) == [f"node{h:02d}" for h in range(HOSTS)]
    assert lines(tmp_path / "deployed") == ["deploy"]
    assert len(lines(tmp_path / "notified")) == 1
    print(f"\nstorm: {HOSTS * SERVICES} checks failing within ~0.5s -> 1 run "
          f"({HOSTS} hosts converged once each), 1 notification; {took:.1f}s")


FAILING_CONFIG = """quiescence: 0s
levels:
  - name: vm
    quiescence: 0.2s
    max_attempts: 3
    on_exhausted: notify
    steps:
      - shell: echo attempt >> '{tmp}/attempts'; exit 1
checks:
  - {{service: "*", level: vm}}
notify:
  - shell: echo "$ESCALATOR_SUMMARY" >> '{tmp}/notified'
"""


def test_a_step_that_always_fails_runs_max_attempts_times_then_holds_with_one_notification(tmp_path):
    conf = write_config(tmp_path, FAILING_CONFIG.format(tmp=tmp_path))
    event(tmp_path, "web1")
    r = escalator("collect", "--config", str(conf))
    assert r.returncode == 1, r.stderr  # runs failed
    records = journal(tmp_path)
    runs = [x for x in of_kind(records, "run") if x["outcome"] != "skipped"]
    assert len(of_kind(records, "start")) == 3 and [x["outcome"] for x in runs] == ["failed"] * 3
    assert lines(tmp_path / "attempts") == ["attempt"] * 3
    verdicts = of_kind(records, "verdict")
    assert [v.get("exhausted") for v in verdicts] == [None, None, "notify"]
    assert len(of_kind(records, "notify")) == 1 and len(lines(tmp_path / "notified")) == 1
    assert "did not converge after 3 attempts" in lines(tmp_path / "notified")[0]
    # Restarts, the same check failing again and a new one at the held level: no new attempt, no new page.
    for extra in (("web1",), ("web2",), ()):
        for host in extra:
            event(tmp_path, host)
        r = escalator("collect", "--config", str(conf))
        assert r.returncode == 0, r.stderr
    records = journal(tmp_path)
    assert len(of_kind(records, "start")) == 3 and lines(tmp_path / "attempts") == ["attempt"] * 3
    assert len(lines(tmp_path / "notified")) == 1
    status = escalator("status", "--config", str(conf)).stdout.decode()
    assert "held level:  vm: level vm exhausted after 3 attempts" in status


LIMIT_CONFIG = """quiescence: {quiescence}
levels:
  - name: converge
    quiescence: 0s
    max_attempts: 1000
    steps:
      - shell: echo "$ESCALATOR_HOSTS" >> '{tmp}/ran'
checks:
  - {{service: "*", level: converge}}
notify:
  - shell: echo "$ESCALATOR_SUMMARY" >> '{tmp}/notified'
limits:
  max_runs_per_hour: 2
  max_targets: 10
"""


def test_max_runs_per_hour_holds_across_collector_restarts_and_a_lost_snapshot(tmp_path):
    conf = write_config(tmp_path, LIMIT_CONFIG.format(quiescence="0s", tmp=tmp_path))
    event(tmp_path, "web1")
    with Daemon(conf) as d:
        # Until the notify step is journalled: killed earlier, the restart would send it again.
        wait_for(lambda: [x for x in of_kind(journal(tmp_path), "step") if x["level"] == "notify"], 15,
                 what="the limit to be reached and notified")
        d.proc.send_signal(signal.SIGKILL)  # no goodbye: the history must already be on disk
        d.proc.wait(10)
    assert len(lines(tmp_path / "ran")) == 2
    skipped = [x for x in of_kind(journal(tmp_path), "run") if x["outcome"] == "skipped"]
    assert "max_runs_per_hour (2) reached" in skipped[0]["reason"]
    for lose_snapshot in (False, True):
        if lose_snapshot:
            (tmp_path / "state.json").unlink()
        event(tmp_path, f"web{2 + lose_snapshot}")
        with Daemon(conf) as d:
            n = len(of_kind(journal(tmp_path), "event"))
            wait_for(lambda: len(of_kind(journal(tmp_path), "event")) > n or None, 15)
            # a run, if one were to start, is due by the time the collector settles
            wait_for(lambda: collector_settled(conf, tmp_path / "spool"), 15, 0.05, what="the collector to settle")
            status = escalator("status", "--config", str(conf), "--json").stdout.decode()
            rc, err = d.stop()
            assert rc == 0, err
        assert "max_runs_per_hour" in status
        assert len(lines(tmp_path / "ran")) == 2 and len(of_kind(journal(tmp_path), "start")) == 2
    assert len(lines(tmp_path / "notified")) == 1


def test_max_targets_holds_across_a_restart_that_brings_the_rest_of_the_hosts(tmp_path):
    conf = write_config(tmp_path, LIMIT_CONFIG.format(quiescence="3s", tmp=tmp_path))
    with Daemon(conf) as d:
        wait_for(lambda: lock_holder(tmp_path / "spool"), 15)
        for i in range(8):
            event(tmp_path, f"node{i}")
        wait_for(lambda: len(of_kind(journal(tmp_path), "event")) == 8, 10)
        d.proc.send_signal(signal.SIGKILL)  # before the 3 s of quiet end: nothing decided yet
        d.proc.wait(10)
    assert not of_kind(journal(tmp_path), "start", "run")
    for i in range(8, 12):
        event(tmp_path, f"node{i}")
    r = escalator("collect", "--config", str(conf))  # alone it would see 4 hosts; the state has 12
    assert r.returncode == 0, r.stderr
    records = journal(tmp_path)
    assert not of_kind(records, "start") and not (tmp_path / "ran").exists()
    (skip,) = [x for x in of_kind(records, "run") if x["outcome"] == "skipped"]
    assert "max_targets (10) exceeded: 12 hosts" in skip["reason"]
    assert len(lines(tmp_path / "notified")) == 1
    event(tmp_path, "node3")  # more of the same after another restart: still no run, no new page
    assert escalator("collect", "--config", str(conf)).returncode == 0
    assert not of_kind(journal(tmp_path), "start") and len(lines(tmp_path / "notified")) == 1
