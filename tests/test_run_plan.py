"""Carrying out a run plan (escalator_handlers/steps/run_plan.py): the records a
run leaves, in order, whatever its steps do."""

from escalator_handlers.planning.planner import decide
from escalator_handlers.planning.state import State
from escalator_handlers.steps.run_plan import execute, interrupted_run, step_record, unsent_notifications
from planner_fixtures import T0, FakeRunner, Renderer, make_config


def plan_for(cfg, *failing):
    """The plan the planner makes once the debounce is over for ``failing`` (host, service, state)."""
    state = State(cfg)
    for host, service, st in failing:
        state.observe(T0, host, service, st, "HARD", 1, 0, "")
    d = decide(state, cfg, T0 + 3600)
    assert d.run is not None, d.why
    return d.run


def run(cfg, plan, runner, **kw):
    out = []
    rec = execute(plan, cfg, runner, out.extend, lambda: T0 + 3600, **kw)
    return rec, out


def test_a_run_is_one_start_its_steps_and_one_run_record_in_that_order():
    cfg = make_config()
    rec, out = run(cfg, plan_for(cfg, ("web01", None, "DOWN")), FakeRunner())
    assert [r["kind"] for r in out] == ["start", "step", "step", "step", "run"]
    assert out[-1] is rec and rec["outcome"] == "ok" and rec["run"] == out[0]["run"]
    assert [(s["level"], s["host"]) for s in out[1:-1]] == [("vm", "web01"), ("converge", "web01"),
                                                          ("deploy", None)]
    assert rec["levels_run"] == ["vm", "converge", "deploy"]
    assert rec["quiescence_until"] == T0 + 3600 + 600          # the largest quiescence that ran (vm)


def test_a_foreach_step_of_a_level_without_targets_is_skipped():
    cfg = make_config()
    rec, out = run(cfg, plan_for(cfg, ("app", "Smoke test", "CRITICAL")), FakeRunner())
    assert [(s["level"], s["host"]) for s in out if s["kind"] == "step"] == [("deploy", None)]
    assert rec["levels_run"] == ["deploy"] and rec["quiescence_until"] == T0 + 3600 + 60


def test_a_dry_run_runs_nothing_and_says_what_it_would_run():
    cfg = make_config()
    rec, out = run(cfg, plan_for(cfg, ("web01", "HTTP", "CRITICAL")), Renderer(), dry_run=True)
    assert out[0]["dry_run"] is True and rec["outcome"] == "dry-run"
    assert [s["kind"] for s in out[1:-1]] == ["step", "step"]


def test_an_interruption_between_steps_supersedes_the_run_without_quiescence():
    cfg = make_config()
    asked = []

    def interrupt():
        asked.append(1)
        return "superseded: level vm is now required" if len(asked) == 2 else None

    rec, out = run(cfg, plan_for(cfg, ("web01", None, "DOWN")), FakeRunner(), interrupt=interrupt)
    assert rec["outcome"] == "failed" and rec["superseded"] is True
    assert rec["reason"] == "superseded: level vm is now required"
    assert rec["quiescence_until"] == T0 + 3600 and len([r for r in out if r["kind"] == "step"]) == 1


def test_a_run_whose_collector_died_is_closed_with_what_was_and_was_not_done():
    cfg = make_config()
    plan = plan_for(cfg, ("web01", None, "DOWN"), ("web02", None, "DOWN"))
    _, out = run(cfg, plan, FakeRunner())
    start, first = out[0], out[1]
    rec = interrupted_run(start, [first], T0 + 4000, cfg)
    assert rec["kind"] == "run" and rec["outcome"] == "failed" and rec["interrupted"] is True
    assert rec["steps_done"] == [f"{first['step']}@{first['host']}"]
    assert rec["not_done"][0] == "levels[0].steps[0]@web02" and "running or next" in rec["reason"]
    assert rec["quiescence_until"] == T0 + 4000 + 600


def test_notifications_whose_steps_were_never_journalled_are_found():
    notify = [{"time": T0, "kind": "notify", "summary": "a"}, {"time": T0 + 1, "kind": "notify", "summary": "b"}]
    sent = step_record(T0 + 2, None, "notify", FakeRunner()._one(make_config().notify[0], None))
    assert [n["summary"] for n in unsent_notifications(notify, 1)] == ["a", "b"]
    assert [n["summary"] for n in unsent_notifications(notify + [sent], 1)] == ["b"]
    assert unsent_notifications(notify, 0) == []
