"""Scheduled downtime as Nagios or Icinga shows it now: noticing a downtime end (or start).

Nagios and Icinga run no event handler when a downtime starts or ends, and
none while a check stays in the same HARD problem state.  A check that broke
inside a downtime would therefore stay hands-off for good once the downtime
ended.  The collector looks the depths up itself (``MonitoringLink.downtimes``):

- every ``DOWNTIME_POLL`` seconds while a problem check is held back by
  downtime (``planning.downtime.in_downtime``), so its end is noticed within
  seconds and a still-failing check is acted on;
- before a run, for the checks that ask for it and their hosts, so a downtime
  an operator scheduled since the last event (a host's, which reaches no
  service's event) stops the run.

Sources: ``nagios.status_file`` (Nagios 4's ``status.dat``, whose
``scheduled_downtime_depth`` is trusted only when the file was written after
our latest observation of the check: an older file cannot overrule a newer
event) and ``nagios.icinga_api`` (the hosts and services whose
``downtime_depth`` is above 0 now; every other one is out of downtime).

Each change becomes a downtime-only ``event`` record (``state`` null, the
new ``downtime`` depth, ``output`` STARTED or STOPPED like the log's downtime
alerts) with ``source`` and ``noticed`` saying where and what, so the journal
says why the collector acted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from .. import kinds
from ..config import Config, NagiosFeedback
from ..display import safe
from ..errors import EscalatorError
from ..event import CheckKey, check_name
from ..planning.state import State
from .statusdat import parse_blocks, read_status

log = logging.getLogger("escalator")

#: Where the depths came from, as ``source`` in the records.
STATUS_DAT = "status.dat"
ICINGA_API = "icinga api"


@dataclass(frozen=True)
class Depths:
    """Downtime depths one source showed, as of ``as_of`` (epoch seconds)."""

    source: str
    as_of: float
    depth: Dict[CheckKey, int]
    complete: bool = False         # objects absent from ``depth`` are out of downtime (the API's view)

    def of(self, key: CheckKey) -> Optional[int]:
        d = self.depth.get(key)
        if d is None and self.complete:
            return 0
        return d


def configured(nagios: Optional[NagiosFeedback]) -> bool:
    """Whether a source of downtime depths is configured."""
    return nagios is not None and bool(nagios.status_file or nagios.icinga_api)


def read(nagios: NagiosFeedback, now: float) -> List[Depths]:
    """The depths every configured source shows now; raise EscalatorError when one is unreadable."""
    out = []
    if nagios.status_file:
        out.append(status_depths(nagios.status_file))
    if nagios.icinga_api is not None:
        out.append(icinga_depths(nagios, now))
    return out


def status_depths(path: str) -> Depths:
    """``scheduled_downtime_depth`` of every host and service in status.dat, as of its ``created``."""
    depth: Dict[CheckKey, int] = {}
    created = 0.0
    for kind, f in parse_blocks(read_status(path)):
        if kind == "info":
            created = _num(f.get("created"))
        elif kind in ("hoststatus", "servicestatus") and f.get("host_name"):
            service = f.get("service_description") if kind == "servicestatus" else None
            if kind == "servicestatus" and not service:
                continue
            depth[(f["host_name"], service)] = int(_num(f.get("scheduled_downtime_depth")))
    return Depths(STATUS_DAT, created, depth)


def icinga_depths(nagios: NagiosFeedback, now: float) -> Depths:
    """The hosts and services in downtime now, from the Icinga 2 API (everything else: depth 0)."""
    from .icinga_api import IcingaClient

    assert nagios.icinga_api is not None
    client = IcingaClient.from_config(nagios.icinga_api)
    depth: Dict[CheckKey, int] = {}
    for h in client.objects("hosts", "host.downtime_depth > 0", ["name", "downtime_depth"]):
        if h.get("name"):
            depth[(str(h["name"]), None)] = int(_num(h.get("downtime_depth")))
    for s in client.objects("services", "service.downtime_depth > 0", ["host_name", "name", "downtime_depth"]):
        if s.get("host_name") and s.get("name"):
            depth[(str(s["host_name"]), str(s["name"]))] = int(_num(s.get("downtime_depth")))
    return Depths(ICINGA_API, now, depth, complete=True)


def changes(state: State, sources: Iterable[Depths], keys: Iterable[CheckKey], now: float) -> List[dict]:
    """Downtime-only event records for ``keys`` (and their hosts) whose depth a source shows
    differently from ``state``.  Pure."""
    wanted: Dict[CheckKey, None] = {}
    for key in keys:
        wanted[key] = None
        wanted[(key[0], None)] = None
    out: List[dict] = []
    done = set()
    for src in sources:
        for key in wanted:
            new = src.of(key)
            if new is None or key in done:
                continue
            cs = state.checks.get(key)
            if key[1] is None:
                old = state.host_downtime.get(key[0], 0)
            elif cs is None:
                continue  # a service we never heard of: nothing of ours it can hold back
            else:
                old = cs.downtime
            seen = cs.time if cs is not None else 0.0
            if new == old or src.as_of <= seen:
                continue  # the same, or a view older than our latest event of the check
            done.add(key)
            out.append(record(key, old, new, src.source, max(now, seen)))
    return out


def record(key: CheckKey, old: int, new: int, source: str, now: float) -> dict:
    """The downtime-only ``event`` record for a depth that went from ``old`` to ``new``."""
    if new == 0:
        word, noticed = "STOPPED", "scheduled downtime ended"
    elif old == 0:
        word, noticed = "STARTED", "scheduled downtime started"
    else:
        word, noticed = "", f"scheduled downtime depth {old} -> {new}"
    return {"time": now, "kind": kinds.EVENT, "host": key[0], "service": key[1], "state": None,
            "state_type": "HARD", "attempt": 1, "downtime": new, "output": word,
            "source": source, "noticed": f"{noticed} ({source})"}


def poll(config: Config, state: State, keys: Iterable[CheckKey], now: float) -> List[dict]:
    """:func:`changes` against every configured source; [] when none is, or unreadable (logged)."""
    keys = list(keys)
    if not keys or not configured(config.nagios):
        return []
    try:
        sources = read(config.nagios, now)  # type: ignore[arg-type]
    except EscalatorError as exc:
        log.warning("cannot read downtimes: %s", exc)
        return []
    found = changes(state, sources, keys, now)
    for rec in found:
        log.info("%s: %s", safe(check_name((rec["host"], rec["service"]))), safe(rec["noticed"], 300))
    return found


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


__all__ = ["Depths", "ICINGA_API", "STATUS_DAT", "changes", "configured", "icinga_depths", "poll", "read",
           "record", "status_depths"]
