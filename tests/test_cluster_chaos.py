"""Chaos: three collector nodes, three forwarding nodes, three etcd members.

While handlers keep spooling events on every node, the test SIGKILLs the
leader at random points (mid-step included) and restarts it, freezes it with
SIGSTOP past its lease and wakes it with SIGCONT, and kills one etcd member.
Then it stops everything cleanly and checks, from the journal in etcd and the
steps' own start lines:

* every event spooled was journalled, exactly once;
* every step started after a journalled ``start`` of its node's run, and no
  run was left open: interrupted ones were closed by a later leader, naming
  the steps that may still have been running;
* no step started on a node once a newer leadership had begun campaigning
  (leaderships from the journal's ``leader`` records).

The figures are printed (``-s``) and kept in README's Guarantees.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

from cluster_fixtures import cluster_site, journal, leader, terms
from collector_fixtures import Site, wait_for
from etcd_fixtures import EtcdCluster
from test_cluster import start_forwarder, started

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.faults]

CHECKS = [{"host": "*", "level": "vm"}]
HOSTS = [f"web{i}" for i in range(1, 6)]
ROUNDS = int(os.environ.get("ESCALATOR_CHAOS_ROUNDS", "9"))


def chaos_levels(shared: Path, node: str) -> list:
    step = f'echo "$(date +%s.%N) {node} {{where}} {{host}}" >> {shared}; sleep 0.4'
    return [{"name": "vm", "quiescence": 0.3, "max_attempts": 1000,
             "steps": [{"shell": step.replace("{where}", f"s{i}"), "foreach": "host", "concurrency": 5}
                       for i in range(2)]}]


class Spooler(threading.Thread):
    """Keeps spooling events (bursts, then quiet) on random nodes, each with a unique output."""

    def __init__(self, sites: List[Site]) -> None:
        super().__init__(daemon=True)
        self.sites = sites
        self.sent: List[str] = []
        self.halt = threading.Event()
        self.rng = random.Random(os.getpid())

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            for _ in range(self.rng.randint(1, 4)):
                n += 1
                tag = f"ev-{n}"
                self.rng.choice(self.sites).event(self.rng.choice(HOSTS), self.rng.choice(("DOWN", "DOWN", "UP")),
                                                  output=tag)
                self.sent.append(tag)
            self.halt.wait(self.rng.uniform(0.8, 2.0))


def test_chaos_no_event_lost_or_doubled_no_step_unfenced(tmp_path: Path, etcd3: EtcdCluster,
                                                         nodes: List[Site]) -> None:
    rng = random.Random(int(os.environ.get("ESCALATOR_CHAOS_SEED", str(os.getpid()))))
    shared = tmp_path / "steps.txt"
    names = ["a", "b", "c", "f1", "f2", "f3"]
    sites = {n: cluster_site(tmp_path, n, etcd3.urls, chaos_levels(shared, n), CHECKS, quiescence=0.3)
             for n in names}
    nodes.extend(sites.values())
    collectors: Dict[str, object] = {n: sites[n].start() for n in ("a", "b", "c")}
    forwarders = [start_forwarder(sites[n]) for n in ("f1", "f2", "f3")]
    wait_for(lambda: leader(etcd3.urls).get("node"), 20, what="a leader")
    spooler = Spooler(list(sites.values()))
    spooler.start()
    counts = Counter()
    member_killed = False
    deadline = time.monotonic() + 150
    token = 0
    try:
        for i in range(ROUNDS):
            assert time.monotonic() < deadline, f"chaos rounds took too long ({i} of {ROUNDS} done)"
            # A leadership newer than the one the last round ended (the key of a killed one outlives it by the TTL).
            now = wait_for(lambda: (leader(etcd3.urls).get("token") or 0) > token and leader(etcd3.urls), 30,
                           what="a new leader")
            lead, token = now["node"], now["token"]
            proc = collectors[lead]
            action = ("kill-mid-step", "freeze", "kill")[i % 3]
            if action == "kill-mid-step":
                before = len(started(shared))
                wait_for(lambda: len(started(shared)) > before, 30, what="a step to start")
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                time.sleep(rng.uniform(0.2, 1.5))
            if action == "freeze":
                proc.send_signal(signal.SIGSTOP)
                wait_for(lambda: leader(etcd3.urls).get("node") not in (None, lead), 30, what="a new leader")
                time.sleep(rng.uniform(0.0, 1.0))
                proc.send_signal(signal.SIGCONT)
            else:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                collectors[lead] = sites[lead].start()   # back as a candidate
            counts[action] += 1
            if i == ROUNDS // 2 and not member_killed:
                etcd3.kill(rng.randrange(3))
                member_killed = True
                counts["etcd member killed"] += 1
    finally:
        spooler.halt.set()
        spooler.join(timeout=30)
    # Let the cluster settle: a leader after the last round's, every spool forwarded, every
    # forwarded record journalled.
    wait_for(lambda: (leader(etcd3.urls).get("token") or 0) > token, 30, what="a leader after the last round")
    wait_for(lambda: all(s.spool_empty() for s in sites.values()), 60, what="every spool forwarded")
    from escalator_handlers.cluster.etcd import Etcd
    e = Etcd(etcd3.urls)
    try:
        wait_for(lambda: e.count_prefix("/esc/events/") == 0, 60, what="every forwarded record journalled")
    finally:
        e.close()
    for p in list(collectors.values()) + forwarders:
        p.send_signal(signal.SIGTERM)
    for p in list(collectors.values()) + forwarders:
        p.wait(timeout=30)

    recs = [r for _, r in journal(etcd3.urls)]
    # 0 events lost, 0 journalled twice.
    tags = Counter(r.get("output") for r in recs if r["kind"] == "event")
    lost = [t for t in spooler.sent if tags[t] == 0]
    doubled = {t: n for t, n in tags.items() if n > 1}
    # Runs: every start closed; interrupted ones named by the leader that closed them.
    starts = {r["run"]: r for r in recs if r["kind"] == "start"}
    closes = {r["run"]: r for r in recs if r["kind"] == "run" and r.get("run") in starts}
    open_runs = [rid for rid in starts if rid not in closes]
    interrupted = [r for r in closes.values() if r.get("interrupted")]
    unnamed = [r["run"] for r in interrupted if not r.get("closed_by") or "not run:" not in r["reason"]]
    # Steps: each after its node's journalled start, none after a newer leadership began.
    # Every leadership, from the term keys written with the leader key (a leader killed before it
    # journalled anything counts too); the journal's leader records must agree with them.
    terms_ = terms(etcd3.urls)
    journalled = {(r["token"], r["node"]) for r in recs if r["kind"] == "leader"}
    assert journalled <= {(t, n) for _, t, n in terms_}
    steps = started(shared)
    unjournalled, late = [], []
    for t, node, where, host in steps:
        mine = [s for s in starts.values() if s["node"] == node and s["time"] <= t]
        if not mine or (closes.get(mine[-1]["run"], {}).get("time", float("inf")) < t
                        and not closes[mine[-1]["run"]].get("interrupted")):
            unjournalled.append((t, node, where, host))
        newest = [term for term in terms_ if term[0] < t]
        if newest and newest[-1][2] != node:
            late.append((t, node, where, host, newest[-1]))
    figures = {"events sent": len(spooler.sent), "events lost": len(lost), "events journalled twice": len(doubled),
               "runs": len(starts), "runs interrupted and closed": len(interrupted), "runs left open": len(open_runs),
               "interrupted runs not named": len(unnamed), "steps started": len(steps),
               "steps without a journalled start": len(unjournalled),
               "steps started after a newer leader": len(late), "leaderships": len(terms_), **counts}
    print("\nchaos figures:", ", ".join(f"{k}: {v}" for k, v in figures.items()))
    assert not lost, f"events lost: {lost[:20]}"
    assert not doubled, f"events journalled twice: {doubled}"
    assert not open_runs and not unnamed, ([(starts[r]["node"], starts[r]["token"], r) for r in open_runs], unnamed)
    assert not unjournalled, unjournalled
    assert not late, late
    assert len(terms_) > ROUNDS and len(steps) > 0 and interrupted
