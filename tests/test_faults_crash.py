"""Crash safety: SIGKILL the collector at many points of its cycle, restart, audit.

Each trial gets its own spool and journal, feeds events, and runs the
collector twice with a kill armed at a random point (fault_fixtures lists the
points: after taking the spool, after journalling an event batch / a run's
start / a step / a run, half-way through a journal line, while removing spool
files, while writing the snapshot, during a step; or from outside at a
random time), then once more to completion.  After every kill and at the end
it checks, by event id and by the marker lines the steps write:

- every event is either journalled or still pending in the spool, none twice;
- no step ran without its run's ``start`` in the journal, none ran twice in
  one run, and a step without its own ``step`` record belongs to a run the
  journal closes as interrupted;
- every ``start`` is closed by exactly one ``run``; the journal parses except
  for the torn lines the test itself caused, which are skipped;
- the state the next collector loads (snapshot + journal tail) equals a fold
  of the whole journal from scratch.

``ESCALATOR_FAULT_SEED`` and ``ESCALATOR_FAULT_TRIALS`` change the (fixed by
default, so CI is repeatable) random choices and the number of trials.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Counter, Dict, List, Tuple

import pytest

from escalator_handlers import journal as journalmod, spool, spool_reader, storage
from escalator_handlers.config import load_config
from escalator_handlers.steps.run_plan import unsent_notifications
from escalator_handlers.planning.state import State
from fault_fixtures import ESCALATOR, clean_env, escalator, faulty, of_kind, read_journal, write_config

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("ESCALATOR_FAULT_SEED", "7"))
TRIALS = int(os.environ.get("ESCALATOR_FAULT_TRIALS", "30"))
#: Kills armed per trial before the final, undisturbed collector.
KILLS_PER_TRIAL = 3

#: (point, highest COUNT to draw): past the end of a trial's cycle the kill never fires.
POINTS: List[Tuple[str, int]] = [
    ("taken", 2), ("journal", 10), ("journal.event", 2), ("journal.start", 2), ("journal.step", 5),
    ("journal.run", 2), ("torn", 8), ("torn.event", 2), ("torn.step", 3), ("finish", 1),
    ("finished", 2), ("saved", 3), ("save-torn", 3), ("step", 5), ("random", 0),
]

MARKER = """#!/bin/sh
# marker LEVEL HOST: note which run this step belongs to (the last `start` in the
# journal, fsynced before any of its steps), then do a little "work".
run=$(grep '"kind": "start"' '{journal}' | tail -n 1 | sed -n 's/.*"run": "\\([0-9a-f]*\\)".*/\\1/p')
echo "$run $1 $2 begin" >> '{markers}'
sleep 0.01
echo "$run $1 $2 end" >> '{markers}'
"""

CONFIG = """quiescence: 0s
max_delay: 1s
levels:
  - name: vm
    max_attempts: 2
    steps:
      - shell: {marker} vm {{host}}
        foreach: host
        concurrency: 2
  - name: converge
    steps:
      - shell: {marker} converge {{host}}
        foreach: host
  - name: deploy
    steps:
      - shell: {marker} deploy all
checks:
  - {{service: PING, level: vm}}
  - {{service: "*", level: converge}}
notify:
  - shell: {marker} notify all
"""


STEP_OF_LEVEL = {"vm": "levels[0].steps[0]", "converge": "levels[1].steps[0]", "deploy": "levels[2].steps[0]"}


@dataclass
class Trial:
    index: int
    tmp: Path
    rng: random.Random
    ids: List[str] = field(default_factory=list)
    fired: List[str] = field(default_factory=list)
    torn: int = 0
    missed: List[str] = field(default_factory=list)

    @property
    def spool(self) -> Path:
        return self.tmp / "spool"

    @property
    def journal(self) -> Path:
        return self.tmp / "journal.jsonl"


def setup_trial(index: int, base: Path) -> Trial:
    tmp = base / f"trial{index:03d}"
    tmp.mkdir()
    t = Trial(index, tmp, random.Random(SEED * 1000 + index))
    marker = tmp / "marker.sh"
    marker.write_text(MARKER.format(journal=t.journal, markers=tmp / "markers"))
    marker.chmod(0o755)
    write_config(tmp, CONFIG.format(marker=marker))
    return t


def feed(t: Trial, n: int) -> None:
    for _ in range(n):
        host = t.rng.choice(("h1", "h2", "h3"))
        service = t.rng.choice(("PING", "PING", "HTTP"))
        state = t.rng.choice(("CRITICAL", "CRITICAL", "OK"))
        t.ids.append(spool.append(str(t.spool), {
            "time": time.time(), "host": host, "service": service, "state": state,
            "state_type": "HARD", "attempt": 1, "downtime": 0, "output": f"trial {t.index}"}))


def collect_with_kill(t: Trial) -> None:
    point, top = t.rng.choice(POINTS)
    conf = str(t.tmp / "escalator.yaml")
    if point == "random":
        # No hook at all: a kill from outside at a random instant of the cycle.
        p = subprocess.Popen([ESCALATOR, "collect", "--config", conf], env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            p.wait(t.rng.uniform(0.15, 0.45))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=30)
        rc, label = p.returncode, "random"
    else:
        count = t.rng.randint(1, top)
        delay = t.rng.uniform(0.0, 0.015)
        p = subprocess.run(faulty(point, count, delay, "collect", "--config", conf),
                           env=clean_env(), capture_output=True, timeout=60)
        rc, err, label = p.returncode, p.stderr, f"{point}:{count}"
    if rc == -signal.SIGKILL:
        t.fired.append(label)
        if label.startswith("torn"):
            t.torn += 1
    else:
        t.missed.append(label)  # the cycle ended before the armed point
        assert rc in (0, 1), f"trial {t.index} {label}: exit {rc}: {err!r}"
    assert b"Traceback" not in err and b"internal error" not in err, err


def journalled_event_ids(t: Trial) -> Counter:
    records, _ = read_journal(t.journal)
    return collections.Counter(r.get("id") for r in of_kind(records, "event"))


def audit_pending(t: Trial) -> Tuple[int, int]:
    """After a kill: every event journalled or still in the spool.  (lost, duplicated)."""
    journalled = journalled_event_ids(t)
    pending = {r.get("id") for r in spool_reader.pending(str(t.spool))}
    lost = [i for i in t.ids if i not in journalled and i not in pending]
    dup = [i for i, n in journalled.items() if n > 1]
    return len(lost), len(dup)


def parse_markers(t: Trial) -> List[Tuple[str, str, str, str]]:
    path = t.tmp / "markers"
    if not path.exists():
        return []
    return [tuple(line.split(" ")) for line in path.read_text().splitlines()]


def audit_final(t: Trial) -> Dict[str, int]:
    cfg = load_config(str(t.tmp / "escalator.yaml"))
    records, bad = read_journal(t.journal)
    where = f"trial {t.index} (seed {SEED}, kills {t.fired}, not reached {t.missed})"
    # Torn lines the test wrote are skipped; nothing else may be unreadable.
    assert bad <= t.torn, f"{where}: {bad} unreadable journal lines, {t.torn} torn writes"

    # Events: all journalled exactly once, the spool empty.
    journalled = journalled_event_ids(t)
    lost = [i for i in t.ids if journalled[i] == 0]
    dup = [i for i, n in journalled.items() if n > 1]
    assert not lost and not dup, f"{where}: lost {lost}, duplicated {dup}"
    assert set(journalled) == set(t.ids)
    assert spool_reader.pending(str(t.spool)) == [] and not list(t.spool.glob("taken-*")), where

    # Runs: every start closed by exactly one run record, after it.
    pos = {id(r): i for i, r in enumerate(records)}
    starts = {r["run"]: r for r in of_kind(records, "start")}
    assert len(starts) == len(of_kind(records, "start")), f"{where}: a run id was reused"
    closing: Dict[str, List[dict]] = collections.defaultdict(list)
    for r in of_kind(records, "run"):
        if r.get("outcome") != "skipped":
            closing[r.get("run")].append(r)
    assert set(closing) == set(starts), f"{where}: runs without start or start without run"
    interrupted = set()
    for rid, recs in closing.items():
        assert len(recs) == 1, f"{where}: run {rid} closed {len(recs)} times"
        assert pos[id(recs[0])] > pos[id(starts[rid])]
        if recs[0].get("interrupted"):
            assert recs[0]["outcome"] == "failed" and recs[0]["reason"].startswith("interrupted"), recs[0]
            interrupted.add(rid)
    steps = [r for r in of_kind(records, "step") if r.get("run")]
    for s in steps:
        rid = s["run"]
        assert rid in starts and pos[id(starts[rid])] < pos[id(s)] < pos[id(closing[rid][0])], \
            f"{where}: step record outside its run: {s}"

    # Step executions (marker lines) against the journal.
    marks = [m for m in parse_markers(t) if m[1] != "notify"]
    begins = collections.Counter(m[:3] for m in marks if m[3] == "begin")
    ends = collections.Counter(m[:3] for m in marks if m[3] == "end")
    recorded = collections.Counter((s["run"], s["level"], s["host"] or "all") for s in steps)
    rerun = [k for k, n in begins.items() if n > 1]
    assert not rerun, f"{where}: step ran twice within one run: {rerun}"
    unrecorded = 0
    cut_short = []
    for (rid, level, host) in begins:
        assert rid in starts, f"{where}: step {level} {host} ran under no journalled start ({rid!r})"
        if not recorded[(rid, level, host)]:
            # Cut short by the kill: its run must be closed as interrupted.
            assert rid in interrupted, f"{where}: step {level} {host} of run {rid} ran, no record"
            unrecorded += 1
            # ...and the interrupted run must not claim that it did not run at all.
            closed = closing[rid][0]
            step = STEP_OF_LEVEL[level] + ("" if host == "all" else f"@{host}")
            assert step in closed["not_done"], f"{where}: {step} not listed in {closed}"
            cut_short.append((step, closed["reason"]))
    for key, n in recorded.items():
        assert begins[key] == n and ends[key] == n, f"{where}: step record {key} without the step running"

    # Every notification journalled was sent (its notify step journalled), even across kills.
    assert unsent_notifications(records, len(cfg.notify)) == [], f"{where}: a notification was never sent"
    notifications = len(of_kind(records, "notify"))

    # The state a restart loads equals the fold of the whole journal.
    scratch = State(cfg)
    for r in records:
        scratch.apply(r)
    loaded = storage.load(cfg)
    assert comparable(loaded.state) == comparable(scratch), where
    for step, reason in cut_short:
        assert f"{step} (running" in reason, f"{where}: {step} was cut short, the journal says: {reason}"
    return {"steps": sum(begins.values()), "unrecorded": unrecorded, "notifications": notifications,
            "runs": len(starts), "interrupted": len(interrupted)}


def comparable(state: State) -> dict:
    """State.to_json() with its sets (serialised in hash order) sorted."""
    d = state.to_json()
    d["skip_checks"] = sorted(map(repr, d["skip_checks"]))
    for ep in d["episodes"].values():
        ep["pending"] = sorted(map(repr, ep["pending"]))
    return d


def run_trial(index: int, base: Path) -> Dict[str, object]:
    t = setup_trial(index, base)
    lost = dup = 0
    for _ in range(KILLS_PER_TRIAL):
        feed(t, t.rng.randint(1, 3))
        collect_with_kill(t)
        a, b = audit_pending(t)
        lost, dup = lost + a, dup + b
    feed(t, t.rng.randint(0, 2))
    final = escalator("collect", "--config", str(t.tmp / "escalator.yaml"))
    assert final.returncode in (0, 1), final.stderr
    assert b"Traceback" not in final.stderr and b"internal error" not in final.stderr, final.stderr
    assert lost == 0 and dup == 0, f"trial {index}: after a kill {lost} events lost, {dup} duplicated"
    figures = audit_final(t)
    figures.update(fired=t.fired, events=len(t.ids), torn=t.torn)
    return figures


def test_sigkill_at_random_points_loses_no_event_and_reruns_no_step_unrecorded(tmp_path):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as ex:
        results = list(ex.map(lambda i: run_trial(i, tmp_path), range(TRIALS)))
    elapsed = time.monotonic() - started
    kills = [k for r in results for k in r["fired"]]
    points = collections.Counter(k.split(":")[0] for k in kills)
    print(f"\ncrash trials: {TRIALS} trials (seed {SEED}), {len(kills)} SIGKILLs at "
          f"{len(set(kills))} distinct kill points ({len(points)} kinds: {dict(sorted(points.items()))}), "
          f"{sum(r['events'] for r in results)} events, 0 lost, 0 duplicated, "
          f"{sum(r['runs'] for r in results)} runs ({sum(r['interrupted'] for r in results)} closed as "
          f"interrupted), {sum(r['steps'] for r in results)} step executions "
          f"({sum(r['unrecorded'] for r in results)} cut short, each in an interrupted run), "
          f"0 re-run without a record, {sum(r['notifications'] for r in results)} notifications all sent, "
          f"{sum(r['torn'] for r in results)} torn journal lines skipped; "
          f"{elapsed:.1f}s")
    assert len(kills) >= 50, f"only {len(kills)} kills fired"
    assert len(points) >= 10


def test_a_torn_last_journal_line_is_skipped_and_the_next_record_starts_on_its_own_line(tmp_path):
    conf = write_config(tmp_path, CONFIG.format(marker="true"))
    t = Trial(0, tmp_path, random.Random(1))
    feed(t, 2)
    assert escalator("collect", "--config", str(conf)).returncode in (0, 1)
    records, bad = read_journal(t.journal)
    assert bad == 0 and records
    # A crash half-way through appending a record: cut the last line in the middle.
    data = t.journal.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    t.journal.write_bytes(data[:len(data) - len(last) // 2 - 1])
    feed(t, 1)
    r = escalator("collect", "--config", str(conf), "-v")
    assert r.returncode in (0, 1), r.stderr
    assert b"skipped 1 unreadable line" in r.stderr
    records2, bad2 = read_journal(t.journal)
    assert bad2 == 1
    assert journalled_event_ids(t) == collections.Counter(t.ids)
    # The torn line stays (evidence), terminated; the next record starts on a line of its own.
    lines = t.journal.read_bytes().split(b"\n")
    torn = [i for i, line in enumerate(lines) if line and not parses(line)]
    assert len(torn) == 1 and lines[torn[0]] == last[:len(last) - len(last) // 2]
    assert parses(lines[torn[0] + 1])


def parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.mark.parametrize("cut", ["before-newline", "mid-line"])
def test_a_record_torn_at_any_byte_is_either_folded_now_or_never(tmp_path, cut):
    """What a restart folds and what later restarts fold must agree, wherever the cut."""
    conf = write_config(tmp_path, CONFIG.format(marker="true"))
    cfg = load_config(str(conf))
    t = Trial(0, tmp_path, random.Random(2))
    feed(t, 1)
    assert escalator("collect", "--config", str(conf)).returncode in (0, 1)
    line = journalmod.dumps({"time": time.time(), "kind": "pause", "reason": "torn", "id": "x-1"}).encode()
    with open(t.journal, "ab") as f:
        f.write(line if cut == "before-newline" else line[:len(line) // 2])
    seen_now = storage.load(cfg).state.paused
    feed(t, 1)
    assert escalator("collect", "--config", str(conf)).returncode in (0, 1)
    seen_later = storage.load(cfg).state.paused
    (tmp_path / "state.json").unlink()
    seen_from_scratch = storage.load(cfg).state.paused
    assert seen_now == seen_later == seen_from_scratch


NOTIFY_CONFIG = """quiescence: 0s
levels:
  - name: vm
    max_attempts: 1
    on_exhausted: notify
    steps:
      - shell: exit 1
checks:
  - {{service: "*", level: vm}}
notify:
  - shell: echo "$ESCALATOR_SUMMARY" >> '{out}'
"""


@pytest.mark.parametrize("point", ["journal.notify", "step"])
def test_a_notification_journalled_just_before_a_kill_is_sent_once_after_restart(tmp_path, point):
    out = tmp_path / "notified"
    conf = write_config(tmp_path, NOTIFY_CONFIG.format(out=out))
    t = Trial(0, tmp_path, random.Random(3))
    t.ids.append(spool.append(str(t.spool), {"time": time.time(), "host": "h1", "service": "PING",
                                             "state": "CRITICAL", "output": "down"}))
    # "step" 2: the kill lands while the notify step (the second step process) runs.
    count = 1 if point == "journal.notify" else 2
    r = subprocess.run(faulty(point, count, 0.0, "collect", "--config", str(conf)),
                       env=clean_env(), capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    records, _ = read_journal(t.journal)
    assert len(of_kind(records, "notify")) == 1
    assert escalator("collect", "--config", str(conf)).returncode in (0, 1)
    records, _ = read_journal(t.journal)
    assert len(of_kind(records, "notify")) == 1
    time.sleep(0.2)  # a notify step orphaned by the kill may still be writing
    lines = out.read_text().splitlines() if out.exists() else []
    assert len(lines) >= 1, "the administrator was never contacted"
    notify_steps = [s for s in of_kind(records, "step") if s.get("level") == "notify"]
    assert len(notify_steps) == 1
