"""``escalator collect`` with ``cluster:``: campaign, and act only while leading.

The same collector as on one node (the planner, the executor, feedback to
Nagios), with its storage in etcd (:mod:`.store`) and leadership instead of
the spool's file lock (:mod:`.leader`):

* every node ships its own spool into etcd first (``forward`` does the same
  for nodes that do not collect);
* a node that wins the leader key loads the state from etcd, closes a run
  its predecessor left open (naming the steps that may still be running
  there) instead of running it again, and collects;
* every journal write is fenced by the leadership's token; a refused write
  means another node leads now: this one stops acting, forgets its state and
  campaigns again;
* before each step, the lease must have been renewed recently enough
  (``Leadership.fresh``) and the node marks the step as starting with a
  fenced write; otherwise the run stops there.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, List, Optional, Sequence

from .. import spool, spool_reader
from ..collector import Collector, intake_records
from ..config import Config
from ..errors import EscalatorError
from ..planning.planner import RunPlan
from ..planning.state import State
from ..storage import Recovered as Loaded
from .etcd import Etcd, EtcdUnavailable
from .forward import forward_once, spool_lock
from .leader import Leadership
from .store import MAX_OPS, ClusterStore, Deposed, Keys

log = logging.getLogger("escalator")

#: How often an idle leader looks for forwarded events, and a follower for a free leader key.
POLL = 0.25


class ClusterCollector(Collector):
    def __init__(self, config: Config, config_path: Optional[str] = None, *, daemon: bool = False,
                 clock: Callable[[], float] = time.time, dry_run: bool = False) -> None:
        super().__init__(config, config_path, daemon=daemon, clock=clock, dry_run=dry_run)
        c = config.cluster
        assert c is not None
        self.etcd = Etcd(c.etcd, timeout=max(0.5, min(2.0, c.lease_ttl / 4)))
        self.keys = Keys(c.prefix)
        self.store = ClusterStore(config, self.etcd)
        self.lead = Leadership(self.etcd, self.keys, c.node, "collect", c.lease_ttl)
        self.leading = False
        self._consumed: List[str] = []
        self._spool_lock = spool_lock(config)
        self._said_unavailable = False

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> int:
        spool.check_spool_dir(self.config.spool, create=True, mode=self.config.spool_mode)
        self._install_signals()
        try:
            self._wake_fd = spool_reader.open_wakeup(self.config.spool)
            while not self.stopping:
                self._forward_local()
                if not self.leading and not self._campaign():
                    if not self.daemon:
                        leader = (self.lead.leader_seen or {}).get("node")
                        log.info("node %s leads; nothing to do here", leader)
                        return 0
                    self._wait(self.clock() + POLL)
                    continue
                if self.reload_requested:
                    self._reload()
                try:
                    if self.lead.token is None:
                        raise Deposed("the lease expired")
                    d = self.cycle()
                except (Deposed, EtcdUnavailable) as exc:
                    self._lost(exc)
                    continue
                if self.reload_requested or d is None:
                    continue
                if not self.daemon and d.wake is None and not self._pending():
                    break
                self._wait(d.wake)
        finally:
            if self.leading:
                self._save_snapshot()
            self.lead.close()
            self._restore_signals()
            self._close_fds()
            self.etcd.close()
        return 1 if self.failed_runs and not self.daemon else 0

    def _close_fds(self) -> None:
        import os

        for fd in (self._wake_fd, self._sig_r, self._sig_w):
            if fd >= 0:
                os.close(fd)
        self._wake_fd = self._sig_r = self._sig_w = -1

    def _campaign(self) -> bool:
        try:
            won = self.lead.campaign()
        except EscalatorError as exc:
            if not self.daemon:
                raise  # a one-shot collect says so and exits 1; a daemon keeps trying
            if not self._said_unavailable:
                log.warning("cannot campaign: %s", exc)
                self._said_unavailable = True
            return False
        self._said_unavailable = False
        if not won:
            return False
        self.store.token, self.store.loaded = self.lead.token, False
        self.leading = True
        log.warning("node %s leads now (fencing token %s)", self.config.cluster.node, self.lead.token)
        try:
            self._recover()
        except (Deposed, EtcdUnavailable) as exc:
            self._lost(exc)
            return False
        return True

    def _lost(self, exc: BaseException) -> None:
        log.warning("no longer the leader, acting stops here: %s", exc)
        self.leading = False
        self.store.token, self.store.loaded = None, False
        self.lead.step_down()
        self.state = State(self.config)  # the next leadership loads it afresh from etcd
        self._consumed = []

    def _wait(self, until: Optional[float]) -> None:
        # Forwarded events arrive in etcd, not on this node's wake-up FIFO: look again soon.
        super()._wait(min(until if until is not None else math.inf, self.clock() + POLL))

    # -- storage -----------------------------------------------------------

    def _load(self) -> Loaded:
        return self.store.load()

    def _append(self, records: Sequence[dict]) -> None:
        consumed, self._consumed = self._consumed, []
        self.store.append(records, consumed)

    def _save(self) -> None:
        if self.leading and self.store.due_snapshot():
            self._save_snapshot()

    def _save_snapshot(self) -> None:
        try:
            self.store.save(self.state)
        except EscalatorError as exc:
            log.warning("cannot write the snapshot to etcd: %s", exc)  # the journal has everything

    def _pending(self) -> bool:
        try:
            return self.store.pending() > 0 or spool_reader.pending_stats(self.config.spool)[0] > 0
        except EscalatorError:
            return True

    def _forward_local(self) -> None:
        try:
            forward_once(self.config, self.etcd, self.keys, self._spool_lock)
        except EscalatorError as exc:
            log.warning("cannot forward the local spool (it keeps the records): %s", exc)

    def ingest(self) -> int:
        """Move forwarded records from etcd into the journal (deleting their keys in the same write)."""
        self._forward_local()
        total = 0
        while True:
            items = self.store.take()
            if not items:
                return total
            seen = self.state.seen_ids
            # The key names the record (its id): a line that is no record is skipped by it too.
            fresh = [(key, rec, raw) for key, rec, raw in items if key[len(self.keys.events):] not in seen]
            records = intake_records(((key, 0, rec, raw) for key, rec, raw in fresh), seen, self.clock())
            for r in records:
                if r["kind"] == "rejected":
                    r["id"] = r["file"][len(self.keys.events):]
            self._consumed = [key for key, _, _ in items]
            if records:
                self.emit(records)
            else:
                self._append([])
            total += sum(1 for r in records if r["kind"] != "rejected")
            if len(items) < MAX_OPS - 1:
                return total

    # -- acting ------------------------------------------------------------

    def _recover(self) -> None:
        running = None
        try:
            kv = self.etcd.get(self.keys.running)
            running = kv.json() if kv is not None else None
        except (EscalatorError, ValueError):
            pass
        self._running_before = running
        super()._recover()
        # In the journal, so `history` and the chaos test see every leadership and when it began.
        self.emit([{"time": self.clock(), "kind": "leader", "node": self.config.cluster.node,
                    "token": self.lead.token, "campaigned": self.lead.campaigned_at}])

    def _interrupted(self, open_run: dict) -> dict:
        rec = super()._interrupted(open_run)
        node = open_run.get("node") or "another node"
        rec["reason"] = rec["reason"].replace("the collector stopped during this run",
                                              f"the leader ({node}) stopped leading during this run")
        rec["closed_by"] = self.config.cluster.node
        running = getattr(self, "_running_before", None)
        if running and running.get("run") == open_run.get("run"):
            rec["last_step_start"] = running.get("time")
        # The steps that may still be running there: a kill stops escalator, not its steps.
        # (interrupted_run marks them "(running or next)": every host a foreach step had in flight)
        rec["may_be_running"] = [w for w in rec.get("not_done", ()) if f"{w} (running or next)" in rec["reason"]]
        return rec

    def _run_extra(self) -> Optional[dict]:
        return {"node": self.config.cluster.node, "token": self.lead.token}

    def _step_gate(self) -> Optional[Callable[[], Optional[str]]]:
        lead = self.lead

        def gate() -> Optional[str]:
            # Also run in the step's child between fork and exec, and for each host of a
            # foreach step: a node frozen in between starts nothing once it wakes.
            return None if lead.fresh() else "lost leadership: the lease was not renewed in time"
        return gate

    def _interrupt(self, plan: RunPlan) -> Optional[str]:
        why = super()._interrupt(plan)
        if why:
            return why
        if not self.lead.fresh():
            return "lost leadership: the lease was not renewed in time"
        run = self.state.open_run or {}
        try:
            self.store.mark_running({"node": self.config.cluster.node, "token": self.lead.token,
                                     "run": run.get("run"), "time": self.clock()})
        except (Deposed, EtcdUnavailable) as exc:
            return f"lost leadership: {exc}"
        # Checked again after the write, which may have waited: a frozen node starts nothing.
        if not self.lead.fresh():
            return "lost leadership: the lease was not renewed in time"
        return None


__all__ = ["ClusterCollector"]
