"""The etcd storage and leadership, in process against a real etcd: fencing,
snapshots in parts, pruning and compaction, the lease's freshness."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalator_handlers.cluster import store as cstore
from escalator_handlers.cluster.etcd import Etcd
from escalator_handlers.cluster.leader import Leadership, margin
from escalator_handlers.cluster.store import ClusterStore, Deposed, Keys
from escalator_handlers.config import load_config_text
from etcd_fixtures import EtcdCluster

pytestmark = [pytest.mark.slow]


def config(urls, tmp_path: Path):
    return load_config_text(f"""
spool: {tmp_path}/spool
journal: {tmp_path}/journal.jsonl
levels: [{{name: vm, steps: [{{shell: "true"}}]}}]
checks: [{{host: "*", level: vm}}]
cluster: {{etcd: {list(urls)}, prefix: /t, node: n1, lease_ttl: 2s}}
""")


def leading(cfg, e: Etcd, node: str = "n1") -> tuple:
    lead = Leadership(e, Keys("/t"), node, "collect", 2)
    assert lead.campaign()
    st = ClusterStore(cfg, e)
    st.token = lead.token
    st.load()
    return lead, st


def event(i: int) -> dict:
    return {"time": 1000.0 + i, "kind": "event", "host": f"web{i}", "service": None, "state": "DOWN",
            "state_type": "HARD", "attempt": 1, "downtime": 0, "output": "x" * 300, "id": f"id-{i}"}


def test_a_deposed_leaders_write_is_refused_and_the_new_one_continues_the_journal(tmp_path, etcd: EtcdCluster):
    cfg = config(etcd.urls, tmp_path)
    e = Etcd(etcd.urls)
    old, st = leading(cfg, e)
    st.append([event(1)])
    old.step_down()                       # as a lapsed lease would: the key is gone
    new, st2 = leading(cfg, Etcd(etcd.urls), "n2")
    assert new.token > st.token
    with pytest.raises(Deposed):
        st.append([event(2)])
    st2.append([event(3)])
    assert [r["id"] for _, r in st2.records()] == ["id-1", "id-3"]
    assert ClusterStore(cfg, e).load().state.seen_ids.keys() == {"id-1", "id-3"}
    old.close(), new.close()


def test_snapshot_in_parts_equals_the_fold_and_old_history_is_pruned_and_compacted(tmp_path, etcd: EtcdCluster,
                                                                                   monkeypatch):
    monkeypatch.setattr(cstore, "SNAPSHOT_PART", 4096)   # many parts, as a big site's state would need
    monkeypatch.setattr(cstore, "KEEP_BATCHES", 20)
    monkeypatch.setattr(cstore, "SNAPSHOT_EVERY", 50)
    cfg = config(etcd.urls, tmp_path)
    e = Etcd(etcd.urls)
    lead, st = leading(cfg, e)
    for i in range(120):
        st.append([event(i)])
    whole = st.load().state.to_json()
    first_rev = e.get_prefix("/t/journal/")[2]
    st.save(ClusterStore(cfg, e).load().state)
    kvs, _, _ = e.get_prefix("/t/snapshot-parts/")
    assert len(kvs) > 3                                   # in parts
    assert ClusterStore(cfg, e).load().state.to_json() == whole
    batches, _, _ = e.get_prefix("/t/journal/", keys_only=True)
    assert len(batches) == 20 and batches[0].key == "/t/journal/000000000101"
    # The revision history before the snapshot is compacted away.
    with pytest.raises(Exception, match="compacted"):
        e.call("kv/range", {"key": "L3Q=", "revision": str(first_rev - 5)})
    # More batches and a second snapshot: the first one's parts are deleted.
    for i in range(120, 130):
        st.append([event(i)])
    st.save(ClusterStore(cfg, e).load().state)
    seqs = {kv.key.split("/")[3] for kv in e.get_prefix("/t/snapshot-parts/", keys_only=True)[0]}
    assert seqs == {"000000000130"}
    assert ClusterStore(cfg, e).load().state.to_json() == st.load().state.to_json()
    lead.close()


def test_freshness_ends_a_margin_before_the_lease_could_lapse(tmp_path, etcd: EtcdCluster):
    t = [100.0]
    lead = Leadership(Etcd(etcd.urls), Keys("/t"), "n1", "collect", 2, clock=lambda: t[0])
    assert lead.campaign() and lead.fresh()
    lead._stop.set()                                   # no renewals from here on (as when frozen)
    t[0] += 2 - margin(2) - 0.01
    assert lead.fresh()
    t[0] += 0.02
    assert not lead.fresh()
    lead.close()
