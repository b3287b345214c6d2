"""``escalator listen``: Icinga 2's event stream into the spool (see :mod:`escalator_handlers.listen`)."""

from __future__ import annotations

from typing import Optional

import click

from .. import defaults
from .base import config_option, load, setup_logging


def _seconds(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[float]:
    from ..config.durations import parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter(f"must be more than 0 seconds, not {value!r}")
    return seconds


@click.command()
@config_option
@click.option("--daemon", is_flag=True,
              help="keep listening and reconnecting (for systemd); default: catch up from /v1/objects once and exit")
@click.option("--watchdog", metavar="DURATION", callback=_seconds,
              help=f"a stream silent this long is a gap: reconnect and catch up (default {defaults.LISTEN_WATCHDOG:.0f}s)")
@click.option("--capture", metavar="FILE",
              help="also keep the raw stream in FILE (JSON lines, rotated at 64 MiB, 5 kept): "
                   "`escalator replay` and `escalator test` read it")
@click.option("-v", "--verbose", count=True, help="log every connection and catch-up (-vv: and debug detail)")
def listen(config: Optional[str], daemon: bool, watchdog: Optional[float], capture: Optional[str],
           verbose: int) -> int:
    """Hear Icinga 2's event stream (/v1/events) and spool what it says, with catch-up and gaps."""
    setup_logging(verbose)
    cfg = load(config)
    from ..listen import Listener, read_password

    listener = Listener(cfg, read_password(cfg), watchdog=watchdog or defaults.LISTEN_WATCHDOG, capture=capture)
    if not daemon:
        listener.once()
        click.echo(f"caught up from {cfg.nagios.icinga_api.url}: {listener.spooled} record(s) spooled")  # type: ignore[union-attr]
        return 0
    listener.install_signals()
    return listener.run()
