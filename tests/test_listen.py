"""``escalator listen`` against a fake Icinga 2 API on 127.0.0.1, and the stream's translation.

The real daemon is in tests/test_listen_icinga.py; here the cases a real
Icinga will not produce on demand: a stream that says nothing (a bad filter
answers 200 and then nothing), a refused password, two masters sending the
same state change, a captured stream replayed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from collector_fixtures import ESCALATOR, Site
from escalator_handlers.monitoring import icinga_events as ie
from escalator_handlers.storage import intake_records
from listen_fixtures import FakeIcinga, state_change
from spool_fixtures import handler_env, wait_for


@pytest.fixture
def fake() -> Iterator[FakeIcinga]:
    f = FakeIcinga()
    try:
        yield f
    finally:
        f.close()


def write_config(site: Site, fake: FakeIcinga, password: str = "") -> Path:
    pw = site.root / "api-password"
    pw.write_text((password or fake.password) + "\n")
    return site.write_config(
        [{"name": "fix", "quiescence": 0.5, "steps": [{"shell": f"echo fix {{host}} >> {site.out}/fix.txt",
                                                    "foreach": "host"}]}],
        [{"host": "web01", "service": "HTTP", "level": "fix"}, {"host": "*", "level": "fix"}],
        quiescence=0.3,
        nagios={"icinga_api": {"url": fake.url, "user": fake.user, "password_file": str(pw)}, "host": "monitor",
                "ack_interlock": False})


def start_listen(site: Site, *args: str) -> subprocess.Popen:
    log = open(site.root / "listen.log", "ab")
    p = subprocess.Popen([ESCALATOR, "listen", "--config", str(site.config), "--daemon", "-v", *args],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=handler_env())
    log.close()
    site.procs.append(p)
    return p


def spooled(site: Site):
    path = site.spool / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# -- translation (pure) ---------------------------------------------------------


def test_host_state_is_up_down_in_state_and_0_to_3_in_check_result():
    down = ie.from_stream(state_change("db01", None, 1, 1, 1000.0), 2000.0)
    assert (down["state"], down["state_type"], down["service"]) == ("DOWN", "HARD", None)
    result = dict(state_change("db01", None, 1, 1, 1000.0), type="CheckResult")
    result["check_result"]["vars_after"]["state"] = 2          # a check result says CRITICAL for a host
    assert ie.from_stream(result, 2000.0)["state"] == "DOWN"
    result["check_result"]["vars_after"]["state"] = 1          # WARNING: the host is UP (Icinga's rule)
    assert ie.from_stream(result, 2000.0)["state"] == "UP"


def test_unreachable_comes_from_vars_after_reachable():
    ev = ie.from_stream(state_change("db01", None, 1, 1, 1000.0, reachable=False), 2000.0)
    assert ev["state"] == "UNREACHABLE"


def test_hard_transition_with_attempt_1_is_hard_and_check_time_is_execution_start():
    ev = ie.from_stream(state_change("web01", "HTTP", 2, 1, 1000.0, attempt=1), 2000.0)
    assert (ev["state"], ev["state_type"], ev["attempt"]) == ("CRITICAL", "HARD", 1)
    assert ev["check_time"] == 1000.0 and ev["time"] == 1000.01   # not the emission timestamp (1000.5)


def test_unknown_types_and_broken_messages_give_nothing():
    assert ie.from_stream({"type": "Flapping", "host": "h"}, 1.0) is None
    assert ie.from_stream({"type": "StateChange", "host": "h", "service": "s", "state": 9}, 1.0) is None
    assert ie.from_stream({"type": "StateChange", "service": "s", "state": 2}, 1.0) is None


def test_the_same_state_change_heard_from_two_sources_is_one_event():
    """Two HA masters (or stream and EventCommand): same check, state and check time."""
    a = ie.from_stream(state_change("web01", "HTTP", 2, 1, 1000.0), 1001.0)
    b = ie.from_stream(dict(state_change("web01", "HTTP", 2, 1, 1000.0), timestamp=1000.9), 1001.0)
    b["source"] = "other-master"
    handler = {"time": 1000.2, "host": "web01", "service": "HTTP", "state": "CRITICAL", "state_type": "HARD",
               "attempt": 1, "check_time": 1000.0}
    later = ie.from_stream(state_change("web01", "HTTP", 2, 1, 1060.0), 1061.0)
    items = [("spool", n, dict(r, id=f"id{n}"), "") for n, r in enumerate([a, b, handler, later])]
    events = [r for r in intake_records(items, set(), 2000.0) if r["kind"] == "event"]
    assert [e["check_time"] for e in events] == [1000.0, 1060.0]
    # ... also across batches: the first one's observation is remembered.
    again = intake_records([("spool", 9, dict(b, id="id9"), "")], {events[0]["observation"]}, 2001.0)
    assert again == []


# -- escalator listen against the fake API ------------------------------------------


def test_stream_read_line_by_line_is_spooled_and_acted_on(site: Site, fake: FakeIcinga):
    write_config(site, fake)
    listen = start_listen(site)
    wait_for(lambda: fake.subscriptions, 10, what="the subscription")
    [sub] = fake.subscriptions
    assert sub["queue"] and set(sub["types"]) == set(ie.STREAM_TYPES)
    fake.send(state_change("web01", "HTTP", 2, 1, 1_800_000_000.0))
    # The body never ends (no Content-Length, connection open): the line still arrives alone.
    wait_for(lambda: [r for r in spooled(site) if r.get("state") == "CRITICAL"], 10, what="the event spooled")
    site.start()
    site.wait_records("run", where=lambda r: r.get("outcome") == "ok")
    assert site.lines("fix.txt") == ["fix web01"]
    listen.send_signal(signal.SIGTERM)
    assert listen.wait(timeout=10) == 0
    [gap] = site.wait_records("gap")
    assert gap["outcome"] == "open" and gap["reason"] == "escalator listen was stopped"


def test_a_silent_stream_is_a_gap_and_a_decision_during_it_says_so(site: Site, fake: FakeIcinga):
    """A bad filter or type: 200, then nothing.  The watchdog opens a gap; status, check_escalator
    and the run record say so; the reconnect's catch-up closes it."""
    cfg = write_config(site, fake)
    fake.silent = True
    start_listen(site, "--watchdog", "1s")
    wait_for(lambda: len(fake.subscriptions) >= 2, 10, what="a reconnect after the watchdog")
    site.event("web01", "CRITICAL", "HTTP")        # heard through the EventCommand meanwhile
    site.start()
    [start] = site.wait_records("start")
    assert start["gap"]["reason"] == "event stream silent for 1s (watchdog)"
    status = site.cli("status", "--config", str(cfg)).stdout
    assert "OPEN gap, escalator cannot hear Icinga since" in status and "watchdog" in status
    r = subprocess.run(
        [str(Path(ESCALATOR).parent / "check_escalator"), "--config", str(cfg)],
        capture_output=True, text=True, env=handler_env(), timeout=30)
    assert r.returncode == 1 and "gap: cannot hear Icinga since" in r.stdout, r.stdout
    history = site.cli("history", "--config", str(cfg)).stdout
    assert "decided during a gap" in history
    explain = site.cli("plan", "--explain", "--config", str(cfg)).stdout
    assert "OPEN gap, escalator cannot hear Icinga since" in explain
    fake.silent = False
    fake.send(state_change("web01", "HTTP", 0, 1, 1_800_000_100.0))
    wait_for(lambda: any(g.get("outcome") == "closed" for g in spooled(site) + site.records("gap")), 10,
             what="the gap closed after a catch-up")


def test_catch_up_reports_what_changed_while_away(site: Site, fake: FakeIcinga):
    write_config(site, fake)
    fake.objects["services"] = [{"name": "HTTP", "host_name": "web01", "state": 2, "state_type": 1,
                                 "check_attempt": 1, "downtime_depth": 0,
                                 "last_check_result": {"execution_start": 1_800_000_000.0,
                                                       "execution_end": 1_800_000_000.1, "output": "down",
                                                       "vars_after": {"reachable": True}}},
                                {"name": "SSH", "host_name": "web01", "state": 0, "state_type": 1,
                                 "last_check_result": {"execution_start": 1_800_000_000.0}}]
    r = site.cli("listen", "--config", str(site.config))
    assert r.returncode == 0 and "1 record(s) spooled" in r.stdout, r.stdout + r.stderr
    [ev] = spooled(site)
    assert (ev["service"], ev["state"], ev["state_type"], ev["source"]) == ("HTTP", "CRITICAL", "HARD",
                                                                             "icinga-catch-up")
    # The stream then sends the same result: not spooled twice.
    start_listen(site)
    wait_for(lambda: fake.subscriptions, 10, what="the subscription")
    fake.send(state_change("web01", "HTTP", 2, 1, 1_800_000_000.0))
    fake.send(state_change("web01", "HTTP", 0, 1, 1_800_000_060.0))
    wait_for(lambda: [r for r in spooled(site) if r.get("state") == "OK"], 10, what="the recovery")
    assert [r["state"] for r in spooled(site) if r.get("kind") == "event"] == ["CRITICAL", "OK"]


def test_a_refused_password_is_a_clear_message_and_never_shown(site: Site, fake: FakeIcinga):
    write_config(site, fake, password="wrong-pw-123")
    r = site.cli("listen", "--config", str(site.config))
    assert r.returncode == 1
    assert "HTTP 401" in r.stderr and "Traceback" not in r.stderr
    assert "wrong-pw-123" not in r.stderr + r.stdout
    listen = start_listen(site)
    wait_for(lambda: spooled(site), 10, what="the gap record")
    listen.send_signal(signal.SIGTERM)
    listen.wait(timeout=10)
    text = (site.spool / "events.jsonl").read_text() + (site.root / "listen.log").read_text()
    assert "HTTP 401" in text and "wrong-pw-123" not in text and fake.password not in text


def test_listen_without_icinga_api_is_a_usage_error(site: Site):
    site.write_config([{"name": "fix", "steps": [{"shell": "true"}]}], [{"host": "*", "level": "fix"}])
    r = site.cli("listen", "--config", str(site.config))
    assert r.returncode == 2 and "listen needs nagios: icinga_api:" in r.stderr


# -- capture, replay, escalator test --------------------------------------------------


def test_a_captured_stream_replays_and_tests(site: Site, fake: FakeIcinga, tmp_path: Path):
    cfg = write_config(site, fake)
    capture = tmp_path / "stream.jsonl"
    listen = start_listen(site, "--capture", str(capture))
    wait_for(lambda: fake.subscriptions, 10, what="the subscription")
    fake.send(state_change("web01", "HTTP", 2, 0, 1_800_000_000.0))
    fake.send(state_change("web01", "HTTP", 2, 1, 1_800_000_001.0))
    fake.send({"type": "AcknowledgementSet", "host": "web01", "service": "HTTP", "author": "alice"})
    fake.send(state_change("web01", "HTTP", 0, 1, 1_800_000_001.5))   # repaired before the verdict
    wait_for(lambda: capture.exists() and len(capture.read_text().splitlines()) == 4, 10, what="the capture")
    listen.send_signal(signal.SIGTERM)
    listen.wait(timeout=10)
    r = site.cli("replay", "--config", str(cfg), str(capture))
    assert r.returncode == 0 and "levels fix" in r.stdout, r.stdout + r.stderr
    scenario = tmp_path / "captured.yaml"
    scenario.write_text(yaml.safe_dump({"name": "captured", "stream": "stream.jsonl",
                                        "expect": {"runs": [{"levels": ["fix"], "targets": {"fix": ["web01"]}}]}}))
    r = site.cli("test", "--config", str(cfg), str(scenario))
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr


# -- feedback ---------------------------------------------------------------------------


def test_feedback_goes_through_the_api_only_when_icinga_api_is_set(tmp_path: Path):
    from escalator_handlers.config import IcingaApi, NagiosFeedback
    from escalator_handlers.monitoring.feedback import Feedback
    from escalator_handlers.monitoring.icinga_api import IcingaClient

    pw = tmp_path / "pw"
    pw.write_text("x\n")
    api = IcingaApi(url="https://127.0.0.1:5665", user="u", password_file=str(pw))
    fb = Feedback.from_config(NagiosFeedback(command_file=str(tmp_path / "icinga2.cmd"), icinga_api=api))
    assert [type(s) for s in fb.sinks] == [IcingaClient]
    nagios = Feedback.from_config(NagiosFeedback(command_file=str(tmp_path / "nagios.cmd")))
    assert [type(s).__name__ for s in nagios.sinks] == ["CommandFile"]


def test_tls_verifies_the_certificate_name_even_when_the_url_says_127_0_0_1(site: Site, tmp_path: Path):
    """The usual Icinga certificate names the node only (no IP): ``server_name`` says which name."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed for the test certificates")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
        "-subj", "/CN=icinga-master")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:icinga-master\n")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "node.crt", "-days", "2", "-extfile", "san.ext")
    fake = FakeIcinga(tls=(str(tmp_path / "node.crt"), str(tmp_path / "node.key")))
    try:
        pw = site.root / "pw"
        pw.write_text(fake.password + "\n")
        api = {"url": fake.url, "user": fake.user, "password_file": str(pw), "ca_file": str(tmp_path / "ca.crt")}
        levels, checks = [{"name": "fix", "steps": [{"shell": "true"}]}], [{"host": "*", "level": "fix"}]
        site.write_config(levels, checks, nagios={"icinga_api": api})
        r = site.cli("listen", "--config", str(site.config))
        assert r.returncode == 1 and "certificate" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert fake.password not in r.stderr
        site.write_config(levels, checks, nagios={"icinga_api": dict(api, server_name="icinga-master")})
        r = site.cli("listen", "--config", str(site.config))
        assert r.returncode == 0, r.stderr
        listen = start_listen(site)                   # the event stream verifies the same way
        wait_for(lambda: fake.subscriptions, 10, what="the subscription over TLS")
        listen.send_signal(signal.SIGTERM)
        assert listen.wait(timeout=10) == 0
        site.write_config(levels, checks, nagios={"icinga_api": dict(api, server_name="other-node")})
        r = site.cli("listen", "--config", str(site.config))
        assert r.returncode == 1 and "certificate" in r.stderr, r.stderr
    finally:
        fake.close()


def test_a_stale_heartbeat_is_an_open_gap_and_a_clean_stop_is_not_silence(tmp_path: Path):
    from types import SimpleNamespace

    from escalator_handlers import defaults
    from escalator_handlers.listen_state import heartbeat_gap

    cfg = SimpleNamespace(journal=str(tmp_path / "journal.jsonl"))
    assert heartbeat_gap(cfg, 1000.0) is None                       # listen never ran here
    beat = {"beat": 1000.0, "heard": 990.0, "stopped": False, "gap": None}
    assert heartbeat_gap(cfg, 1000.0 + defaults.LISTEN_STALE - 1, beat) is None
    gap = heartbeat_gap(cfg, 1000.0 + defaults.LISTEN_STALE + 1, beat)
    assert gap["start"] == 990.0 and "escalator listen silent since" in gap["reason"]
    stopped = dict(beat, stopped=True, gap={"start": 995.0, "reason": "escalator listen was stopped"})
    assert heartbeat_gap(cfg, 5000.0, stopped) == {"start": 995.0, "reason": "escalator listen was stopped"}


def test_the_capture_rotates_by_size(tmp_path: Path):
    from escalator_handlers.listen_state import Capture

    cap = Capture(str(tmp_path / "stream.jsonl"), size=100, keep=2)
    for n in range(20):
        cap.write(json.dumps({"type": "CheckResult", "n": n}).encode() + b"\n")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["stream.jsonl", "stream.jsonl.1", "stream.jsonl.2"]
    kept = [json.loads(x)["n"] for name in ("stream.jsonl.2", "stream.jsonl.1", "stream.jsonl")
            for x in (tmp_path / name).read_text().splitlines()]
    assert kept == sorted(kept) and kept[-1] == 19            # oldest first, newest last, whole lines
