"""The storage seam's contract (escalator_handlers/storage), checked on every backend.

Each backend is a fixture giving a ``Backend``: a way to open its ``Storage``
(twice, as two collectors would) and to put an event into its intake the way
its handlers do.  A new backend adds itself to ``BACKENDS``; the tests stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from escalator_handlers import spool
from escalator_handlers.config import Config
from escalator_handlers.config.load import load_config_text
from escalator_handlers.errors import LockedError
from escalator_handlers.planning.state import State
from escalator_handlers.storage import ReadStats, Storage, recover
from escalator_handlers.storage.local import open_local


@dataclass
class Backend:
    config: Config
    open: Callable[[], Storage]
    put: Callable[[dict], None]


def local_backend(tmp: Path) -> Backend:
    data = {"spool": str(tmp / "spool"), "journal": str(tmp / "journal.jsonl"),
            "levels": [{"name": "vm", "steps": [{"shell": "true"}]}],
            "checks": [{"host": "*", "level": "vm"}]}
    cfg = load_config_text(yaml.safe_dump(data), "test.yaml")
    return Backend(cfg, lambda: open_local(cfg), lambda rec: spool.append(cfg.spool, rec, mode=cfg.spool_mode))


BACKENDS = {"local": local_backend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path) -> Backend:
    return BACKENDS[request.param](tmp_path)


def event(host: str, state: str = "DOWN", t: float = 1_800_000_000.0) -> dict:
    return {"time": t, "kind": "event", "host": host, "service": None, "state": state,
            "state_type": "HARD", "attempt": 1, "downtime": 0, "output": ""}


def _journal_and_save_two_events(s: Storage, cfg: Config) -> State:
    """Journal two events, fold them, and save that state as the snapshot; the state."""
    state = State(cfg)
    recs = [event("a"), event("b", t=1_800_000_001.0)]
    pos = s.journal.append(recs)
    for r in recs:
        state.apply(r)
    s.snapshot.save(state, pos)
    return state


def test_journal_reads_back_in_order_from_any_position_it_handed_out(backend: Backend) -> None:
    s = backend.open()
    s.leadership.acquire(1.0)
    try:
        first = s.journal.append([event("a"), event("b")])
        s.journal.append([event("c")])
        assert [r["host"] for _, r in s.journal.read(None)] == ["a", "b", "c"]
        assert [r["host"] for _, r in s.journal.read(first)] == ["c"]
        positions = [p for p, _ in s.journal.read(None)]
        assert [r["host"] for _, r in s.journal.read(positions[0])] == ["b", "c"]
    finally:
        s.leadership.release()


def test_snapshot_loads_what_was_saved_and_recovery_folds_the_journal_after_it(backend: Backend) -> None:
    s = backend.open()
    cfg = backend.config
    s.leadership.acquire(1.0)
    try:
        assert s.snapshot.load(cfg) is None
        state = _journal_and_save_two_events(s, cfg)
        later = event("a", "UP", t=1_800_000_002.0)
        s.journal.append([later])
        loaded = s.snapshot.load(cfg)
        assert loaded is not None and loaded[0].to_json() == state.to_json()
        got = recover(backend.open(), cfg)
        state.apply(later)
        assert got.state.to_json() == state.to_json()
        assert got.tail == [later] and got.corrupt == 0
    finally:
        s.leadership.release()


def test_an_unacknowledged_batch_is_taken_again_and_an_acknowledged_one_never(backend: Backend) -> None:
    s = backend.open()
    s.intake.prepare()  # as the collector does, before anything else
    s.leadership.acquire(1.0)
    s.intake.open()
    try:
        assert not s.intake.take() and not s.intake.pending()
        backend.put(event("a"))
        backend.put(event("b"))
        assert s.intake.pending()
        batch = s.intake.take()
        assert [t.record["host"] for t in batch.items] == ["a", "b"]
        again = s.intake.take()  # a collector that died before acknowledging
        assert [t.record["host"] for t in again.items] == ["a", "b"]
        s.intake.acknowledge(again)
        assert not s.intake.take() and not s.intake.pending()
    finally:
        s.intake.close()
        s.leadership.release()


def test_only_one_collector_leads_and_the_next_takes_over_after_release(backend: Backend) -> None:
    one, two = backend.open(), backend.open()
    one.leadership.acquire(1.0)
    try:
        assert one.leadership.held
        assert one.leadership.check() is None
        started = time.monotonic()
        try:
            won = two.leadership.acquire(0)   # a cluster's standby: False
        except LockedError:
            won = False                       # one node: a second collector is a mistake to report
        assert not won and time.monotonic() - started < 0.9 and not two.leadership.held
    finally:
        one.leadership.release()
    assert not one.leadership.held
    two.leadership.acquire(1.0)
    assert two.leadership.held
    two.leadership.release()


def test_local_journal_counts_and_skips_a_line_torn_by_a_crash(tmp_path: Path) -> None:
    backend = local_backend(tmp_path)
    s = backend.open()
    s.journal.append([event("a")])
    with open(backend.config.journal, "ab") as f:
        f.write(b'{"time": 1, "kind": "ev')  # a crash half-way through an append
    s.journal.append([event("b")])
    stats = ReadStats()
    assert [r["host"] for _, r in s.journal.read(None, stats)] == ["a", "b"]
    assert stats.corrupt == 1


def test_local_snapshot_is_due_at_intervals_on_the_systems_clock(tmp_path: Path) -> None:
    from escalator_handlers.storage.local import SNAPSHOT_EVERY
    from escalator_handlers.system import System

    class Clock(System):
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

    system = Clock()
    backend = local_backend(tmp_path)
    s = open_local(backend.config, system)
    state = State(backend.config)
    assert s.snapshot.due()                      # never saved: due at once
    s.snapshot.save(state, s.journal.append([event("a")]))
    assert not s.snapshot.due()
    system.now += SNAPSHOT_EVERY - 1
    assert not s.snapshot.due()
    system.now += 1
    assert s.snapshot.due()


def test_recovery_rebuilds_from_every_journal_file_when_the_snapshots_file_was_compressed(tmp_path: Path) -> None:
    import gzip
    import os

    backend = local_backend(tmp_path)
    cfg = backend.config
    s = backend.open()
    state = _journal_and_save_two_events(s, cfg)
    # logrotate with `create` and `compress`: journal.jsonl -> .1, a new journal, then .1 -> .1.gz
    os.rename(cfg.journal, cfg.journal + ".1")
    later = event("c", t=1_800_000_002.0)
    s.journal.append([later])
    with open(cfg.journal + ".1", "rb") as f, gzip.open(cfg.journal + ".1.gz", "wb") as g:
        g.write(f.read())
    os.unlink(cfg.journal + ".1")
    got = recover(backend.open(), cfg)
    state.apply(later)
    assert got.state.to_json() == state.to_json()
    assert [r["host"] for r in got.tail] == ["a", "b", "c"]   # folded again from scratch


def test_recent_reads_the_last_records_of_the_kinds_asked_for(backend: Backend) -> None:
    s = backend.open()
    s.leadership.acquire(1.0)
    try:
        s.journal.append([dict(event(f"h{i}"), kind="run" if i % 2 else "event") for i in range(9)])
        assert [r["host"] for r in s.journal.recent(("run",), limit=3)] == ["h3", "h5", "h7"]
    finally:
        s.leadership.release()


def test_an_event_without_a_real_time_is_rejected_with_its_text_not_folded() -> None:
    # A spool line from a foreign writer may carry NaN or Infinity (Python's json reads
    # both): folded, such a time would make every later observation of the check "older"
    # or stall the debounce.  It is journalled as rejected, with its text, like junk.
    from escalator_handlers.storage import intake_records

    now = 1_800_000_000.0
    items = [("events.jsonl", n, dict(event("a"), time=t), f'{{"time": {t!r}, "host": "a"}}')
             for n, t in enumerate((float("nan"), float("inf"), -float("inf")), 1)]
    items.append(("events.jsonl", 4, event("b"), '{"host": "b"}'))
    recs = intake_records(items, set(), now)
    assert [r["kind"] for r in recs] == ["event", "rejected", "rejected", "rejected"]
    assert recs[0]["host"] == "b"
    assert all("finite" in r["reason"] and r["text"].startswith('{"time": ') for r in recs[1:])
