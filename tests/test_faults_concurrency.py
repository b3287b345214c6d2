"""Concurrency: many writers against a running collector, racing collectors, stale locks.

The 64 x 200 storm uses 64 Python processes that each call
``escalator_handlers.handler.main`` 200 times (the handler's whole code path,
argv parsing to fsync, without paying an interpreter start per event: 12,800
real ``escalator-handler`` executions take minutes of CPU on two cores;
tests/test_spool.py runs the real executables in parallel).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from escalator_handlers import spool, spool_reader, storage
from escalator_handlers.config import load_config
from fault_fixtures import (
    ESCALATOR, Daemon, clean_env, escalator, lock_holder, of_kind, read_journal, wait_for, write_config,
)

pytestmark = pytest.mark.faults

WRITERS, EVENTS = 64, 200

WRITER = """
import sys
from escalator_handlers import handler
p, spool_dir = int(sys.argv[1]), sys.argv[2]
for i in range({events}):
    rc = handler.main(["--host", f"h{{p}}", "--service", f"s{{i % 10}}",
                       "--state", "CRITICAL" if i % 2 else "OK", "--attempt", str(i + 1),
                       "--output", f"p{{p}}-e{{i}}", "--spool", spool_dir], environ={{}})
    if rc != 0:
        sys.exit(f"event {{i}}: exit {{rc}}")
"""

QUIET_CONFIG = """quiescence: 1h
levels:
  - name: converge
    steps:
      - shell: "true"
checks:
  - {host: nothing-matches, level: converge}
"""


def test_64_handler_processes_x_200_events_against_a_running_collector(tmp_path):
    conf = write_config(tmp_path, QUIET_CONFIG)
    journal = tmp_path / "journal.jsonl"
    with Daemon(conf) as d:
        wait_for(lambda: lock_holder(tmp_path / "spool"), 15, what="the daemon to hold the lock")
        started = time.monotonic()
        writers = [subprocess.Popen([sys.executable, "-c", WRITER.format(events=EVENTS), str(p),
                                     str(tmp_path / "spool")], env=clean_env(), stderr=subprocess.PIPE)
                   for p in range(WRITERS)]
        for w in writers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        written = time.monotonic() - started
        total = WRITERS * EVENTS

        def all_journalled() -> bool:
            return journal.exists() and journal.read_bytes().count(b'"kind": "event"') >= total

        wait_for(all_journalled, 60, 0.05, what=f"{total} events in the journal")
        collected = time.monotonic() - started
        rc, err = d.stop()
        assert rc == 0, err
    records, bad = read_journal(journal)
    events = of_kind(records, "event")
    ids = collections.Counter(e["id"] for e in events)
    outputs = collections.Counter(e["output"] for e in events)
    expected = {f"p{p}-e{i}" for p in range(WRITERS) for i in range(EVENTS)}
    lost = expected - set(outputs)
    torn = bad + len(of_kind(records, "rejected"))
    duplicated = sum(n - 1 for n in ids.values()) + sum(n - 1 for n in outputs.values())
    print(f"\nconcurrency: {WRITERS} processes x {EVENTS} events = {total} against a running "
          f"collector: {len(lost)} lost, {torn} torn, {duplicated} duplicated; written in {written:.1f}s, "
          f"all journalled {collected:.1f}s after the first writer started")
    assert not lost and torn == 0 and duplicated == 0 and len(events) == total
    assert spool_reader.pending(str(tmp_path / "spool")) == []
    # The state: each check's latest event (the writer's last for that service), exactly once.
    state = storage.load(load_config(str(conf))).state
    assert len(state.checks) == WRITERS * 10
    for p in range(WRITERS):
        for s in range(10):
            last = EVENTS - 10 + s
            cs = state.checks[(f"h{p}", f"s{s}")]
            assert (cs.output, cs.attempt) == (f"p{p}-e{last}", last + 1)
            assert cs.state == ("CRITICAL" if last % 2 else "OK")


RACE_CONFIG = """quiescence: 0s
levels:
  - name: converge
    max_attempts: 1
    steps:
      - shell: echo ran $$ >> '{marker}'; sleep 2.5
checks:
  - {{service: "*", level: converge}}
"""


def test_two_collectors_started_at_once_exactly_one_acts(tmp_path):
    marker = tmp_path / "marker"
    conf = write_config(tmp_path, RACE_CONFIG.format(marker=marker))
    spool.append(str(tmp_path / "spool"), {"time": time.time(), "host": "web1", "service": "HTTP",
                                           "state": "CRITICAL", "output": "down"})
    procs = [subprocess.Popen([ESCALATOR, "collect", "--config", str(conf)], env=clean_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        results.append((p.returncode, err.decode()))
    refused = [r for r in results if "another collector holds" in r[1]]
    assert len(refused) == 1, results
    rc, err = refused[0]
    assert rc == 1 and "collector.lock" in err and "(pid " in err and "Traceback" not in err
    assert marker.read_text().count("ran") == 1
    records, bad = read_journal(tmp_path / "journal.jsonl")
    assert bad == 0 and len(of_kind(records, "start")) == 1 and len(of_kind(records, "event")) == 1


def known_holder(spool_dir: Path) -> Optional[int]:
    """The lock holder's pid once its pid file is written: between taking the lock and
    writing the file, lock_holder says -1, and a test that wants the pid must wait on."""
    pid = lock_holder(spool_dir)
    return pid if pid is not None and pid > 0 else None


def test_a_one_shot_collector_refuses_while_a_daemon_holds_the_lock(tmp_path):
    conf = write_config(tmp_path, QUIET_CONFIG)
    with Daemon(conf) as d:
        pid = wait_for(lambda: known_holder(tmp_path / "spool"), 15)
        r = escalator("collect", "--config", str(conf))
        assert r.returncode == 1
        assert f"another collector holds {tmp_path / 'collector.lock'} (pid {pid})" in r.stderr.decode()
        assert pid == d.proc.pid


STALE_CONFIG = """quiescence: 0s
levels:
  - name: converge
    max_attempts: 1
    steps:
      - shell: echo "$ESCALATOR_HOSTS" >> '{marker}'
checks:
  - {{service: "*", level: converge}}
"""


def killed_daemon(tmp_path):
    """A collector daemon that held the lock and was SIGKILLed: (marker, spool, config)."""
    marker = tmp_path / "marker"
    sp = tmp_path / "spool"
    conf = write_config(tmp_path, STALE_CONFIG.format(marker=marker))
    with Daemon(conf) as d:
        wait_for(lambda: known_holder(sp), 15)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
    return marker, sp, conf


def test_a_stale_lock_left_by_a_killed_collector_does_not_block_the_next(tmp_path):
    marker, sp, conf = killed_daemon(tmp_path)
    assert (sp / "collector.lock").exists() and (sp / "collector.pid").exists()
    assert lock_holder(sp) is None
    status = escalator("status", "--config", str(conf))
    assert status.returncode == 0 and "collector:   not running" in status.stdout.decode()
    # A stale pid file naming a live process (ours) changes nothing: the lock decides.
    (sp / "collector.pid").write_text(f"{os.getpid()}\n")
    spool.append(str(sp), {"time": time.time(), "host": "web2", "service": "HTTP", "state": "CRITICAL"})
    started = time.monotonic()
    r = escalator("collect", "--config", str(conf))
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert marker.read_text() == "web2\n"
    assert took < 5, f"the next collector took {took:.1f}s"
    assert not (sp / "collector.pid").exists()


def test_a_killed_daemon_s_successor_picks_up_events_written_meanwhile(tmp_path):
    marker, sp, conf = killed_daemon(tmp_path)
    for h in ("a1", "a2", "a3"):
        spool.append(str(sp), {"time": time.time(), "host": h, "service": "HTTP", "state": "CRITICAL"})
    with Daemon(conf) as d2:
        wait_for(lambda: marker.exists() and marker.read_text(), 15, what="the successor's run")
        rc, err = d2.stop()
        assert rc == 0, err
    assert marker.read_text() == "a1 a2 a3\n"
    records, _ = read_journal(tmp_path / "journal.jsonl")
    assert len(of_kind(records, "event")) == 3 and len(of_kind(records, "start")) == 1
    assert json.loads((tmp_path / "state.json").read_text())["state"]["checks"]
