"""Handler benchmarks: wall time per event as Nagios runs it, and import cost.

Nagios starts ``escalator-handler`` as a new process for every event and
the handler returns only once the event is on disk (fsync), so the wall
time of that whole process is the cost, compared with the interpreter's own
start-up (``python -c pass``, the same interpreter) measured interleaved.
The import check runs the real console script with ``-X importtime``
(``PYTHONPROFILEIMPORTTIME``), so modules imported lazily on the hot path
count too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Dict, List, Set

from .harness import Context, Row, interleaved, median, ms, ratio, run_child

FORBIDDEN = ("yaml", "click", "paramiko", "nagiosplugin", "filelock")
def _handler_argv(ctx: Context, spool: str) -> List[str]:
    return [ctx.installed().script("escalator-handler"), "--spool", spool, "--host", "web-0042", "--service", "HTTP",
            "--state", "CRITICAL", "--state-type", "SOFT", "--attempt", "1",
            "--output", "CRITICAL - Connection refused on port 443"]


def wall_time(ctx: Context) -> List[Row]:
    spool = os.path.join(ctx.tmp, "handler-spool")
    argv = _handler_argv(ctx, spool)
    base = [ctx.python, "-c", "pass"]
    repeats = 5 if ctx.quick else 40
    ctx.say(f"handler wall time: {repeats} runs each of escalator-handler and python -c pass")
    times = interleaved({"handler": lambda: run_child(argv)[0], "pass": lambda: run_child(base)[0]},
                        repeats, warmup=2)
    with open(os.path.join(spool, "events.jsonl"), "rb") as f:
        recorded = sum(1 for line in f if json.loads(line)["host"] == "web-0042")
    h, p = median(times["handler"]), median(times["pass"])
    rows = [Row("handler wall time per event (new process, fsync)", ms(h),
                f"python -c pass: {ms(p)}", ratio(h, p), "<= 1.5x", h / p <= 1.5,
                f"median of {len(times['handler'])} interleaved runs each; {recorded} events recorded "
                f"(warm-up included), fsync per event")]
    hf = shutil.which("hyperfine")
    if hf and not ctx.quick:
        rows.append(_hyperfine(ctx, hf, argv, base))
    return rows


def _hyperfine(ctx: Context, hf: str, argv: List[str], base: List[str]) -> Row:
    """Cross-check with hyperfine (when installed), which runs without a shell here."""
    import shlex

    out = os.path.join(ctx.tmp, "hyperfine.json")
    ctx.say("handler wall time: hyperfine cross-check")
    run_child([hf, "-N", "--warmup", "5", "--runs", "40", "--export-json", out,
               shlex.join(argv), shlex.join(base)])
    with open(out) as f:
        res = json.load(f)["results"]
    h, p = res[0]["median"], res[1]["median"]
    return Row("  same, measured by hyperfine -N", ms(h), f"python -c pass: {ms(p)}", ratio(h, p),
               "<= 1.5x", h / p <= 1.5)


def _imported(argv: List[str], env: Dict[str, str]) -> Dict[str, int]:
    """Module name -> self time (us) from an ``-X importtime`` run."""
    env = dict(env, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    mods: Dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|", 2)
        mods[name.strip()] = int(self_us)
    return mods


def import_cost(ctx: Context) -> List[Row]:
    ctx.say("handler import cost: -X importtime of a real event")
    env = dict(os.environ)
    spool = os.path.join(ctx.tmp, "handler-spool-import")
    handler = _imported(_handler_argv(ctx, spool), env)
    baseline = _imported([ctx.python, "-c", "pass"], env)
    extra: Set[str] = set(handler) - set(baseline)
    bad = sorted(m for m in handler if m.split(".")[0] in FORBIDDEN)
    own = sum(handler[m] for m in extra)
    listing = ", ".join(sorted(extra))
    return [Row("handler import cost (-X importtime, real event)",
                f"{len(extra)} modules, {own / 1000:.1f} ms",
                f"python -c pass: {len(baseline)} modules", "",
                "none of " + "/".join(FORBIDDEN), not bad,
                ("forbidden modules imported: " + ", ".join(bad) + "; ") * bool(bad)
                + f"modules beyond python -c pass: {listing}")]
