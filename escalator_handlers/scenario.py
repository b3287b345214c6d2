"""Scenario tests for escalation configs: the model behind ``escalator test``.

A scenario file (YAML) lists events at offsets from its start and the runs,
notifications and skips they must cause::

    name: a node fails - vm, converge, deploy for that node
    config: ../escalator.yaml      # relative to this file; --config overrides
    events:
      - {at: 0s, host: web02, service: PING, state: CRITICAL}
    expect:
      runs:
        - levels: [vm, converge, deploy]
          targets: {vm: [web02]}   # only the levels named are compared
      notifications: 0
      skipped: 0
    until: 1h                      # after the last event; default: until nothing is pending

The events go through the same planner and loop as the collector and
replay (``replay.replay_items``), dry run, on a simulated clock.  Every
problem in a file is reported with its line and key, as config errors are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from yaml.nodes import Node

from . import kinds
from .config import Config
from .errors import ConfigError, ConfigProblem, UsageError
from .event import limit_fields, normalise_state, normalise_state_type
from .replay import replay_items
from .config.yamlnodes import BAD, Entries, Reader, is_null, join, line_of, p_duration, p_string
from .config.yamltext import document

#: Where a scenario's clock starts (2027-01-15 08:00:00 UTC): fixed, so a
#: scenario's timeline reads the same on every run.
START = 1_800_000_000.0

TOP_KEYS = ("name", "config", "events", "stream", "expect", "until")
EVENT_KEYS = ("at", "host", "service", "state", "state_type", "attempt", "downtime", "output")
RUN_KEYS = ("levels", "targets", "wave")


#: Counted expectations: ``expect: {name: N}`` compares how many records
#: match.  A new count (approvals, say) is one entry here.
COUNTS: Dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "notifications": lambda rec: rec.get("kind") == kinds.NOTIFY,
    "skipped": kinds.is_skip,
    # Requests made (not withdrawn, replaced or answered ones: each of those was asked first).
    # Rollouts stopped (their one page each is counted in notifications).
    "rollouts_stopped": lambda rec: rec.get("kind") == kinds.ROLLOUT and rec.get("outcome") == "stopped",
    "approvals": lambda rec: rec.get("kind") == kinds.APPROVAL and rec.get("outcome", "requested") == "requested",
}


@dataclass(frozen=True)
class ExpectedRun:
    line: Optional[int]
    levels: Optional[Tuple[str, ...]] = None
    targets: Optional[Mapping[str, Tuple[str, ...]]] = None
    wave: Optional[int] = None       # a rollout's wave number (1 = the canary)


@dataclass(frozen=True)
class Scenario:
    file: str
    name: str
    config: Optional[str]                      # absolute path, when the file names one
    events: Tuple[Tuple[Any, ...], ...]        # observation items, time first (replay.Item)
    runs: Optional[Tuple[ExpectedRun, ...]]    # None: runs are not compared
    counts: Mapping[str, int]
    until: Optional[float]


@dataclass(frozen=True)
class Outcome:
    """What a scenario did, and how it differs from what it expected (``diff`` empty: pass)."""

    scenario: Scenario
    records: Tuple[dict, ...]
    diff: Tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.diff


def load(path: str) -> Scenario:
    """Read one scenario file; raise ConfigError naming the file, line and key of every problem."""
    r = Reader(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, None, "", f"cannot read scenario: {exc.strerror}")]) from None
    scenario = _build(r, data)
    if r.problems or scenario is None:
        raise ConfigError(sorted(r.problems, key=lambda p: p.line or 0))
    return scenario


def _build(r: Reader, data: bytes) -> Optional[Scenario]:
    root = document(r, data, "a scenario with events and expect")
    if root is None:
        return None
    top = r.mapping(root, "", TOP_KEYS, what="a scenario (name, config, events, expect, until)")
    if top is None:
        return None
    name = r.field(top, "name", p_string, os.path.splitext(os.path.basename(r.file))[0])
    config = r.field(top, "config", p_string, None, nullable=True)
    if config is not None:
        config = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(r.file)), config))
    events: List[Tuple[Any, ...]] = []
    if "events" not in top:
        if "stream" not in top:
            r.error(root, "events", "missing required key 'events' (or 'stream')")
    elif not is_null(top.value("events")):
        for i, node in enumerate(r.sequence(top.value("events"), "events", what="a list of events") or []):
            ev = _event(r, node, f"events[{i}]")
            if ev is not None:
                events.append(ev)
    stream = r.field(top, "stream", p_string, None, nullable=True)
    if stream is not None:
        # Events as `escalator listen --capture` kept them (or any file replay reads): on their own clock.
        events.extend(_stream(r, top, os.path.join(os.path.dirname(os.path.abspath(r.file)), stream)))
    events.sort(key=lambda e: e[0])            # stable: events at the same offset keep their order
    runs, counts = _expect(r, top)
    until = r.field(top, "until", p_duration, None, nullable=True)
    return Scenario(r.file, name, config, tuple(events), runs, counts, until)


def _stream(r: Reader, top: Entries, path: str) -> List[Tuple[Any, ...]]:
    from .replay import SourceStats, sources

    try:
        return list(sources([path], SourceStats()))
    except UsageError as exc:
        r.error(top.value("stream"), "stream", str(exc))
        return []


def _event(r: Reader, node: Node, path: str) -> Optional[Tuple[Any, ...]]:
    e = r.mapping(node, path, EVENT_KEYS, what="an event ({at: 0s, host: ..., state: ...})")
    if e is None:
        return None
    before = len(r.problems)
    at = r.field(e, "at", p_duration, required=True)
    host = r.field(e, "host", p_string, required=True)
    service = r.field(e, "service", p_string, None, nullable=True)
    is_host = service is None and not e.given("service") and "service" not in e.suggestions
    # The handler's own rules: any case, Nagios's numbers, a host's OK/WARNING is UP.
    state = r.field(e, "state", lambda rr, n, p: _p_normalised(rr, n, p, lambda v: normalise_state(v, is_host)),
                    required=True)
    state_type = r.field(e, "state_type", lambda rr, n, p: _p_normalised(rr, n, p, normalise_state_type), "HARD")
    attempt = r.field(e, "attempt", lambda rr, n, p: rr.integer(n, p, minimum=1), 1)
    downtime = r.field(e, "downtime", lambda rr, n, p: rr.integer(n, p, minimum=0), 0)
    output = r.field(e, "output", _p_text, "", nullable=True)
    if len(r.problems) > before:
        return None
    try:  # the limits every intake applies (event_limits): a name too long is an error here
        fields, _ = limit_fields({"host": host, "service": service, "output": output,
                                  "attempt": attempt, "downtime": downtime})
    except ValueError as exc:
        r.error(node, path, str(exc))
        return None
    return (START + at, host, service, state, state_type, attempt, downtime, fields["output"])


def _p_normalised(r: Reader, node: Node, path: str, normalise: Callable[[str], str]) -> Any:
    v = r.scalar(node, path, "a state")
    if v is BAD:
        return BAD
    try:
        return normalise(str(v))
    except ValueError as exc:
        return r.error(node, path, str(exc))


def _p_text(r: Reader, node: Node, path: str) -> Any:
    v = r.scalar(node, path, "text")
    return v if v is BAD else str(v)


def _expect(r: Reader, top: Entries) -> Tuple[Optional[Tuple[ExpectedRun, ...]], Dict[str, int]]:
    node = top.value("expect")
    if node is None:
        r.error(top.node, "expect", "missing required key 'expect': say which runs must start")
        return None, {}
    ex = r.mapping(node, "expect", ("runs", *COUNTS), what="a mapping of runs and counts")
    if ex is None:
        return None, {}
    runs: Optional[Tuple[ExpectedRun, ...]] = None
    if "runs" in ex:
        nodes = [] if is_null(ex.value("runs")) else \
            r.sequence(ex.value("runs"), "expect.runs", what="a list of runs ({levels: [...], targets: {...}})")
        runs = tuple(_run(r, n, f"expect.runs[{i}]") for i, n in enumerate(nodes or []))
    counts = {name: r.field(ex, name, lambda rr, n, p: rr.integer(n, p, minimum=0), BAD)
              for name in COUNTS if name in ex}
    return runs, {k: v for k, v in counts.items() if v is not BAD}


def _run(r: Reader, node: Node, path: str) -> ExpectedRun:
    e = r.mapping(node, path, RUN_KEYS, what="a run ({levels: [...], targets: {...}})")
    if e is None:
        return ExpectedRun(line_of(node))
    levels = r.field(e, "levels", _p_names, None)
    targets = None
    if e.given("targets"):
        t = r.mapping(e.value("targets"), join(path, "targets"), _AnyName(), what="a mapping of level: [hosts]")
        if t is not None:
            targets = {k: r.field(t, k, _p_names, ()) for k in t.items}
    wave = r.field(e, "wave", lambda rr, n, p: rr.integer(n, p, minimum=1), None)
    return ExpectedRun(line_of(node), levels, targets, wave)


class _AnyName:
    def __contains__(self, name: object) -> bool:
        return True


def _p_names(r: Reader, node: Node, path: str) -> Any:
    nodes = r.sequence(node, path, what="a list of names")
    if nodes is None:
        return BAD
    names = tuple(r.string(n, f"{path}[{i}]", "a name") for i, n in enumerate(nodes))
    return BAD if BAD in names else names


# -- running -------------------------------------------------------------------

def unknown_levels(scenario: Scenario, config: Config) -> List[ConfigProblem]:
    """Expected levels the config does not have: a broken scenario, not a failing one."""
    names = {lv.name for lv in config.levels}
    problems = []
    for i, run in enumerate(scenario.runs or ()):
        named = list(run.levels or ()) + list(run.targets or {})
        for level in named:
            if level not in names:
                problems.append(ConfigProblem(
                    scenario.file, run.line, f"expect.runs[{i}]",
                    f"no level {level!r} in {config.source} (levels: {', '.join(sorted(names))})"))
    return problems


def run(scenario: Scenario, config: Config) -> Outcome:
    """Play the scenario through the planner (dry run) and compare with its expectations."""
    records: List[dict] = []
    until = None
    if scenario.until is not None:
        until = (scenario.events[-1][0] if scenario.events else START) + scenario.until
    replay_items(config, scenario.events, records.append, until=until)
    return Outcome(scenario, tuple(records), tuple(_diff(scenario, records)))


def _diff(scenario: Scenario, records: Sequence[dict]) -> List[str]:
    lines: List[str] = []
    if scenario.runs is not None:
        actual = [r for r in records if r.get("kind") == kinds.START]
        if not _runs_match(scenario.runs, actual):
            counts = f"expected {len(scenario.runs)}, got {len(actual)}" if len(scenario.runs) != len(actual) \
                else f"{len(actual)} as expected, but not the same"
            lines.append(f"runs: {counts} (- expected, + actual)")
            lines += _runs_diff(scenario.runs, actual)
    for name, want in scenario.counts.items():
        got = sum(1 for r in records if COUNTS[name](r))
        if got != want:
            lines.append(f"{name}: expected {want}, got {got}")
    return lines


def _matches(exp: ExpectedRun, act: Mapping[str, Any]) -> bool:
    if exp.levels is not None and tuple(exp.levels) != tuple(act.get("levels", ())):
        return False
    if exp.wave is not None and exp.wave != act.get("wave"):
        return False
    targets = act.get("targets") or {}
    return all(sorted(hosts) == sorted(targets.get(level, ())) for level, hosts in (exp.targets or {}).items())


def _runs_match(expected: Sequence[ExpectedRun], actual: Sequence[Mapping[str, Any]]) -> bool:
    return len(expected) == len(actual) and all(_matches(e, a) for e, a in zip(expected, actual))


def _show(levels: Optional[Sequence[str]], targets: Optional[Mapping[str, Sequence[str]]],
          wave: Optional[int] = None) -> str:
    parts = [] if wave is None else [f"wave {wave}"]
    if levels is not None:
        parts.append("levels " + (", ".join(levels) or "-"))
    if targets:
        parts.append("targets " + "; ".join(f"{lv}: {', '.join(sorted(h)) or '-'}" for lv, h in targets.items()))
    return "; ".join(parts) or "any run"


def _runs_diff(expected: Sequence[ExpectedRun], actual: Sequence[Mapping[str, Any]]) -> List[str]:
    out = []
    for i in range(max(len(expected), len(actual))):
        exp = expected[i] if i < len(expected) else None
        act = actual[i] if i < len(actual) else None
        when = f" at +{_offset(act['time'])}" if act is not None else ""
        if exp is not None and act is not None and _matches(exp, act):
            out.append(f"  run {i + 1}: {_show(exp.levels, exp.targets, exp.wave)}{when}")
            continue
        if exp is not None:
            out.append(f"- run {i + 1}: {_show(exp.levels, exp.targets, exp.wave)}")
        if act is not None:
            shown = act.get("targets") or {}
            if exp is not None and exp.targets is not None:
                # Show the levels the expectation names, so the two lines compare.
                shown = {lv: shown.get(lv, ()) for lv in exp.targets}
            out.append(f"+ run {i + 1}: {_show(act.get('levels', ()), shown, act.get('wave'))}{when}")
    return out


def _offset(t: float) -> str:
    s = int(round(t - START))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"


def files_of(paths: Sequence[str]) -> List[str]:
    """Scenario files: each file given, and the ``*.yaml``/``*.yml`` files of each directory, sorted."""
    files: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith((".yaml", ".yml")) and os.path.isfile(os.path.join(path, n)))
            if not found:
                raise UsageError(f"{path}: no scenario files (*.yaml) in this directory")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such scenario file or directory")
    return files
