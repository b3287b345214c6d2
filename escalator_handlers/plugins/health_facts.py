"""The facts check_escalator judges: what escalator's own files (or etcd) say now.

:class:`EscalatorHealth` is the nagiosplugin ``Resource``: it loads the config
leniently (an invalid file must not blind the check while the collector runs
its last good one), asks :func:`escalator_handlers.status.gather` for the
read-only status report -- local spool and journal, or etcd with
``cluster:`` -- and turns it into metrics whose values are the frozen facts
below.  Judging them (states, status line words) is :mod:`.health`'s part.
"""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import nagiosplugin

from .. import defaults
from ..status import last_run
from ..display import safe
from ..display import duration

__all__ = ["EscalatorHealth", "CollectorFacts", "HandlerFacts", "handler_facts", "HoldFacts", "LastRunFacts", "ApprovalFacts", "Waiting",
           "clean", "ago", "deadline", "collector_needed", "approval_facts"]


def clean(text: Any, limit: int = 200) -> str:
    """Printable, single line, bounded; ``|`` escaped (Nagios reads it as perfdata)."""
    return safe("" if text is None else text, limit).replace("|", "\\x7c")


def ago(seconds: float) -> str:
    """A short duration: 45s, 5m, 3h, 2d."""
    return duration(seconds, coarse=True)


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
class HandlerFacts:
    """``--nagios-log``: the escalator handler runs Nagios logged, and those that recorded nothing."""

    log: Optional[str]             # None: not asked to look
    judged: int = 0
    lost: Tuple[str, ...] = ()     # "host/service STATE TYPE at ISO time", oldest first
    problem: str = ""              # the log cannot be read


@dataclass(frozen=True)
class HoldFacts:
    paused: bool
    pause_reason: str
    levels: Tuple[Tuple[str, str], ...]
    hosts: Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class GapFacts:
    """``escalator listen``: the gap open now (it cannot hear Icinga), if any."""

    open_since: Optional[float] = None
    reason: str = ""


@dataclass(frozen=True)
class LastRunFacts:
    outcome: Optional[str]       # None: no run in the journal's recent records
    age: Optional[float]
    any_records: bool            # only skipped runs recently (vs none at all)
    superseded: bool
    still_failing: Tuple[str, ...]
    running: Optional[str] = None  # the run in progress, e.g. "levels vm, deploy for 4s"


@dataclass(frozen=True)
class Waiting:
    """One run waiting for a person's answer (``escalator approve|deny ID``)."""

    id: str
    levels: Tuple[str, ...]
    hosts: Tuple[str, ...]
    waited: float                # seconds since it asked
    left: float                  # seconds until its timeout denies it
    expires: float               # when, as a time stamp


@dataclass(frozen=True)
class ApprovalFacts:
    waiting: Tuple[Waiting, ...]   # oldest first


def approval_facts(report: Dict[str, Any]) -> ApprovalFacts:
    """The open requests nobody answered yet and whose timeout has not come.

    An approved one waits for the collector, not a person; one past its
    timeout is denied by the collector's next pass (the collector item speaks
    when no collector is there to do it).
    """
    now = float(report["time"])
    waiting = []
    for a in report.get("approvals") or ():
        expires = float(a.get("expires") or 0)
        if a.get("approved_by") or expires <= now:
            continue
        asked = float(a.get("asked") or now)
        hosts = sorted({h for hs in (a.get("targets") or {}).values() for h in hs})
        waiting.append(Waiting(str(a["id"]), tuple(a.get("levels") or ()), tuple(hosts),
                               max(0.0, now - asked), expires - now, expires))
    return ApprovalFacts(tuple(sorted(waiting, key=lambda w: -w.waited)))


def _collector_facts(report: Dict[str, Any], dead_after: float) -> CollectorFacts:
    nxt = report.get("next") or {}
    return CollectorFacts(
        running=bool(report["collector"]["running"]), pid=report["collector"].get("pid"),
        pending=int(report["spool"]["pending"]), oldest_age=float(report["spool"]["oldest_age"] or 0.0),
        next_in=nxt.get("in"), run_due=bool(nxt.get("run")), dead_after=dead_after,
        cluster="leader" in report, leader=report.get("leader"),
        missing=tuple(report.get("missing") or ()), config_problem=report.get("config_problem") or "")


def _gap_facts(report: Dict[str, Any]) -> GapFacts:
    gap = (report.get("gaps") or {}).get("open")
    if not gap:
        return GapFacts()
    return GapFacts(float(gap.get("start") or report["time"]), str(gap.get("reason") or ""))


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
                 clock: Callable[[], float], nagios_log: Optional[str] = None,
                 handler_options: Optional[Dict[str, Any]] = None):
        self.config_path = config_path
        self.nagios_log = nagios_log
        self.handler_options = handler_options or {}
        self.handlers = HandlerFacts(None)
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
        if self.nagios_log:
            self.phase = f"reading {self.nagios_log}"
            self.handlers = handler_facts(cfg, self.nagios_log, self.clock(), self.handler_options)
        if op.problems:
            self.report["config_problem"] = f"config {cfg.source} is invalid: {op.problems[0]}"
        self.dead_after = self.dead_after_option if self.dead_after_option is not None \
            else defaults.DEAD_AFTER_QUIESCENCES * cfg.quiescence + defaults.DEAD_AFTER_EXTRA

    def _metrics(self) -> List[nagiosplugin.Metric]:
        r, limits = self.report, self.config.limits
        approvals = approval_facts(r)
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
            m("listen", _gap_facts(r), context="listen"),
            m("approvals", approvals, context="approvals"),
            m("approvals_waiting", len(approvals.waiting), min=0, context="fact"),
            m("approval_age", int(approvals.waiting[0].waited) if approvals.waiting else 0, "s", min=0,
              context="approval_age"),
            m("handler", self.handlers, context="handler"),
        ]


def handler_facts(config: Any, path: str, now: float, options: Dict[str, Any]) -> HandlerFacts:
    """Nagios's ``EVENT HANDLER`` lines in ``path`` against the events in the spool and journal."""
    from .. import kinds, spool_reader, storage
    from ..event import iso_time
    from .handler_runs import check

    try:
        events = storage.recent(config, (kinds.EVENT,), limit=20000)
        try:
            events += [r for r in spool_reader.pending(config.spool) if r.get("kind", kinds.EVENT) == kinds.EVENT]
        except OSError:
            pass  # an unreadable spool is the collector item's news
        judged, lost = check(path, events, now, **options)
    except OSError as exc:
        return HandlerFacts(path, problem=f"cannot read {clean(path, 300)}: {exc.strerror or exc}")
    return HandlerFacts(path, judged, tuple(f"{r.label} at {iso_time(r.time)}" for r in lost))


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


