"""Replay: the bundled outage through the real CLI and in-process, every input
format (nagios.log, JSON-lines events, spool directory, journal), merging,
--until, unparsed lines, and the speed of a day of log."""

from __future__ import annotations

import heapq
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import yaml

from escalator_handlers import spool, spool_reader
from escalator_handlers.errors import UsageError
from escalator_handlers.replay import replay
from escalator_handlers.planning.state import State

from planner_fixtures import (BASE, EXAMPLE_CONFIG, EXAMPLE_LOG, example_config, example_config_with, make_config,
                              story)

#: The example log's first timestamp.
L0 = 1795500000.0
ALL_SIX = ("account", "core", "tier", "vm", "converge", "deploy")
VM_RUN = ("vm", "converge", "deploy")
ESCALATOR = str(Path(sys.executable).with_name("escalator"))

#: What the bundled outage must do (seconds after L0).
EXPECTED_OUTAGE = [
    # web01 dies (SOFT at +100, HARD at +160/+164): one run 30 s after the last event.
    (194, "run", VM_RUN, {"vm": ("web01",), "converge": ("web01",), "deploy": ("web01",)}),
    (494, "verdict", "vm", True, None),               # web01 came back at +420/+450
    # PostgreSQL fails in scheduled downtime (+610): nothing.  Smoke test HARD at +1060:
    (1090, "run", ("deploy",), {"deploy": ("app",)}),
    (1210, "verdict", "deploy", False, None),
    (1210, "run", ("deploy",), {"deploy": ("app",)}),
    (1330, "verdict", "deploy", False, None),
    (1330, "run", ("deploy",), {"deploy": ("app",)}),
    (1450, "verdict", "deploy", True, None),           # smoke OK at +1400
    # Disk /var (unmapped) at +1500: nothing.  IaaS API SOFT flaps, then a HARD failure that
    # recovers within the quiescence (+2160/+2175): nothing.  HARD again at +3060 and web02
    # PING at +3062: levels 1-6.  The IaaS API rule says `target: false`: iaas-api is
    # no machine, so only web02 is created, converged and redeployed.
    (3092, "run", ALL_SIX, {"account": (), "core": (), "tier": (),
                            "vm": ("web02",), "converge": ("web02",), "deploy": ("web02",)}),
    (3992, "verdict", "account", False, "notify"),     # account: max_attempts 1, 15m quiescence
    (3992, "notify", "exhausted"),
    (3992, "skipped", "account", "held-level"),
    (5030, "release", "account"),                      # both recovered by +5010
]


def replay_records(config, paths, **kw) -> tuple:
    out: List[dict] = []
    stats = replay(config, [str(p) for p in paths], out.append, **kw)
    return out, stats


def cli(*args: str, cwd: Path = None) -> subprocess.CompletedProcess:
    return subprocess.run([ESCALATOR, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def ev(t: float, host: str, service=None, state="CRITICAL", **kw) -> dict:
    return dict(time=t, kind="event", host=host, service=service, state=state,
                state_type=kw.pop("state_type", "HARD"), **kw)


# -- the bundled example --------------------------------------------------------------

def test_bundled_outage_gives_the_expected_timeline():
    records, stats = replay_records(example_config(), [EXAMPLE_LOG])
    assert story(records, L0) == EXPECTED_OUTAGE
    assert (stats.events, stats.unparsed) == (40, 1)
    # Dry run: every run is dry-run, its steps rendered with the templates filled in.
    runs = [r for r in records if r["kind"] == "run" and r["outcome"] != "skipped"]
    assert {r["outcome"] for r in runs} == {"dry-run"}
    commands = [r["command"] for r in records if r["kind"] == "step" and r["level"] == "vm"]
    assert commands[0] == "echo would create VM web01"
    # One verdict per run, naming it.
    verdicts = [r for r in records if r["kind"] == "verdict"]
    assert [v["run_id"] for v in verdicts] == [r["run"] for r in runs]
    # The notify step ran (dry) with the summary, shell-quoted.
    (page,) = [r for r in records if r["kind"] == "step" and r["level"] == "notify"]
    assert page["command"].startswith('echo "escalator would page ops@example.com: "\'level account')


def test_cli_replay_json_prints_one_valid_record_a_line():
    p = cli("replay", str(EXAMPLE_LOG), "--config", str(EXAMPLE_CONFIG), "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and "time" in r and "kind" in r for r in records)
    assert story(records, L0) == EXPECTED_OUTAGE
    assert "5 runs, 5 verdicts, 1 notification;" in p.stderr and "1 unparsed" in p.stderr


def test_cli_replay_prints_a_readable_timeline_and_lists_unparsed_lines_with_v():
    p = cli("replay", str(EXAMPLE_LOG), "--config", str(EXAMPLE_CONFIG))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "RUN      dry-run: levels vm, converge, deploy [targets vm: web01; converge: web01; deploy: web01]" in out
    assert "would  vm levels[3].steps[0] on web01: echo would create VM web01" in out
    assert "VERDICT  run of 2026-11-24T06:51:32Z at level account: NOT converged" in out
    assert "RELEASE  level account: checks recovered" in out
    assert "unparsed lines" not in p.stderr
    v = cli("replay", str(EXAMPLE_LOG), "--config", str(EXAMPLE_CONFIG), "-vv")
    assert v.returncode == 0
    assert f"unparsed lines: {EXAMPLE_LOG}:45" in v.stderr
    assert "db01/PostgreSQL CRITICAL HARD 1 (in downtime)" in v.stdout   # -v shows every event


def test_cli_replay_with_bad_config_or_missing_file_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("levels: []\nbogus: 1\n")
    p = cli("replay", str(EXAMPLE_LOG), "--config", str(bad))
    assert p.returncode == 2 and "Traceback" not in p.stderr and "bad.yaml" in p.stderr
    p = cli("replay", str(tmp_path / "nope.log"), "--config", str(EXAMPLE_CONFIG))
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_hostile_check_output_cannot_forge_timeline_lines_or_break_json(tmp_path):
    evil = "refused\n2026-11-24 06:03:14  RUN      dry-run: levels fake\x1b[2J\u2028\x00"
    events = write_jsonl(tmp_path / "e.jsonl", [ev(1000, "web01", "HTTP\x07", output=evil),
                                                ev(1001, "web01", "HTTP\x07", "OK", output=evil)])
    cfg = tmp_path / "escalator.yaml"
    cfg.write_text(yaml.safe_dump(dict(BASE, checks=[{"service": "HTTP*", "level": "converge"}])))
    text = cli("replay", str(events), "--config", str(cfg), "-v")
    assert text.returncode == 0, text.stderr
    assert len(text.stdout.splitlines()) == 2          # the two events, one line each
    assert "\x1b" not in text.stdout and "\x00" not in text.stdout and "\x07" not in text.stdout
    assert not any(line.startswith("2026-11-24") for line in text.stdout.splitlines())
    js = cli("replay", str(events), "--config", str(cfg), "--json", "-v")
    records = [json.loads(line) for line in js.stdout.splitlines()]
    assert [r["output"] for r in records] == [evil, evil]


# -- inputs -----------------------------------------------------------------------

def test_unparsed_lines_are_counted_and_never_fatal(tmp_path):
    log = tmp_path / "nagios.log"
    log.write_text("[1000] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;1;fail\n"
                   "garbage\n"
                   "[1001] SERVICE ALERT: app;Smoke test;MAYBE;HARD;1;bad state\n"
                   "\x00\x01 binary junk\n")
    records, stats = replay_records(make_config(), [log])
    assert stats.unparsed == 3 and stats.unparsed_where == [f"{log}:2", f"{log}:3", f"{log}:4"]
    assert story(records, 1000)[0] == (30, "run", ("deploy",), {"deploy": ("app",)})


def test_a_log_line_with_an_impossible_time_or_attempt_is_unparsed_not_a_crash(tmp_path):
    log = tmp_path / "nagios.log"
    log.write_text("[inf] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;1;no time\n"
                   "[nan] HOST ALERT: app;DOWN;HARD;1;no time either\n"
                   "[1000] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;\u00b2;a digit int() refuses\n"
                   f"[1000] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;{'1' * 5000};too long for int()\n"
                   "[1000] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;1;fail\n", encoding="utf-8")
    p = cli("replay", str(log), "--config", str(EXAMPLE_CONFIG), "-vv")
    assert p.returncode == 0 and "Traceback" not in p.stderr and "internal error" not in p.stderr
    assert "replayed 1 event from 5 lines" in p.stderr
    assert f"unparsed lines: {log}:1, {log}:2, {log}:3, {log}:4" in p.stderr


def test_json_lines_event_file(tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [
        ev(1000, "web01", None, "DOWN"),
        ev(1005, "web01", "HTTP"),
        ev(1010, "app", "Smoke test", state_type="SOFT"),      # ignored: SOFT
    ]) + "not json\n" + json.dumps({"time": "soon", "host": "x"}) + "\n"
        + json.dumps({"time": 1, "service": "no host"}) + "\n\n")
    records, stats = replay_records(make_config(), [f])
    assert (stats.events, stats.unparsed) == (3, 3)
    s = story(records, 1000)
    # The SOFT event changes no decision, so it does not extend the burst:
    # the run comes 30 s after the last failure that mattered (+1005).
    assert s[0] == (35, "run", ("vm", "converge", "deploy"),
                    {"vm": ("web01",), "converge": ("web01",), "deploy": ("web01",)})
    assert s[1][:3] == (635, "verdict", "vm")


def test_spool_directory_with_live_and_taken_files(tmp_path):
    d = str(tmp_path / "spool")
    spool.append(d, ev(1000, "web01", "HTTP"))
    spool.append(d, ev(1001, "web02", "HTTP"))
    taken = spool_reader.take(d)                        # a collector took these, then died
    assert len(taken) == 1
    spool.append(d, ev(1002, "app", "Smoke test"))
    spool.append(d, ev(1003, "web02", "HTTP", "OK"))
    records, stats = replay_records(make_config(), [d])
    assert stats.files == [f"{d} (spool)"] and stats.events == 4
    assert story(records, 1000)[0] == (33, "run", ("converge", "deploy"),
                                       {"converge": ("web01",), "deploy": ("app", "web01")})


def test_journal_replays_events_and_operator_records_but_not_runs(tmp_path):
    journal = write_jsonl(tmp_path / "journal.jsonl", [
        {"time": 900, "kind": "hold", "host": "web01", "reason": "by hand"},
        ev(1000, "web01", None, "DOWN"),
        ev(1000, "web02", None, "DOWN"),
        # What the collector did back then must not be replayed as if it happened now.
        {"time": 1030, "kind": "start", "run": "x", "levels": ["vm"], "targets": {"vm": ["web02"]}},
        {"time": 1031, "kind": "run", "run": "x", "outcome": "ok", "levels": ["vm"],
         "quiescence_until": 999999},
        {"time": 1040, "kind": "verdict", "run": 1031, "level": "vm", "converged": False,
         "exhausted": "notify"},
        {"time": 1041, "kind": "release", "level": "vm", "reason": "checks recovered"},
        {"time": 1050, "kind": "notify", "reason": "exhausted", "summary": "old news"},
        ev(1100, "web02", None, "UP"),
        {"time": 1700, "kind": "pause", "reason": "freeze"},
        ev(1800, "web03", "HTTP"),
        {"time": 2000, "kind": "resume"},
    ])
    records, stats = replay_records(make_config(), [journal])
    assert stats.events == 4 and stats.ignored == 5
    # One rule: web01, held, is recorded once when it fails (with web02 running beside it);
    # neither the hold nor the pause pages the operator who made them.
    assert story(records, 1000)[:5] == [
        (30, "skipped", "vm", "held-host"),
        (30, "run", VM_RUN, {"vm": ("web02",), "converge": ("web02",), "deploy": ("web02",)}),
        (630, "verdict", "vm", True, None),
        (830, "skipped", "converge", "paused"),
        (1000, "run", ("converge", "deploy"), {"converge": ("web03",), "deploy": ("web03",)}),
    ]
    kinds = [(round(r["time"] - 1000), r["kind"]) for r in records if r["kind"] in ("hold", "pause", "resume")]
    assert kinds == [(-100, "hold"), (700, "pause"), (1000, "resume")]
    assert "old news" not in json.dumps(records)


def test_replaying_a_replays_own_journal_reproduces_its_decisions(tmp_path):
    cfg = example_config()
    first, _ = replay_records(cfg, [EXAMPLE_LOG], show_events="all")
    journal = write_jsonl(tmp_path / "journal.jsonl", first)
    second, stats = replay_records(cfg, [journal])
    assert stats.events == 40
    assert story(second, L0) == story(first, L0) == EXPECTED_OUTAGE


def test_multiple_files_are_merged_by_time(tmp_path):
    lines = EXAMPLE_LOG.read_text().splitlines(keepends=True)
    early, late = tmp_path / "nagios-1.log", tmp_path / "nagios.log"
    early.write_text("".join(lines[:30]))
    late.write_text("".join(lines[30:]))
    # An operator hold from a journal lands in the middle of the nagios logs.
    hold = write_jsonl(tmp_path / "journal.jsonl", [{"time": L0 + 3000, "kind": "hold", "host": "web02"}])
    records, stats = replay_records(example_config(), [late, hold, early])   # any order on the command line
    s = story(records, L0)
    assert s[:8] == EXPECTED_OUTAGE[:8]
    # web02 held: recorded once; the levels 1-6 run has no target host (iaas-api says `target: false`).
    assert s[8] == (3092, "skipped", "vm", "held-host")
    assert s[9] == (3092, "run", ALL_SIX, {lv: () for lv in ALL_SIX})
    assert stats.events == 40 and len(stats.files) == 3


def test_until_bounds_the_simulated_clock():
    until = L0 + 1100
    records, stats = replay_records(example_config(), [EXAMPLE_LOG], until=until, show_events="all")
    assert max(r["time"] for r in records) <= until
    assert story(records, L0) == EXPECTED_OUTAGE[:3]
    # Without events after the last run, the clock still stops at --until.
    records, _ = replay_records(example_config(), [EXAMPLE_LOG], until=L0 + 1300)
    assert story(records, L0) == EXPECTED_OUTAGE[:5]


def test_cli_until(tmp_path):
    p = cli("replay", str(EXAMPLE_LOG), "--config", str(EXAMPLE_CONFIG), "--json", "--until", str(L0 + 1100))
    assert p.returncode == 0
    assert [r["kind"] for r in map(json.loads, p.stdout.splitlines()) if r["kind"] in ("start", "verdict")] == \
        ["start", "verdict", "start"]


def test_after_the_last_event_the_clock_runs_on_until_nothing_is_pending(tmp_path):
    f = write_jsonl(tmp_path / "e.jsonl", [ev(1000, "app", "Smoke test")])
    records, _ = replay_records(make_config(), [f])
    assert story(records, 1000) == [
        (30, "run", ("deploy",), {"deploy": ("app",)}), (90, "verdict", "deploy", False, None),
        (90, "run", ("deploy",), {"deploy": ("app",)}), (150, "verdict", "deploy", False, None),
        (150, "run", ("deploy",), {"deploy": ("app",)}), (210, "verdict", "deploy", False, "notify"),
        (210, "notify", "exhausted"), (210, "skipped", "deploy", "held-level")]


def test_unknown_input_format_is_a_usage_error(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("hello\n")
    with pytest.raises(UsageError, match="not a nagios.log, JSON-lines or spool"):
        replay_records(make_config(), [f])


# -- a day of log ------------------------------------------------------------------

def busy_day_log(path: Path, lines: int = 100_000, seed: int = 7) -> Path:
    """A busy, healthy site's day: 400 hosts x 5 services; SOFT blips that recover at the
    next check, HARD failures repaired within minutes, hosts down for a while, downtimes,
    and the notification / event handler / external command lines around them."""
    rnd = random.Random(seed)
    hosts = [f"web{i:03d}" for i in range(400)]
    services = ["PING", "HTTP", "Disk /var", "Load", "Smoke test"]
    later: list = []             # heap of (time, seq, line): follow-ups of earlier lines
    out: List[str] = []
    t, step, seq = L0, 86400 / lines, 0

    def at(when: float, line: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(later, (when, seq, f"[{int(when)}] {line}\n"))

    while len(out) < lines:
        t += step
        while later and later[0][0] <= t and len(out) < lines:
            out.append(heapq.heappop(later)[2])
        h, s, r = rnd.choice(hosts), rnd.choice(services), rnd.random()
        if r < 0.35:
            at(t, f"SERVICE ALERT: {h};{s};CRITICAL;SOFT;1;CRITICAL - blip; retrying")
            at(t + 60, f"SERVICE ALERT: {h};{s};OK;SOFT;2;OK - fine")
        elif r < 0.40:
            for attempt in (1, 2, 3):
                at(t + 60 * (attempt - 1), f"SERVICE ALERT: {h};{s};CRITICAL;{'HARD' if attempt == 3 else 'SOFT'};"
                                           f"{attempt};CRITICAL - broken")
            at(t + 120 + rnd.randint(60, 1800), f"SERVICE ALERT: {h};{s};OK;HARD;1;OK - repaired")
        elif r < 0.42:
            at(t, f"HOST ALERT: {h};DOWN;HARD;1;PING CRITICAL - Packet loss = 100%")
            at(t + rnd.randint(60, 900), f"HOST ALERT: {h};UP;HARD;1;PING OK")
        elif r < 0.43:
            at(t, f"HOST DOWNTIME ALERT: {h};STARTED; Host has entered a period of scheduled downtime")
            at(t + 3600, f"HOST DOWNTIME ALERT: {h};STOPPED; Host has exited from a period of scheduled downtime")
        elif r < 0.70:
            at(t, f"SERVICE EVENT HANDLER: {h};{s};CRITICAL;SOFT;1;escalator-handler")
        elif r < 0.90:
            at(t, f"SERVICE NOTIFICATION: oncall;{h};{s};CRITICAL;notify-service-by-email;x")
        elif r < 0.999:
            at(t, f"EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;{h};{s};0;OK")
        else:
            out.append("a line that is not a nagios log line\n")
    path.write_text("".join(out[:lines]))
    return path


def bad_day_log(path: Path, lines: int, seed: int = 11) -> Path:
    """A meltdown: hundreds of checks failing at once all day, levels exhausted and held."""
    rnd = random.Random(seed)
    hosts = [f"web{i:03d}" for i in range(200)]
    services = ["PING", "HTTP", "Disk /var", "Load", "Smoke test"]
    out = []
    for i in range(lines):
        t = int(L0 + i * 86400 / lines)
        h, s, r = rnd.choice(hosts), rnd.choice(services), rnd.random()
        if r < 0.5:
            out.append(f"[{t}] SERVICE ALERT: {h};{s};{rnd.choice(['WARNING', 'CRITICAL'])};SOFT;1;noise\n")
        elif r < 0.8:
            out.append(f"[{t}] SERVICE ALERT: {h};{s};OK;HARD;1;OK\n")
        elif r < 0.9:
            out.append(f"[{t}] SERVICE ALERT: {h};{s};CRITICAL;HARD;3;CRITICAL - broken\n")
        elif r < 0.95:
            out.append(f"[{t}] HOST ALERT: {h};{rnd.choice(['UP', 'UP', 'DOWN'])};HARD;1;PING\n")
        else:
            out.append(f"[{t}] HOST DOWNTIME ALERT: {h};{rnd.choice(['STARTED', 'STOPPED'])}; maintenance\n")
    path.write_text("".join(out))
    return path


def test_a_day_of_log_replays_in_well_under_a_second(tmp_path, capsys):
    log = busy_day_log(tmp_path / "day.log")
    cfg = example_config_with(limits={})     # the bundled limits would skip most runs of this day
    t = time.monotonic()
    records, stats = replay_records(cfg, [log])
    elapsed = time.monotonic() - t
    runs = [r for r in records if r["kind"] == "run" and r["outcome"] != "skipped"]
    with capsys.disabled():
        print(f"\n  a day of log: {stats.lines} lines, {stats.events} events, {len(runs)} runs, "
              f"replayed in {elapsed:.2f}s")
    assert stats.lines == 100_000 and stats.unparsed > 0 and len(runs) > 20
    verdicts = [r for r in records if r["kind"] == "verdict"]
    assert [v["run_id"] for v in verdicts] == [r["run"] for r in runs]     # one verdict per run
    assert elapsed < 10.0      # about half a second here; generous so a slow CI stays green


def same_records_when(log: Path, configs, patch) -> List[dict]:
    """Replay ``log`` with each config, as shipped and with ``patch(monkeypatch)`` applied
    (a shortcut turned off): exactly the same records, runs among them.  The first
    config's records."""
    first: List[dict] = []
    for cfg in configs:
        quick, _ = replay_records(cfg, [log], show_events="changes")
        with pytest.MonkeyPatch.context() as m:
            patch(m)
            slow, _ = replay_records(cfg, [log], show_events="changes")
        assert any(r["kind"] == "start" for r in quick)
        assert quick == slow
        first = first or quick
    return first


def three_configs() -> tuple:
    """The bundled config, without limits and acting in downtime, and counting SOFT states."""
    return (example_config(), example_config_with(limits={}, act_in_downtime=True),
            example_config_with(state_types=["SOFT", "HARD"], max_delay="1m"))


BUSY_AND_MELTDOWN = pytest.mark.parametrize("make_log,lines", [(busy_day_log, 20_000), (bad_day_log, 5_000)],
                                            ids=["busy", "meltdown"])


@BUSY_AND_MELTDOWN
def test_skipping_the_planner_for_events_that_change_nothing_changes_no_decision(tmp_path, make_log, lines):
    """Replay asks an idle planner again only after an event that can change its decision
    (State.observe says so); asking after every event must give exactly the same records."""
    real_observe = State.observe
    same_records_when(make_log(tmp_path / "day.log", lines=lines),
                      (example_config(), example_config_with(limits={}, act_in_downtime=True)),
                      lambda m: m.setattr(State, "observe", lambda self, *a: real_observe(self, *a) or True))


@BUSY_AND_MELTDOWN
def test_letting_events_by_until_the_planners_wake_up_changes_no_decision(tmp_path, make_log, lines):
    """After an idle answer with a wake-up, replay lets events that touch no failing check by
    without asking the planner again (planning.loop.Simulation, interlocks.stays_idle); asking
    after each of them, as before, must give exactly the same records."""
    from escalator_handlers.planning import loop

    same_records_when(make_log(tmp_path / "day.log", lines=lines), three_configs(),
                      lambda m: m.setattr(loop, "stays_idle", lambda state, config: False))


@BUSY_AND_MELTDOWN
def test_taking_a_steady_answer_as_given_changes_no_decision(tmp_path, make_log, lines):
    """While a run's quiescence lasts (rule 6) the planner's answer is steady: replay does not
    ask it again before the wake-up unless a record was folded or a held or escalated
    level's checks all recovered (planning.loop.Simulation._wake_up); asking, as before,
    must give exactly the same records."""
    from escalator_handlers.planning import loop

    same_records_when(make_log(tmp_path / "day.log", lines=lines), three_configs(),
                      lambda m: m.setattr(loop.Simulation, "_wake_up", loop.Simulation.settle))


def test_a_steady_answer_ends_when_a_held_levels_checks_recover():
    # The bundled outage holds level account (exhausted) and releases it when its checks
    # recover: the release is a record at the same time whether or not replay asked the
    # planner at every wake-up in between.
    from escalator_handlers.planning import loop

    quick = same_records_when(EXAMPLE_LOG, (example_config(),),
                              lambda m: m.setattr(loop.Simulation, "_wake_up", loop.Simulation.settle))
    assert [r["kind"] for r in quick if r["kind"] == "release"] == ["release"]


def test_hosts_failing_one_by_one_on_a_held_level_cost_the_journal_a_constant_per_event(tmp_path):
    # Level vm exhausts its one attempt and is held; then 300 more hosts fail, each
    # decided on its own (a minute apart).  Each new failure reaches the journal, but
    # as a record of the checks that joined the held skip, not the whole list again.
    cfg = tmp_path / "escalator.yaml"
    cfg.write_text("quiescence: 0s\nlevels:\n  - name: vm\n    quiescence: 0s\n    max_attempts: 1\n"
                   "    steps:\n      - shell: 'true'\nchecks:\n  - {host: '*', level: vm}\n")
    events = tmp_path / "events.jsonl"
    with events.open("w") as f:
        for i in range(301):
            f.write(json.dumps({"time": L0 + 60 * i, "host": f"host-{i:04d}", "service": None,
                                "state": "DOWN", "state_type": "HARD", "attempt": 1}) + "\n")
    proc = subprocess.run([ESCALATOR, "replay", str(events), "--config", str(cfg), "--json", "-v"],
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    skipped = [json.loads(x) for x in lines if '"skipped"' in x]
    assert len(skipped) == 301 and skipped[0]["reason"].startswith("level vm exhausted")
    assert [len(r["checks"]) for r in skipped] == [1] * 301  # each lists only the check that joined
    assert [r["checks"][0]["host"] for r in skipped] == [f"host-{i:04d}" for i in range(301)]
    assert all(r.get("continued") for r in skipped[1:]) and not skipped[0].get("continued")
    per_event = sum(len(x) + 1 for x in lines) / 301
    assert per_event < 2048, per_event


def test_json_lines_are_what_json_dumps_writes():
    from escalator_handlers.cli.replay import _json_line

    line = _json_line()
    for rec in ({"time": 1.5, "kind": "step", "output": "\u00e9\x00\"\\\n\u2028", "exit": None, "ok": True},
                {"checks": [{"host": "h", "service": None, "level": "vm"}], "n": [1, 2.25, -0.0, 1e300 * 10]},
                {"nan": float("nan"), "nested": {"a": {"b": []}}, "big": 10 ** 30}, {}):
        assert line(rec) == json.dumps(rec, ensure_ascii=True)


def test_a_json_lines_event_with_an_impossible_time_is_unparsed(tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps(ev(1000, "web01", None, "DOWN")) + "\n"
                 + "".join('{"time": %s, "host": "web02", "state": "DOWN"}\n' % t
                           for t in ('"inf"', '"nan"', "NaN", "Infinity", "1e999")), encoding="utf-8")
    p = cli("replay", str(f), "--config", str(EXAMPLE_CONFIG), "-vv")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "replayed 1 event from 6 lines" in p.stderr
    assert f"unparsed lines: {f}:2, {f}:3, {f}:4, {f}:5, {f}:6" in p.stderr
    assert "????" not in p.stdout


def test_lower_case_and_numeric_states_in_a_jsonl_file_are_read_as_the_collector_reads_them(tmp_path):
    # The collector normalises "critical"/"hard" (Event.from_dict); replay and `plan FILE` once kept
    # the raw words, so the same file gave runs in the collector and no records at all here.
    lower = write_jsonl(tmp_path / "lower.jsonl", [
        {"time": L0, "host": "web01", "service": "HTTP", "state": "critical", "state_type": "hard", "attempt": 2},
        {"time": L0 + 1, "host": "db01", "state": "1", "state_type": "1"}])
    upper = write_jsonl(tmp_path / "upper.jsonl", [
        {"time": L0, "host": "web01", "service": "HTTP", "state": "CRITICAL", "state_type": "HARD", "attempt": 2},
        {"time": L0 + 1, "host": "db01", "state": "DOWN", "state_type": "HARD"}])
    for args in (("replay", "--json"), ("plan", "--json")):
        got = [cli(*args, str(f), "--config", str(EXAMPLE_CONFIG)) for f in (lower, upper)]
        assert [p.returncode for p in got] == [0, 0], [p.stderr for p in got]
        assert got[0].stdout == got[1].stdout
        assert '"levels"' in got[0].stdout  # a run (replay) or a plan with levels
