"""check_cucumber: Gherkin features as a Nagios check, in cucumber-nagios style.

A nagiosplugin check: the :class:`FeatureRun` resource runs the features
(see :mod:`.cucumber_runner`) and yields step counts as metrics; contexts
judge them; :class:`CucumberSummary` words the status line the way
cucumber-nagios did, with Monitoring Plugins perfdata::

    CUCUMBER OK - Critical: 0, Warning: 0, 4 okay | passed=4 failed=0 nosteps=0 total=4 time=0.52s

followed by one ``Failed: <keyword> <step> in <file:line>`` line per failed
step.  ``--compat cucumber-nagios`` counts, lists failures and writes
perfdata exactly as the original formatter did
(``| passed=4; failed=0; nosteps=0; total=4; time=0.52``).  Thresholds: ``-w``/``-c`` apply to the number of failed steps (the
default critical range ``0`` makes any failed step CRITICAL, as
cucumber-nagios did); any undefined step is a WARNING; ``--time-warning``
and ``--time-critical`` apply to the runner's wall-clock seconds.  Runner
problems (missing runner or path, timeout, no usable report, no steps run)
are UNKNOWN with the reason as the status line.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any, NoReturn, Optional, Sequence

import nagiosplugin

from .. import __version__, defaults
from .pluginkit import OrderedPerfCheck, Parser, StatusLineOutput, add_version, parse_range
from .pluginkit import unknown as _unknown
from .cucumber_runner import RUNNERS, RunnerError, RunOptions, RunOutcome, run_features

__all__ = ["main", "FeatureRun", "CountContext", "CucumberSummary", "CucumberCheck"]

NAME = "CUCUMBER"
PROG = "check_cucumber"
#: Below Nagios's default service_check_timeout (60 s), so the plugin can kill
#: its runner and report UNKNOWN with a reason before Nagios kills the plugin.
DEFAULT_TIMEOUT = defaults.CHECK_CUCUMBER_TIMEOUT
_PERF_ORDER = ("passed", "failed", "nosteps", "total", "time")


class FeatureRun(nagiosplugin.Resource):
    """Runs the features once; the outcome stays available to the summary."""

    name = NAME

    def __init__(self, options: RunOptions, legacy: bool = False):
        self.options = options
        self.legacy = legacy
        self.outcome: RunOutcome | None = None

    def probe(self) -> list[nagiosplugin.Metric]:
        try:
            self.outcome = outcome = run_features(self.options)
        except RunnerError as err:
            raise nagiosplugin.CheckError(str(err)) from None
        report = outcome.report
        if report.total == 0:
            why = f": {outcome.reason}" if outcome.exit_status and outcome.reason else ""
            raise nagiosplugin.CheckError(
                f"no steps ran in {self.options.path} ({self.options.runner} exit "
                f"{outcome.exit_status}{why})")
        counts: Any = report.cucumber_nagios() if self.legacy else report
        return [
            nagiosplugin.Metric("passed", counts.passed, context="count"),
            nagiosplugin.Metric("failed", counts.failed, context="failed"),
            nagiosplugin.Metric("nosteps", counts.nosteps, context="nosteps"),
            nagiosplugin.Metric("total", counts.total, context="count"),
            nagiosplugin.Metric("time", round(outcome.elapsed, 2), "s", context="time"),
        ]


class CountContext(nagiosplugin.ScalarContext):
    """A ScalarContext whose perfdata shows thresholds only when the user set them.

    cucumber-nagios perfdata is bare (``failed=0``); built-in defaults such as
    "any failed step is critical" are policy, not thresholds a graph needs.
    """

    def __init__(self, name: str, warning: Any = None, critical: Any = None,
                 shown: tuple[Any, Any] = (None, None)):
        super().__init__(name, warning, critical)
        self.shown = shown

    def performance(self, metric: nagiosplugin.Metric,
                    resource: nagiosplugin.Resource) -> nagiosplugin.Performance:
        warn, crit = self.shown
        return nagiosplugin.Performance(metric.name, metric.value, metric.uom or "",
                                        warn or "", crit or "")


class CucumberSummary(nagiosplugin.Summary):
    """cucumber-nagios wording; long output grows with -v."""

    def __init__(self, verbosity: int = 0, legacy: bool = False):
        self.verbosity = verbosity
        self.legacy = legacy

    def ok(self, results: nagiosplugin.Results) -> str:
        return self._counts(results)

    def problem(self, results: nagiosplugin.Results) -> str:
        worst = results.first_significant
        if worst.state == nagiosplugin.Unknown:
            return str(worst)
        return self._counts(results)

    def _counts(self, results: nagiosplugin.Results) -> str:
        failed, nosteps = results["failed"].metric.value, results["nosteps"].metric.value
        text = f"Critical: {failed}, Warning: {nosteps}, {results['passed'].metric.value} okay"
        timing = results["time"]
        if timing.state != nagiosplugin.Ok:
            text += f", time {timing.metric.valueunit} {timing.hint}"
        return text

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        resource = next((r.resource for r in results if r.resource is not None), None)
        outcome = getattr(resource, "outcome", None)
        if outcome is None:
            return []
        report, lines = outcome.report, []
        if self.legacy:
            lines += [f"Failed: {text} in {scenario} on {definition}"
                      for text, scenario, definition in report.cucumber_nagios().failures]
        for step in () if self.legacy else report.failures:
            lines.append(f"Failed: {step.text} in {step.location}")
            if self.verbosity >= 1 and step.message:
                lines.append(f"  {step.message}")
        if self.verbosity >= 1:
            lines += [f"Undefined: {s.text} in {s.location}" for s in report.undefined]
        if self.verbosity >= 2:
            for sc in report.scenarios:
                lines.append(f"{sc.keyword}: {sc.name} ({sc.location}) {sc.status}, "
                             f"{len(sc.steps)} steps, {sc.duration:.3f}s")
        if self.verbosity >= 3:
            steps = " (bundled smoke steps)" if outcome.builtin_steps else ""
            lines.append(f"Runner: cd {shlex.quote(outcome.cwd)} && "
                         f"{shlex.join(outcome.command)}{steps}")
            lines.append(f"Runner exit status: {outcome.exit_status}, "
                         f"{outcome.elapsed:.3f}s")
            lines += [f"Runner output: {line}" for line in outcome.output_tail]
        return lines


class CucumberCheck(OrderedPerfCheck):
    """Perfdata in cucumber-nagios order."""

    perf_order = _PERF_ORDER


class LegacyOutput(StatusLineOutput):
    """The status line with cucumber-nagios's own perfdata: ``passed=4; failed=0; ...; time=0.52``.

    It is not valid Monitoring Plugins perfdata (``;`` separates a value from
    its thresholds, and the time has no unit); only for parsers built on it.
    """

    def add(self, check: nagiosplugin.Check) -> None:
        self.status = self.format_status(check)
        results = check.results
        if all(name in results for name in _PERF_ORDER):
            values = [results[name].metric.value for name in _PERF_ORDER]
            self.status += " | " + "; ".join(f"{name}={value}" for name, value in zip(_PERF_ORDER, values))
        self.add_longoutput(check.verbose_str)


class _Parser(Parser):
    plugin_name = NAME


def unknown(reason: str, *details: str) -> NoReturn:
    """Print an UNKNOWN status line (and details) and exit 3."""
    _unknown(NAME, reason, *details)


def _range(option: str, spec: Optional[str]) -> Optional[nagiosplugin.Range]:
    return parse_range(NAME, option, spec)


def _parser() -> _Parser:
    p = _Parser(prog=PROG, description=(
        "Run Gherkin .feature files with behave (default) or cucumber and report "
        "cucumber-nagios style: failed steps CRITICAL, undefined steps WARNING."),
        epilog="Ranges use the Monitoring Plugins syntax: 10, 10:, ~:10, 10:20, @10:20. "
               "Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
    p.add_argument("path", metavar="FEATURES", nargs="?",
                   help="directory of .feature files, or one .feature file")
    p.add_argument("-f", "--features", dest="features", metavar="FEATURES",
                   help="same as the positional FEATURES")
    p.add_argument("-r", "--runner", choices=RUNNERS, default="behave",
                   help="behave (Python, default) or cucumber (Debian's Ruby cucumber)")
    p.add_argument("--cucumber", default="cucumber", metavar="PATH",
                   help="cucumber executable for --runner cucumber (default: cucumber on PATH)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("-b", "--builtin-steps", dest="builtin", action="store_true",
                       default=None, help="run with the bundled smoke steps instead of "
                       "a steps/ directory (automatic when there is none)")
    steps.add_argument("--no-builtin-steps", dest="builtin", action="store_false",
                       help="never add the bundled steps")
    p.add_argument("--tags", action="append", default=[], metavar="EXPR",
                   help="only scenarios matching this tag expression (repeatable)")
    p.add_argument("-w", "--warning", metavar="RANGE",
                   help="failed steps outside RANGE are WARNING (default: none)")
    p.add_argument("-c", "--critical", metavar="RANGE",
                   help="failed steps outside RANGE are CRITICAL (default: 0, any failure)")
    p.add_argument("--time-warning", metavar="RANGE",
                   help="runtime in seconds outside RANGE is WARNING")
    p.add_argument("--time-critical", metavar="RANGE",
                   help="runtime in seconds outside RANGE is CRITICAL")
    p.add_argument("-t", "--timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="kill the runner (its whole process group) and exit UNKNOWN after "
                        f"SECONDS (default {DEFAULT_TIMEOUT})")
    p.add_argument("--compat", choices=("cucumber-nagios",),
                   help="count, list failures and write perfdata exactly as cucumber-nagios did "
                        "(its perfdata is not valid Monitoring Plugins perfdata)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more long output: -v error messages and undefined steps, "
                        "-vv scenarios, -vvv runner command and output")
    add_version(p, PROG, __version__)
    return p


def build_check(argv: Sequence[str] | None = None) -> tuple[CucumberCheck, int, bool]:
    """Parse the command line into a ready check, its verbosity and whether it is in
    cucumber-nagios compat mode (exits 3 on misuse)."""
    args = _parser().parse_args(argv)
    path = args.features or args.path
    if args.features and args.path:
        unknown("give FEATURES once, positionally or with -f")
    if not path:
        unknown("no feature directory or file given", _parser().format_usage().strip())
    if args.timeout <= 0:
        unknown(f"timeout must be a positive number of seconds, not {args.timeout}")
    warning = _range("-w/--warning", args.warning)
    critical = _range("-c/--critical", args.critical)
    time_warning = _range("--time-warning", args.time_warning)
    time_critical = _range("--time-critical", args.time_critical)
    options = RunOptions(path=path, runner=args.runner, cucumber=args.cucumber,
                         builtin_steps=args.builtin, tags=tuple(args.tags),
                         timeout=args.timeout)
    verbosity = min(args.verbose, 3)
    legacy = args.compat == "cucumber-nagios"
    check = CucumberCheck(
        FeatureRun(options, legacy),
        CountContext("count"),
        CountContext("failed", warning, critical if critical is not None else "0",
                     shown=(warning, critical)),
        CountContext("nosteps", warning="0"),
        CountContext("time", time_warning, time_critical,
                     shown=(time_warning, time_critical)),
        CucumberSummary(verbosity, legacy),
        name=NAME)
    return check, verbosity, legacy


@nagiosplugin.guarded(verbose=0)
def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console script ``check_cucumber``: run the check, print, exit 0-3."""
    check, verbosity, legacy = build_check(argv)
    runtime = nagiosplugin.Runtime()
    runtime.output = (LegacyOutput if legacy else StatusLineOutput)(runtime.logchan)
    # The runner's deadline is enforced in cucumber_runner (it must kill the
    # runner's process group); nagiosplugin's own SIGALRM timeout stays off.
    check.main(verbose=verbosity, timeout=0)
    sys.exit(3)  # not reached: Check.main exits


if __name__ == "__main__":
    main()
