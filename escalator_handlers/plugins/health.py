"""The escalator's own health, judged for check_escalator (nagiosplugin parts).

:class:`EscalatorHealth` is a nagiosplugin ``Resource``: it loads the config,
asks :func:`escalator_handlers.status.gather` for the read-only status report
and turns it into metrics.  The contexts judge them:

- ``backlog`` and ``oldest_age``: spool entries not yet collected and the age
  of the oldest, against ranges (``--backlog-*`` and ``-w``/``-c``);
- ``collector``: CRITICAL when events have waited longer than ``dead_after``
  with no collector holding the lock, or when the planner has work due now
  and nobody is there to do it; WARNING when work is scheduled for later
  and no collector waits for it;
- ``holds``: WARNING while paused or while levels or hosts are held;
- ``last_run``: CRITICAL when the last run failed and checks it was for are
  still failing;
- ``failing``, ``quiescence_left``, ``runs_last_hour``: facts for the
  status line and perfdata.

Each context's Result hint is its status line item (see
:class:`escalator_handlers.plugins.check_escalator.HealthSummary` for the order).
All text that came from monitoring or an operator goes through
:func:`clean`: printable, single line, bounded, no ``|``.
"""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import nagiosplugin
from nagiosplugin.state import Critical, Ok, Warn

from .. import defaults
from ..status import last_run
from ..display import safe
from ..display import duration

__all__ = ["EscalatorHealth", "contexts", "clean", "ago", "deadline", "ORDER", "PERF_ORDER", "LIST_LIMIT"]

#: Items of the status line, in the order they appear when all are OK.
ORDER = ("collector", "backlog", "oldest_age", "failing", "quiescence_left", "holds",
         "last_run", "runs_last_hour")
#: Perfdata order: the metrics an operator graphs, most telling first.
PERF_ORDER = ("backlog", "oldest_age", "runs_last_hour", "failing", "quiescence_left")
#: How many names the status line spells out before "and N more".
NAMES = 3
#: Long output lines per list (Nagios keeps 8 kB of plugin output at most).
LIST_LIMIT = 20


def clean(text: Any, limit: int = 200) -> str:
    """Printable, single line, bounded; ``|`` escaped (Nagios reads it as perfdata)."""
    return safe("" if text is None else text, limit).replace("|", "\\x7c")


def ago(seconds: float) -> str:
    """A short duration: 45s, 5m, 3h, 2d."""
    return duration(seconds, coarse=True)


def _names(names: Sequence[str], what: str = "") -> str:
    shown = ", ".join(clean(n, 80) for n in names[:NAMES])
    more = len(names) - NAMES
    return shown + (f" and {more} more{what}" if more > 0 else "")


@dataclass(frozen=True)
class CollectorFacts:
    running: bool
    pid: Optional[int]
    pending: int
    oldest_age: float
    next_in: Optional[float]     # planner's next wake-up, seconds from now
    run_due: bool                # the planner would start a run now
    dead_after: float
    cluster: bool = False        # cluster: the collector that counts is the leader in etcd
    leader: Optional[str] = None
    missing: Tuple[str, ...] = ()  # the spool or journal does not exist: events would sit unseen
    config_problem: str = ""       # the config file fails validation (the collector runs an older one)


@dataclass(frozen=True)
class HoldFacts:
    paused: bool
    pause_reason: str
    levels: Tuple[Tuple[str, str], ...]
    hosts: Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class LastRunFacts:
    outcome: Optional[str]       # None: no run in the journal's recent records
    age: Optional[float]
    any_records: bool            # only skipped runs recently (vs none at all)
    superseded: bool
    still_failing: Tuple[str, ...]
    running: Optional[str] = None  # the run in progress, e.g. "levels vm, deploy for 4s"


def _collector_facts(report: Dict[str, Any], dead_after: float) -> CollectorFacts:
    nxt = report.get("next") or {}
    return CollectorFacts(
        running=bool(report["collector"]["running"]), pid=report["collector"].get("pid"),
        pending=int(report["spool"]["pending"]), oldest_age=float(report["spool"]["oldest_age"] or 0.0),
        next_in=nxt.get("in"), run_due=bool(nxt.get("run")), dead_after=dead_after,
        cluster="leader" in report, leader=report.get("leader"),
        missing=tuple(report.get("missing") or ()), config_problem=report.get("config_problem") or "")


def _last_run_facts(report: Dict[str, Any]) -> LastRunFacts:
    cur = report.get("running")
    running = None
    if cur:
        step = cur.get("step") or {}
        on = f" on {step['host']}" if step.get("host") else ""
        running = (f"run of levels {', '.join(cur.get('levels') or ())} running for {ago(cur.get('for') or 0)}"
                   + (f", step {step.get('where')}{on}" if step else "")
                   + ("" if cur.get("collector_alive") else " (its collector is gone)"))
    run = last_run(report)
    if run is None:
        return LastRunFacts(None, None, bool(report.get("last_runs")), False, (), running)
    failing = {(f["host"], f.get("service")): f["check"] for f in report.get("failing") or ()}
    asked = [(c.get("host"), c.get("service")) for c in run.get("checks") or () if isinstance(c, dict)]
    # A run without its checks (older journal) is judged by everything failing now.
    still = [failing[k] for k in asked if k in failing] if asked else list(failing.values())
    try:
        age: Optional[float] = float(report["time"]) - float(run["time"])
    except (KeyError, TypeError, ValueError):
        age = None
    return LastRunFacts(str(run.get("outcome") or "failed"), age, True, bool(run.get("superseded")),
                        tuple(still), running)


def collector_needed(report: Dict[str, Any]) -> bool:
    """Would a live collector have something to do (events pending, planner waiting)?"""
    nxt = report.get("next") or {}
    return bool(report["spool"]["pending"] or nxt.get("run") or nxt.get("in") is not None)


class EscalatorHealth(nagiosplugin.Resource):
    """Loads the config and the status report once; keeps both for the summary."""

    name = "ESCALATOR"

    def __init__(self, config_path: str, *, dead_after: Optional[float], timeout: int,
                 clock: Callable[[], float]):
        self.config_path = config_path
        self.dead_after_option = dead_after
        self.timeout = timeout
        self.clock = clock
        self.phase = "starting"
        self.config: Any = None
        self.report: Dict[str, Any] = {}
        self.dead_after = 0.0
        self.notes: List[str] = []

    def probe(self) -> List[nagiosplugin.Metric]:
        from ..errors import ConfigError, EscalatorError

        handler = _NoteHandler(self.notes)
        log = logging.getLogger("escalator")
        log.addHandler(handler)
        propagate, log.propagate = log.propagate, False  # warnings go to -v output, not stderr
        try:
            with deadline(self.timeout):
                self._load()
        except _Timeout:
            raise nagiosplugin.CheckError(f"timed out after {self.timeout}s {self.phase}") from None
        except ConfigError as exc:
            lines = str(exc).splitlines() or ["?"]
            more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
            raise nagiosplugin.CheckError(f"invalid config: {clean(lines[0], 400)}{more}") from None
        except OSError as exc:
            if exc.filename is None:
                raise nagiosplugin.CheckError(f"{clean(exc, 300)} while {self.phase}") from None
            raise nagiosplugin.CheckError(
                f"cannot read {clean(exc.filename, 300)}: {exc.strerror}{_hint(exc)}") from None
        except EscalatorError as exc:
            raise nagiosplugin.CheckError(f"{clean(str(exc).splitlines()[0], 400)}{_hint(exc)}") from None
        except Exception as exc:  # the promise: UNKNOWN with a reason, never a traceback
            raise nagiosplugin.CheckError(
                f"internal error while {self.phase}: {type(exc).__name__}: {clean(exc, 300)}") from None
        finally:
            log.removeHandler(handler)
            log.propagate = propagate
        return self._metrics()

    def _load(self) -> None:
        from ..errors import EscalatorError
        from ..operator_config import load_for_operator
        from ..status import gather, missing_paths

        self.phase = f"loading config {self.config_path}"
        # An invalid file must not blind the check while the collector runs its last good config.
        op = load_for_operator(self.config_path)
        self.config = cfg = op.config
        self.phase = f"reading spool {cfg.spool} and journal {cfg.journal}"
        try:
            self.report = gather(cfg, self.clock())
            if not self.report["collector"]["running"] and collector_needed(self.report):
                # A collector exiting between our read of the journal and our probe of
                # its lock would look dead; a second look sees what it wrote last.
                self.report = gather(cfg, self.clock())
            self.report["missing"] = missing_paths(cfg)
        except (OSError, EscalatorError) as exc:
            # What escalator records cannot be seen: as bad as missing (events may sit unseen).
            self.report = _blind_report(self.clock(), _unreadable(exc))
        if op.problems:
            self.report["config_problem"] = f"config {cfg.source} is invalid: {op.problems[0]}"
        self.dead_after = self.dead_after_option if self.dead_after_option is not None \
            else defaults.DEAD_AFTER_QUIESCENCES * cfg.quiescence + defaults.DEAD_AFTER_EXTRA

    def _metrics(self) -> List[nagiosplugin.Metric]:
        r, limits = self.report, self.config.limits
        m = nagiosplugin.Metric
        return [
            m("backlog", int(r["spool"]["pending"]), min=0, context="backlog"),
            # max(0, ...): an event stamped by a clock ahead of ours is not negative-aged.
            m("oldest_age", max(0, int(r["spool"]["oldest_age"] or 0)), "s", min=0,
              context="oldest_age"),
            m("runs_last_hour", int(r["runs_last_hour"]), min=0, max=limits.max_runs_per_hour,
              context="fact"),
            m("failing", len(r["failing"]), min=0, context="failing"),
            m("quiescence_left", int(round(r["quiescence_left"] or 0)), "s", min=0,
              context="quiescence_left"),
            m("collector", _collector_facts(r, self.dead_after), context="collector"),
            m("holds", HoldFacts(bool(r["paused"]), r.get("pause_reason") or "",
                                 tuple(r["held_levels"].items()), tuple(r["held_hosts"].items())),
              context="holds"),
            m("last_run", _last_run_facts(r), context="last_run"),
        ]


def _unreadable(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot read {clean(exc.filename, 300)}: {exc.strerror}{_hint(exc)}"
    return f"{clean(str(exc).splitlines()[0] if str(exc) else exc, 400)}{_hint(exc)}"


def _blind_report(now: float, why: str) -> Dict[str, Any]:
    """The report when the spool or journal cannot be read: every figure zero, CRITICAL why."""
    return {"time": now, "collector": {"running": False, "pid": None},
            "spool": {"pending": 0, "oldest_age": None}, "runs_last_hour": 0, "failing": [],
            "quiescence_left": 0, "paused": False, "pause_reason": None, "held_levels": {},
            "held_hosts": {}, "last_runs": [], "next": {}, "missing": [why]}


def _hint(exc: BaseException) -> str:
    """What to do about a permission problem (the library wraps some OSErrors)."""
    if isinstance(exc, PermissionError) or isinstance(exc.__context__, PermissionError):
        return " (run the check as a user that may read the spool, state and journal)"
    return ""


class _Timeout(BaseException):
    """Raised by the SIGALRM handler of :func:`deadline`; a BaseException so that
    no ``except Exception`` in the code it interrupts swallows it."""


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise _Timeout in the block after ``seconds`` (SIGALRM: interrupts a blocked
    open() of a FIFO or a hung file system too)."""
    def expire(signum: int, frame: object) -> None:
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class _NoteHandler(logging.Handler):
    """Collects the library's log warnings (e.g. an unreadable snapshot) for -v."""

    def __init__(self, notes: List[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


# -- contexts ------------------------------------------------------------------

class _Item(nagiosplugin.Context):
    """A context whose Result hint is the status line item (empty: not shown)."""

    def __init__(self, name: str, judge: Callable[[Any], Tuple[Any, str]]):
        super().__init__(name)
        self.judge = judge

    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        state, text = self.judge(metric.value)
        return nagiosplugin.Result(state, text, metric)


class _Scalar(nagiosplugin.ScalarContext):
    """A ScalarContext with a status line item: ``text(value, resource)`` plus any
    range violation.

    Perfdata shows the thresholds only when the user gave them.
    """

    def __init__(self, name: str, text: Callable[[int, Any], str], warning: Any = None,
                 critical: Any = None):
        super().__init__(name, warning, critical)
        self.text = text

    def evaluate(self, metric: nagiosplugin.Metric, resource: Any) -> nagiosplugin.Result:
        result = super().evaluate(metric, resource)
        item = self.text(metric.value, resource)
        if result.state != Ok:
            item = f"{item or metric.name + ' ' + metric.valueunit} ({result.hint})"
        return nagiosplugin.Result(result.state, item, metric)


def _collector(f: CollectorFacts) -> Tuple[Any, str]:
    if f.missing:
        return Critical, "; ".join(clean(m, 300) for m in f.missing + ((f.config_problem,) if f.config_problem else ()))
    if f.config_problem:
        running = f"collector running (pid {f.pid}) on its last good config" if f.running else "collector not running"
        return Warn, f"{running}; {clean(f.config_problem, 300)}"
    if f.cluster:
        if f.leader:
            return Ok, f"leader {clean(f.leader)}"
        return Warn, "no leader: no node holds the leader lease in etcd"
    if f.running:
        return Ok, f"collector running (pid {f.pid})" if f.pid else "collector running"
    if f.pending:
        if f.oldest_age > f.dead_after:
            return Critical, f"collector not running with events waiting over {f.dead_after:g}s"
        return Ok, "collector not running"  # the handler that spooled them starts one
    if f.run_due or f.next_in == 0:
        return Critical, "collector not running with work due now"
    if f.next_in is not None:
        return Warn, f"collector not running with work due in {ago(f.next_in)}"
    return Ok, "idle"


def _holds(h: HoldFacts) -> Tuple[Any, str]:
    items = []
    if h.paused:
        items.append("paused" + (f": {clean(h.pause_reason)}" if h.pause_reason else ""))
    for name, reason in h.levels:
        # The planner's reason repeats "level NAME"; say it once.
        why = reason[len(f"level {name} "):] if reason.startswith(f"level {name} ") else reason
        items.append(f"level {clean(name, 80)} held" + (f": {clean(why)}" if why else ""))
    for host, reason in h.hosts[:NAMES]:
        items.append(f"host {clean(host, 80)} held" + (f": {clean(reason)}" if reason else ""))
    if len(h.hosts) > NAMES:
        items.append(f"and {len(h.hosts) - NAMES} more hosts held")
    return (Warn if items else Ok), ", ".join(items)


def _last_run(f: LastRunFacts) -> Tuple[Any, str]:
    if f.running is not None:
        # A run in progress is what the operator needs to know, not the one before it.
        return Ok, clean(f.running, 300)
    if f.outcome is None:
        return Ok, "no recent runs" if f.any_records else "no runs yet"
    when = f" {ago(f.age)} ago" if f.age is not None else ""
    if f.outcome != "failed":
        return Ok, f"last run {clean(f.outcome, 40)}{when}"
    if f.superseded:
        # Stopped on purpose (signal, pause, a more drastic level): the planner goes on.
        return Ok, f"last run interrupted{when}"
    if f.still_failing:
        return Critical, f"last run failed{when}, still failing: {_names(f.still_failing)}"
    return Ok, f"last run failed{when}, checks recovered"


def _failing(n: int, resource: Any) -> str:
    if not n:
        return ""
    level = getattr(resource, "report", {}).get("required_level")
    return f"{n} failing check{'s' if n != 1 else ''}" + (f" (level {clean(level, 80)})" if level else "")


def contexts(age: Tuple[Any, Any], backlog: Tuple[Any, Any]) -> List[nagiosplugin.Context]:
    """The contexts of check_escalator: (warning, critical) ranges for age and backlog."""
    return [
        _Scalar("backlog", lambda n, _: f"{n} pending", *backlog),
        # Seconds, not ago(): this is the value -w/-c are written in.
        _Scalar("oldest_age", lambda s, _: f"oldest {s}s" if s else "", *age),
        _Scalar("failing", _failing),
        _Scalar("quiescence_left", lambda s, _: f"quiescence {ago(s)} left" if s else ""),
        _Scalar("fact", lambda n, _: ""),
        _Item("collector", _collector),
        _Item("holds", _holds),
        _Item("last_run", _last_run),
    ]
