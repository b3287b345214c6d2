"""The ``escalator`` command: click commands over the library.

This is the only layer that prints or chooses exit codes: 0 success, 1 a step
or run failed (or another runtime error), 2 bad usage or bad config.  Library
errors arrive as EscalatorError subclasses and leave as one ``Error:`` line
(config errors: one line per problem); no traceback reaches the user unless
ESCALATOR_DEBUG=1 asks for it.

The commands live in one module per family, each registering on the group in
:mod:`~escalator_handlers.cli.base`: ``collect``, ``inspect`` (status, plan,
route), ``operator`` (pause, resume, hold, release, run), ``history`` and
``replay`` (replay, validate, test).  A new command goes in its family's
module, or in a new one imported below.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import click

from ..display import safe
from ..errors import ConfigError, EscalatorError
# Each command family registers its commands on the group when imported.
from . import approvals, collect, forward, history, inspect, operator, replay  # noqa: F401
from .base import cli

__all__ = ["cli", "main"]


def main(argv: Optional[List[str]] = None, system: Optional[object] = None) -> int:
    """Console entry point: exactly one place that turns errors into exit codes.

    ``system`` replaces the operating system the collector sees (a
    :class:`~escalator_handlers.system.System`; crash tests inject faults with it).
    """
    try:
        rv = cli.main(args=argv, prog_name="escalator", standalone_mode=False,
                      obj={"system": system} if system is not None else None)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except ConfigError as exc:
        # Each problem names the file, line and key: one alone fits on the Error line.
        if len(exc.problems) == 1:
            click.echo(f"Error: {exc.problems[0]}", err=True)
        else:
            click.echo(f"Error: invalid config, {len(exc.problems)} problems:\n{exc}", err=True)
        return 2
    except EscalatorError as exc:
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise: never a traceback
        if os.environ.get("ESCALATOR_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {safe(exc, 500)} "
                   f"(set ESCALATOR_DEBUG=1 for a traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
