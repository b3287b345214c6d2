"""``escalator history``: what really ran, read back from the journal and its rotations."""

from __future__ import annotations

import json
from typing import Optional

import click

from ..errors import UsageError
from .base import config_option, load, time_option


@click.command()
@config_option
@click.option("--host", metavar="GLOB", help="only what concerned hosts matching GLOB (targets, checks, holds)")
@click.option("--level", metavar="NAME", help="only runs that included level NAME")
@time_option("--since", "only from this time on")
@time_option("--until", "only up to this time")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line (runs carry their steps and verdict)")
def history(config: Optional[str], host: Optional[str], level: Optional[str], since: Optional[float],
            until: Optional[float], as_json: bool) -> int:
    """What really ran: runs with their steps and verdicts, notifications, operator actions.

    Read from the journal and its rotations (.N and .N.gz), oldest first.
    """
    from ..history import Filter, entries, read_all, text_lines

    cfg = load(config)
    if level is not None:
        try:
            level = cfg.level(level).name
        except (KeyError, IndexError):
            raise UsageError(f"--level: no level {level!r} in {cfg.source} "
                             f"(levels: {', '.join(lv.name for lv in cfg.levels)})") from None
    if cfg.cluster is not None:
        from ..cluster.view import journal_records

        records = journal_records(cfg)  # the journal lives in etcd, the same from every node
    else:
        records = read_all(cfg.journal)
    found = entries(records, Filter(host, level, since, until))
    for e in found:
        if as_json:
            click.echo(json.dumps(e, ensure_ascii=True))
        else:
            for line in text_lines(e):
                click.echo(line)
    if not as_json and not found:
        where = f"the journal in etcd ({cfg.cluster.prefix})" if cfg.cluster else f"{cfg.journal} (and its rotations)"
        click.echo(f"nothing in {where} matches", err=True)
    return 0
