"""The log parser and multi-file replay on real, published Nagios logs
(tests/data/nagios-logs, origins in its README): exact counts, exact
observations, downtime as those daemons logged it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest

from escalator_handlers.monitoring.nagioslog import Downtimes, ParseStats, parse
from escalator_handlers.replay import replay

from planner_fixtures import example_config

DATA = Path(__file__).parent / "data" / "nagios-logs"
ARCHIVES = DATA / "pynag-archives"


def parsed(path: Path, downtimes: Downtimes = None) -> Tuple[list, ParseStats]:
    st = ParseStats()
    with open(path, encoding="utf-8", errors="replace") as f:   # as replay opens them
        return list(parse(f, st, downtimes)), st


@pytest.mark.parametrize("name,lines,used,ignored,unparsed", [
    ("thruk-archive.log", 10, 3, 7, []),
    ("ma-host-downtime.log", 6, 2, 3, [2]),           # line 2: a host in state "OK"
    ("ma-service-downtime-restart.log", 16, 10, 6, []),
    ("ma-load-logs.log", 27, 6, 21, []),              # two FLAPPING alerts are not states
    ("pynag-nagios.log", 1000, 998, 2, []),
    ("pynag-archives/nagios-04-24-2013-00.log", 10, 8, 2, []),
])
def test_real_logs_parse_exactly(name, lines, used, ignored, unparsed):
    _, st = parsed(DATA / name)
    assert (st.lines, st.used, st.ignored, st.unparsed_lines) == (lines, used, ignored, unparsed)
    assert st.unparsed == len(unparsed)


def test_thruk_archive_keeps_names_and_undecodable_output():
    obs, _ = parsed(DATA / "thruk-archive.log")
    assert [o[:4] + o[6:7] for o in obs] == [
        (1362610800.0, "züürps", None, "UP", 0),
        (1362662647.0, "züürps", None, None, 1),
        (1364135382.0, "test_host", "test_service", "OK", 0)]
    assert obs[1][7] == "STARTED"
    assert obs[2][7].startswith("---€äöüß---") and "\ufffd" in obs[2][7]


def test_nagios3_downtime_cancelled_and_restarted():
    obs, _ = parsed(DATA / "ma-service-downtime-restart.log")
    svc = [(int(o[0]) - 1264111000, o[3], o[4], o[6]) for o in obs if o[2] == "n0_test_pending_01"]
    assert svc == [
        (930, None, "HARD", 1), (946, "WARNING", "SOFT", 1), (985, None, "HARD", 0),
        (1006, "UNKNOWN", "SOFT", 0), (1040, "UNKNOWN", "HARD", 0), (1060, "CRITICAL", "HARD", 0),
        (5856, "OK", "HARD", 0), (90356, "WARNING", "HARD", 0), (90856, "OK", "HARD", 0)]
    host = [(int(o[0]) - 1264111000, o[6], o[7]) for o in obs if o[2] is None]
    assert host == [(1074, 1, "STARTED")]     # logged after a later line: kept in file order


def test_host_downtime_started_and_stopped_between_restarts():
    obs, _ = parsed(DATA / "ma-host-downtime.log")
    assert [(o[1], o[6], o[7]) for o in obs] == [("n0_test_host_000", 1, "STARTED"),
                                                 ("n0_test_host_000", 0, "STOPPED")]


def test_rotated_archives_replay_in_time_order_whatever_order_given():
    names = sorted(ARCHIVES.iterdir())              # by name: 01-04-2014 before 04-24-2013
    out: List[dict] = []
    stats = replay(example_config(), [str(p) for p in names] + [str(DATA / "pynag-nagios.log")], out.append,
                   show_events="all")
    assert (stats.lines, stats.events, stats.ignored, stats.unparsed) == (1040, 1030, 10, 0)
    times = [r["time"] for r in out if r["kind"] == "event"]
    assert times == sorted(times) and len(times) == 1030
    firsts = [int(r["time"]) for r in out if r["kind"] == "event" and r["host"] == "apc01.acme.com"
              and r["service"] is None]
    assert firsts == [1366675200, 1387929600, 1388793600, 1402956000, 1403820000]
    assert not any(r["kind"] == "start" for r in out)   # a healthy site: nothing to do


def test_real_archives_replay_as_their_concatenation(tmp_path):
    # Two logs of one test site, a day apart (given newest first).
    names = [DATA / "ma-service-downtime-restart.log", DATA / "ma-host-downtime.log"]
    whole = tmp_path / "whole.log"
    # In time order, each ending on a newline: what `cat` of rotated archives gives.
    whole.write_text("".join(p.read_text(errors="replace").rstrip("\n") + "\n"
                             for p in sorted(names, key=lambda p: p.read_text().split("]")[0])))
    one: List[dict] = []
    many: List[dict] = []
    replay(example_config(), [str(whole)], one.append, show_events="all")
    replay(example_config(), [str(p) for p in names], many.append, show_events="all")
    assert many == one and any(r["kind"] == "event" and r["state"] is None for r in one)
