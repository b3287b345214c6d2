"""The storage seam's etcd backend, part by part, in process against a real etcd:
the fenced journal, the snapshot in parts (pruning, compaction), the leadership
(campaign, freshness, announce, hand-over woken by a watch) and the intake
(forward, take, acknowledge, the watch that wakes an idle leader)."""

from __future__ import annotations

import json
import os
import select
import time
import urllib.request
from pathlib import Path

import pytest

from escalator_handlers.cluster import journal as cjournal
from escalator_handlers.cluster.etcd import Etcd
from escalator_handlers.cluster.leader import margin
from escalator_handlers.cluster.storage import PAGE, open_cluster
from escalator_handlers.config import load_config_text
from escalator_handlers.system import drain
from escalator_handlers.storage import (LeadershipLost, PositionLost, ReadStats, StorageUnavailable, open_storage,
                                        recover)
from etcd_fixtures import EtcdCluster

pytestmark = [pytest.mark.slow]


def config(urls, tmp_path: Path, node: str = "n1", prefix: str = "/t"):
    return load_config_text(f"""
spool: {tmp_path}/{node}/spool
journal: {tmp_path}/{node}/journal.jsonl
levels: [{{name: vm, steps: [{{shell: "true"}}]}}]
checks: [{{host: "*", level: vm}}]
cluster: {{etcd: {list(urls)}, prefix: {prefix}, node: {node}, lease_ttl: 2s}}
""")


def event(i: int) -> dict:
    return {"time": 1000.0 + i, "kind": "event", "host": f"web{i}", "service": None, "state": "DOWN",
            "state_type": "HARD", "attempt": 1, "downtime": 0, "output": "x" * 300, "id": f"id-{i}"}


def leading(cfg):
    st = open_storage(cfg)
    assert st.leadership.acquire(0)
    recover(st, cfg)
    return st


def readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


# -- journal ----------------------------------------------------------------------------------


def test_a_deposed_leaders_append_is_refused_and_the_new_one_continues_the_journal(tmp_path, etcd: EtcdCluster):
    old = leading(config(etcd.urls, tmp_path))
    assert old.journal.append([event(1)]) == 1
    old.leadership.release()                         # as a lapsed lease would: the key is gone
    new = leading(config(etcd.urls, tmp_path, "n2"))
    assert new.leadership.facts()["token"] > 0 and new.leadership.holder() == "n2"
    with pytest.raises(LeadershipLost):
        old.journal.append([event(2)])
    assert new.journal.append([event(3)]) == 2
    assert [(seq, r["id"]) for seq, r in new.journal.read(None)] == [(1, "id-1"), (2, "id-3")]
    assert [r["id"] for _, r in new.journal.read(1)] == ["id-3"]
    rec = recover(open_storage(config(etcd.urls, tmp_path, "reader")), config(etcd.urls, tmp_path))
    assert rec.state.seen_ids.keys() == {"id-1", "id-3"} and rec.position == 2
    assert not new.journal.is_new() and new.journal.recent(("event",), 1) == [event(3)]
    old.leadership.close(), new.leadership.close()


def test_a_leader_whose_view_of_the_journal_is_stale_cannot_overwrite_a_batch(tmp_path, etcd: EtcdCluster):
    st = leading(config(etcd.urls, tmp_path))
    st.journal.append([event(1)])
    st.journal.fence.seq = 0                         # as if it had not read the journal's end
    with pytest.raises(LeadershipLost, match="moved on"):
        st.journal.append([event(2)])
    assert [r["id"] for _, r in st.journal.read(None)] == ["id-1"]
    st.leadership.close()


def test_a_position_the_journal_cannot_continue_from_is_lost(tmp_path, etcd: EtcdCluster):
    st = leading(config(etcd.urls, tmp_path))
    for i in range(3):
        st.journal.append([event(i)])
    Etcd(etcd.urls).txn([], [cjournal.delete_op("/t/journal/000000000002")])   # pruned behind a snapshot
    with pytest.raises(PositionLost):
        list(st.journal.read(1))
    with pytest.raises(PositionLost):
        list(st.journal.read(7))                     # a snapshot ahead of the journal
    stats = ReadStats()
    assert [r["id"] for _, r in st.journal.read(None, stats)] == ["id-0", "id-2"] and stats.end == 3
    st.leadership.close()


# -- snapshot ---------------------------------------------------------------------------------


def test_snapshot_in_parts_equals_the_fold_and_old_history_is_pruned_and_compacted(tmp_path, etcd: EtcdCluster,
                                                                                   monkeypatch):
    monkeypatch.setattr(cjournal, "SNAPSHOT_PART", 4096)   # many parts, as a big site's state would need
    monkeypatch.setattr(cjournal, "KEEP_BATCHES", 20)
    monkeypatch.setattr(cjournal, "SNAPSHOT_EVERY", 50)
    cfg = config(etcd.urls, tmp_path)
    e = Etcd(etcd.urls)
    st = leading(cfg)
    assert not st.snapshot.due()
    for i in range(120):
        pos = st.journal.append([event(i)])
    assert st.snapshot.due()
    whole = recover(open_cluster(cfg), cfg)
    first_rev = e.get_prefix("/t/journal/")[2]
    st.snapshot.save(whole.state, pos)
    assert not st.snapshot.due()
    assert len(e.get_prefix("/t/snapshot-parts/")[0]) > 3            # in parts
    state, seq = open_cluster(cfg).snapshot.load(cfg)
    assert seq == 120 and state.to_json() == whole.state.to_json()
    batches, _, _ = e.get_prefix("/t/journal/", keys_only=True)
    assert len(batches) == 20 and batches[0].key == "/t/journal/000000000101"
    with pytest.raises(Exception, match="compacted"):                # etcd's history before it is gone
        e.call("kv/range", {"key": "L3Q=", "revision": str(first_rev - 5)})
    for i in range(120, 130):
        pos = st.journal.append([event(i)])
    again = recover(open_cluster(cfg), cfg)
    assert again.position == 130 and len(again.tail) == 10          # snapshot + the batches after it
    st.snapshot.save(again.state, pos)
    seqs = {kv.key.split("/")[3] for kv in e.get_prefix("/t/snapshot-parts/", keys_only=True)[0]}
    assert seqs == {"000000000130"}                                  # the first snapshot's parts are gone
    assert recover(open_cluster(cfg), cfg).state.to_json() == again.state.to_json()
    st.leadership.close()


# -- leadership ------------------------------------------------------------------------------


def test_one_leads_the_other_waits_and_is_woken_by_the_leader_key_going(tmp_path, etcd: EtcdCluster):
    a = open_storage(config(etcd.urls, tmp_path, "a"))
    b = open_storage(config(etcd.urls, tmp_path, "b"))
    assert a.leadership.acquire(0) and a.leadership.held
    assert not b.leadership.acquire(0) and b.leadership.holder() == "a" and not b.leadership.held
    assert b.leadership.facts() == {}
    rec = a.leadership.tenure_record(5.0)
    assert rec["kind"] == "leader" and rec["node"] == "a" and rec["token"] == a.leadership.facts()["token"]
    b.leadership._watch.connected.wait(5)
    t0 = time.monotonic()
    a.leadership.release()                           # steps down at once: deletes the key
    assert not a.leadership.held
    assert b.leadership.acquire(10)                  # woken by the watch, not after the 10 s
    assert time.monotonic() - t0 < 2.0
    assert b.leadership.holder() == "b"
    a.leadership.close(), b.leadership.close()
    members = Etcd(etcd.urls).get_prefix("/t/members/")[0]
    assert members == []                             # close revoked both leases


def test_announce_is_fenced_and_previous_reads_it_back(tmp_path, etcd: EtcdCluster):
    a = leading(config(etcd.urls, tmp_path, "a"))
    a.leadership.announce({"run": "r1", "time": 7.0})
    token = a.leadership.facts()["token"]
    a.leadership.release()
    b = leading(config(etcd.urls, tmp_path, "b"))
    assert b.leadership.previous() == {"run": "r1", "time": 7.0, "node": "a", "token": token}
    with pytest.raises(LeadershipLost):
        a.leadership.announce({"run": "r2", "time": 8.0})
    assert a.leadership.check() is not None
    a.leadership.close(), b.leadership.close()


def test_check_fails_a_margin_before_the_lease_could_lapse(tmp_path, etcd: EtcdCluster):
    t = [100.0]
    st = open_storage(config(etcd.urls, tmp_path))
    lead = st.leadership
    lead.clock = lambda: t[0]
    assert lead.acquire(0) and lead.check() is None
    lead._stop.set()                                 # no renewals from here on (as when frozen)
    t[0] += 2 - margin(2) - 0.01
    assert lead.check() is None
    t[0] += 0.02
    assert "not renewed in time" in lead.check()
    with pytest.raises(LeadershipLost):
        lead.announce({"run": "r", "time": 1.0})
    lead.close()


# -- intake -----------------------------------------------------------------------------------


def test_gather_take_and_a_journal_write_that_consumes_the_batch(tmp_path, etcd: EtcdCluster):
    from collector_fixtures import Site

    cfg = config(etcd.urls, tmp_path)
    (tmp_path / "n1").mkdir()
    site = Site(tmp_path / "n1")                     # only its handler is used, on the config's spool
    st = leading(cfg)
    st.intake.prepare()
    for h in ("web1", "web2"):
        site.event(h, "DOWN")
    Etcd(etcd.urls).put("/t/events/zz-torn", b'{"torn')
    st.intake.gather()
    batch = st.intake.take()
    assert [(t.source[:10], t.line) for t in batch.items] == [("/t/events/", 0)] * 3 and not batch.more
    assert [t.record["host"] for t in batch.items[:2]] == ["web1", "web2"]
    assert batch.items[2].record is None and batch.items[2].raw == '{"torn'
    st.journal.append([t.record for t in batch.items[:2]], batch)
    assert not st.intake.pending() and not st.intake.take().items   # deleted with the journal write
    st.intake.acknowledge(batch)                                       # a no-op now
    st.leadership.close()


def test_take_pages_and_acknowledge_deletes_what_no_write_consumed(tmp_path, etcd: EtcdCluster):
    st = leading(config(etcd.urls, tmp_path))
    e = Etcd(etcd.urls)
    for i in range(PAGE + 5):
        e.put(f"/t/events/{i:05d}", event(i))
    batch = st.intake.take()
    assert len(batch.items) == PAGE and batch.more
    st.intake.acknowledge(batch)                     # e.g. every record was a duplicate
    rest = st.intake.take()
    assert [t.record["id"] for t in rest.items] == [f"id-{i}" for i in range(PAGE, PAGE + 5)] and not rest.more
    st.leadership.release()
    with pytest.raises(LeadershipLost):              # only the leader deletes
        st.intake.acknowledge(rest)
    st.leadership.close()


def test_the_intake_wakes_a_leader_when_a_node_forwards_and_a_follower_when_the_leader_goes(tmp_path,
                                                                                            etcd: EtcdCluster):
    a = leading(config(etcd.urls, tmp_path, "a"))
    b = open_storage(config(etcd.urls, tmp_path, "b"))
    for st in (a, b):
        st.intake.prepare()
        st.intake.open()
    assert not b.leadership.acquire(0)
    fa, fb = a.intake.wakeup_fd(), b.intake.wakeup_fd()
    for st in (a, b):
        st.intake._watch.connected.wait(5)
    b.leadership._watch.connected.wait(5)
    drain(fa), drain(fb)
    Etcd(etcd.urls).put("/t/events/x1", event(1))   # forwarded by some node
    assert readable(fa, 2.0)                         # the leader wakes (within ms)
    drain(fa)
    a.leadership.release()
    assert readable(fb, 2.0)                         # the follower wakes: the leader key went
    assert b.leadership.acquire(0)
    a.intake.close(), b.intake.close()
    a.leadership.close(), b.leadership.close()


def test_a_watch_fails_over_when_its_member_dies_and_wakes_on_reconnecting(tmp_path, etcd3: EtcdCluster):
    from daemon_fixtures import wait_for
    from escalator_handlers.cluster.watch import Watch

    wakes = []
    w = Watch(etcd3.urls, "/t/events/", lambda: wakes.append(time.monotonic()), prefix=True)
    try:
        assert w.connected.wait(5)
        n = len(wakes)
        etcd3.kill(0)                                # the member the watch talks to
        t0 = time.monotonic()
        wait_for(lambda: w.connected.is_set() and len(wakes) > n, 10, "a reconnect to another member")
        assert time.monotonic() - t0 < 5.0
        n = len(wakes)
        Etcd(etcd3.urls[1:]).put("/t/events/x", event(1))
        wait_for(lambda: len(wakes) > n, 5, "a wake for a put after the fail-over")
    finally:
        w.stop()


def _grpc_calls(url: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_msg_received_total{"):
            method = line.split('grpc_method="', 1)[1].split('"', 1)[0]
            out[method] = out.get(method, 0) + float(line.rsplit(" ", 1)[1])
    return out


def test_an_idle_leader_and_its_standby_send_etcd_nothing_but_lease_renewals(tmp_path, etcd: EtcdCluster, nodes):
    from cluster_fixtures import cluster_site, leader, records
    from daemon_fixtures import wait_for
    from spool_fixtures import sleeping_in_select

    sites = [cluster_site(tmp_path, n, etcd.urls, [{"name": "vm", "steps": [{"shell": "true"}]}],
                          [{"host": "*", "level": "vm"}]) for n in ("a", "b")]
    nodes.extend(sites)
    procs = [s.start() for s in sites]
    wait_for(lambda: records(etcd.urls, "leader"), 20, "a leader", lambda: sites[0].log(procs[0]), procs[0])
    first = leader(etcd.urls)["node"]
    lead = procs[0] if first == "a" else procs[1]
    assert f"node {first} leads (fencing token" in sites[0 if first == "a" else 1].log(lead)
    for p in procs:
        wait_for(lambda: sleeping_in_select(p.pid), 10, "idle in select()", proc=p)
    before = _grpc_calls(etcd.urls[0])
    # The clock: wait until the leases were renewed eight times (about one TTL each), then count.
    wait_for(lambda: _grpc_calls(etcd.urls[0]).get("LeaseKeepAlive", 0) >= before.get("LeaseKeepAlive", 0) + 8,
             10, "eight lease renewals")
    after = _grpc_calls(etcd.urls[0])
    grown = {m: after[m] - before.get(m, 0) for m in after if after[m] != before.get(m, 0)}
    # The old collector looked for events every 0.25 s, a standby campaigned as often: ranges and txns.
    # Now the leader sleeps on a watch of the events, the standby on one of the leader key.
    assert set(grown) == {"LeaseKeepAlive"}, grown
    t0 = time.monotonic()
    lead.terminate()
    assert lead.wait(timeout=15) == 0
    wait_for(lambda: leader(etcd.urls).get("node") not in (None, first), 10, "the standby leading")
    assert time.monotonic() - t0 < 3.0                 # woken by the leader key's deletion, not a timer


def test_etcd_unreachable_is_said_in_words_naming_each_url_and_what_to_check(tmp_path):
    import http.server
    import subprocess
    import threading

    from collector_fixtures import ESCALATOR
    from icinga_fixtures import free_port

    web = http.server.HTTPServer(("127.0.0.1", free_port()), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    other = f"http://127.0.0.1:{web.server_port}"
    try:
        (tmp_path / "c.yaml").write_text(f"""
spool: {tmp_path}/spool
journal: {tmp_path}/journal.jsonl
levels: [{{name: vm, steps: [{{shell: "true"}}]}}]
cluster: {{etcd: ["http://127.0.0.1:1", "{other}"], prefix: /t, node: n1, lease_ttl: 2s}}
""")
        (tmp_path / "spool").mkdir()
        (tmp_path / "spool" / "events.jsonl").write_text('{"id": "x"}\n')
        for cmd in ("status", "collect", "history", "pause", "forward"):
            r = subprocess.run([ESCALATOR, cmd, "--config", str(tmp_path / "c.yaml")], capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 1, (cmd, r.stderr)
            assert r.stderr.splitlines()[-1].startswith(
                "Error: cannot reach etcd at http://127.0.0.1:1 (connection refused: nothing listens there); "
                f"{other} (answers \"Unsupported method ('POST')\", not as etcd's v3 JSON gateway: is this "
                f"etcd's client URL?): check that etcd runs and listens there and that cluster.etcd in "
                f"{tmp_path / 'c.yaml'} lists its client URLs"), (cmd, r.stderr)
            assert "Traceback" not in r.stderr and "ConnectionError" not in r.stderr
        assert "nothing is lost: this node's spool keeps the records" in r.stderr
        assert (tmp_path / "spool" / "events.jsonl").exists() or list((tmp_path / "spool").glob("taken-*"))
    finally:
        web.shutdown()
