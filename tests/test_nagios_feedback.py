"""Feedback into Nagios and Icinga: command file writer, sanitising, status.dat, API client.

The command file tests use a real FIFO; the status.dat tests parse a file
written by a real Nagios 4; the Icinga client talks to a small HTTPS server
on 127.0.0.1 (the real Icinga 2 API is exercised in test_daemons_e2e).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from escalator_handlers.config import IcingaApi, NagiosFeedback
from escalator_handlers.errors import EscalatorError
from escalator_handlers.monitoring.icinga_api import IcingaClient
from escalator_handlers.monitoring.link import recovered_since
from escalator_handlers.monitoring.feedback import CommandFile, Feedback, FeedbackError, clean_text
from escalator_handlers.monitoring.statusdat import (
    parse_blocks, parse_status, status_events,
)
from icinga_fixtures import make_certs
from nagios_fixtures import (
    FEEDBACK_HOST, FEEDBACK_SERVICE, HOST, SERVICE, parse_comments, schedule_downtime, service_status,
)

NOW = 1795534105


# --- command file ---------------------------------------------------------

@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Tuple[Path, int]]:
    """A FIFO with a non-blocking reader open on it, like a running Nagios."""
    path = tmp_path / "nagios.cmd"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    yield path, reader
    os.close(reader)


def drain(reader: int) -> List[str]:
    try:
        data = os.read(reader, 65536)
    except BlockingIOError:
        return []
    return data.decode().splitlines(keepends=True)


def test_command_file_writes_each_command_as_one_line(fifo):
    path, reader = fifo
    cf = CommandFile(str(path), clock=lambda: NOW + 0.9)
    cf.add_comment("web01", "HTTP", "escalator: running levels vm, converge, deploy")
    cf.add_comment("web01", None, "host note")
    cf.acknowledge("web01", "HTTP", "being rebuilt")
    cf.acknowledge("db01", None, "being rebuilt")
    cf.passive_result("monitor", "escalator", 2, "ESCALATOR CRITICAL - run failed")
    cf.passive_result("db01", None, 1, "down")
    schedule_downtime(cf, "web01", "HTTP", NOW, NOW + 300, "maintenance")
    schedule_downtime(cf, "web01", None, NOW, NOW + 60, "maintenance", fixed=False, duration=30)
    assert drain(reader) == [
        f"[{NOW}] ADD_SVC_COMMENT;web01;HTTP;0;escalator;escalator: running levels vm, converge, deploy\n",
        f"[{NOW}] ADD_HOST_COMMENT;web01;0;escalator;host note\n",
        f"[{NOW}] ACKNOWLEDGE_SVC_PROBLEM;web01;HTTP;0;0;0;escalator;being rebuilt\n",
        f"[{NOW}] ACKNOWLEDGE_HOST_PROBLEM;db01;0;0;0;escalator;being rebuilt\n",
        f"[{NOW}] PROCESS_SERVICE_CHECK_RESULT;monitor;escalator;2;ESCALATOR CRITICAL - run failed\n",
        f"[{NOW}] PROCESS_HOST_CHECK_RESULT;db01;1;down\n",
        f"[{NOW}] SCHEDULE_SVC_DOWNTIME;web01;HTTP;{NOW};{NOW + 300};1;0;300;escalator;maintenance\n",
        f"[{NOW}] SCHEDULE_HOST_DOWNTIME;web01;{NOW};{NOW + 60};0;0;30;escalator;maintenance\n",
    ]


def test_passive_result_output_cannot_start_perfdata(fifo):
    # Nagios reads everything after the first '|' of a check result as perfdata.
    path, reader = fifo
    cf = CommandFile(str(path), clock=lambda: NOW)
    cf.passive_result("monitor", "escalator", 2, "ESCALATOR CRITICAL - step said a|b | x=1")
    cf.passive_result("db01", None, 1, "down | rta=1")
    cf.add_comment("web01", "HTTP", "a comment keeps its | (not a check result)")
    assert drain(reader) == [
        f"[{NOW}] PROCESS_SERVICE_CHECK_RESULT;monitor;escalator;2;ESCALATOR CRITICAL - step said a/b / x=1\n",
        f"[{NOW}] PROCESS_HOST_CHECK_RESULT;db01;1;down / rta=1\n",
        f"[{NOW}] ADD_SVC_COMMENT;web01;HTTP;0;escalator;a comment keeps its | (not a check result)\n",
    ]


def test_command_file_without_reader_fails_at_once_with_enxio(tmp_path):
    path = tmp_path / "nagios.cmd"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(FeedbackError) as exc:
        CommandFile(str(path)).add_comment("web01", "HTTP", "hello")
    assert time.monotonic() - started < 1.0  # never blocks on a stopped Nagios
    assert "not reading" in str(exc.value) and str(path) in str(exc.value)
    assert exc.value.unreachable and isinstance(exc.value, EscalatorError)


def test_command_file_missing_or_not_a_fifo_is_a_clear_error(tmp_path):
    with pytest.raises(FeedbackError, match="does not exist"):
        CommandFile(str(tmp_path / "absent.cmd")).add_comment("web01", "HTTP", "x")
    plain = tmp_path / "plain.cmd"
    plain.write_text("")
    with pytest.raises(FeedbackError, match="not a FIFO"):
        CommandFile(str(plain)).add_comment("web01", "HTTP", "x")
    assert plain.read_text() == ""


def test_untrusted_text_cannot_inject_a_second_command(fifo):
    path, reader = fifo
    hostile = "ok;\n[1] SHUTDOWN_PROCESS\r\x00;DISABLE_NOTIFICATIONS\x1b[31m"
    CommandFile(str(path), clock=lambda: NOW).add_comment("web01", "HTTP", hostile)
    lines = drain(reader)
    assert len(lines) == 1
    fields = lines[0].rstrip("\n").split(";")
    assert fields[:5] == [f"[{NOW}] ADD_SVC_COMMENT", "web01", "HTTP", "0", "escalator"]
    assert len(fields) == 6  # the text stayed one field
    assert fields[5] == "ok: [1] SHUTDOWN_PROCESS :DISABLE_NOTIFICATIONS [31m"


def test_clean_text_replaces_separators_and_control_characters_and_truncates():
    assert clean_text("a;b\nc\td\x7fe") == "a:b c d e"
    assert clean_text("x" * 5000) == "x" * 1000
    assert clean_text("  spaced   out  ") == "spaced out"


@pytest.mark.parametrize("host,service", [("web01;x", "HTTP"), ("web01", "HTTP\nSHUTDOWN"),
                                          ("", "HTTP"), ("web01", "")])
def test_names_that_cannot_be_addressed_are_refused_not_altered(fifo, host, service):
    path, reader = fifo
    with pytest.raises(FeedbackError, match="cannot address"):
        CommandFile(str(path)).acknowledge(host, service, "x")
    assert drain(reader) == []


# --- Feedback -------------------------------------------------------------

def test_feedback_without_nagios_section_does_nothing():
    fb = Feedback.from_config(None)
    assert not fb.enabled
    fb.run_started([("web01", "HTTP")], ["vm"])
    fb.run_finished("failed", "boom")
    fb.level_held("vm", "attempts exhausted")


def test_feedback_comments_acknowledges_and_reports_outcomes(fifo):
    path, reader = fifo
    fb = Feedback.from_config(NagiosFeedback(command_file=str(path), acknowledge=True, host="monitor"))
    assert fb.enabled
    fb.run_started([("web01", "HTTP"), ("db01", None)], ["vm", "converge", "deploy"])
    text = "escalator: running levels vm, converge, deploy"
    got = [line.split("] ", 1)[1] for line in drain(reader)]
    assert got == [
        f"ADD_SVC_COMMENT;web01;HTTP;0;escalator;{text}\n",
        f"ACKNOWLEDGE_SVC_PROBLEM;web01;HTTP;0;0;0;escalator;{text}\n",
        f"ADD_HOST_COMMENT;db01;0;escalator;{text}\n",
        f"ACKNOWLEDGE_HOST_PROBLEM;db01;0;0;0;escalator;{text}\n",
    ]
    for outcome, code, label in [("ok", 0, "OK"), ("failed", 2, "CRITICAL"), ("skipped", 1, "WARNING"),
                                 ("held", 1, "WARNING"), ("something new", 3, "UNKNOWN")]:
        fb.run_finished(outcome, "levels vm; converge")
        (line,) = drain(reader)
        assert line.split("] ", 1)[1] == (
            f"PROCESS_SERVICE_CHECK_RESULT;monitor;escalator;{code};ESCALATOR {label} - levels vm: converge\n")
    fb.level_held("vm", "3 runs without convergence")
    (line,) = drain(reader)
    assert ";escalator;1;ESCALATOR WARNING - level vm held: 3 runs without convergence" in line


def test_feedback_without_acknowledge_only_comments(fifo):
    path, reader = fifo
    fb = Feedback.from_config(NagiosFeedback(command_file=str(path), host="monitor"))
    fb.run_started([("web01", "HTTP")], ["deploy"])
    assert [line.split("] ", 1)[1] for line in drain(reader)] == [
        "ADD_SVC_COMMENT;web01;HTTP;0;escalator;escalator: running levels deploy\n"]


def test_feedback_to_a_stopped_nagios_raises_one_error_and_tries_once(tmp_path):
    path = tmp_path / "nagios.cmd"
    os.mkfifo(path)
    fb = Feedback.from_config(NagiosFeedback(command_file=str(path), acknowledge=True, host="monitor"))
    with pytest.raises(FeedbackError) as exc:
        fb.run_started([("web01", "HTTP"), ("web02", "HTTP")], ["vm"])
    assert str(exc.value).count("not reading") == 1
    with pytest.raises(FeedbackError, match="report to monitor/escalator"):
        fb.run_finished("ok", "done")


def test_feedback_keeps_going_past_a_check_it_cannot_address(fifo):
    path, reader = fifo
    fb = Feedback(sinks=(CommandFile(str(path)),), host="monitor")
    with pytest.raises(FeedbackError, match="bad;host"):
        fb.run_started([("bad;host", "HTTP"), ("web01", "HTTP")], ["vm"])
    assert [line.split(";")[1] for line in drain(reader)] == ["web01"]


# --- status.dat -----------------------------------------------------------

SAMPLE_STATUS = """\
########################################
#          NAGIOS STATUS FILE
########################################
info {
\tcreated=1795534105
\tversion=4.4.6
\t}

programstatus {
\tnagios_pid=42
\t}

hoststatus {
\thost_name=db01
\tcurrent_state=1
\tstate_type=0
\tcurrent_attempt=1
\tscheduled_downtime_depth=0
\tplugin_output=CRITICAL - a=b; c
\tlast_check=1795534100
\tlast_state_change=1795534100
\thas_been_checked=1
\t}

servicestatus {
\thost_name=web01
\tservice_description=HTTP
\tcurrent_state=2
\tstate_type=1
\tcurrent_attempt=3
\tscheduled_downtime_depth=1
\tplugin_output=HTTP CRITICAL
\tlast_check=1795534101
\tlast_state_change=1795534050
\thas_been_checked=1
\t}

servicestatus {
\thost_name=web01
\tservice_description=Smoke test
\tcurrent_state=0
\tstate_type=1
\tcurrent_attempt=1
\thas_been_checked=0
\tlast_check=0
\t}

somethingnew {
\thost_name=web01
\tcurrent_state=2
\t}

servicecomment {
\thost_name=web01
\tservice_description=HTTP
\tentry_type=1
\tauthor=escalator
\tcomment_data=escalator: running levels vm
\tentry_time=1795534102
\t}
"""


def test_parse_status_maps_numbers_to_names_and_skips_unknown_blocks(tmp_path):
    path = tmp_path / "status.dat"
    path.write_text(SAMPLE_STATUS)
    status = parse_status(str(path))
    assert set(status) == {("db01", None), ("web01", "HTTP"), ("web01", "Smoke test")}
    db = status[("db01", None)]
    assert (db.state, db.state_type, db.attempt, db.downtime, db.output) == (
        "DOWN", "SOFT", 1, 0, "CRITICAL - a=b; c")
    http = status[("web01", "HTTP")]
    assert (http.state, http.state_type, http.attempt, http.downtime) == ("CRITICAL", "HARD", 3, 1)
    assert (http.last_check, http.last_state_change) == (1795534101.0, 1795534050.0)
    assert [kind for kind, _ in parse_blocks(SAMPLE_STATUS)] == [
        "info", "programstatus", "hoststatus", "servicestatus", "servicestatus",
        "somethingnew", "servicecomment"]


def test_status_events_seed_state_from_checked_checks_only(tmp_path):
    path = tmp_path / "status.dat"
    path.write_text(SAMPLE_STATUS)
    events = sorted(status_events(str(path)), key=lambda e: e.host)
    assert [(e.key, e.state, e.state_type, e.downtime, e.time) for e in events] == [
        (("db01", None), "DOWN", "SOFT", 0, 1795534100.0),
        (("web01", "HTTP"), "CRITICAL", "HARD", 1, 1795534101.0),
    ]


def _status_config(tmp_path: Path, status_file: Path):
    """A config whose ``nagios.status_file`` is ``status_file``."""
    import yaml

    from escalator_handlers.config.load import load_config_text

    data = {"spool": str(tmp_path / "spool"), "journal": str(tmp_path / "journal.jsonl"),
            "levels": [{"name": "vm", "steps": [{"shell": "true"}]}], "checks": [{"host": "*", "level": "vm"}],
            "nagios": {"status_file": str(status_file)}}
    return load_config_text(yaml.safe_dump(data), str(tmp_path / "escalator.yaml"))


def _failing_since(cfg, t: float, keys) -> "State":
    from escalator_handlers.planning.state import State

    state = State(cfg)
    for host, service in keys:
        state.apply({"time": t, "kind": "event", "host": host, "service": service,
                     "state": "DOWN" if service is None else "CRITICAL", "state_type": "HARD",
                     "attempt": 3, "downtime": 0, "output": ""})
    return state


def test_before_a_run_only_checks_ok_in_status_dat_since_we_heard_count_as_recovered(tmp_path):
    # The collector's confirmation (monitoring.link.recovered_since): a check still failing there,
    # one status.dat has not checked since our event, and one it does not know all still ask.
    def block(service: str, state: int, last_check: int) -> str:
        return (f"servicestatus {{\n\thost_name=web01\n\tservice_description={service}\n"
                f"\tcurrent_state={state}\n\tstate_type=1\n\tcurrent_attempt=1\n\thas_been_checked=1\n"
                f"\tlast_check={last_check}\n\tlast_state_change={last_check}\n"
                f"\tscheduled_downtime_depth=0\n\tplugin_output=x\n\t}}\n\n")
    path = tmp_path / "status.dat"
    path.write_text(block("HTTP", 2, 2000) + block("Smoke test", 0, 2000) + block("DNS", 0, 500))
    cfg = _status_config(tmp_path, path)
    asked = [("web01", "HTTP"), ("web01", "Smoke test"), ("web01", "DNS"), ("gone", "PING")]
    state = _failing_since(cfg, 1000.0, asked)
    fresh = recovered_since(cfg, state, asked)
    assert [(r["host"], r["service"], r["state"], r["source"]) for r in fresh] == [
        ("web01", "Smoke test", "OK", "status.dat")]


def test_unreadable_status_file_is_an_escalator_error(tmp_path):
    with pytest.raises(EscalatorError, match="cannot read Nagios status file"):
        parse_status(str(tmp_path / "absent.dat"))


@pytest.mark.slow
def test_status_dat_written_by_real_nagios_parses(nagios, tmp_path):
    cf = CommandFile(str(nagios.command_file))
    nagios.flip("CRITICAL", output="down for the test")
    nagios.wait_for(lambda: any(e["state_type"] == "HARD" for e in nagios.events()), what="HARD event")
    now = time.time()
    schedule_downtime(cf, HOST, SERVICE, now - 1, now + 600, "test downtime")
    cf.add_comment(HOST, SERVICE, "escalator: running levels vm")

    def settled():
        status = parse_status(str(nagios.status_file))
        http = status.get((HOST, SERVICE))
        return status if http and http.downtime == 1 and parse_comments(str(nagios.status_file)) else None

    status = nagios.wait_for(settled, what="downtime and comment in status.dat")
    http = status[(HOST, SERVICE)]
    assert (http.state, http.state_type, http.attempt) == ("CRITICAL", "HARD", 2)
    assert http.output == "CRITICAL - down for the test"
    assert http.last_check >= http.last_state_change > 0
    assert status[(HOST, None)].state == "UP"
    assert not status[(FEEDBACK_HOST, FEEDBACK_SERVICE)].checked  # passive, never reported
    keys = {e.key for e in status_events(str(nagios.status_file))}
    assert (HOST, SERVICE) in keys and (FEEDBACK_HOST, FEEDBACK_SERVICE) not in keys
    cfg = _status_config(tmp_path, nagios.status_file)
    asked = [(HOST, SERVICE), (HOST, None)]
    fresh = recovered_since(cfg, _failing_since(cfg, 0.0, asked), asked)
    assert [(r["host"], r["service"]) for r in fresh] == [(HOST, None)]   # the service still fails
    comments = [(c.host, c.service, c.author, c.text) for c in parse_comments(str(nagios.status_file))]
    assert (HOST, SERVICE, "escalator", "escalator: running levels vm") in comments


def test_passive_result_with_a_pipe_reaches_real_nagios_whole(nagios):
    CommandFile(str(nagios.command_file)).passive_result(
        FEEDBACK_HOST, FEEDBACK_SERVICE, 1, "ESCALATOR WARNING - output said a | b=1")

    def reported():
        svc = service_status(nagios.status_file, FEEDBACK_HOST, FEEDBACK_SERVICE)
        return svc if svc and svc.get("has_been_checked") == "1" else None

    svc = nagios.wait_for(reported, what="the passive result in status.dat")
    assert (svc["current_state"], svc["plugin_output"]) == ("1", "ESCALATOR WARNING - output said a / b=1")
    assert svc["performance_data"] == ""  # none of it became perfdata


# --- Icinga 2 API client --------------------------------------------------

class FakeIcinga:
    """Records requests; answers with ``reply`` (status, JSON body)."""

    def __init__(self) -> None:
        self.requests: List[dict] = []
        self.reply: Tuple[int, dict] = (200, {"results": [{"code": 200, "status": "ok"}]})
        self.delay = 0.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def fake_icinga(certs) -> Iterator[Tuple[FakeIcinga, str]]:
    state = FakeIcinga()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.requests.append({"path": self.path, "headers": dict(self.headers),
                                   "body": json.loads(self.rfile.read(length))})
            time.sleep(state.delay)
            code, body = state.reply
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.parent / "localhost.crt", certs.parent / "localhost.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_icinga_client_posts_actions_with_auth_filter_vars_and_json(fake_icinga, certs, tmp_path):
    state, url = fake_icinga
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    client = IcingaClient.from_config(IcingaApi(url=url, user="escalator", password_file=str(pw),
                                                ca_file=str(certs)))
    client.add_comment("web01", "HTTP", "escalator: running levels vm")
    client.acknowledge("web01", None, "rebuilding")
    client.passive_result("monitor", "escalator", 2, "ESCALATOR CRITICAL - x")
    schedule_downtime(client, "web01", "HTTP", NOW, NOW + 60, "dt")
    paths = [r["path"] for r in state.requests]
    assert paths == ["/v1/actions/add-comment", "/v1/actions/acknowledge-problem",
                     "/v1/actions/process-check-result", "/v1/actions/schedule-downtime"]
    first = state.requests[0]
    assert first["headers"]["Accept"] == "application/json"
    assert first["headers"]["Authorization"] == "Basic " + base64.b64encode(b"escalator:s3cret").decode()
    assert first["body"] == {
        "type": "Service", "author": "escalator", "comment": "escalator: running levels vm",
        "filter": "host.name==escalator_host && service.name==escalator_service",
        "filter_vars": {"escalator_host": "web01", "escalator_service": "HTTP"}}
    ack = state.requests[1]["body"]
    assert ack["type"] == "Host" and ack["filter_vars"] == {"escalator_host": "web01"}
    assert (ack["sticky"], ack["notify"], ack["persistent"]) == (False, False, False)
    assert state.requests[2]["body"]["exit_status"] == 2
    dt = state.requests[3]["body"]
    assert (dt["start_time"], dt["end_time"], dt["fixed"], dt["duration"]) == (NOW, NOW + 60, True, 60)


def test_icinga_names_travel_as_filter_vars_not_filter_code(fake_icinga, certs):
    state, url = fake_icinga
    client = IcingaClient(url, "u", "p", str(certs))
    client.add_comment('web01" || true || "', "HTTP", "x")
    body = state.requests[0]["body"]
    assert body["filter"] == "host.name==escalator_host && service.name==escalator_service"
    assert body["filter_vars"]["escalator_host"] == 'web01" || true || "'


@pytest.mark.parametrize("reply,match,unreachable", [
    ((401, {"error": 401, "status": "Unauthorized. Please check your user credentials."}),
     "HTTP 401 Unauthorized", True),
    ((200, {"results": [{"code": 409, "status": "Service web01!HTTP is OK."}]}), "409 Service web01!HTTP is OK", False),
    ((200, {"results": []}), "no object web01/HTTP", False),
    ((500, {"results": []}), "no object web01/HTTP", False),  # what Icinga 2.13 really answers
    ((404, {"error": 404, "status": "No objects found."}), "HTTP 404 No objects found", False),
    ((500, {"error": 500, "status": "boom"}), "HTTP 500 boom", False),
])
def test_icinga_api_errors_become_feedback_errors(fake_icinga, certs, reply, match, unreachable):
    state, url = fake_icinga
    state.reply = reply
    with pytest.raises(FeedbackError, match=match) as exc:
        IcingaClient(url, "u", "p", str(certs)).acknowledge("web01", "HTTP", "x")
    assert exc.value.unreachable is unreachable


def test_icinga_tls_is_verified_against_the_ca_file(fake_icinga):
    _, url = fake_icinga
    with pytest.raises(FeedbackError, match="unreachable.*CERTIFICATE_VERIFY_FAILED"):
        IcingaClient(url, "u", "p", ca_file=None).add_comment("web01", "HTTP", "x")


def test_icinga_down_or_slow_is_an_error_within_the_timeout(fake_icinga, certs):
    state, url = fake_icinga
    state.delay = 2.0
    started = time.monotonic()
    with pytest.raises(FeedbackError, match="unreachable"):
        IcingaClient(url, "u", "p", str(certs), timeout=0.3).add_comment("web01", "HTTP", "x")
    assert time.monotonic() - started < 1.5
    with pytest.raises(FeedbackError, match="unreachable"):
        IcingaClient("http://127.0.0.1:9", "u", "p").add_comment("web01", "HTTP", "x")


def test_icinga_missing_password_file_is_a_clear_error(tmp_path):
    api = IcingaApi(url="https://localhost:5665", user="u", password_file=str(tmp_path / "nope"))
    with pytest.raises(FeedbackError, match="cannot read Icinga API password file"):
        IcingaClient.from_config(api)
    fb = Feedback.from_config(NagiosFeedback(icinga_api=api, host="monitor"))  # the collector still starts
    with pytest.raises(FeedbackError, match="cannot read Icinga API password file") as exc:
        fb.run_finished("ok", "done")
    assert exc.value.unreachable


def test_feedback_through_icinga_reports_to_the_configured_service(fake_icinga, certs, tmp_path):
    state, url = fake_icinga
    pw = tmp_path / "pw"
    pw.write_text("p")
    fb = Feedback.from_config(NagiosFeedback(
        icinga_api=IcingaApi(url=url, user="u", password_file=str(pw), ca_file=str(certs)),
        acknowledge=True, host="monitor", service="escalator"))
    fb.run_started([("web01", "HTTP")], ["vm", "deploy"])
    fb.run_finished("failed", "step vm failed on web01")
    assert [r["path"].rsplit("/", 1)[1] for r in state.requests] == [
        "add-comment", "acknowledge-problem", "process-check-result"]
    result = state.requests[2]["body"]
    assert result["filter_vars"] == {"escalator_host": "monitor", "escalator_service": "escalator"}
    assert (result["exit_status"], result["plugin_output"]) == (
        2, "ESCALATOR CRITICAL - step vm failed on web01")


def test_enxio_is_what_linux_reports_for_a_fifo_without_reader(tmp_path):
    # The writer's error message depends on this errno; pin it.
    path = tmp_path / "f"
    os.mkfifo(path)
    with pytest.raises(OSError) as exc:
        os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    assert exc.value.errno == errno.ENXIO
