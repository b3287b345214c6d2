"""The escalator's own health, judged for check_escalator (nagiosplugin contexts).

:mod:`.health_facts` gathers the facts (:class:`EscalatorHealth`, the
resource); the contexts here judge them:

- ``backlog`` and ``oldest_age``: spool entries not yet collected and the age
  of the oldest, against ranges (``--backlog-*`` and ``-w``/``-c``);
- ``collector``: CRITICAL when events have waited longer than ``dead_after``
  with no collector holding the lock, or when the planner has work due now
  and nobody is there to do it; WARNING when work is scheduled for later
  and no collector waits for it;
- ``approvals``: WARNING while a run waits for a person's approval (escalator
  is healthy; a person must answer before the timeout denies the run);
  ``approval_age``, the oldest one's wait in seconds, against
  ``--approval-critical``;
- ``holds``: WARNING while paused or while levels or hosts are held;
- ``listen``: WARNING while a gap is open (``escalator listen`` cannot hear
  Icinga: not running, not connected, or its stream silent);
- ``last_run``: CRITICAL when the last run failed and checks it was for are
  still failing;
- ``handler`` (with ``--nagios-log``): CRITICAL when Nagios logged a run of
  escalator's event handler that recorded no event (events are being lost),
  WARNING when the log cannot be read;
- ``failing``, ``quiescence_left``, ``runs_last_hour``, ``approvals_waiting``:
  facts for the status line and perfdata.

Each context's Result hint is its status line item (see
:class:`escalator_handlers.plugins.check_escalator.HealthSummary` for the order).
All text that came from monitoring or an operator goes through
:func:`clean`: printable, single line, bounded, no ``|``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import nagiosplugin
from nagiosplugin.state import Critical, Ok, Warn

from ..event import iso_time
from .health_facts import (ApprovalFacts, CollectorFacts, EscalatorHealth, GapFacts, HandlerFacts, HoldFacts,
                           LastRunFacts, ago, approval_facts, clean, deadline)

__all__ = ["EscalatorHealth", "contexts", "clean", "ago", "deadline", "approval_lines", "ORDER", "PERF_ORDER",
           "LIST_LIMIT"]

#: Items of the status line, in the order they appear when all are OK.
ORDER = ("collector", "handler", "listen", "approvals", "backlog", "oldest_age", "failing", "quiescence_left", "holds",
         "last_run", "runs_last_hour", "approval_age")
#: Perfdata order: the metrics an operator graphs, most telling first (new ones
#: go last, so graphs built on the earlier order keep their columns).
PERF_ORDER = ("backlog", "oldest_age", "runs_last_hour", "failing", "quiescence_left",
              "approvals_waiting", "approval_age")
#: How many names the status line spells out before "and N more".
NAMES = 3
#: Long output lines per list (Nagios keeps 8 kB of plugin output at most).
LIST_LIMIT = 20


def _names(names: Sequence[str], what: str = "") -> str:
    shown = ", ".join(clean(n, 80) for n in names[:NAMES])
    more = len(names) - NAMES
    return shown + (f" and {more} more{what}" if more > 0 else "")


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


def _listen(f: GapFacts) -> Tuple[Any, str]:
    if f.open_since is None:
        return Ok, ""
    return Warn, f"gap: cannot hear Icinga since {iso_time(f.open_since)}: {clean(f.reason, 300)}"


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


def _handler(f: HandlerFacts) -> Tuple[Any, str]:
    if f.log is None:
        return Ok, ""
    if f.problem:
        return Warn, f"cannot tell whether the event handler records: {f.problem}"
    if f.lost:
        n = len(f.lost)
        return Critical, (f"event handler ran {n} time{'s' if n != 1 else ''} without recording an event "
                          f"(events lost; run it as the Nagios user to see why): {_names(f.lost[::-1])}")
    return Ok, ""


def _approvals(f: ApprovalFacts) -> Tuple[Any, str]:
    if not f.waiting:
        return Ok, ""
    w, n = f.waiting[0], len(f.waiting)
    more = f", and {n - 1} more" if n > 1 else ""
    return Warn, (f"{n} run{'s' if n != 1 else ''} waiting for approval: {clean(w.id, 40)} "
                  f"(levels {', '.join(clean(lv, 80) for lv in w.levels)}) asked {ago(w.waited)} ago, "
                  f"times out in {ago(w.left)}{more}")


def approval_lines(report: Dict[str, Any]) -> List[str]:
    """Long output: each open request, and the command that answers one still waiting."""
    now, out = float(report["time"]), []
    waiting = {w.id for w in approval_facts(report).waiting}
    for a in list(report.get("approvals") or ())[:LIST_LIMIT]:
        rid = clean(a["id"], 40)
        hosts = sorted({h for hs in (a.get("targets") or {}).values() for h in hs})
        what = (f"levels {', '.join(clean(lv, 80) for lv in a.get('levels') or ())} for "
                f"{', '.join(clean(h, 80) for h in hosts[:NAMES]) or '(no targets)'}"
                + (f" and {len(hosts) - NAMES} more" if len(hosts) > NAMES else ""))
        expires = float(a.get("expires") or 0)
        if a.get("approved_by"):
            out.append(f"approval: {rid} approved by {clean(a['approved_by'], 80)}: {what} "
                       "(the collector starts it)")
        elif a["id"] in waiting:
            out.append(f"approval: {rid} waiting {ago(now - float(a.get('asked') or now))}: {what}; "
                       f"times out in {ago(expires - now)} ({iso_time(expires)}), then denied; "
                       f"answer with `escalator approve {rid}` or `escalator deny {rid}`")
        else:
            out.append(f"approval: {rid} timed out {ago(now - expires)} ago: {what} "
                       "(the collector denies it on its next pass)")
    return out


def _failing(n: int, resource: Any) -> str:
    if not n:
        return ""
    level = getattr(resource, "report", {}).get("required_level")
    return f"{n} failing check{'s' if n != 1 else ''}" + (f" (level {clean(level, 80)})" if level else "")


def contexts(age: Tuple[Any, Any], backlog: Tuple[Any, Any],
             approval_critical: Any = None) -> List[nagiosplugin.Context]:
    """The contexts of check_escalator: (warning, critical) ranges for age and backlog,
    the critical range for the age of the oldest run waiting for approval."""
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
        _Item("listen", _listen),
        _Item("approvals", _approvals),
        _Item("handler", _handler),
        # Any wait is WARNING already (the item above); only CRITICAL is a range.
        _Scalar("approval_age", lambda s, _: "", None, approval_critical),
    ]
