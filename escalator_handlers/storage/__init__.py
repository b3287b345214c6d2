"""The storage seam: the four things the collector keeps or holds outside itself.

The collector talks only to these interfaces.  :mod:`.local` implements them
with files (one node: the spool directory, ``journal.jsonl``, ``state.json``,
a file lock); :mod:`escalator_handlers.cluster.storage` implements them on
etcd (several nodes, one logical collector).  The handler's hot path is not
behind the seam: it appends to the local spool directly
(:mod:`escalator_handlers.spool`); bringing that spool into a shared intake is
the intake's business (``Intake.gather``).

The collector uses them in one order, and every implementation must make that
order safe (this is the whole crash-safety argument: read it before writing
a backend):

1. ``leadership.acquire()``: at most one collector acts per escalator.
2. ``snapshot.load()`` then ``journal.read(position)``: the state is the
   snapshot plus every journal record after the position it covers
   (:func:`recover`).
3. ``intake.take()`` -> ``journal.append(records, batch)`` ->
   ``intake.acknowledge(batch)``: an event may leave the intake only once the
   journal holds it.  A batch taken but not acknowledged (a crash) is taken
   again; the collector drops records whose ``id`` it journalled already, so
   an implementation may deliver a record twice but must never lose one.
4. Decisions and run records are appended *before* the effect they describe
   (a run's ``start`` before its first step); just before each step starts,
   ``leadership.announce()`` then ``leadership.check()``.
5. ``snapshot.save(state, position)`` when ``snapshot.due()``, and when the
   collector leaves; skipping a save is always safe (the journal is the
   write-ahead log).

Every method may raise :class:`~escalator_handlers.errors.EscalatorError`
(a message for the operator).  A backend shared by several nodes raises
:class:`LeadershipLost` when a write shows another collector leads now, and
:class:`StorageUnavailable` when it cannot reach its store; the collector
then stops acting, forgets its state and campaigns again.  A local backend
raises neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Iterator, List, Mapping, NamedTuple, Optional, Protocol, Sequence,
                    Tuple)

from ..errors import EscalatorError

if TYPE_CHECKING:
    from ..config import Config
    from ..planning.state import State
    from ..system import System

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


def open_storage(config: Config, system: Optional[System] = None) -> Storage:
    """The backend ``config`` asks for (nothing opened or created yet): etcd with
    ``cluster:``, local files without; local effects go through ``system``."""
    if getattr(config, "cluster", None) is not None:
        from ..cluster.storage import open_cluster

        return open_cluster(config)
    from ..system import REAL
    from .local import open_local

    return open_local(config, system or REAL)


def load(config: Config) -> Recovered:
    """The state as of the end of the journal, for readers (status, plan, control): the
    backend ``config`` asks for, recovered without taking the leadership."""
    storage = open_storage(config)
    try:
        return recover(storage, config)
    finally:
        storage.leadership.close()


def recent(config: Config, kinds: Tuple[str, ...], limit: int = 20) -> List[dict]:
    """The last ``limit`` journal records of ``kinds``, for readers."""
    storage = open_storage(config)
    try:
        return storage.journal.recent(kinds, limit)
    finally:
        storage.leadership.close()


def recover(storage: Storage, config: Config) -> Recovered:
    """Load the snapshot and fold every later journal record into it (from scratch when
    the journal cannot continue from the snapshot's position)."""
    from ..planning.state import State

    loaded = storage.snapshot.load(config)
    state, position = loaded if loaded is not None else (State(config), None)
    stats = ReadStats()
    tail: List[dict] = []
    try:
        _fold(storage.journal.read(position, stats), state, tail, stats)
    except PositionLost as exc:
        import logging

        logging.getLogger("escalator").warning("%s; rebuilding the state from every journal record", exc)
        state, position, tail, stats = State(config), None, [], ReadStats()
        _fold(storage.journal.read(None, stats), state, tail, stats)
    return Recovered(state, stats.end if stats.end is not None else position, tail, stats.corrupt)


def _fold(records: Iterator[Tuple[Position, dict]], state: State, tail: List[dict], stats: ReadStats) -> None:
    for _, rec in records:
        try:
            state.apply(rec)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A damaged or hand-edited record must not keep every collector from starting.
            stats.corrupt += 1
            import json
            import logging

            logging.getLogger("escalator").warning(
                "journal: skipping a record that cannot be folded (%s: %s): %.200s",
                type(exc).__name__, exc, json.dumps(rec, default=str))
            continue
        tail.append(rec)


__all__ = ["Batch", "Intake", "Journal", "Leadership", "LeadershipLost", "Position", "PositionLost", "ReadStats",
           "Recovered", "Snapshot", "Storage", "StorageUnavailable", "Taken", "load", "open_storage", "recent",
           "recover"]
