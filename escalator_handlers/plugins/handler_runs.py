"""Handler runs that recorded nothing: nagios.log's ``EVENT HANDLER`` lines against the records.

Nagios discards an event handler's exit code.  A handler that cannot run as
the Nagios user (its interpreter unreadable, a wrong path, a spool it may not
write) loses every event and nothing says so.  Nagios does log each run
(``log_event_handlers=1``, its default)::

    [1796692333] SERVICE EVENT HANDLER: web01;app;CRITICAL;HARD;2;escalator-service-handler
    [1796692333] HOST EVENT HANDLER: web01;DOWN;HARD;2;escalator-host-handler

(``GLOBAL SERVICE/HOST EVENT HANDLER:`` for ``global_*_event_handler``, nagioscore
``base/sehandlers.c``)

so ``check_escalator --nagios-log`` compares the runs of escalator's handler
commands (``--handler-command``, a glob) in the last ``lookback`` seconds
with the events that reached the spool or the journal: an event of the same
check, state and state type within ``TOLERANCE`` seconds of the line.  Runs
younger than ``grace`` seconds are not judged yet.  Only the log's tail
(``TAIL_BYTES``) is read.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Tuple

from .. import defaults
from ..event import check_name

#: How far an event's time may be from its handler line's (the handler stamps its own clock).
TOLERANCE = 60.0
#: The tail of nagios.log read (a busy log's hour).
TAIL_BYTES = 4 << 20
#: ``--handler-command`` (the commands of nagios-conf: escalator-service-handler, escalator-host-handler),
#: ``--handler-grace`` and ``--handler-lookback``.
HANDLER_COMMAND = defaults.HANDLER_COMMAND
GRACE = defaults.HANDLER_GRACE
LOOKBACK = defaults.HANDLER_LOOKBACK


@dataclass(frozen=True)
class HandlerRun:
    """One ``EVENT HANDLER`` line."""

    time: float
    host: str
    service: Optional[str]
    state: str
    state_type: str
    command: str

    @property
    def label(self) -> str:
        return f"{check_name((self.host, self.service))} {self.state} {self.state_type}"


def parse_line(line: str) -> Optional[HandlerRun]:
    """A ``SERVICE/HOST EVENT HANDLER`` line, or None."""
    if not line.startswith("[") or "EVENT HANDLER: " not in line:
        return None
    stamp, _, rest = line[1:].partition("] ")
    what, _, fields = rest.partition(": ")
    try:
        t = float(stamp)
    except ValueError:
        return None
    p = fields.rstrip("\n").split(";")
    what = what[len("GLOBAL "):] if what.startswith("GLOBAL ") else what  # global_*_event_handler
    if what == "SERVICE EVENT HANDLER" and len(p) >= 6:
        return HandlerRun(t, p[0], p[1], p[2], p[3], p[-1])
    if what == "HOST EVENT HANDLER" and len(p) >= 5:
        return HandlerRun(t, p[0], None, p[1], p[2], p[-1])
    return None


def read_runs(path: str, since: float, until: float, command: str = HANDLER_COMMAND) -> List[HandlerRun]:
    """The runs of handler commands matching ``command`` logged in [since, until]; OSError if unreadable."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - TAIL_BYTES))
        data = f.read()
    out = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        run = parse_line(raw)
        if run is not None and since <= run.time <= until and fnmatch.fnmatchcase(run.command, command):
            out.append(run)
    return out


def unrecorded(runs: Iterable[HandlerRun], events: Iterable[Mapping[str, object]]) -> List[HandlerRun]:
    """The runs no event stands for: same check, state and state type, time within TOLERANCE."""
    seen: dict = {}
    for e in events:
        try:
            key = (e.get("host"), e.get("service") or None, str(e.get("state") or "").upper(),
                   str(e.get("state_type") or "HARD").upper())
            seen.setdefault(key, []).append(float(e.get("claimed_time") or e.get("time")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    lost = []
    for run in runs:
        times = seen.get((run.host, run.service, run.state, run.state_type), ())
        if not any(abs(t - run.time) <= TOLERANCE for t in times):
            lost.append(run)
    return lost


def check(path: str, events: Iterable[Mapping[str, object]], now: float, *, lookback: float = LOOKBACK,
          grace: float = GRACE, command: str = HANDLER_COMMAND) -> Tuple[int, List[HandlerRun]]:
    """(handler runs judged, those that recorded nothing) for the log at ``path``."""
    runs = read_runs(path, now - lookback, now - grace, command)
    return len(runs), unrecorded(runs, events)


__all__ = ["GRACE", "HANDLER_COMMAND", "HandlerRun", "LOOKBACK", "TOLERANCE", "check", "parse_line",
           "read_runs", "unrecorded"]
