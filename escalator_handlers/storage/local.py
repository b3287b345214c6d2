"""The storage seam on local files: one node, one collector per spool.

- :class:`LocalIntake`: the spool directory (:mod:`escalator_handlers.spool`
  writes it: the handler's hot path); taken files are removed only when
  acknowledged, and the spool's wake-up FIFO wakes the collector.
- :class:`LocalJournal`: ``journal.jsonl`` (:mod:`escalator_handlers.journal`),
  followed across logrotate's renames (``journal.jsonl.1``, ``.2.gz``...).  A
  position is (device, inode, offset).
- :class:`LocalSnapshot`: ``state.json``, the fold plus the position it
  covers, replaced atomically (write, fsync, rename, fsync the directory), so
  a crash leaves either the old or the new one and the journal covers the rest.
  Due every ``SNAPSHOT_EVERY`` seconds: its cost grows with the number of
  checks, the journal's with the number of events.
- :class:`LocalLeadership`: ``collector.lock`` (an ``flock``) in the state
  directory, beside the journal; a second ``collector.lock`` in the spool,
  with ``collector.pid`` beside it, is the sign handlers, ``status`` and
  ``check_escalator`` probe.

Writes, fsyncs, renames and removals go through the
:class:`~escalator_handlers.system.System` given to :func:`open_local`
(crash tests hand in one that kills the process half-way).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

from .. import journal, spool, spool_reader
from ..config import Config
from ..defaults import STATE_DIR_MODE
from ..errors import EscalatorError, LockedError
from ..planning.state import State
from ..safefs import FlockFile, UnsafePath, follow_owner, write_atomic
from ..system import REAL, System
from .seam import Batch, PositionLost, ReadStats, Storage, Taken

log = logging.getLogger("escalator")

#: A running collector writes the snapshot at most this often (seconds), and
#: when it stops; a start folds the journal written since.
SNAPSHOT_EVERY = 60.0


@dataclass
class Position:
    """How far into which journal file the state has folded."""

    dev: int = 0
    ino: int = 0
    offset: int = 0


class LocalIntake:
    """The spool directory's collector side."""

    def __init__(self, spool_dir: str, mode: int, system: System = REAL, state_dir: Optional[str] = None) -> None:
        self.spool_dir = spool_dir
        self.mode = mode
        self.system = system
        self.state_dir = state_dir   # its control/ holds the operators' commands (None: no commands)
        self._wake_fd = -1

    def prepare(self) -> None:
        spool.check_spool_dir(self.spool_dir, create=True, mode=self.mode)

    def open(self) -> None:
        if self._wake_fd < 0:
            self._wake_fd = spool_reader.open_wakeup(self.spool_dir)

    def gather(self) -> None:
        pass  # the handlers write the spool itself

    def take(self) -> Batch:
        commands = self.take_commands()
        try:
            paths = spool_reader.take(self.spool_dir, self.system)
        except EscalatorError:
            if not commands:
                raise
            # The operator's commands still count (a pause above all); the spool's problem is
            # raised again at the next take.
            return commands
        if not paths:
            return commands
        items = tuple(Taken(os.path.basename(path), lineno, rec, raw)
                      for path in paths for lineno, rec, raw in spool_reader.read_records(path))
        return Batch(commands.items + items, tuple(commands.token or ()) + tuple(paths))

    def take_commands(self) -> Batch:
        """The operators' commands waiting in the control directory (see :mod:`..control_dir`)."""
        if self.state_dir is None:
            return Batch()
        from .. import control_dir

        items, paths = control_dir.take(self.state_dir)
        return Batch(tuple(items), tuple(paths)) if items else Batch()

    def acknowledge(self, batch: Batch) -> None:
        if batch.token:
            spool_reader.finish(list(batch.token), self.system)

    def pending(self) -> bool:
        if self.state_dir is not None:
            from .. import control_dir

            if control_dir.take(self.state_dir)[1]:
                return True
        return spool_reader.pending_stats(self.spool_dir)[0] > 0

    def wakeup_fd(self) -> int:
        return self._wake_fd

    def close(self) -> None:
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1


class LocalJournal:
    """``journal.jsonl``: appended by the lock holder only, so appends need no lock of their own."""

    def __init__(self, path: str, system: System = REAL) -> None:
        self.path = path
        self.system = system

    def append(self, records: Sequence[Mapping[str, Any]], batch: Optional[Batch] = None) -> Optional[Position]:
        end = journal.append(self.path, records, self.system)
        ident = journal.identity(self.path)
        return Position(ident[0], ident[1], end) if ident is not None else None

    def is_new(self) -> bool:
        return journal.is_new(self.path)

    def create(self) -> None:
        if not os.path.exists(self.path):
            journal.create(self.path)

    def read(self, since: Optional[Position], stats: Optional[ReadStats] = None) -> Iterator[Tuple[Position, dict]]:
        stats = stats if stats is not None else ReadStats()
        segments = self._segments(since)
        if segments is None:
            raise PositionLost(f"the journal file the state snapshot ends in is gone (compressed or removed "
                               f"by logrotate) from {os.path.dirname(os.path.abspath(self.path))}")
        raw = journal.ReadStats()
        try:
            for path, offset in segments:
                ident = journal.identity(path) if not path.endswith(".gz") else None
                last = offset
                try:
                    for last, rec in journal.read(path, offset, raw):
                        yield (Position(ident[0], ident[1], last) if ident else None), rec
                except (OSError, EOFError) as exc:  # EOFError: a .gz cut short
                    raise EscalatorError(f"cannot read journal {path}: "
                                         f"{getattr(exc, 'strerror', None) or exc}") from None
                if ident is not None:
                    # Where the next read starts, even when this file held nothing new
                    # (so the position leaves a rotated file behind).
                    stats.end = Position(ident[0], ident[1], last)
        finally:
            stats.corrupt += raw.corrupt

    def _segments(self, pos: Optional[Position]) -> Optional[List[Tuple[str, int]]]:
        """(file, offset) pairs to read after ``pos``, oldest first; None when ``pos`` is in
        no journal file any more."""
        path = self.path
        ident = journal.identity(path)
        current = [(path, 0)] if ident is not None else []
        if pos is None or pos.ino == 0:
            # No snapshot (or one taken before any journal existed): every rotated journal
            # (.N.gz included) and the current one.  logrotate's `create` makes a new, empty
            # journal at once, so "the journal exists" says nothing about the rotated ones.
            return [(p, 0) for p in journal.rotated(path)] + current
        if ident == (pos.dev, pos.ino):
            size = os.path.getsize(path)
            return [(path, pos.offset if pos.offset <= size else 0)]
        older = journal.rotated(path)
        for i, p in enumerate(older):
            if not p.endswith(".gz") and journal.identity(p) == (pos.dev, pos.ino):
                # Rotated (maybe several times) since the snapshot: that file from where the
                # snapshot ends, then every newer one.
                return [(p, pos.offset)] + [(q, 0) for q in older[i + 1:]] + current
        return None

    def recent(self, kinds: Tuple[str, ...], limit: int = 20, max_bytes: int = 4 << 20) -> List[dict]:
        """Reads at most ``max_bytes`` from the end of the current journal file."""
        path = self.path
        try:
            size = os.path.getsize(path)
        except OSError:
            return []
        start = max(0, size - max_bytes)
        out: List[dict] = []
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if start:
                    f.readline()  # skip a partial line
                offset = f.tell()
            for _, rec in journal.read(path, offset):
                if rec.get("kind") in kinds:
                    out.append(rec)
                    if len(out) > limit:
                        out.pop(0)
        except OSError as exc:
            raise EscalatorError(f"cannot read journal {path}: {exc.strerror or exc}") from None
        return out


class LocalSnapshot:
    """``state.json``: replaced whole and atomically, at most every ``SNAPSHOT_EVERY`` seconds."""

    def __init__(self, path: str, system: System = REAL) -> None:
        self.path = path
        self.system = system
        self._saved_at: Optional[float] = None   # the system's monotonic time of the last save

    def load(self, config: Config) -> Optional[Tuple[State, Position]]:
        try:
            with open(self.path, encoding="ascii") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # A damaged snapshot is not fatal: the journal holds the truth.
            log.warning("ignoring unreadable state snapshot %s (%s); rebuilding from the journal", self.path, exc)
            return None
        if not isinstance(data, dict) or "state" not in data:
            return None
        try:
            return State.from_json(config, data["state"]), Position(**data.get("journal", {}))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring incompatible state snapshot %s (%s)", self.path, exc)
            return None

    def due(self) -> bool:
        return self._saved_at is None or self.system.monotonic() - self._saved_at >= SNAPSHOT_EVERY

    def save(self, state: State, position: Optional[Position]) -> None:
        path = self.path
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        # O_EXCL and an unpredictable name: nothing planted there can redirect the write.
        tmp = f"{path}.tmp.{os.getpid()}.{os.urandom(8).hex()}"
        data = json.dumps({"journal": (position or Position()).__dict__, "state": state.to_json()},
                          ensure_ascii=True, separators=(",", ":")).encode("ascii")
        system = self.system
        try:
            fd = system.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
            try:
                follow_owner(fd, os.stat(d))
                spool.write_at_end(fd, 0, data, system.write)
                system.fsync(fd)
            finally:
                system.close(fd)
            system.replace(tmp, path)
            dfd = system.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                system.fsync(dfd)
            finally:
                system.close(dfd)
        except OSError as exc:
            try:
                system.unlink(tmp)
            except OSError:
                pass
            raise EscalatorError(f"cannot write state snapshot {path}: {exc.strerror}") from None
        self._saved_at = system.monotonic()


class LocalLeadership:
    """Who may act: ``collector.lock`` in the state directory, held while the collector runs.

    The lock that decides lives beside the journal and ``state.json``, in a
    directory only escalator's own user (and root) may write: the spool's
    owner removing or replacing a lock file there is impossible, so two
    collectors never act at once.  ``collector.lock`` in the spool is only
    the sign handlers and ``status`` probe (``spool.collector_running``),
    held too, with ``collector.pid`` beside it; all three are created
    without following symlinks and never truncated (:mod:`..safefs`).
    """

    def __init__(self, spool_dir: str, state_dir: Optional[str] = None) -> None:
        self.spool_dir = spool_dir
        self.state_dir = state_dir if state_dir is not None else spool_dir
        self._lock = FlockFile(self.state_dir, spool.LOCK, 0o600)
        self._sign = (FlockFile(spool_dir, spool.LOCK, 0o644)
                      if os.path.abspath(self.state_dir) != os.path.abspath(spool_dir) else None)

    def acquire(self, timeout: float = 1.0) -> bool:
        lock = self._lock
        try:
            os.makedirs(self.state_dir, STATE_DIR_MODE, exist_ok=True)
            got = lock.acquire(timeout)
        except OSError as exc:
            raise EscalatorError(f"cannot lock {lock.path}: {_why(exc)}{_permission_hint(exc, self.state_dir)}") \
                from None
        if not got:
            raise LockedError(lock.path, spool.collector_running(self.spool_dir))
        if self._sign is not None:
            try:
                if not self._sign.acquire(0):
                    log.warning("%s is locked by another process: handlers and status may not see this "
                                "collector (%s decides who acts)", self._sign.path, lock.path)
            except (FileNotFoundError, NotADirectoryError, UnsafePath):
                pass  # no usable spool: no handler to tell (the intake says what is wrong)
            except OSError as exc:
                log.warning("cannot lock %s (%s): handlers and status may not see this collector; "
                            "remove it", self._sign.path, _why(exc))
        if self._sign is None or self._sign.is_locked:
            self._write_pid()  # beside the sign, for whoever sees it held
        return True

    def _write_pid(self) -> None:
        try:
            write_atomic(self.spool_dir, spool.PID, f"{os.getpid()}\n".encode("ascii"), 0o644)
        except OSError as exc:
            # Only informational (the lock decides who runs): a full disk must not stop us
            # before we get to say what really matters, that the journal cannot be written.
            log.warning("cannot write %s/%s: %s", self.spool_dir, spool.PID, _why(exc))

    def check(self) -> Optional[str]:
        return None  # a flock is held until released: nobody else can have become the leader

    def announce(self, what: Mapping[str, Any]) -> None:
        pass  # the journal's run ``start`` and the lock say it all

    def previous(self) -> Optional[dict]:
        return None

    def facts(self) -> dict:
        return {}

    def tenure_record(self, now: float) -> Optional[dict]:
        return None

    def holder(self) -> Optional[str]:
        pid = spool.collector_running(self.spool_dir)
        return f"pid {pid}" if pid else None

    def release(self) -> None:
        if self.held:
            if self._sign is None or self._sign.is_locked:
                try:
                    os.unlink(os.path.join(self.spool_dir, spool.PID))
                except OSError:
                    pass
            if self._sign is not None:
                self._sign.release()
            self._lock.release()

    def close(self) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _permission_hint(exc: OSError, state_dir: str) -> str:
    from ..control_dir import owner_hint

    return f" ({owner_hint(state_dir)})" if isinstance(exc, PermissionError) else ""


def state_dir(config: Config) -> str:
    """The directory of ``state.json`` (beside the journal unless ``state_file:`` says otherwise):
    the collector's lock and the operators' control directory live there."""
    return os.path.dirname(os.path.abspath(config.state_path))


def open_local(config: Config, system: System = REAL) -> Storage:
    """The local-files backend for ``config`` (nothing is opened or created yet)."""
    return Storage(LocalIntake(config.spool, config.spool_mode, system, state_dir(config)),
                   LocalJournal(config.journal, system),
                   LocalSnapshot(config.state_path, system),
                   LocalLeadership(config.spool, state_dir(config)))


__all__ = ["LocalIntake", "LocalJournal", "LocalLeadership", "LocalSnapshot", "Position", "SNAPSHOT_EVERY",
           "open_local"]
