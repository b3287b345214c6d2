"""``escalator status`` and ``escalator plan``: what is going on, what would run."""

from __future__ import annotations

import json
import time
from typing import List, Optional

import click

from ..display import format_record, safe, when
from .base import cli, config_option, load


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

    cfg = load(config)
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
