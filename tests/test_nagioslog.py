"""nagioslog: every kind of Nagios 4 / Icinga 2 compat log line, downtime depth,
hostile output, and what is ignored versus counted as unparsed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator_handlers.monitoring import nagioslog
from escalator_handlers.monitoring.nagioslog import Downtimes, ParseStats, parse

DATA = Path(__file__).parent / "data" / "nagios-logs"


def run(text: str):
    st = ParseStats()
    obs = list(parse(io.StringIO(text), st))
    return obs, st


def test_alert_and_current_state_lines_become_observations():
    obs, st = run(
        "[1700000000] SERVICE ALERT: web01;HTTP;CRITICAL;SOFT;1;connect to port 80: refused\n"
        "[1700000001] HOST ALERT: web01;DOWN;HARD;3;CRITICAL - Host Unreachable (10.0.1.11)\n"
        "[1700000002] CURRENT SERVICE STATE: db01;PostgreSQL;WARNING;HARD;2;slow\n"
        "[1700000003] CURRENT HOST STATE: db01;UNREACHABLE;SOFT;1;parent down\n"
    )
    assert obs == [
        (1700000000.0, "web01", "HTTP", "CRITICAL", "SOFT", 1, 0, "connect to port 80: refused"),
        (1700000001.0, "web01", None, "DOWN", "HARD", 3, 0, "CRITICAL - Host Unreachable (10.0.1.11)"),
        (1700000002.0, "db01", "PostgreSQL", "WARNING", "HARD", 2, 0, "slow"),
        (1700000003.0, "db01", None, "UNREACHABLE", "SOFT", 1, 0, "parent down"),
    ]
    assert (st.lines, st.used, st.ignored, st.unparsed) == (4, 4, 0, 0)


def test_initial_states_logged_at_start_up_are_observations_too():
    # Nagios 4 with log_initial_states=1 logs these at start-up, in the CURRENT format;
    # a check failing across a restart appears nowhere else in the new log.
    obs, st = run("[5] INITIAL HOST STATE: web01;DOWN;HARD;3;CRITICAL - Host Unreachable\n"
                  "[5] INITIAL SERVICE STATE: app;Smoke test;CRITICAL;HARD;2;CUCUMBER CRITICAL\n")
    assert [o[:5] for o in obs] == [(5.0, "web01", None, "DOWN", "HARD"),
                                    (5.0, "app", "Smoke test", "CRITICAL", "HARD")]
    assert st.used == 2 and st.ignored == 0


def test_output_containing_semicolons_is_kept_whole():
    obs, _ = run("[1] SERVICE ALERT: app;Smoke test;CRITICAL;HARD;2;CUCUMBER CRITICAL - a;b;c | x=1;2;3\n"
                 "[2] HOST ALERT: h;DOWN;HARD;1;PING CRITICAL; loss=100%;rta=0\n")
    assert obs[0][7] == "CUCUMBER CRITICAL - a;b;c | x=1;2;3"
    assert obs[1][7] == "PING CRITICAL; loss=100%;rta=0"


def test_missing_or_empty_output_is_an_empty_string():
    obs, st = run("[1] SERVICE ALERT: h;s;OK;HARD;1\n[2] SERVICE ALERT: h;s;OK;HARD;1;\n"
                  "[3] HOST ALERT: h;UP;HARD;1\n")
    assert [o[7] for o in obs] == ["", "", ""] and st.unparsed == 0


def test_service_names_with_spaces_and_colons_parse():
    obs, _ = run("[1] SERVICE ALERT: web02;Disk /var: usage;CRITICAL;HARD;1;DISK CRITICAL\n")
    assert obs[0][1:4] == ("web02", "Disk /var: usage", "CRITICAL")


NAGIOS_STARTED = "Service has entered a period of scheduled downtime"
NAGIOS_STOPPED = "Service has exited from a period of scheduled downtime"
ICINGA2_STARTED = "Checkable has entered a period of scheduled downtime."
ICINGA2_STOPPED = "Checkable has exited from a period of scheduled downtime."
CANCELLED = "Scheduled downtime for service has been cancelled."


def test_nagios_downtime_is_on_or_off_whatever_the_number_of_started_lines():
    # Nagios logs STARTED at depth 0 -> 1 and again after every restart for each
    # downtime still in effect; STOPPED/CANCELLED only when the depth is back to 0.
    lines = ["[10] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; " + NAGIOS_STARTED + "\n"]
    for i in range(11):   # eleven restarts during the downtime
        lines += [f"[{20 + 2 * i}] Nagios 4.1.1 starting... (PID={100 + i})\n",
                  f"[{20 + 2 * i}] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; {NAGIOS_STARTED}\n"]
    lines += ["[50] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;1;refused\n",
              f"[60] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STOPPED; {NAGIOS_STOPPED}\n",
              "[61] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;1;still refused\n",
              f"[70] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; {NAGIOS_STARTED}\n",
              f"[71] SERVICE DOWNTIME ALERT: db01;PostgreSQL;CANCELLED; {CANCELLED}\n",
              "\n",   # Nagios 4 writes CANCELLED with its own trailing newline: a blank line follows
              "[72] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;1;refused again\n",
              f"[80] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STOPPED; {NAGIOS_STOPPED} (log began mid-downtime)\n"]
    obs, st = run("".join(lines))
    depth = [(o[0], o[3], o[6], o[7]) for o in obs]
    assert {d[2] for d in depth[:12]} == {1}                     # 12 STARTED lines: still on, depth 1
    assert depth[12:] == [
        (50, "CRITICAL", 1, "refused"), (60, None, 0, "STOPPED"), (61, "CRITICAL", 0, "still refused"),
        (70, None, 1, "STARTED"), (71, None, 0, "CANCELLED"), (72, "CRITICAL", 0, "refused again"),
        (80, None, 0, "STOPPED")]
    assert st.ignored == 12 and st.unparsed == 0                  # 11 start-up lines, 1 blank line


def test_icinga2_compat_log_counts_overlapping_downtimes():
    # Icinga 2 logs one STARTED per triggered downtime, one STOPPED/CANCELLED per removed one.
    obs, _ = run(
        f"[10] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; {ICINGA2_STARTED}\n"
        f"[11] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STARTED; {ICINGA2_STARTED}\n"
        "[12] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;1;refused\n"
        f"[13] SERVICE DOWNTIME ALERT: db01;PostgreSQL;STOPPED; {ICINGA2_STOPPED}\n"
        "[14] SERVICE ALERT: db01;PostgreSQL;CRITICAL;HARD;1;still refused\n"
        f"[15] HOST DOWNTIME ALERT: db01;STARTED; {ICINGA2_STARTED}\n"
        f"[16] HOST DOWNTIME ALERT: db01;CANCELLED; {CANCELLED}\n"
        f"[17] SERVICE DOWNTIME ALERT: db01;PostgreSQL;CANCELLED; {CANCELLED}\n"
        f"[18] SERVICE DOWNTIME ALERT: db01;PostgreSQL;CANCELLED; {CANCELLED} (one that never started)\n"
    )
    assert [(o[0], o[2], o[6], o[7]) for o in obs if o[3] is None] == [
        (10, "PostgreSQL", 1, "STARTED"), (11, "PostgreSQL", 2, "STARTED"), (13, "PostgreSQL", 1, "STOPPED"),
        (15, None, 1, "STARTED"), (16, None, 0, "CANCELLED"), (17, "PostgreSQL", 0, "CANCELLED"),
        (18, "PostgreSQL", 0, "CANCELLED")]
    assert [o[6] for o in obs if o[3] == "CRITICAL"] == [2, 1]


def test_one_downtimes_object_carries_depth_from_file_to_file():
    dts = Downtimes()
    first = list(parse(io.StringIO(f"[1] SERVICE DOWNTIME ALERT: h;s;STARTED; {NAGIOS_STARTED}\n"), None, dts))
    second = list(parse(io.StringIO("[2] LOG ROTATION: DAILY\n[2] SERVICE ALERT: h;s;CRITICAL;HARD;1;x\n"
                                    f"[3] SERVICE DOWNTIME ALERT: h;s;STOPPED; {NAGIOS_STOPPED}\n"), None, dts))
    assert [o[6] for o in first + second] == [1, 1, 0]


def test_host_downtime_depth_is_the_hosts_and_not_its_services():
    obs, _ = run(
        "[1] HOST DOWNTIME ALERT: web01;STARTED; Host has entered a period of scheduled downtime\n"
        "[2] HOST ALERT: web01;DOWN;HARD;1;down\n"
        "[3] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;1;refused\n"
        "[4] HOST ALERT: web02;DOWN;HARD;1;down\n"
        "[5] HOST DOWNTIME ALERT: web01;STOPPED; Host has exited from a period of scheduled downtime\n"
        "[6] HOST ALERT: web01;DOWN;HARD;1;down\n"
    )
    assert [(o[1], o[2], o[3], o[6]) for o in obs] == [
        ("web01", None, None, 1), ("web01", None, "DOWN", 1),
        ("web01", "HTTP", "CRITICAL", 0),     # the state fold applies the host's downtime
        ("web02", None, "DOWN", 0), ("web01", None, None, 0), ("web01", None, "DOWN", 0)]


def test_other_well_formed_lines_are_ignored():
    _, st = run(
        "[1795500000] Nagios 4.4.6 starting... (PID=4242)\n"
        "[1795500000] LOG VERSION: 2.0\n"
        "[1795500000] LOG ROTATION: DAILY\n"
        "[1795500101] HOST EVENT HANDLER: web01;DOWN;SOFT;1;escalator-host-handler\n"
        "[1795500102] SERVICE EVENT HANDLER: web01;HTTP;CRITICAL;SOFT;1;escalator-handler\n"
        "[1795500170] SERVICE NOTIFICATION: oncall;web01;HTTP;CRITICAL;notify-service-by-email;x\n"
        "[1795500171] HOST NOTIFICATION: oncall;web01;DOWN;notify-host-by-email;x\n"
        "[1795500172] EXTERNAL COMMAND: SCHEDULE_SVC_DOWNTIME;db01;PostgreSQL;1;2;1;0;0;me;x\n"
        "[1795500173] SERVICE FLAPPING ALERT: web01;HTTP;STARTED; flapping\n"
        "[1795500174] Warning: Check result queue contained results for host 'x'\n"
        "[1795500175] Caught SIGTERM, shutting down...\n"
        "   \n"
    )
    assert (st.lines, st.used, st.unparsed, st.ignored) == (12, 0, 0, 12)


def test_malformed_alerts_and_foreign_lines_are_counted_with_their_line_numbers():
    obs, st = run(
        "[1] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;1;fine\n"                 # 1
        "this line is not a Nagios log line\n"                               # 2
        "[abc] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;1;bad time\n"          # 3
        "[3] SERVICE ALERT: web01;HTTP;BROKEN;HARD;1;bad state\n"             # 4
        "[4] SERVICE ALERT: web01;HTTP;CRITICAL;HARDISH;1;bad type\n"         # 5
        "[5] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;one;bad attempt\n"       # 6
        "[6] SERVICE ALERT: web01;HTTP;CRITICAL\n"                            # 7
        "[7] HOST ALERT: web01;CRITICAL;HARD;1;a service state for a host\n"  # 8
        "[8] HOST ALERT: web01;DOWN\n"                                        # 9
        "[9] SERVICE DOWNTIME ALERT: web01;HTTP\n"                            # 10
        "[10] HOST DOWNTIME ALERT: web01\n"                                   # 11
        "[11 HOST ALERT: web01;DOWN;HARD;1;no closing bracket\n"              # 12
        "[12] HOST DOWNTIME ALERT: web01;BEGUN; not a word Nagios writes\n"   # 13
        "[13] SERVICE ALERT: web01;HTTP;OK;HARD;1;fine again\n"               # 14
    )
    assert [o[0] for o in obs] == [1.0, 13.0]
    assert st.unparsed == 12 and st.unparsed_lines == list(range(2, 14))
    assert st.lines == 14 and st.used == 2


def test_unparsed_line_numbers_are_bounded_but_all_are_counted():
    _, st = run("junk\n" * 1500)
    assert st.unparsed == 1500 and len(st.unparsed_lines) == 1000


def test_parse_is_lazy_and_accepts_any_text_stream():
    lines = iter(["[1] HOST ALERT: a;DOWN;HARD;1;x\n", "[2] HOST ALERT: b;DOWN;HARD;1;y\n"])
    gen = parse(lines)              # a plain iterator of lines is enough
    assert next(gen)[1] == "a"
    assert next(gen)[1] == "b"


def _both_ways(text: str):
    """parse() as shipped, and with its regex fast path switched off (the general parser alone)."""
    fast_stats, slow_stats = ParseStats(), ParseStats()
    fast = list(parse(io.StringIO(text), fast_stats))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(nagioslog, "_FAST_ALERT", lambda line: None)
        slow = list(parse(io.StringIO(text), slow_stats))
    return (fast, vars(fast_stats)), (slow, vars(slow_stats))


def test_the_fast_path_gives_what_the_general_parser_gives_on_every_real_log():
    logs = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix != ".rst")
    assert len(logs) >= 5
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        fast, slow = _both_ways(text)
        assert fast == slow, path


_FIELD = st.text(alphabet=st.sampled_from(list("ab;: ]\t[\\x\u00e9\u0663\u00b2")), max_size=6)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["SERVICE ALERT", "CURRENT SERVICE STATE", "INITIAL SERVICE STATE", "HOST ALERT",
                             "CURRENT HOST STATE", "INITIAL HOST STATE", "SERVICE NOTIFICATION"]),
       stamp=st.sampled_from(["1700000000", "1700000000.5", "+17", "", "x"]),
       fields=st.lists(st.one_of(_FIELD, st.sampled_from(["OK", "CRITICAL", "DOWN", "UNREACHABLE", "SOFT",
                                                          "HARD", "3", "\u0663", "12"])), max_size=7),
       end=st.sampled_from(["\n", "", ";\n"]))
def test_the_fast_path_agrees_with_the_general_parser_on_odd_lines(kind, stamp, fields, end):
    line = f"[{stamp}] {kind}: {';'.join(fields)}{end}"
    fast, slow = _both_ways(line + "[1700000001] HOST ALERT: h;DOWN;HARD;1;x\n")
    assert fast == slow, line


def test_each_line_keeps_its_own_time_when_the_general_parser_reads_a_line_in_between():
    # The fast path converts a repeated timestamp once; a downtime alert (general parser) at
    # another time between two alerts of the same second must not lend them its time.
    text = ("[100] SERVICE ALERT: h;s;CRITICAL;SOFT;1;x\n"
            "[200] SERVICE DOWNTIME ALERT: h;s;STARTED; Service has entered a period of scheduled downtime\n"
            "[100] SERVICE ALERT: h;s;CRITICAL;SOFT;2;x\n"
            "[100] HOST ALERT: h;DOWN;HARD;10;x\n"
            "[100.5] HOST ALERT: h;UP;HARD;12;x\n")
    obs, st = run(text)
    assert [(o[0], o[5]) for o in obs] == [(100.0, 1), (200.0, 1), (100.0, 2), (100.0, 10), (100.5, 12)]
    assert (st.used, st.ignored, st.unparsed) == (5, 0, 0)
    fast, slow = _both_ways(text)
    assert fast == slow
