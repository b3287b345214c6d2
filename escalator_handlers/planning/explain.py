"""Why each check does or does not ask for a level now (``plan --explain``, ``route``).

``account`` walks every check that is not OK/UP and says, in the planner's
own terms, what it does to the decision: it asks for a level (and whether the
run happens now, waits for quiet or for a level's quiescence, or is held back
by a pause, a limit, an exhausted level, a wait for approval), or why it does
not count (SOFT, scheduled downtime of its own or of its host, unreachable,
host held by an operator or acknowledged by a person, host over
``limits.per_host``, no rule maps it).  ``route`` says which rule a check matches.
Read-only, no clock: the caller passes ``now`` and the planner's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..config import Config
from ..event import GOOD_STATES, CheckKey, check_name
from .planner import Decision
from .state import State
from ..display import iso

#: The states a check is given when ``route`` is asked without ``--state``.
DEFAULT_HOST_STATE = "DOWN"
DEFAULT_SERVICE_STATE = "CRITICAL"


@dataclass(frozen=True)
class Route:
    """Where a check in a state goes: the first matching rule, its level, the run it asks for."""

    host: str
    service: Optional[str]
    state: str
    rule: Optional[int]          # 1-based position in `checks:`, None = unmapped
    line: Optional[int]
    pattern: Dict[str, Any]
    level: Optional[str]
    level_index: Optional[int]
    run: List[str]
    target: bool
    counted: bool                # a problem state the planner acts on

    def record(self) -> Dict[str, Any]:
        return {"check": check_name((self.host, self.service)), "host": self.host, "service": self.service,
                "state": self.state, "rule": self.rule, "line": self.line, "pattern": self.pattern,
                "level": self.level, "level_index": self.level_index, "run": self.run,
                "target": self.target, "counted": self.counted}


def route(config: Config, host: str, service: Optional[str], state: Optional[str]) -> Route:
    st = (state or (DEFAULT_SERVICE_STATE if service else DEFAULT_HOST_STATE)).upper()
    key: CheckKey = (host, service or None)
    if st == "UNREACHABLE" and config.unreachable == "ignore":
        return Route(host, service or None, st, None, None, {}, None, None, [], False, False)
    for i, rule in enumerate(config.checks, 1):
        if rule.matches(key, st):
            lv = config.levels[rule.level - 1]
            pattern: Dict[str, Any] = {"host": rule.host}
            if rule.service is not None:
                pattern["service"] = rule.service
            if rule.states:
                pattern["state"] = list(rule.states)
            target = rule.target
            if not target:
                pattern["target"] = False
            return Route(host, service or None, st, i, rule.line, pattern, lv.name, lv.index,
                         [x.name for x in config.levels[lv.index - 1:]], target, st not in GOOD_STATES)
    return Route(host, service or None, st, None, None, {}, None, None, [], False, st not in GOOD_STATES)


def account(state: State, config: Config, now: float, decision: Decision,
            at: Optional[float] = None) -> List[Dict[str, Any]]:
    """One entry per check that is not OK/UP: ``status`` (a word) and ``why`` (a sentence).

    ``decision`` is the planner's answer at ``now``; ``at`` is when a run
    would start once quiet (``plan`` asks the planner again at its wake-up).
    """
    out: List[Dict[str, Any]] = []
    levels = config.levels
    for key in sorted(state.problems, key=lambda k: (k[0], k[1] or "")):
        cs = state.problems[key]
        level = levels[cs.level - 1] if cs.level else None
        status, why = _why(state, config, now, decision, key, cs, at)
        if cs.level and status not in ("unreachable", "unmapped") and not state.is_target(key, cs.state):
            why += f" (its rule says target: false: {key[0]} itself is no target)"
        out.append({"check": check_name(key), "host": key[0], "service": key[1], "state": cs.state,
                    "state_type": cs.state_type, "since": cs.since,
                    "level": level.name if level else None, "status": status, "why": why})
    order = {"runs": 0, "waits": 1, "quiescence": 1, "paused": 2, "held-back": 2}
    out.sort(key=lambda e: (order.get(e["status"], 3), e["check"]))
    return out


def _why(state: State, config: Config, now: float, d: Decision, key: CheckKey, cs: Any,
         at: Optional[float]) -> tuple:
    host = key[0]
    if cs.state_type not in config.state_types:
        return "soft", (f"{cs.state_type} (attempt {cs.attempt}): only {'/'.join(config.state_types)} "
                        f"states count (state_types); waits for the check to become HARD")
    if not config.act_in_downtime:
        if cs.downtime > 0:
            return "downtime", "in scheduled downtime (act_in_downtime: false)"
        if state.host_downtime.get(host, 0) > 0:
            return "downtime", f"its host {host} is in scheduled downtime (act_in_downtime: false)"
    if cs.level is None and not state.ignored_unreachable(host):
        return "unmapped", "no rule in checks: maps it; reported, never acted on"
    if state.ignored_unreachable(host):
        return "unreachable", (f"{host} is UNREACHABLE (a parent is down, that is what is broken): "
                               f"asks for nothing, no target (unreachable: ignore)")
    level = config.levels[cs.level - 1]
    asks = f"asks for level {level.name} ({level.index})"
    hold = state.held(key)
    if hold is not None:
        return "held", f"{asks}, but {_hold_text(hold)}"
    ack = state.acks.active(state.checks).get(host) if state.acks.by_check else None
    if ack is not None:
        return "acknowledged", (f"{asks}, but host {host} is {ack.by} (hands off until the "
                                f"acknowledgement is removed or the check recovers)")
    if host in state.brakes.braked:
        return "host-limit", (f"{asks}, but {host} reached limits.per_host: left alone until "
                              f"{iso(state.brakes.braked[host])} or `escalator resume --host {host}`")
    why = d.why or ""
    if state.paused is not None:
        # Before the debounce or a quiescence: a pause holds back whatever comes after them.
        return "paused", f"{asks}, but automation is paused by operator" + (f": {state.paused}" if state.paused else "")
    if d.run is not None:
        return "runs", f"{asks}: a run of {', '.join(lv.name for lv in d.run.levels)} starts now"
    if why.startswith("waiting for quiet"):
        when = f" at {iso(at)}" if at is not None else ""
        return "waits", f"{asks}: {why}; the run starts{when} unless more events arrive"
    if why.startswith("quiescence"):
        return "quiescence", f"{asks}, but inside the {why}"
    if why.startswith("judging") or why.startswith("checks recovered"):
        return "waits", f"{asks}: {why} first"
    if why.startswith("skipped:"):
        return "held-back", f"{asks}, but {why[len('skipped: '):]}"
    return "waits", f"{asks}: {why or 'nothing to do'}"


def _hold_text(hold: Any) -> str:
    who = f" by {hold.user}" if hold.user else ""
    until = f" until {iso(hold.until)}" if hold.until is not None else ""
    return f"held{who}{until} (escalator hold {hold.label}): {hold.reason or '(no reason given)'}"
