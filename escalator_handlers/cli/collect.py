"""``escalator collect``: the collector, once or as a daemon."""

from __future__ import annotations

from typing import Optional

import click

from ..config import config_path, load_config
from .base import config_option, setup_logging


@click.command()
@config_option
@click.option("--daemon", is_flag=True, help="keep running (for systemd); default: exit when nothing is pending")
@click.option("--dry-run", is_flag=True,
              help="shadow mode: plan and journal every decision as a dry run, execute nothing, notify nobody")
@click.option("-v", "--verbose", count=True,
              help="also log every event (default: one line per decision: run, step, verdict, notification, skip)")
@click.option("-q", "--quiet", is_flag=True, help="log only warnings and errors")
def collect(config: Optional[str], daemon: bool, dry_run: bool, verbose: int, quiet: bool) -> int:
    """Wait for quiet, act, and exit when nothing is pending."""
    setup_logging(-1 if quiet else verbose + 1)
    path = config_path(config)
    cfg = load_config(path)
    # One collector either way: with cluster:, open_storage() hands it the etcd backend.
    from ..collector import Collector
    from ..system import REAL

    # main(system=...) hands a test's System down (crash injection); else the real one.
    system = (click.get_current_context().find_root().obj or {}).get("system") or REAL
    return Collector(cfg, path, daemon=daemon, dry_run=dry_run, system=system).run()
