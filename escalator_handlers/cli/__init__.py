"""The ``escalator`` command: click commands over the library.

This is the only layer that prints or chooses exit codes: 0 success, 1 a step
or run failed (or another runtime error), 2 bad usage or bad config.  Library
errors arrive as EscalatorError subclasses and leave as one ``Error:`` line
(config errors: one line per problem); no traceback reaches the user unless
ESCALATOR_DEBUG=1 asks for it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Callable, List, Optional

import click

from .. import __version__
from ..config import Config, config_path, load_config
from ..errors import ConfigError, EscalatorError, UsageError
from ..display import format_record, safe, when


def _load(path: Optional[str]) -> Config:
    return load_config(config_path(path))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("escalator: %(levelname)s: %(message)s"))
    root = logging.getLogger("escalator")
    root.handlers[:] = [h]
    root.setLevel(level)


def config_option(f: Callable) -> Callable:
    return click.option("--config", "-C", "config", metavar="PATH", envvar="ESCALATOR_CONFIG",
                        help="config file (default: $ESCALATOR_CONFIG, else /etc/escalator/escalator.yaml)")(f)


def _print(line: str) -> None:
    click.echo(line)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="escalator")
def cli() -> None:
    """Monitoring-driven operations: act on failing Nagios/Icinga checks."""


@cli.command()
@config_option
@click.option("--daemon", is_flag=True, help="keep running (for systemd); default: exit when nothing is pending")
@click.option("-v", "--verbose", count=True)
def collect(config: Optional[str], daemon: bool, verbose: int) -> int:
    """Wait for quiet, act, and exit when nothing is pending."""
    from ..collector import Collector

    _setup_logging(verbose)
    path = config_path(config)
    cfg = load_config(path)
    return Collector(cfg, path, daemon=daemon).run()


@cli.command()
@click.argument("config_file", required=False, metavar="[CONFIG]")
@config_option
def validate(config_file: Optional[str], config: Optional[str]) -> int:
    """Check a config: exit 0, or 2 with every error listed."""
    from ..config.load import format_problems, validate as _validate

    path = config_path(config_file or config)
    problems = _validate(path)
    if problems:
        click.echo(format_problems(problems), err=True)
        click.echo(f"{path}: {len(problems)} error(s)", err=True)
        return 2
    click.echo(f"{path}: ok")
    return 0


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True))
@config_option
@click.option("--execute", is_flag=True, help="really run the steps (default: dry run)")
@click.option("--json", "as_json", is_flag=True, help="one JSON record a line")
@click.option("--until", type=float, metavar="EPOCH",
              help="stop the simulated clock here (default: one day after the last event)")
@click.option("-v", "--verbose", count=True, help="-v: every event; -vv: and unparsed line numbers")
def replay(files: List[str], config: Optional[str], execute: bool, as_json: bool,
           until: Optional[float], verbose: int) -> int:
    """Replay nagios.log, spool or journal FILES through the planner on their own clock."""
    from ..replay import replay as _replay

    if not files:
        raise UsageError("replay needs at least one FILE (nagios.log, JSON-lines events or journal, spool dir)")
    _setup_logging(verbose - 1)
    cfg = _load(config)
    failed = [0]
    counts = {"run": 0, "verdict": 0, "notify": 0}

    def out(rec: dict) -> None:
        kind = rec.get("kind")
        if kind in counts and not (kind == "run" and rec.get("outcome") == "skipped"):
            counts[kind] += 1
        if kind == "run" and rec.get("outcome") == "failed":
            failed[0] += 1
        if as_json:
            sys.stdout.write(json.dumps(rec, ensure_ascii=True) + "\n")
        else:
            sys.stdout.write(format_record(rec) + "\n")

    mode = "all" if verbose else ("none" if as_json else "changes")
    stats = _replay(cfg, files, out, execute_steps=execute, until=until, show_events=mode)
    summary = (f"replayed {stats.events} events from {stats.lines} lines of {', '.join(stats.files)}: "
               f"{counts['run']} runs, {counts['verdict']} verdicts, {counts['notify']} notifications; "
               f"{stats.ignored} lines ignored, {stats.unparsed} unparsed")
    click.echo(summary, err=True)
    if stats.unparsed and verbose >= 1:
        click.echo("unparsed lines: " + ", ".join(stats.unparsed_where[:200]), err=True)
    return 1 if failed[0] and execute else 0


@cli.command("test")
@click.argument("paths", nargs=-1)
@click.option("--config", "-C", "config", metavar="PATH",
              help="config for every scenario (default: each file's config:, else $ESCALATOR_CONFIG, "
                   "else /etc/escalator/escalator.yaml)")
@click.option("-v", "--verbose", count=True, help="print each scenario's timeline")
def test_scenarios(paths: List[str], config: Optional[str], verbose: int) -> int:
    """Run scenario files (or directories of *.yaml) against a config: exit 0 all pass, 1 a failure, 2 an error."""
    from .. import scenario
    from ..config.load import load_config as _load_config

    if not paths:
        raise UsageError("test needs at least one scenario file or directory")
    configs: dict = {}
    passed = failed = errors = 0
    for path in scenario.files_of(paths):
        try:
            sc = scenario.load(path)
            cfg_path = os.path.abspath(config) if config else sc.config or config_path(None)
            if cfg_path not in configs:
                configs[cfg_path] = _load_config(cfg_path)
            problems = scenario.unknown_levels(sc, configs[cfg_path])
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            errors += 1
            click.echo(f"ERROR {safe(path, 300)}")
            for problem in exc.problems:
                click.echo(f"      {safe(problem, 500)}")
            continue
        outcome = scenario.run(sc, configs[cfg_path])
        passed += outcome.passed
        failed += not outcome.passed
        click.echo(f"{'PASS ' if outcome.passed else 'FAIL '} {safe(path, 300)}: {safe(sc.name, 300)}")
        for line in outcome.diff:
            click.echo(f"      {safe(line, 500)}")
        if verbose:
            for rec in outcome.records:
                click.echo(f"      {format_record(rec)}")
    total = passed + failed + errors
    click.echo(f"{total} scenario{'s' if total != 1 else ''}: {passed} passed, {failed} failed"
               + (f", {errors} could not run" if errors else ""))
    return 2 if errors else 1 if failed else 0


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True))
@config_option
@click.option("--explain", is_flag=True, help="say which check asked for which level")
@click.option("--json", "as_json", is_flag=True)
def plan(files: List[str], config: Optional[str], explain: bool, as_json: bool) -> int:
    """What would run now: from the live state, or from event FILES / a spool."""
    from ..planning.planner import decide
    from ..replay import CONTROL_KINDS, SourceStats, sources
    from ..planning.state import State

    cfg = _load(config)
    if files:
        state = State(cfg)
        now = 0.0
        for item in sources(files, SourceStats()):
            t = item[0]
            now = max(now, t)
            if len(item) == 2:  # (time, an operator's control record)
                if item[1].get("kind") in CONTROL_KINDS:
                    state.apply(item[1])
            else:
                state.observe(*item)
    else:
        from .. import store
        from ..status import fold_pending

        now = time.time()
        state = store.load(cfg).state
        fold_pending(cfg, state)  # events no collector has taken yet count too
    d = decide(state, cfg, now)
    waited = None
    if d.run is None and not d.records and d.wake is not None:
        waited = d.wake
        d = decide(state, cfg, d.wake)
    if as_json:
        rec: dict = {"time": now, "kind": "plan", "why": d.why, "explain": list(d.explain)}
        if d.run is not None:
            rec.update(d.run.record(cfg, now))
            rec["kind"] = "plan"
        if waited is not None:
            rec["at"] = waited
        rec["records"] = list(d.records)
        click.echo(json.dumps(rec, ensure_ascii=True))
        return 0
    if d.run is not None:
        at = f" at {when(waited)} (once quiet)" if waited else ""
        click.echo(f"would run levels {', '.join(lv.name for lv in d.run.levels)}{at}")
        for name, hosts in d.run.targets.items():
            click.echo(f"  {safe(name)}: {', '.join(safe(h) for h in hosts) or '(no targets; steps without foreach run once)'}")
    elif d.records:
        for r in d.records:
            click.echo(format_record(r))
    else:
        click.echo(f"nothing would run: {d.why}")
    if explain or d.run is None:
        for line in d.explain:
            click.echo("  " + safe(line, 400))
    return 0


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def status(config: Optional[str], as_json: bool) -> int:
    """Failing checks, collector, quiescence left, last runs, holds."""
    from ..status import gather

    cfg = _load(config)
    r = gather(cfg, time.time())
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=True, indent=1))
        return 0
    c = r["collector"]
    click.echo(f"collector:   {'running' + (' (pid %s)' % c['pid'] if c['pid'] else '') if c['running'] else 'not running'}")
    age = r["spool"]["oldest_age"]
    click.echo(f"spool:       {r['spool']['pending']} pending" + (f", oldest {age:.0f}s" if age is not None else ""))
    if r["spool"]["problem"]:
        click.echo(f"spool:       PROBLEM: {safe(r['spool']['problem'], 400)}")
    click.echo(f"automation:  {'PAUSED: ' + safe(r['pause_reason'] or '(no reason given)') if r['paused'] else 'active'}")
    from ..event import iso_time

    for h in r["holds"]:
        who = f" by {safe(h['user'])}" if h["user"] else ""
        until = f" until {iso_time(h['until'])}" if h["until"] is not None else ""
        click.echo(f"held:        {safe(h['label'])}{who}{until}: {safe(h['reason']) or '(no reason given)'}")
    for lv, why in r["held_levels"].items():
        click.echo(f"held level:  {safe(lv)}: {safe(why)}")
    click.echo(f"next:        {safe(r['next']['why'])}")
    if r["quiescence_left"]:
        click.echo(f"quiescence:  {r['quiescence_left']:.0f}s left")
    click.echo(f"runs/hour:   {r['runs_last_hour']}")
    click.echo(f"failing:     {len(r['failing'])} check(s)" + (
        f", required level {r['required_level']}" if r["required_level"] else ""))
    for f in r["failing"][:50]:
        held = " (host held)" if f["held"] else ""
        click.echo(f"  {safe(f['check']):<40} {f['state']:<9} {f['state_type']:<5} -> {safe(f['level'])}{held}")
    for name in r["unmapped"][:20]:
        click.echo(f"  {safe(name):<40} unmapped (reported, ignored)")
    for name in r["unreachable"][:50]:
        click.echo(f"  {safe(name):<40} unreachable (a parent is down; no level asked, no target)")
    if r["last_runs"]:
        click.echo("last runs:")
        for rec in r["last_runs"][-5:]:
            click.echo("  " + format_record(rec).replace("\n", "\n  "))
    return 0


def _control(config: Optional[str], record: dict) -> int:
    from ..control import control

    cfg = _load(config)
    record.setdefault("time", time.time())
    record.setdefault("user", os.environ.get("SUDO_USER") or os.environ.get("USER") or str(os.getuid()))
    click.echo(f"{record['kind']}: {control(cfg, record)}")
    _kick(config)
    return 0


@cli.command()
@config_option
@click.option("--reason", default="", help="why (shown in status and the journal)")
def pause(config: Optional[str], reason: str) -> int:
    """Stop all automatic action (events are still recorded)."""
    return _control(config, {"kind": "pause", "reason": reason})


@cli.command()
@config_option
@click.option("--reason", default="")
def resume(config: Optional[str], reason: str) -> int:
    """Restart automatic action; also lifts holds on exhausted levels."""
    return _control(config, {"kind": "resume", "reason": reason})


def _name_glob(what: str, value: Optional[str]) -> Optional[str]:
    """A host or service glob from the command line: non-empty, no control characters."""
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{what} must not be empty")
    bad = [c for c in value if ord(c) < 32 or 127 <= ord(c) < 160]
    if bad:
        raise UsageError(f"{what} {safe(value)!s} contains a control character ({bad[0]!r}); "
                         "host and service names never do")
    return value


@cli.command()
@config_option
@click.option("--host", required=True, metavar="GLOB",
              help="hosts to keep hands off: a name or shell glob, as in check rules ('web-*')")
@click.option("--service", metavar="GLOB", help="only these services of those hosts (default: every check)")
@click.option("--for", "duration", metavar="DURATION", help="expire after this long (30m, 2h); default: until released")
@click.option("--reason", default="", help="why (shown in status and the journal)")
def hold(config: Optional[str], host: str, service: Optional[str], duration: Optional[str], reason: str) -> int:
    """Keep hands off hosts (an operator is working on them), like a silence."""
    from ..config.load import parse_duration

    rec: dict = {"kind": "hold", "host": _name_glob("--host", host),
                 "service": _name_glob("--service", service), "reason": reason}
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}") from None
        if seconds <= 0:
            raise UsageError(f"--for must be more than 0, got {duration!r}")
        rec["time"] = time.time()
        rec["until"] = rec["time"] + seconds
    return _control(config, rec)


@cli.command()
@config_option
@click.option("--host", required=True, metavar="GLOB", help="the host glob exactly as given to `escalator hold`")
@click.option("--service", metavar="GLOB", help="the service glob exactly as given to `escalator hold`")
@click.option("--reason", default="", help="why (shown in the journal)")
def release(config: Optional[str], host: str, service: Optional[str], reason: str) -> int:
    """Release a hold made with `escalator hold` (exit 1 if there is no such hold)."""
    from ..planning.statetypes import hold_label

    label = hold_label(_name_glob("--host", host) or "", _name_glob("--service", service))
    holds = _current_state(config).holds
    if label not in holds:
        covering = sorted(h.label for h in holds.values() if h.matches((host, service)))
        hint = (f"; it is covered by {', '.join(covering)}: release that" if covering else
                f"; holds in force: {', '.join(sorted(holds)) or 'none'}")
        raise EscalatorError(f"{safe(label)} is not held{safe(hint, 2000)}")
    return _control(config, {"kind": "release", "host": host, "service": service, "reason": reason})


def _current_state(config: Optional[str]):
    """The state as status sees it: journal, snapshot and the spool not yet collected."""
    from .. import store
    from ..status import fold_pending

    cfg = _load(config)
    state = store.load(cfg).state
    fold_pending(cfg, state)
    return state


def _kick(config: Optional[str]) -> None:
    """Start a detached collector when none runs and there is work: action held back by a
    hold or pause can proceed, and events a handler appended while ``control`` held the
    collector lock (that handler started no collector) are acted on."""
    import subprocess

    from .. import spool
    from ..control import work_pending

    cfg = _load(config)
    if spool.collector_running(cfg.spool) is None and work_pending(cfg, time.time()):
        subprocess.Popen([sys.executable, "-m", "escalator_handlers.cli", "collect",
                          "--config", os.path.abspath(config_path(config))],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, cwd="/")


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point: exactly one place that turns errors into exit codes."""
    try:
        rv = cli.main(args=argv, prog_name="escalator", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except ConfigError as exc:
        # Each problem names the file, line and key: one alone fits on the Error line.
        if len(exc.problems) == 1:
            click.echo(f"Error: {exc.problems[0]}", err=True)
        else:
            click.echo(f"Error: invalid config, {len(exc.problems)} problems:\n{exc}", err=True)
        return 2
    except EscalatorError as exc:
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise: never a traceback
        if os.environ.get("ESCALATOR_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {safe(exc, 500)} "
                   f"(set ESCALATOR_DEBUG=1 for a traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
