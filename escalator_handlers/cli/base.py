"""What every ``escalator`` command shares: the click group, ``--config``, logging."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Optional

import click

from .. import __version__
from ..config import DEFAULT_CONFIG_PATH, Config, config_path, load_config


def load(path: Optional[str]) -> Config:
    """The config named by ``--config`` (or its environment/default fallbacks)."""
    return load_config(config_path(path))


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("escalator: %(levelname)s: %(message)s"))
    root = logging.getLogger("escalator")
    root.handlers[:] = [h]
    root.setLevel(level)


def config_option(f: Callable) -> Callable:
    return click.option("--config", "-C", "config", metavar="PATH", envvar="ESCALATOR_CONFIG",
                        help=f"config file (default: $ESCALATOR_CONFIG, else {DEFAULT_CONFIG_PATH})")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="escalator")
def cli() -> None:
    """Monitoring-driven operations: act on failing Nagios/Icinga checks."""
