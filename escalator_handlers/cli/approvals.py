"""``escalator approve|deny ID``: answer a run that waits for a person (levels with ``approval``)."""

from __future__ import annotations

import time
from typing import Optional

import click

from .base import config_option, load, user
from .operator import kick


def _answer(config: Optional[str], kind: str, approval: str, reason: str) -> int:
    from ..control import answer

    cfg = load(config)
    record = {"kind": kind, "approval": approval, "reason": reason, "time": time.time(), "user": user()}
    click.echo(f"{kind}: {answer(cfg, record)}")
    kick(config)
    return 0


def _command(kind: str, doc: str) -> click.Command:
    """``approve`` and ``deny`` take the same arguments and differ only in the record kind."""
    @click.command(name=kind, help=doc)
    @config_option
    @click.argument("approval", metavar="ID")
    @click.option("--reason", default="", help="why (journalled with your name)")
    def command(config: Optional[str], approval: str, reason: str) -> int:
        return _answer(config, kind, approval, reason)
    return command


approve = _command("approve", "Let the run waiting for approval ID start (`escalator status` lists them).")
deny = _command("deny", "Skip the run waiting for approval ID; its start level is held until its checks "
                        "recover or `resume`.")
