"""Events: one observed state of one check, as Nagios or Icinga reported it.

An event is a plain frozen value.  The spool, the journal and replay all
carry events as JSON objects with the field names of docs/operating.rst; this module
converts between the two and normalises states.  It imports only the
standard library's lightest modules (and :mod:`escalator_handlers.kinds`, names
alone) because the handler uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from . import kinds
from .event_limits import COUNT_MAX, LIMITS, LimitError, clip, limit_fields  # noqa: F401 (re-exported)

SERVICE_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
HOST_STATES = ("UP", "DOWN", "UNREACHABLE")
STATES = SERVICE_STATES + HOST_STATES
GOOD_STATES = frozenset(("OK", "UP"))
STATE_TYPES = ("SOFT", "HARD")

# Nagios passes numeric states in some macros ($SERVICESTATEID$, $HOSTSTATEID$).
_SERVICE_IDS = {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}
_HOST_IDS = {"0": "UP", "1": "DOWN", "2": "UNREACHABLE"}

#: (host, service) -- service is None for a host check.
CheckKey = Tuple[str, Optional[str]]


def normalise_state(state: str, is_host: bool) -> str:
    """Return the canonical upper-case state name or raise ValueError."""
    s = str(state).strip().upper()
    if s.isdigit():
        table = _HOST_IDS if is_host else _SERVICE_IDS
        if s in table:
            return table[s]
    valid = HOST_STATES if is_host else SERVICE_STATES
    if s in valid:
        return s
    # Some setups pass a host check's plugin result (OK/WARNING/...) instead of
    # UP/DOWN.  Translate it as Nagios itself does (base/checks.c, without
    # use_aggressive_host_checking): WARNING means the host is UP; CRITICAL and
    # UNKNOWN mean DOWN.  The handler keeps the word it was given as ``reported_state``.
    if is_host and s in ("OK", "WARNING"):
        return "UP"
    if is_host and s in ("CRITICAL", "UNKNOWN"):
        return "DOWN"
    kind = "host" if is_host else "service"
    raise ValueError(f"invalid {kind} state {state!r}: expected one of {', '.join(valid)}")


def normalise_state_type(state_type: str) -> str:
    s = str(state_type).strip().upper()
    if s in ("0", "SOFT"):
        return "SOFT"
    if s in ("1", "HARD"):
        return "HARD"
    raise ValueError(f"invalid state type {state_type!r}: expected SOFT or HARD")


@dataclass(frozen=True)
class Event:
    """One observed check state.  ``state`` None means "downtime change only"."""

    time: float
    host: str
    service: Optional[str]
    state: Optional[str]
    state_type: str = "HARD"
    attempt: int = 1
    downtime: int = 0
    output: str = ""
    id: Optional[str] = None
    reported_state: Optional[str] = None   # the word given, when translated (host WARNING -> UP)
    #: When the check that produced this state was executed (epoch seconds), as the
    #: monitoring says: Nagios's $LASTSERVICECHECK$, Icinga's ``execution_start``.
    #: None when the source does not say; ``time`` is then the best there is.
    check_time: Optional[float] = None

    @property
    def key(self) -> CheckKey:
        return (self.host, self.service)

    @property
    def is_host(self) -> bool:
        return self.service is None

    def to_dict(self) -> dict:
        d = {
            "time": self.time,
            "host": self.host,
            "service": self.service,
            "state": self.state,
            "state_type": self.state_type,
            "attempt": self.attempt,
            "downtime": self.downtime,
            "output": self.output,
        }
        if self.id is not None:
            d["id"] = self.id
        if self.reported_state is not None:
            d["reported_state"] = self.reported_state
        if self.check_time is not None:
            d["check_time"] = self.check_time
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Event":
        """Build an event from a JSON object; raise ValueError when it is not one, or when a
        field is over its limit (:func:`limit_fields`: the output is clipped, a name refused)."""
        d, _ = limit_fields(d)
        try:
            host = d["host"]
            time = float(d["time"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: float(10**400)
            raise ValueError(f"not an event: missing or bad {exc}") from None
        if not time - time == 0.0:  # NaN or infinite, without importing math (see parse_time)
            raise ValueError(f"not an event: time must be a finite number of epoch seconds, not {time!r}")
        if not isinstance(host, str) or not host:
            raise ValueError("not an event: host must be a non-empty string")
        service = d.get("service")
        if service is not None and not isinstance(service, str):
            raise ValueError("not an event: service must be a string or null")
        state = d.get("state")
        reported = d.get("reported_state")
        if state is not None:
            given = str(state).strip().upper()
            state = normalise_state(state, service is None)
            if given != state and not given.isdigit():
                reported = given
        check_time = d.get("check_time")
        if check_time is not None:
            try:
                check_time = float(check_time)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"not an event: check_time must be epoch seconds, not {check_time!r}") from None
            if not check_time - check_time == 0.0:
                raise ValueError(f"not an event: check_time must be a finite number, not {check_time!r}")
        rid = d.get("id")
        if rid is not None and not isinstance(rid, str):
            raise ValueError(f"not an event: id must be a string, not {type(rid).__name__}")
        try:
            attempt, downtime = int(d.get("attempt") or 1), int(d.get("downtime") or 0)
        except OverflowError:  # int(inf)
            raise ValueError("not an event: attempt and downtime must be whole numbers") from None
        if not (1 <= attempt <= COUNT_MAX and 0 <= downtime <= COUNT_MAX):
            raise ValueError(f"not an event: attempt {attempt} or downtime {downtime} out of range "
                             f"(attempt 1 to {COUNT_MAX}, downtime 0 to {COUNT_MAX})")
        return cls(
            time=time,
            host=host,
            service=service or None,
            state=state,
            state_type=normalise_state_type(d.get("state_type") or "HARD"),
            attempt=attempt,
            downtime=downtime,
            output=clip(str(d.get("output") or "")),
            id=rid,
            reported_state=reported if isinstance(reported, str) else None,
            check_time=check_time,
        )


def observation_id(host: str, service: Optional[str], state: Optional[str], state_type: str,
                   downtime: int, check_time: Optional[float]) -> Optional[str]:
    """One observation's name whatever its source (two HA masters streaming, the stream and
    the EventCommand): host, service, state, state type, whether in downtime and the check's
    own execution time (never the time it was emitted).  None without a check time."""
    if check_time is None:
        return None
    import hashlib  # not on the handler's path: only readers of check_time pay for it

    text = "\0".join((host, service or "", state or "", state_type, "1" if downtime > 0 else "0",
                      f"{check_time:.3f}"))
    return "obs-" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def finite_number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None when it is not one (JSON from Icinga or a file)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f - f == 0.0 else None  # NaN and infinities, without importing math


def check_name(key: CheckKey) -> str:
    """Human name of a check: ``host`` or ``host/service``."""
    host, service = key
    return host if service is None else f"{host}/{service}"


#: How far ahead of the receiver's clock an event may claim to be (clock skew between
#: a monitoring node and this one).  Beyond it the claimed time is not believed.
MAX_SKEW = 300.0
#: Before this (2000-01-01T00:00:00Z) a claimed time is a broken clock or a typo.
EARLIEST = 946684800.0


def clamp_reason(claimed: float, now: float) -> Optional[str]:
    """Why an event's claimed time cannot be used as given (it is then recorded as ``now``,
    keeping ``claimed_time``), or None.  A time far in the future would stall the
    debounce and win over every later observation; one before 2000 is no real observation."""
    if claimed > now + MAX_SKEW:
        return (f"its time {iso_time(claimed)} is {claimed - now:.0f}s in the future "
                f"(more than the {MAX_SKEW:.0f}s allowed for clock skew)")
    if claimed < EARLIEST:
        return f"its time {iso_time(claimed)} is before 2000: not a real observation time"
    return None


def arrival_record(ev: "Event", rec: Mapping[str, Any], now: float) -> Tuple[dict, Optional[str]]:
    """The journal record of an event taken from the spool at ``now``, and why its time
    was not believed (or None).

    ``arrived`` is the receiver's own clock: the debounce and ``max_delay`` run on
    it, whatever time the event claims.  A claimed time that cannot be trusted
    (see ``clamp_reason``) is replaced by ``now``, keeping ``claimed_time``.
    """
    out = dict(ev.to_dict(), kind=kinds.EVENT, arrived=now)
    if isinstance(rec.get("source"), str):
        out["source"] = rec["source"][:40]  # e.g. "replay": handed over by `replay --execute`
    if isinstance(rec.get("claimed_time"), (int, float)):
        out["claimed_time"] = rec["claimed_time"]  # the handler clamped it already
    why = clamp_reason(ev.time, now)
    if why:
        out["claimed_time"], out["time"], out["clamped"] = ev.time, now, why
    return out, why


def iso_time(t: float) -> str:
    """ISO 8601 in UTC with its zone, as every time shown to a person is."""
    import time as _time

    try:
        return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(t))
    except (OverflowError, ValueError, OSError):
        return f"{t!r} (epoch seconds)"


def parse_time(value: str) -> float:
    """Epoch seconds from epoch seconds or ISO 8601 (``2026-11-29T03:00:00Z``, an offset,
    or no zone = UTC); raise ValueError."""
    text = value.strip()
    try:
        t = float(text)
    except ValueError:
        from datetime import datetime, timezone

        try:
            dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text)
        except ValueError:
            raise ValueError(f"expected epoch seconds or ISO 8601 such as 2026-11-29T03:00:00Z, "
                             f"not {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        t = dt.timestamp()
    if t != t:  # NaN, without importing math
        raise ValueError(f"{value!r} is not a number: expected epoch seconds or ISO 8601")
    if not 0 <= t <= LATEST:
        raise ValueError(f"{value!r} is out of range: expected a time from 1970 to 9999 "
                         f"(epoch seconds 0 to {LATEST:.0f}) or ISO 8601")
    return t


#: The last second of year 9999, the latest time ISO 8601 (and Python's datetime) can write.
LATEST = 253402300799.0
