"""``escalator collect``: the collector, once or as a daemon."""

from __future__ import annotations

from typing import Optional

import click

from ..config import config_path, load_config
from .base import cli, config_option, setup_logging


@cli.command()
@config_option
@click.option("--daemon", is_flag=True, help="keep running (for systemd); default: exit when nothing is pending")
@click.option("-v", "--verbose", count=True)
def collect(config: Optional[str], daemon: bool, verbose: int) -> int:
    """Wait for quiet, act, and exit when nothing is pending."""
    from ..collector import Collector

    setup_logging(verbose)
    path = config_path(config)
    cfg = load_config(path)
    return Collector(cfg, path, daemon=daemon).run()
