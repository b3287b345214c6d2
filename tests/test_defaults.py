"""Every default has one home, escalator_handlers/defaults.py, and every
consumer (config loader, config model, handler, CLI, plugins) uses it."""

import pathlib
import subprocess
import sys

from click.testing import CliRunner

from escalator_handlers import defaults, handler
from escalator_handlers.cli import cli
from escalator_handlers.config import Config, Level, load_config_text

PACKAGE = pathlib.Path(defaults.__file__).parent
MINIMAL = "levels: [{name: only, steps: [{shell: 'true'}]}]\nchecks: [{host: '*', level: only}]\n"


def test_a_minimal_config_takes_every_default_from_defaults():
    cfg = load_config_text(MINIMAL)
    level, step = cfg.levels[0], cfg.levels[0].steps[0]
    assert (cfg.spool, cfg.journal, cfg.spool_mode) == (defaults.SPOOL, defaults.JOURNAL, defaults.SPOOL_MODE)
    assert (cfg.quiescence, cfg.max_delay, cfg.state_types) == (
        defaults.QUIESCENCE, defaults.MAX_DELAY, defaults.STATE_TYPES)
    assert (cfg.act_in_downtime, cfg.unreachable) == (defaults.ACT_IN_DOWNTIME, defaults.UNREACHABLE)
    assert (level.quiescence, level.max_attempts, level.on_exhausted) == (
        defaults.QUIESCENCE, defaults.MAX_ATTEMPTS, defaults.ON_EXHAUSTED)
    assert (step.timeout, step.concurrency) == (defaults.STEP_TIMEOUT, defaults.CONCURRENCY)
    assert pathlib.Path(cfg.state_path).name == defaults.STATE_FILE_NAME


def test_the_config_model_and_the_loader_agree():
    built = Config(source="x", levels=(Level(1, "only", ()),))
    loaded = load_config_text(MINIMAL)
    for key in ("spool", "journal", "spool_mode", "quiescence", "max_delay", "state_types", "act_in_downtime",
                "unreachable"):
        assert getattr(built, key) == getattr(loaded, key), key


def test_the_commands_state_the_defaults_they_use():
    assert handler.DEFAULT_SPOOL == defaults.SPOOL
    assert defaults.CONFIG_PATH in CliRunner().invoke(cli, ["status", "--help"]).output
    plugin = subprocess.run([sys.executable, "-m", "escalator_handlers.plugins.check_escalator", "--help"],
                            capture_output=True, text=True)
    assert f"(default {defaults.CHECK_ESCALATOR_TIMEOUT})" in plugin.stdout
    assert defaults.CONFIG_PATH in plugin.stdout


def test_no_default_path_is_restated_outside_its_home():
    homes = {PACKAGE / "defaults.py", PACKAGE / "spool.py"}
    literals = (defaults.CONFIG_PATH, defaults.SPOOL, defaults.JOURNAL, "0o750")
    restated = [f"{p.relative_to(PACKAGE.parent)}: {lit}" for p in sorted(PACKAGE.rglob("*.py")) if p not in homes
                for lit in literals if lit in p.read_text()]
    assert restated == []
