"""The collector's working memory: a fold of journal records.

``State`` knows, for every check, its latest observed state, and for the
escalation as a whole: the runs so far (for quiescence, verdicts and the
hourly limit), per-level attempt counters and holds, operator holds and
pause, and the debounce window.  It changes only through ``apply(record)``,
so the same records always give the same state: the collector folds what it
journals, replay folds what it simulates, and a restart rebuilds the state
from ``state.json`` plus the journal records written after it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Set, Tuple

from .. import kinds
from ..config import CheckRule, Config
from ..event import GOOD_STATES, CheckKey
from . import approvals, brakes, gaps, interlocks, rollout, statejson
from . import observe as observe_mod
from .runs import HELD_HOST, RunInfo, RunRecord, fold_verdict, runs_since
from .statetypes import CheckState, Episode, Hold, hold_label, key_of, keys_of
from .survey import SurveyCache

__all__ = ["RUN_HISTORY", "CheckState", "Episode", "Hold", "RunInfo", "RunRecord", "State", "key_of", "keys_of"]

#: Runs kept in memory: enough for the hourly limit and `status`.
RUN_HISTORY = 200

_UNKNOWN = object()  # not in a cache yet


#: Record kind -> the State attributes (parts) that fold it too.
_PARTS: Dict[str, Tuple[str, ...]] = {}
for _name, _kinds in (("approvals", approvals.KINDS), ("acks", interlocks.KINDS), ("brakes", brakes.KINDS),
                      ("rollouts", rollout.KINDS), ("gaps", gaps.KINDS)):
    for _kind in _kinds:
        _PARTS[_kind] = _PARTS.get(_kind, ()) + (_name,)


class State:
    """Fold of journal records; see the module docstring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.checks: Dict[CheckKey, CheckState] = {}
        # The checks not OK/UP: what the planner surveys.  Kept apart so a decision
        # costs O(problems), not O(all checks) -- a big site has thousands of OK checks.
        self.problems: Dict[CheckKey, CheckState] = {}
        self.host_downtime: Dict[str, int] = {}
        # Hosts whose host check is UNREACHABLE (a parent is down): with
        # ``unreachable: ignore`` they and their services do not ask (rule 3).
        self.unreachable: Set[str] = set()
        self.last_event: Optional[float] = None
        self.burst_start: Optional[float] = None
        self.runs: Deque[RunInfo] = deque(maxlen=RUN_HISTORY)
        self.open_run: Optional[dict] = None      # a `start` without its `run`
        self.episodes: Dict[str, Episode] = {}
        self.holds: Dict[str, Hold] = {}           # by label: "host-glob" or "host-glob/service-glob"
        self.paused: Optional[str] = None          # reason; None = not paused
        self.requests: List[dict] = []             # `escalator run` requests not yet started or refused
        self.last_skip: Optional[str] = None
        self.skip_checks: Set[CheckKey] = set()
        self.held_recorded: Set[CheckKey] = set()  # held checks a skipped record already listed
        self.seen_ids: Dict[str, None] = {}        # recent event ids, for de-duplication
        self.observed_failing = False              # whether the check observe() last folded fails
        # The newest time the collector itself stamped (an event's arrival, its own records):
        # a collector starting with the wall clock behind it knows the clock stepped back.
        self.clock_seen: Optional[float] = None
        self.clock_step: Optional[dict] = None     # the last step of the wall clock: time, jump (status)
        self._rule_cache: Dict[Tuple[CheckKey, Optional[str]], Optional[CheckRule]] = {}
        self._service_rules: Dict[Tuple[Optional[str], Optional[str]], Tuple[Tuple[int, CheckRule], ...]] = {}  # (bit, rule)
        self._host_rules: Dict[str, int] = {}
        # The planner's survey, kept up to date between decisions: derived data
        # this state owns (never journalled); observe() notes what to look at again.
        self.fresh_survey()
        # What people said and what holds escalator back: each part folds its own kinds.
        self.approvals = approvals.Approvals()
        self.acks = interlocks.Acks()
        self.brakes = brakes.Brakes()
        self.rollouts = rollout.Rollouts()
        self.gaps = gaps.Gaps()                    # when escalator could not hear Icinga (listen)

    # -- mapping -----------------------------------------------------------

    def rule_for(self, key: CheckKey, state: Optional[str]) -> Optional[CheckRule]:
        """``config.rule_for``, remembered: replay maps tens of thousands of checks."""
        ck = (key, state)
        found = self._rule_cache.get(ck, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._rule_cache[ck] = self.match_rule(key[0], key[1], state)
        return found

    def match_rule(self, host: str, service: Optional[str], state: Optional[str]) -> Optional[CheckRule]:
        """``config.rule_for`` in O(rules) bit tests: the rules that can match a service in a
        state are worked out once per (service, state), those whose host pattern matches once
        per host; the first rule in both maps the check."""
        sk = (service, state)
        rules = self._service_rules.get(sk)
        if rules is None:
            rules = self._service_rules[sk] = tuple(
                (1 << i, r) for i, r in enumerate(self.config.checks) if r.matches_service(service, state))
        mask = self._host_rules.get(host)
        if mask is None:  # bit i: rule i's host pattern matches
            mask = self._host_rules[host] = sum(1 << i for i, r in enumerate(self.config.checks)
                                                if r.matches_host(host))
        for bit, rule in rules:
            if mask & bit:
                return rule
        return None

    def level_for(self, key: CheckKey, state: Optional[str]) -> Optional[int]:
        rule = self._rule_cache.get((key, state), False)
        if rule is False:
            rule = self.rule_for(key, state)
        return None if rule is None else rule.level

    def is_target(self, key: CheckKey, state: Optional[str]) -> bool:
        """Whether the rule mapping this check makes its host a target (rule key ``target``)."""
        rule = self.rule_for(key, state)
        return rule is None or rule.target

    @property
    def held_hosts(self) -> Dict[str, str]:
        """{hold label: reason}; a new dict each time (the survey cache compares them)."""
        return {label: h.reason for label, h in self.holds.items()}

    def held(self, key: CheckKey) -> Optional[Hold]:
        """The operator hold that keeps hands off this check, if any (expiry is the planner's)."""
        for h in self.holds.values():
            if h.matches(key):
                return h
        return None

    def ignored_unreachable(self, host: str) -> bool:
        """The host check says UNREACHABLE and the config says to ignore that."""
        return self.config.unreachable == "ignore" and host in self.unreachable

    def remap(self, config: Config) -> None:
        """Adopt a new config (SIGHUP): recompute every check's mapped level."""
        self.config = config
        self._rule_cache.clear()
        self._service_rules.clear()
        self._host_rules.clear()
        for key, cs in self.checks.items():
            cs.levels = None
            cs.level = self.level_for(key, cs.state) if not cs.good else None

    def failing(self, key: CheckKey, cs: CheckState) -> bool:
        """Rule 1 (docs/planning.rst): not OK/UP, state type counted, not in downtime (unless configured)."""
        state, config = cs.state, self.config  # cs.good and ignored_unreachable(), inline: the survey asks often
        if state is None or state in GOOD_STATES or cs.state_type not in config.state_types:
            return False
        if not config.act_in_downtime:
            if cs.downtime > 0 or self.host_downtime.get(key[0], 0) > 0:
                return False
        return not (config.unreachable == "ignore" and key[0] in self.unreachable)

    # -- folding -----------------------------------------------------------

    def apply(self, rec: Mapping[str, Any]) -> None:
        kind = rec.get("kind", kinds.EVENT)
        rid = rec.get("id")
        if rid is not None and kind != kinds.EVENT:
            self.remember(rid)
        if kind == kinds.RUN:
            self.fold_run(RunRecord.from_record(rec))  # the one place a run record is read
        else:
            fold = _FOLDS.get(kind)
            if fold is not None:
                fold(self, rec)
            for part in _PARTS.get(kind, ()):
                getattr(self, part).apply(rec, self)
        if kind not in kinds.CONTROL_KINDS and kind != kinds.RUN:  # an operator's: its command's time
            self.stamped(rec.get("arrived") if kind == kinds.EVENT else rec.get("time"))

    def stamped(self, stamp: Any) -> None:
        """The collector stamped a record at ``stamp`` (``clock_seen``)."""
        if isinstance(stamp, (int, float)) and (self.clock_seen is None or stamp > self.clock_seen):
            self.clock_seen = float(stamp)

    def fresh_survey(self) -> None:
        """Start a new survey cache: the next decision surveys every check from scratch."""
        self.survey_cache = SurveyCache()
        self._note_changed = self.survey_cache.changed.add  # bound once: observe() is replay's hot path

    def _apply_event(self, rec: Mapping[str, Any]) -> None:
        eid = rec.get("id")
        if eid is not None:
            self.remember(eid)
        obs = rec.get("observation")
        if obs is not None:
            self.remember(obs)  # the same observation from another source is dropped at intake
        arrived = rec.get("arrived")
        self.observe(
            float(rec["time"]), rec["host"], rec.get("service") or None, rec.get("state"),
            rec.get("state_type") or "HARD", int(rec.get("attempt") or 1),
            int(rec.get("downtime") or 0), rec.get("output") or "",
            float(arrived) if arrived is not None else None,
        )

    def remember(self, rid: str) -> None:
        """Note a spool record id as journalled, so a re-read spool entry is not folded twice."""
        self.seen_ids[rid] = None
        if len(self.seen_ids) > 100_000:
            for old in list(self.seen_ids)[:50_000]:
                del self.seen_ids[old]

    #: Fold one observed state (replay's hot path, see its module).
    observe = observe_mod.observe

    def _apply_request(self, rec: Mapping[str, Any]) -> None:
        req = dict(rec)
        if not isinstance(req.get("id"), str) or not req["id"]:
            # The answer (a start, or a skipped run) names the request by its id: without
            # one the request would never count as answered and be answered again and again.
            req["id"] = request_id(rec)
        self.requests.append(req)

    def _answered(self, request: Optional[str]) -> None:
        """A `start` or a skipped `run` that answers an operator's request ends it."""
        if request is not None:
            self.requests = [r for r in self.requests if r.get("id") != request]

    def _apply_start(self, rec: Mapping[str, Any]) -> None:
        self._answered(rec.get("request"))
        self.open_run = dict(rec)
        self.burst_start = None
        self.last_skip = None
        self.skip_checks.clear()

    def _apply_step(self, rec: Mapping[str, Any]) -> None:
        if self.open_run is not None and rec.get("run") == self.open_run.get("run"):
            self.open_run.setdefault("steps_done", []).append(
                {"step": rec.get("step"), "host": rec.get("host"), "exit": rec.get("exit"),
                 "time": rec.get("time")})  # when it ended: `status` says how long the next one runs

    def fold_run(self, run: RunRecord) -> None:
        """A run ended (rules 6 and 7 count it), or a skip was recorded (rule 8)."""
        self.stamped(run.time)
        if run.skipped:
            if run.request is not None:
                self._answered(run.request)
            elif run.skip_key == HELD_HOST:
                self.held_recorded |= set(run.check_keys)
            else:
                skip = run.skip_key or run.reason
                if run.continued and skip == self.last_skip:
                    self.skip_checks.update(run.check_keys)  # checks that joined the same skip
                else:
                    self.last_skip = skip
                    self.skip_checks = set(run.check_keys)
        else:
            opened = self.open_run
            if opened is not None and run.run is not None and opened.get("run") == run.run \
                    and isinstance(opened.get("time"), (int, float)) and run.started != opened["time"]:
                # The wall clock stepped during the run: its start as the state has it (shifted).
                run = replace(run, started=float(opened["time"]))
            self.open_run = None
            if not run.superseded:
                # A superseded run keeps the burst that superseded it: the more
                # drastic run waits for quiet like any other, so failures still
                # arriving are batched into it.
                self.burst_start = None
            self.runs.append(RunInfo.of(run, self.config.levels))
        self.approvals.fold_run(run)
        self.brakes.fold_run(run)
        self.rollouts.fold_run(run)

    def _apply_clock(self, rec: Mapping[str, Any]) -> None:
        jump = rec.get("jump")
        if isinstance(jump, (int, float)) and jump:
            self.shift(float(jump))
            self.clock_step = {"time": rec.get("time"), "jump": float(jump), "source": rec.get("source")}

    def shift(self, delta: float) -> None:
        """Move every time the state holds by ``delta`` seconds (a ``clock`` record: the wall
        clock stepped by ``delta``), so that each duration under way -- debounce, quiescence,
        holds, approvals, backoff, per-host windows, the hourly limit -- keeps what it had
        left, and observations after the step order after those before it.  A time added
        to the state must be moved here too."""
        for cs in self.checks.values():
            cs.time += delta
            cs.since += delta
        if self.last_event is not None:
            self.last_event += delta
        if self.burst_start is not None:
            self.burst_start += delta
        if self.clock_seen is not None:
            self.clock_seen += delta
        for r in self.runs:
            r.time += delta
            r.started += delta
            r.quiet_until += delta
        if self.open_run is not None:
            self.open_run = _shifted(self.open_run, delta)
            if self.open_run.get("steps_done"):
                self.open_run["steps_done"] = [_shifted(d, delta) for d in self.open_run["steps_done"]]
        self.holds = {label: h.shifted(delta) for label, h in self.holds.items()}
        self.requests = [_shifted(r, delta) for r in self.requests]
        self.approvals.shift(delta)
        self.brakes.shift(delta)
        self.fresh_survey()

    def _apply_verdict(self, rec: Mapping[str, Any]) -> None:
        fold_verdict(rec, self.runs, self.episodes, self.config.levels)

    def _apply_hold(self, rec: Mapping[str, Any]) -> None:
        if rec.get("host"):
            h = Hold.from_record(rec)
            self.holds[h.label] = h

    def _apply_release(self, rec: Mapping[str, Any]) -> None:
        if rec.get("host"):
            self.holds.pop(hold_label(rec["host"], rec.get("service")), None)
            self.held_recorded.clear()  # held again later: a new episode, recorded again
        if rec.get("level") is not None:  # "" too: an episode under any name must end when released
            self.episodes.pop(rec["level"], None)

    def _apply_pause(self, rec: Mapping[str, Any]) -> None:
        self.paused = rec.get("reason") or ""

    def _apply_resume(self, rec: Mapping[str, Any]) -> None:
        if rec.get("host"):
            return  # `resume --host H` lifts only that host's per-host limit (brakes)
        self.paused = None
        self.last_skip = None
        for ep in self.episodes.values():
            ep.held = False
            ep.attempts = 0

    # -- queries -----------------------------------------------------------

    def last_run(self) -> Optional[RunInfo]:
        return self.runs[-1] if self.runs else None

    def runs_since(self, since: float) -> List[RunInfo]:
        """Runs started after ``since``, oldest first."""
        return runs_since(self.runs, since)

    # -- checkpoint (the head of every journal file: planning/statejson.py) ---

    def worth_carrying(self) -> bool:
        return statejson.worth_carrying(self)

    def checkpoint(self, now: float) -> dict:
        return statejson.checkpoint_record(self, now)

    def _apply_checkpoint(self, rec: Mapping[str, Any]) -> None:
        statejson.fold_checkpoint(self, rec)

    # -- snapshot ----------------------------------------------------------

    def to_json(self) -> dict:
        return statejson.state_to_json(self)

    @classmethod
    def from_json(cls, config: Config, data: Mapping[str, Any]) -> "State":
        return statejson.fill_from_json(cls(config), data)


def _shifted(rec: Mapping[str, Any], delta: float) -> dict:
    """A copy of a record kept in the state with its ``time`` moved by ``delta``."""
    out = dict(rec)
    if isinstance(out.get("time"), (int, float)):
        out["time"] = out["time"] + delta
    return out

def request_id(rec: Mapping[str, Any]) -> str:
    """The id of a request that came without one: the same for the same record on every
    fold (snapshot or journal), so its answer ends it however the state was rebuilt."""
    import hashlib
    import json

    text = json.dumps(rec, sort_keys=True, default=str)
    return "anonymous-" + hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


#: Record kind -> how the state folds it (a run: ``fold_run``; unknown kinds: not at all).
_FOLDS: Dict[str, Callable[[State, Mapping[str, Any]], None]] = {
    kinds.EVENT: State._apply_event, kinds.REQUEST: State._apply_request, kinds.START: State._apply_start,
    kinds.STEP: State._apply_step, kinds.VERDICT: State._apply_verdict, kinds.HOLD: State._apply_hold,
    kinds.RELEASE: State._apply_release, kinds.PAUSE: State._apply_pause, kinds.RESUME: State._apply_resume,
    kinds.CHECKPOINT: State._apply_checkpoint, kinds.CLOCK: State._apply_clock,
}
