"""Step executors: shell (local ``/bin/sh -c``), ssh (paramiko) and chef-client.

The collector creates one :class:`StepRunner` per run, calls ``run`` or
``run_foreach`` for each step and journals the :class:`StepResult` s; dry
runs call ``render``.  Modules: ``template`` (placeholders, quoting,
``ESCALATOR_*`` variables), ``shell`` (local processes), ``ssh``
(connections, host keys), ``chef`` (argv and exit codes),
``remote`` (commands over SSH), ``runner`` (the dispatcher), ``result``
(results and bounded output).

paramiko is imported here, so the handler's hot path must never import
this package.
"""

from typing import Any

from .result import OUTPUT_TAIL, StepResult
from .template import PLACEHOLDERS, render_command, values_env

__all__ = ["OUTPUT_TAIL", "PLACEHOLDERS", "StepResult", "StepRunner",
           "render_command", "values_env"]


def __getattr__(name: str) -> Any:
    # The runner (processes, threads, sockets, paramiko) only when something runs steps:
    # replay renders its dry runs without it, and starts faster for that.
    if name == "StepRunner":
        from .runner import StepRunner

        return StepRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
