"""The configuration: what escalator reads from ``escalator.yaml``.

:mod:`~escalator_handlers.config.model` holds the frozen values the rest of
the program consumes; :mod:`~escalator_handlers.config.load` reads and
validates the YAML (with :mod:`~escalator_handlers.config.steps` for step
entries and :mod:`~escalator_handlers.config.yamlnodes` for the node reader
that reports every problem with its line).  Importing this package imports
PyYAML: the handler's hot path never imports it.
"""

from .load import format_problems, load_config, load_config_text, validate
from .model import (
    DEFAULT_CONFIG_PATH, ChefOptions, CheckRule, Config, IcingaApi, Level, Limits, NagiosFeedback, SshOptions, Step,
    config_path,
)

__all__ = [
    "DEFAULT_CONFIG_PATH", "ChefOptions", "CheckRule", "Config", "IcingaApi", "Level", "Limits", "NagiosFeedback",
    "SshOptions", "Step", "config_path", "format_problems", "load_config", "load_config_text", "validate",
]
