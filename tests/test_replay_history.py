"""Replay of a history kept in several files: downtime as Nagios and Icinga 2
really log it, carried across rotated archives in time order whatever order
they are given in, and N archives giving exactly the decisions of their
concatenation."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import List

from escalator_handlers.replay import replay
from escalator_handlers.display import format_record

from planner_fixtures import EXAMPLE_CONFIG, EXAMPLE_LOG, example_config, story

T = 1795500000
VM_RUN = ("vm", "converge", "deploy")
SVC_STARTED = "Service has entered a period of scheduled downtime"
SVC_STOPPED = "Service has exited from a period of scheduled downtime"
HOST_STARTED = "Host has entered a period of scheduled downtime"
HOST_STOPPED = "Host has exited from a period of scheduled downtime"


def records_of(paths, config=None, **kw) -> List[dict]:
    out: List[dict] = []
    replay(config or example_config(), [str(p) for p in paths], out.append, **kw)
    return out


def log(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_a_restarted_nagios_relogging_started_does_not_leave_a_host_in_downtime_forever(tmp_path):
    # As seen in a real site's archives: eleven STARTED lines, each right after a
    # restart, one STOPPED, then a real outage with a host notification.
    lines = [f"[{T}] HOST DOWNTIME ALERT: web01;STARTED; {HOST_STARTED}"]
    for i in range(1, 11):
        lines += [f"[{T + 100 * i}] Nagios 4.1.1 starting... (PID={4000 + i})",
                  f"[{T + 100 * i}] HOST DOWNTIME ALERT: web01;STARTED; {HOST_STARTED}"]
    lines += [f"[{T + 2000}] HOST DOWNTIME ALERT: web01;STOPPED; {HOST_STOPPED}",
              f"[{T + 3000}] HOST ALERT: web01;DOWN;HARD;10;CRITICAL - Host Unreachable",
              f"[{T + 3000}] HOST NOTIFICATION: oncall;web01;DOWN;notify-host-by-email;CRITICAL"]
    records = records_of([log(tmp_path / "nagios.log", *lines)], show_events="all")
    assert story(records, T)[0] == (3030, "run", VM_RUN, {lv: ("web01",) for lv in VM_RUN})
    down = [r for r in records if r["kind"] == "event" and r["state"] == "DOWN"]
    assert down[0]["downtime"] == 0 and "(in downtime)" not in format_record(down[0])


def test_a_downtime_spanning_a_log_rotation_is_one_downtime_in_either_order(tmp_path):
    first = log(tmp_path / "nagios-11-24-2026-00.log",
                f"[{T}] LOG ROTATION: DAILY",
                f"[{T + 10}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; {SVC_STARTED}",
                f"[{T + 20}] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;3;connection refused")
    second = log(tmp_path / "nagios-11-24-2026-01.log",
                 f"[{T + 3600}] LOG ROTATION: HOURLY",
                 f"[{T + 3600}] LOG VERSION: 2.0",
                 f"[{T + 3600}] CURRENT SERVICE STATE: db01;PostgreSQL;CRITICAL;HARD;3;connection refused",
                 f"[{T + 3900}] SERVICE ALERT: db01;PostgreSQL;OK;HARD;1;OK",
                 f"[{T + 4000}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STOPPED; {SVC_STOPPED}")
    whole = log(tmp_path / "concatenated.log", *(first.read_text() + second.read_text()).splitlines())
    expected = records_of([whole])
    assert story(expected, T) == []              # maintenance, as Nagios saw it: nothing to do
    assert records_of([first, second]) == expected
    assert records_of([second, first]) == expected


def test_the_timeline_says_what_a_downtime_line_did(tmp_path):
    icinga2 = log(tmp_path / "icinga.log",
                  f"[{T}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; Checkable has entered a period "
                  "of scheduled downtime.",
                  f"[{T + 1}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; Checkable has entered a period "
                  "of scheduled downtime.",
                  f"[{T + 2}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STOPPED; Checkable has exited from a period "
                  "of scheduled downtime.",
                  f"[{T + 3}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;CANCELLED; Scheduled downtime for service "
                  "has been cancelled.",
                  f"[{T + 4}] HOST DOWNTIME ALERT: web01;STARTED; {HOST_STARTED}",
                  f"[{T + 5}] HOST DOWNTIME ALERT: web01;STARTED; {HOST_STARTED}")
    texts = [format_record(r).split("  event    ")[1] for r in records_of([icinga2], show_events="all")]
    assert texts == ["db01/PostgreSQL downtime started", "db01/PostgreSQL downtime started (now 2)",
                     "db01/PostgreSQL downtime stopped (still 1)",
                     "db01/PostgreSQL downtime cancelled: out of scheduled downtime",
                     "web01 downtime started", "web01 downtime started"]


def site_log(lines: int, seed: int) -> List[str]:
    """A site's log with everything that carries state from line to line: downtimes
    (Nagios style, re-logged after restarts), HARD failures, hosts down, recoveries."""
    rnd = random.Random(seed)
    hosts = [f"web{i:02d}" for i in range(12)] + ["app"]
    services = ["PING", "HTTP", "PostgreSQL", "Smoke test"]
    in_downtime: set = set()
    out: List[str] = []
    t = T
    while len(out) < lines:
        t += rnd.choice((1, 5, 20, 60, 200))
        h, s, r = rnd.choice(hosts), rnd.choice(services), rnd.random()
        if r < 0.25:
            out.append(f"[{t}] SERVICE ALERT: {h};{s};{rnd.choice(['CRITICAL', 'OK', 'OK'])};HARD;1;x")
        elif r < 0.35:
            out.append(f"[{t}] HOST ALERT: {h};{rnd.choice(['DOWN', 'UP'])};HARD;1;x")
        elif r < 0.45:
            if (h, s) in in_downtime:
                in_downtime.discard((h, s))
                out.append(f"[{t}] SERVICE DOWNTIME ALERT: {h};{s};STOPPED; {SVC_STOPPED}")
            else:
                in_downtime.add((h, s))
                out.append(f"[{t}] SERVICE DOWNTIME ALERT: {h};{s};STARTED; {SVC_STARTED}")
        elif r < 0.47:
            out.append(f"[{t}] Nagios 4.4.6 starting... (PID={rnd.randint(100, 9999)})")
            out += [f"[{t}] SERVICE DOWNTIME ALERT: {dh};{ds};STARTED; {SVC_STARTED}" for dh, ds in sorted(in_downtime)]
        else:
            out.append(f"[{t}] SERVICE NOTIFICATION: oncall;{h};{s};CRITICAL;notify;x")
    return out


def test_replaying_archives_gives_the_decisions_of_their_concatenation(tmp_path):
    for seed in (1, 2, 3):
        lines = site_log(3000, seed)
        whole = log(tmp_path / f"whole-{seed}.log", *lines)
        rnd = random.Random(seed)
        cuts = sorted(rnd.sample(range(1, len(lines)), 6))
        parts = [log(tmp_path / f"part-{seed}-{i}.log", *lines[a:b])
                 for i, (a, b) in enumerate(zip([0] + cuts, cuts + [len(lines)]))]
        rnd.shuffle(parts)
        expected = records_of([whole], show_events="all")
        assert sum(1 for r in expected if r["kind"] == "start") > 3
        assert records_of(parts, show_events="all") == expected


def test_the_bundled_outage_cut_into_archives_replays_the_same(tmp_path):
    lines = EXAMPLE_LOG.read_text().splitlines()
    parts = [log(tmp_path / f"nagios-{i}.log", *lines[a:a + 9]) for i, a in enumerate(range(0, len(lines), 9))]
    expected = records_of([EXAMPLE_LOG])
    assert records_of(list(reversed(parts))) == expected
    assert json.dumps(expected).count('"kind": "start"') == 5


def test_gzipped_archives_replay_like_plain_ones_and_a_truncated_one_is_a_clear_error(tmp_path):
    lines = site_log(2000, 4)
    whole = log(tmp_path / "nagios.log", *lines)
    plain = log(tmp_path / "nagios-2.log", *lines[1000:])
    packed = tmp_path / "nagios-1.log.gz"
    packed.write_bytes(gzip.compress("".join(f"{line}\n" for line in lines[:1000]).encode()))
    assert records_of([plain, packed]) == records_of([whole])
    broken = tmp_path / "nagios-0.log.gz"
    broken.write_bytes(packed.read_bytes()[:-200])
    p = subprocess.run([str(Path(sys.executable).with_name("escalator")), "replay", str(broken), str(plain),
                        "--config", str(EXAMPLE_CONFIG)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"Error: cannot read {broken}: " in p.stderr
