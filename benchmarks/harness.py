"""The benchmark harness: timing, side-by-side runs, the machine, the table.

Every benchmark measures the escalator and its baseline in the same run,
interleaved (A B A B ...), and reports medians and their ratio: the machines
are noisy, so the ratio is what stays comparable over time.  A benchmark
returns ``Row`` values; ``format_table`` prints them and ``write_results``
renders ``benchmarks/RESULTS.rst``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: What a user's ``pip install .`` needs of the checkout (no .venv, no .git, no build output).
_SOURCES = ("setup.cfg", "pyproject.toml", "README.rst", "escalator_handlers", "scripts")


@dataclass(frozen=True)
class Install:
    """escalator installed the way a user installs it: ``pip install .`` (not editable) into a new venv."""

    venv: str
    label: str

    @property
    def bin(self) -> str:
        return os.path.join(self.venv, "bin")

    @property
    def python(self) -> str:
        return os.path.join(self.bin, "python")

    def script(self, name: str) -> str:
        return os.path.join(self.bin, name)


def install(tmp: str, name: str, ref: Optional[str] = None) -> Install:
    """A fresh virtual environment with escalator pip-installed from the checkout (or git ``ref``).

    The sources are copied first, so the build writes nothing into the
    checkout; an editable install would not do, since its import hook loads
    ``re`` into every interpreter and flatters the handler's ratio.
    """
    src = os.path.join(tmp, f"src-{name}")
    if ref is None:
        os.makedirs(src)
        for entry in _SOURCES:
            path = os.path.join(REPO, entry)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(src, entry),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif os.path.exists(path):
                shutil.copy2(path, os.path.join(src, entry))
        label = "this checkout"
    else:
        os.makedirs(src)
        archive = subprocess.run(["git", "-C", REPO, "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        label = f"commit {ref}"
    venv = os.path.join(tmp, f"venv-{name}")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    proc = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", src], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {src} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return Install(venv, label)


@dataclass(frozen=True)
class Row:
    """One line of the results table.  ``met`` is None for a row without a target."""

    bench: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: Optional[bool] = None
    note: str = ""


@dataclass
class Context:
    """What every benchmark gets: sizes (quick or full), a scratch dir, the install, a log."""

    quick: bool
    tmp: str
    notes: List[str] = field(default_factory=list)      # details for RESULTS.rst
    verbose: bool = True
    _installs: Dict[str, Install] = field(default_factory=dict)

    def installed(self, name: str = "current", ref: Optional[str] = None) -> Install:
        """The install named ``name``, made on first use (see ``install``)."""
        if name not in self._installs:
            t = time.monotonic()
            self._installs[name] = install(self.tmp, name, ref)
            self.say(f"pip install of {self._installs[name].label} into a fresh venv: {time.monotonic() - t:.1f}s")
        return self._installs[name]

    @property
    def bin(self) -> str:
        return self.installed().bin

    @property
    def python(self) -> str:
        return self.installed().python

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"  .. {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_child(argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
              stdout: int = subprocess.DEVNULL, stderr: int = subprocess.DEVNULL,
              cwd: Optional[str] = None, check: bool = True) -> Tuple[float, int, "os.struct_rusage"]:
    """Run argv to completion: (wall seconds, exit status, the child's own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=stderr, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, proc.returncode, usage


#: Runs argv[1:] from a fresh, small interpreter and prints "wall maxrss_kib".
#: A child forked (vfork) straight from the harness would inherit the
#: harness's own high-water RSS into its ru_maxrss (Linux carries the old
#: mm's peak across exec), so peak memory is measured from here.
_SPAWNER = ("import os, sys, time\n"
            "t = time.perf_counter()\n"
            "null = os.open(os.devnull, os.O_RDWR)\n"
            "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ,\n"
            "                     file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),\n"
            "                                   (os.POSIX_SPAWN_DUP2, null, 2)])\n"
            "_, status, ru = os.wait4(pid, 0)\n"
            "wall = time.perf_counter() - t\n"
            "print(wall, ru.ru_maxrss, os.waitstatus_to_exitcode(status))\n")


def run_measured(argv: Sequence[str]) -> Tuple[float, float]:
    """Run argv (an absolute path first) to completion: (wall seconds, peak RSS in MiB) of that process alone."""
    out = subprocess.run([sys.executable, "-S", "-c", _SPAWNER, *argv], check=True, capture_output=True,
                         stdin=subprocess.DEVNULL, text=True).stdout.split()
    if int(out[2]) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {out[2]}")
    return float(out[0]), int(out[1]) / 1024


def interleaved(subjects: Mapping[str, Callable[[], float]], repeats: int,
                budget: Optional[float] = None, warmup: int = 1) -> Dict[str, List[float]]:
    """Call each subject in turn ``repeats`` times (after ``warmup`` unrecorded rounds).

    A subject returns its own measurement (seconds).  With ``budget`` (seconds),
    stop early once that much time went by and every subject has 3 samples.
    """
    for _ in range(warmup):
        for fn in subjects.values():
            fn()
    out: Dict[str, List[float]] = {name: [] for name in subjects}
    start = time.monotonic()
    for i in range(repeats):
        for name, fn in subjects.items():
            out[name].append(fn())
        if budget is not None and i >= 2 and time.monotonic() - start > budget:
            break
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def machine(python: str) -> Dict[str, str]:
    """CPU model, cores, memory, Python, kernel, date: the RESULTS.rst header."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except (OSError, ValueError):
        pass
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "escalator": f"pip install . (not editable) into a fresh venv ({os.path.basename(python)} there)",
        "kernel": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _mark(met: Optional[bool]) -> str:
    return "" if met is None else ("yes" if met else "NO")


_HEAD = ("benchmark", "measured", "baseline (same run)", "ratio", "target", "met")


def _cells(rows: Sequence[Row]) -> List[Tuple[str, ...]]:
    return [(r.bench, r.measured, r.baseline, r.ratio, r.target, _mark(r.met)) for r in rows]


def format_table(rows: Sequence[Row]) -> str:
    """Plain aligned columns for the terminal."""
    cells = [_HEAD] + _cells(rows)
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rst_table(rows: Sequence[Row]) -> str:
    """A reStructuredText grid table."""
    cells = [_HEAD] + _cells(rows)
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    head_sep = sep.replace("-", "=")
    out = [sep]
    for n, c in enumerate(cells):
        out.append("| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |")
        out.append(head_sep if n == 0 else sep)
    return "\n".join(out)


def write_results(path: str, rows: Sequence[Row], info: Mapping[str, str], notes: Sequence[str],
                  elapsed: float, command: str) -> None:
    met = [r for r in rows if r.met is not None]
    ok = sum(1 for r in met if r.met)
    lines = [
        "Benchmark results",
        "=================",
        "",
        f"Written by ``{command}``.  Every ratio compares two things",
        "measured side by side in the same run, interleaved; absolute times vary",
        "from machine to machine and from run to run, the ratios much less.",
        "",
        "Machine",
        "-------",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- whole run: {elapsed:.0f} s", "", "Results", "-------", "",
              f"{ok} of {len(met)} targets met.", "", rst_table(rows), ""]
    details = [r for r in rows if r.note]
    if details or notes:
        lines += ["Notes", "-----", ""]
        lines += [f"- {r.bench}: {r.note}" for r in details]
        lines += [f"- {n}" for n in notes]
        lines.append("")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
