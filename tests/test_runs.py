"""A run's facts as a value (escalator_handlers/planning/runs.py): the ``run``
records a run, a crash and the planner write are read back into a ``RunRecord``
and written again unchanged, old records still fold, and the state folds the
value exactly as it folds the journalled record."""

import json

from escalator_handlers.planning.runs import RunInfo, RunRecord
from escalator_handlers.planning.state import State
from escalator_handlers.steps.run_plan import execute, interrupted_run
from planner_fixtures import T0, FakeRunner, Renderer, Sim, make_config
from test_run_plan import plan_for


def _written() -> list:
    """The run records of an ok, a dry, a failed, a superseded and an interrupted run."""
    cfg = make_config()
    plan = plan_for(cfg, ("web01", None, "DOWN"), ("web02", "HTTP", "CRITICAL"))
    out: list = []
    execute(plan, cfg, FakeRunner(), out.extend, lambda: T0, extra={"node": "n1", "token": 7})
    execute(plan, cfg, Renderer(), out.extend, lambda: T0, dry_run=True)
    execute(plan, cfg, FakeRunner(failing=[("chef-client-on", "web01")]), out.extend, lambda: T0)
    asked = []
    execute(plan, cfg, FakeRunner(), out.extend, lambda: T0,
            interrupt=lambda: asked.append(1) or ("superseded: level vm is now required" if len(asked) > 1 else None))
    out.append(interrupted_run(dict(out[0], steps_done=[]), [out[1]], T0 + 600, cfg))
    return [r for r in out if r["kind"] == "run"]


def test_every_run_record_a_run_writes_reads_back_into_the_same_record():
    written = _written()
    assert [r["outcome"] for r in written] == ["ok", "dry-run", "failed", "failed", "failed"]
    for rec in written:
        again = RunRecord.from_record(json.loads(json.dumps(rec))).to_record()
        assert again == rec
    ok, dry, failed, superseded, interrupted = (RunRecord.from_record(r) for r in written)
    assert ok.details["node"] == "n1" and ok.levels_run == ("vm", "converge", "deploy")
    assert failed.reason and not failed.superseded and superseded.superseded
    assert interrupted.interrupted and interrupted.steps_done == ("levels[0].steps[0]@web01",)
    assert interrupted.run == ok.run and interrupted.started == T0 and interrupted.time == T0 + 600


def test_skip_records_the_planner_writes_read_back_into_the_same_record():
    sim = Sim(make_config(limits={"max_runs_per_hour": 1}))
    sim.control(T0, "hold", host="web09").event(T0, "web09", None, "DOWN")
    sim.event(T0, "web01", None, "DOWN").advance(T0 + 700)
    sim.event(T0 + 800, "web02", None, "DOWN").advance(T0 + 900)
    sim.event(T0 + 950, "web03", None, "DOWN").advance(T0 + 1000)
    sim.control(T0 + 1100, "pause", reason="change window").advance(T0 + 1200)
    assert {r.get("skip_key") for r in sim.skipped} == {"held-host", "max_runs_per_hour:vm", "paused:vm"}, sim.story()
    assert any(r.get("continued") for r in sim.skipped), sim.story()
    for rec in sim.skipped:
        run = RunRecord.from_record(rec)
        assert run.skipped and run.to_record() == rec


def test_a_run_record_of_an_older_journal_still_folds():
    # No run id, no start or quiescence time, checks as [host, service] pairs.
    old = {"time": T0, "kind": "run", "outcome": "ok", "levels": ["vm", "converge"],
           "checks": [["web01", None]]}
    st = State(make_config())
    st.apply(old)
    (info,) = st.runs
    assert info == RunInfo(id=str(T0), time=T0, started=T0, start_level="vm", levels=("vm", "converge"),
                           checks=(("web01", None),), outcome="ok", quiet_until=T0,
                           start_checks=(("web01", None),))
    assert st.open_run is None and st.burst_start is None


def test_the_state_folds_the_value_as_it_folds_the_journalled_record():
    cfg = make_config()
    by_record, by_value = State(cfg), State(cfg)
    for rec in _written():
        by_record.apply(rec)
        by_value.fold_run(RunRecord.from_record(rec))
    assert by_record.to_json() == by_value.to_json()
    assert [r.outcome for r in by_value.runs] == ["ok", "dry-run", "failed", "failed", "failed"]
    assert by_value.brakes.host_runs["web01"] == [T0] * 5
