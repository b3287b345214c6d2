"""Reading Nagios 4's ``status.dat``: current state of every check.

Nagios sends an event handler nothing while a check stays in the same HARD
problem state, and events are missed while escalator is down.  The
collector therefore seeds its check-state store from ``status.dat`` at start
(``status_events``) and, before acting, confirms that the checks that asked
have not recovered there since (``monitoring.link.recovered_since`` over
``parse_status``).

The format is blocks of ``name {`` / ``\\tkey=value`` / ``\\t}``.  Blocks this
module does not know are skipped; Nagios rewrites the file by rename, so a
reader never sees half a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import EscalatorError
from ..event import CheckKey, Event

HOST_STATE_NAMES = {0: "UP", 1: "DOWN", 2: "UNREACHABLE"}
SERVICE_STATE_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


class StatusError(EscalatorError):
    """status.dat cannot be read."""


@dataclass(frozen=True)
class CheckStatus:
    """One host or service as status.dat describes it."""

    host: str
    service: Optional[str]
    state: str
    state_type: str
    attempt: int
    downtime: int
    output: str
    last_check: float
    last_state_change: float
    checked: bool = True           # False while Nagios has never run the check

    @property
    def key(self) -> CheckKey:
        return (self.host, self.service)

    def to_event(self) -> Event:
        return Event(time=self.last_check, host=self.host, service=self.service, state=self.state,
                     state_type=self.state_type, attempt=self.attempt, downtime=self.downtime,
                     output=self.output)


def parse_blocks(text: str) -> Iterator[Tuple[str, Dict[str, str]]]:
    """Every ``name { key=value ... }`` block, in file order."""
    name: Optional[str] = None
    fields: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if name is None:
            if line.endswith("{"):
                name, fields = line[:-1].strip(), {}
            continue
        if line == "}":
            yield name, fields
            name = None
            continue
        key, sep, value = raw.lstrip("\t ").partition("=")
        if sep:
            fields[key] = value


def read_status(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise StatusError(f"cannot read Nagios status file {path}: {exc.strerror}") from None


def _int(fields: Dict[str, str], key: str, default: int = 0) -> int:
    try:
        return int(fields.get(key, default))
    except ValueError:
        return default


def _float(fields: Dict[str, str], key: str) -> float:
    try:
        return float(fields.get(key, 0))
    except ValueError:
        return 0.0


def _status(kind: str, fields: Dict[str, str]) -> Optional[CheckStatus]:
    host = fields.get("host_name")
    if not host:
        return None
    if kind == "hoststatus":
        service, names = None, HOST_STATE_NAMES
    else:
        service, names = fields.get("service_description"), SERVICE_STATE_NAMES
        if not service:
            return None
    code = _int(fields, "current_state", 3 if service else 2)
    return CheckStatus(
        host=host,
        service=service,
        state=names.get(code, "UNKNOWN" if service else "UNREACHABLE"),
        state_type="HARD" if _int(fields, "state_type", 1) == 1 else "SOFT",
        attempt=_int(fields, "current_attempt", 1),
        downtime=_int(fields, "scheduled_downtime_depth"),
        output=fields.get("plugin_output", ""),
        last_check=_float(fields, "last_check"),
        last_state_change=_float(fields, "last_state_change"),
        checked=_int(fields, "has_been_checked", 1) == 1,
    )


def parse_status(path: str) -> Dict[CheckKey, CheckStatus]:
    """Every host and service in status.dat, keyed ``(host, service|None)``."""
    result: Dict[CheckKey, CheckStatus] = {}
    for kind, fields in parse_blocks(read_status(path)):
        if kind in ("hoststatus", "servicestatus"):
            status = _status(kind, fields)
            if status is not None:
                result[status.key] = status
    return result


def status_events(path: str) -> List[Event]:
    """Events for every check Nagios has run (``time`` = its last check), to seed state.

    Checks still pending (never run) are left out: Nagios reports them as
    OK/UP with no evidence either way.
    """
    return [s.to_event() for s in parse_status(path).values() if s.checked]


__all__ = [
    "CheckStatus", "StatusError", "parse_blocks", "read_status",
    "parse_status", "status_events",
]
