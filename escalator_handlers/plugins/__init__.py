"""Nagios plugins shipped with escalator.

``check_escalator`` (:mod:`~escalator_handlers.plugins.check_escalator`, with
the facts it reads in :mod:`~escalator_handlers.plugins.health_facts` and
their judging in :mod:`~escalator_handlers.plugins.health`) reports
the escalator's own health; ``check_cucumber``
(:mod:`~escalator_handlers.plugins.check_cucumber`) runs cucumber/behave
features with :mod:`~escalator_handlers.plugins.cucumber_runner` and reads
their reports with :mod:`~escalator_handlers.plugins.cucumber_report`;
:mod:`~escalator_handlers.plugins.smoke_steps` are the built-in step
definitions.  :mod:`~escalator_handlers.plugins.pluginkit` is what both
plugins share.
"""
