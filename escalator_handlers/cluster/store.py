"""The collector's storage in etcd: event intake, fenced journal, snapshot.

Keys under the configured prefix ``P``:

``P/events/<id>``
    records forwarded from the nodes' spools (events and operator actions),
    one key per record id: sending one twice writes the same key, and the
    collector skips ids it has journalled already (``State.seen_ids``).
``P/journal/<seq>``
    the journal, one key per batch (a JSON list of records), ``seq`` counting
    up from 1 and zero-padded so key order is journal order.
``P/snapshot`` and ``P/snapshot-parts/<seq>/<i>``
    the fold of the journal up to batch ``seq``, in parts below etcd's
    request size; the pointer is written last, so a reader sees a whole one.
``P/leader``, ``P/running``, ``P/members/<node>/<role>``, ``P/terms/<time>-<node>``
    see :mod:`.leader`; the leader keeps the last ``KEEP_TERMS`` terms.

Every write of the collector is one transaction comparing the leader key's
``create_revision`` with the token its leadership was created at: a deposed
leader's write is refused (``Deposed``), never interleaved with the new
leader's.  Journal batches and the deletion of the event keys they consumed
go in the same transaction, so an event is either still waiting or
journalled, never both and never neither.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..config import Config
from ..errors import EscalatorError
from ..journal import dumps
from ..planning.state import State
from ..storage import Recovered as Loaded
from ..storage.local import Position
from .etcd import KV, Etcd, delete_op, put_op, same_create_revision

log = logging.getLogger("escalator")

#: etcd refuses requests over 1.5 MiB and transactions over 128 operations.
MAX_BATCH_BYTES = 1 << 20
MAX_OPS = 120
SNAPSHOT_PART = 1 << 20
#: Journal batches kept behind the snapshot, for ``status`` and ``history``.
KEEP_BATCHES = 2000
#: Leaderships kept on record (``P/terms/``).
KEEP_TERMS = 100
#: A snapshot (and a compaction) after this many journal batches.
SNAPSHOT_EVERY = 200


class Deposed(EscalatorError):
    """A write was refused: another node leads now."""


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

    def batch(self, seq: int) -> str:
        return f"{self.journal}{seq:012d}"

    def event(self, rid: str) -> str:
        return self.events + rid


def seq_of(kv: KV) -> int:
    return int(kv.key.rsplit("/", 1)[1])


class ClusterStore:
    """Reads anywhere; writes only with ``token`` (a leadership's fencing token)."""

    def __init__(self, config: Config, etcd: Etcd) -> None:
        assert config.cluster is not None
        self.config = config
        self.etcd = etcd
        self.keys = Keys(config.cluster.prefix)
        self.token: Optional[int] = None
        self.seq = 0                 # last journal batch written or read
        self.snapshot_seq = 0
        self.loaded = False          # load() ran since the token was set

    # -- fenced writes -------------------------------------------------------

    def fenced(self, ops: Sequence[dict]) -> int:
        """Apply ``ops`` in one transaction if we still lead; the revision."""
        if self.token is None or not self.loaded:
            # Never write without having read where the journal ends: batch keys would be overwritten.
            raise Deposed("not the leader (or the journal was not read since leading)")
        r = self.etcd.txn([same_create_revision(self.keys.leader, self.token)], ops)
        if not r.succeeded:
            raise Deposed(f"another node leads now (our token {self.token} is stale); write refused")
        return r.revision

    def append(self, records: Sequence[dict], consumed: Sequence[str] = ()) -> None:
        """Journal ``records`` and delete the event keys ``consumed``, atomically per batch."""
        chunks = list(_chunks(records))
        deletes = [delete_op(k) for k in consumed]
        if not chunks:
            for i in range(0, len(deletes), MAX_OPS):
                self.fenced(deletes[i:i + MAX_OPS])
            return
        for n, chunk in enumerate(chunks):
            ops = [put_op(self.keys.batch(self.seq + 1), json.loads("[" + ",".join(chunk) + "]"))]
            if n == len(chunks) - 1:
                # Consumed keys go with the last batch: until it is in, they stay to be taken again.
                ops += deletes[:MAX_OPS - 1]
                extra = deletes[MAX_OPS - 1:]
            else:
                extra = []
            self.fenced(ops)
            self.seq += 1
            for i in range(0, len(extra), MAX_OPS):
                self.fenced(extra[i:i + MAX_OPS])

    def mark_running(self, what: dict) -> None:
        """Say which step is about to start (fenced: refused once deposed)."""
        self.fenced([put_op(self.keys.running, what)])

    def save(self, state: State) -> None:
        """Snapshot the fold up to ``self.seq``; drop journal batches and parts it makes unneeded."""
        if self.seq == self.snapshot_seq:
            return
        data = json.dumps({"seq": self.seq, "state": state.to_json()}, ensure_ascii=True,
                          separators=(",", ":")).encode("ascii")
        parts = [data[i:i + SNAPSHOT_PART] for i in range(0, len(data), SNAPSHOT_PART)] or [b""]
        base = f"{self.keys.parts}{self.seq:012d}/"
        for i, part in enumerate(parts):
            self.fenced([put_op(f"{base}{i:04d}", part)])
        old = self.snapshot_seq
        rev = self.fenced([put_op(self.keys.snapshot, {"seq": self.seq, "parts": len(parts)})])
        self.snapshot_seq = self.seq
        # Older parts, and batches far enough behind the snapshot, are no longer needed.
        ops = [delete_op(self.keys.parts, end=base)]
        if self.seq > KEEP_BATCHES:
            ops.append(delete_op(self.keys.journal, end=self.keys.batch(self.seq - KEEP_BATCHES + 1)))
        terms, _, _ = self.etcd.get_prefix(self.keys.terms, keys_only=True)
        if len(terms) > KEEP_TERMS:
            ops.append(delete_op(self.keys.terms, end=terms[-KEEP_TERMS].key))
        self.fenced(ops)
        if self.seq // SNAPSHOT_EVERY != old // SNAPSHOT_EVERY:
            # Deleted keys stay in etcd's history until compacted: keep it from growing without bound.
            try:
                self.etcd.compact(rev)
            except EscalatorError as exc:
                log.warning("etcd compaction failed: %s", exc)

    def due_snapshot(self) -> bool:
        return self.seq - self.snapshot_seq >= SNAPSHOT_EVERY

    # -- reads ---------------------------------------------------------------

    def load(self) -> Loaded:
        """The state as of the last journal batch (snapshot plus the batches after it)."""
        state, snap_seq = State(self.config), 0
        ptr = self.etcd.get(self.keys.snapshot)
        corrupt = 0
        if ptr is not None:
            try:
                meta = ptr.json()
                base = f"{self.keys.parts}{int(meta['seq']):012d}/"
                kvs, _, _ = self.etcd.get_prefix(base)
                data = json.loads(b"".join(kv.value for kv in kvs))
                state = State.from_json(self.config, data["state"])
                snap_seq = int(data["seq"])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("ignoring an unreadable snapshot in etcd (%s); folding the whole journal", exc)
                state, snap_seq = State(self.config), 0
        tail: List[dict] = []
        seq = snap_seq
        for kv in self._batches(snap_seq + 1):
            seq = seq_of(kv)
            for rec in _records(kv):
                try:
                    state.apply(rec)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    corrupt += 1
                    log.warning("journal batch %d: skipping a record that cannot be folded (%s): %.200s",
                                seq, exc, dumps(rec))
                    continue
                tail.append(rec)
        self.seq, self.snapshot_seq = seq, snap_seq
        self.loaded = self.token is not None
        return Loaded(state, Position(offset=seq), tail, corrupt)

    def _batches(self, first: int) -> Iterator[KV]:
        start = self.keys.batch(first)
        while True:
            kvs, more, _ = self.etcd.get_prefix(self.keys.journal, limit=200, start=start)
            yield from kvs
            if not more or not kvs:
                return
            start = self.keys.batch(seq_of(kvs[-1]) + 1)

    def records(self, first: int = 1) -> Iterator[Tuple[int, dict]]:
        """(batch seq, record) from batch ``first`` on, oldest first."""
        for kv in self._batches(first):
            for rec in _records(kv):
                yield seq_of(kv), rec

    def recent(self, kinds: Tuple[str, ...], limit: int = 20, batches: int = 500) -> List[dict]:
        """The last ``limit`` journal records of ``kinds`` among the last ``batches`` batches."""
        last, _, _ = self.etcd.get_prefix(self.keys.journal, limit=1, descending=True, keys_only=True)
        if not last:
            return []
        out = [rec for _, rec in self.records(max(1, seq_of(last[0]) - batches + 1))
               if rec.get("kind") in kinds]
        return out[-limit:]

    def take(self, limit: int = MAX_OPS - 1) -> List[Tuple[str, Optional[dict], str]]:
        """Up to ``limit`` forwarded records, oldest id first: (key, record or None, raw text)."""
        kvs, _, _ = self.etcd.get_prefix(self.keys.events, limit=limit)
        out = []
        for kv in kvs:
            raw = kv.value.decode("ascii", "replace")
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = None
            out.append((kv.key, rec if isinstance(rec, dict) else None, raw))
        return out

    def pending(self) -> int:
        return self.etcd.count_prefix(self.keys.events)


def _records(kv: KV) -> List[dict]:
    try:
        recs = kv.json()
    except ValueError:
        log.warning("journal key %s is not JSON; skipped", kv.key)
        return []
    return [r for r in recs if isinstance(r, dict) and "kind" in r] if isinstance(recs, list) else []


def _chunks(records: Iterable[dict]) -> Iterator[List[str]]:
    """Records as JSON texts, grouped below etcd's request size."""
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


def forward_ops(keys: Keys, records: Iterable[Tuple[str, bytes]]) -> List[dict]:
    """Put operations for forwarded records (id, JSON line)."""
    return [put_op(keys.event(rid), line) for rid, line in records]


__all__: Sequence[Any] = ["ClusterStore", "Deposed", "Keys", "forward_ops"]
