"""``python -m benchmarks``: run every benchmark (issues 8 and 14) and print the table.

Options: ``--quick`` (tiny sizes, a smoke run of the harness), ``--write``
(also regenerate benchmarks/RESULTS.rst), ``--only NAME[,NAME]`` (a subset;
names: handler, imports, spool, replay, planning, reaction, journal, intake,
soak, idle, ssh, listen; the ten-minute soak runs in full runs only),
``--keep`` (keep the scratch directory).  Exit status 0 when every benchmark
ran (targets missed or not: the table says), 1 when one failed to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List

from . import bench_collector, bench_handler, bench_listen, bench_replay, bench_scale, bench_spool, bench_ssh
from .harness import Context, Row, format_table, machine, write_results

BENCHMARKS: Dict[str, Callable[[Context], List[Row]]] = {
    "handler": bench_handler.wall_time,
    "imports": bench_handler.import_cost,
    "spool": bench_spool.appends,
    "replay": bench_replay.replay,
    "planning": bench_replay.planning,
    "reaction": bench_collector.reaction,
    "journal": bench_scale.journal_growth,
    "intake": bench_scale.intake,
    "soak": bench_scale.soak,
    "ssh": bench_ssh.ssh,
    "listen": bench_listen.stream,
}
NAMES = list(BENCHMARKS) + ["idle"]
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.rst")


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the targets")
    ap.add_argument("--write", action="store_true", help=f"regenerate {RESULTS}")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(NAMES))
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()] or NAMES
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    tmp = tempfile.mkdtemp(prefix="escalator-bench-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
    ctx = Context(quick=args.quick, tmp=tmp)
    started = time.monotonic()
    rows: List[Row] = []
    failed = 0
    idle = None
    try:
        if "idle" in only:
            idle = bench_collector.IdleCollector(ctx)
            idle.begin()  # measured over a window spanning the other benchmarks
        for name in only:
            if name == "idle":
                continue
            t = time.monotonic()
            try:
                rows += BENCHMARKS[name](ctx)
            except Exception as exc:  # one broken benchmark must not hide the others' results
                failed += 1
                traceback.print_exc()
                rows.append(Row(name, f"FAILED: {type(exc).__name__}: {exc}"[:120], met=False))
            ctx.say(f"{name}: {time.monotonic() - t:.1f}s")
        if idle is not None:
            try:
                rows += idle.end()
            except Exception as exc:
                failed += 1
                traceback.print_exc()
                rows.append(Row("idle", f"FAILED: {type(exc).__name__}: {exc}"[:120], met=False))
    finally:
        if args.keep:
            print(f"scratch directory kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    info = machine(ctx.python if ctx._installs else sys.executable)
    print()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    print(format_table(rows))
    met = [r for r in rows if r.met is not None]
    print(f"\n{sum(1 for r in met if r.met)} of {len(met)} targets met in {elapsed:.0f}s"
          f"{' (quick run: tiny sizes, targets not meaningful)' if args.quick else ''}")
    for r in rows:
        if r.note:
            print(f"  {r.bench.strip()}: {r.note}")
    if args.write:
        cmd = "python -m benchmarks --write" + (" --quick" if args.quick else "")
        write_results(RESULTS, rows, info, ctx.notes, elapsed, cmd)
        print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
