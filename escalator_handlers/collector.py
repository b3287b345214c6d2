"""The collector: the only part of escalator that acts.

One collector acts per escalator: it holds the leadership (the spool's file
lock on one node, a lease in etcd for several).  Each cycle it takes the
intake, journals the events (then, and only then, acknowledges them),
folds them into the state, and runs the loop (``planning.loop.settle``):
decide, journal the decision, carry out any run.  Idle, it sleeps in
select() on the intake's wake-up descriptor until the next event or the
planner's next wake-up time: no busy polling.

It talks to its storage only through :mod:`.storage` (intake, journal,
snapshot, leadership): the same code runs on local files and on etcd.
Crash safety: every effect is journalled before the intake entry behind it
is acknowledged; a run's ``start`` is journalled before its first step, so
a successor closes a run its collector died in with a ``run`` record saying
which steps were done, which not, and which may still be running.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from typing import Callable, Optional, Sequence

from . import defaults as default
from . import kinds
from .clock import SteadyClock, behind_journal, restamp, stepped
from .config import Config, load_config
from .display import log_level, log_line, plural, safe
from .errors import ConfigError, EscalatorError
from .listen_state import heartbeat_gap
from .planning.gaps import note as note_gap
from .monitoring.link import MonitoringLink, recovered_since, seed_events
from .planning.loop import MAX_DECISIONS, settle, stop_reason
from .planning.planner import Decision, RunPlan
from .planning.state import State
from .steps.run_plan import DryRunner, execute, interrupted_run, notify_steps, unsent_notifications
from .storage import unwritten
from .storage import (Batch, LeadershipLost, Recovered, Storage, StorageUnavailable, intake_records, open_storage,
                      recover)
from .system import REAL, Signals, System, drain

log = logging.getLogger("escalator")

#: While a person's acknowledgement holds a failing host, look for its removal this often.
ACK_POLL = default.ACK_POLL
#: A daemon re-checks the intake this often even without a wake-up (belt and braces).
DAEMON_RECHECK = 60.0
#: A standby (another collector leads) tries for the leadership this often.
CAMPAIGN_EVERY = 1.0


class Collector:
    """See the module docstring.  ``clock`` returns epoch seconds (default: ``clock.SteadyClock``)."""

    def __init__(self, config: Config, config_path: Optional[str] = None, *, daemon: bool = False,
                 clock: Optional[Callable[[], float]] = None, dry_run: bool = False,
                 storage: Optional[Storage] = None, system: System = REAL) -> None:
        self.config = config
        self.config_path = config_path
        self.daemon = daemon
        self.dry_run = dry_run  # shadow mode: plan and journal every decision, execute nothing
        self.clock: Callable[[], float] = clock if clock is not None else SteadyClock(system)
        self.stopping = False
        self.stop_signal: Optional[int] = None
        self.acting = False               # a run or a notification is under way
        self.reload_requested = False
        self.cancel = threading.Event()
        self.failed_runs = 0
        self.runs = 0
        self.system = system
        self.storage = storage if storage is not None else open_storage(config, system)
        self.state = State(config)
        self.position: object = None
        self._batch: Optional[Batch] = None      # taken, being journalled (acknowledged with it)
        self._held: Optional[unwritten.Held] = None  # the journal failed in this run: what it held since
        self.signals = Signals(self._on_stop, self._on_hup)
        self.monitoring = MonitoringLink(config, dry_run)
        self._said_unavailable = False  # said once per outage of the store, not every second

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> int:
        """Collect until nothing is pending (or forever with ``daemon``); exit status."""
        intake, lead = self.storage.intake, self.storage.leadership
        intake.prepare()
        self.signals.install()  # at once: a SIGHUP right after the lock must not kill us
        try:
            intake.open()
            while not self.stopping:
                intake.gather()
                if not lead.held and not self._lead():
                    if not self.daemon:
                        log.info("%s leads; nothing to do here", lead.holder() or "another collector")
                        return 0
                    self._wait(self.clock() + CAMPAIGN_EVERY)
                    continue
                if self.reload_requested:
                    self._reload()  # before planning: a SIGHUP'd config must govern the next run
                try:
                    d = self.cycle()
                except (LeadershipLost, StorageUnavailable) as exc:
                    self._lost(exc)
                    continue
                if self.reload_requested:
                    continue
                if d is None:
                    continue  # a run just finished: plan again at once
                if not self.daemon and d.wake is None and not self._pending():
                    if self._hand_over():
                        break
                    continue
                self._wait(d.wake)
        finally:
            self._save()
            lead.close()
            self.signals.restore()
            intake.close()
        if self.stop_signal == signal.SIGINT:
            return 130  # the shell convention for an interrupt (128 + 2), after the bookkeeping
        return 1 if self.failed_runs and not self.daemon else 0

    def _lead(self, timeout: float = 1.0) -> bool:
        """Take the leadership and recover the state (False: another collector leads)."""
        try:
            if not self.storage.leadership.acquire(timeout):
                return False
        except (LeadershipLost, StorageUnavailable) as exc:
            if not self.daemon:
                raise  # a one-shot collect says so and exits 1; a daemon keeps trying
            if not self._said_unavailable:
                log.warning("cannot campaign: %s", exc)
                self._said_unavailable = True
            return False
        self._said_unavailable = False
        try:
            self._record_config()
            self._recover()
        except (LeadershipLost, StorageUnavailable) as exc:
            self._lost(exc)
            return False
        return True

    def _lost(self, exc: BaseException) -> None:
        """Another collector leads now (or the store is gone): stop acting, forget the state."""
        log.warning("no longer the leader, acting stops here: %s", exc)
        self.storage.leadership.release()
        self.state = State(self.config)  # the next leadership recovers it afresh
        self._batch = None

    def _record_config(self) -> None:
        """Say in the spool which config this collector obeys (``status`` compares it with the file)."""
        from .operator_config import file_digest, record_running

        record_running(self.config, file_digest(self.config_path or self.config.source), self.clock())

    def _hand_over(self) -> bool:
        """Exit without losing a wake-up: release, then look again (True = done)."""
        self._save()
        self.storage.leadership.release()
        if not self._pending():
            return True
        # An event arrived while we were leaving.  Its handler saw our lock held
        # and spawned nobody, so take the lock back -- unless someone else has.
        try:
            if self._lead(timeout=0.5):
                log.debug("an event arrived while exiting; collecting again")
                return False
        except EscalatorError:
            pass
        log.debug("an event arrived while exiting; the collector that took the lock handles it")
        return True

    def _pending(self) -> bool:
        try:
            return self.storage.intake.pending()
        except EscalatorError:
            return True  # cannot tell: stay

    def _on_stop(self, signum: int, frame: object) -> None:
        log.info("signal %d: stopping %s", signum,
                 "after the current step's bookkeeping" if self.acting else "(idle, nothing under way)")
        self.stop_signal = signum
        self.stopping = True
        self.cancel.set()

    def _on_hup(self, signum: int, frame: object) -> None:
        self.reload_requested = True

    def _reload(self) -> None:
        self.reload_requested = False
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload failed, keeping the old config:\n%s", exc)
            self.emit([{"time": self.clock(), "kind": kinds.CONFIG, "outcome": "rejected",
                        "reason": str(exc)[:4000]}])
            return
        if new.spool != self.config.spool or new.journal != self.config.journal:
            log.warning("spool and journal paths change only with a restart; keeping %s and %s",
                        self.config.spool, self.config.journal)
        self.config = new
        self._record_config()
        self.state.remap(new)
        self.monitoring.reconfigure(new)
        self.emit([{"time": self.clock(), "kind": kinds.CONFIG, "outcome": "reloaded",
                    "reason": f"loaded {new.source}"}])

    # -- state -------------------------------------------------------------

    def _recover(self) -> None:
        loaded: Recovered = recover(self.storage, self.config)
        self.state, self.position = loaded.state, loaded.position
        if loaded.corrupt:
            log.warning("journal %s: skipped %s", self.config.journal, plural(loaded.corrupt, "unreadable line"))
        unwritten.recover(self.emit, self.config, self.state.open_run, self.system)  # a run the journal failed in
        self.emit([rec for rec in (behind_journal(self.clock, self.state.clock_seen),) if rec is not None])
        tenure = self.storage.leadership.tenure_record(self.clock())
        open_run = self.state.open_run
        if open_run is not None:
            log.warning("the previous collector died during run %s; recording it as interrupted",
                        open_run.get("run"))
            lead = self.storage.leadership
            self.emit([interrupted_run(open_run, open_run.get("steps_done", ()), self.clock(), self.config,
                                       closed_by=lead.facts().get("node"), previous=lead.previous())])
        if tenure is not None:
            self.emit([tenure])  # in the journal: `history` and the chaos test see every leadership
        for rec in unsent_notifications(loaded.tail, len(self.config.notify)):
            log.warning("the previous collector died before sending a notification; sending it now")
            self._notify(rec)
        self.emit(seed_events(self.config, self.state))  # what status.dat knows better (missed while down)

    def _save(self) -> None:
        """Write the snapshot now (leaving, handing over, tests)."""
        if not self.storage.leadership.held:
            return  # only the leader may write the snapshot
        try:
            self.storage.snapshot.save(self.state, self.position)
        except EscalatorError as exc:
            log.error("%s", exc)  # the journal still has everything

    def emit(self, records: Sequence[dict]) -> None:
        """Journal records durably, fold them, then carry out their side effects."""
        if self._held is not None and not self._held.closing:
            return self._held.records.extend(records)  # the journal failed in this run (storage/unwritten.py)
        if not records and self._batch is None:
            return
        if records and self.storage.journal.is_new() and self.state.worth_carrying():
            # The first record of every journal file (after a logrotate) carries the operator's
            # state and every failing check's: neither is lost with old files or the snapshot.
            records = [self.state.checkpoint(self.clock())] + list(records)
        if any(r.get("kind") in (kinds.START, kinds.RUN) for r in records):  # decided during a gap: say so
            records = note_gap(records, self.state.gaps, heartbeat_gap(self.config, self.clock()))
        batch, self._batch = self._batch, None
        try:
            position = self.storage.journal.append(records, batch)
        except EscalatorError as exc:  # mid-run: no further step starts; the run is closed saying why
            self._held = unwritten.hold(exc, self.acting and self.config.cluster is None, self.state, records, batch)
            return
        if position is not None:
            self.position = position
        if batch:
            self.storage.intake.acknowledge(batch)
        for rec in records:
            self.state.apply(rec)
        for rec in records:
            kind = rec.get("kind")
            log.log(log_level(rec), "%s", log_line(rec))  # one line per decision (and event, with -v)
            if kind == kinds.NOTIFY:
                self._notify(rec)
            elif kind == kinds.START:
                self._tell("run_started", [(c["host"], c.get("service")) for c in rec.get("checks", ())],
                           rec.get("levels", []))
            elif kind == kinds.RUN and rec.get("outcome") in ("ok", "failed", "skipped"):
                self._tell("run_finished", rec["outcome"] if rec["outcome"] != "skipped" else "held",
                           rec.get("reason") or rec.get("summary") or "")

    def _notify(self, rec: dict) -> None:
        if rec.get("undelivered"):
            log.warning("notification NOT sent (%s): %s", rec["undelivered"], safe(rec.get("summary"), 1000))
        # Notify steps honour SIGTERM like any step: a stop must not wait for a hung mailer.
        was, self.acting = self.acting, True
        try:
            with (DryRunner() if self.dry_run else self._runner()) as runner:
                notify_steps(self.config, rec, runner, self.emit, self.clock, dry_run=self.dry_run)
        finally:
            self.acting = was

    def _tell(self, method: str, *args: object) -> None:
        self.emit(self.monitoring.tell(method, *args, now=self.clock()))

    # -- one cycle ---------------------------------------------------------

    def ingest(self) -> int:
        """Move the intake into the journal; return how many records were new."""
        step = stepped(self.clock)  # a step of the wall clock: journalled and folded first
        self.emit([step] if step else [])
        total, more = 0, True
        while more:
            batch = self.storage.intake.take()
            if not batch:
                break
            items = batch.items if step is None else restamp(batch.items, step)
            records = intake_records(items, self.state.seen_ids, self.clock())
            self._batch, more = batch, batch.more   # journalled with the records, acknowledged after them
            self.emit(records)
            total += sum(1 for r in records if r["kind"] != kinds.REJECTED)
        return total

    def cycle(self) -> Optional[Decision]:
        """Ingest, then the loop (decide, record, act: ``planning.loop.settle``).  None
        means a run happened: ingest and plan again at once."""
        self.ingest()
        self._sync_acks()
        self.emit(self.monitoring.downtime_ends(self.state, self.clock()))
        # Once the intake proved usable: status and check_escalator tell "missing" from "quiet".
        self.storage.journal.create()
        s = settle(self.state, self.config, self.clock, self.emit, self._execute,
                   confirm=self._confirmed, stop_after_run=True)
        if s.looping:
            log.error("planner did not settle after %d decisions; waiting", MAX_DECISIONS)
            return Decision(wake=self.clock() + self.config.quiescence)
        if self.storage.snapshot.due():
            # Not after every cycle: a snapshot costs O(checks) (288 ms and 10 MB at 100,000), and the
            # journal is the write-ahead log (a start folds what follows the snapshot).
            self._save()
        if s.ran:
            return None
        d = s.decision
        if self.state.acks.by_check and self.state.acks.active(self.state.checks):
            # Nagios runs no handler when an acknowledgement goes: look again soon.
            d.wake = min(d.wake or float("inf"), self.clock() + ACK_POLL)
        d.wake = self.monitoring.downtime_wake(self.state, d.wake, self.clock())  # nor when a downtime ends
        return d

    def _execute(self, plan: RunPlan) -> None:
        self.runs += 1
        self.acting = True
        dry = self.dry_run or plan.dry_run
        try:
            with (DryRunner() if dry else self._runner()) as runner:
                rec = execute(plan, self.config, runner, self.emit, self.clock,
                              interrupt=lambda: self._interrupt(plan), dry_run=dry,
                              extra=self.storage.leadership.facts() or None)
        finally:
            self.acting = False
            if self._held is not None:
                unwritten.close(self._held, self.state.open_run, self.clock(), self.config, self.emit, self.system)
        # A run cut short on purpose (SIGTERM, the operator's pause or hold, a more
        # drastic level) is no failure of the run: `collect` exits 1 only for real ones.
        if rec.get("outcome") == "failed" and not self.stopping and not rec.get("superseded"):
            self.failed_runs += 1

    def _interrupt(self, plan: RunPlan) -> Optional[str]:
        """Asked before each step: a reason to stop the run there, or None to go on."""
        if self._held is not None or self.stopping:
            return self._held.reason() if self._held is not None else "collector stopping (signal)"
        self.ingest()
        lead = self.storage.leadership
        why = stop_reason(self.state, self.config, plan) or lead.check()
        if why:
            return why
        run = self.state.open_run or {}
        try:
            lead.announce({**lead.facts(), "run": run.get("run"), "time": self.clock()})
        except (LeadershipLost, StorageUnavailable) as exc:
            return f"lost leadership: {exc}"
        return lead.check()  # again after the write, which may have waited: a frozen node starts nothing

    def _runner(self):  # -> StepRunner (imported late: paramiko and friends)
        from .steps import StepRunner

        # Asked just before each step process starts, in the child between fork and exec too:
        # a cluster collector frozen past its lease starts nothing.
        return StepRunner(cancel=self.cancel, gate=self.storage.leadership.check, system=self.system)

    def _sync_acks(self) -> bool:
        """Journal acknowledgements by people that appeared or went; True if any did."""
        changes = self.monitoring.acks(self.state, self.clock())
        self.emit(changes)
        return bool(changes)

    def _confirmed(self, plan: RunPlan) -> bool:
        """With ``status_file``: act only on checks Nagios still sees failing and out of
        downtime, and on no host a person acknowledged meanwhile."""
        if changed := self.monitoring.downtimes(self.state, [a.key for a in plan.checks], self.clock()):
            self.emit(changed)  # a downtime scheduled since the last event (a host's reaches no service event)
            return False
        if self._sync_acks() and self.state.acks.active(self.state.checks).keys() & \
                {h for hosts in plan.targets.values() for h in hosts}:
            log.info("a person acknowledged a problem on a target host; planning again")
            return False
        fresh = recovered_since(self.config, self.state, (a.key for a in plan.checks))
        if fresh:
            log.info("status.dat says %s recovered; planning again", plural(len(fresh), "asking check"))
            self.emit(fresh)
            return False
        return True

    def _wait(self, until: Optional[float]) -> None:
        timeout = None if until is None else max(0.0, until - self.clock())
        if self.daemon and (timeout is None or timeout > DAEMON_RECHECK):
            timeout = DAEMON_RECHECK
        fds = [fd for fd in (self.storage.intake.wakeup_fd(), self.signals.fd) if fd >= 0]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        for fd in ready:
            drain(fd)
