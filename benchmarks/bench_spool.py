"""Concurrent spool appends: 16 writer processes, 20,000 events in all.

The same writers append the same lines three ways, interleaved round by
round: through ``escalator_handlers.spool.append`` (flock, durable), to one
file opened with ``O_APPEND`` and fsync after every line (the fair, durable
baseline), and to that file without fsync (reported, not targeted: it
promises nothing after a crash).  Each round's output is read back: every
(writer, seq) must be there exactly once, and every line must be a whole
JSON record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Dict, List, Tuple

from .harness import REPO, Context, Row, interleaved, median

MODES = ("spool", "fsync", "nofsync")


def _round(ctx: Context, mode: str, writers: int, per_writer: int, n: int) -> Tuple[float, int, int, int]:
    """One round: (events per second, lost, duplicated, torn)."""
    base = os.path.join(ctx.tmp, f"append-{mode}-{n}")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    target = os.path.join(base, "spool") if mode == "spool" else os.path.join(base, "lines.jsonl")
    procs = [subprocess.Popen([ctx.python, "-m", "benchmarks.spoolwriter", mode, target, str(per_writer), str(w)],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for w in range(writers)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        spans = []
        for p in procs:
            out, _ = p.communicate(timeout=300)
            if p.returncode != 0:
                raise RuntimeError(f"spool writer ({mode}) exited {p.returncode}")
            spans.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    path = os.path.join(target, "events.jsonl") if mode == "spool" else target
    lost, dup, torn = _verify(path, writers, per_writer)
    shutil.rmtree(base, ignore_errors=True)
    return writers * per_writer / wall, lost, dup, torn


def _verify(path: str, writers: int, per_writer: int) -> Tuple[int, int, int]:
    seen: Dict[Tuple[int, int], int] = {}
    torn = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
                key = (rec["writer"], rec["seq"])
            except (ValueError, KeyError, TypeError):
                torn += 1
                continue
            seen[key] = seen.get(key, 0) + 1
    expected = {(w, s) for w in range(writers) for s in range(per_writer)}
    lost = len(expected - set(seen))
    dup = sum(c - 1 for c in seen.values())
    return lost, dup, torn


def appends(ctx: Context) -> List[Row]:
    writers, total = (4, 400) if ctx.quick else (16, 20_000)
    per_writer = total // writers
    rounds = 1 if ctx.quick else 3
    ctx.say(f"concurrent appends: {writers} writers x {per_writer} events, {rounds} round(s) of each of {MODES}")
    checks: Dict[str, List[Tuple[int, int, int]]] = {m: [] for m in MODES}
    counter = [0]

    def subject(mode: str):
        def go() -> float:
            counter[0] += 1
            rate, lost, dup, torn = _round(ctx, mode, writers, per_writer, counter[0])
            checks[mode].append((lost, dup, torn))
            return rate
        return go

    rates = interleaved({m: subject(m) for m in MODES}, rounds, warmup=0)
    sp, fs, nf = (median(rates[m]) for m in MODES)
    bad = {m: [c for c in checks[m] if any(c)] for m in MODES}
    clean = not bad["spool"]
    lost = sum(c[0] for c in checks["spool"])
    dup = sum(c[1] for c in checks["spool"])
    torn = sum(c[2] for c in checks["spool"])
    label = f"{writers} writers x {per_writer} events"
    return [
        Row(f"spool.append, {label}", f"{sp:,.0f} events/s",
            f"O_APPEND + fsync per line: {fs:,.0f}/s", f"{sp / fs:.2f}x", ">= 0.5x, 0 lost/torn",
            sp / fs >= 0.5 and clean,
            f"median of {len(rates['spool'])} rounds; read back: {lost} lost, {dup} duplicated, "
            f"{torn} torn in {len(checks['spool'])} rounds (baseline rounds: "
            f"{'clean' if not bad['fsync'] and not bad['nofsync'] else 'NOT clean'})"),
        Row("  same vs O_APPEND without fsync (not durable)", f"{sp:,.0f} events/s",
            f"O_APPEND, no fsync: {nf:,.0f}/s", f"{sp / nf:.2f}x", "(reported only)", None),
    ]
