"""Read Nagios 4 ``nagios.log`` (and Icinga 2's compat log, same format).

Turns ``SERVICE ALERT``, ``HOST ALERT``, ``CURRENT SERVICE STATE``,
``CURRENT HOST STATE`` (and the ``INITIAL`` ones Nagios logs at start-up with
``log_initial_states=1``, same format) and downtime alerts into observations
for the state fold.  Other well-formed lines (notifications, event handler runs, external
commands, start-up messages) are ignored; lines that are not Nagios log lines
at all, or alerts with missing fields, are counted as unparsed with their line
numbers.  Built for speed: it parses a million lines in about 1.3 s (see
``benchmarks``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, TextIO, Tuple

from .event import HOST_STATES, SERVICE_STATES

#: (time, host, service, state, state_type, attempt, downtime, output)
Observation = Tuple[float, str, Optional[str], Optional[str], str, int, int, str]

_SVC_STATES = frozenset(SERVICE_STATES)
_HOST_STATES = frozenset(HOST_STATES)
_TYPES = frozenset(("SOFT", "HARD"))


@dataclass
class ParseStats:
    lines: int = 0
    used: int = 0
    ignored: int = 0
    unparsed: int = 0
    unparsed_lines: List[int] = field(default_factory=list)

    def bad(self, lineno: int) -> None:
        self.unparsed += 1
        if len(self.unparsed_lines) < 1000:
            self.unparsed_lines.append(lineno)


#: The kinds of line turned into observations, each with a small code.
_KINDS = {
    "SERVICE ALERT": 1, "CURRENT SERVICE STATE": 1, "INITIAL SERVICE STATE": 1,
    "HOST ALERT": 2, "CURRENT HOST STATE": 2, "INITIAL HOST STATE": 2,
    "SERVICE DOWNTIME ALERT": 3, "HOST DOWNTIME ALERT": 4,
}


def parse(f: TextIO, stats: Optional[ParseStats] = None) -> Iterator[Observation]:
    """Yield observations from an open nagios.log, in file order."""
    st = stats if stats is not None else ParseStats()
    svc_dt: Dict[Tuple[str, str], int] = {}
    host_dt: Dict[str, int] = {}
    kinds, svc_states, host_states, types = _KINDS, _SVC_STATES, _HOST_STATES, _TYPES
    lineno = 0
    used = ignored = 0
    for lineno, line in enumerate(f, 1):
        if line[:1] != "[":
            if line.strip():
                st.bad(lineno)
            else:
                ignored += 1
            continue
        end = line.find("] ", 1)
        colon = line.find(": ", end)
        code = kinds.get(line[end + 2:colon]) if colon > 0 else None
        try:
            t = float(line[1:end])
        except ValueError:
            st.bad(lineno)
            continue
        if code is None:
            ignored += 1  # notifications, handler runs, "Nagios 4.4.6 starting..." and the like
            continue
        if line[-1:] == "\n":
            line = line[:-1]
        if code == 1:
            p = line[colon + 2:].split(";", 5)
            if len(p) < 5 or p[2] not in svc_states or p[3] not in types or not p[4].isdigit():
                st.bad(lineno)
                continue
            yield (t, p[0], p[1], p[2], p[3], int(p[4]), svc_dt.get((p[0], p[1]), 0) if svc_dt else 0,
                   p[5] if len(p) > 5 else "")
        elif code == 2:
            p = line[colon + 2:].split(";", 4)
            if len(p) < 4 or p[1] not in host_states or p[2] not in types or not p[3].isdigit():
                st.bad(lineno)
                continue
            yield (t, p[0], None, p[1], p[2], int(p[3]), host_dt.get(p[0], 0) if host_dt else 0,
                   p[4] if len(p) > 4 else "")
        elif code == 3:
            p = line[colon + 2:].split(";", 3)
            if len(p) < 3:
                st.bad(lineno)
                continue
            key = (p[0], p[1])
            d = svc_dt[key] = max(0, svc_dt.get(key, 0) + (1 if p[2] == "STARTED" else -1))
            yield (t, p[0], p[1], None, "HARD", 1, d, "")
        else:
            p = line[colon + 2:].split(";", 2)
            if len(p) < 2:
                st.bad(lineno)
                continue
            d = host_dt[p[0]] = max(0, host_dt.get(p[0], 0) + (1 if p[1] == "STARTED" else -1))
            yield (t, p[0], None, None, "HARD", 1, d, "")
        used += 1
    st.lines += lineno
    st.used += used
    st.ignored += ignored
