"""escalator-handler as Nagios and Icinga run it: options and NAGIOS_* macros,
exit codes and messages, hostile values, a refused or full spool, the
detached collector, and the hot path's imports."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

import filelock
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator_handlers import handler, spool
from escalator_handlers.event import Event, normalise_state, normalise_state_type
from spool_fixtures import process_gone, run_handler, spool_records, wait_for

ARGS = ["--host", "web01", "--service", "HTTP", "--state", "CRITICAL"]


def only_record(sp) -> dict:
    (rec,) = spool_records(sp)
    return rec


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert "Traceback" not in text
    return text[:-1]


def test_service_event_from_options_is_recorded_durably_and_silently(tmp_path):
    sp = tmp_path / "spool"
    before = time.time()
    proc = run_handler(ARGS + ["--state-type", "SOFT", "--attempt", "2", "--downtime", "1",
                               "--output", "CRITICAL - connection refused", "--spool", str(sp)])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    rec = only_record(sp)
    assert before <= rec.pop("time") <= time.time()
    assert rec.pop("id")
    assert rec == {"host": "web01", "service": "HTTP", "state": "CRITICAL", "state_type": "SOFT",
                   "attempt": 2, "downtime": 1, "output": "CRITICAL - connection refused"}


@pytest.mark.parametrize("service_args", [[], ["--service", ""], ["--service="]])
def test_without_a_service_it_is_a_host_check(tmp_path, service_args):
    sp = tmp_path / "spool"
    proc = run_handler(["--host=db1", "--state=1", "--time=1700000000.5", f"--spool={sp}", *service_args])
    assert proc.returncode == 0, proc.stderr
    rec = only_record(sp)
    assert (rec["host"], rec["service"], rec["state"], rec["time"]) == ("db1", None, "DOWN", 1700000000.5)
    assert (rec["state_type"], rec["attempt"], rec["downtime"], rec["output"]) == ("HARD", 1, 0, "")


NAGIOS_SERVICE_ENV = {
    "NAGIOS_HOSTNAME": "web01", "NAGIOS_SERVICEDESC": "HTTP",
    "NAGIOS_SERVICESTATE": "CRITICAL", "NAGIOS_SERVICESTATETYPE": "SOFT",
    "NAGIOS_SERVICEATTEMPT": "2", "NAGIOS_SERVICEDOWNTIME": "0",
    "NAGIOS_SERVICEOUTPUT": "CRITICAL - Socket timeout",
    # Nagios also exports the host's macros for a service event: not ours
    "NAGIOS_HOSTSTATE": "UP", "NAGIOS_HOSTSTATETYPE": "HARD", "NAGIOS_HOSTATTEMPT": "1",
    "NAGIOS_HOSTOUTPUT": "PING OK",
}


def test_nagios_service_macros_make_a_service_event(tmp_path):
    sp = tmp_path / "spool"
    proc = run_handler([], env={**NAGIOS_SERVICE_ENV, "ESCALATOR_SPOOL": str(sp)})
    assert proc.returncode == 0, proc.stderr
    rec = only_record(sp)
    assert (rec["host"], rec["service"], rec["state"], rec["state_type"], rec["attempt"], rec["output"]) == (
        "web01", "HTTP", "CRITICAL", "SOFT", 2, "CRITICAL - Socket timeout")


def test_nagios_host_macros_with_empty_values_make_a_host_event_with_defaults(tmp_path):
    sp = tmp_path / "spool"
    env = {"NAGIOS_HOSTNAME": "db1", "NAGIOS_SERVICEDESC": "", "NAGIOS_HOSTSTATE": "DOWN",
           "NAGIOS_HOSTSTATETYPE": "", "NAGIOS_HOSTATTEMPT": "", "NAGIOS_HOSTDOWNTIME": "",
           "NAGIOS_HOSTOUTPUT": "CRITICAL - Host Unreachable (10.0.0.1)"}
    proc = run_handler(["--spool", str(sp)], env=env)
    assert proc.returncode == 0, proc.stderr
    rec = only_record(sp)
    assert (rec["host"], rec["service"], rec["state"], rec["state_type"], rec["attempt"], rec["downtime"]) == (
        "db1", None, "DOWN", "HARD", 1, 0)


def test_explicit_options_override_macros_and_spool_option_overrides_environment(tmp_path):
    sp, other = tmp_path / "spool", tmp_path / "other"
    env = {**NAGIOS_SERVICE_ENV, "ESCALATOR_SPOOL": str(other)}
    proc = run_handler(["--output", "from the option", "--spool", str(sp)], env=env)
    assert proc.returncode == 0, proc.stderr
    assert only_record(sp)["output"] == "from the option" and not other.exists()


@pytest.mark.parametrize("argv, env, message", [
    ([], {}, "no event given: pass --host and --state"),
    (["--host", "a"], {}, "--state is required with --host"),
    (["--state", "OK"], {}, "--host is required with --state"),
    (["--host", "a", "--state", "BOGUS"], {}, "invalid host state 'BOGUS': expected one of UP, DOWN, UNREACHABLE"),
    (["--host", "a", "--service", "s", "--state", "UP"], {}, "invalid service state 'UP'"),
    (["--host", "a", "--state", "2", "--attempt", "two"], {}, "the attempt must be a whole number, not 'two'"),
    (["--host", "a", "--state", "2", "--downtime", "-1"], {}, "the downtime depth must be at least 0, not '-1'"),
    (["--host", "a", "--state", "2", "--attempt", "0"], {}, "the attempt must be at least 1, not '0'"),
    (["--host", "a", "--state", "2", "--time", "yesterday"], {}, "--time: expected epoch seconds or ISO 8601 such as 2026-11-29T03:00:00Z, not 'yesterday'"),
    (["--host", "a", "--state", "2", "--time", "inf"], {}, "--time: 'inf' is out of range: expected a time from 1970 to 9999 (epoch seconds 0 to 253402300799) or ISO 8601"),
    (["--host", "a", "--state", "2", "--state-type", "MEDIUM"], {}, "invalid state type 'MEDIUM'"),
    (["--host", "", "--state", "2"], {}, "the host name is empty"),
    (["--host", "a", "--state", "2", "--frobnicate"], {}, "unknown option '--frobnicate'"),
    (["--host", "a", "--state", "2", "extra"], {}, "unexpected argument 'extra'"),
    (["--host", "a", "--state"], {}, "option --state needs a value"),
    (["--host", "a", "--state", "2", "--spawn-collector=yes"], {}, "option --spawn-collector takes no value"),
    ([], {"NAGIOS_HOSTNAME": "a", "NAGIOS_SERVICEDESC": "s"}, "NAGIOS_SERVICESTATE is not set"),
    ([], {"NAGIOS_HOSTNAME": "a", "NAGIOS_HOSTSTATE": "WEIRD"}, "invalid host state 'WEIRD'"),
])
def test_bad_usage_exits_2_with_one_line_and_records_nothing(tmp_path, argv, env, message):
    sp = tmp_path / "spool"
    proc = run_handler(["--spool", str(sp)] + argv, env=env)
    line = one_line(proc.stderr)
    assert proc.returncode == 2
    assert line.startswith("escalator-handler: error: ") and message in line, line
    assert not sp.exists()


def test_config_without_spawn_collector_is_ignored_not_an_error(tmp_path):
    # the handler never reads the config; a command definition may pass it anyway
    proc = run_handler(ARGS + ["--config", str(tmp_path / "missing.yaml"), "--spool", str(tmp_path / "spool")])
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert only_record(tmp_path / "spool")["host"] == "web01"


def test_help_and_version():
    proc = run_handler(["--help"])
    assert proc.returncode == 0 and b"usage: escalator-handler --host HOST" in proc.stdout
    proc = run_handler(["--version"])
    assert proc.returncode == 0 and proc.stdout.startswith(b"escalator-handler 0.")


HEAVY = ("yaml", "click", "paramiko", "nagiosplugin", "filelock", "argparse",
         # not forbidden by the contract, but each costs milliseconds per event
         # (json loads json.decoder -> re -> enum: 7 ms):
         "typing", "dataclasses", "subprocess", "json", "re", "enum",
         "escalator_handlers.event", "escalator_handlers.errors",
         "escalator_handlers.spool_reader", "escalator_handlers.config")


def test_the_hot_path_imports_nothing_heavy(tmp_path):
    # Only what the handler adds counts: an editable install's path finder
    # already loads re at start-up, a regular install does not.
    script = textwrap.dedent("""
        import sys
        before = set(sys.modules)
        import escalator_handlers.handler as h
        after_import = sorted(set(sys.modules) - before)
        rc = h.main(["--host", "a", "--service", "b", "--state", "CRITICAL", "--spool", sys.argv[1]])
        after_main = sorted(set(sys.modules) - before)
        import json
        print(json.dumps({"rc": rc, "import": after_import, "main": after_main}))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "spool")],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["rc"] == 0 and len(spool_records(tmp_path / "spool")) == 1
    for stage in ("import", "main"):
        loaded = [m for m in result[stage] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
        assert loaded == [], f"after {stage}: {loaded}"


HOSTILE = [
    "; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "'\"; touch {marker}; echo \"'",
    "line one\nline two\r\n\tthree",
    "../../etc/passwd",
    "/etc/shadow",
    "--state OK",
    "-h",
    "%s%n {{host}} $HOME ${{IFS}}",
    "caf\u00e9 \u2603 \U0001F600 \u202e",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_values_are_recorded_literally_never_executed_never_a_path(tmp_path, template):
    sp, cwd = tmp_path / "spool", tmp_path / "cwd"
    cwd.mkdir()
    marker = tmp_path / "pwned"
    value = template.format(marker=marker)
    proc = run_handler(["--host", value, "--service", value, "--state", "CRITICAL", "--output", value,
                        "--spool", str(sp)], cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    rec = only_record(sp)
    assert rec["host"] == rec["service"] == rec["output"] == value
    assert not marker.exists()
    assert os.listdir(cwd) == [] and os.listdir(sp) == ["events.jsonl"]
    assert sorted(os.listdir(tmp_path)) == ["cwd", "spool"]


def test_non_utf8_bytes_in_argv_and_macros_are_kept_byte_for_byte(tmp_path):
    sp = tmp_path / "spool"
    raw = b"\xff\xfe caf\xc3\xa9 \x80\x1b[31m"
    proc = subprocess.run([sys.executable, "-m", "escalator_handlers.handler",
                           b"--host", raw, b"--state", b"DOWN", b"--output", raw, b"--spool", os.fsencode(sp)],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rec = only_record(sp)
    assert os.fsencode(rec["host"]) == raw and os.fsencode(rec["output"]) == raw
    env = {"NAGIOS_HOSTNAME": os.fsdecode(raw), "NAGIOS_HOSTSTATE": "UP", "NAGIOS_HOSTOUTPUT": os.fsdecode(raw)}
    assert run_handler(["--spool", str(sp)], env=env).returncode == 0
    assert [os.fsencode(r["output"]) for r in spool_records(sp)] == [raw, raw]
    assert (sp / "events.jsonl").read_bytes().isascii()


def test_large_output_through_argv_is_capped_with_a_note(tmp_path):
    sp = tmp_path / "spool"
    text = "x" * 120_000  # Linux refuses single arguments over 128 KiB (MAX_ARG_STRLEN)
    proc = run_handler(ARGS + ["--output", text, "--spool", str(sp)])
    assert proc.returncode == 0, proc.stderr
    # The limit holds with the mark included, so every later intake keeps the text as it is.
    out = only_record(sp)["output"]
    assert out == "x" * (65536 - 24) + " [truncated 54488 chars]" and len(out) == 65536


def test_a_megabyte_of_output_with_nul_is_recorded_safely(tmp_path):
    sp = tmp_path / "spool"
    text = ("\x00\n;$(x)" * 200_000)[:1_048_576]
    assert handler.main(ARGS + ["--output", text, "--spool", str(sp)], environ={}) == 0
    out = only_record(sp)["output"]
    assert out == handler.cap_output(text) and len(out) == 65536
    kept = out.rindex(" [truncated ")
    assert out[:kept] == text[:kept] and out[kept:] == f" [truncated {len(text) - kept} chars]"


def test_a_symlinked_spool_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "spool")
    proc = run_handler(ARGS + ["--spool", str(tmp_path / "spool")])
    line = one_line(proc.stderr)
    assert proc.returncode == 1
    assert line == (f"escalator-handler: cannot record event for web01/HTTP: refusing to use spool "
                    f"{tmp_path}/spool: it is a symbolic link (to {tmp_path}/real); "
                    f"point the spool at the real directory")
    assert os.listdir(tmp_path / "real") == []


def test_a_world_writable_spool_is_refused_like_sshd_strictmodes(tmp_path):
    sp = tmp_path / "spool"
    sp.mkdir()
    sp.chmod(0o777)
    proc = run_handler(ARGS + ["--spool", str(sp)])
    assert proc.returncode == 1
    assert one_line(proc.stderr).endswith(f"refusing to use spool {sp}: it is world-writable (mode 0777); "
                                          f"chmod o-w {sp}")
    assert os.listdir(sp) == []


def test_a_spool_that_cannot_exist_fails_with_the_reason(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_handler(ARGS + ["--spool", str(tmp_path / "file" / "spool")])
    assert proc.returncode == 1
    assert one_line(proc.stderr) == (f"escalator-handler: cannot record event for web01/HTTP: refusing to use "
                                     f"spool {tmp_path}/file/spool: a parent of it is not a directory; "
                                     f"fix the spool path")


def test_a_full_file_size_limit_fails_loudly_and_keeps_earlier_events(tmp_path):
    sp = tmp_path / "spool"
    for n in range(3):
        assert run_handler(ARGS + ["--attempt", str(n + 1), "--spool", str(sp)]).returncode == 0
    before = (sp / "events.jsonl").read_bytes()
    limit = len(before) + 50

    def fsize_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = run_handler(ARGS + ["--output", "y" * 3000, "--spool", str(sp)], preexec_fn=fsize_limit)
    assert proc.returncode == 1, "the handler must not be killed by SIGXFSZ"
    assert one_line(proc.stderr) == (f"escalator-handler: cannot record event for web01/HTTP: cannot write "
                                     f"{sp}/events.jsonl: File too large (the file size limit, RLIMIT_FSIZE, "
                                     f"was reached)")
    assert (sp / "events.jsonl").read_bytes() == before
    assert [r["attempt"] for r in spool_records(sp)] == [1, 2, 3]


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0750", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_fails_loudly_and_keeps_earlier_events(tiny_fs):
    sp = tiny_fs / "spool"
    for n in range(3):
        assert run_handler(ARGS + ["--attempt", str(n + 1), "--spool", str(sp)]).returncode == 0
    before = (sp / "events.jsonl").read_bytes()
    filler = os.open(tiny_fs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.strerror == "No space left on device"
    finally:
        os.close(filler)
    proc = run_handler(ARGS + ["--output", "z" * 20_000, "--spool", str(sp)])
    assert proc.returncode == 1
    assert one_line(proc.stderr).endswith(f"cannot write {sp}/events.jsonl: No space left on device")
    assert (sp / "events.jsonl").read_bytes() == before
    os.unlink(tiny_fs / "filler")
    assert run_handler(ARGS + ["--attempt", "4", "--spool", str(sp)]).returncode == 0
    assert [r["attempt"] for r in spool_records(sp)] == [1, 2, 3, 4]


FAKE_COLLECTOR = """
import json, os, sys
fds = {}
for name in os.listdir("/proc/self/fd"):
    try:
        fds[name] = os.readlink(f"/proc/self/fd/{name}")
    except OSError:
        pass  # the descriptor listdir used, closed by now
info = {"pid": os.getpid(), "sid": os.getsid(0), "argv": sys.argv[2:], "fds": fds, "cwd": os.getcwd(),
        "events": open(os.environ["SPOOL"] + "/events.jsonl").read().count("\\n")}
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(info, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""


def test_spawn_collector_starts_a_detached_collector_only_when_none_holds_the_lock(tmp_path):
    sp = tmp_path / "spool"
    script = tmp_path / "fake-collector.py"
    script.write_text(FAKE_COLLECTOR)
    (tmp_path / "conf.yaml").write_text(f"spool: {sp}\n")  # the collector must read this spool
    inherited = os.open(tmp_path / "inherited", os.O_WRONLY | os.O_CREAT)

    def spawn(out):
        env = {"ESCALATOR_COLLECTOR_CMD": f"{sys.executable} {script} {out}", "SPOOL": str(sp)}
        return run_handler(ARGS + ["--spool", str(sp), "--spawn-collector", "--config", "conf.yaml"],
                           env=env, pass_fds=(inherited,), cwd=tmp_path)

    try:
        spool.check_spool_dir(str(sp))
        with filelock.FileLock(str(sp / "collector.lock")):  # as the collector holds it
            assert spawn(tmp_path / "held.json").returncode == 0
        proc = spawn(tmp_path / "free.json")
        assert (proc.returncode, proc.stderr) == (0, b"")
        info = json.loads(wait_for(lambda: (tmp_path / "free.json").exists() and
                                   (tmp_path / "free.json").read_text()))
        wait_for(lambda: process_gone(info["pid"]))
    finally:
        os.close(inherited)
    assert info["sid"] == info["pid"] != os.getsid(0)  # leader of its own session
    assert info["fds"] == {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null"}
    assert info["argv"] == ["--config", str(tmp_path / "conf.yaml")]
    assert info["cwd"] == "/" and info["events"] == 2  # started after the durable append
    assert not (tmp_path / "held.json").exists()


def test_the_default_collector_command_is_escalator_collect():
    assert handler.collector_command(None, {}) == [sys.executable, "-m", "escalator_handlers.cli", "collect"]
    assert handler.collector_command("/etc/e.yaml", {})[-2:] == ["--config", "/etc/e.yaml"]


states = st.sampled_from(["OK", "warning", " Critical ", "UNKNOWN", "0", "1", "2", "3"])
host_states = st.sampled_from(["UP", "down", "UNREACHABLE", "0", "1", "2", "ok", "CRITICAL"])
text = st.text(st.characters(exclude_categories=()), max_size=200)  # with surrogates, as argv gives them


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=text.filter(bool), service=text, state=st.data(),
       state_type=st.sampled_from(["", "SOFT", "hard", "0", "1"]), attempt=st.integers(1, 10**6), downtime=st.one_of(st.just(""), st.integers(0, 99).map(str)),
       output=text, when=st.floats(946684800, 1.7e9))  # 2000..2023: times the handler keeps as given
def test_property_any_event_round_trips_through_the_spool(host, service, state, state_type, attempt, downtime,
                                                           output, when):
    is_host = not service
    state = state.draw(host_states if is_host else states)
    argv = ["--host", host, "--service", service, "--state", state, "--state-type", state_type,
            "--attempt", str(attempt), "--downtime", downtime, "--output", output, "--time", repr(when)]
    with tempfile.TemporaryDirectory() as tmp:
        assert handler.main(argv + ["--spool", tmp + "/s"], environ={}) == 0
        (rec,) = spool_records(tmp + "/s")
    expected = {
        "time": when, "host": host, "service": service or None, "state": normalise_state(state, is_host),
        "state_type": normalise_state_type(state_type or "HARD"), "attempt": attempt,
        "downtime": int(downtime or 0), "output": output, "id": rec["id"],
    }
    given = state.strip().upper()
    if given != expected["state"] and not given.isdigit():
        expected["reported_state"] = given  # a host CRITICAL is stored as DOWN, saying so
    assert rec == expected
    assert Event.from_dict(rec).to_dict() == rec  # the collector's reading of it


_INFO_FLAGS = ("-h", "--help", "--version")  # exit 0 without recording
_OPTION_WORDS = ["--host", "--service", "--state", "--state-type", "--attempt", "--downtime", "--output",
                 "--time", "--config", "--spawn-collector", "--host=", "--state=", "-", "--", "-x", "UP", "2"]


@settings(max_examples=200, deadline=None)
@given(argv=st.lists(st.one_of(st.sampled_from(_OPTION_WORDS), text.filter(lambda a: a not in _INFO_FLAGS)),
                     max_size=12))
def test_property_any_argv_gives_an_exit_status_never_an_exception(argv):
    with tempfile.TemporaryDirectory() as tmp:
        environ = {"ESCALATOR_COLLECTOR_CMD": "/bin/true"}
        rc = handler.main(argv + ["--spool", tmp + "/s"], environ=environ)
        assert rc in (0, 2)
        assert (rc == 0) == (len(spool_records(tmp + "/s")) == 1)


@given(value=st.one_of(text, st.sampled_from(["OK", "up", "3", "\u0663", " down ", "critical", "HARD", "soft"])),
       is_host=st.booleans())
def test_property_the_fast_state_tables_agree_with_event_normalisation(value, is_host):
    def outcome(fn, *args):
        try:
            return fn(*args)
        except (ValueError, handler._Usage) as exc:
            return ("error", str(exc))

    assert outcome(handler._state, value, is_host) == outcome(normalise_state, value, is_host)
    expected = outcome(normalise_state_type, value) if value.strip() else "HARD"
    assert outcome(handler._state_type, value) == expected
