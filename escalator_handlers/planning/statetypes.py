"""What the state fold keeps per check, per escalation episode and per operator hold.

Plain records for :mod:`escalator_handlers.planning.state`, with their ``state.json``
forms (what it keeps of runs is in :mod:`escalator_handlers.planning.runs`).
"""

from __future__ import annotations

import fnmatch
from collections import abc
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Set, Tuple

from ..event import GOOD_STATES, CheckKey


class CheckState:
    """Latest observed state of one check."""

    __slots__ = ("state", "state_type", "attempt", "downtime", "output", "time", "since", "level", "levels")

    def __init__(self) -> None:
        self.state: Optional[str] = None
        self.state_type = "HARD"
        self.attempt = 1
        self.downtime = 0
        self.output = ""
        self.time = 0.0
        self.since = 0.0
        self.level: Optional[int] = None  # mapped level for the current state
        # Problem state -> its mapped level, remembered (State.observe): a busy log
        # changes a check's state back and forth, and the config maps it alike each time.
        self.levels: Optional[Dict[str, Optional[int]]] = None

    @property
    def good(self) -> bool:
        return self.state is None or self.state in GOOD_STATES

    def to_json(self) -> list:
        return [self.state, self.state_type, self.attempt, self.downtime, self.output, self.time, self.since]

    @classmethod
    def from_json(cls, data: list) -> "CheckState":
        cs = cls()
        cs.state, cs.state_type, cs.attempt, cs.downtime, cs.output, cs.time, cs.since = data
        return cs


@dataclass
class Episode:
    """Consecutive unconverged runs starting at one level."""

    attempts: int = 0
    pending: Set[CheckKey] = field(default_factory=set)  # checks not yet seen OK since
    held: bool = False
    escalated: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Hold:
    """An operator's ``escalator hold``: hands off the checks it matches, until it expires.

    ``host`` and ``service`` are shell globs, as in check rules; no ``service``
    holds every check of the matching hosts.
    """

    host: str
    service: Optional[str] = None
    until: Optional[float] = None   # epoch seconds; None = until released
    reason: str = ""
    user: str = ""
    since: float = 0.0

    @property
    def label(self) -> str:
        return self.host if self.service is None else f"{self.host}/{self.service}"

    def shifted(self, delta: float) -> "Hold":
        """This hold on a wall clock stepped by ``delta`` (``State.shift``): as long left to run."""
        return replace(self, since=self.since + delta, until=None if self.until is None else self.until + delta)

    def matches(self, key: CheckKey) -> bool:
        host, service = key
        if not fnmatch.fnmatchcase(host, self.host):
            return False
        return self.service is None or (service is not None and fnmatch.fnmatchcase(service, self.service))

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "Hold":
        until = float(rec["until"]) if rec.get("until") is not None else None
        if until is not None and not until - until == 0.0:
            until = None  # NaN or infinite: no expiry to wait for (a NaN wake-up would spin the collector)
        return cls(str(rec["host"]), rec.get("service") or None, until,
                   str(rec.get("reason") or ""), str(rec.get("user") or ""), float(rec.get("time") or 0.0))


def hold_label(host: str, service: Optional[str]) -> str:
    return host if not service else f"{host}/{service}"


def key_of(rec: Mapping[str, Any]) -> CheckKey:
    return (rec["host"], rec.get("service") or None)


def keys_of(checks: Any) -> Tuple[CheckKey, ...]:
    """Check keys from a record's ``checks`` list (dicts or pairs)."""
    out = []
    for c in checks or ():
        if type(c) is dict or isinstance(c, abc.Mapping):  # records' checks are dicts: the cheap test first
            out.append(key_of(c))
        else:
            out.append((c[0], c[1] or None))
    return tuple(out)
