"""survey() keeps its lists between decisions (escalator_handlers/planning/survey.py);
whatever happens in between, it must say exactly what a survey from scratch says."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator_handlers.planning.state import State
from escalator_handlers.planning.survey import hosts_by_level, joined, survey, survey_all as _survey_all
from planner_fixtures import EXAMPLE_CONFIG, example_config, example_config_with

EXAMPLE_CHECKS = yaml.safe_load(EXAMPLE_CONFIG.read_text())["checks"]
HOSTS = ["web01", "db01", "tier-web", "iaas-api"]  # iaas-api/IaaS API is no target (target: false)
SERVICES = [None, "PING", "HTTP", "PostgreSQL", "Smoke test", "Disk /var", "IaaS API"]
STATES = {None: ["UP", "DOWN", "UNREACHABLE", None], "svc": ["OK", "WARNING", "CRITICAL", "UNKNOWN", None]}

# An empty service name (possible in a nagios.log) is rare: it turns the cache off.
service = st.one_of(*[st.sampled_from(SERVICES)] * 20, st.just(""))
observe = st.tuples(st.just("observe"), st.sampled_from(HOSTS), service,
                    st.integers(0, 3), st.sampled_from(["SOFT", "HARD"]), st.integers(0, 1),
                    st.integers(-5, 30))
control = st.tuples(st.sampled_from(["hold", "release", "remap", "survey", "start"]), st.sampled_from(HOSTS))
# A skipped-run record (rule 8) listing every n-th asking check not listed yet, continuing its episode or not.
skip = st.tuples(st.just("skip"), st.sampled_from(["max_targets:vm", "paused:vm"]), st.integers(1, 3), st.booleans())
steps = st.lists(st.one_of(observe, observe, observe, control, skip), max_size=60)


def same(state: State) -> None:
    a, b = survey(state), _survey_all(state)
    assert (a.asking, a.unmapped, a.held) == (b.asking, b.unmapped, b.held)
    # What the cache counts and remembers besides its lists: b's are new lists, worked out from scratch.
    assert hosts_by_level(state, a.asking) == hosts_by_level(state, b.asking)
    if state.last_skip is not None:  # the planner asks only while a skip episode lasts
        assert joined(state, a.asking) == joined(state, b.asking)


@settings(max_examples=300, deadline=None)
@given(steps, st.booleans())
def test_incremental_survey_always_equals_a_survey_from_scratch(script, act_in_downtime):
    # HTTP WARNING asks for the level CRITICAL asks for, but makes no target: a check can
    # keep its place in the survey and change whether its host is a target.
    checks = [{"service": "HTTP", "state": "WARNING", "level": "converge", "target": False}] + EXAMPLE_CHECKS
    configs = [example_config_with(act_in_downtime=act_in_downtime, checks=checks),
               example_config_with(act_in_downtime=act_in_downtime, state_types=["SOFT", "HARD"], checks=checks)]
    state = State(configs[0])
    t = 1000.0
    for step in script:
        if step[0] == "observe":
            _, host, service, n, stype, downtime, dt = step
            states = STATES[None] if service is None else STATES["svc"]
            t += dt  # sometimes back in time: late observations are dropped or merged
            state.observe(t, host, service, states[n], stype, 1, downtime, "out")
            same(state)
        elif step[0] == "hold":
            state.apply({"time": t, "kind": "hold", "host": step[1], "reason": "x"})
        elif step[0] == "release":
            state.apply({"time": t, "kind": "release", "host": step[1]})
        elif step[0] == "remap":
            configs.reverse()
            state.remap(configs[0])
        elif step[0] == "start":
            state.apply({"time": t, "kind": "start", "run": "r", "levels": ["vm"]})
        elif step[0] == "skip":
            _, key, every, continued = step
            continued = continued and state.last_skip == key
            listed = (joined(state, survey(state).asking) if continued else survey(state).asking)[::every]
            rec = {"time": t, "kind": "run", "outcome": "skipped", "skip_key": key, "levels": ["vm"],
                   "checks": [a.record(configs[0]) for a in listed]}
            if continued:
                rec["continued"] = True
            state.apply(rec)
        same(state)


def test_a_long_gap_between_surveys_and_a_host_downtime_change_are_seen():
    state = State(example_config())
    for i in range(50):
        state.observe(1000.0 + i, f"web{i:02d}", "HTTP", "CRITICAL", "HARD", 3, 0, "down")
    same(state)
    state.observe(2000.0, "web07", None, "UP", "HARD", 1, 1, "host in downtime")  # hides web07/HTTP
    a = survey(state)
    assert ("web07", "HTTP") not in [x.key for x in a.asking]
    same(state)
    state.observe(3000.0, "web07", None, "UP", "HARD", 1, 0, "downtime over")
    assert ("web07", "HTTP") in [x.key for x in survey(state).asking]
    same(state)


def test_a_check_keeping_its_place_can_change_whether_its_host_is_a_target():
    checks = [{"service": "HTTP", "state": "WARNING", "level": "converge", "target": False}] + EXAMPLE_CHECKS
    state = State(example_config_with(checks=checks))
    state.observe(1000.0, "web01", "HTTP", "WARNING", "HARD", 3, 0, "slow")
    assert hosts_by_level(state, survey(state).asking) == {}     # asks, but web01 is no target
    state.observe(1060.0, "web01", "HTTP", "CRITICAL", "HARD", 3, 0, "down")
    assert hosts_by_level(state, survey(state).asking) == {5: 1}  # converge: now a target
    same(state)
    state.observe(1120.0, "web01", "HTTP", "WARNING", "HARD", 3, 0, "slow again")
    assert hosts_by_level(state, survey(state).asking) == {}
    same(state)
