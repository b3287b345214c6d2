"""What people read: escaped text, times, durations and one line per journal record.

Every piece of text that came from monitoring or a step is escaped, so a
hostile check output cannot forge a line or send terminal escapes.  Every
time shown to a person goes through :func:`iso`: ISO 8601 with its zone, UTC
(``Z``, as ``event.iso_time`` writes it) unless the operator asked for local
time with ``escalator --local`` or ``ESCALATOR_LOCAL_TIME=1``.  Time options
are read by ``event.parse_time``.  Records keep epoch seconds.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

#: Set to 1 (or yes/true) to show local times with their UTC offset instead of UTC.
LOCAL_ENV = "ESCALATOR_LOCAL_TIME"

_local: Optional[bool] = None  # set once by the command line (--local); None = ask the environment


def use_local(flag: Optional[bool]) -> None:
    """The command line's choice (``--local``); None falls back to $ESCALATOR_LOCAL_TIME.

    A process-wide switch on purpose: presentation is chosen once per command,
    and threading a flag through every formatter would change nothing else.
    """
    global _local
    _local = flag


def local_wanted() -> bool:
    if _local is not None:
        return _local
    return os.environ.get(LOCAL_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def iso(t: Any, local: Optional[bool] = None) -> str:
    """``2026-11-29T09:38:11Z`` (or ``2026-11-29T10:38:11+01:00`` in local time).

    Whole seconds: a person reading a timeline needs no microseconds, and
    ``--json`` keeps the exact epoch value anyway.
    """
    from .event import iso_time

    try:
        secs = int(float(t))
        if local if local is not None else local_wanted():
            return datetime.fromtimestamp(secs, timezone.utc).astimezone().isoformat()
        return iso_time(secs)
    except (TypeError, ValueError, OverflowError, OSError):
        return "????-??-??T??:??:??Z"


def duration(seconds: Any, coarse: bool = False) -> str:
    """A short duration for people: 4s, 2m05s, 1h02m, 3d04h; ``coarse``: one unit, 45s, 5m, 3h, 2d
    (check_escalator's status line, where every character counts)."""
    try:
        f = max(0.0, float(seconds))
    except (TypeError, ValueError, OverflowError):
        return "?"
    if coarse:
        for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172800, "h", 3600), (float("inf"), "d", 86400)):
            if f < limit:
                return f"{round(f / size)}{unit}"
    s = int(round(f))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"

from . import kinds


def safe(text: Any, limit: int = 200) -> str:
    """Printable, single-line, bounded."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape(c) for c in s)


def _escape(c: str) -> str:
    # A byte that was not UTF-8 arrives as a lone surrogate (surrogateescape):
    # show the byte, \xff, not Python's \udcff.
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xdc00:02x}"
    return repr(c)[1:-1]


def plural(n: int, word: str, many: str = "") -> str:
    """``1 check``, ``2 checks``: counts in correct English."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def when(t: Any) -> str:
    """A time for people: ISO 8601 with its zone (see ``times.iso``)."""
    return iso(t)


def span(seconds: float) -> str:
    """A duration as a person writes it in a config: 30s, 10m, 2h (or 90s)."""
    s = int(round(seconds))
    for unit, size in (("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _check(rec: Mapping[str, Any]) -> str:
    svc = rec.get("service")
    return safe(rec.get("host")) + (f"/{safe(svc)}" if svc else "")


def _downtime_change(rec: Mapping[str, Any]) -> str:
    """What a downtime-only event did: the log's word and the depth it left."""
    depth = rec.get("downtime") or 0
    word = rec.get("output")
    if word == "STARTED":
        return "downtime started" + (f" (now {depth})" if depth > 1 else "")
    if word in ("STOPPED", "CANCELLED"):
        what = f"downtime {word.lower()}"
        return what + (f" (still {depth})" if depth else ": out of scheduled downtime")
    return "in scheduled downtime" if depth else "out of scheduled downtime"


def _hosts(hosts: Any, limit: int = 10) -> str:
    hs = [safe(h) for h in hosts or ()]
    return (", ".join(hs[:limit]) + (f" and {len(hs) - limit} more" if len(hs) > limit else "")) or "none"


def rollout_line(rec: Mapping[str, Any]) -> str:
    """A ``rollout`` record for a person (replay, the log, ``history``)."""
    level = safe(rec.get("level"))
    if rec.get("outcome") == "begin":
        return (f"level {level} on {plural(len(rec.get('hosts') or ()), 'host')} in {safe(rec.get('waves'))} waves "
                f"(canary {safe(rec.get('canary'))}, then {safe(rec.get('wave_size'))} at a time, "
                f"max_failed {safe(rec.get('max_failed'))}): {_hosts(rec.get('hosts'))}")
    return (f"level {level} {safe(rec.get('outcome'))} at wave {safe(rec.get('wave'))} of {safe(rec.get('waves'))}"
            f": {safe(rec.get('reason'), 200)}; done {_hosts(rec.get('done'))}; converged "
            f"{_hosts(rec.get('converged'))}; failed {_hosts(rec.get('failed'))}; not started "
            f"{_hosts(rec.get('not_started'))}")


def rollout_verdict(rec: Mapping[str, Any]) -> str:
    """What a wave's verdict says about its hosts."""
    last = rec.get("wave") is not None and rec.get("wave") == rec.get("waves")
    out = {"continue": "last wave done" if last else "next wave",
           "stopped": "rollout STOPPED"}.get(str(rec.get("rollout_outcome")), "")
    return (f"rollout wave {safe(rec.get('wave'))}: converged {_hosts(rec.get('converged_hosts'))}; "
            f"failed {_hosts(rec.get('failed_hosts'))}" + (f"; {out}" if out else ""))


def _gap(rec: Mapping[str, Any]) -> str:
    gap = rec.get("gap")
    if not isinstance(gap, Mapping):
        return ""
    return f" (decided during a gap: escalator could not hear Icinga since {when(gap.get('start'))})"


def format_record(rec: Mapping[str, Any]) -> str:
    kind = rec.get("kind", kinds.EVENT)
    t = when(rec.get("time"))
    if kind == kinds.EVENT:
        dt = " (in downtime)" if rec.get("downtime") else ""
        if not rec.get("state"):
            return f"{t}  event    {_check(rec)} {_downtime_change(rec)}"
        state = rec["state"]
        return (f"{t}  event    {_check(rec)} {safe(state)} {safe(rec.get('state_type', ''))} "
                f"{safe(rec.get('attempt', ''))}{dt}: {safe(rec.get('output', ''), 80)}")
    if kind == kinds.RUN:
        outcome = rec.get("outcome")
        levels = ", ".join(safe(x) for x in rec.get("levels", ()))
        if outcome == kinds.SKIPPED:
            return f"{t}  SKIPPED  levels {levels}: {safe(rec.get('reason'), 300)}{_gap(rec)}"
        line = f"{t}  RUN END  {outcome}: levels {levels}"
        if rec.get("reason"):
            line += f": {safe(rec['reason'], 300)}"
        if rec.get("quiescence_until") and not rec.get("superseded"):
            line += f"; quiet until {when(rec['quiescence_until'])}"
        return line
    if kind == kinds.START:
        levels = ", ".join(safe(x) for x in rec.get("levels", ()))
        mode = "dry-run" if rec.get("dry_run") else "starting"
        targets = "; ".join(f"{safe(k)}: {', '.join(safe(h) for h in v) or '-'}"
                            for k, v in (rec.get("targets") or {}).items())
        line = f"{t}  RUN      {mode}: levels {levels} [targets {targets}]"
        if rec.get("wave"):
            line += f" (rollout wave {safe(rec['wave'])} of {safe(rec.get('waves'))})"
        if rec.get("escalated"):
            line += " (escalated)"
        line += _gap(rec)
        if rec.get("checks"):
            asked = ", ".join(f"{_check(c)} {safe(c.get('state'))} -> {safe(c.get('level'))}"
                              for c in rec["checks"][:5])
            more = len(rec["checks"]) - 5
            line += f"\n{'':{len(t) + 2}}asked by {asked}" + (f" and {more} more" if more > 0 else "")
        return line
    if kind == kinds.STEP:
        host = f" on {safe(rec['host'])}" if rec.get("host") else ""
        if rec.get("dry_run"):
            return f"{t}    would  {safe(rec.get('level'))} {safe(rec.get('step'))}{host}: {safe(rec.get('command'), 300)}"
        if rec.get("skipped"):
            return f"{t}    step   {safe(rec.get('level'))} {safe(rec.get('step'))}{host}: skipped: {safe(rec['skipped'], 300)}"
        res = f"exit {rec.get('exit')}" if rec.get("exit") is not None else "no exit status"
        err = f" ({safe(rec['error'])})" if rec.get("error") else ""
        return (f"{t}    step   {safe(rec.get('level'))} {safe(rec.get('step'))}{host}: {res}{err} "
                f"in {rec.get('duration', 0)}s: {safe(rec.get('command'), 120)}")
    if kind == kinds.VERDICT:
        verdict = "converged" if rec.get("converged") else "NOT converged"
        extra = ""
        if not rec.get("converged"):
            extra = f"; still failing: {', '.join(safe(x) for x in rec.get('failing', ())[:5])}"
            extra += f" (attempt {rec.get('attempt')})" if rec.get("attempt") else ""
            if rec.get("exhausted"):
                extra += f"; level exhausted: {rec['exhausted']}"
        if rec.get("rollout"):
            extra += "; " + rollout_verdict(rec)
        return f"{t}  VERDICT  run of {when(rec.get('run'))} at level {safe(rec.get('level'))}: {verdict}{extra}"
    if kind == kinds.NOTIFY:
        unsent = f" (NOT sent: {safe(rec['undelivered'])})" if rec.get("undelivered") else ""
        return f"{t}  NOTIFY   {safe(rec.get('reason'))}{unsent}: {safe(rec.get('summary'), 300)}"
    if kind in (kinds.APPROVAL, kinds.APPROVE, kinds.DENY):
        rid = safe(rec.get("approval"))
        if kind != kinds.APPROVAL:
            by = "escalator (timed out)" if rec.get("timeout") else safe(rec.get("user"))
            return f"{t}  {kind.upper():<8} approval {rid} by {by}" + (
                f": {safe(rec['reason'], 300)}" if rec.get("reason") else "")
        if rec.get("outcome", "requested") != "requested":
            return f"{t}  APPROVAL {rid} {safe(rec.get('outcome'))}: {safe(rec.get('reason'), 300)}"
        levels = ", ".join(safe(x) for x in rec.get("levels", ()))
        return f"{t}  APPROVAL {rid} asked for levels {levels}; expires {when(rec.get('expires'))}"
    if kind == kinds.ROLLOUT:
        return f"{t}  ROLLOUT  {rollout_line(rec)}"
    if kind == kinds.LEADER:
        return f"{t}  LEADER   node {safe(rec.get('node'))} leads (fencing token {safe(rec.get('token'))})"
    if kind == kinds.GAP:
        from .planning.gaps import describe, gap_fields

        word = "GAP     " if rec.get("outcome") == "closed" else "GAP OPEN"
        return f"{t}  {word} escalator could not hear Icinga {safe(describe(gap_fields(rec)), 400)}"
    if kind == kinds.ACK:
        what = f"acknowledged by {safe(rec.get('author'))}: {safe(rec.get('comment'), 200)}" \
            if rec.get("outcome") == "set" else "acknowledgement removed"
        return f"{t}  ACK      {_check(rec)} {what}"
    who = f" host {safe(rec['host'])}" if rec.get("host") else (
        f" level {safe(rec['level'])}" if rec.get("level") else "")
    by = f" by {safe(rec['user'])}" if rec.get("user") else ""
    reason = f": {safe(rec.get('reason'), 300)}" if rec.get("reason") else ""
    return f"{t}  {kind.upper():<8}{who}{by}{reason}"


#: How loud each record kind is in the collector's log (stderr, the systemd journal):
#: decisions at INFO (shown by default), events at DEBUG (``collect -v``).  The
#: logging levels by number: only the collector logs, and it imports logging itself.
_DEBUG, _INFO, _WARNING = 10, 20, 30
_LOUD = {kinds.EVENT: _DEBUG, kinds.REJECTED: _WARNING, kinds.NOTIFY: _WARNING, kinds.CLOCK: _WARNING}


def log_level(rec: Mapping[str, Any]) -> int:
    kind = rec.get("kind", kinds.EVENT)
    if kind == kinds.STEP and rec.get("exit") not in (0, None) or rec.get("error"):
        return _WARNING
    if kind == kinds.RUN and rec.get("outcome") == "failed" or kind == kinds.CONFIG and rec.get("outcome") == "rejected":
        return _WARNING
    return _LOUD.get(kind, _INFO)


def log_line(rec: Mapping[str, Any]) -> str:
    """``format_record`` on one line, without the time (the log has its own)."""
    text = format_record(rec)
    head, _, rest = text.partition("  ")
    return " ".join(part.strip() for part in rest.split("\n")) if rest else text
