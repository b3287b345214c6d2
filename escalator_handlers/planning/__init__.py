"""Planning: what escalator should do next, decided from the checks' state.

:mod:`~escalator_handlers.planning.state` folds events and run outcomes into
per-check state (its records in :mod:`~escalator_handlers.planning.statetypes`,
a run's in :mod:`~escalator_handlers.planning.runs`);
:mod:`~escalator_handlers.planning.survey` sorts the failing checks (with a cache the state owns);
:mod:`~escalator_handlers.planning.planner` decides, as a function of state,
config and ``now``, whether to start a run, at which level, and when to look again
(:mod:`~escalator_handlers.planning.verdicts` judges a run when its quiescence ends);
:mod:`~escalator_handlers.planning.loop` is the one decide -> record -> act loop
the collector, replay, ``escalator test`` and the tests drive.
"""
