"""``escalator replay``, ``validate`` and ``test``: offline checks of a config, against history or scenarios."""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, List, Optional

import click

from .. import defaults, kinds
from ..config import config_path, load_config
from ..display import format_record, plural, safe
from ..errors import ConfigError, UsageError
from .base import config_option, inherit_config, load, setup_logging, time_option


@click.command()
@click.argument("config_file", required=False, metavar="[CONFIG]")
@config_option
def validate(config_file: Optional[str], config: Optional[str]) -> int:
    """Check a config: exit 0, or 2 with every error listed."""
    from ..config.load import format_problems, validate as _validate

    path = config_path(config_file or config)
    problems = _validate(path)
    if problems:
        click.echo(format_problems(problems), err=True)
        click.echo(f"{path}: {plural(len(problems), 'error')}", err=True)
        return 2
    cfg = load_config(path)
    from ..config.secrets import readable_by_others

    from ..control_dir import layout_warnings
    from ..storage.local import state_dir

    for warning in readable_by_others(cfg) + (layout_warnings(state_dir(cfg)) if cfg.cluster is None else []):
        click.echo(f"{path}: warning: {warning}", err=True)
    feedback = cfg.nagios is not None and bool(cfg.nagios.command_file or cfg.nagios.icinga_api)
    if not cfg.notify:
        click.echo(f"{path}: warning: no notify steps: nothing can reach an administrator when a level "
                   "is exhausted or a limit stops action (it is only journalled"
                   + (" and reported to Nagios/Icinga)" if feedback else ")"), err=True)
    click.echo(f"{path}: ok")
    return 0


def _json_line() -> Callable[[dict], str]:
    """``json.dumps(rec, ensure_ascii=True)``, with one C encoder for every record and no
    check for circular references (records are trees): replay writes tens of thousands."""
    from json import encoder

    if encoder.c_make_encoder is None:  # not CPython
        return lambda rec: json.dumps(rec, ensure_ascii=True)
    enc = encoder.c_make_encoder(None, json.JSONEncoder().default, encoder.c_encode_basestring_ascii, None,
                                 ": ", ", ", False, False, True)
    return lambda rec: "".join(enc(rec, 0))


def _hand_over(cfg, config: Optional[str], files: List[str], until: Optional[float]) -> int:
    """``replay --execute``: the events go to the collector; replay itself never runs a step."""
    from ..replay import hand_over
    from .operator import kick

    n, stats = hand_over(cfg, files, until)
    kick(config, cfg)
    click.echo(f"handed {n} events from {', '.join(stats.files)} to the collector through spool "
               f"{cfg.spool}: it acts on them in real time, under its lock, journal, pause, holds and "
               f"limits; follow with `escalator status`")
    return 0


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True))
@config_option
@click.option("--execute", is_flag=True,
              help="hand the events to the live collector through the spool (it acts in real time, "
                   "under its lock, journal, pause, holds and limits); default: a dry run")
@click.option("--json", "as_json", is_flag=True, help="one JSON record a line")
@time_option("--since", "start the simulated clock here; earlier events only build the starting state")
@time_option("--until", "stop the simulated clock here (default: one day after the last event)")
@click.option("-v", "--verbose", count=True,
              help="-v: list every event, not only changes of HARD state; -vv: also the unparsed lines")
def replay(files: List[str], config: Optional[str], execute: bool, as_json: bool,
           since: Optional[float], until: Optional[float], verbose: int) -> int:
    """Replay nagios.log, spool or journal FILES through the planner on their own clock."""
    from ..replay import replay as _replay
    from ..display import plural

    if not files:
        raise UsageError("replay needs at least one FILE (nagios.log, JSON-lines events or journal, spool dir)")
    if since is not None and until is not None and until < since:
        raise UsageError("--until is before --since")
    if execute or verbose > 2:
        # A dry run logs nothing but the step runner's debug lines (-vvv); without them
        # logging is not even imported: some 6 ms, and start-up is a sixth of replaying the
        # benchmarks' 200,000-line log.
        setup_logging(verbose - 1)
    cfg = load(config)
    if execute:
        return _hand_over(cfg, config, files, until)
    failed = [0]
    counts = {kinds.RUN: 0, kinds.VERDICT: 0, kinds.NOTIFY: 0}
    # Lines go out in blocks: with PYTHONUNBUFFERED (or a terminal) each write would be a system call.
    pending: List[str] = []
    write, dumps = pending.append, _json_line()

    def flush() -> None:
        sys.stdout.write("".join(pending))
        pending.clear()

    def out(rec: dict) -> None:
        kind = rec.get("kind")
        if kind in counts and not kinds.is_skip(rec):
            counts[kind] += 1
        if kind == kinds.RUN and rec.get("outcome") == "failed":
            failed[0] += 1
        write(dumps(rec) + "\n" if as_json else format_record(rec) + "\n")
        if len(pending) >= 256:
            flush()

    mode = "all" if verbose else ("none" if as_json else "changes")
    try:
        stats = _replay(cfg, files, out, until=until, since=since, show_events=mode)
    finally:
        flush()  # what was replayed before an error, too
    window = []
    if stats.before:
        window.append(f"{plural(stats.before, 'earlier event')} as the starting state")
    if stats.events - stats.before - stats.replayed:
        window.append(f"{plural(stats.events - stats.before - stats.replayed, 'later event')} after --until")
    summary = (f"replayed {plural(stats.replayed, 'event')} from {plural(stats.lines, 'line')} of "
               f"{', '.join(stats.files)}" + (f" ({'; '.join(window)})" if window else "") + ": "
               f"{plural(counts[kinds.RUN], 'run')}, {plural(counts[kinds.VERDICT], 'verdict')}, "
               f"{plural(counts[kinds.NOTIFY], 'notification')}; "
               f"{plural(stats.ignored, 'line')} ignored, {stats.unparsed} unparsed"
               + (" (-vv lists them)" if stats.unparsed and verbose < 2 else ""))
    click.echo(summary, err=True)
    for where in stats.refused[:20]:
        click.echo(f"refused (over a field limit): {safe(where, 300)}", err=True)
    if len(stats.refused) > 20:
        click.echo(f"... and {len(stats.refused) - 20} more refused", err=True)
    if stats.unparsed and verbose >= 2:
        click.echo("unparsed lines: " + ", ".join(stats.unparsed_where[:200]), err=True)
    return 0


@click.command("test")
@click.argument("paths", nargs=-1)
@click.option("--config", "-C", "config", metavar="PATH", callback=inherit_config,
              help="config for every scenario (default: each file's config:, else $ESCALATOR_CONFIG, "
                   f"else {defaults.CONFIG_PATH})")
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
