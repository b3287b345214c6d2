"""``escalator status``, ``plan`` and ``route``: what is going on, what would run, and why."""

from __future__ import annotations

import json
import time
from typing import List, Optional

import click

from .. import kinds
from ..display import format_record, safe, when
from ..errors import UsageError
from .base import config_option, load
from .operator import operator_config, operator_options


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True))
@config_option
@click.option("--explain", is_flag=True,
              help="account for every check that is not OK: which level it asks for, or why it does not count")
@click.option("--json", "as_json", is_flag=True, help="one JSON object (with --explain: an `accounting` list, one entry per check not OK)")
def plan(files: List[str], config: Optional[str], explain: bool, as_json: bool) -> int:
    """What would run now: from the live state, or from event FILES / a spool."""
    from ..planning.explain import account
    from ..planning.planner import decide
    from ..planning.rollout import explain as rollout_explain
    from ..kinds import CONTROL_KINDS
    from ..replay import SourceStats, sources
    from ..planning.state import State
    from ..statusview import check_table

    cfg = load(config)
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
        from ..status import fold_pending, load_state, refresh_acks

        now = time.time()
        state = load_state(cfg)
        fold_pending(cfg, state)  # events no collector has taken yet count too
        refresh_acks(cfg, state, now)  # a person's acknowledgement counts before the collector sees it
    first = d = decide(state, cfg, now)
    d, held = _decide_past_holds(state, cfg, now, d)
    waited = None
    expiry = state.approvals.next_expiry()
    # Look past a debounce wait, not past a wait for a person's answer.
    if d.run is None and not d.records and d.wake is not None and (expiry is None or d.wake < expiry):
        waited = d.wake
        d, more = _decide_past_holds(state, cfg, d.wake, decide(state, cfg, d.wake))
        held += more
    checks = account(state, cfg, now, first, waited if d.run is not None else None) if explain else []
    if as_json:
        rec: dict = {"time": now, "kind": kinds.PLAN, "why": first.why, "explain": list(d.explain)}
        if d.run is not None:
            rec.update(d.run.record(cfg, now))
            rec["kind"] = kinds.PLAN
        if waited is not None:
            rec["at"] = waited
        rec["records"] = held + list(d.records)
        if explain:
            rec["accounting"] = checks
            if not files:
                from ..status import gap_report

                rec["gaps"] = gap_report(cfg, state, now)
        if state.rollouts.active is not None:
            rec["rollout_progress"] = rollout_explain(state.rollouts, state.open_run)[0]
        click.echo(json.dumps(rec, ensure_ascii=True))
        return 0
    for r in held:  # held checks are recorded beside a run, not instead of it
        click.echo(format_record(r))
    if d.run is not None:
        at = f" at {when(waited)} (once quiet)" if waited else ""
        wave = f" (rollout wave {d.run.rollout['wave']} of {d.run.rollout['waves']})" if d.run.rollout else ""
        click.echo(f"would run levels {', '.join(lv.name for lv in d.run.levels)}{at}{wave}")
        for name, hosts in d.run.targets.items():
            click.echo(f"  {safe(name)}: {', '.join(safe(h) for h in hosts) or '(no targets; steps without foreach run once)'}")
    elif d.records:
        for r in d.records:
            click.echo(format_record(r))
    else:
        click.echo(f"nothing would run: {safe(d.why, 400)}")
    for line in rollout_explain(state.rollouts, state.open_run):
        click.echo(safe(line, 400))
    if explain:
        if not files:
            from ..planning.gaps import lines
            from ..status import gap_report

            g = gap_report(cfg, state, now)
            for line in lines(g["open"], g["recent"]):
                click.echo(safe(line, 400))
        click.echo("checks that are not OK:" if checks else "checks that are not OK: none")
        for line in check_table([(c["check"], c["state"], c["state_type"], c["status"], c["why"])
                                 for c in checks]):
            click.echo(line)
    elif d.run is None:
        for line in d.explain:
            click.echo("  " + safe(line, 400))
    return 0


@click.command()
@config_option
@click.argument("host")
@click.argument("service", required=False)
@click.option("--state", "state", metavar="STATE",
              help="the check's state (default: DOWN for a host check, CRITICAL for a service)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def route(config: Optional[str], host: str, service: Optional[str], state: Optional[str], as_json: bool) -> int:
    """Which check rule a check matches and which level it asks for (writes nothing)."""
    from ..event import normalise_state
    from ..planning.explain import route as _route

    cfg = load(config)
    if state is not None:
        try:
            state = normalise_state(state, service is None)
        except ValueError as exc:
            raise UsageError(f"--state: {exc}") from None
    r = _route(cfg, host, service, state)
    if as_json:
        click.echo(json.dumps(r.record(), ensure_ascii=True))
        return 0
    check = f"{safe(host)}{'/' + safe(service) if service else ''} {r.state}"
    if r.state == "UNREACHABLE" and not r.counted:
        click.echo(f"{check}: asks for nothing and is no target: a parent is down, that is what is broken "
                   f"(unreachable: ignore)")
    elif not r.counted:
        click.echo(f"{check}: not a problem state; a recovery clears the check, it asks for nothing")
    elif r.rule is None:
        click.echo(f"{check}: no rule matches: unmapped (reported, never acted on)")
    else:
        where = f"{cfg.source}:{r.line}" if r.line else cfg.source
        pattern = ", ".join(f"{k}: {v}" for k, v in r.pattern.items())
        click.echo(f"{check}: rule {r.rule} ({where}: {{{safe(pattern, 300)}}})")
        click.echo(f"  asks for level {r.level_index} ({safe(r.level)}): run {', '.join(safe(x) for x in r.run)}")
        click.echo(f"  target: {'yes, ' + safe(host) + ' becomes a target of these levels' if r.target else 'no (target: false)'}")
    return 0


@click.command()
@operator_options
@click.option("--json", "as_json", is_flag=True, help="one JSON object (fields: see README, escalator status)")
def status(config: Optional[str], spool: Optional[str], journal: Optional[str], as_json: bool) -> int:
    """Failing checks, collector, quiescence left, last runs, holds."""
    from ..errors import EscalatorError
    from ..operator_config import compare_with_running
    from ..status import gather, missing_paths

    op = operator_config(config, spool, journal)  # an invalid file still shows what runs
    missing = missing_paths(op.config)
    if missing:
        raise EscalatorError("; ".join(missing))
    r = gather(op.config, time.time())
    r["config"] = compare_with_running(op, r["collector"]["pid"] if r["collector"]["running"] else None)
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=True, indent=1))
        return 0
    from ..statusview import status_lines

    for line in status_lines(r):
        click.echo(line)
    return 0


def _decide_past_holds(state, cfg, now: float, d):
    """``d`` (a decision at ``now``) after folding the records of held checks that it and the
    next decisions journal first, as the collector does: they go beside a run, not instead."""
    from ..planning.planner import decide

    held: list = []
    for _ in range(10):
        if not d.records or any(r.get("skip_key") != "held-host" for r in d.records):
            break
        for r in d.records:
            state.apply(r)
        held.extend(d.records)
        d = decide(state, cfg, now)
    return d, held
