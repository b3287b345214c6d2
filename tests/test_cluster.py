"""Several nodes on a real etcd: forward, one leader, fenced journal, takeover.

Every test starts real etcd (tests/etcd_fixtures.py) and real escalator
processes (handler, ``forward``, ``collect --daemon``) on loopback; steps are
shell commands that append ``<time> <node> <what>`` lines to a file shared by
the nodes, so a test sees which node started which step when.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from cluster_fixtures import PREFIX, cluster_site, leader, records
from collector_fixtures import ESCALATOR, Site, wait_for
from etcd_fixtures import EtcdCluster

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHECKS = [{"host": "*", "level": "vm"}]


def levels(shared: Path, node: str, step_seconds: float = 0.0, steps: int = 1) -> list:
    """One level whose steps log '<time> <node> step<i> <host>' to ``shared`` when they start."""
    sleep = f"; sleep {step_seconds:g}" if step_seconds else ""
    return [{"name": "vm", "quiescence": 0.5, "max_attempts": 100,
             "steps": [{"shell": f'echo "$(date +%s.%N) {node} step{i} {{host}}" >> {shared}{sleep}',
                        "foreach": "host"} for i in range(steps)]}]


def started(shared: Path) -> List[tuple]:
    try:
        lines = shared.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(float(t), node, step, host) for t, node, step, host in (ln.split() for ln in lines)]


def start_forwarder(s: Site) -> subprocess.Popen:
    log = open(s.root / "forward.log", "wb")
    p = subprocess.Popen([ESCALATOR, "forward", "--daemon", "-v", "--config", str(s.config)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    s.procs.append(p)
    return p


def leader_node(e: EtcdCluster) -> str:
    return wait_for(lambda: leader(e.urls).get("node"), 15, what="a leader")


# -- config and imports ------------------------------------------------------------


def test_cluster_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("levels: [{name: vm, steps: [{shell: 'true'}]}]\n"
                   "cluster:\n"
                   "  etcd: [http://127.0.0.1:2379, 'ftp://x']\n"
                   "  prefix: no-slash\n"
                   "  node: a/b\n"
                   "  lease_ttl: 1s\n"
                   "  leader: x\n")
    r = subprocess.run([ESCALATOR, "validate", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2
    err = r.stderr
    assert f"{cfg}:3: cluster.etcd[1]: expected an etcd client URL" in err
    assert f"{cfg}:4: cluster.prefix: expected a key prefix" in err
    assert f"{cfg}:5: cluster.node: expected a node name" in err
    assert f"{cfg}:6: cluster.lease_ttl: expected at least 2s" in err
    assert f"{cfg}:7: cluster.leader:" in err
    cfg.write_text("levels: [{name: vm, steps: [{shell: 'true'}]}]\ncluster: {prefix: /x}\n")
    r = subprocess.run([ESCALATOR, "validate", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "cluster.etcd: missing required key 'etcd'" in r.stderr


def test_handler_imports_no_etcd_client() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import escalator_handlers.handler"],
                       capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
    assert not {m for m in imported if m.split(".")[0] in ("etcd3gw", "requests", "urllib3")}


def test_forward_without_cluster_section_is_a_usage_error(tmp_path: Path) -> None:
    s = Site(tmp_path)
    s.write_config(levels(tmp_path / "s", "a"), CHECKS)
    r = s.cli("forward", "--config", str(s.config))
    assert r.returncode == 2 and "forward needs a cluster: section" in r.stderr


# -- forward -------------------------------------------------------------------------


def test_forward_ships_the_spool_and_a_resend_is_journalled_once(tmp_path: Path, etcd: EtcdCluster,
                                                                 nodes: List[Site]) -> None:
    a = cluster_site(tmp_path, "a", etcd.urls, levels(tmp_path / "steps", "a"), CHECKS)
    nodes.append(a)
    for h in ("web1", "web2", "web3"):
        a.event(h, "UP")
    # As a forwarder killed after taking the spool leaves it: a taken file (with a torn last line).
    sent = a.spool.joinpath("events.jsonl").read_bytes() + b'{"torn'
    taken = a.spool / "taken-00000000000000000001-1.jsonl"
    taken.write_bytes(sent)
    a.spool.joinpath("events.jsonl").unlink()
    r = a.cli("forward", "--config", str(a.config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"forwarded 4 record(s) to {PREFIX} on etcd"
    assert a.spool_empty()
    # Killed after etcd acknowledged but before it removed the file: the file is sent again.
    taken.write_bytes(sent)
    r = a.cli("forward", "--config", str(a.config))
    assert r.returncode == 0 and "forwarded 4" in r.stdout
    r = a.cli("collect", "--config", str(a.config))   # not a daemon: lead, journal, exit
    assert r.returncode == 0, r.stderr
    events = records(etcd.urls, "event")
    assert sorted(e["host"] for e in events) == ["web1", "web2", "web3"]
    (rejected,) = records(etcd.urls, "rejected")
    assert rejected["text"] == '{"torn'
    # Sent a third time after the collector consumed them: still journalled once.
    taken.write_bytes(sent)
    assert a.cli("forward", "--config", str(a.config)).returncode == 0
    assert a.cli("collect", "--config", str(a.config)).returncode == 0
    assert len(records(etcd.urls, "event")) == 3
    assert len(records(etcd.urls, "rejected")) == 1
    assert leader(etcd.urls) == {}   # a collector that exits hands leadership back at once


def test_an_operator_record_forwarded_from_a_spool_is_rejected_by_the_leader(tmp_path: Path, etcd: EtcdCluster,
                                                                           nodes: List[Site]) -> None:
    a = cluster_site(tmp_path, "a", etcd.urls, levels(tmp_path / "steps", "a"), CHECKS)
    nodes.append(a)
    a.event("web1", "UP")  # the spool exists, as a handler made it
    with a.spool.joinpath("events.jsonl").open("a") as f:  # as the monitoring user could
        f.write(json.dumps({"kind": "pause", "time": 1.0, "reason": "forged", "user": "root", "id": "f1"}) + "\n")
    assert a.cli("forward", "--config", str(a.config)).returncode == 0
    assert a.cli("collect", "--config", str(a.config)).returncode == 0
    (rejected,) = records(etcd.urls, "rejected")
    assert "from the spool of a" in rejected["reason"] and '"reason":"forged"' in rejected["text"]
    assert records(etcd.urls, "pause") == []
    # The operator's own command (written to etcd by `escalator pause`) is obeyed.
    assert a.cli("pause", "--config", str(a.config), "--reason", "real").returncode == 0
    assert a.cli("collect", "--config", str(a.config)).returncode == 0
    assert [p["reason"] for p in records(etcd.urls, "pause")] == ["real"]


# -- one leader, takeover ------------------------------------------------------------------


def test_one_leader_acts_and_a_kill_mid_step_is_closed_not_rerun(tmp_path: Path, etcd: EtcdCluster,
                                                                 nodes: List[Site]) -> None:
    shared = tmp_path / "steps.txt"
    a, b, c = (cluster_site(tmp_path, n, etcd.urls, levels(shared, n, step_seconds=3), CHECKS)
               for n in ("a", "b", "c"))
    nodes.extend((a, b, c))
    procs = {s.root.name: s.start() for s in (a, b)}
    first = leader_node(etcd)
    other = "b" if first == "a" else "a"
    fwd = c.start()  # c collects too: three candidates, one leader
    c.event("web1", "DOWN")                      # on a node that does not lead
    wait_for(lambda: started(shared), 20, what="the first step")
    assert [s[1] for s in started(shared)] == [first]
    token = leader(etcd.urls)["token"]
    os.kill(procs[first].pid, signal.SIGKILL)    # mid-step: the step keeps running there
    closed = wait_for(lambda: [r for r in records(etcd.urls, "run") if r.get("interrupted")], 20,
                      what="the interrupted run closed by the new leader")[0]
    new = leader(etcd.urls)
    assert new["node"] != first and new["token"] > token
    assert closed["closed_by"] == new["node"] and closed["node"] == first
    assert f"the leader ({first}) stopped leading during this run" in closed["reason"]
    assert closed["may_be_running"] == ["levels[0].steps[0]@web1"]
    # When the killed leader announced that step (its fenced P/running write), just before it began.
    assert 0 <= started(shared)[0][0] - closed["last_step_start"] < 2.0
    (start,) = [r for r in records(etcd.urls, "start") if r["run"] == closed["run"]]
    assert start["node"] == first and start["token"] == token
    # Not silently re-run: the next run is a new one, after the level's quiescence, by the new leader.
    wait_for(lambda: len(started(shared)) >= 2, 20, what="the next attempt")
    t, node, _, _ = started(shared)[1]
    assert node == new["node"] and t >= closed["time"] + 0.5 - 0.05
    starts = records(etcd.urls, "start")
    assert len({r["run"] for r in starts}) == len(starts)
    for p in (procs[other], fwd):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)


def test_a_frozen_leader_woken_after_losing_its_lease_starts_nothing(tmp_path: Path, etcd: EtcdCluster,
                                                                     nodes: List[Site]) -> None:
    shared = tmp_path / "steps.txt"
    a, b = (cluster_site(tmp_path, n, etcd.urls, levels(shared, n, step_seconds=1, steps=3), CHECKS)
            for n in ("a", "b"))
    nodes.extend((a, b))
    procs = {s.root.name: s.start() for s in (a, b)}
    first = leader_node(etcd)
    a.event("web1", "DOWN")
    wait_for(lambda: started(shared), 20, what="the first step")
    os.kill(procs[first].pid, signal.SIGSTOP)     # frozen mid-run, past its 2 s lease
    frozen_at = time.time()
    try:
        wait_for(lambda: leader(etcd.urls).get("node") not in (None, first), 20, what="a new leader")
        elected = time.time()
        wait_for(lambda: [r for r in records(etcd.urls, "run") if r.get("interrupted")], 20,
                 what="the interrupted run closed")
    finally:
        os.kill(procs[first].pid, signal.SIGCONT)
    name = "a" if first == "a" else "b"
    site = a if first == "a" else b
    wait_for(lambda: "no longer the leader" in site.log(procs[first]), 20, what="the old leader noticing")
    late = [s for s in started(shared) if s[1] == first and s[0] > frozen_at]
    assert late == [], f"{name} started steps after it was frozen: {late}"
    assert elected - frozen_at >= 1.0
    assert procs[first].poll() is None   # it stays as a candidate


# -- any node sees and steers the cluster -----------------------------------------------------


def test_status_pause_and_hold_from_any_node_act_cluster_wide(tmp_path: Path, etcd: EtcdCluster,
                                                              nodes: List[Site]) -> None:
    shared = tmp_path / "steps.txt"
    a, b = (cluster_site(tmp_path, n, etcd.urls, levels(shared, n), CHECKS) for n in ("a", "b"))
    nodes.extend((a, b))
    r = b.cli("status", "--config", str(b.config))
    assert r.returncode == 0 and "leader:      NONE (no node holds the lease)" in r.stdout
    health = subprocess.run([str(Path(ESCALATOR).parent / "check_escalator"), "--config", str(b.config)],
                            capture_output=True, text=True)
    assert health.returncode == 1 and "no leader" in health.stdout, health.stdout
    proc = a.start()
    fwd = start_forwarder(b)
    leader_node(etcd)
    r = b.cli("pause", "--config", str(b.config), "--reason", "maintenance")
    assert r.returncode == 0 and r.stdout.strip() == "pause: recorded in etcd; the leader (a) applies it"
    wait_for(lambda: records(etcd.urls, "pause"), 10, what="the pause journalled")
    b.event("web1", "DOWN")
    r = b.cli("hold", "--config", str(b.config), "--host", "web2", "--reason", "disk swap")
    assert r.returncode == 0
    wait_for(lambda: records(etcd.urls, "hold"), 10, what="the hold journalled")
    wait_for(lambda: records(etcd.urls, "event"), 10, what="the event journalled")
    rep = json.loads(b.cli("status", "--json", "--config", str(b.config)).stdout)
    assert rep["leader"] == "a" and rep["paused"] and rep["pause_reason"] == "maintenance"
    assert rep["held_hosts"] == {"web2": "disk swap"}
    assert {(m["node"], m["role"]) for m in rep["members"]} == {("a", "collect"), ("b", "forward")}
    assert [f["check"] for f in rep["failing"]] == ["web1"]
    assert started(shared) == []      # paused: nothing ran
    r = b.cli("plan", "--config", str(b.config))  # from the state in etcd, like status
    assert r.returncode == 0 and "paused" in r.stdout, r.stdout
    r = b.cli("history", "--json", "--config", str(b.config))
    kinds = [json.loads(line).get("kind") for line in r.stdout.splitlines()]
    assert r.returncode == 0 and "pause" in kinds and "hold" in kinds, r.stdout
    health = subprocess.run([str(Path(ESCALATOR).parent / "check_escalator"), "--config", str(b.config)],
                            capture_output=True, text=True)
    assert "leader a" in health.stdout
    r = b.cli("resume", "--config", str(b.config))
    assert r.returncode == 0
    wait_for(lambda: started(shared), 15, what="the run after resume")
    for p in (proc, fwd):
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0


def test_the_shipped_forward_unit_verifies(tmp_path: Path) -> None:
    import shutil

    unit = Path(__file__).resolve().parent.parent / "nagios-conf" / "systemd" / "escalator-forward.service"
    text = unit.read_text()
    assert "ExecStart=/usr/local/bin/escalator forward --daemon" in text
    assert "RestartPreventExitStatus=2" in text
    analyze = shutil.which("systemd-analyze")
    if analyze:  # offline check of every directive; ExecStart must exist for it
        copy = tmp_path / unit.name
        copy.write_text(text.replace("/usr/local/bin/escalator", ESCALATOR))
        r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr


def test_check_escalator_on_any_node_warns_of_a_run_waiting_for_approval_in_etcd(
        tmp_path: Path, etcd: EtcdCluster, nodes: List[Site]) -> None:
    shared = tmp_path / "steps.txt"
    gated = [dict(lv, approval={"timeout": "30m"}) for lv in levels(shared, "a")]
    a, b = (cluster_site(tmp_path, n, etcd.urls, gated, CHECKS) for n in ("a", "b"))
    nodes.extend((a, b))
    a.start()
    start_forwarder(b)
    leader_node(etcd)
    b.event("web1", "DOWN")
    [req] = wait_for(lambda: [r for r in records(etcd.urls, "approval") if r.get("outcome") == "requested"],
                     15, what="the approval request journalled in etcd")
    rid = req["approval"]
    plugin = str(Path(ESCALATOR).parent / "check_escalator")
    health = subprocess.run([plugin, "--config", str(b.config), "-v"], capture_output=True, text=True)
    first = health.stdout.splitlines()[0]
    assert health.returncode == 1, health.stdout
    assert first.startswith(f"ESCALATOR WARNING - 1 run waiting for approval: {rid} (levels vm) asked "), first
    assert ", times out in 30m, leader a, " in first and " approvals_waiting=1;;;0 " in first, first
    assert f"answer with `escalator approve {rid}` or `escalator deny {rid}`" in health.stdout
    r = b.cli("approve", rid, "--config", str(b.config))
    assert r.returncode == 0, r.stderr
    wait_for(lambda: started(shared), 15, what="the approved run's step")
    health = subprocess.run([plugin, "--config", str(b.config)], capture_output=True, text=True)
    assert f"waiting for approval: {rid} " not in health.stdout, health.stdout  # web1, still DOWN, may ask anew
    b.event("web1", "UP")
    wait_for(lambda: not any(json.loads(b.cli("status", "--json", "--config", str(b.config)).stdout)[k]
                             for k in ("failing", "approvals")), 15, what="web1 recovered, no request open")
    health = subprocess.run([plugin, "--config", str(b.config)], capture_output=True, text=True)
    assert "waiting for approval" not in health.stdout and " approvals_waiting=0;;;0 " in health.stdout, \
        health.stdout
