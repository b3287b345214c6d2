"""The ``escalator`` command: click commands over the library.

This is the only layer that prints or chooses exit codes: 0 success, 1 a step
or run failed (or another runtime error), 2 bad usage or bad config.  Library
errors arrive as EscalatorError subclasses and leave as one ``Error:`` line
(config errors: one line per problem); no traceback reaches the user unless
ESCALATOR_DEBUG=1 asks for it.

The commands live in one module per family: ``collect``, ``forward``,
``inspect`` (status, plan, route), ``showconfig`` (show-config), ``operator`` (pause, resume, hold, release,
run), ``approvals``, ``history`` and ``replay`` (replay, validate, test), with
what they share in :mod:`~escalator_handlers.cli.base`.  The group imports a
command's module only when that command runs, so ``escalator replay`` does not
pay for the other fifteen; ``COMMANDS`` names each command's module and holds
the summary ``escalator --help`` lists.  A new command goes in its family's
module (or a new one) and gets a line in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import sys
from gettext import gettext as _
from typing import Dict, List, Optional, Tuple

import click

from .. import __version__
from ..errors import ConfigError, EscalatorError
from .base import CONFIG_HELP

__all__ = ["COMMANDS", "cli", "main"]

#: name -> (module of this package, its attribute, summary for ``escalator --help``).
#: The summary is the first paragraph of the command's help, whitespace joined;
#: tests/test_cli_startup.py checks that they agree.
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "approve": ("approvals", "approve",
                "Let the run waiting for approval ID start (`escalator status` lists them)."),
    "collect": ("collect", "collect", "Wait for quiet, act, and exit when nothing is pending."),
    "deny": ("approvals", "deny", "Skip the run waiting for approval ID; its start level is held until its "
             "checks recover or `resume`."),
    "forward": ("forward", "forward", "Ship this node's spool into etcd (needs cluster: in the config)."),
    "history": ("history", "history",
                "What really ran: runs with their steps and verdicts, notifications, operator actions."),
    "hold": ("operator", "hold", "Keep hands off hosts (an operator is working on them), like a silence."),
    "listen": ("listen", "listen",
               "Hear Icinga 2's event stream (/v1/events) and spool what it says, with catch-up and gaps."),
    "pause": ("operator", "pause", "Stop all automatic action (events are still recorded)."),
    "plan": ("inspect", "plan", "What would run now: from the live state, or from event FILES / a spool."),
    "release": ("operator", "release",
                "Release a hold made with `escalator hold` (exit 1 if there is no such hold)."),
    "replay": ("replay", "replay",
               "Replay nagios.log, spool or journal FILES through the planner on their own clock."),
    "resume": ("operator", "resume",
               "Restart automatic action; also lifts holds on exhausted levels and per-host limits."),
    "route": ("inspect", "route",
              "Which check rule a check matches and which level it asks for (writes nothing)."),
    "run": ("operator", "run_level", "Ask for a level now, through the collector (lock, journal, pause, "
            "holds and limits apply)."),
    "show-config": ("showconfig", "show_config", "Print a drop-in file shipped with escalator (Nagios, Icinga, "
                    "systemd, logrotate, example config)."),
    "status": ("inspect", "status", "Failing checks, collector, quiescence left, last runs, holds."),
    "test": ("replay", "test_scenarios", "Run scenario files (or directories of *.yaml) against a config: "
             "exit 0 all pass, 1 a failure, 2 an error."),
    "validate": ("replay", "validate", "Check a config: exit 0, or 2 with every error listed."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands:
            # An unknown name loads them all: click's "did you mean" picks among self.commands.
            for name in [cmd_name] if cmd_name in COMMANDS else COMMANDS:
                self._load(name)
        return self.commands.get(cmd_name)

    def _load(self, name: str) -> None:
        if name not in self.commands:
            module, attr, _ = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(f"{__name__}.{module}"), attr), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with each summary from COMMANDS: listing imports no command module."""
        commands = [(name, self.commands.get(name) or click.Command(name, help=COMMANDS[name][2]))
                    for name in self.list_commands(ctx)]
        commands = [(name, cmd) for name, cmd in commands if not cmd.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section(_("Commands")):  # click's words, translated as click does
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in commands])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
        from ..display import safe

        click.echo(f"Error: internal error: {type(exc).__name__}: {safe(exc, 500)} "
                   f"(set ESCALATOR_DEBUG=1 for a traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
