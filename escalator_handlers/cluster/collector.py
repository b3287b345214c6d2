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
import time
from typing import Callable, List, Optional, Sequence

from .. import spool
from ..collector import Collector, intake_records
from ..config import Config
from ..errors import EscalatorError
from ..planning.planner import RunPlan
from ..planning.state import State
from ..storage import Batch, LeadershipLost, Recovered, StorageUnavailable, recover
from .storage import open_cluster

log = logging.getLogger("escalator")

#: How long a candidate waits for the leader key to go before it forwards its spool again
#: (its spool's wake-up FIFO and the leader key's deletion end the wait at once).
CANDIDATE_WAIT = 30.0


class ClusterCollector(Collector):
    def __init__(self, config: Config, config_path: Optional[str] = None, *, daemon: bool = False,
                 clock: Callable[[], float] = time.time, dry_run: bool = False) -> None:
        super().__init__(config, config_path, daemon=daemon, clock=clock, dry_run=dry_run)
        assert config.cluster is not None
        self.storage = open_cluster(config)
        self.lead = self.storage.leadership
        self.intake = self.storage.intake
        self.leading = False
        self._batch: Optional[Batch] = None
        self._said_unavailable = False

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> int:
        self.intake.prepare()
        self._install_signals()
        try:
            self.intake.open()
            self._wake_fd = self.intake.wakeup_fd()
            while not self.stopping:
                self.intake.gather()
                if not self.leading and not self._campaign():
                    if not self.daemon:
                        log.info("%s leads; nothing to do here", self.lead.holder())
                        return 0
                    # The leader key's deletion, this node's spool and signals all wake this.
                    self._wait(self.clock() + CANDIDATE_WAIT)
                    continue
                if self.reload_requested:
                    self._reload()
                try:
                    if not self.lead.held:
                        raise LeadershipLost("the lease expired")
                    d = self.cycle()
                except (LeadershipLost, StorageUnavailable) as exc:
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
            self.intake.close()
            self._wake_fd = -1
            self.lead.close()
            self._restore_signals()
            self._close_fds()
        return 1 if self.failed_runs and not self.daemon else 0

    def _close_fds(self) -> None:
        import os

        for fd in (self._sig_r, self._sig_w):
            if fd >= 0:
                os.close(fd)
        self._sig_r = self._sig_w = -1

    def _campaign(self) -> bool:
        try:
            won = self.lead.acquire(0.0)
        except EscalatorError as exc:
            if not self.daemon:
                raise  # a one-shot collect says so and exits 1; a daemon keeps trying
            if not self._said_unavailable:
                log.warning("cannot campaign: %s", exc)
                self._said_unavailable = True
            self._wait(self.clock() + 1.0)
            return False
        self._said_unavailable = False
        if not won:
            return False
        self.leading = True
        log.warning("node %s leads now (fencing token %s)", self.config.cluster.node, self.lead.token)
        try:
            self._recover()
        except (LeadershipLost, StorageUnavailable) as exc:
            self._lost(exc)
            return False
        return True

    def _lost(self, exc: BaseException) -> None:
        log.warning("no longer the leader, acting stops here: %s", exc)
        self.leading = False
        self.lead.release()
        self.state = State(self.config)  # the next leadership loads it afresh from etcd
        self._batch = None

    # -- storage -----------------------------------------------------------

    def _load(self) -> Recovered:  # type: ignore[override]
        return recover(self.storage, self.config)

    def _append(self, records: Sequence[dict]) -> None:
        batch, self._batch = self._batch, None
        self.storage.journal.append(records, batch)

    def _save(self) -> None:
        if self.leading and self.storage.snapshot.due():
            self._save_snapshot()

    def _checkpoint(self) -> None:
        self._save()

    def _save_snapshot(self) -> None:
        try:
            self.storage.snapshot.save(self.state, self.storage.journal.fence.seq)  # type: ignore[attr-defined]
        except EscalatorError as exc:
            log.warning("cannot write the snapshot to etcd: %s", exc)  # the journal has everything

    def _pending(self) -> bool:
        try:
            return self.intake.pending()
        except EscalatorError:
            return True

    def ingest(self) -> int:
        """Move forwarded records from etcd into the journal (deleting their keys in the same write)."""
        self.intake.gather()
        total = 0
        while True:
            batch = self.intake.take()
            if not batch.items:
                return total
            seen = self.state.seen_ids
            # The key names the record (its id): a line that is no record is skipped by it too.
            events = len(self.storage.leadership.fence.keys.events)  # type: ignore[attr-defined]
            fresh = [t for t in batch.items if t.source[events:] not in seen]
            records = intake_records(((t.source, t.line, t.record, t.raw) for t in fresh), seen, self.clock())
            for r in records:
                if r["kind"] == "rejected":
                    r["id"] = r["file"][events:]
            self._batch = batch
            if records:
                self.emit(records)
            else:
                self._append([])
            self.intake.acknowledge(batch)
            total += sum(1 for r in records if r["kind"] != "rejected")
            if not batch.more:
                return total

    # -- acting ------------------------------------------------------------

    def _recover(self) -> None:
        self._running_before = self.lead.previous()
        super()._recover()
        rec = self.lead.tenure_record(self.clock())
        if rec is not None:
            self.emit([rec])

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
        return self.lead.facts()

    def _step_gate(self) -> Optional[Callable[[], Optional[str]]]:
        # Also run in the step's child between fork and exec, and for each host of a
        # foreach step: a node frozen in between starts nothing once it wakes.
        return self.lead.check

    def _interrupt(self, plan: RunPlan) -> Optional[str]:
        why = super()._interrupt(plan)
        if why:
            return why
        run = self.state.open_run or {}
        try:
            self.lead.announce({"run": run.get("run"), "time": self.clock()})
        except (LeadershipLost, StorageUnavailable) as exc:
            return f"lost leadership: {exc}"
        # Checked again after the write, which may have waited: a frozen node starts nothing.
        return self.lead.check()


__all__ = ["ClusterCollector"]
