"""Icinga 2's event stream and object states as escalator events (pure, no I/O).

``escalator listen`` (:mod:`escalator_handlers.listen`) reads ``POST
/v1/events`` and ``/v1/objects``; this module turns what it reads into the
event records the handler would have spooled, so one decision is made
whatever the source.  The facts it relies on (Icinga 2.13.6, checked against
the real daemon and ``lib/icinga/apievents.cpp``):

- ``StateChange``: ``state`` is 0 UP / 1 DOWN for a host but 0..3 for a
  service; ``state_type`` 0 SOFT / 1 HARD; ``timestamp`` is when the event was
  emitted, not when the check ran: the check's time is
  ``check_result.execution_start``.
- ``CheckResult``: no ``state`` of its own: ``check_result.vars_after`` has
  ``state`` (0..3, also for hosts), ``state_type``, ``attempt`` and
  ``reachable``.
- A host that is DOWN with ``reachable`` false is UNREACHABLE (its parent is
  down), as Nagios would say.
- The HARD transition reports attempt 1 (Nagios reports the last attempt);
  the state type is taken from ``state_type``, never from the attempt.

``event.observation_id`` names one observation across sources (two HA masters each
streaming, the stream and the EventCommand): host, service, state, state
type, whether in downtime, and the check's own execution time.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .. import kinds
from ..event import HOST_STATES, SERVICE_STATES
from ..event import finite_number as _num

#: The stream types ``listen`` subscribes to.
STATE_TYPES_STREAM = ("StateChange", "CheckResult")
ACK_TYPES = ("AcknowledgementSet", "AcknowledgementCleared")
DOWNTIME_TYPES = ("DowntimeStarted", "DowntimeTriggered", "DowntimeRemoved")
STREAM_TYPES = STATE_TYPES_STREAM + ACK_TYPES + DOWNTIME_TYPES

#: ``source`` of the records ``listen`` spools (``catch-up`` for /v1/objects).
SOURCE_STREAM = "icinga-stream"
SOURCE_CATCHUP = "icinga-catch-up"

#: Attributes asked of /v1/objects/hosts and /services for a catch-up.
OBJECT_ATTRS = ("name", "host_name", "state", "state_type", "check_attempt", "downtime_depth",
                "last_check_result", "acknowledgement")

#: Longest field values kept (until event.py has its own limits: one place to switch).
MAX_NAME = 1024
MAX_OUTPUT = 4096


def clip(text: Any, limit: int) -> str:
    """A field value as text, at most ``limit`` characters."""
    return str(text)[:limit]


def _service_state(code: Any) -> Optional[str]:
    n = _num(code)
    return SERVICE_STATES[int(n)] if n is not None and 0 <= int(n) < 4 else None


def _host_state(code: Any, from_result: bool, reachable: Any) -> Optional[str]:
    """Host state from ``state`` (0 UP / 1 DOWN) or from a check result (0..3)."""
    n = _num(code)
    if n is None:
        return None
    if from_result:
        state = "UP" if int(n) in (0, 1) else "DOWN"   # as Icinga's Host::CalculateState
    else:
        state = HOST_STATES[int(n)] if 0 <= int(n) < 2 else None
    if state == "DOWN" and reachable is False:
        return "UNREACHABLE"
    return state


def _state_type(code: Any) -> str:
    n = _num(code)
    return "SOFT" if n is not None and int(n) == 0 else "HARD"


def event_record(host: str, service: Optional[str], state: Optional[str], state_type: str, attempt: int,
                 downtime: int, output: str, time: float, check_time: Optional[float],
                 source: str) -> dict:
    rec = {"time": time, "kind": kinds.EVENT, "host": clip(host, MAX_NAME),
           "service": clip(service, MAX_NAME) if service is not None else None, "state": state,
           "state_type": state_type, "attempt": max(1, attempt), "downtime": max(0, downtime),
           "output": clip(output, MAX_OUTPUT), "source": source}
    if check_time is not None:
        rec["check_time"] = check_time
    return rec


def from_stream(msg: Mapping[str, Any], now: float) -> Optional[dict]:
    """The event record of one ``StateChange`` or ``CheckResult`` message, or None."""
    kind = msg.get("type")
    if kind not in STATE_TYPES_STREAM:
        return None
    host = msg.get("host")
    if not isinstance(host, str) or not host:
        return None
    service = msg.get("service") if isinstance(msg.get("service"), str) and msg.get("service") else None
    cr = msg.get("check_result") if isinstance(msg.get("check_result"), Mapping) else {}
    after = cr.get("vars_after") if isinstance(cr.get("vars_after"), Mapping) else {}
    if kind == "StateChange":
        code, from_result, stype = msg.get("state"), False, msg.get("state_type")
    else:
        code, from_result, stype = after.get("state", cr.get("state")), True, after.get("state_type")
    if service is None:
        state = _host_state(code, from_result, after.get("reachable"))
    else:
        state = _service_state(code)
    if state is None:
        return None
    check_time = _num(cr.get("execution_start"))
    seen = _num(cr.get("execution_end")) or _num(msg.get("timestamp")) or now
    attempt = _num(after.get("attempt")) or 1
    downtime = _num(msg.get("downtime_depth")) or 0
    return event_record(host, service, state, _state_type(stype), int(attempt), int(downtime),
                        str(cr.get("output") or ""), seen, check_time, SOURCE_STREAM)


def from_object(attrs: Mapping[str, Any], is_host: bool, now: float) -> Optional[dict]:
    """The event record of one host or service object's current state (a catch-up), or None."""
    if is_host:
        host, service = attrs.get("name"), None
    else:
        host, service = attrs.get("host_name"), attrs.get("name")
        if not isinstance(service, str) or not service:
            return None
    if not isinstance(host, str) or not host:
        return None
    cr = attrs.get("last_check_result") if isinstance(attrs.get("last_check_result"), Mapping) else None
    if cr is None:
        return None  # never checked yet: nothing observed to report
    after = cr.get("vars_after") if isinstance(cr.get("vars_after"), Mapping) else {}
    if is_host:
        state = _host_state(attrs.get("state"), False, after.get("reachable"))
    else:
        state = _service_state(attrs.get("state"))
    if state is None:
        return None
    check_time = _num(cr.get("execution_start"))
    seen = _num(cr.get("execution_end")) or check_time or now
    return event_record(host, service, state, _state_type(attrs.get("state_type")),
                        int(_num(attrs.get("check_attempt")) or 1), int(_num(attrs.get("downtime_depth")) or 0),
                        str(cr.get("output") or ""), seen, check_time, SOURCE_CATCHUP)


def from_captured(msg: Mapping[str, Any]) -> Optional[dict]:
    """A captured stream line (``listen --capture``) as an event record for replay, or None.

    State changes and check results of failing checks become events on the
    check's own clock; a DowntimeTriggered / DowntimeRemoved becomes a downtime
    change (depth 1 / 0: replay counts no overlapping downtimes); others are
    left out."""
    kind = msg.get("type")
    t = _num(msg.get("timestamp")) or 0.0
    if kind in STATE_TYPES_STREAM:
        return from_stream(msg, t)
    if kind in ("DowntimeTriggered", "DowntimeRemoved"):
        key = downtime_object(msg)
        if key is not None:
            return event_record(key[0], key[1], None, "HARD", 1, 1 if kind == "DowntimeTriggered" else 0, "",
                                t, None, SOURCE_STREAM)
    return None


def downtime_object(msg: Mapping[str, Any]) -> Optional[tuple]:
    """(host, service or None) a Downtime* message is about, or None."""
    d = msg.get("downtime") if isinstance(msg.get("downtime"), Mapping) else {}
    host = d.get("host_name") or msg.get("host")
    if not isinstance(host, str) or not host:
        return None
    service = d.get("service_name") or msg.get("service")
    return (host, service if isinstance(service, str) and service else None)


__all__ = ["ACK_TYPES", "DOWNTIME_TYPES", "OBJECT_ATTRS", "SOURCE_CATCHUP", "SOURCE_STREAM", "STREAM_TYPES",
           "clip", "downtime_object", "event_record", "from_captured", "from_object", "from_stream"]
