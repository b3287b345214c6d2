"""The storage seam's interfaces and the values that cross it (see the package's docstring).

Backends (``storage.local``, ``cluster.storage``) import this module, never the
package, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Iterator, List, Mapping, NamedTuple, Optional, Protocol, Sequence,
                    Tuple)

from ..errors import EscalatorError

if TYPE_CHECKING:
    from ..config import Config
    from ..planning.state import State

#: Where a journal has got to.  Opaque to the collector: a :class:`Journal`
#: hands positions out and takes them back, and the :class:`Snapshot` of the
#: same backend stores them (so it must be able to serialise them).
Position = Any


class LeadershipLost(EscalatorError):
    """This collector is not (or no longer surely) the one allowed to act."""


class StorageUnavailable(EscalatorError):
    """The shared store cannot be reached; nothing was written."""


class PositionLost(EscalatorError):
    """A journal cannot continue from a snapshot's position (the records after it are gone)."""


class Taken(NamedTuple):
    """One line (or key) taken from the intake."""

    source: str                 # where it came from, for a ``rejected`` record (a spool file, a key)
    line: int                   # its number there (1-based; 0 when the source has no lines)
    record: Optional[dict]      # None: not a complete JSON object
    raw: str                    # the text as taken (kept, truncated, in a ``rejected`` record)
    trusted: bool = False       # from a channel that proves an operator (the control directory)
    distrust: Optional[str] = None   # why an operator's record from it is refused, when not trusted


@dataclass(frozen=True)
class Batch:
    """What one ``Intake.take()`` returned; hand it to ``Journal.append`` and ``acknowledge``."""

    items: Tuple[Taken, ...] = ()
    token: Any = None           # the implementation's own note of what to acknowledge
    more: bool = False          # the intake held more than one batch: take again at once

    def __bool__(self) -> bool:
        return bool(self.items) or bool(self.token)


class Intake(Protocol):
    """Events (and operator controls) waiting for the collector."""

    def prepare(self) -> None:
        """Check (or create) what this node's handler writes to; before ``open``."""

    def open(self) -> None:
        """Get ready to take: e.g. open the wake-up channel."""

    def gather(self) -> None:
        """Bring in what this node's handler spooled, leader or not (a cluster forwards its
        local spool; one node has nothing to do: the spool is the intake)."""

    def take(self) -> Batch:
        """What waits now, oldest first, including what was taken before but never
        acknowledged.  Removes nothing."""

    def acknowledge(self, batch: Batch) -> None:
        """Forget ``batch`` for good; called only after ``Journal.append`` of its records
        returned.  Idempotent (a journal may have removed the batch in its own write)."""

    def pending(self) -> bool:
        """Whether anything waits (a cheap look, for deciding to exit or go on)."""

    def wakeup_fd(self) -> int:
        """A non-blocking file descriptor that turns readable when something may have arrived
        (-1: none).  The collector select()s on it while idle and reads it empty."""

    def close(self) -> None:
        """Release what ``open`` got; safe to call when ``open`` was not called."""


@dataclass
class ReadStats:
    """What a ``Journal.read`` skipped, and where it ended."""

    corrupt: int = 0            # records that could not be read (torn or damaged)
    end: Any = None             # the position after the last record read (None: nothing read)


class Journal(Protocol):
    """The durable, append-only record of everything seen, decided and done.

    Records are JSON-able dicts with ``time`` and ``kind``.  Only the leader
    appends; a backend for several nodes refuses (:class:`LeadershipLost`) an
    append by a collector that no longer leads (fencing).
    """

    def append(self, records: Sequence[Mapping[str, Any]], batch: Optional[Batch] = None) -> Position:
        """Store ``records`` durably, all or none, in order; return the position after them.
        With ``batch`` (what ``records`` were made of), a backend may remove it from the
        intake in the same atomic write."""

    def read(self, since: Optional[Position], stats: Optional[ReadStats] = None) -> Iterator[Tuple[Position, dict]]:
        """(position after it, record) for every record after ``since`` (None: from the
        oldest kept), in append order.  Unreadable records are counted in ``stats`` and
        skipped, never fatal.  Raises :class:`PositionLost` when ``since`` cannot be
        continued from."""

    def is_new(self) -> bool:
        """Whether the next append starts a new segment (a new file after a logrotate): its
        first record must then carry the state (a ``checkpoint``), for old segments may go."""

    def create(self) -> None:
        """Make sure the journal exists, empty if new (``status`` tells "missing" from "quiet")."""

    def recent(self, kinds: Tuple[str, ...], limit: int = 20) -> List[dict]:
        """The last ``limit`` records of ``kinds``, oldest first (a bounded read from the end)."""


class Snapshot(Protocol):
    """The folded state as of a journal position, so a start need not fold all history.

    What an implementation must guarantee (the collector relies on nothing else):

    - ``load`` returns the state and position of one completed ``save`` (the
      latest, or None when there is none or it is unreadable): never a mix of
      two saves, never a torn one.  A crash during ``save`` leaves the previous
      snapshot loadable.
    - The loaded state, with every journal record after the loaded position
      folded on top, equals the fold of the whole journal: a snapshot may lag
      behind the journal as far as it likes, but is never ahead of it.
    - ``due`` bounds the cost: a save costs O(checks), so it is due at intervals
      (time or journal written since), never after every cycle.
    """

    def load(self, config: Config) -> Optional[Tuple[State, Position]]:
        """The last saved state (remapped to ``config``) and the journal position it covers."""

    def due(self) -> bool:
        """Whether a save is worth its cost now."""

    def save(self, state: State, position: Position) -> None:
        """Record ``state`` as the fold of the journal up to ``position`` (at once)."""


class Leadership(Protocol):
    """Who may act: one collector per escalator (a file lock; a lease in a cluster)."""

    def acquire(self, timeout: float) -> bool:
        """Try to lead, waiting up to ``timeout`` seconds.  True: leading.  False: another
        collector leads and waiting for it is normal (a cluster's standby; ``holder`` names
        it).  Raises :class:`~escalator_handlers.errors.LockedError` when another collector
        holds what must never be shared (one node: a second collector on a spool is a
        mistake to report)."""

    def check(self) -> Optional[str]:
        """None when this collector surely still leads, else why not.  Called just before
        each step process starts (from the runner's threads, and in the child between fork
        and exec, so it must not raise): with a lease, "surely" means renewed less than TTL
        minus a margin ago, so a collector frozen past its lease starts nothing."""

    def announce(self, what: Mapping[str, Any]) -> None:
        """Record, where a successor will look, that the step ``what`` is about to start;
        raises :class:`LeadershipLost` when refused.  One node: nothing to do (the journal's
        run ``start`` and the lock are enough)."""

    def previous(self) -> Optional[dict]:
        """What the previous leader last announced (read at recovery), or None."""

    def facts(self) -> dict:
        """Fields added to a run's ``start`` and ``run`` records ({} for one node; a
        cluster's node name and fencing token)."""

    def tenure_record(self, now: float) -> Optional[dict]:
        """A journal record saying this tenure began (a cluster journals every leadership),
        or None."""

    def holder(self) -> Optional[str]:
        """Who leads, as far as the last ``acquire`` saw (a node name, a pid), or None."""

    def release(self) -> None:
        """Stop leading; safe to call when not leading."""

    def close(self) -> None:
        """Release, and let go of anything held for campaigning (a lease, a thread)."""

    @property
    def held(self) -> bool:
        """Whether ``acquire`` succeeded and neither ``release`` nor a loss happened since."""


@dataclass(frozen=True)
class Storage:
    """One backend's four parts, as the collector receives them."""

    intake: Intake
    journal: Journal
    snapshot: Snapshot
    leadership: Leadership


@dataclass
class Recovered:
    """The state a collector starts from: ``Snapshot`` plus the journal after it."""

    state: State
    position: Position
    tail: List[dict] = field(default_factory=list)   # the records folded after the snapshot
    corrupt: int = 0                                   # journal records skipped as unreadable


__all__ = ["Batch", "Intake", "Journal", "Leadership", "LeadershipLost", "Position", "PositionLost",
           "ReadStats", "Recovered", "Snapshot", "Storage", "StorageUnavailable", "Taken"]
