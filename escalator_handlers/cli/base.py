"""What every ``escalator`` command shares: ``--config``, time options, logging, the user.

The group itself lives in :mod:`escalator_handlers.cli`, which imports each command's module
only when that command runs; the command modules import this one, never the group.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, Optional

import click

from ..defaults import CONFIG_PATH as DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from ..config import Config


def load(path: Optional[str]) -> Config:
    """The config named by ``--config`` (or its environment/default fallbacks)."""
    from ..config import config_path, load_config  # YAML: only for commands that read a config

    return load_config(config_path(path))


def setup_logging(verbose: int) -> None:
    import logging  # only the commands that log pay for it

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("escalator: %(levelname)s: %(message)s"))
    root = logging.getLogger("escalator")
    root.handlers[:] = [h]
    root.setLevel(level)


CONFIG_HELP = f"config file (default: $ESCALATOR_CONFIG, else {DEFAULT_CONFIG_PATH})"


def inherit_config(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    # `escalator -C X status` and `escalator status -C X` mean the same; the one
    # nearer the command wins, then the environment (see config_path).
    return value or (ctx.find_root().obj or {}).get("config")


def config_option(f: Callable) -> Callable:
    return click.option("--config", "-C", "config", metavar="PATH", callback=inherit_config,
                        help=CONFIG_HELP)(f)


def time_option(name: str, help: str) -> Callable:
    """An option taking ISO 8601 or epoch seconds (``event.parse_time``); the value is epoch seconds."""
    def convert(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[float]:
        from ..event import parse_time

        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return click.option(name, metavar="TIME", callback=convert, help=help + " (ISO 8601 or epoch seconds)")


def user() -> str:
    """Who is at the keyboard: the sudo caller, else the login name."""
    import os

    name = os.environ.get("SUDO_USER") or os.environ.get("USER") or os.environ.get("LOGNAME")
    if name:
        return name
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
