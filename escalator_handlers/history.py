"""``escalator history``: what really happened, read back from the journal.

Replaying a journal re-plans; this shows what was done: each run with its
steps (host, exit, duration, output tail), how it ended and its verdict,
skipped runs and why, notifications, and what operators did (pause, hold,
approve...).  Rotated journals are read too, oldest first:
``journal.jsonl.N.gz`` ... ``journal.jsonl.1``, then ``journal.jsonl``.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import kinds
from .errors import EscalatorError
from .display import rollout_line, rollout_verdict, safe, when

#: Operator and bookkeeping records shown as they are.
OTHER_KINDS = frozenset((kinds.PAUSE, kinds.RESUME, kinds.HOLD, kinds.RELEASE, kinds.APPROVAL, kinds.APPROVE,
                         kinds.DENY, kinds.CONFIG, kinds.FEEDBACK, kinds.REJECTED, kinds.CLOCK, kinds.GAP))
#: Output tail shown per step in text (the journal keeps 4 KiB).
TAIL = 160


def journal_files(path: str) -> List[str]:
    """The journal and its rotations, oldest first."""
    d, base = os.path.split(os.path.abspath(path))
    rot = re.compile(re.escape(base) + r"\.(\d+)(\.gz)?$")
    found: List[Tuple[int, str]] = []
    try:
        names = os.listdir(d)
    except OSError:
        names = []
    for name in names:
        m = rot.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(d, name)))
    files = [p for _, p in sorted(found, reverse=True)]
    if os.path.exists(path):
        files.append(path)
    return files


def read_all(path: str) -> Iterator[dict]:
    """Every readable record of the journal and its rotations (unreadable lines skipped)."""
    for name in journal_files(path):
        try:
            f = gzip.open(name, "rb") if name.endswith(".gz") else open(name, "rb")
            with f:
                for raw in f:
                    try:
                        rec = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and "kind" in rec:
                        yield rec
        except (OSError, EOFError) as exc:
            raise EscalatorError(f"cannot read journal {name}: {getattr(exc, 'strerror', None) or exc}") from None


@dataclass(frozen=True)
class Filter:
    host: Optional[str] = None      # shell glob
    level: Optional[str] = None
    since: Optional[float] = None
    until: Optional[float] = None

    def time_ok(self, t: Any) -> bool:
        try:
            t = float(t)
        except (TypeError, ValueError):
            return False
        return (self.since is None or t >= self.since) and (self.until is None or t <= self.until)

    def host_ok(self, hosts: Sequence[Any]) -> bool:
        return self.host is None or any(isinstance(h, str) and fnmatch.fnmatchcase(h, self.host) for h in hosts)


def entries(records: Iterator[dict], flt: Filter) -> List[dict]:
    """Runs (with their steps, end and verdict), notifications and operator records."""
    out: List[dict] = []
    runs: Dict[str, dict] = {}
    last_notify: Optional[dict] = None
    for rec in records:
        kind = rec.get("kind")
        rid = str(rec.get("run")) if rec.get("run") is not None else None
        if kind == kinds.START and rid:
            entry = _run_entry(rec, rid, rec.get("time"), bool(rec.get("dry_run")))
            for k in ("requested_by", "request_reason", "rollout", "wave", "waves", "gap"):
                if rec.get(k):
                    entry[k] = rec[k]
            runs[rid] = entry
            out.append(entry)
        elif kind == kinds.STEP:
            step = {k: rec.get(k) for k in ("time", "level", "step", "host", "exit", "duration", "output",
                                             "command", "error", "skipped") if rec.get(k) is not None}
            if rid and rid in runs:
                runs[rid]["steps"].append(step)
            elif rec.get("level") == kinds.NOTIFY_LEVEL and last_notify is not None:
                last_notify.setdefault("steps", []).append(step)
        elif kinds.is_skip(rec):
            out.append({"time": rec.get("time"), "kind": kinds.SKIPPED, "levels": rec.get("levels") or [],
                        "reason": rec.get("reason"), "checks": rec.get("checks") or []})
            if rec.get("gap"):
                out[-1]["gap"] = rec["gap"]
        elif kind == kinds.RUN:
            entry = runs.get(rid or "")
            if entry is None:  # a run whose start is in a journal no longer kept
                entry = _run_entry(rec, rid, rec.get("started", rec.get("time")), rec.get("outcome") == "dry-run")
                out.append(entry)
                if rid:
                    runs[rid] = entry
            entry.update(outcome=rec.get("outcome"), ended=rec.get("time"),
                         quiescence_until=rec.get("quiescence_until"))
            for k in ("reason", "superseded", "interrupted"):
                if rec.get(k):
                    entry[k] = rec[k]
        elif kind == kinds.VERDICT:
            entry = runs.get(str(rec.get("run_id")))
            v = {k: rec.get(k) for k in ("time", "converged", "failing", "attempt", "exhausted", "level",
                                         "rollout", "wave", "waves", "converged_hosts", "failed_hosts",
                                         "rollout_outcome")
                 if rec.get(k) is not None}
            if entry is not None:
                entry["verdict"] = v
            else:
                out.append(dict(v, kind=kinds.VERDICT, run=rec.get("run")))
        elif kind == kinds.NOTIFY:
            last_notify = {"time": rec.get("time"), "kind": kinds.NOTIFY, "reason": rec.get("reason"),
                           "summary": rec.get("summary")}
            out.append(last_notify)
        elif kind == kinds.ROLLOUT:
            out.append(dict(rec))
        elif kind in OTHER_KINDS:
            out.append(dict(rec))
    return [e for e in out if _wanted(e, flt)]


def _run_entry(rec: dict, rid: Optional[str], time: Any, dry_run: bool) -> dict:
    """A run's entry, from its ``start`` record (or its ``run`` record, when the start was rotated away)."""
    return {"time": time, "kind": kinds.RUN, "run": rid, "levels": rec.get("levels") or [],
            "targets": rec.get("targets") or {}, "checks": rec.get("checks") or [],
            "attempt": rec.get("attempt"), "dry_run": dry_run,
            "outcome": None, "ended": None, "steps": [], "verdict": None}


def _hosts(e: dict) -> List[Any]:
    hosts: List[Any] = [h for hs in (e.get("targets") or {}).values() for h in hs]
    hosts += [c.get("host") for c in e.get("checks") or () if isinstance(c, dict)]
    hosts += [s.get("host") for s in e.get("steps") or ()]
    if e.get("host"):
        hosts.append(e["host"])
    for k in ("hosts", "done", "not_started"):  # a rollout's hosts
        hosts += list(e.get(k) or ())
    return hosts


def _wanted(e: dict, flt: Filter) -> bool:
    if not flt.time_ok(e.get("time")):
        return False
    if flt.level is not None:
        if e["kind"] in (kinds.RUN, kinds.SKIPPED):
            if flt.level not in (e.get("levels") or ()):
                return False
        elif e.get("level") != flt.level:
            return False
    if flt.host is not None:
        if e["kind"] == kinds.NOTIFY:
            return flt.host_ok(re.findall(r"[\w.\-]+", str(e.get("summary") or "")))
        if not flt.host_ok(_hosts(e)):
            return False
    return True


def text_lines(e: dict) -> List[str]:
    """An entry for a person: a head line, then indented details."""
    t = when(e.get("time"))
    pad = " " * (len(t) + 2)
    kind = e["kind"]
    if kind == kinds.RUN:
        levels = ", ".join(safe(x) for x in e.get("levels") or ())
        targets = "; ".join(f"{safe(k)}: {', '.join(safe(h) for h in v) or '-'}"
                            for k, v in (e.get("targets") or {}).items())
        who = f" (asked for by {safe(e['requested_by'])}" + (
            f": {safe(e['request_reason'])})" if e.get("request_reason") else ")") if e.get("requested_by") else ""
        wave = f" (rollout wave {safe(e['wave'])} of {safe(e.get('waves'))})" if e.get("wave") else ""
        out = [f"{t}  {'DRY RUN' if e.get('dry_run') else 'RUN'}  levels {levels}{who}{wave}  "
               f"[targets {targets or '-'}]"]
        if e.get("checks"):
            asked = ", ".join(f"{safe(c.get('host'))}{'/' + safe(c['service']) if c.get('service') else ''} "
                              f"{safe(c.get('state'))} -> {safe(c.get('level'))}"
                              for c in e["checks"][:5] if isinstance(c, dict))
            more = len(e["checks"]) - 5
            out.append(f"{pad}asked by {asked}" + (f" and {more} more" if more > 0 else ""))
        out += _gap_note(e, pad)
        for s in e.get("steps") or ():
            out.append(pad + step_line(s))
        out.append(pad + end_line(e))
        return out
    if kind == kinds.SKIPPED:
        return [f"{t}  SKIPPED  levels {', '.join(safe(x) for x in e.get('levels') or ())}: "
                f"{safe(e.get('reason'), 300)}"] + _gap_note(e, pad)
    if kind == kinds.GAP:
        from .planning.gaps import describe, gap_fields

        word = "GAP" if e.get("outcome") == "closed" else "GAP OPEN"
        return [f"{t}  {word}  escalator could not hear Icinga {safe(describe(gap_fields(e)), 400)}"]
    if kind == kinds.NOTIFY:
        out = [f"{t}  NOTIFY  {safe(e.get('reason'))}: {safe(e.get('summary'), 300)}"]
        out.extend(pad + step_line(s) for s in e.get("steps") or ())
        return out
    if kind == kinds.ROLLOUT:
        return [f"{t}  ROLLOUT  {rollout_line(e)}"]
    if kind == kinds.VERDICT:
        return [f"{t}  VERDICT  run of {when(e.get('run'))}: {'converged' if e.get('converged') else 'NOT converged'}"]
    who = f" by {safe(e['user'])}" if e.get("user") else ""
    what = f" host {safe(e['host'])}" if e.get("host") else (f" level {safe(e['level'])}" if e.get("level") else "")
    reason = f": {safe(e.get('reason'), 300)}" if e.get("reason") else ""
    return [f"{t}  {str(kind).upper()}{what}{who}{reason}"]


def _gap_note(e: dict, pad: str) -> List[str]:
    gap = e.get("gap")
    if not isinstance(gap, dict):
        return []
    return [f"{pad}decided during a gap (escalator could not hear Icinga since {when(gap.get('start'))}: "
            f"{safe(gap.get('reason'), 300)})"]


def step_line(s: dict) -> str:
    on = f" on {safe(s['host'])}" if s.get("host") else ""
    if s.get("skipped"):
        return f"step {safe(s.get('level'))} {safe(s.get('step'))}{on}: skipped: {safe(s['skipped'], 300)}"
    if s.get("exit") is None and s.get("error") is None:
        return f"step {safe(s.get('level'))} {safe(s.get('step'))}{on}: would run {safe(s.get('command'), 300)}"
    else:
        res = f"exit {s.get('exit')}" if s.get("exit") is not None else "no exit status"
    err = f" ({safe(s['error'])})" if s.get("error") else ""
    dur = f" in {s.get('duration', 0)}s" if s.get("duration") else ""
    tail = str(s.get("output") or "").strip().splitlines()
    out = f": {safe(tail[-1], TAIL)}" if tail else ""
    return f"step {safe(s.get('level'))} {safe(s.get('step'))}{on}: {res}{err}{dur}{out}"


def end_line(e: dict) -> str:
    if e.get("outcome") is None:
        return "not ended (running, or its collector died and none has started since)"
    line = f"ended {when(e.get('ended'))}: {safe(e['outcome'])}"
    if e.get("reason"):
        line += f": {safe(e['reason'], 300)}"
    v = e.get("verdict")
    if v is not None:
        verdict = "converged" if v.get("converged") else \
            "NOT converged, still failing: " + ", ".join(safe(x) for x in (v.get("failing") or ())[:5])
        line += f"; verdict {when(v.get('time'))}: {verdict}"
        if v.get("exhausted"):
            line += f"; level exhausted ({safe(v['exhausted'])})"
        if v.get("rollout"):
            line += "; " + rollout_verdict(v)
    elif e.get("outcome") in ("ok", "dry-run") and not e.get("superseded"):
        line += f"; verdict due {when(e.get('quiescence_until'))}" if e.get("quiescence_until") else ""
    return line
