"""Where the collector's state lives between runs: snapshot plus journal.

``state.json`` is a snapshot of the fold (``state.State``) together with the
journal position it covers (device, inode, offset).  Loading reads the
snapshot and folds every journal record written after it, following the
journal across logrotate renames (``journal.jsonl.1``, ``.2.gz``...).  The snapshot is
replaced atomically (write, fsync, rename, fsync the directory), so a crash
leaves either the old or the new one, and the journal covers the difference.
A running collector writes it every ``SNAPSHOT_EVERY`` seconds at most, not
after every cycle: its cost grows with the number of checks, the journal's
with the number of events.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import journal
from .config import Config
from .errors import EscalatorError
from .planning.state import State

log = logging.getLogger("escalator")

#: A running collector writes the snapshot at most this often (seconds), and
#: when it stops; a start folds the journal written since (see ``load``).
SNAPSHOT_EVERY = 60.0


@dataclass
class Position:
    """How far into which journal file the state has folded."""

    dev: int = 0
    ino: int = 0
    offset: int = 0


@dataclass
class Loaded:
    state: State
    position: Position
    tail: List[dict]           # journal records folded after the snapshot
    corrupt: int               # journal lines skipped as unreadable


def _read_snapshot(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="ascii") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A damaged snapshot is not fatal: the journal holds the truth.
        log.warning("ignoring unreadable state snapshot %s (%s); rebuilding from the journal", path, exc)
        return None
    return data if isinstance(data, dict) and "state" in data else None


def _segments(cfg: Config, pos: Optional[Position]) -> Optional[List[Tuple[str, int]]]:
    """(file, offset) pairs to fold after a snapshot at ``pos``, oldest first; None when
    ``pos`` is in no journal file any more (the snapshot cannot be continued)."""
    path = cfg.journal
    ident = journal.identity(path)
    current = [(path, 0)] if ident is not None else []
    if pos is None or pos.ino == 0:
        # No snapshot (or one taken before any journal existed, so every record follows it):
        # fold every rotated journal (.N.gz included) and the current one.  logrotate's
        # `create` makes a new, empty journal at once, so "the journal exists" says
        # nothing about whether the rotated ones still matter.
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


def load(cfg: Config) -> Loaded:
    """The state as of the end of the journal."""
    snap = _read_snapshot(cfg.state_path)
    pos: Optional[Position] = None
    if snap is not None:
        try:
            state = State.from_json(cfg, snap["state"])
            pos = Position(**snap.get("journal", {}))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring incompatible state snapshot %s (%s)", cfg.state_path, exc)
            state, pos = State(cfg), None
    else:
        state = State(cfg)
    segments = _segments(cfg, pos)
    if segments is None:
        log.warning("the journal the state snapshot %s ends in is gone (compressed or removed by "
                    "logrotate); rebuilding from every journal file", cfg.state_path)
        state, pos = State(cfg), None
        segments = _segments(cfg, None) or []
    tail: List[dict] = []
    stats = journal.ReadStats()
    end = Position()
    for path, offset in segments:
        last = offset
        try:
            for last, rec in journal.read(path, offset, stats):
                try:
                    state.apply(rec)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    # A damaged or hand-edited record must not keep every collector from starting.
                    stats.corrupt += 1
                    log.warning("journal %s: skipping a record that cannot be folded (%s: %s): %.200s",
                                path, type(exc).__name__, exc, journal.dumps(rec))
                    continue
                tail.append(rec)
        except (OSError, EOFError) as exc:  # EOFError: a .gz cut short
            raise EscalatorError(f"cannot read journal {path}: {getattr(exc, 'strerror', None) or exc}") from None
        ident = journal.identity(path) if not path.endswith(".gz") else None
        if ident is not None:
            end = Position(ident[0], ident[1], last)
    if end.ino == 0 and pos is not None:
        end = pos
    return Loaded(state, end, tail, stats.corrupt)


def save(cfg: Config, state: State, position: Position) -> None:
    """Atomically replace the snapshot."""
    path = cfg.state_path
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    data = json.dumps({"journal": position.__dict__, "state": state.to_json()},
                      ensure_ascii=True, separators=(",", ":")).encode("ascii")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise EscalatorError(f"cannot write state snapshot {path}: {exc.strerror}") from None


def recent_records(cfg: Config, kinds: Tuple[str, ...], limit: int = 20,
                   max_bytes: int = 4 << 20) -> List[dict]:
    """The last ``limit`` journal records of ``kinds``, reading at most ``max_bytes`` from the end."""
    path = cfg.journal
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
