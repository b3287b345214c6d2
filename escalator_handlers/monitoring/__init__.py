"""Talking to the monitoring system (Nagios 4 or Icinga 2).

Reading: :mod:`~escalator_handlers.monitoring.nagioslog` parses Nagios's log
for replays; :mod:`~escalator_handlers.monitoring.statusdat` parses
``status.dat``.  Writing back: :mod:`~escalator_handlers.monitoring.feedback`
sends acknowledgements and comments through the external command file, or
through the Icinga 2 API with :mod:`~escalator_handlers.monitoring.icinga_api`.
"""
