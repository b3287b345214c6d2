"""Run Gherkin features with behave or Debian's cucumber and read their JSON report.

This is the process side of check_cucumber.  The runner is started in its
own session (so its process group holds it and every process its steps
start), with its output in files rather than pipes (a step's background
child holding a pipe open must not stall the check), and with a deadline:
when the deadline passes, or the check itself is told to stop, the whole
group is sent SIGTERM, then SIGKILL.

Features without a ``steps/`` directory run with the bundled smoke steps:
the ``.feature`` files are mirrored by symlinks into a temporary directory
next to a one-line steps file importing :mod:`escalator_handlers.plugins.smoke_steps`,
which is exactly what an operator would write.  The runner is started in
the parent of the feature directory and given the directory's own name, so
reported locations read ``smoke/app.feature:12`` either way.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .cucumber_report import Report, ReportError, parse_report
from ..errors import EscalatorError
from ..steps.shell import kill_group

__all__ = ["RunnerError", "RunOptions", "RunOutcome", "run_features", "RUNNERS",
           "BUILTIN_STEPS_LINE"]

log = logging.getLogger(__name__)

RUNNERS = ("behave", "cucumber")
BUILTIN_STEPS_LINE = "from escalator_handlers.plugins.smoke_steps import *  # noqa\n"
#: How long a runner gets to exit after SIGTERM before the group is killed.
_TERM_GRACE = 1.0
_TAIL_LINES = 5
# Backtrace lines (Ruby "file:12:in `x'", Python "  File ...") are not reasons.
_BACKTRACE = re.compile(r"^(\s|Traceback )|:\d+:in `")


class RunnerError(EscalatorError):
    """The runner could not produce a usable report (a reason for UNKNOWN)."""


@dataclass(frozen=True)
class RunOptions:
    """What to run and how; ``builtin_steps`` None means 'when there is no steps/'."""

    path: str
    runner: str = "behave"
    cucumber: str = "cucumber"
    builtin_steps: bool | None = None
    tags: tuple[str, ...] = ()
    timeout: float = 50.0


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: the parsed report plus what -vvv shows about the runner."""

    report: Report
    elapsed: float
    command: tuple[str, ...]
    cwd: str
    exit_status: int
    builtin_steps: bool
    output_tail: tuple[str, ...]
    #: The runner's last meaningful output line (an error message, usually).
    reason: str = ""


class _Terminated(Exception):
    """SIGTERM/SIGINT arrived while the runner was running."""


def run_features(options: RunOptions) -> RunOutcome:
    """Run the features and parse the report, or raise RunnerError with a reason."""
    if options.runner not in RUNNERS:
        raise RunnerError(f"unknown runner {options.runner!r} (use behave or cucumber)")
    path = Path(os.path.abspath(options.path))
    if not path.exists():
        raise RunnerError(f"feature path {options.path} does not exist")
    if path.is_file() and path.suffix != ".feature":
        raise RunnerError(f"{options.path} is neither a directory nor a .feature file")
    with tempfile.TemporaryDirectory(prefix="check_cucumber-") as tmp:
        report_file = Path(tmp, "report.json")
        if options.runner == "behave":
            command, cwd, builtin = _behave_command(options, path, Path(tmp), report_file)
        else:
            command, cwd, builtin = _cucumber_command(options, path, report_file)
        log.debug("running %s in %s", shlex.join(command), cwd)
        exit_status, elapsed, lines = _run(command, cwd, Path(tmp), options)
        if builtin:
            # Report the operator's paths, not the temporary mirror's.
            feature_dir = path if path.is_dir() else path.parent
            mirror = str(Path(tmp, feature_dir.name or "features"))
            lines = [line.replace(mirror, str(feature_dir)) for line in lines]
        reason = next((line for line in reversed(lines) if not _BACKTRACE.search(line)), "")
        report = _read_report(report_file, options.runner, exit_status, reason)
    return RunOutcome(report, elapsed, tuple(command), str(cwd), exit_status, builtin,
                      tuple(lines[-_TAIL_LINES:]), reason)


def _behave_command(options: RunOptions, path: Path, tmp: Path,
                    report_file: Path) -> tuple[list[str], Path, bool]:
    if importlib.util.find_spec("behave") is None:
        raise RunnerError(f"behave is not installed for {sys.executable}")
    builtin = options.builtin_steps
    if builtin is None:
        builtin = not _has_behave_steps(path)
    if builtin:
        cwd = tmp
        target = _mirror_features(path, tmp)
    else:
        cwd, target = _split(path)
    command = [sys.executable, "-m", "behave", "--format", "json",
               "--outfile", str(report_file), "--no-summary", "--no-snippets",
               "--no-color"]
    command += [f"--tags={tag}" for tag in options.tags]
    return command + [target], cwd, builtin


def _cucumber_command(options: RunOptions, path: Path,
                      report_file: Path) -> tuple[list[str], Path, bool]:
    if options.builtin_steps:
        raise RunnerError("--builtin-steps needs the behave runner (the steps are Python)")
    exe = shutil.which(options.cucumber)
    if exe is None:
        raise RunnerError(f"cucumber runner not found: {options.cucumber}")
    cwd, target = _split(path)
    # Explicit --require: from another directory cucumber would not load the
    # step definitions next to a feature file given by path.
    require = target if path.is_dir() else os.path.dirname(target) or "."
    command = [exe, "--format", "json", "--out", str(report_file), "--require", require]
    for tag in options.tags:
        command += ["--tags", tag]
    return command + [target], cwd, False


def _split(path: Path) -> tuple[Path, str]:
    """(directory to start the runner in, relative name to give it)."""
    feature_dir = path if path.is_dir() else path.parent
    cwd = feature_dir.parent
    return cwd, os.path.relpath(path, cwd)


def _has_behave_steps(path: Path) -> bool:
    """Would behave find a steps/ directory (it looks in the path and its parents)?"""
    directory = path if path.is_dir() else path.parent
    for candidate in (directory, *directory.parents):
        if (candidate / "steps").is_dir():
            return True
    return False


def _mirror_features(path: Path, tmp: Path) -> str:
    """Symlink the features (and environment.py) under tmp with the builtin steps."""
    feature_dir = path if path.is_dir() else path.parent
    mirror = tmp / (feature_dir.name or "features")
    (mirror / "steps").mkdir(parents=True)
    (mirror / "steps" / "escalator_smoke_steps.py").write_text(BUILTIN_STEPS_LINE)
    environment = feature_dir / "environment.py"
    if environment.is_file():
        (mirror / "environment.py").symlink_to(environment)
    if path.is_file():
        (mirror / path.name).symlink_to(path)
        return os.path.join(mirror.name, path.name)
    for root, dirs, files in os.walk(feature_dir):
        dirs[:] = sorted(d for d in dirs if d != "steps")
        for name in sorted(files):
            if name.endswith(".feature"):
                source = Path(root, name)
                link = mirror / source.relative_to(feature_dir)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
    return mirror.name


def _run(command: Sequence[str], cwd: Path, tmp: Path,
         options: RunOptions) -> tuple[int, float, list[str]]:
    """Run the command in its own session; (exit status, seconds, output lines)."""
    output = tmp / "runner-output.txt"
    started = time.monotonic()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    with open(output, "wb") as out:
        try:
            proc = subprocess.Popen(list(command), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as err:
            raise RunnerError(f"cannot start {options.runner}: {err}") from None
        for sig in previous:
            signal.signal(sig, terminate)
        try:
            exit_status = proc.wait(timeout=options.timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc, _TERM_GRACE)
            raise RunnerError(f"{options.runner} timed out after {options.timeout:g}s "
                              f"running {options.path}") from None
        except _Terminated as sig:
            kill_group(proc, _TERM_GRACE)
            raise RunnerError(f"interrupted by signal {sig.args[0]} while "
                              f"{options.runner} ran {options.path}") from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    elapsed = time.monotonic() - started
    return exit_status, elapsed, _output_lines(output)


def _output_lines(output: Path) -> list[str]:
    """The runner's non-empty output lines (the last 200 are plenty for a reason)."""
    lines = [line.rstrip() for line in
             output.read_text(encoding="utf-8", errors="replace").splitlines()]
    # behave 1.3 announces its runner class on every run; that is noise here.
    return [line for line in lines
            if line.strip() and not line.startswith("USING RUNNER")][-200:]


def _read_report(report_file: Path, runner: str, exit_status: int, reason: str) -> Report:
    why = f": {reason}" if reason else ""
    try:
        text = report_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if not text.strip():
        raise RunnerError(f"{runner} wrote no JSON report (exit {exit_status}){why}")
    try:
        document = json.loads(text)
    except ValueError as err:
        raise RunnerError(f"cannot parse {runner}'s JSON report: {err}{why}") from None
    try:
        return parse_report(document, runner)
    except ReportError as err:
        raise RunnerError(str(err)) from None
