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

from .result import OUTPUT_TAIL, StepResult
from .runner import StepRunner
from .template import PLACEHOLDERS, render_command, values_env

__all__ = ["OUTPUT_TAIL", "PLACEHOLDERS", "StepResult", "StepRunner",
           "render_command", "values_env"]
