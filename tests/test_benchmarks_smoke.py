"""The benchmark harness still runs: ``python -m benchmarks --quick``.

No timing is asserted here (the benchmark reports, the README quotes);
only that every benchmark ran, that none failed, and that the correctness
parts of the benchmarks held (spool appends read back whole).  The quick
run leaves out the ten-minute soak and the replay of the code before
the replay speed-up (976ee22).
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_run_reports_every_benchmark():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in ("handler wall time per event", "handler import cost", "spool.append",
                "replay 5,000 lines", "replay peak memory", "planning, 1,000 failing checks",
                "reaction: event -> first step started", "ssh fan-out", "ssh: 5 commands on one host",
                "journal growth, 39 hosts failing on a held level", "collector intake, 10,000 vs 1,000 checks",
                "idle collector CPU", "listen: CPU per state change"):
        assert row in out, f"{row!r} missing from:\n{out}"
    assert "FAILED" not in out
    assert "0 lost, 0 duplicated, 0 torn" in out
    # The handler must stay free of the heavy imports, whatever the timings.
    imports = next(line for line in out.splitlines() if line.startswith("handler import cost"))
    assert imports.rstrip().endswith("yes"), imports
