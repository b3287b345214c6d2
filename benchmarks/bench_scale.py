"""Scale benchmarks: the collector's cost must not grow with the site or the outage.

All three run a real ``escalator collect --daemon`` from the fresh install and
feed its spool with ``spool.append`` (the handler's own write path) from the
harness, so that the collector, not the writer, is what is measured.  The
collector's CPU is its own utime + stime from ``/proc/PID/stat``: the other
load on the machine does not add to it.

- **Journal growth in a held-level outage**: a level exhausts its attempts
  and is held (``on_exhausted: notify``); then hosts fail one after another,
  each after the collector has decided about the one before, the way 1,200
  hosts failing over an afternoon reach it.  Journal bytes per event,
  everything included (events, skipped runs, notifications).
- **Intake at 1k vs 100k checks**: the collector starts from a journal that
  puts N checks in its state (a tenth of them failing, on a tenth of the
  hosts, held back by ``max_targets``), then takes a paced stream of SOFT
  state changes.  Intake is events per second of the collector's CPU.
- **Soak** (full run only): ten minutes of 40 events/s on 1,000 checks with
  random SOFT/HARD changes and recoveries, the collector running real (tiny)
  steps; CPU per event minute by minute, first two minutes vs last two.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from typing import Callable, List, Optional, Tuple

from .bench_collector import _cpu_ticks, _start_collector, _stop
from .harness import Context, Row

HELD = """\
spool: {d}/spool
journal: {d}/journal.jsonl
quiescence: {q}
max_delay: 1s
levels:
  - name: vm
    quiescence: 0s
    max_attempts: 1
    on_exhausted: notify
    steps:
      - shell: "true"
checks:
  - {{host: "*", level: vm}}
notify:
  - shell: "true"
"""

SITE = """\
spool: {d}/spool
journal: {d}/journal.jsonl
quiescence: {q}
max_delay: 30s
levels:
  - name: vm
    quiescence: 5s
    steps:
      - shell: "true"
        foreach: host
  - name: converge
    quiescence: 3s
    steps:
      - shell: "true"
        foreach: host
checks:
  - {{host: "*", level: vm}}
  - {{service: "PING", level: vm}}
  - {{service: "*", level: converge}}
limits:
  max_targets: {max_targets}
  max_runs_per_hour: 1000
notify:
  - shell: "true"
"""

#: The soak's length (full runs only).
SOAK_MINUTES = 10

SERVICES = ("PING", "HTTP", "SSH", "Disk", "Load", "Memory", "App", "DB", "Smoke")


def _event(host: str, service: Optional[str], state: str, state_type: str = "HARD", attempt: int = 1,
           t: Optional[float] = None) -> dict:
    return {"time": time.time() if t is None else t, "host": host, "service": service, "state": state,
            "state_type": state_type, "attempt": attempt, "downtime": 0, "output": f"{state} - benchmark"}


def _journal_size(d: str) -> int:
    try:
        return os.path.getsize(os.path.join(d, "journal.jsonl"))
    except FileNotFoundError:
        return 0


def _wait(cond: Callable[[], bool], timeout: float, proc: "subprocess.Popen[bytes]", what: str) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise RuntimeError(f"the collector exited while waiting for {what}")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class _Tail:
    """Reads the journal's new records as they are appended."""

    def __init__(self, d: str) -> None:
        self.path = os.path.join(d, "journal.jsonl")
        self.offset = 0
        self.buf = b""

    def records(self) -> List[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in lines if x.strip()]


def journal_growth(ctx: Context) -> List[Row]:
    from escalator_handlers import spool

    hosts = 40 if ctx.quick else 1200
    d = os.path.join(ctx.tmp, "held")
    proc = _start_collector(ctx, d, "0s", HELD)
    sp = os.path.join(d, "spool")
    tail = _Tail(d)
    late: List[str] = []
    try:
        # The first failure runs `vm`, whose verdict exhausts it: the level is held.
        spool.append(sp, _event("host-0000", None, "DOWN"))
        seen: List[dict] = []
        if not _wait(lambda: seen.extend(tail.records()) or any(r.get("exhausted") for r in seen),
                     30, proc, "the level to be held"):
            raise RuntimeError(f"level vm was not held (see {d})")
        start = _journal_size(d)
        sizes = [start]
        ctx.say(f"journal growth: {hosts - 1} hosts failing one after another on a held level")
        for i in range(1, hosts):
            rid = spool.append(sp, _event(f"host-{i:04d}", None, "DOWN"))
            state = {"event": False, "after": False}

            def decided() -> bool:
                for r in tail.records():
                    if r.get("id") == rid:
                        state["event"] = True
                    elif state["event"] and r.get("kind") != "event":
                        state["after"] = True
                return state["after"]

            # Wait until the collector journalled the event and something after it (its
            # decision), so that every failure is decided on its own, as in a slow outage.
            if not _wait(decided, 5.0, proc, "a decision"):
                late.append(f"host-{i:04d}")
            sizes.append(_journal_size(d))
    finally:
        _stop(proc)
    events = hosts - 1
    per = (sizes[-1] - start) / events
    q = max(1, events // 4)
    first = (sizes[q] - sizes[0]) / q
    last = (sizes[-1] - sizes[-1 - q]) / q
    return [Row(f"journal growth, {events:,} hosts failing on a held level", f"{per:,.0f} bytes/event",
                f"first {q:,} events: {first:,.0f} bytes/event", f"last {q:,}: {last / first:.2f}x the first",
                "<= 2 KB/event averaged", per <= 2048,
                f"journal {sizes[-1] - start:,} bytes for {events:,} events after the level was held "
                f"(events, skipped runs and notifications included); last {q:,} events: {last:,.0f} bytes/event"
                + (f"; {len(late)} events had no decision journalled within 5 s" if late else ""))]


def _preload(d: str, checks: int, rnd: random.Random) -> Tuple[List[Tuple[str, Optional[str]]], int]:
    """A journal whose fold holds ``checks`` checks, a tenth failing on a tenth of the hosts."""
    from escalator_handlers import journal, spool

    hosts = checks // 10
    names = [f"node-{i:06d}" for i in range(hosts)]
    keys = [(h, s) for h in names for s in SERVICES] + [(h, None) for h in names]
    failing_hosts = set(rnd.sample(names, max(1, hosts // 10)))
    t = time.time() - 86400
    recs = []
    for h, s in keys:
        bad = h in failing_hosts
        state = ("DOWN" if s is None else "CRITICAL") if bad else ("UP" if s is None else "OK")
        recs.append(dict(_event(h, s, state, t=t), kind="event", id=spool.new_id()))
        t += 0.001
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "journal.jsonl"), "w", encoding="ascii") as f:
        for r in recs:
            f.write(journal.dumps(r) + "\n")
    return [k for k in keys if k[0] not in failing_hosts], len(failing_hosts)


def _intake_one(ctx: Context, checks: int, rate: float, seconds: float) -> Tuple[float, float, int]:
    """(events per collector CPU second, events per wall second, events) at ``checks`` checks."""
    from escalator_handlers import spool

    rnd = random.Random(checks)
    d = os.path.join(ctx.tmp, f"intake-{checks}")
    ok_keys, _ = _preload(d, checks, rnd)
    proc = _start_collector(ctx, d, "30s", SITE.replace("{max_targets}", "5"))
    sp = os.path.join(d, "spool")
    try:
        # Start-up folds the whole journal and plans once (a skip: too many targets).
        tail = _Tail(d)
        seen: List[dict] = []
        if not _wait(lambda: seen.extend(tail.records()) or any(r.get("kind") == "notify" for r in seen),
                     120, proc, "the first decision"):
            raise RuntimeError(f"no decision after start-up (see {d})")
        time.sleep(0.5)
        n = int(rate * seconds)
        ticks0, t0 = _cpu_ticks(proc.pid), time.monotonic()
        last = ""
        for i in range(n):
            due = t0 + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            h, s = ok_keys[rnd.randrange(len(ok_keys))]
            # SOFT chatter: journalled, folded, never a decision's business.
            state = "WARNING" if s is not None else "DOWN"
            last = spool.append(sp, _event(h, s, state if i % 2 == 0 else ("OK" if s else "UP"), "SOFT"))
        got = [False]

        def journalled() -> bool:
            got[0] = got[0] or any(r.get("id") == last for r in tail.records())
            return got[0]

        if not _wait(journalled, 120, proc, "the last event"):
            raise RuntimeError(f"the last event was not journalled within 120 s (see {d})")
        wall = time.monotonic() - t0
        cpu = (_cpu_ticks(proc.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
    finally:
        _stop(proc)
    return n / max(cpu, 1e-9), n / wall, n


def intake(ctx: Context) -> List[Row]:
    small, large = (1_000, 10_000) if ctx.quick else (1_000, 100_000)
    rate, seconds = (200.0, 2.0) if ctx.quick else (200.0, 15.0)
    ctx.say(f"intake: {small:,} and {large:,} checks in the state, {rate:g} events/s for {seconds:g}s")
    a_cpu, a_wall, n = _intake_one(ctx, small, rate, seconds)
    b_cpu, b_wall, _ = _intake_one(ctx, large, rate, seconds)
    return [Row(f"collector intake, {large:,} vs {small:,} checks in the state",
                f"{b_cpu:,.0f} events per CPU-s", f"{small:,} checks: {a_cpu:,.0f} events per CPU-s",
                f"{b_cpu / a_cpu:.2f}x", ">= 0.8x", b_cpu / a_cpu >= 0.8,
                f"{n:,} SOFT changes offered at {rate:g}/s to each; collector CPU (utime+stime) per event "
                f"{1000 / b_cpu:.2f} vs {1000 / a_cpu:.2f} ms; wall-clock intake {b_wall:,.0f} vs "
                f"{a_wall:,.0f} events/s (bounded by the offered rate)")]


def soak(ctx: Context) -> List[Row]:
    if ctx.quick:
        return []  # ten minutes: full runs only
    from escalator_handlers import spool

    minutes, rate = SOAK_MINUTES, 40.0
    rnd = random.Random(14)
    d = os.path.join(ctx.tmp, "soak")
    proc = _start_collector(ctx, d, "2s", SITE.replace("{max_targets}", "50"))
    sp = os.path.join(d, "spool")
    hosts = [f"web-{i:03d}" for i in range(100)]
    keys = [(h, s) for h in hosts for s in SERVICES] + [(h, None) for h in hosts]
    # Per check: (state, attempt); a problem goes SOFT 1, SOFT 2, HARD 3, and recovers.
    where = {k: ("OK", 0) for k in keys}
    problems: List[Tuple[str, Optional[str]]] = []
    per_minute: List[Tuple[int, float]] = []
    ctx.say(f"soak: {minutes} minutes at {rate:g} events/s on {len(keys):,} checks")
    try:
        t0 = time.monotonic()
        i = 0
        for m in range(minutes):
            ticks, count = _cpu_ticks(proc.pid), 0
            end = t0 + (m + 1) * 60.0
            while time.monotonic() < end:
                pause = t0 + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                i += 1
                if problems and rnd.random() < 0.7:
                    k = problems[rnd.randrange(len(problems))]   # a problem moves on
                else:
                    k = keys[rnd.randrange(len(keys))]           # a check starts failing (or blips)
                attempt = where[k][1]
                bad = "DOWN" if k[1] is None else "CRITICAL"
                good = "UP" if k[1] is None else "OK"
                if attempt == 0:
                    nxt = (bad, 1)
                    problems.append(k)
                elif attempt < 3 and rnd.random() < 0.7:
                    nxt = (bad, attempt + 1)
                else:
                    nxt = (good, 0)
                    problems.remove(k)
                where[k] = nxt
                stype = "HARD" if nxt[1] == 3 or (nxt[1] == 0 and attempt == 3) else "SOFT"
                spool.append(sp, _event(k[0], k[1], nxt[0], stype, max(1, nxt[1])))
                count += 1
            per_minute.append((count, (_cpu_ticks(proc.pid) - ticks) / os.sysconf("SC_CLK_TCK")))
            ctx.say(f"soak minute {m + 1}: {count} events, {per_minute[-1][1]:.2f} s CPU")
    finally:
        _stop(proc)
    ms_per = [1000 * cpu / max(n, 1) for n, cpu in per_minute]
    first = sum(c for _, c in per_minute[:2]) * 1000 / max(1, sum(n for n, _ in per_minute[:2]))
    last = sum(c for _, c in per_minute[-2:]) * 1000 / max(1, sum(n for n, _ in per_minute[-2:]))
    r = last / first
    return [Row(f"soak: CPU per event over {minutes} minutes", f"last 2 min: {last:.2f} ms/event",
                f"first 2 min: {first:.2f} ms/event", f"{r:.2f}x", "within 20% (0.8x-1.2x)", 0.8 <= r <= 1.2,
                f"{sum(n for n, _ in per_minute):,} events at {rate:g}/s offered on {len(keys):,} checks; "
                "collector CPU per event, minute by minute: " + ", ".join(f"{x:.2f}" for x in ms_per) + " ms; "
                f"journal {_journal_size(d) / 1e6:.1f} MB")]
