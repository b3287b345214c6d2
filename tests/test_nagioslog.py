"""nagioslog: every kind of Nagios 4 / Icinga 2 compat log line, downtime depth,
hostile output, and what is ignored versus counted as unparsed."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Iterable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import loggen
from escalator_handlers.monitoring import nagioslog
from escalator_handlers.monitoring.nagioslog import Downtimes, ParseStats, parse, parse_file

DATA = Path(__file__).parent / "data" / "nagios-logs"
EXAMPLES = Path(__file__).parent.parent / "nagios-conf" / "examples"


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


def definition(lines: Iterable[str], downtimes: Optional[Downtimes] = None):
    """The general parser alone, a line at a time: what every line means by definition."""
    st, dts, obs, n = ParseStats(), downtimes if downtimes is not None else Downtimes(), [], 0
    for n, line in enumerate(lines, 1):
        o = nagioslog._general(line, n, st, dts)
        if o is not None:
            obs.append(o)
    st.lines, st.used, st.ignored = n, len(obs), n - len(obs) - st.unparsed
    return obs, vars(st)


def as_read(data: bytes) -> io.TextIOWrapper:
    """``data`` as ``open(path, encoding="utf-8", errors="replace")`` reads it (replay's text)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")


def shipped(data: bytes, block: Optional[int] = None):
    """parse_file() on ``data`` (plain and gzip, read ``block`` bytes at a time) and parse() on its text."""
    results = []
    with pytest.MonkeyPatch.context() as m:
        if block is not None:
            m.setattr(nagioslog, "_BLOCK_BYTES", block)
        for f in (io.BytesIO(data), gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data))), as_read(data)):
            stats = ParseStats()
            obs = list((parse if isinstance(f, io.TextIOWrapper) else parse_file)(f, stats))
            results.append((obs, vars(stats)))
    return results


def assert_as_defined(data: bytes, block: Optional[int] = None) -> None:
    expected = definition(as_read(data))
    for got in shipped(data, block):
        assert got == expected
    text = as_read(data).read()
    streams = [lambda: io.StringIO(text)]  # splits lines at "\n" only, keeps "\r"
    streams += [lambda nl=nl: io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline=nl)
                for nl in ("", "\r", "\r\n")]  # at "\r" too, or only there
    for stream in streams:
        stats = ParseStats()
        assert (list(parse(stream(), stats)), vars(stats)) == definition(stream())


def test_the_fast_path_gives_what_the_general_parser_gives_on_every_real_log():
    logs = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix != ".rst")
    logs += sorted(EXAMPLES.glob("*.log"))
    assert len(logs) >= 6
    for path in logs:
        assert_as_defined(path.read_bytes())


def test_the_fast_path_gives_what_the_general_parser_gives_on_a_generated_busy_log(tmp_path):
    # 10k checks, SOFT/HARD changes, downtimes, notifications: the benchmark's log, smaller.
    loggen.write_log(str(tmp_path / "nagios.log"), 30000, hosts=300)
    data = (tmp_path / "nagios.log").read_bytes()
    assert_as_defined(data)
    assert_as_defined(data.replace(b"\n", b"\r\n")[:-7], block=4093)   # CRLF, no last newline, odd blocks


_ODD = st.text(alphabet=st.sampled_from(list("ab;: ]\t[\\x\u00e9\u0663\r\x0c\u2028")), max_size=4)


def _field(*typical: str):
    return st.one_of(*[st.sampled_from(typical)] * 4, _ODD)  # odd one time in five


# Mostly well-formed lines with one or two odd fields: the fast path's edges.
_LINE = st.builds(
    lambda stamp, kind, fields, cut, end: f"[{stamp}] {kind}: "
    f"{';'.join((fields[:1] + fields[2:] if 'HOST' in kind else fields)[:cut])}{end}",
    stamp=_field("1700000000", "1700000000.5", "+17", "", "x", " 17", "0017", "9" * 15, "9" * 16, "9" * 400, "nan"),
    kind=_field(*nagioslog._KINDS, "SERVICE NOTIFICATION", "HOST EVENT HANDLER", "ALERT", ""),
    fields=st.tuples(_field("web01", "Disk /: x", ""), _field("HTTP", ""),
                     _field("OK", "CRITICAL", "DOWN", "UNREACHABLE", "STARTED", "STOPPED"),
                     _field("SOFT", "HARD", "CANCELLED"), _field("1", "3", "10", "12", "0", "01", "\u0663", "\u00b2", ""),
                     _field("refused", "a;b", "", " Checkable has entered")),
    cut=st.sampled_from([6] * 6 + list(range(6))),
    end=st.sampled_from(["\n", "", ";\n", "\r\n", "\r", "\n\n"]))
_BYTES = st.one_of(st.sampled_from([b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x80", b"\r", b"\n", b"\x00"]),
                   st.binary(max_size=4))


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.one_of(_LINE, st.sampled_from(["[1700000001] HOST ALERT: h;DOWN;HARD;1;x\n",
                                                        "[1700000001] SERVICE ALERT: h;s;OK;SOFT;2;y\n",
                                                        "junk\n", "\n"])), max_size=12),
       noise=st.lists(st.tuples(st.integers(0, 400), _BYTES), max_size=3),
       block=st.sampled_from([1, 2, 3, 7, 64, 1 << 16]))
def test_the_fast_path_agrees_with_the_general_parser_on_odd_lines(lines, noise, block):
    # Odd lines and odd bytes (broken UTF-8, lone "\r", "\r\n" cut between two reads), in
    # blocks of any size: the same observations, counts and line numbers as line by line.
    data = bytearray("".join(lines).encode())
    for at, junk in noise:
        data[at:at] = junk
    assert_as_defined(bytes(data), block)


EDGES = [
    "[1] SERVICE ALERT: web01;HTTP;OK;SOFT;;empty attempt", "[1] SERVICE ALERT: web01;HTTP;OK;SOFT;01;x",
    "[1] SERVICE ALERT: web01;HTTP;OK;SOFT;\u0663;Arabic-Indic digit", "[1] HOST ALERT: h;UP;SOFT;0;x",
    "[1] SERVICE ALERT: web01;HTTP;OK;SOFT;99999999999999999999999;x", "[1] SERVICE ALERT: web01;;OK;HARD;1;x",
    "[1] SERVICE ALERT: ;HTTP;OK;HARD;1;x", "[1] HOST ALERT: ;DOWN;HARD;1;x", "[1] SERVICE ALERT: ;;OK;HARD;1;x",
    "[1] SERVICE ALERT: w;s;OK;HAR;1;x", "[1] SERVICE ALERT: w;s;OK;HARDER;1;x", "[1] SERVICE ALERT: w;s;OK;hard;1;x",
    "[1] SERVICE ALERT: w;s;OK;HARD ;1;x", "[1] SERVICE ALERT: w;s;OKAY;HARD;1;x", "[1] SERVICE ALERT: w;s; OK;HARD;1;x",
    "[1] SERVICE ALERT: w;s;DOWN;HARD;1;x", "[1] HOST ALERT: w;OK;HARD;1;x", "[1] HOST ALERT: w;UNREACHABLE;SOFT;2;",
    "[1] SERVICE ALERT: w;s;OK;HARD;1", "[1] SERVICE ALERT: w;s;OK;HARD;1;", "[1] HOST ALERT: w;DOWN;HARD;1",
    "[" + "9" * 15 + "] HOST ALERT: h;DOWN;HARD;1;x", "[" + "9" * 16 + "] HOST ALERT: h;DOWN;HARD;1;x",
    "[" + "9" * 400 + "] SERVICE ALERT: h;s;OK;HARD;1;x", "[" + "9" * 400 + "] SERVICE NOTIFICATION: a;b",
    "[0] HOST ALERT: h;DOWN;HARD;1;x", "[007] HOST ALERT: h;DOWN;HARD;1;x", "[1.5] HOST ALERT: h;DOWN;HARD;1;x",
    "[1e3] HOST ALERT: h;DOWN;HARD;1;x", "[ 1] HOST ALERT: h;DOWN;HARD;1;x", "[+1] HOST ALERT: h;DOWN;HARD;1;x",
    "[-1] HOST ALERT: h;DOWN;HARD;1;x", "[1_0] HOST ALERT: h;DOWN;HARD;1;x", "[\u0661] HOST ALERT: h;DOWN;HARD;1;x",
    "[1] SERVICE ALERT:w;s;OK;HARD;1;x", "[1]  SERVICE ALERT: w;s;OK;HARD;1;x", "[1] SERVICE  ALERT: w;s;OK;HARD;1;x",
    "[1] service alert: w;s;OK;HARD;1;x", "[1] SERVICE ALERTS: w;s;OK;HARD;1;x", "[1]SERVICE ALERT: w;s;OK;HARD;1;x",
    "[1] CURRENT SERVICE STATE: w;s;UNKNOWN;HARD;1;x", "[1] INITIAL HOST STATE: w;UNREACHABLE;HARD;1;x",
    "[1] SERVICE ALERT: w;s;OK;HARD;1;a\rb\x0cc\x1cd\x85e\u2028f;g]h[2] SERVICE ALERT: w;s;CRITICAL;HARD;1;x",
    "[1] SERVICE DOWNTIME ALERT: w;s;STARTED; x", "[1] HOST DOWNTIME ALERT: w;STOPPED;", "[1] HOST DOWNTIME ALERT: w",
    "[1] SERVICE FLAPPING ALERT: w;s;STARTED; x", "[1] LOG ROTATION: DAILY", "[1]", "[1] ", "[", "[]", "[] x", "",
    " ", "\x0c", "\u2028", "junk", "[1] SERVICE ALERT", "[1] SERVICE ALERT: ",
    "[nan] HOST ALERT: h;DOWN;HARD;1;x", "[-inf] HOST ALERT: h;DOWN;HARD;1;x", "[nan] LOG ROTATION: DAILY",
    "[1] SERVICE ALERT: w;s;OK;HARD;\u00b2;x", "[1] HOST ALERT: w;DOWN;HARD;" + "1" * 5000 + ";x",
]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_edge_lines_read_as_the_general_parser_reads_them(end):
    for line in EDGES:
        assert_as_defined((line + end).encode())
        assert_as_defined(line.encode())              # as a last line without its newline
    assert_as_defined(end.join(EDGES * 2).encode(), block=100)


def test_times_and_attempts_no_clock_or_count_can_use_are_unparsed_not_fatal():
    # float() reads "inf" and "nan", str.isdigit() takes "\u00b2" (which int() refuses), and
    # int() refuses more than 4300 digits: each of these used to stop replay with a traceback.
    obs, st = run("[inf] HOST ALERT: web01;DOWN;HARD;1;x\n"
                  "[nan] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;1;x\n"
                  f"[{'9' * 400}] HOST ALERT: web01;DOWN;HARD;1;x\n"
                  "[5] SERVICE ALERT: web01;HTTP;CRITICAL;HARD;\u00b2;x\n"
                  f"[6] HOST ALERT: web01;DOWN;SOFT;{'1' * 5000};x\n"
                  f"[7] HOST ALERT: web01;DOWN;SOFT;{'1' * 16};sixteen digits are a number\n"
                  "[-inf] SERVICE DOWNTIME ALERT: web01;HTTP;STARTED; x\n"
                  "[nan] LOG ROTATION: DAILY\n"
                  "[8] SERVICE ALERT: web01;HTTP;OK;HARD;1;fine\n")
    assert [(o[0], o[5]) for o in obs] == [(7.0, 1111111111111111), (8.0, 1)]
    assert st.unparsed_lines == [1, 2, 3, 4, 5, 7] and st.ignored == 1


def test_lines_that_only_together_look_like_an_alert_stay_two_lines():
    text = ("[1] SERVICE ALERT: web01\n"          # no fields: the next line must not complete it
            "web01;HTTP;CRITICAL;HARD;1;refused\n"
            "[2] HOST ALERT: web01\n"
            "web01;DOWN;HARD;1;x\n"
            "[3] SERVICE ALERT: web01;HTTP\n[4] LOG ROTATION: CRITICAL;HARD;1;y\n")
    obs, st = run(text)
    assert obs == [] and st.unparsed_lines == [1, 2, 3, 4, 5] and st.ignored == 1
    assert_as_defined(text.encode())


def test_an_element_of_a_line_iterable_is_one_line_whatever_it_holds():
    lines = ["[1] HOST ALERT: a;DOWN;HARD;1;x\n[2] HOST ALERT: b;DOWN;HARD;1;y\n", "[3] HOST ALERT: c;UP;HARD;1;z"]
    stats = ParseStats()
    assert (list(parse(lines, stats)), vars(stats)) == definition(lines)
    assert [o[1] for o in list(parse(lines))] == ["a", "c"] and stats.lines == 2


def test_repeated_unparsed_lines_keep_their_own_line_numbers():
    text = "junk\n[1] HOST ALERT: h;DOWN;HARD;1;x\njunk\n\n[2] LOG ROTATION: DAILY\njunk\njunk\n" * 3
    obs, st = run(text)
    assert st.unparsed_lines == [1, 3, 6, 7, 8, 10, 13, 14, 15, 17, 20, 21]
    assert (st.lines, st.used, st.ignored, len(obs)) == (21, 3, 6, 3)


def test_a_truncated_gzip_archive_gives_every_line_before_the_damage_then_fails_like_a_text_file():
    loggen_text = "".join(f"[{1700000000 + i}] SERVICE ALERT: h{i % 7};s;CRITICAL;SOFT;1;{'x' * (i % 50)}\n"
                          for i in range(20000))
    broken = gzip.compress(loggen_text.encode())[:-500]

    def until_error(it):
        got = []
        with pytest.raises(EOFError):
            for o in it:
                got.append(o)
        return got

    def text():
        return io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(broken)), encoding="utf-8")

    by_line = until_error(o for n, line in enumerate(text(), 1)
                          for o in [nagioslog._general(line, n, ParseStats(), Downtimes())] if o is not None)
    assert len(by_line) > 19000
    assert until_error(parse_file(gzip.GzipFile(fileobj=io.BytesIO(broken)))) == by_line
    assert until_error(parse(text())) == by_line


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
    assert_as_defined(text.encode())
