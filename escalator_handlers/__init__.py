"""escalator: Nagios/Icinga event handlers for monitoring-driven operations.

The package is deliberately light at import time: ``escalator-handler`` runs
on Nagios's hot path and imports this package, so nothing here may pull in
YAML, click, paramiko, nagiosplugin or filelock.  The modules are named after
the flow of an event: handler -> spool -> collector -> planning/ -> steps/ ->
journal, with config/, monitoring/ (Nagios and Icinga), plugins/ and cli/
around them; docs/modules.rst maps every rule to its file.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
