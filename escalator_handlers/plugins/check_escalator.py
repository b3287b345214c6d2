"""check_escalator: the escalator's own health as a Nagios check.

A nagiosplugin check over :func:`escalator_handlers.status.gather`: the
resource and the contexts that judge it live in :mod:`.health`; this module
holds the command line, :class:`HealthSummary` (the wording) and main::

    ESCALATOR OK - idle, 0 pending, last run ok 5m ago | backlog=0;;;0 oldest_age=0s;120;600;0 runs_last_hour=1;;;0;6 failing=0;;;0 quiescence_left=0s;;;0 approvals_waiting=0;;;0 approval_age=0s;;;0

Non-OK items come first, worst first.  ``-w``/``-c`` apply to the age in
seconds of the oldest spool entry not yet collected, ``--backlog-warning``
and ``--backlog-critical`` to their number.  Built in: CRITICAL when events
have waited longer than ``--dead-after`` (default twice the config's
quiescence plus 60 s) with no collector holding the lock, or when the last
run failed and checks it was for still fail; WARNING while paused or holding
levels or hosts, and while a run waits for a person's approval
(``--approval-critical`` on its age).  ``-v`` lists failing checks, holds,
approvals with the command that answers them, the next action and the last run; ``-vv`` recent runs and verdicts; ``-vvv`` where everything lives.

Following the Monitoring Plugins guidelines: exit 0-3, usage errors and
unusable input UNKNOWN (3) with a one-line reason, ``-h`` and ``-V`` exit 3
like the Monitoring Plugins' own plugins, perfdata separated by spaces.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, NoReturn, Optional, Sequence

import nagiosplugin

from .. import __version__, defaults
from ..status import last_run
from .pluginkit import OrderedPerfCheck, Parser, StatusLineOutput, add_version, parse_range
from .pluginkit import unknown as _unknown
from .handler_runs import GRACE, HANDLER_COMMAND, LOOKBACK
from .health import LIST_LIMIT, ORDER, PERF_ORDER, EscalatorHealth, ago, approval_lines, clean, contexts
from ..display import format_record, plural

__all__ = ["main", "build_check", "EscalatorCheck", "HealthSummary"]

NAME = "ESCALATOR"
PROG = "check_escalator"
#: Reading the spool and journal takes milliseconds; a hung file system must
#: still end in an UNKNOWN with a reason before Nagios kills the plugin.
DEFAULT_TIMEOUT = defaults.CHECK_ESCALATOR_TIMEOUT


class EscalatorCheck(OrderedPerfCheck):
    """Perfdata in PERF_ORDER."""

    perf_order = PERF_ORDER


class HealthSummary(nagiosplugin.Summary):
    """Non-OK items first (worst first), then the rest in ORDER; -v adds long output."""

    def __init__(self, verbosity: int = 0):
        self.verbosity = verbosity

    def ok(self, results: nagiosplugin.Results) -> str:
        return self._line(results)

    def problem(self, results: nagiosplugin.Results) -> str:
        worst = results.first_significant
        if worst.metric is None:  # CheckError: the reason is the whole story
            return str(worst)
        return self._line(results)

    def _line(self, results: nagiosplugin.Results) -> str:
        rank = {name: i for i, name in enumerate(ORDER)}
        items = sorted((r for r in results if r.hint),
                       key=lambda r: (-int(r.state), rank.get(r.metric.name, 99)))
        return ", ".join(r.hint for r in items)

    def verbose(self, results: nagiosplugin.Results) -> List[str]:
        resource = next((r.resource for r in results if r.resource is not None), None)
        if self.verbosity < 1 or not isinstance(resource, EscalatorHealth) or not resource.report:
            return []
        return long_output(resource, self.verbosity)


def long_output(res: EscalatorHealth, verbosity: int) -> List[str]:
    """Lines after the status line: -v failing checks, holds, next action, last run;
    -vv recent runs and verdicts; -vvv where everything lives."""
    r, out = res.report, []
    c = r["collector"]
    out.append("collector: " + (f"running (pid {c['pid']})" if c["running"] and c["pid"] else
                                "running" if c["running"] else
                                f"not running (dead when events wait over {res.dead_after:g}s)"))
    sp = r["spool"]
    out.append(f"spool: {sp['pending']} pending" + (f", oldest {sp['oldest_age']:.0f}s" if sp["oldest_age"] else "")
               + (f", {sp['unreadable']} unreadable" if sp.get("unreadable") else ""))
    nxt = r.get("next") or {}
    out.append(f"next: {clean(nxt.get('why') or 'nothing to do', 300)}")
    if r.get("quiescence_left"):
        out.append(f"quiescence: {ago(r['quiescence_left'])} left")
    for f in r["failing"][:LIST_LIMIT]:
        held = " (host held)" if f.get("held") else ""
        out.append(f"failing: {clean(f['check'], 120)} {clean(f['state'], 20)} {clean(f['state_type'], 10)}"
                   f" -> {clean(f['level'], 80)}{held}")
    if len(r["failing"]) > LIST_LIMIT:
        out.append(f"failing: and {len(r['failing']) - LIST_LIMIT} more")
    for d in (r.get("in_downtime") or ())[:LIST_LIMIT]:
        out.append(f"in downtime: {clean(d['check'], 120)} {clean(d['state'], 20)} {clean(d['state_type'], 10)}"
                   f" -> {clean(d['level'] or 'unmapped', 80)} (held by scheduled downtime)")
    for name in r.get("unmapped", ())[:LIST_LIMIT]:
        out.append(f"unmapped: {clean(name, 120)} (no rule maps it; ignored)")
    if r["paused"]:
        out.append(f"paused: {clean(r.get('pause_reason') or '(no reason given)')}")
    for name, why in list(r["held_levels"].items())[:LIST_LIMIT]:
        out.append(f"held level: {clean(name, 80)}: {clean(why)}")
    for host, why in list(r["held_hosts"].items())[:LIST_LIMIT]:
        out.append(f"held host: {clean(host, 80)}: {clean(why or '(no reason given)')}")
    for name in r.get("escalated_levels", ()):
        out.append(f"escalated level: {clean(name, 80)} (next run starts one level more drastic)")
    out += approval_lines(r)
    out += [f"lost event: handler ran for {clean(x, 200)}, nothing recorded" for x in res.handlers.lost[:LIST_LIMIT]]
    last = last_run(r)
    if last:
        out.append("last run: " + _record(last))
    if verbosity >= 2:
        out += [f"attempts: level {clean(k, 80)}: {v}" for k, v in (r.get("attempts") or {}).items()]
        out += ["run: " + _record(x) for x in (r.get("last_runs") or ())[-5:]]
        out += ["verdict: " + _record(x) for x in (r.get("last_verdicts") or ())[-5:]]
    if verbosity >= 3:
        cfg = res.config
        out += [f"config: {clean(cfg.source, 300)}", f"spool dir: {clean(cfg.spool, 300)}",
                f"journal: {clean(cfg.journal, 300)}", f"state file: {clean(cfg.state_path, 300)}",
                f"quiescence: {ago(cfg.quiescence)}, max_delay: {ago(cfg.max_delay)}"]
    if r.get("journal_unreadable"):
        out.append(f"journal: {plural(r['journal_unreadable'], 'unreadable line')} skipped")
    out += [f"note: {clean(n, 300)}" for n in res.notes[:LIST_LIMIT]]
    return out


def _record(rec: Dict[str, Any]) -> str:
    # format_record escapes what it prints; one line, and no | for Nagios.
    return " / ".join(line.strip() for line in format_record(rec).splitlines()).replace("|", "\\x7c")


class _Parser(Parser):
    plugin_name = NAME


def unknown(reason: str, *details: str) -> NoReturn:
    """Print an UNKNOWN status line (and details) and exit 3."""
    _unknown(NAME, reason, *details)


def _range(option: str, spec: Optional[str]) -> Optional[nagiosplugin.Range]:
    return parse_range(NAME, option, spec)


def seconds(text: str) -> float:
    """argparse type of --dead-after (its name shows in the error message)."""
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise ValueError(text)
    return value


def _parser() -> _Parser:
    p = _Parser(prog=PROG, description=(
        "Report the escalator's own health from its spool, state and journal: events "
        "waiting, collector alive, pause and holds, runs waiting for approval, the last run's outcome."),
        epilog="Ranges use the Monitoring Plugins syntax: 10, 10:, ~:10, 10:20, @10:20 "
               "(alert outside the range). Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
    p.add_argument("-C", "--config", metavar="PATH",
                   help="escalator config (default: $ESCALATOR_CONFIG, else "
                        f"{defaults.CONFIG_PATH})")
    p.add_argument("-w", "--warning", metavar="RANGE",
                   help="WARNING when the oldest pending event's age in seconds is outside RANGE")
    p.add_argument("-c", "--critical", metavar="RANGE",
                   help="CRITICAL when the oldest pending event's age in seconds is outside RANGE")
    p.add_argument("--backlog-warning", metavar="RANGE",
                   help="WARNING when the number of pending events is outside RANGE")
    p.add_argument("--backlog-critical", metavar="RANGE",
                   help="CRITICAL when the number of pending events is outside RANGE")
    p.add_argument("--approval-critical", metavar="RANGE",
                   help="CRITICAL when the age in seconds of the oldest run waiting for approval is "
                        "outside RANGE (any wait is WARNING)")
    p.add_argument("--dead-after", type=seconds, metavar="SECONDS",
                   help="CRITICAL when events have waited this long and no collector holds the "
                        f"lock (default: {defaults.DEAD_AFTER_QUIESCENCES} x the config's quiescence + {defaults.DEAD_AFTER_EXTRA:g})")
    p.add_argument("--nagios-log", metavar="PATH",
                   help="CRITICAL when this nagios.log shows a run of escalator's event handler that "
                        "recorded no event (a handler that cannot run as the Nagios user loses events silently)")
    p.add_argument("--handler-command", default=HANDLER_COMMAND, metavar="GLOB",
                   help=f"the event handler commands to look for in --nagios-log (default {HANDLER_COMMAND})")
    p.add_argument("--handler-grace", type=seconds, default=GRACE, metavar="SECONDS",
                   help=f"handler runs younger than this are not judged yet (default {GRACE:g})")
    p.add_argument("--handler-lookback", type=seconds, default=LOOKBACK, metavar="SECONDS",
                   help=f"judge the handler runs of the last SECONDS (default {LOOKBACK:g})")
    p.add_argument("-t", "--timeout", type=int, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"give up with UNKNOWN after SECONDS (default {DEFAULT_TIMEOUT})")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="long output: -v failing checks, holds, approvals, next action, last run; "
                        "-vv recent runs and verdicts; -vvv file locations")
    add_version(p, PROG, __version__)
    return p


def build_check(argv: Optional[Sequence[str]] = None) -> tuple[EscalatorCheck, int]:
    """Parse the command line into a ready check and its verbosity (exits 3 on misuse)."""
    from ..config import config_path

    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        unknown(f"timeout must be a positive number of seconds, not {args.timeout}")
    age = (_range("-w/--warning", args.warning), _range("-c/--critical", args.critical))
    backlog = (_range("--backlog-warning", args.backlog_warning),
               _range("--backlog-critical", args.backlog_critical))
    verbosity = min(args.verbose, 3)
    resource = EscalatorHealth(config_path(args.config), dead_after=args.dead_after,
                               timeout=args.timeout, clock=time.time, nagios_log=args.nagios_log,
                               handler_options={"lookback": args.handler_lookback, "grace": args.handler_grace,
                                                "command": args.handler_command})
    check = EscalatorCheck(resource, *contexts(age, backlog, _range("--approval-critical", args.approval_critical)),
                           HealthSummary(verbosity), name=NAME)
    return check, verbosity


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Console script ``check_escalator``: run the check, print, exit 0-3."""
    try:
        check, verbosity = build_check(argv)
        runtime = nagiosplugin.Runtime()
        runtime.output = StatusLineOutput(runtime.logchan)
        # The resource enforces -t itself around its I/O, so that the UNKNOWN
        # line can say what it was doing; nagiosplugin's SIGALRM stays off.
        check.main(verbose=verbosity, timeout=0)
    except Exception as exc:  # the promise: never a traceback, always exit 3 with a reason
        unknown(f"internal error: {type(exc).__name__}: {clean(exc, 300)}")
    sys.exit(3)  # not reached: Check.main exits


if __name__ == "__main__":
    main()
