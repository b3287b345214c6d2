"""Collector benchmarks: reaction time after quiescence, and idle CPU.

Both run a real ``escalator collect --daemon`` on its own spool.

Reaction: quiescence Q = 1 s; one ``escalator-handler`` event (``--time``
set to the moment it is sent) for a check mapped to a level whose step runs
``date +%s.%N``.  The delay from the event to that timestamp, minus Q, is
what the collector adds (wake-up, ingest, journal, plan, start the step).
A fresh collector per trial, so that every trial starts from the same state.

Idle CPU: a collector with nothing to do, its utime + stime read from
``/proc/PID/stat`` at the start and the end of a window (60 s in a full
run), while the other benchmarks run: the other load does not add to a
process's own CPU time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import List, Optional, Tuple

from .harness import Context, Row, median, ms, run_child

CONFIG = """\
spool: {d}/spool
journal: {d}/journal.jsonl
quiescence: {q}
max_delay: 5m
levels:
  - name: repair
    quiescence: 10m
    steps:
      - shell: date +%s.%N >> {d}/started
checks:
  - {{service: "*", level: repair}}
"""


def _start_collector(ctx: Context, d: str, q: str, config: str = CONFIG) -> "subprocess.Popen[bytes]":
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "escalator.yaml")
    with open(cfg, "w") as f:
        f.write(config.format(d=d, q=q))
    log = open(os.path.join(d, "collector.log"), "wb")
    proc = subprocess.Popen([ctx.installed().script("escalator"), "collect", "--daemon", "--config", cfg],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=d)
    log.close()
    spool_dir = os.path.join(d, "spool")
    deadline = time.monotonic() + 20
    from escalator_handlers import spool

    while not (os.path.exists(os.path.join(spool_dir, "wakeup")) and spool.collector_running(spool_dir)):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            with open(os.path.join(d, "collector.log"), errors="replace") as f:
                raise RuntimeError(f"collector did not start: {f.read()[-2000:]}")
        time.sleep(0.01)
    return proc


def _stop(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _trial(ctx: Context, i: int, q: float) -> float:
    d = os.path.join(ctx.tmp, f"reaction-{i}")
    shutil.rmtree(d, ignore_errors=True)
    proc = _start_collector(ctx, d, f"{q:g}s")
    try:
        time.sleep(0.3)  # let it settle into its idle wait
        sent = time.time()
        run_child([ctx.installed().script("escalator-handler"), "--spool", os.path.join(d, "spool"),
                   "--host", "web-0001", "--service", "HTTP", "--state", "CRITICAL", "--state-type", "HARD",
                   "--attempt", "3", "--time", repr(sent), "--output", "CRITICAL - down"])
        started = os.path.join(d, "started")
        deadline = time.monotonic() + q + 30
        while True:
            try:
                with open(started) as f:
                    text = f.read().split()
                if text:
                    return float(text[0]) - sent - q
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"no step started within {q + 30:g}s of the event (see {d})")
            time.sleep(0.005)
    finally:
        _stop(proc)


def reaction(ctx: Context) -> List[Row]:
    q = 1.0
    trials = 1 if ctx.quick else 5
    ctx.say(f"reaction: {trials} trial(s) with a fresh collector, Q = {q:g} s")
    delays = [_trial(ctx, i, q) for i in range(trials)]
    m = median(delays)
    return [Row("reaction: event -> first step started", f"Q + {ms(m)}", f"Q = {q:g} s", "",
                "<= Q + 200 ms", m <= 0.200,
                f"median of {trials} trials: " + ", ".join(f"+{d * 1000:.0f}" for d in delays) + " ms")]


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


class IdleCollector:
    """An idle collector measured over a window that spans the other benchmarks."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.window = 10.0 if ctx.quick else 60.0
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        self.start: Tuple[float, int] = (0.0, 0)

    def begin(self) -> None:
        self.proc = _start_collector(self.ctx, os.path.join(self.ctx.tmp, "idle"), "30s")
        time.sleep(1.0)  # start-up (imports, config, recovery) is not idling
        self.start = (time.monotonic(), _cpu_ticks(self.proc.pid))

    def end(self) -> List[Row]:
        assert self.proc is not None
        try:
            left = self.start[0] + self.window - time.monotonic()
            if left > 0:
                self.ctx.say(f"idle collector: waiting {left:.0f}s more for its {self.window:g}s window")
                time.sleep(left)
            wall = time.monotonic() - self.start[0]
            ticks = _cpu_ticks(self.proc.pid) - self.start[1]
        finally:
            _stop(self.proc)
        cpu = ticks / os.sysconf("SC_CLK_TCK")
        pct = 100.0 * cpu / wall
        return [Row(f"idle collector CPU over {wall:.0f} s", f"{pct:.2f}% of a core", "", "",
                    "<= 1%", pct <= 1.0, f"{cpu:.2f} s CPU (utime+stime) in {wall:.1f} s")]
