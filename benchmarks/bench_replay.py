"""Replay and planning benchmarks, each at several sizes to show how cost grows.

Replay: ``escalator replay LOG --config CFG --json`` (stdout to /dev/null)
as a subprocess, as an operator runs it, on prefixes of one generated
nagios.log over 10,000 checks with random SOFT/HARD state changes (see
``loggen``).  Interleaved with it, on the same file: the floor of this
design, a process that only parses the log and folds every observation into
the state (``parsefold.py``, no planner), and in a full run the replay of
``BASE_REF`` (the code before issue 14) installed the same way, so the
speed-up is a ratio from one run.  Peak memory is the child's own
``ru_maxrss`` from ``wait4``, taken in a small spawner process (see
``harness.run_measured``) so that the harness's own memory does not count.

Planning: ``planner.decide`` in-process on a ``State`` holding N failing
checks (10 a host: the host check and nine services), at a ``now`` after the
debounce, with no limits so that it returns a full ``RunPlan``.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Dict, List, Tuple

from . import loggen
from .harness import Context, Row, interleaved, median, ms, run_child, run_measured

#: The code before issue 14 (main when it was filed), for the replay speed-up.
BASE_REF = "976ee22"
PARSEFOLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parsefold.py")


def _logs(ctx: Context) -> Tuple[List[Tuple[int, str]], str, int]:
    sizes = (5_000, 10_000, 20_000) if ctx.quick else (200_000, 500_000, 1_000_000)
    hosts = 100 if ctx.quick else 1000
    big = os.path.join(ctx.tmp, f"nagios-{sizes[-1]}.log")
    t = time.monotonic()
    _, checks = loggen.write_log(big, sizes[-1], hosts=hosts)
    ctx.say(f"replay: generated {sizes[-1]:,} lines over {checks:,} checks in {time.monotonic() - t:.1f}s")
    logs = []
    for n in sizes[:-1]:
        path = os.path.join(ctx.tmp, f"nagios-{n}.log")
        with open(big, "rb") as src, open(path, "wb") as f:
            f.writelines(itertools.islice(src, n))  # a prefix of a log is a log
        logs.append((n, path))
    logs.append((sizes[-1], big))
    cfg = os.path.join(ctx.tmp, "replay.yaml")
    loggen.write_config(cfg, os.path.join(ctx.tmp, "replay-spool"), os.path.join(ctx.tmp, "replay-journal.jsonl"))
    return logs, cfg, checks


def replay(ctx: Context) -> List[Row]:
    logs, cfg, checks = _logs(ctx)
    escalator = ctx.installed().script("escalator")
    base = None if ctx.quick else ctx.installed("base", BASE_REF).script("escalator")
    rows: List[Row] = []
    rss: Dict[int, float] = {}
    for n, path in logs:
        peak = [0.0]

        def rep(path: str = path) -> float:
            wall, rss_mib = run_measured([escalator, "replay", path, "--config", cfg, "--json"])
            peak[0] = max(peak[0], rss_mib)
            return wall

        subjects = {
            "replay": rep,
            "floor": lambda path=path: run_child([ctx.python, PARSEFOLD, path, cfg])[0],
        }
        if base is not None and n == logs[-1][0]:
            subjects["base"] = lambda path=path: run_child([base, "replay", path, "--config", cfg, "--json"])[0]
        # The best of several interleaved runs of each: on a shared machine noise only
        # ever adds time, and the least of a few runs is the steadiest figure (timeit's advice).
        # Nine, within three minutes a size: this machine's speed drifts by half for minutes on end.
        repeats = 1 if ctx.quick else 9
        ctx.say(f"replay: {n:,} lines, {repeats} run(s) each of {', '.join(subjects)}")
        times = interleaved(subjects, repeats, budget=180, warmup=0)
        r, fl = min(times["replay"]), min(times["floor"])
        rss[n] = peak[0]
        note = (f"best of {len(times['replay'])} interleaved runs (median {median(times['replay']):.2f} s); "
                f"peak memory {rss[n]:.1f} MiB")
        if n == logs[0][0]:
            rows.append(Row(f"replay {n:,} lines ({checks:,} checks)", f"{r:.2f} s, {n / r:,.0f} lines/s",
                            f"parse + fold only: {fl:.2f} s", f"{r / fl:.2f}x parse + fold",
                            ">= 250,000 lines/s", n / r >= 250_000, note))
        elif "base" in times:
            b = min(times["base"])
            rows.append(Row(f"replay {n:,} lines ({checks:,} checks)", f"{r:.2f} s, {n / r:,.0f} lines/s",
                            f"{BASE_REF} (before): {n / b:,.0f} lines/s; parse + fold only: {fl:.2f} s",
                            f"{b / r:.2f}x faster; {r / fl:.2f}x parse + fold",
                            f">= 1.5x {BASE_REF}", b / r >= 1.5, note))
        else:
            rows.append(Row(f"replay {n:,} lines ({checks:,} checks)", f"{r:.2f} s, {n / r:,.0f} lines/s",
                            f"parse + fold only: {fl:.2f} s", f"{r / fl:.2f}x parse + fold", "", None, note))
    small, mid, large = logs[0][0], logs[1][0], logs[-1][0]
    growth, late = rss[large] / rss[small], rss[large] / rss[mid]
    # What replay keeps is bounded by the checks, not the lines: one state per
    # check, a level per (check, state) seen, and the last RUN_HISTORY runs
    # with their checks.  A short prefix has not filled those yet, so the
    # flatness test is on the later half of the lines (mid -> large).
    rows.append(Row(f"replay peak memory, {small:,} vs {large:,} lines",
                    f"{rss[small]:.1f} vs {rss[large]:.1f} MiB", f"{mid:,} lines: {rss[mid]:.1f} MiB",
                    f"{growth:.2f}x; {mid:,} -> {large:,}: {late:.2f}x",
                    f"<= 150 MiB; flat ({mid:,} -> {large:,} lines <= 1.1x)",
                    rss[large] <= 150 and late <= 1.1,
                    "ru_maxrss of the replay process; " + ", ".join(f"{n:,} lines: {rss[n]:.1f} MiB"
                                                                   for n, _ in logs)
                    + "; memory is bounded by the number of checks and the run history "
                      "(state.RUN_HISTORY runs), both full after the first few days of log"))
    return rows


def _failing_state(config, hosts: int):
    from escalator_handlers.planning.state import State

    state = State(config)
    t = float(loggen.T0)
    for h in loggen.host_names(hosts):
        state.observe(t, h, None, "DOWN", "HARD", 2, 0, "CRITICAL - Host Unreachable")
        for s in loggen.SERVICES:
            state.observe(t, h, s, "CRITICAL", "HARD", 3, 0, "CRITICAL - Connection refused")
        t += 0.01
    return state, t


def planning(ctx: Context) -> List[Row]:
    from escalator_handlers.config import load_config
    from escalator_handlers.planning.planner import decide

    cfg_path = os.path.join(ctx.tmp, "plan.yaml")
    loggen.write_config(cfg_path, os.path.join(ctx.tmp, "plan-spool"), os.path.join(ctx.tmp, "plan-journal.jsonl"),
                        limits=False)
    config = load_config(cfg_path)
    rows = []
    for hosts in ((10, 30, 100) if ctx.quick else (100, 300, 1000)):
        state, last = _failing_state(config, hosts)
        now = last + 3600.0   # well after the debounce
        d = decide(state, config, now)
        assert d.run is not None, d.why
        n = sum(1 for k, cs in state.problems.items() if state.failing(k, cs))
        repeats = 5 if ctx.quick else 21

        def once() -> float:
            t = time.perf_counter()
            decide(state, config, now)
            return time.perf_counter() - t

        times = interleaved({"decide": once}, repeats, warmup=1)["decide"]
        m = median(times)
        ctx.say(f"planning: {n:,} failing checks over {hosts} hosts: {ms(m)}")
        rows.append(Row(f"planning, {n:,} failing checks over {hosts:,} hosts", f"{ms(m)} per plan", "", "",
                        "<= 50 ms", m <= 0.050,
                        f"median of {len(times)} decide() calls; plan: levels "
                        f"{', '.join(lv.name for lv in d.run.levels)}, {len(d.run.checks):,} asking, "
                        f"{len(d.run.unmapped):,} unmapped"))
    return rows
