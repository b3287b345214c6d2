"""``escalator forward``: ship this node's spool into etcd (several nodes, see ``cluster``)."""

from __future__ import annotations

from typing import Optional

import click

from ..errors import UsageError
from .base import config_option, load, setup_logging


@click.command()
@config_option
@click.option("--daemon", is_flag=True, help="keep forwarding (for systemd); default: forward once and exit")
@click.option("-v", "--verbose", count=True, help="log every forwarded batch (-vv: and debug detail)")
def forward(config: Optional[str], daemon: bool, verbose: int) -> int:
    """Ship this node's spool into etcd (needs cluster: in the config)."""
    setup_logging(verbose)
    cfg = load(config)
    if cfg.cluster is None:
        raise UsageError(f"{cfg.source}: forward needs a cluster: section (etcd URLs) in the config")
    from ..cluster.etcd import Etcd
    from ..cluster.forward import Forwarder

    etcd = Etcd(cfg.cluster.etcd, source=cfg.source)
    try:
        f = Forwarder(cfg, etcd)
        rv = f.run(daemon)
    finally:
        etcd.close()
    if not daemon:
        click.echo(f"forwarded {f.sent} record(s) to {cfg.cluster.prefix} on etcd")
    return rv
