"""Operator actions (pause, resume, hold, release) and whether a collector is needed.

An action travels through the spool like any event, so a running collector
applies it at its next step boundary; with no collector running, ``control``
journals it itself under the collector lock.
"""

from __future__ import annotations

from . import spool, spool_reader, storage
from .collector import Collector
from .config import Config
from .errors import LockedError, UsageError
from .planning.planner import decide


def work_pending(config: Config, now: float) -> bool:
    """Whether a collector is needed: spool entries, or the planner has something to do or await."""
    if spool_reader.pending_stats(config.spool)[0]:
        return True
    d = decide(storage.load(config).state, config, now)
    return bool(d.records or d.run is not None or d.wake is not None)


def control(config: Config, record: dict) -> str:
    """Record an operator action (pause, hold, ...) and get it journalled.

    It goes through the spool like any event, so a running collector sees it
    at its next step boundary; with no collector running, it is journalled
    here and now under the collector lock.  With ``cluster:``, it goes to etcd,
    where the leader takes it like a forwarded event.
    """
    if config.cluster is not None:
        from .cluster.view import record_action

        return record_action(config, record)
    spool.check_spool_dir(config.spool, create=True, mode=config.spool_mode)
    spool.append(config.spool, record, mode=config.spool_mode)
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
        c.ingest()
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
