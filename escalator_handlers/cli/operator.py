"""``escalator pause|resume|hold|release|run``: an operator's hands on the automation.

pause, resume, hold and release are the emergency brake, so they keep working
when the config file fails validation, as long as the spool and journal can be
known (``operator_config``): they warn that the file is invalid and the
collector, running on its last good config, obeys them.  ``--spool`` and
``--journal`` reach it even when the file cannot be read at all.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, List, Optional

import click

from .. import kinds
from ..config import Config, config_path
from ..display import safe
from ..errors import ConfigError, EscalatorError, UsageError
from ..operator_config import OperatorConfig, load_for_operator
from .base import config_option, load, user


def operator_options(f: Callable) -> Callable:
    """--config, and --spool/--journal for when the config file is unusable."""
    f = click.option("--journal", metavar="PATH",
                     help="the journal, when the config file cannot say (default: from the config)")(f)
    f = click.option("--spool", metavar="DIR", envvar="ESCALATOR_SPOOL",
                     help="the spool (default: $ESCALATOR_SPOOL, else from the config)")(f)
    return config_option(f)


def operator_config(config: Optional[str], spool: Optional[str], journal: Optional[str]) -> OperatorConfig:
    """The config, or -- when the file is invalid -- its paths, with a warning on stderr."""
    try:
        op = load_for_operator(config_path(config), spool, journal)
    except ConfigError as exc:
        if any("world-writable" in str(p) for p in exc.problems):
            raise  # no leniency for a file anyone could have written
        # Not even the paths can be read from the file: say how to reach the brake all the same.
        last = exc.problems[-1]
        raise ConfigError(exc.problems[:-1] + [dataclasses.replace(last, message=(
            f"{last.message} (the spool and journal cannot be read from it either: give them with "
            "--spool DIR --journal PATH; pause, resume, hold, release and status need nothing else)"))]) from None
    warning = op.warning()
    if warning:
        click.echo(f"Warning: {safe(warning, 2000)}", err=True)
    return op


def _control(op: OperatorConfig, record: dict, config: Optional[str]) -> int:
    from ..control import control

    record.setdefault("time", time.time())
    record.setdefault("user", user())
    click.echo(f"{record['kind']}: {control(op.config, record)}")
    if op.valid:
        kick(config, op.config)  # a collector started on an invalid config would only die
    return 0


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


@click.command()
@operator_options
@click.option("--reason", default="", help="why (shown in status and the journal)")
def pause(config: Optional[str], spool: Optional[str], journal: Optional[str], reason: str) -> int:
    """Stop all automatic action (events are still recorded)."""
    return _control(operator_config(config, spool, journal), {"kind": kinds.PAUSE, "reason": reason}, config)


@click.command()
@operator_options
@click.option("--host", default=None, help="lift only this host's per-host limit (limits.per_host)")
@click.option("--reason", default="", help="why (shown in the journal)")
def resume(config: Optional[str], spool: Optional[str], journal: Optional[str], host: Optional[str],
           reason: str) -> int:
    """Restart automatic action; also lifts holds on exhausted levels and per-host limits."""
    rec = {"kind": kinds.RESUME, "reason": reason}
    if host is not None:
        rec["host"] = _name_glob("--host", host)
    return _control(operator_config(config, spool, journal), rec, config)


@click.command()
@operator_options
@click.option("--host", required=True, metavar="GLOB",
              help="hosts to keep hands off: a name or shell glob, as in check rules ('web-*')")
@click.option("--service", metavar="GLOB", help="only these services of those hosts (default: every check)")
@click.option("--for", "duration", metavar="DURATION", help="expire after this long (30m, 2h); default: until released")
@click.option("--reason", default="", help="why (shown in status and the journal)")
def hold(config: Optional[str], spool: Optional[str], journal: Optional[str], host: str, service: Optional[str],
         duration: Optional[str], reason: str) -> int:
    """Keep hands off hosts (an operator is working on them), like a silence."""
    from ..config.load import parse_duration

    rec: dict = {"kind": kinds.HOLD, "host": _name_glob("--host", host),
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
        rec["for"] = seconds  # the collector counts it from when it takes the hold, on its own clock
    return _control(operator_config(config, spool, journal), rec, config)


@click.command()
@operator_options
@click.option("--host", required=True, metavar="GLOB", help="the host glob exactly as given to `escalator hold`")
@click.option("--service", metavar="GLOB", help="the service glob exactly as given to `escalator hold`")
@click.option("--reason", default="", help="why (shown in the journal)")
def release(config: Optional[str], spool: Optional[str], journal: Optional[str], host: str,
            service: Optional[str], reason: str) -> int:
    """Release a hold made with `escalator hold` (exit 1 if there is no such hold)."""
    from ..planning.statetypes import hold_label

    label = hold_label(_name_glob("--host", host) or "", _name_glob("--service", service))
    op = operator_config(config, spool, journal)
    holds = _current_state(op.config).holds
    if label not in holds:
        covering = sorted(h.label for h in holds.values() if h.matches((host, service)))
        hint = (f"; it is covered by {', '.join(covering)}: release that" if covering else
                f"; holds in force: {', '.join(sorted(holds)) or 'none'}")
        raise EscalatorError(f"{safe(label)} is not held{safe(hint, 2000)}")
    return _control(op, {"kind": kinds.RELEASE, "host": host, "service": service, "reason": reason}, config)


@click.command("run")
@config_option
@click.option("--level", "-l", required=True, metavar="LEVEL",
              help="the level to run (name or 1-based position); every less drastic level follows")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="a target host (repeat for more); default: the hosts of failing checks, as the planner picks them")
@click.option("--dry-run", is_flag=True, help="journal what would run, run nothing")
@click.option("--reason", default="", help="why (journalled and shown in history)")
@click.option("--wait", "wait_s", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="how long to wait for the collector to start (or refuse) the run; 0: do not wait")
def run_level(config: Optional[str], level: str, hosts: List[str], dry_run: bool, reason: str,
              wait_s: float) -> int:
    """Ask for a level now, through the collector (lock, journal, pause, holds and limits apply).

    The run is journalled and judged like any other; `escalator status` shows it running and
    `escalator history` what it did.
    """
    from ..control import control
    from ..spool import new_id
    from ..display import plural

    cfg = load(config)
    try:
        name = cfg.level(level).name
    except (KeyError, IndexError, ValueError):
        raise UsageError(f"--level: no level {level!r} in {cfg.source} "
                         f"(levels: {', '.join(lv.name for lv in cfg.levels)})") from None
    for h in hosts:
        if not h.strip() or not h.isprintable():
            raise UsageError(f"--host: {h!r} is not a host name")
    rec = {"kind": kinds.REQUEST, "time": time.time(), "level": name, "hosts": list(hosts), "dry_run": dry_run,
           "reason": reason, "user": user(), "id": new_id()}
    control(cfg, rec)
    kick(config, cfg)
    click.echo(f"requested: levels from {name}" + (f" on {', '.join(hosts)}" if hosts else "")
               + (" (dry run)" if dry_run else ""))
    answer = _await_answer(cfg, rec["id"], wait_s)
    if answer is None:
        click.echo("not started yet: the collector runs it when it can (see `escalator status`)")
        return 0
    if answer.get("kind") == kinds.RUN:
        click.echo(f"refused: {safe(answer.get('reason'), 400)}")
        return 1
    targets = sorted({h for t in (answer.get("targets") or {}).values() for h in t})
    click.echo(f"started: run {answer.get('run')} of levels {', '.join(answer.get('levels') or ())} on "
               f"{plural(len(targets), 'host')}{': ' + ', '.join(safe(h) for h in targets) if targets else ''}; "
               f"follow it with `escalator status`, `escalator history`")
    return 0


def _await_answer(cfg: Config, rid: str, timeout: float) -> Optional[dict]:
    """The journal's answer to a request: its `start`, or the skipped `run` that refused it."""
    from .. import storage

    deadline = time.monotonic() + timeout
    while True:
        for rec in storage.recent(cfg, (kinds.START, kinds.RUN), limit=50):
            if rec.get("request") == rid:
                return rec
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _current_state(cfg: Config):
    """The state as status sees it: journal, snapshot and the spool not yet collected."""
    from ..status import fold_pending, load_state

    state = load_state(cfg)
    fold_pending(cfg, state)
    return state


def kick(config: Optional[str], cfg: Optional[Config] = None) -> None:
    """Start a detached collector when none runs and there is work: action held back by a
    hold or pause can proceed, and events a handler appended while ``control`` held the
    collector lock (that handler started no collector) are acted on."""
    from .. import spool
    from ..control import work_pending
    from ..handler import collector_command, spawn_collector

    cfg = cfg if cfg is not None else load(config)
    if cfg.cluster is not None:
        return  # the leader in etcd applies it; no local collector to start
    if spool.collector_running(cfg.spool) is None and work_pending(cfg, time.time()):
        # The handler's way (detached, own session, cwd /), without its
        # ESCALATOR_COLLECTOR_CMD override: that is the handler's test hook.
        # $ESCALATOR_SPOOL: the collector reads the spool we wrote to, whatever --spool said.
        spawn_collector(collector_command(config_path(config), {}),
                        env=dict(os.environ, ESCALATOR_SPOOL=os.path.abspath(cfg.spool)))
