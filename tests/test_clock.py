"""Durations survive a stepped wall clock (issue 28 item 5).

A real collector (real spool, journal, shell steps) runs on a ``System``
whose two clocks the test moves: ``elapse`` lets time pass (both move),
``step`` sets the wall clock like ``date -s`` (only it moves).  For the
debounce, a level's quiescence, a hold's ``--for`` and an approval's timeout,
a step back of 1 h and a step forward of 3 h (corrected later) must neither
stall the collector nor end the wait early, and the journal says the clock
jumped.  The clock is driven from one wake-up the collector asks for to the
next: nothing sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import pytest
import yaml

from escalator_handlers import control_dir, spool
from escalator_handlers.collector import Collector
from escalator_handlers.config import load_config
from escalator_handlers.storage.local import state_dir
from escalator_handlers.system import System

HOUR = 3600.0
#: (seconds after the wait began, size of the wall clock's step)
BACK = ((60.0, -HOUR),)
FORWARD_THEN_CORRECTED = ((60.0, 3 * HOUR), (300.0, -3 * HOUR))
STEPS = pytest.mark.parametrize("steps", [BACK, FORWARD_THEN_CORRECTED], ids=["back-1h", "forward-3h-corrected"])


class SteppedSystem(System):
    """The real OS, with a wall clock and a monotonic clock that the test moves."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 5_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def elapse(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += seconds


class Bench:
    """One escalator (config, spool, journal) and its collector on a :class:`SteppedSystem`."""

    def __init__(self, root: Path, levels: Sequence[dict], **top: Any) -> None:
        self.root = root
        self.out = root / "out"
        self.out.mkdir()
        data = {"spool": str(root / "spool"), "journal": str(root / "journal.jsonl"),
                "quiescence": "30s", "max_delay": "5m", "levels": list(levels),
                "checks": [{"host": "*", "level": levels[0]["name"]}], **top}
        self.path = root / "escalator.yaml"
        self.path.write_text(yaml.safe_dump(data, sort_keys=False).replace("OUT", str(self.out)))
        self.config = load_config(str(self.path))
        self.system = SteppedSystem()
        self.collector: Optional[Collector] = None
        self.start()

    def start(self) -> None:
        c = self.collector = Collector(self.config, str(self.path), daemon=True, system=self.system)
        assert c.storage.leadership.acquire(1.0)
        c._record_config()
        c._recover()

    def stop(self) -> None:
        assert self.collector is not None
        self.collector._save()
        self.collector.storage.leadership.close()
        self.collector = None

    def event(self, host: str, state: str) -> None:
        """What ``escalator-handler`` appends: stamped on the wall clock."""
        spool.append(self.config.spool, {"time": self.system.wall, "host": host, "service": None, "state": state,
                                         "state_type": "HARD", "attempt": 1, "downtime": 0, "output": state})

    def command(self, rec: dict) -> None:
        """What an operator command writes (``escalator hold``): a file in the control directory,
        stamped on the wall clock."""
        control_dir.write(state_dir(self.config), dict(rec, time=self.system.wall))

    def records(self, kind: Optional[str] = None) -> List[dict]:
        path = Path(self.config.journal)
        recs = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r for r in recs if kind is None or r.get("kind") == kind]

    def settle(self) -> Optional[float]:
        """One collector cycle to the end (runs included); the wake-up it asks for."""
        assert self.collector is not None
        while True:
            d = self.collector.cycle()
            if d is not None:
                return d.wake

    def wait(self, kind: str, steps: Sequence[Tuple[float, Any]] = (), limit: float = 6 * HOUR,
             where: Callable[[dict], bool] = lambda r: True) -> Tuple[float, dict]:
        """Let time pass, wake-up to wake-up, until a ``kind`` record appears; the seconds
        that really elapsed, and the record.  ``steps``: (seconds in, what happens then):
        a number steps the wall clock by that much, a callable is called."""
        assert self.collector is not None
        start, todo, seen = self.system.mono, sorted(steps, key=lambda s: s[0]), len(self.records(kind))
        while True:
            wake = self.settle()
            new = [r for r in self.records(kind)[seen:] if where(r)]
            elapsed = self.system.mono - start
            if new:
                return elapsed, new[0]
            assert elapsed < limit, f"no {kind} record after {elapsed:.0f}s"
            dt = limit - elapsed if wake is None else max(wake - self.collector.clock(), 0.01)
            if todo and elapsed + dt >= todo[0][0]:
                at, what = todo.pop(0)
                self.system.elapse(max(at - elapsed, 0.0))
                if callable(what):
                    what()
                else:
                    self.system.step(what)
                continue
            self.system.elapse(dt)

    def jumps(self) -> List[float]:
        return [r["jump"] for r in self.records("clock")]


VM = [{"name": "vm", "quiescence": "10m", "steps": [{"shell": "echo {host} >> OUT/vm", "foreach": "host"}]}]


def assert_jumps_journalled(bench: Bench, steps: Sequence[Tuple[float, float]]) -> None:
    assert bench.jumps() == pytest.approx([size for _, size in steps], abs=1.0)
    assert all("stepped" in r["reason"] for r in bench.records("clock"))
    # A restart folds the journal into the state the collector has: the steps included.
    from escalator_handlers.planning.state import State

    assert bench.collector is not None
    scratch = State(bench.config)
    for rec in bench.records():
        scratch.apply(rec)
    assert scratch.to_json() == bench.collector.state.to_json()


@pytest.mark.parametrize("steps", [((10.0, -HOUR),), ((10.0, 3 * HOUR), (35.0, -3 * HOUR))],
                         ids=["back-1h", "forward-3h-corrected"])
def test_the_debounce_waits_its_quiescence_whatever_the_wall_clock_does(tmp_path: Path, steps) -> None:
    b = Bench(tmp_path, VM)
    b.event("web1", "DOWN")
    # A second failure 20 s in joins the same decision: the debounce was neither
    # released early by the step forward nor stalled by the step back.
    elapsed, start = b.wait("start", steps=[*steps, (20.0, lambda: b.event("web2", "DOWN"))])
    assert elapsed == pytest.approx(20 + 30, abs=1.0)   # quiescence 30 s after the second event
    assert start["targets"]["vm"] == ["web1", "web2"]
    assert_jumps_journalled(b, steps)


@STEPS
def test_a_levels_quiescence_lasts_its_time_whatever_the_wall_clock_does(tmp_path: Path, steps) -> None:
    b = Bench(tmp_path, VM)
    b.event("web1", "DOWN")
    b.wait("start")
    (run,) = b.records("run")
    # The check is still DOWN 400 s after the run (a fresh result): judged when the 10 m are over.
    elapsed, verdict = b.wait("verdict", steps=[*steps, (400.0, lambda: b.event("web1", "DOWN"))])
    assert elapsed == pytest.approx(600, abs=1.0)
    assert verdict["converged"] is False
    assert_jumps_journalled(b, steps)


@STEPS
def test_a_hold_for_2h_lasts_2h_whatever_the_wall_clock_does(tmp_path: Path, steps) -> None:
    b = Bench(tmp_path, VM)
    wall = b.system.wall
    b.command({"kind": "hold", "host": "web1", "service": None, "reason": "disk swap",
               "until": wall + 2 * HOUR, "for": 2 * HOUR})   # as `escalator hold --for 2h` writes it
    b.event("web1", "DOWN")
    elapsed, release = b.wait("release", steps=steps)
    assert elapsed == pytest.approx(2 * HOUR, abs=1.0)
    assert release["host"] == "web1"
    elapsed, start = b.wait("start", limit=60)
    assert start["targets"]["vm"] == ["web1"]   # acted on as soon as the hold ended
    assert_jumps_journalled(b, steps)


@STEPS
def test_an_approval_times_out_after_its_timeout_whatever_the_wall_clock_does(tmp_path: Path, steps) -> None:
    b = Bench(tmp_path, [dict(VM[0], approval={"timeout": "30m"})])
    b.event("web1", "DOWN")
    b.wait("approval", where=lambda r: r.get("outcome") == "requested")
    elapsed, deny = b.wait("deny", steps=steps)
    assert elapsed == pytest.approx(30 * 60, abs=1.0)
    assert deny["user"] == "escalator" and deny.get("timeout") is True
    assert not b.records("start")
    assert_jumps_journalled(b, steps)


def test_a_collector_started_on_a_clock_behind_its_journal_takes_it_for_a_step_back(tmp_path: Path) -> None:
    # A collector ran with its clock 3 h ahead, stopped; the clock was corrected; a new one
    # starts.  No monotonic clock links the two: the journal's newest stamp does.
    b = Bench(tmp_path, VM)
    spool.check_spool_dir(b.config.spool, create=True)  # the collector takes a spool that exists
    b.system.step(3 * HOUR)
    b.settle()
    b.event("web1", "DOWN")
    b.wait("start")
    b.system.elapse(100)
    b.settle()
    b.stop()
    b.system.step(-3 * HOUR)
    b.start()
    # Back to the newest stamp (the run's end): the 100 s idle before the stop count again.
    assert b.jumps() == [pytest.approx(3 * HOUR, abs=1.0), pytest.approx(-3 * HOUR + 100, abs=1.0)]
    assert b.records("clock")[-1]["source"] == "journal"
    elapsed, verdict = b.wait("verdict", steps=[(200.0, lambda: b.event("web1", "DOWN"))])
    assert elapsed == pytest.approx(600, abs=1.0)   # the 10 m from the run's end, not 3 h later


def test_a_small_difference_between_the_clocks_is_no_step(tmp_path: Path) -> None:
    b = Bench(tmp_path, VM)
    b.system.step(1.5)   # under the tolerance: NTP's business, not a step
    b.event("web1", "DOWN")
    b.wait("start")
    assert b.jumps() == []


def test_a_hold_runs_from_when_the_collector_takes_it_not_from_the_commands_clock(tmp_path: Path) -> None:
    # Written before the wall clock stepped back, taken in after (the collector was busy):
    # `--for 2h` still means 2 h from when the collector took it.
    b = Bench(tmp_path, VM)
    wall = b.system.wall
    b.command({"kind": "hold", "host": "web1", "service": None, "reason": "disk swap",
               "until": wall + 2 * HOUR, "for": 2 * HOUR})
    b.system.step(-HOUR)
    b.event("web1", "DOWN")
    elapsed, release = b.wait("release")
    assert elapsed == pytest.approx(2 * HOUR, abs=1.0)
    (hold,) = b.records("hold")
    assert hold["until"] == pytest.approx(wall - HOUR + 2 * HOUR)


@pytest.mark.parametrize("size", [3 * HOUR, -HOUR], ids=["forward-3h", "back-1h"])
def test_an_event_written_before_a_step_and_taken_in_after_it_still_counts(tmp_path: Path, size: float) -> None:
    # The collector was busy when the recovery was written; the clock stepped; then it took it in.
    b = Bench(tmp_path, VM)
    b.event("web1", "DOWN")
    b.settle()
    b.system.elapse(5)
    b.event("web1", "UP")
    b.system.step(size)
    b.settle()
    assert b.collector is not None and b.collector.state.checks[("web1", None)].state == "UP"
    down, up = b.records("event")
    assert up["time"] - down["time"] == pytest.approx(5 + size)   # moved onto the new clock, as the state
    assert "clamped" not in up


def test_history_and_status_say_the_wall_clock_stepped(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from escalator_handlers.cli import cli

    b = Bench(tmp_path, VM)
    b.event("web1", "DOWN")
    b.wait("start", steps=[(10.0, -HOUR)])
    b.stop()
    runner = CliRunner()
    r = runner.invoke(cli, ["history", "--config", str(b.path)])
    assert r.exit_code == 0, r.output
    (line,) = [ln for ln in r.output.splitlines() if "CLOCK" in ln]
    assert "the wall clock stepped back by 1h" in line
    r = runner.invoke(cli, ["history", "--config", str(b.path), "--json"])
    assert [e["jump"] for e in map(json.loads, r.output.splitlines()) if e["kind"] == "clock"] == [-HOUR]
    r = runner.invoke(cli, ["status", "--config", str(b.path)])
    assert r.exit_code == 0, r.output
    assert "clock:       the wall clock stepped back by 1h" in r.output
    r = runner.invoke(cli, ["status", "--config", str(b.path), "--json"])
    assert json.loads(r.output)["clock_step"]["jump"] == -HOUR


def _times(data: Any, path: str = "") -> List[Tuple[str, Any]]:
    """Every leaf of a JSON form, with where it is."""
    if isinstance(data, dict):
        return [leaf for k, v in sorted(data.items()) for leaf in _times(v, f"{path}.{k}")]
    if isinstance(data, list):
        return [leaf for i, v in enumerate(data) for leaf in _times(v, f"{path}[{i}]")]
    return [(path, data)]


def test_a_step_moves_every_time_the_state_holds_and_nothing_else() -> None:
    # Epoch times are the numbers over 1e9: each must move by the step, the rest stay.  A time
    # added to the state later and not moved by State.shift fails here.
    from escalator_handlers.config import load_config_text
    from escalator_handlers.planning.state import State

    cfg = load_config_text(yaml.safe_dump({
        "levels": [{"name": "vm", "retry_backoff": {"initial": "2m"}, "approval": {"timeout": "30m"},
                    "steps": [{"shell": "true", "foreach": "host"}]}],
        "checks": [{"host": "*", "level": "vm"}], "limits": {"per_host": {"max_runs": 1, "within": "1h"}}}))
    t = 1_800_000_000.0
    checks = [{"host": "web1", "service": None, "state": "DOWN", "level": "vm"}]
    st = State(cfg)
    for rec in (
        {"time": t, "kind": "event", "host": "web1", "state": "DOWN", "state_type": "HARD", "arrived": t + 1},
        {"time": t + 2, "kind": "start", "run": "r1", "levels": ["vm"], "start_level": "vm", "checks": checks,
         "targets": {"vm": ["web1"]}},
        {"time": t + 3, "kind": "step", "run": "r1", "level": "vm", "step": "s", "host": "web1", "exit": 0},
        {"time": t + 4, "kind": "run", "run": "r1", "levels": ["vm"], "start_level": "vm", "checks": checks,
         "targets": {"vm": ["web1"]}, "outcome": "ok", "started": t + 2, "quiescence_until": t + 34},
        {"time": t + 34, "kind": "verdict", "run": t + 4, "run_id": "r1", "level": "vm", "converged": False,
         "failing_checks": checks},
        {"time": t + 35, "kind": "backoff", "outcome": "wait", "level": "vm", "until": t + 155},
        {"time": t + 36, "kind": "brake", "outcome": "on", "host": "web1", "until": t + 3602},
        {"time": t + 37, "kind": "approval", "outcome": "requested", "approval": "a1", "levels": ["vm"],
         "start_level": "vm", "targets": {"vm": ["web1"]}, "checks": checks, "asked": t + 37, "expires": t + 1837},
        {"time": t + 38, "kind": "hold", "host": "db*", "until": t + 7238},
        {"time": t + 39, "kind": "request", "id": "q1", "level": "vm", "hosts": ["web2"]},
        {"time": t + 40, "kind": "start", "run": "r2", "levels": ["vm"], "start_level": "vm", "checks": checks,
         "targets": {"vm": ["web1"]}},
        {"time": t + 41, "kind": "step", "run": "r2", "level": "vm", "step": "s", "host": "web1", "exit": 0},
    ):
        st.apply(rec)
    before = _times(st.to_json())
    st.apply({"time": t + 50 - HOUR, "kind": "clock", "jump": -HOUR, "was": t + 50, "source": "collector"})
    after = dict(_times(st.to_json()))
    moved = [p for p, v in before if isinstance(v, float) and v > 1e9]
    assert set(moved) >= {".last_event", ".runs[0].quiet_until", ".holds[0].until",
                                  ".open_run.time", ".requests[0].time"}
    for p, v in before:
        if p.startswith((".clock_step", ".clock_seen")):   # the clock record's own
            continue
        expected = v - HOUR if isinstance(v, float) and v > 1e9 else v
        assert after[p] == expected, p
    assert after[".clock_seen"] == t + 50 - HOUR and after[".clock_step.jump"] == -HOUR
