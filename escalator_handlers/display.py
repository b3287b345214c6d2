"""Human-readable lines for journal records (replay timelines, status).

Every piece of text that came from monitoring or a step is escaped, so a
hostile check output cannot forge a line or send terminal escapes.
"""

from __future__ import annotations

import time
from typing import Any, Mapping


def safe(text: Any, limit: int = 200) -> str:
    """Printable, single-line, bounded."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def when(t: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t)))
    except (TypeError, ValueError, OverflowError):
        return "????-??-?? ??:??:??"


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


def format_record(rec: Mapping[str, Any]) -> str:
    kind = rec.get("kind", "event")
    t = when(rec.get("time"))
    if kind == "event":
        dt = " (in downtime)" if rec.get("downtime") else ""
        if not rec.get("state"):
            return f"{t}  event    {_check(rec)} {_downtime_change(rec)}"
        state = rec["state"]
        return (f"{t}  event    {_check(rec)} {safe(state)} {safe(rec.get('state_type', ''))} "
                f"{safe(rec.get('attempt', ''))}{dt}: {safe(rec.get('output', ''), 80)}")
    if kind == "run":
        outcome = rec.get("outcome")
        levels = ", ".join(safe(x) for x in rec.get("levels", ()))
        if outcome == "skipped":
            return f"{t}  SKIPPED  levels {levels}: {safe(rec.get('reason'), 300)}"
        line = f"{t}  RUN END  {outcome}: levels {levels}"
        if rec.get("reason"):
            line += f": {safe(rec['reason'], 300)}"
        if rec.get("quiescence_until") and not rec.get("superseded"):
            line += f"; quiet until {when(rec['quiescence_until'])}"
        return line
    if kind == "start":
        levels = ", ".join(safe(x) for x in rec.get("levels", ()))
        mode = "dry-run" if rec.get("dry_run") else "starting"
        targets = "; ".join(f"{safe(k)}: {', '.join(safe(h) for h in v) or '-'}"
                            for k, v in (rec.get("targets") or {}).items())
        line = f"{t}  RUN      {mode}: levels {levels} [targets {targets}]"
        if rec.get("escalated"):
            line += " (escalated)"
        if rec.get("checks"):
            asked = ", ".join(f"{_check(c)} {safe(c.get('state'))} -> {safe(c.get('level'))}"
                              for c in rec["checks"][:5])
            more = len(rec["checks"]) - 5
            line += f"\n{'':21}asked by {asked}" + (f" and {more} more" if more > 0 else "")
        return line
    if kind == "step":
        host = f" on {safe(rec['host'])}" if rec.get("host") else ""
        if rec.get("dry_run"):
            return f"{t}    would  {safe(rec.get('level'))} {safe(rec.get('step'))}{host}: {safe(rec.get('command'), 300)}"
        res = f"exit {rec.get('exit')}" if rec.get("exit") is not None else "no exit status"
        err = f" ({safe(rec['error'])})" if rec.get("error") else ""
        return (f"{t}    step   {safe(rec.get('level'))} {safe(rec.get('step'))}{host}: {res}{err} "
                f"in {rec.get('duration', 0)}s: {safe(rec.get('command'), 120)}")
    if kind == "verdict":
        verdict = "converged" if rec.get("converged") else "NOT converged"
        extra = ""
        if not rec.get("converged"):
            extra = f"; still failing: {', '.join(safe(x) for x in rec.get('failing', ())[:5])}"
            extra += f" (attempt {rec.get('attempt')})" if rec.get("attempt") else ""
            if rec.get("exhausted"):
                extra += f"; level exhausted: {rec['exhausted']}"
        return f"{t}  VERDICT  run of {when(rec.get('run'))} at level {safe(rec.get('level'))}: {verdict}{extra}"
    if kind == "notify":
        return f"{t}  NOTIFY   {safe(rec.get('reason'))}: {safe(rec.get('summary'), 300)}"
    who = f" host {safe(rec['host'])}" if rec.get("host") else (
        f" level {safe(rec['level'])}" if rec.get("level") else "")
    reason = f": {safe(rec.get('reason'), 300)}" if rec.get("reason") else ""
    return f"{t}  {kind.upper():<8}{who}{reason}"
