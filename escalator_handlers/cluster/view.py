"""What any node sees of the cluster: the state in etcd, the leader, the members.

Read-only: ``status``, ``check_escalator`` and ``plan`` use it from any node,
without leading and without writing.  Operator actions (``pause``, ``hold``...)
are written as forwarded records (``P/events/<id>``): the leader journals them
at its next step boundary, like events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .. import kinds, spool
from ..config import Config
from ..storage import Recovered, recover
from .etcd import Etcd
from .journal import Keys
from .storage import open_cluster


@dataclass(frozen=True)
class ClusterView:
    loaded: Recovered
    leader: Optional[dict]          # the leader key's value (node, pid, since) and token
    members: Tuple[dict, ...]       # processes whose lease is alive: node, role, pid, since
    pending: int                    # forwarded records the leader has not journalled yet
    runs: Tuple[dict, ...]
    verdicts: Tuple[dict, ...]

    def report(self) -> Dict[str, Any]:
        return {"leader": self.leader.get("node") if self.leader else None,
                "leader_since": self.leader.get("since") if self.leader else None,
                "members": list(self.members), "etcd_pending": self.pending}


def read(config: Config) -> ClusterView:
    """Everything ``status`` shows, read through the storage seam without leading."""
    st = open_cluster(config)
    fence = st.leadership.fence  # type: ignore[attr-defined]
    try:
        loaded = recover(st, config)
        kv = fence.etcd.get(fence.keys.leader)
        leader = dict(kv.json(), token=kv.create_revision) if kv is not None else None
        kvs, _, _ = fence.etcd.get_prefix(fence.keys.members)
        members = []
        for m in kvs:
            try:
                members.append(m.json())
            except ValueError:
                continue
        return ClusterView(loaded, leader, tuple(members), fence.etcd.count_prefix(fence.keys.events),
                           tuple(st.journal.recent((kinds.RUN,), 10)), tuple(st.journal.recent((kinds.VERDICT,), 5)))
    finally:
        st.leadership.close()


def journal_records(config: Config) -> List[dict]:
    """Every journal record kept in etcd, oldest first (for ``history``)."""
    st = open_cluster(config)
    try:
        return [rec for _, rec in st.journal.read(None)]
    finally:
        st.leadership.close()


def record_action(config: Config, record: dict) -> str:
    """Put an operator action where the leader takes it; say who applies it."""
    assert config.cluster is not None
    rec = dict(record)
    rec["id"] = rec.get("id") or spool.new_id()
    etcd = Etcd(config.cluster.etcd, source=config.source)
    try:
        keys = Keys(config.cluster.prefix)
        etcd.put(keys.event(rec["id"]), spool.encode(rec)[:-1])
        kv = etcd.get(keys.leader)
    finally:
        etcd.close()
    if kv is None:
        return (f"recorded in etcd ({config.cluster.prefix}); no node leads right now: "
                "the next leader applies it")
    try:
        node = json.loads(kv.value).get("node")
    except ValueError:
        node = None
    return f"recorded in etcd; the leader ({node or 'unknown node'}) applies it"


__all__: List[str] = ["ClusterView", "journal_records", "read", "record_action"]
