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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="escalator")
@click.option("--config", "-C", "config", metavar="PATH", help=CONFIG_HELP)
@click.option("--local", is_flag=True,
              help="show times in local time with the UTC offset (default: UTC; also $ESCALATOR_LOCAL_TIME=1)")
@click.pass_context
def cli(ctx: click.Context, config: Optional[str], local: bool) -> None:
    """Monitoring-driven operations: act on failing Nagios/Icinga checks."""
    from ..display import use_local

    ctx.ensure_object(dict)["config"] = config  # main() may have put the System there
    use_local(True if local else None)
