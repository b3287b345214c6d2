"""escalator: Nagios/Icinga event handlers for monitoring-driven operations.

The package is deliberately light at import time: ``escalator-handler`` runs
on Nagios's hot path and imports this package, so nothing here may pull in
YAML, click, paramiko, nagiosplugin or filelock.  The public surface lives in
the modules named after the data flow: event -> spool -> collector ->
planner -> steps -> journal, plus config, cli and nagios.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
