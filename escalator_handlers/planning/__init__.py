"""Planning: what escalator should do next, decided from the checks' state.

:mod:`~escalator_handlers.planning.state` folds events and run outcomes into
per-check state (its records in :mod:`~escalator_handlers.planning.statetypes`);
:mod:`~escalator_handlers.planning.survey` caches the survey of failing checks;
:mod:`~escalator_handlers.planning.planner` decides, as a function of state,
config and ``now``, whether to start a run, at which level, and when to look again.
"""
