"""Hostile input: check output, host and service names that try to be code or paths.

Values go in the way an attacker who controls a monitored host's name or its
plugin output would get them in: through the real ``escalator-handler``
(argv, raw bytes included), and through the spool for what argv cannot
carry (NUL, a megabyte).  The collector then runs steps whose templates put
``{host}``, ``{hosts}`` and ``{summary}`` bare, inside the template's own
double quotes and inside its single quotes.  Then: no canary file appears
(nothing executed), nothing is created but the expected files (nothing used
as a path), the journal is ASCII JSON (recorded safely), the steps received
the values byte for byte, and ``status``, ``plan`` and ``replay`` show them
escaped.  Last, a hypothesis property over handler arguments.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from escalator_handlers import handler, journal as journalmod, spool
from escalator_handlers.collector import Collector
from escalator_handlers.config.load import load_config_text
from escalator_handlers.event import clip
from escalator_handlers.steps.template import one_line
from fault_fixtures import (
    HANDLER, assert_no_control_chars, clean_env, escalator, of_kind, read_journal, write_config,
)

pytestmark = pytest.mark.faults


def hostile_names(canary: Path) -> List[bytes]:
    """Host names (bytes, as argv carries them) that try every way out of a shell word."""
    c = str(canary).encode()
    return [
        b"web;touch " + c + b"/semicolon",
        b"$(touch " + c + b"/dollar)",
        b"`touch " + c + b"/backtick`",
        b'"; touch ' + c + b'/dquote; "',
        b"'; touch " + c + b"/squote; '",
        b"x\ntouch " + c + b"/newline",
        b"${IFS}touch${IFS}" + c + b"/ifs",
        b"|touch " + c + b"/pipe",
        b"&& touch " + c + b"/and",
        b">" + c + b"/redirect",
        b"../../etc/passwd",
        b"../canary/as-a-path",
        b"-rf",
        b"\x1b]0;title\x07\x1b[2J",
        b"caf\xe9-\xff\xfe-not-utf8",
        b"rtl\xe2\x80\xaeevil",
        b"\\'\\\"\\$",
    ]


STEPS = {  # file -> template
    "bare": "printf '%s\\n' {hosts} >> '{out}/bare'",
    "dquoted": 'echo "hosts: {hosts}" >> \'{out}/dquoted\'',
    "squoted": "echo '{hosts}' >> '{out}/squoted'",
    "summary": 'echo "escalator: {summary}" >> \'{out}/summary\'',
    "each": "printf '%s\\n' {host} >> '{out}/each'",
    "env": "printf '%s\\n' \"$ESCALATOR_HOST\" >> '{out}/env'",
    "notify-dq": 'echo "escalator: {summary}" >> {out}/notify',
    "notify-sq": "echo 'escalator: {summary}' >> {out}/notify",
}


def config(out: Path) -> str:
    def q(template: str) -> str:
        return _yaml_str(template.replace("{out}", str(out)))

    return f"""quiescence: 0s
levels:
  - name: vm
    max_attempts: 1
    steps:
      - shell: {q(STEPS["bare"])}
      - shell: {q(STEPS["dquoted"])}
      - shell: {q(STEPS["squoted"])}
      - shell: {q(STEPS["each"])}
        foreach: host
        concurrency: 4
      - shell: {q(STEPS["env"])}
        foreach: host
  - name: deploy
    steps:
      - shell: {q(STEPS["summary"])}
checks:
  - {{service: "*", level: vm}}
notify:
  - shell: {q(STEPS["notify-dq"])}
  - shell: {q(STEPS["notify-sq"])}
limits:
  max_targets: 100
"""


def tree(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def lines_starting_with_injection(out: bytes) -> List[bytes]:
    return [line for line in out.split(b"\n") if line.lstrip().startswith((b"touch", b"evil"))]


def test_hostile_names_and_output_are_never_executed_never_paths_recorded_and_shown_escaped(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    conf = write_config(tmp_path, config(out))
    sp = tmp_path / "spool"
    names = hostile_names(canary)
    c = str(canary).encode()
    passwd = os.stat("/etc/passwd")
    for i, name in enumerate(names):
        r = subprocess.run([HANDLER, "--spool", str(sp), "--host", name, "--service", name,
                            "--state", "CRITICAL", "--output", name + b" $(touch " + c + b"/output)"],
                           env=clean_env(), capture_output=True, timeout=30, cwd=work)
        assert r.returncode == 0 and r.stdout == r.stderr == b"", (name, r)
    # Through the Nagios macros too.
    r = subprocess.run([HANDLER, "--spool", str(sp)], capture_output=True, timeout=30, cwd=work,
                       env=clean_env({"NAGIOS_HOSTNAME": "macro`touch " + str(canary) + "/macro`",
                                      "NAGIOS_SERVICEDESC": "$(touch " + str(canary) + "/svc)",
                                      "NAGIOS_SERVICESTATE": "CRITICAL", "NAGIOS_SERVICESTATETYPE": "HARD",
                                      "NAGIOS_SERVICEOUTPUT": "';touch " + str(canary) + "/out'"}))
    assert r.returncode == 0, r.stderr
    # What argv cannot carry: NUL, and a megabyte of output.
    megabyte = ("\x00\n\r\x1b[31m;$(touch " + str(canary) + "/mb)`x`'\"\\" * 30000)[:1 << 20]
    spool.append(str(sp), {"time": time.time(), "host": "nul\x00host", "service": "big\x00svc",
                           "state": "CRITICAL", "output": megabyte})
    before = tree(tmp_path)

    r = escalator("collect", "--config", str(conf), cwd=work)
    assert r.returncode == 0, r.stderr
    assert_no_control_chars(r.stderr, "collect's stderr")

    # Never executed, never a path.
    assert list(canary.iterdir()) == [] and list(work.iterdir()) == []
    assert os.stat("/etc/passwd").st_mtime == passwd.st_mtime
    expected_new = {"journal.jsonl", "state.json", "collector.lock", "spool/collector.lock", "spool/wakeup", "spool/collector.config",
                    *(f"out/{n}" for n in ("bare", "dquoted", "squoted", "each", "env", "summary", "notify"))}
    assert set(tree(tmp_path)) - set(before) <= expected_new, set(tree(tmp_path)) - set(before)

    # Recorded safely: ASCII JSON, every value exactly as given.
    records, bad = read_journal(tmp_path / "journal.jsonl")
    assert bad == 0
    hosts = {e["host"] for e in of_kind(records, "event")}
    assert {os.fsdecode(n) for n in names} <= hosts and "nul\x00host" in hosts
    (big,) = [e for e in of_kind(records, "event") if e["host"] == "nul\x00host"]
    assert big["output"] == clip(megabyte)  # clipped to its limit, with a mark, by the spool reader
    (start,) = of_kind(records, "start")
    steps = of_kind(records, "step")
    assert all(s["exit"] == 0 for s in steps), [s for s in steps if s["exit"] != 0]

    # The steps got every host byte for byte, each made one line: control characters (NUL
    # included) in caret notation (^J), as the template's one_line writes them.
    raw = [os.fsencode(one_line(h)) for h in start["targets"]["vm"]]
    assert len(raw) == len(names) + 2 and not any(b"\n" in h or b"\x1b" in h for h in raw)
    assert (out / "bare").read_bytes() == b"".join(h + b"\n" for h in raw)
    assert sorted((out / "each").read_bytes().split(b"\n")[:-1]) == sorted(raw)
    assert sorted((out / "env").read_bytes().split(b"\n")[:-1]) == sorted(raw)
    assert (out / "dquoted").read_bytes() == b"hosts: " + b" ".join(raw) + b"\n"
    assert (out / "squoted").read_bytes() == b" ".join(raw) + b"\n"
    summary = os.fsencode(one_line(start["summary"]))
    assert (out / "summary").read_bytes() == b"escalator: " + summary + b"\n"
    assert (out / "notify").read_bytes().count(b"escalator: ") == 2

    # Shown escaped: no raw control characters, no line an attacker started.
    for args in (["status"], ["status", "--json"], ["plan", "--explain"], ["replay", str(tmp_path / "journal.jsonl")],
                 ["replay", "-v", str(tmp_path / "journal.jsonl")]):
        shown = escalator(*args, "--config", str(conf), cwd=work)
        assert shown.returncode == 0, (args, shown.stderr)
        for stream in (shown.stdout, shown.stderr):
            assert_no_control_chars(stream, f"escalator {' '.join(args)}")
            assert not lines_starting_with_injection(stream), (args, lines_starting_with_injection(stream))
            assert len(stream) < 200_000, f"escalator {args[0]} printed {len(stream)} bytes"
        shown.stdout.decode("utf-8")  # non-UTF-8 input never reaches the terminal raw
    # The Nagios plugin: its output lands in Nagios' UI and logs.
    check = subprocess.run([HANDLER.replace("escalator-handler", "check_escalator"), "-C", str(conf), "-vvv"],
                           env=clean_env(), capture_output=True, timeout=60, cwd=work)
    assert check.returncode in (0, 1, 2), check
    for stream in (check.stdout, check.stderr):
        assert_no_control_chars(stream, "check_escalator")
        assert not lines_starting_with_injection(stream)
    assert list(canary.iterdir()) == []


@pytest.mark.parametrize("template, expected", [
    ("""echo "escalator: {summary}" >> {out}""", "escalator: {value}\n"),
    ("""echo 'escalator: {summary}' >> {out}""", "escalator: {value}\n"),
    ("""echo "a"'b'"{summary}"'{summary}' >> {out}""", "ab{value}{value}\n"),
    ("""echo "\\"{summary}\\"" >> {out}""", '"{value}"\n'),
    ("""echo {summary}"" >> {out}""", "{value}\n"),
])
def test_placeholders_inside_the_templates_own_quotes_stay_literal(tmp_path, template, expected):
    canary = tmp_path / "canary"
    canary.mkdir()
    out = tmp_path / "out"
    value = (f"it's \"quoted\" $(touch {canary}/a) `touch {canary}/b` ${{IFS}} \\ ' \" ;touch {canary}/c "
             f"'$(touch {canary}/d)'")
    conf = write_config(tmp_path, f"""quiescence: 0s
levels:
  - name: vm
    max_attempts: 1
    steps:
      - shell: {_yaml_str(template.replace('{out}', str(out)))}
checks:
  - {{service: "*", level: vm}}
""")
    spool.append(str(tmp_path / "spool"), {"time": time.time(), "host": "h", "service": value,
                                           "state": "CRITICAL"})
    r = escalator("collect", "--config", str(conf))
    assert r.returncode == 0, r.stderr
    (start,) = of_kind(read_journal(tmp_path / "journal.jsonl")[0], "start")
    assert out.read_text() == expected.format(value=start["summary"])
    assert list(canary.iterdir()) == []


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# --- property: the handler never crashes and what it records round-trips -----

SURROGATES = [chr(0xDC80 + i) for i in range(128)]  # undecodable argv bytes, as Python sees them
TEXT = st.text(st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(SURROGATES)),
               max_size=60)
STATES = st.one_of(st.sampled_from(["CRITICAL", "WARNING", "OK", "UNKNOWN", "2", "down", "UP", "DOWN",
                                    "unreachable", "0", " critical "]), TEXT)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=TEXT, service=st.one_of(st.none(), TEXT), state=STATES,
       state_type=st.one_of(st.none(), st.sampled_from(["HARD", "SOFT", "1", "0", ""]), TEXT),
       attempt=st.one_of(st.none(), st.integers(-3, 10**6).map(str), TEXT),
       output=st.one_of(st.none(), TEXT, st.text(max_size=70000)))
def test_property_the_handler_never_crashes_and_its_record_round_trips_into_the_journal(
        host, service, state, state_type, attempt, output):
    with tempfile.TemporaryDirectory() as d:
        config = load_config_text(f"spool: {d}/spool\njournal: {d}/journal.jsonl\n"
                                  "levels: [{name: vm, steps: [{shell: 'true'}]}]\n")
        argv = ["--spool", f"{d}/spool", "--host", host, "--state", state]
        for opt, value in (("--service", service), ("--state-type", state_type), ("--attempt", attempt),
                           ("--output", output)):
            if value is not None:
                argv += [opt, value]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = handler.main(argv, environ={})
        message = err.getvalue()
        assert rc in (0, 2), (rc, message)
        if rc == 2:
            # A clean refusal: one printable line naming the problem, nothing spooled.
            assert message.startswith("escalator-handler: error: ") and message.count("\n") == 1
            assert message.isascii() and message[:-1].isprintable()
            assert not os.path.exists(f"{d}/spool/events.jsonl")
            return
        assert message == ""
        Collector(config).ingest()
        (rec,) = [r for _, r in journalmod.read(f"{d}/journal.jsonl")]
        assert rec["kind"] == "event"
        assert rec["host"] == host
        assert rec["service"] == (service or None)
        assert rec["output"] == handler.cap_output(output or "")
        assert rec["state"] in ("OK", "WARNING", "CRITICAL", "UNKNOWN", "UP", "DOWN", "UNREACHABLE")
        assert rec["state_type"] in ("HARD", "SOFT")
        assert open(f"{d}/journal.jsonl", "rb").read().isascii()
