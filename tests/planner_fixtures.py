"""Shared helpers for the planner, state and replay tests.

``Sim`` is a collector on a simulated clock, driving the product's own loop
(``escalator_handlers.planning.loop``): events are folded into a ``State``
as they arrive, the planner is asked what to do at once and at every wake-up
it asks for, its records are journalled (kept in a list) and folded back, and
runs are executed dry (``steps.run_plan.execute`` with a runner that only
renders).  Tests push events at chosen times and assert on the
records, never sleeping.  Configs come from YAML text through the real
loader, so the defaults under test are the ones users get.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from escalator_handlers.config import Config, Step
from escalator_handlers.config.load import load_config, load_config_text
from escalator_handlers.planning.loop import Settled, Simulation
from escalator_handlers.planning.planner import Decision, RunPlan
from escalator_handlers.planning.state import State
from escalator_handlers.steps.result import StepResult
from escalator_handlers.steps.run_plan import execute

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "nagios-conf" / "examples"
EXAMPLE_CONFIG = EXAMPLES / "escalator.yaml"
EXAMPLE_LOG = EXAMPLES / "outage.log"

#: A round simulated epoch, far from 0 so "time 0" bugs show.
T0 = 1_800_000_000.0
DAY = 86400.0

#: Three levels with distinct quiescences; small enough to reason about by hand.
BASE: Dict[str, Any] = {
    "quiescence": "30s",
    "max_delay": "5m",
    "levels": [
        {"name": "vm", "quiescence": "10m", "max_attempts": 2, "on_exhausted": "notify",
         "steps": [{"shell": "create-vm {host}", "foreach": "host"}]},
        {"name": "converge", "quiescence": "2m",
         "steps": [{"shell": "chef-client-on {host}", "foreach": "host"}]},
        {"name": "deploy", "quiescence": "1m", "steps": [{"shell": "deploy-app"}]},
    ],
    "checks": [
        {"host": "*", "level": "vm"},                    # host checks
        {"service": "PING", "level": "vm"},
        {"service": "HTTP", "level": "converge"},
        {"service": "Smoke*", "level": "deploy"},
    ],
    "notify": [{"shell": "page-ops {summary}"}],
}


def make_config(levels: Optional[Mapping[str, Mapping[str, Any]]] = None, **top: Any) -> Config:
    """BASE with top-level keys replaced and per-level keys (by name) merged in;
    a level key given as None is removed (so its default applies)."""
    data = copy.deepcopy(BASE)
    data.update(top)
    for lv in data["levels"]:
        for k, v in (levels or {}).get(lv["name"], {}).items():
            if v is None:
                lv.pop(k, None)
            else:
                lv[k] = v
    return load_config_text(yaml.safe_dump(data, sort_keys=False), "test.yaml")


def example_config() -> Config:
    """The six-level example of README.rst, as bundled."""
    return load_config(str(EXAMPLE_CONFIG))


def example_config_with(**top: Any) -> Config:
    """The bundled example with top-level keys replaced."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data.update(top)
    return load_config_text(yaml.safe_dump(data, sort_keys=False), "example-variant.yaml")


class Renderer:
    """The dry-run runner: names the step, runs nothing."""

    def render(self, step: Step, values: Mapping[str, Any]) -> str:
        return f"{step.command} host={values.get('host')} hosts={','.join(values.get('hosts', ()))}"

    def close(self) -> None:
        pass


class FakeRunner:
    """A real-run runner whose steps 'fail' on chosen (command prefix, host) pairs."""

    def __init__(self, failing: Sequence[Tuple[str, Optional[str]]] = ()) -> None:
        self.failing = set(failing)
        self.ran: List[Tuple[str, Optional[str]]] = []

    def _one(self, step: Step, host: Optional[str]) -> StepResult:
        name = (step.command or "").split()[0]
        self.ran.append((name, host))
        bad = (name, host) in self.failing or (name, None) in self.failing
        return StepResult(step.where, host, step.command or "", 1 if bad else 0, 0.0, "")

    def run(self, step: Step, values: Mapping[str, Any]) -> StepResult:
        return self._one(step, None)

    def run_foreach(self, step: Step, hosts: Sequence[str], values: Mapping[str, Any],
                    on_result: Callable[[StepResult], None]) -> List[StepResult]:
        out = []
        for h in hosts:
            r = self._one(step, h)
            on_result(r)
            out.append(r)
        return out


class _CheckedSimulation(Simulation):
    """The loop's Simulation, failing the test when the planner misbehaves."""

    def settle(self) -> Settled:
        s = super().settle()
        if s.looping:
            raise AssertionError("planner loops at one instant: " + repr(s.decision))
        d = s.decision
        assert d.wake is None or d.wake > self.now, f"planner asks to wake in the past: {d}"
        return s


class Sim:
    """A collector on a simulated clock (see the module docstring): the product's own
    loop (``loop.Simulation``, eager like the collector), with a list for a journal."""

    def __init__(self, config: Config, start: float = T0, *, state: Optional[State] = None) -> None:
        self.config = config
        self.records: List[dict] = []
        self.decisions: List[Tuple[float, Decision]] = []
        self.loop = _CheckedSimulation(state if state is not None else State(config), config, self.emit, self._run, start=start,
                                       watch=lambda now, d: self.decisions.append((now, d)))

    @property
    def state(self) -> State:
        return self.loop.state

    @state.setter
    def state(self, state: State) -> None:
        self.loop.state = state  # a test "restarts" the collector from a snapshot

    @property
    def now(self) -> float:
        return self.loop.now

    @now.setter
    def now(self, t: float) -> None:
        self.loop.now = t

    @property
    def wake(self) -> Optional[float]:
        return self.loop.wake

    @wake.setter
    def wake(self, t: Optional[float]) -> None:
        self.loop.wake = t

    # -- driving ---------------------------------------------------------

    def emit(self, records: Sequence[dict]) -> None:
        for rec in records:
            self.state.apply(rec)
            self.records.append(rec)

    def _run(self, plan: RunPlan) -> None:
        execute(plan, self.config, Renderer(), self.emit, self.loop.clock, dry_run=True)

    def act(self) -> None:
        """Decide now until idle (the collector's loop)."""
        self.loop.settle()

    def advance(self, t: float) -> "Sim":
        """Let the clock run to ``t``, acting at every wake-up on the way."""
        self.loop.advance(t)
        return self

    def settle(self, horizon: float = DAY) -> "Sim":
        """Run on until nothing is pending (for at most ``horizon`` seconds); the clock
        stops at the last wake-up, so later events can still be placed before ``horizon``."""
        self.loop.run_until(self.now + horizon)
        return self

    def event(self, t: float, host: str, service: Optional[str] = None, state: Optional[str] = "CRITICAL",
              state_type: str = "HARD", downtime: int = 0, output: str = "") -> "Sim":
        """An event observed at ``t``; the collector decides as soon as it hears of it."""
        self.loop.observe(t, host, service, state, state_type, 1, downtime, output)
        return self

    def control(self, t: float, kind: str, **fields: Any) -> "Sim":
        """An operator record (pause, resume, hold, release) journalled at ``t``."""
        self.loop.record(t, dict(time=t, kind=kind, **fields))
        return self

    # -- reading the journal ---------------------------------------------

    def of(self, kind: str, **match: Any) -> List[dict]:
        return [r for r in self.records
                if r.get("kind") == kind and all(r.get(k) == v for k, v in match.items())]

    @property
    def starts(self) -> List[dict]:
        return self.of("start")

    @property
    def runs(self) -> List[dict]:
        """Run records of runs that happened (not skipped ones)."""
        return [r for r in self.of("run") if r.get("outcome") != "skipped"]

    @property
    def skipped(self) -> List[dict]:
        return self.of("run", outcome="skipped")

    def story(self) -> List[tuple]:
        """The decisions, compactly: (seconds since T0, kind, what)."""
        return story(self.records, T0)


def story(records: Sequence[Mapping[str, Any]], t0: float = T0) -> List[tuple]:
    """Decision records, compactly: (seconds since ``t0``, kind, what).  Runs show as their
    ``start`` record (levels, targets); events, steps and run-end records are left out."""
    out: List[tuple] = []
    for r in records:
        t = round(r["time"] - t0, 3)
        k = r["kind"]
        if k == "start":
            out.append((t, "run", tuple(r["levels"]), {lv: tuple(h) for lv, h in r["targets"].items()}))
        elif k == "run" and r.get("outcome") == "skipped":
            out.append((t, "skipped", r["start_level"], r["skip_key"].split(":")[0]))
        elif k == "verdict":
            out.append((t, "verdict", r["level"], r["converged"], r.get("exhausted")))
        elif k == "notify":
            out.append((t, k, r["reason"]))
        elif k == "release":
            out.append((t, k, r.get("level") or r.get("host")))
    return out


def snapshot_copy(state: State, config: Config) -> State:
    """``State.from_json(to_json())`` through real JSON text, as state.json does."""
    return State.from_json(config, json.loads(json.dumps(state.to_json())))


def decision_key(d: Decision) -> tuple:
    """Everything a decision says, in a comparable form."""
    run = None
    if d.run is not None:
        run = (tuple(lv.name for lv in d.run.levels), dict(d.run.targets), d.run.checks, d.run.attempt,
               d.run.escalated, d.run.summary, d.run.unmapped)
    return (json.dumps(list(d.records), sort_keys=True), run, d.wake, d.why, d.explain)
