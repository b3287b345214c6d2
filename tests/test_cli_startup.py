"""``escalator`` start-up: a command imports its own module, not the other fifteen.

The group (escalator_handlers/cli/__init__.py) imports a command's module when
the command is looked up, and lists every command with the summary kept in
``COMMANDS``.  These tests keep that table true to the commands, the listing
identical to click's own, and the imports of ``escalator replay`` (the command
whose speed is measured) to what it needs.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from escalator_handlers.cli import COMMANDS, cli

REPO = Path(__file__).resolve().parent.parent
CLI_MODULES = sorted(p.stem for p in (REPO / "escalator_handlers" / "cli").glob("*.py")
                     if p.stem not in ("__init__", "__main__", "base"))


def _all_commands() -> dict:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def test_the_table_names_every_command_with_its_module_and_summary() -> None:
    commands = _all_commands()
    assert sorted(commands) == sorted(COMMANDS)
    for name, cmd in commands.items():
        module, attr, summary = COMMANDS[name]
        assert cmd is getattr(importlib.import_module(f"escalator_handlers.cli.{module}"), attr)
        first_paragraph = inspect.cleandoc(cmd.help or "").split("\n\n")[0]
        assert " ".join(first_paragraph.split()) == summary, name
        assert cmd.short_help is None  # else click would list short_help, not the summary


def test_no_command_module_defines_a_command_the_table_lacks() -> None:
    listed = {(module, attr) for module, attr, _ in COMMANDS.values()}
    for stem in CLI_MODULES:
        module = importlib.import_module(f"escalator_handlers.cli.{stem}")
        for attr, value in vars(module).items():
            if isinstance(value, click.Command):
                assert (stem, attr) in listed, f"cli/{stem}.py defines {attr}: add it to COMMANDS"


def test_no_command_module_imports_the_group() -> None:
    # The group imports the command modules by name (importlib), an edge
    # tests/test_layout.py cannot see: a command module importing the group
    # back would be a cycle it misses.
    for stem in CLI_MODULES + ["base"]:
        tree = ast.parse((REPO / "escalator_handlers" / "cli" / f"{stem}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not (node.level == 1 and node.module is None), f"cli/{stem}.py: from . import"
                assert node.module != "escalator_handlers.cli", f"cli/{stem}.py imports the group"
            elif isinstance(node, ast.Import):
                assert "escalator_handlers.cli" not in [a.name for a in node.names], stem


@pytest.mark.parametrize("width", [40, 80, 200])
def test_help_lists_every_command_exactly_as_click_would(width: int) -> None:
    lazy = CliRunner().invoke(cli, ["--help"], terminal_width=width).output
    _all_commands()

    class Eager(click.Group):
        pass

    eager = Eager(cli.name, commands=cli.commands, params=cli.params, help=cli.help,
                  context_settings=cli.context_settings)
    assert lazy == CliRunner().invoke(eager, ["--help"], terminal_width=width).output
    assert all(f"  {name} " in lazy for name in COMMANDS)


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_help_and_an_unknown_command_behave_as_before_without_loading_more_than_needed() -> None:
    r = _run_python("import sys, json\nfrom escalator_handlers.cli import main\nrc = main(['--help'])\n"
                    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('escalator_handlers.cli.'))),"
                    " file=sys.stderr)\n")
    assert r.returncode == 0 and "Commands:" in r.stdout
    assert json.loads(r.stderr.splitlines()[-1]) == ["escalator_handlers.cli.base"]
    unknown = CliRunner().invoke(cli, ["stat"])
    assert unknown.exit_code == 2 and "No such command 'stat'. Did you mean 'status'?" in unknown.output


def test_replay_imports_its_own_module_and_no_heavy_module_it_does_not_use(tmp_path: Path) -> None:
    log = tmp_path / "nagios.log"
    log.write_text("[1795500000] CURRENT HOST STATE: web-0001;UP;HARD;1;PING OK\n")
    cfg = tmp_path / "escalator.yaml"
    cfg.write_text(f"spool: {tmp_path}/spool\njournal: {tmp_path}/journal.jsonl\n"
                   "levels: [{name: vm, steps: [{shell: 'echo vm {host}', foreach: host}]}]\n"
                   "checks: [{host: '*', level: vm}]\n")
    r = _run_python("import sys, json\nfrom escalator_handlers.cli import main\n"
                    # --config, not -C: click tries a short option as a long one first, and
                    # its "no such option" imports difflib for the suggestion it then drops
                    f"rc = main(['replay', {str(log)!r}, '--config', {str(cfg)!r}, '--json'])\n"
                    "print(json.dumps([rc, sorted(sys.modules)]), file=sys.stderr)\n")
    rc, modules = json.loads(r.stderr.splitlines()[-1])
    assert rc == 0 and "replayed 1 event from 1 line" in r.stderr
    others = [m for m in modules if m.startswith("escalator_handlers.cli.") and m not in
              ("escalator_handlers.cli.base", "escalator_handlers.cli.replay")]
    assert others == []
    heavy = {"difflib", "hashlib", "paramiko", "filelock", "nagiosplugin", "urllib.request", "http.client",
             "escalator_handlers.collector", "escalator_handlers.operator_config",
             "escalator_handlers.storage"}
    assert sorted(heavy & set(modules)) == []
