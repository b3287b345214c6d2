"""The configuration: what escalator reads from ``escalator.yaml``.

:mod:`~escalator_handlers.config.model` holds the frozen values the rest of
the program consumes; :mod:`~escalator_handlers.config.load` reads and
validates the YAML (with :mod:`~escalator_handlers.config.steps` for step
entries and :mod:`~escalator_handlers.config.yamlnodes` for the node reader
that reports every problem with its line).  Importing this package imports
only the model: the loader and PyYAML come with the first use of a loading
function (``load_config`` and the rest), so a module that only names
``Config`` costs no YAML, and the handler's hot path never imports it.
"""

from __future__ import annotations

from typing import Any

from .model import (
    DEFAULT_CONFIG_PATH, ChefOptions, CheckRule, Config, IcingaApi, Level, Limits, NagiosFeedback, Rollout, SshOptions, Step,
    config_path,
)

__all__ = [
    "DEFAULT_CONFIG_PATH", "ChefOptions", "CheckRule", "Config", "IcingaApi", "Level", "Limits", "NagiosFeedback", "Rollout",
    "SshOptions", "Step", "config_path", "format_problems", "load_config", "load_config_text", "validate",
]

_LOADING = ("format_problems", "load_config", "load_config_text", "validate")


def __getattr__(name: str) -> Any:
    # PEP 562: the loading functions are looked up here on first use.
    if name in _LOADING:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
