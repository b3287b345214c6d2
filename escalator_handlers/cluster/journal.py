"""The journal and the snapshot in etcd (the storage seam's etcd ``Journal`` and ``Snapshot``).

Keys under the configured prefix ``P``:

``P/events/<id>``
    records forwarded from the nodes' spools (events and operator actions),
    one key per record id: sending one twice writes the same key, and the
    collector skips ids it has journalled already (``State.seen_ids``).
``P/journal/<seq>``
    the journal, one key per batch (a JSON list of records), ``seq`` counting
    up from 1 and zero-padded so key order is journal order.  A journal
    position is a batch's ``seq``.
``P/snapshot`` and ``P/snapshot-parts/<seq>/<i>``
    the fold of the journal up to batch ``seq``, in parts below etcd's
    request size; the pointer is written last, so a reader sees a whole one.
``P/rejected/<id>``
    forwarded lines that were no record, journalled as ``rejected``: a line
    has no id the collector could skip when a forwarder sends it again, so
    the intake skips the keys marked here (the last ``KEEP_REJECTED``).
``P/leader``, ``P/running``, ``P/members/<node>/<role>``, ``P/terms/<time>-<node>``
    see :mod:`.leader`; the leader keeps the last ``KEEP_TERMS`` terms.

Every write of the leader is one transaction comparing the leader key's
``create_revision`` with the token its leadership was created at
(:class:`Fence`): a deposed leader's write is refused (:class:`Deposed`),
never interleaved with the new leader's.  A journal batch is also written
only if its key is new, so a leader whose idea of the journal's end is stale
cannot overwrite a batch.  The event keys a batch consumed are deleted in
the transaction that journals it: an event is either still waiting or
journalled, never both and never neither.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ..display import safe
from ..errors import EscalatorError
from ..storage.seam import Batch, LeadershipLost, PositionLost, ReadStats
from .etcd import KV, Etcd, delete_op, put_op, range_op, same_create_revision

if TYPE_CHECKING:
    from ..config import Config
    from ..planning.state import State

log = logging.getLogger("escalator")

#: etcd refuses requests over 1.5 MiB and transactions over 128 operations.
MAX_BATCH_BYTES = 1 << 20
MAX_OPS = 120
SNAPSHOT_PART = 1 << 20
#: Journal batches kept behind the snapshot, for ``status`` and ``history``.
KEEP_BATCHES = 2000
#: Leaderships kept on record (``P/terms/``).
KEEP_TERMS = 100
#: Marks of rejected forwarded lines kept (``P/rejected/``); more are all dropped at a snapshot.
#: The field a forwarder adds to an operator record it found in a node's spool (its node):
#: the leader rejects it, as a local collector rejects operator records in its spool.
FROM_SPOOL = "from_spool"
KEEP_REJECTED = 1000
#: A snapshot (and a compaction) after this many journal batches.
SNAPSHOT_EVERY = 200


class Deposed(LeadershipLost):
    """A write was refused: another node leads now (or this one's lease lapsed)."""


class Keys:
    def __init__(self, prefix: str) -> None:
        p = prefix.rstrip("/")
        self.leader = p + "/leader"
        self.running = p + "/running"
        self.events = p + "/events/"
        self.journal = p + "/journal/"
        self.snapshot = p + "/snapshot"
        self.parts = p + "/snapshot-parts/"
        self.members = p + "/members/"
        self.terms = p + "/terms/"
        self.rejected = p + "/rejected/"

    def rejected_mark(self, event_key: str) -> str:
        """Where the journal notes that the line under ``event_key`` was journalled as rejected."""
        return self.rejected + event_key[len(self.events):]

    def batch(self, seq: int) -> str:
        return f"{self.journal}{seq:012d}"

    def event(self, rid: str) -> str:
        return self.events + rid


def seq_of(kv: KV) -> int:
    return int(kv.key.rsplit("/", 1)[1])


class Fence:
    """What the four parts of one etcd storage share: the client, the keys, the fencing token.

    ``token`` is set by the leadership while it leads (None otherwise); ``seq``
    is the last journal batch written by this leadership (None: look it up
    before the first write); ``wake`` nudges whoever sleeps on the intake.
    """

    def __init__(self, etcd: Etcd, keys: Keys) -> None:
        self.etcd = etcd
        self.keys = keys
        self.token: Optional[int] = None
        self.seq: Optional[int] = None
        self.snapshot_seq = 0
        self.wake_fd = -1

    def txn(self, ops: Sequence[dict], compare: Sequence[dict] = ()) -> int:
        """Apply ``ops`` in one transaction if we still lead (and ``compare`` holds); the revision."""
        token = self.token
        if token is None:
            raise Deposed("not the leader (the lease lapsed or leadership was given up)")
        r = self.etcd.txn([same_create_revision(self.keys.leader, token), *compare], ops,
                          [range_op(self.keys.leader)])
        if not r.succeeded:
            now = r.ranges()[0] if r.ranges() else []
            if now and now[0].create_revision == token:
                # Still ours, so a batch key existed: this leadership's view of the journal is stale.
                # Losing the leadership makes the collector read the journal again before writing.
                raise Deposed("the journal in etcd moved on behind this collector's back; write refused")
            raise Deposed(f"another node leads now (our fencing token {token} is stale); write refused")
        return r.revision

    def last_batch(self) -> int:
        """The seq of the newest journal batch in etcd (0: none)."""
        last, _, _ = self.etcd.get_prefix(self.keys.journal, limit=1, descending=True, keys_only=True)
        return seq_of(last[0]) if last else 0

    def wake(self) -> None:
        """Make the intake's wake-up descriptor readable (from a watch's thread)."""
        fd = self.wake_fd
        if fd >= 0:
            import os

            try:
                os.write(fd, b"\0")
            except OSError:  # full (already readable) or closed meanwhile: nothing to add
                pass


class Consumed:
    """A batch's token: the event keys it holds, and whether a journal write deleted them."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self.deleted = False

    def __bool__(self) -> bool:
        return bool(self.keys) and not self.deleted


class EtcdJournal:
    """The journal: batches under ``P/journal/``, written only by the leader (fenced)."""

    def __init__(self, fence: Fence) -> None:
        self.fence = fence

    def append(self, records: Sequence[Mapping[str, Any]], batch: Optional[Batch] = None) -> int:
        """Journal ``records`` (in batches below etcd's request size) and, in the last batch's
        transaction, delete the event keys of ``batch``.  Returns the last batch's seq."""
        f = self.fence
        consumed = batch.token if batch is not None and isinstance(batch.token, Consumed) else None
        consume_ops = [delete_op(k) for k in consumed.keys] if consumed else []
        # A line that is no record, journalled as rejected: marked with its key's deletion.
        consume_ops += [put_op(f.keys.rejected_mark(r["file"]), {"time": r.get("time")}) for r in records
                    if r.get("kind") == "rejected" and str(r.get("file", "")).startswith(f.keys.events)]
        chunks = list(_chunks(records))
        if f.seq is None:
            f.seq = f.last_batch()
        if not chunks:
            self._delete(consume_ops)
        for n, chunk in enumerate(chunks):
            seq = f.seq + 1
            ops = [put_op(f.keys.batch(seq), json.loads("[" + ",".join(chunk) + "]"))]
            last = n == len(chunks) - 1
            if last:
                # Consumed keys go with the last batch: until it is in, they stay to be taken again.
                ops += consume_ops[:MAX_OPS - 1]
            f.txn(ops, [same_create_revision(f.keys.batch(seq), 0)])
            f.seq = seq
            if last:
                self._delete(consume_ops[MAX_OPS - 1:])
        if consumed is not None:
            consumed.deleted = True
        return f.seq

    def _delete(self, consume_ops: Sequence[dict]) -> None:
        for i in range(0, len(consume_ops), MAX_OPS):
            self.fence.txn(consume_ops[i:i + MAX_OPS])

    def read(self, since: Optional[int], stats: Optional[ReadStats] = None) -> Iterator[Tuple[int, dict]]:
        """(batch seq, record) for every record in the batches after ``since``."""
        stats = stats if stats is not None else ReadStats()
        since = int(since or 0)
        first = True
        for kv in self._batches(since + 1):
            seq = seq_of(kv)
            if first and since and seq > since + 1:
                raise PositionLost(f"the journal in etcd has no batches {since + 1}-{seq - 1} after the "
                                   f"snapshot's batch {since} (pruned)")
            first = False
            for rec in _records(kv, stats):
                yield seq, rec
            stats.end = seq
        if first and since and self.fence.last_batch() < since:
            raise PositionLost(f"the journal in etcd ends before the snapshot's batch {since}")

    def _batches(self, first: int) -> Iterator[KV]:
        keys = self.fence.keys
        start = keys.batch(first)
        while True:
            kvs, more, _ = self.fence.etcd.get_prefix(keys.journal, limit=200, start=start)
            yield from kvs
            if not more or not kvs:
                return
            start = keys.batch(seq_of(kvs[-1]) + 1)

    def is_new(self) -> bool:
        return False   # one journal for ever: old batches go only behind a snapshot

    def create(self) -> None:
        """Nothing to create: an empty prefix is an empty journal."""

    def recent(self, kinds: Tuple[str, ...], limit: int = 20, batches: int = 500) -> List[dict]:
        """The last ``limit`` records of ``kinds`` among the last ``batches`` batches."""
        last = self.fence.last_batch()
        if not last:
            return []
        out = [rec for _, rec in self.read(max(0, last - batches)) if rec.get("kind") in kinds]
        return out[-limit:]


class EtcdSnapshot:
    """The fold as of a batch, in parts; saving also prunes old batches and compacts etcd."""

    def __init__(self, fence: Fence) -> None:
        self.fence = fence

    def load(self, config: Config) -> Optional[Tuple[State, int]]:
        from ..planning.state import State

        f = self.fence
        ptr = f.etcd.get(f.keys.snapshot)
        if ptr is None:
            return None
        try:
            meta = ptr.json()
            kvs, _, _ = f.etcd.get_prefix(f"{f.keys.parts}{int(meta['seq']):012d}/")
            data = json.loads(b"".join(kv.value for kv in kvs))
            state, seq = State.from_json(config, data["state"]), int(data["seq"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring an unreadable snapshot in etcd (%s); folding the whole journal", safe(str(exc)))
            return None
        f.snapshot_seq = seq
        return state, seq

    def due(self) -> bool:
        f = self.fence
        return f.seq is not None and f.seq - f.snapshot_seq >= SNAPSHOT_EVERY

    def save(self, state: State, position: Optional[int]) -> None:
        f = self.fence
        seq = int(position or 0)
        if seq <= f.snapshot_seq:
            return
        data = json.dumps({"seq": seq, "state": state.to_json()}, ensure_ascii=True,
                          separators=(",", ":")).encode("ascii")
        parts = [data[i:i + SNAPSHOT_PART] for i in range(0, len(data), SNAPSHOT_PART)] or [b""]
        base = f"{f.keys.parts}{seq:012d}/"
        for i, part in enumerate(parts):
            f.txn([put_op(f"{base}{i:04d}", part)])
        old = f.snapshot_seq
        rev = f.txn([put_op(f.keys.snapshot, {"seq": seq, "parts": len(parts)})])
        f.snapshot_seq = seq
        # Older parts, and batches far enough behind the snapshot, are no longer needed.
        ops = [delete_op(f.keys.parts, end=base)]
        if seq > KEEP_BATCHES:
            ops.append(delete_op(f.keys.journal, end=f.keys.batch(seq - KEEP_BATCHES + 1)))
        terms, _, _ = f.etcd.get_prefix(f.keys.terms, keys_only=True)
        if len(terms) > KEEP_TERMS:
            ops.append(delete_op(f.keys.terms, end=terms[-KEEP_TERMS].key))
        if f.etcd.count_prefix(f.keys.rejected) > KEEP_REJECTED:
            ops.append(delete_op(f.keys.rejected, prefix=True))
        f.txn(ops)
        if seq // SNAPSHOT_EVERY != old // SNAPSHOT_EVERY:
            # Deleted keys stay in etcd's history until compacted: keep it from growing without bound.
            try:
                f.etcd.compact(rev)
            except EscalatorError as exc:
                log.warning("etcd compaction failed (the next snapshot tries again): %s", exc)


def _records(kv: KV, stats: ReadStats) -> List[dict]:
    try:
        recs = kv.json()
    except ValueError:
        recs = None
    if not isinstance(recs, list):
        log.warning("journal key %s is not a JSON list of records; skipped", safe(kv.key))
        stats.corrupt += 1
        return []
    good = [r for r in recs if isinstance(r, dict) and "kind" in r]
    stats.corrupt += len(recs) - len(good)
    return good


def _chunks(records: Iterable[Mapping[str, Any]]) -> Iterator[List[str]]:
    """Records as JSON texts, grouped below etcd's request size."""
    from ..journal import dumps

    chunk: List[str] = []
    size = 0
    for rec in records:
        text = dumps(rec)
        if chunk and size + len(text) > MAX_BATCH_BYTES * 3 // 4:  # base64 makes it 4/3 larger
            yield chunk
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield chunk


__all__ = ["Consumed", "Deposed", "EtcdJournal", "EtcdSnapshot", "Fence", "Keys", "MAX_OPS"]
