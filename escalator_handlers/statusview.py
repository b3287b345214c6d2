"""``escalator status`` as text: the report of ``status.gather`` for a person.

Laid out like ``systemctl status``: what was read (config, spool, journal),
whether the collector runs, what it is doing now (the run in progress, its
step and host, for how long), what it will do next, what is failing, and how
the last runs ended, verdict included.  Every time is ISO 8601 with its zone;
every name that came from monitoring is escaped.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

from . import kinds
from .display import duration, plural, safe, when

#: Failing checks listed in full before "and N more".
MAX_FAILING = 50
#: Last runs shown.
LAST_RUNS = 5


def _config_note(c: Mapping[str, Any]) -> str:
    """What ``operator_config.compare_with_running`` found: an invalid file, or not the one running."""
    note = ""
    if c.get("valid") is False:
        note += f" is INVALID ({plural(len(c.get('problems') or ()), 'problem')}): levels and rules unknown here"
    if c.get("differs"):
        note += (f"; the running collector obeys the version it loaded at {when(c.get('collector_loaded'))}"
                 f" ({safe(c.get('collector_path'), 400)}), not this file: fix it and send SIGHUP")
    return note


#: A step of the wall clock is shown this long after it was journalled.
CLOCK_STEP_SHOWN = 86400.0


def clock_lines(step: Any, now: float) -> List[str]:
    """The wall clock's last step (``clock`` record), for a day after it."""
    if not isinstance(step, Mapping) or not isinstance(step.get("time"), (int, float)) \
            or not isinstance(step.get("jump"), (int, float)) or now - step["time"] > CLOCK_STEP_SHOWN:
        return []
    jump = step["jump"]
    return [f"clock:       the wall clock stepped {'forward' if jump > 0 else 'back'} by {duration(abs(jump))} "
            f"(noticed {when(step['time'])}); durations under way kept the time they had left"]


def status_lines(r: Mapping[str, Any]) -> List[str]:
    out: List[str] = []
    p = r.get("paths") or {}
    c = r["collector"]
    sp = r["spool"]
    age = sp["oldest_age"]
    out.append(f"config:      {safe(p.get('config'), 400)}" + _config_note(r.get("config") or {}))
    out.append(f"spool:       {sp['pending']} pending" + (f", oldest {duration(age)}" if age is not None else "")
               + f" in {safe(p.get('spool'), 400)}")
    if sp.get("problem"):
        out.append(f"spool:       PROBLEM: {safe(sp['problem'], 400)}")
    out.append(f"journal:     {safe(p.get('journal'), 400)}"
               + (f" ({plural(r['journal_unreadable'], 'unreadable line')} skipped)"
                  if r.get("journal_unreadable") else ""))
    if "leader" in r:  # cluster: (several nodes on etcd)
        out.append(f"leader:      {safe(r['leader']) if r['leader'] else 'NONE (no node holds the lease)'}")
        seen = sorted({f"{safe(m.get('node'))} ({safe(m.get('role'))})" for m in r.get("members") or ()})
        out.append(f"members:     {', '.join(seen) or 'none'}")
        out.append(f"in etcd:     {r['etcd_pending']} forwarded, not yet journalled")
    out.append(f"collector:   {'running' + (' (pid %s)' % c['pid'] if c['pid'] else '') if c['running'] else 'not running'}")
    out.append(f"automation:  {'PAUSED: ' + safe(r['pause_reason'] or '(no reason given)') if r['paused'] else 'active'}")
    for h in r.get("holds") or ():
        who = f" by {safe(h['user'])}" if h.get("user") else ""
        until = f" until {when(h['until'])}" if h.get("until") is not None else ""
        out.append(f"held:        {safe(h['label'])}{who}{until}: {safe(h.get('reason')) or '(no reason given)'}")
    for lv, why in r["held_levels"].items():
        out.append(f"held level:  {safe(lv)}: {safe(why)}")
    ro = r.get("rollout")
    if ro and ro.get("active"):
        out.append(f"rollout:     level {safe(ro['level'])}, {safe(ro['progress'])}")
        for what in ("converged", "failed", "judging", "running", "waiting"):
            if ro.get(what):
                out.append(f"  {what + ':':<11}{', '.join(safe(h) for h in ro[what][:20])}"
                           + (f" and {len(ro[what]) - 20} more" if len(ro[what]) > 20 else ""))
    elif ro:
        out.append(f"rollout:     last one {safe(ro.get('outcome'))} at wave {safe(ro.get('wave'))} of "
                   f"{safe(ro.get('waves'))} ({when(ro.get('time'))}): {safe(ro.get('reason'), 200)}")
    out.extend(people_lines(r))
    out.extend(gap_lines(r))
    out.extend(running_lines(r.get("running"), r["time"]))
    nxt = r["next"]
    out.append(f"next:        {safe(nxt['why'], 400)}")
    if r["quiescence_left"]:
        out.append(f"quiescence:  {duration(r['quiescence_left'])} left "
                   f"(until {when(r['time'] + r['quiescence_left'])})")
    out.append(f"runs/hour:   {r['runs_last_hour']}")
    out.extend(clock_lines(r.get("clock_step"), r["time"]))
    failing = r["failing"]
    out.append(f"failing:     {plural(len(failing), 'check')}" + (
        f", required level {safe(r['required_level'])}" if r["required_level"] else "")
        + (f"; {len(r['in_downtime'])} more held by scheduled downtime" if r.get("in_downtime") else ""))
    out.extend(check_table([(f["check"], f["state"], f["state_type"], "-> " + safe(f["level"])
                             + (" (host held)" if f["held"] else "")
                             + (f" (acknowledged by {safe(f['acknowledged']['by'])})" if f.get("acknowledged") else ""))
                            for f in failing[:MAX_FAILING]]
                           + [(d["check"], d["state"], d["state_type"], downtime_note(d))
                              for d in (r.get("in_downtime") or [])[:MAX_FAILING]]
                           + [(name, "", "", "unmapped (reported, ignored)") for name in r["unmapped"][:20]]
                           + [(name, "", "", "unreachable (a parent is down; no level asked, no target)")
                              for name in (r.get("unreachable") or [])[:50]]))
    if len(failing) > MAX_FAILING:
        out.append(f"  and {len(failing) - MAX_FAILING} more")
    held_dt = r.get("in_downtime") or []
    if len(held_dt) > MAX_FAILING:
        out.append(f"  and {len(held_dt) - MAX_FAILING} more held by scheduled downtime")
    runs = r.get("last_runs") or []
    if runs:
        out.append("last runs:")
        out.extend("  " + run_line(rec, r["time"]) for rec in runs[-LAST_RUNS:])
    return out


def downtime_note(d: Mapping[str, Any]) -> str:
    """A check downtime holds back: what it would ask for, and whose downtime it is."""
    asks = f"-> {safe(d['level'])}" if d.get("level") else "unmapped"
    whose = "its own" if d.get("downtime") else f"host {safe(d['host'])}'s"
    return f"{asks}: held by scheduled downtime ({whose})"


def gap_lines(r: Mapping[str, Any]) -> List[str]:
    """The open gap and the last closed ones (``escalator listen``)."""
    from .planning.gaps import lines

    g = r.get("gaps") or {}
    return [f"icinga:      {safe(line, 400)}" for line in lines(g.get("open"), g.get("recent") or ())]


def people_lines(r: Mapping[str, Any]) -> List[str]:
    """Runs waiting for a person's approval, and hosts escalator keeps its hands off."""
    out = []
    for a in r.get("approvals") or ():
        hosts = sorted({h for hs in a["targets"].values() for h in hs})
        answer = f"approved by {safe(a['approved_by'])}" if a["approved_by"] else f"expires {when(a['expires'])}"
        out.append(f"approval:    {a['id']}: levels {', '.join(safe(x) for x in a['levels'])} for "
                   f"{', '.join(safe(h) for h in hosts[:10]) or '(no targets)'} ({answer}); "
                   f"`escalator approve {a['id']}` or `escalator deny {a['id']}`")
    for h, ack in (r.get("acknowledged") or {}).items():
        out.append(f"hands off:   {safe(h)}: acknowledged by {safe(ack['by'])}"
                   + (f": {safe(ack['comment'])}" if ack["comment"] else ""))
    for h, until in (r.get("host_limits") or {}).items():
        out.append(f"hands off:   {safe(h)}: limits.per_host reached, until {when(until)} "
                   f"or `escalator resume --host {safe(h)}`")
    return out


def check_table(rows: Sequence[Sequence[str]], indent: str = "  ") -> List[str]:
    """Columns as wide as their longest cell, so a long host name does not shift the rest."""
    if not rows:
        return []
    cells = [[safe(c, 400) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in cells]


def running_lines(run: Any, now: float) -> List[str]:
    if not run:
        return []
    mode = "dry run" if run.get("dry_run") else "run"
    levels = ", ".join(safe(x) for x in run["levels"])
    out = [f"running:     {mode} of levels {levels} since {when(run['started'])} ({duration(run['for'])})"
           + ("" if run["collector_alive"] else "; its collector is NOT running (steps may run on orphaned)")]
    targets = "; ".join(f"{safe(k)}: {', '.join(safe(h) for h in v) or '-'}" for k, v in run["targets"].items())
    out.append(f"  targets:   {targets or '-'}")
    step = run.get("step")
    if step:
        hosts = step.get("hosts") or ([step["host"]] if step.get("host") else [])
        on = f" on {', '.join(safe(h) for h in hosts)}" if hosts else ""
        out.append(f"  step:      level {safe(step['level'])} step {step['index'] + 1} ({safe(step['where'])}){on} "
                   f"for {duration(step['for'])} (since {when(step['started'])}); "
                   f"{run['steps_done']} done, {run['steps_left']} to go")
    return out


def run_line(rec: Mapping[str, Any], now: float) -> str:
    """One line per run: when, how it ended, levels, targets, and its verdict."""
    levels = ", ".join(safe(x) for x in rec.get("levels") or ())
    outcome = rec.get("outcome")
    if outcome == kinds.SKIPPED:
        return f"{when(rec.get('time'))}  skipped  levels {levels}: {safe(rec.get('reason'), 300)}"
    hosts = sorted({h for hs in (rec.get("targets") or {}).values() for h in hs})
    on = f" on {', '.join(safe(h) for h in hosts[:5])}" + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "") \
        if hosts else ""
    return f"{when(rec.get('time'))}  {verdict_word(rec, now)}  levels {levels}{on}" + (
        f": {safe(rec['reason'], 300)}" if rec.get("reason") else "")


def verdict_word(rec: Mapping[str, Any], now: float) -> str:
    """How a run ended, judged: a run whose steps all exited 0 is not "ok" until its checks recovered."""
    outcome = rec.get("outcome") or "failed"
    v = rec.get("verdict")
    if outcome == "failed":
        return "FAILED"
    if v is None:
        quiet = rec.get("quiescence_until")
        if quiet and float(quiet) > now:
            return f"{outcome}, verdict at {when(quiet)}"
        return f"{outcome}, not judged yet"
    if v.get("converged"):
        return f"{outcome}, converged"
    failing = ", ".join(safe(x) for x in (v.get("failing") or ())[:3])
    return f"{outcome} but NOT converged (still failing: {failing})"
