"""A flapping check (Nagios ``is_flapping``, FLAPPING alerts, Icinga ``Flapping``) is acted on as usual.

Nagios keeps running event handlers while a check flaps (flap detection
suppresses notifications only: nagioscore ``base/sehandlers.c`` checks
nothing but ``enable_event_handlers`` and the object's
``event_handler_enabled``), and escalator reads no flapping flag: each
state is an event like any other.  What keeps a flapping check from causing
a storm of runs is the debounce (each failure or recovery restarts the quiet
period, ``max_delay`` bounds it), each level's quiescence, ``max_attempts``
and the limits.  Replay skips the FLAPPING alert lines (test_nagioslog).
"""

from __future__ import annotations

from planner_fixtures import T0, Sim, make_config


def flapping(sim: Sim, start: float, end: float, every: float) -> Sim:
    """web-01/HTTP CRITICAL HARD and OK again, alternately, every ``every`` seconds."""
    t, state = start, "CRITICAL"
    while t < end:
        sim.event(t, "web-01", "HTTP", state=state)
        state = "OK" if state == "CRITICAL" else "CRITICAL"
        t += every
    return sim


def test_a_check_flapping_faster_than_the_quiet_period_runs_once_at_max_delay():
    sim = flapping(Sim(make_config()), T0, T0 + 330, 20)   # quiescence 30s, max_delay 5m
    sim.advance(T0 + 330)
    starts = sim.starts
    assert len(starts) == 1
    # Not before max_delay: every flip restarted the quiet period.
    assert starts[0]["time"] == T0 + 300 and starts[0]["levels"] == ["converge", "deploy"]


def test_flapping_for_an_hour_is_bounded_by_the_levels_quiescence_and_the_hourly_limit():
    sim = flapping(Sim(make_config(limits={"max_runs_per_hour": 3})), T0, T0 + 3600, 20)
    sim.advance(T0 + 3600)
    assert len(sim.starts) == 3
    assert sim.skipped and "max_runs_per_hour" in sim.skipped[0]["reason"]
