"""Operator actions (pause, resume, hold, release, run, approve, deny) and whether a collector is needed.

An action is a file in the control directory (:mod:`.control_dir`), which a
running collector takes at its next step boundary; with no collector running,
``control`` journals it itself under the collector lock.
"""

from __future__ import annotations

import logging

from . import control_dir, spool, spool_reader, storage
from .collector import Collector
from .config import Config
from .errors import EscalatorError, LockedError, UsageError
from .planning.planner import decide
from .storage import intake_records
from .storage.local import state_dir

log = logging.getLogger("escalator")


def work_pending(config: Config, now: float) -> bool:
    """Whether a collector is needed: spool entries, commands, or the planner has something to do or await."""
    if _spool_lines(config) or control_dir.take(state_dir(config))[1]:
        return True
    d = decide(storage.load(config).state, config, now)
    return bool(d.records or d.run is not None or d.wake is not None)


def _spool_lines(config: Config) -> int:
    try:
        return spool_reader.pending_stats(config.spool)[0]
    except OSError:
        return 0  # status names what is wrong with the spool; a command must not fail on it


def control(config: Config, record: dict) -> str:
    """Record an operator action (pause, hold, ...) and get it journalled.

    It becomes a file in the control directory (:mod:`.control_dir`), never a
    spool line: only root and escalator's own user can write there, and the
    collector takes the writer from the file's owner.  A running collector
    applies it at its next step boundary; with no collector running, it is
    journalled here and now under the collector lock.  The spool is not read
    here, so nothing planted in it (a directory, a FIFO, a symlink) takes the
    brake away.  With ``cluster:``, it goes to etcd, where the leader takes it
    like a forwarded event.
    """
    if config.cluster is not None:
        from .cluster.view import record_action

        return record_action(config, record)
    control_dir.write(state_dir(config), record)
    try:
        spool.check_spool_dir(config.spool, create=True, mode=config.spool_mode)  # as a collector would
        problems = spool_reader.bad_entries(config.spool)
    except EscalatorError as exc:
        problems = [str(exc)]
    for problem in problems:
        log.warning("%s (the %s is recorded all the same: the brake does not use the spool)",
                    problem, record.get("kind"))
    spool.wake(config.spool)
    pid = spool.collector_running(config.spool)
    if pid is not None:
        return f"recorded; the running collector (pid {pid}) applies it" if pid > 0 \
            else "recorded; the running collector applies it"
    c = Collector(config)
    lead = c.storage.leadership
    try:
        lead.acquire(1.0)
    except LockedError:
        return "recorded; the running collector applies it"
    try:
        c._recover()
        batch = c.storage.intake.take_commands()  # type: ignore[attr-defined]  (local storage)
        if batch:
            c._batch = batch
            c.emit(intake_records(batch.items, c.state.seen_ids, c.clock()))
        c._save()
    finally:
        lead.release()
    return "recorded in the journal"


def answer(config: Config, record: dict) -> str:
    """Record an ``approve`` or ``deny`` of an open approval request (``record["approval"]``).

    Refused (UsageError) when no such request is open now, so a typo or a
    request already answered, withdrawn or timed out says so instead of
    journalling an answer nobody waits for.
    """
    from .status import fold_pending

    state = storage.load(config).state
    fold_pending(config, state)  # an answer still in the spool counts
    rid = record["approval"]
    open_ = state.approvals.pending
    if rid not in open_ or open_[rid].approved_by is not None:
        what = "was already approved" if rid in open_ else "is not open (answered, withdrawn, timed out or unknown)"
        listed = ", ".join(sorted(k for k, a in open_.items() if a.approved_by is None)) or "none"
        raise UsageError(f"approval {rid!r} {what}; open requests: {listed}")
    return control(config, record)
