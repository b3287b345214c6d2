"""``escalator show-config``: the drop-in files shipped with the package, listed or printed."""

from __future__ import annotations

from typing import Optional

import click

__all__ = ["show_config"]


@click.command("show-config")
@click.argument("topic", required=False)
@click.option("--path", "as_path", is_flag=True, help="print where the file is instead of its text "
              "(without TOPIC: the directory holding them all)")
def show_config(topic: Optional[str], as_path: bool) -> int:
    """Print a drop-in file shipped with escalator (Nagios, Icinga, systemd, logrotate, example config).

    Without TOPIC, list the topics, where each file goes, and every file
    shipped.  With TOPIC (a name from the list, or a listed path such as
    examples/tests/02-node-fails.yaml), print its text, e.g.
    `escalator show-config nagios > /etc/nagios4/conf.d/escalator.cfg`.
    """
    from ..conffiles import TOPICS, directory, files, resolve

    root = directory()
    if topic is None:
        if as_path:
            click.echo(str(root))
            return 0
        width = max(len(t.name) for t in TOPICS)
        click.echo("topics (escalator show-config TOPIC):")
        for t in TOPICS:
            click.echo(f"  {t.name.ljust(width)}  {', '.join(t.files)} -> {t.goes}")
        click.echo(f"files (in {root}):")
        for name in files(root):
            click.echo(f"  {name}")
        return 0
    paths = resolve(topic, root)
    if as_path:
        for p in paths:
            click.echo(str(p))
        return 0
    click.echo("\n".join(p.read_text(encoding="utf-8").rstrip("\n") + "\n" for p in paths), nl=False)
    return 0
