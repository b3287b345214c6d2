"""How long each field of an event may be, and what happens past it.

Every way an event comes in -- ``escalator-handler``, the spool reader, replay,
a monitoring stream -- calls :func:`limit_fields`, so one event is judged the
same whichever way it arrived, and nothing an event carries can make a step
fail to start (Linux refuses an argument or environment string over 128 KiB).
A name too long is refused (clipping it could name another, real, host or
check); the plugin output is clipped, with a mark saying how much was cut.

Standard library only, no ``typing`` or ``dataclasses``: the handler's hot path
imports this module.  :mod:`escalator_handlers.event` re-exports it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Mapping, Tuple

#: Longest host name (characters): DNS allows 253, and a host field of an ssh or chef step 255.
HOST_MAX = 255
#: Longest service description (characters).
SERVICE_MAX = 1024
#: Longest plugin output kept (characters, the clip mark included).
OUTPUT_MAX = 65536
#: Longest state word as reported (``reported_state``, e.g. ``WARNING`` for a host).
REPORTED_STATE_MAX = 32
#: Longest record id (the spool writes 30-odd characters).
ID_MAX = 128
#: Largest attempt number and downtime depth (a C int in Nagios and Icinga).
COUNT_MAX = 2 ** 31 - 1

REFUSE = "refuse"
CLIP = "clip"

#: field -> (most characters, what happens to a longer value).  docs/guarantees.rst lists them.
LIMITS = {
    "host": (HOST_MAX, REFUSE),
    "service": (SERVICE_MAX, REFUSE),
    "output": (OUTPUT_MAX, CLIP),
    "reported_state": (REPORTED_STATE_MAX, REFUSE),
    "id": (ID_MAX, REFUSE),
}

_WHAT = {"host": "host name", "service": "service name", "output": "plugin output",
         "reported_state": "reported state", "id": "record id"}


class LimitError(ValueError):
    """A field of an event is over its limit and cannot be clipped: the event is refused."""

    def __init__(self, field: str, length: int, limit: int) -> None:
        self.field, self.length, self.limit = field, length, limit
        super().__init__(f"the {_WHAT.get(field, field)} is {length} characters long, "
                         f"over the limit of {limit}: event refused")


def clip(text: str, limit: int = OUTPUT_MAX) -> str:
    """``text`` cut to at most ``limit`` characters, the mark ``[truncated N chars]`` included.

    Clipping a clipped text changes nothing, so every intake can clip again.
    """
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    while True:
        mark = f" [truncated {cut} chars]"
        keep = limit - len(mark)
        if len(text) - keep == cut:
            return text[:keep] + mark
        cut = len(text) - keep


def limit_fields(record: Mapping[str, Any]) -> Tuple[dict, List[str]]:
    """``record`` (an event as a JSON object) with every field within :data:`LIMITS`, and a
    note for each field clipped.  Raise :class:`LimitError` for a name over its limit, and
    ValueError for an attempt or downtime depth out of range."""
    out = None
    notes: List[str] = []
    for name, (limit, action) in LIMITS.items():
        value = record.get(name)
        if not isinstance(value, str) or len(value) <= limit:
            continue
        if action == REFUSE:
            raise LimitError(name, len(value), limit)
        if out is None:
            out = dict(record)
        out[name] = clip(value, limit)
        notes.append(f"the {_WHAT[name]} was {len(value)} characters long: clipped to {limit}")
    for name, low in (("attempt", 1), ("downtime", 0)):
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= COUNT_MAX:
            raise ValueError(f"the {name} {value!r} is out of range: expected {low} to {COUNT_MAX}")
    return (record if out is None else out), notes


def refusal_record(message: str, record: Mapping[str, Any], now: float, source: str) -> dict:
    """The ``rejected`` record of an event refused by its limits: why, who refused it, and
    which event (its names cut to 200 characters, saying how long they were)."""
    from .kinds import REJECTED  # an error path: kinds imports typing, the hot path does not

    def cut(name: str) -> str:
        return name[:200] + (f" [{len(name)} chars]" if len(name) > 200 else "")

    host, service = str(record.get("host") or ""), record.get("service")
    what = cut(host) + (f"/{cut(str(service))}" if service else "")
    return {"time": now, "kind": REJECTED, "source": source, "reason": message,
            "text": f"event for {what}: state {record.get('state')}"}
