"""Synthetic inputs for the benchmarks: a realistic nagios.log and its config.

``write_log`` writes a Nagios 4 log over ``hosts`` hosts with nine services
each plus the host check (10 checks a host, so 1,000 hosts = 10,000 checks).
The mix is what a busy Nagios writes: mostly ``SERVICE ALERT`` lines (problems
going SOFT 1, SOFT 2, HARD 3, then recovering), some ``HOST ALERT`` lines,
a ``CURRENT ... STATE`` block for every check at each daily log rotation,
a few scheduled downtimes, and noise the parser must skip (event handler
runs, notifications, external commands, retention saves, warnings).  The
generator is seeded, so every run replays the same file.

``write_config`` writes the escalation config the replay and planning
benchmarks use: the six levels of the bundled example with harmless shell steps.
"""

from __future__ import annotations

import heapq
import random
from typing import List, Tuple

SERVICES = ("PING", "HTTP", "PostgreSQL", "SSH", "Disk /var", "Load", "Memory", "App tier", "Smoke test")
ROLES = ("web", "db", "app", "cache", "queue")
T0 = 1_795_500_000

CONFIG = """\
# escalator benchmark config: the six levels of the bundled example, harmless steps.
spool: {spool}
journal: {journal}
quiescence: {quiescence}
max_delay: 5m
state_types: [HARD]
levels:
  - name: account
    quiescence: 15m
    max_attempts: 1
    steps:
      - shell: echo would create the IaaS account
  - name: core
    quiescence: 10m
    steps:
      - shell: echo would create core networking
  - name: tier
    quiescence: 10m
    steps:
      - shell: echo would create tier networking for {{hosts}}
  - name: vm
    quiescence: 5m
    max_attempts: 2
    on_exhausted: escalate
    steps:
      - shell: echo would create VM {{host}}
        foreach: host
  - name: converge
    quiescence: 2m
    steps:
      - shell: {converge_step}
        foreach: host
  - name: deploy
    quiescence: 2m
    steps:
      - shell: echo would redeploy the application
checks:
  - {{host: iaas-api, service: "IaaS API", level: account}}
  - {{host: "tier-*", service: "*", level: tier}}
  - {{service: "PING", level: vm}}
  - {{host: "*", level: vm}}
  - {{service: "HTTP", level: converge}}
  - {{service: "PostgreSQL", level: converge}}
  - {{service: "App tier", level: converge}}
  - {{service: "Smoke*", level: deploy}}
notify:
  - shell: echo would page ops {{summary}}
{limits}"""


def write_config(path: str, spool: str, journal: str, *, quiescence: str = "30s",
                 converge_step: str = "echo would run chef-client on {host}",
                 max_runs: int = 6, max_targets: int = 50, limits: bool = True) -> None:
    """The benchmark config; ``limits=False`` leaves out meltdown protection."""
    lim = f"limits:\n  max_runs_per_hour: {max_runs}\n  max_targets: {max_targets}\n" if limits else ""
    with open(path, "w", encoding="utf-8") as f:
        f.write(CONFIG.format(spool=spool, journal=journal, quiescence=quiescence,
                              converge_step=converge_step, limits=lim))


def host_names(hosts: int) -> List[str]:
    return [f"{ROLES[i % len(ROLES)]}-{i // len(ROLES) + 1:04d}" for i in range(hosts)]


_SVC_OUT = {"OK": "OK - all fine", "WARNING": "WARNING - threshold exceeded",
            "CRITICAL": "CRITICAL - Connection refused", "UNKNOWN": "UNKNOWN - plugin timed out"}
_HOST_OUT = {"UP": "PING OK - Packet loss = 0%, RTA = 0.31 ms",
             "DOWN": "CRITICAL - Host Unreachable (10.0.3.17)"}


def write_log(path: str, lines: int, hosts: int = 1000, seed: int = 8) -> Tuple[int, int]:
    """Write ``lines`` lines of nagios.log; return (lines, checks)."""
    rnd = random.Random(seed)
    names = host_names(hosts)
    checks: List[Tuple[str, str]] = [(h, "") for h in names] + [(h, s) for h in names for s in SERVICES]
    problem = set()                 # checks in a problem episode or downtime now
    queue: List[Tuple[float, int, tuple]] = []   # scheduled follow-ups of episodes
    seq = 0
    out: List[str] = []
    n = 0
    t = float(T0)
    next_rotation = t

    def emit(line: str) -> None:
        nonlocal n
        out.append(line)
        n += 1

    def schedule(at: float, action: tuple) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, action))

    with open(path, "w", encoding="utf-8") as f:
        while n < lines:
            if t >= next_rotation:
                ts = int(t)
                if n:
                    emit(f"[{ts}] LOG ROTATION: DAILY\n")
                emit(f"[{ts}] LOG VERSION: 2.0\n")
                for h, s in checks:
                    if s:
                        emit(f"[{ts}] CURRENT SERVICE STATE: {h};{s};OK;HARD;1;{_SVC_OUT['OK']}\n")
                    else:
                        emit(f"[{ts}] CURRENT HOST STATE: {h};UP;HARD;1;{_HOST_OUT['UP']}\n")
                next_rotation = t + 86400
            if queue and queue[0][0] <= t:
                at, _, action = heapq.heappop(queue)
                ts = int(at)
                kind = action[0]
                if kind == "svc":
                    _, h, s, state, stype, attempt = action
                    emit(f"[{ts}] SERVICE ALERT: {h};{s};{state};{stype};{attempt};{_SVC_OUT[state]}\n")
                    if rnd.random() < 0.25:  # the checks that have an event handler
                        emit(f"[{ts}] SERVICE EVENT HANDLER: {h};{s};{state};{stype};{attempt};escalator-handler\n")
                    if stype == "HARD" and rnd.random() < 0.2:
                        emit(f"[{ts}] SERVICE NOTIFICATION: ops;{h};{s};{state};notify-by-email;{_SVC_OUT[state]}\n")
                    if state == "OK":
                        problem.discard((h, s))
                elif kind == "host":
                    _, h, state, stype, attempt = action
                    emit(f"[{ts}] HOST ALERT: {h};{state};{stype};{attempt};{_HOST_OUT[state]}\n")
                    if state == "UP":
                        problem.discard((h, ""))
                elif kind == "sdt":
                    _, h, s, what = action
                    emit(f"[{ts}] SERVICE DOWNTIME ALERT: {h};{s};{what}; Service has "
                         f"{'entered' if what == 'STARTED' else 'exited from'} a period of scheduled downtime\n")
                    if what == "STOPPED":
                        problem.discard((h, s))
                continue
            t += rnd.expovariate(0.4)  # a new bit of activity every 2.5 s on average
            r = rnd.random()
            if r < 0.84:
                c = checks[rnd.randrange(hosts, len(checks))]
                if c in problem:
                    continue
                problem.add(c)
                h, s = c
                bad = "CRITICAL" if rnd.random() < 0.7 else "WARNING"
                schedule(t, ("svc", h, s, bad, "SOFT", 1))
                if rnd.random() < 0.8:  # a blip: recovers at the next check, still SOFT
                    schedule(t + 60, ("svc", h, s, "OK", "SOFT", 2))
                    continue
                schedule(t + 60, ("svc", h, s, bad, "SOFT", 2))
                schedule(t + 120, ("svc", h, s, bad, "HARD", 3))
                schedule(t + 120 + rnd.uniform(60, 1200), ("svc", h, s, "OK", "HARD", 1))
            elif r < 0.85:
                h = names[rnd.randrange(hosts)]
                if (h, "") in problem:
                    continue
                problem.add((h, ""))
                schedule(t, ("host", h, "DOWN", "SOFT", 1))
                schedule(t + 30, ("host", h, "DOWN", "HARD", 2))
                schedule(t + 30 + rnd.uniform(60, 600), ("host", h, "UP", "HARD", 1))
            elif r < 0.855:
                c = checks[rnd.randrange(hosts, len(checks))]
                if c in problem:
                    continue
                problem.add(c)
                schedule(t, ("sdt", c[0], c[1], "STARTED"))
                schedule(t + 3600, ("sdt", c[0], c[1], "STOPPED"))
            elif r < 0.93:
                h = names[rnd.randrange(hosts)]
                emit(f"[{int(t)}] EXTERNAL COMMAND: SCHEDULE_FORCED_SVC_CHECK;{h};HTTP;{int(t)}\n")
            elif r < 0.97:
                emit(f"[{int(t)}] Auto-save of retention data completed successfully.\n")
            else:
                h = names[rnd.randrange(hosts)]
                emit(f"[{int(t)}] Warning: Check of service 'Load' on host '{h}' timed out after 60.01 seconds\n")
            if len(out) >= 65536 and n < lines:
                f.writelines(out)
                out.clear()
        # Cut at exactly `lines` (an episode may have emitted a few more).
        f.writelines(out[:len(out) - (n - lines)] if n > lines else out)
    return lines, len(checks)
