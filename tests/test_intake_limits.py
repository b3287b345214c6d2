"""Bad input costs itself only: bad spool lines, oversized fields, unanswerable records.

Through the public commands: the real ``escalator-handler``, a one-shot
``escalator collect`` (which must exit), and the journal it leaves.  The
steps write the hosts they were run for into files, so "remediated" means a
step really ran for that host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from collector_fixtures import HANDLER, Site, handler_env, runs
from escalator_handlers import spool

pytestmark = pytest.mark.integration

MB = 1 << 20
CHECKS = [{"host": "*", "level": "vm"}, {"service": "*", "level": "vm"}]


def config(site: Site, **top) -> None:
    out = site.out
    site.write_config([
        {"name": "vm", "quiescence": 0, "max_attempts": 1,
         "steps": [{"shell": f"echo \"$ESCALATOR_HOST\" >> {out}/each.txt", "foreach": "host"},
                   {"shell": f"printf '%s\\n' {{hosts}} >> {out}/hosts.txt; "
                             f"printf '%s\\n' \"$ESCALATOR_HOSTS\" \"$ESCALATOR_SUMMARY\" >> {out}/env.txt"}]},
    ], CHECKS, quiescence=0, **top)


def collect(site: Site, timeout: float = 60) -> subprocess.CompletedProcess:
    """A one-shot collect: it must exit by itself."""
    return site.cli("collect", "--config", str(site.config), timeout=timeout)


def spool_line(site: Site, text: bytes) -> None:
    """Append a raw line to the live spool file, as a buggy or hostile writer would."""
    site.spool.mkdir(exist_ok=True)
    with open(site.spool / spool.EVENTS, "ab") as f:
        f.write(text + b"\n")


def event_line(host: str, service=None, output: str = "", state: str = "DOWN") -> bytes:
    return json.dumps({"time": time.time(), "host": host, "service": service,
                       "state": state if service is None else "CRITICAL", "state_type": "HARD",
                       "attempt": 1, "downtime": 0, "output": output}).encode()


def normal_hosts(site: Site, n: int = 10) -> List[str]:
    hosts = [f"node{i:02d}" for i in range(n)]
    for h in hosts:
        site.event(h, "DOWN", output="PING CRITICAL - 100% packet loss")
    return hosts


# -- issue 28 item 3: any exception from one spool line rejects that line alone ------------------------


def test_a_deeply_nested_spool_line_is_rejected_and_the_event_beside_it_is_acted_on(site: Site) -> None:
    config(site)
    site.event("before", "DOWN")
    spool_line(site, b"[" * 100_000 + b"]" * 100_000)           # RecursionError in json
    spool_line(site, b'{"time": 1e999, "host": "x", "state": "DOWN", "attempt": 1e999}')
    spool_line(site, b'{"time": 1, "host": "x", "state": "DOWN", "id": ["not", "a", "string"]}')
    site.event("after", "DOWN")
    r = collect(site)
    assert r.returncode == 0, r.stderr
    rejected = site.records("rejected")
    assert len(rejected) == 3, rejected
    assert all(rec["reason"] and rec["source"] for rec in rejected)
    assert sorted(site.lines("each.txt")) == ["after", "before"]
    # ... and the next start is no crash either: the spool is empty, nothing is read twice.
    r = collect(site)
    assert r.returncode == 0, r.stderr
    assert len(site.records("rejected")) == 3


# -- issue 28 item 4: a record that cannot be answered is answered once ---------------------------------


def test_a_request_without_an_id_for_an_unknown_level_is_answered_once(site: Site) -> None:
    config(site)
    # In the journal (as any intake would put it there): no id, a level the config lacks.
    site.journal.write_text(json.dumps({"time": time.time(), "kind": "request", "level": "nope",
                                        "user": "alice"}) + "\n")
    r = collect(site, timeout=30)
    assert r.returncode == 0, r.stderr
    refused = [rec for rec in site.records("run") if rec.get("outcome") == "skipped"]
    assert len(refused) == 1, refused
    assert "no level 'nope'" in refused[0]["reason"]
    r = collect(site, timeout=30)   # the next start does not answer it again
    assert r.returncode == 0, r.stderr
    assert len([rec for rec in site.records("run") if rec.get("outcome") == "skipped"]) == 1


@pytest.mark.parametrize("record", [
    {"kind": "approval", "levels": ["vm"], "asked": -100, "expires": -5},            # no approval id
    {"kind": "approval", "approval": "a1", "levels": ["nope"], "asked": -100, "expires": -5},  # no level
    {"kind": "hold", "host": "web1", "until": "nan"},                                # a NaN expiry
], ids=["approval-without-id", "approval-without-level", "hold-until-nan"])
def test_a_record_that_cannot_be_answered_neither_loops_nor_fills_the_journal(site: Site, record: dict) -> None:
    config(site)
    now = time.time()
    rec = {k: (now + v if k in ("asked", "expires") else v) for k, v in record.items()}
    site.journal.write_text(json.dumps(dict(rec, time=now - 10)) + "\n")
    site.event("web1", "DOWN")
    r = collect(site, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(site.records()) < 20, site.records()[-5:]


# -- issue 27 item 5: a time option says what is wrong with it ---------------------------------------------


@pytest.mark.parametrize("value, says", [
    ("1e308", "out of range"), ("inf", "out of range"), ("-inf", "out of range"), ("-1", "out of range"),
    ("1e12", "out of range"), ("nan", "not a number"), ("NaN", "not a number"),
])
def test_a_time_out_of_range_or_not_a_number_is_refused_saying_which(tmp_path: Path, value: str, says: str) -> None:
    r = subprocess.run([HANDLER, "--spool", str(tmp_path / "spool"), "--host", "h", "--state", "DOWN",
                        "--time", value], env=handler_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and f"--time: {value!r} is {says}" in r.stderr, r.stderr
    assert not (tmp_path / "spool" / spool.EVENTS).exists()


def test_history_since_nan_is_a_usage_error_saying_not_a_number(site: Site) -> None:
    config(site)
    r = site.cli("history", "--config", str(site.config), "--since", "nan")
    assert r.returncode == 2 and "'nan' is not a number" in r.stderr, r.stderr
    r = site.cli("history", "--config", str(site.config), "--until", "1e308")
    assert r.returncode == 2 and "'1e308' is out of range" in r.stderr, r.stderr


# -- issue 28 item 6: template values are one line unless the step asks for raw text ---------------------


def test_a_host_name_with_newlines_puts_no_header_line_into_the_documented_mail_step(site: Site) -> None:
    bindir = site.root / "bin"
    bindir.mkdir()
    mail = bindir / "mail"   # a mail(1) that records its subject argument, one file per call
    mail.write_text(f"#!/bin/sh\nn=$(ls {site.out} | grep -c '^subject') \n"
                    f"printf '%s' \"$2\" > {site.out}/subject.$n\n"
                    f"printf '%s' \"$ESCALATOR_SUMMARY\" > {site.out}/env.$n\n")
    mail.chmod(0o755)
    documented = 'mail -s "escalator: {summary}" ops@example.com'
    site.write_config([
        {"name": "vm", "quiescence": 0, "max_attempts": 1,
         "steps": [{"shell": documented},
                   {"shell": f"printf '%s|' {{host}} >> {site.out}/raw.txt", "foreach": "host", "raw": True}]},
    ], CHECKS, notify=[{"shell": documented}], quiescence=0)
    evil = "evil\nSubject: x\nBcc: victim@example.com"
    site.event(evil, "DOWN")
    site.event("plain", "DOWN")
    r = site.cli("collect", "--config", str(site.config), env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    subjects = sorted(site.out.glob("subject.*"))
    assert len(subjects) == 2, r.stderr   # the run's step, then the notification when it did not converge
    for path in subjects + sorted(site.out.glob("env.*")):
        text = path.read_text()
        assert "\n" not in text and "\r" not in text, (path.name, text)
        assert "evil^JSubject: x^JBcc: victim@example.com" in text, (path.name, text)
    assert sorted((site.out / "raw.txt").read_text().split("|")) == ["", evil, "plain"]  # raw: as given
    # The journal keeps the name exactly as monitoring gave it.
    assert {e["host"] for e in site.records("event")} == {evil, "plain"}


# -- issue 27 item 1: a step's environment and command line stay within the system's limits -------------


def test_a_run_for_2000_long_host_names_gets_its_lists_whole_through_a_file_and_a_script(site: Site) -> None:
    out = site.out
    site.write_config([
        {"name": "vm", "quiescence": 0, "max_attempts": 1,
         "steps": [{"shell": f"printf '%s\\n' {{hosts}} | wc -l > {out}/argv.count; "
                             f"wc -l < \"$ESCALATOR_HOSTS_FILE\" > {out}/env.count; "
                             f"wc -l < \"$ESCALATOR_CHECKS_FILE\" > {out}/checks.count; "
                             f"printf '%s' \"$ESCALATOR_HOSTS\" | wc -c > {out}/env.bytes"}]},
    ], CHECKS, quiescence=0)
    hosts = [f"h{i:04d}-" + "x" * 240 for i in range(2000)]   # 2000 x 246 bytes: 490 KB a list
    for h in hosts:
        spool_line(site, event_line(h))
    tmp = site.root / "tmp"
    tmp.mkdir()
    r = site.cli("collect", "--config", str(site.config), env={"TMPDIR": str(tmp)}, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    (step,) = site.records("step")[:1]
    assert step["exit"] == 0, step
    assert len(step["command"]) < 5000        # the journal keeps the head of a command run from a file
    assert (out / "argv.count").read_text().split() == ["2000"]
    assert (out / "env.count").read_text().split() == ["2000"]
    assert (out / "checks.count").read_text().split() == ["2000"]
    assert (out / "env.bytes").read_text().split() == ["0"]   # too long for the environment: in the file
    assert list(tmp.iterdir()) == []   # the run's files went with the run


# -- issue 27 item 1: one oversized event costs that event only ---------------------------------------


@pytest.mark.parametrize("field", ["host", "service", "output"])
def test_a_megabyte_field_in_a_batch_with_10_failing_hosts_leaves_the_10_remediated(site: Site, field: str) -> None:
    config(site)
    big = "b" * MB
    line = {"host": event_line(big), "service": event_line("bigsvc-host", service=big),
            "output": event_line("bigout-host", output=big)}[field]
    hosts = normal_hosts(site)[:5]
    spool_line(site, line)          # what no argv can carry: straight into the spool
    hosts += [f"node{i:02d}" for i in range(5, 10)]
    for h in hosts[5:]:
        site.event(h, "DOWN")
    r = collect(site)
    assert r.returncode == 0, r.stderr[-3000:]
    remediated = set(site.lines("each.txt"))
    assert set(hosts) <= remediated, remediated
    assert all(s["exit"] == 0 for s in site.records("step")), [s for s in site.records("step") if s["exit"]]
    if field == "output":   # clipped, with a mark; the host is a target like any other
        assert remediated == set(hosts) | {"bigout-host"}
        (ev,) = [e for e in site.records("event") if e["host"] == "bigout-host"]
        assert len(ev["output"]) == 65536 and ev["output"].endswith(" chars]")
    else:                   # refused: clipping a name could name another host
        assert remediated == set(hosts)
        (rej,) = site.records("rejected")
        assert f"the {field} name is {MB} characters long, over the limit of" in rej["reason"], rej
        assert len(rej["text"]) <= 2000
    assert site.journal.stat().st_size < 400_000   # nothing carries the megabyte along


def test_a_100kb_host_name_from_the_handler_is_refused_with_exit_2_and_a_rejected_record(site: Site) -> None:
    config(site)
    r = subprocess.run([HANDLER, *site.handler_args("h" * 100_000, "DOWN")], env=handler_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and len(r.stderr) < 400, r.stderr[:500]
    assert "the host name is 100000 characters long, over the limit of 255" in r.stderr
    hosts = normal_hosts(site)
    r = collect(site)
    assert r.returncode == 0, r.stderr[-3000:]
    assert set(site.lines("each.txt")) == set(hosts)
    (rej,) = site.records("rejected")
    assert rej["source"] == "escalator-handler" and "100000 characters" in rej["reason"]


def test_replay_and_test_apply_the_same_limits(site: Site, tmp_path: Path) -> None:
    config(site)
    log = tmp_path / "events.jsonl"
    log.write_bytes(event_line("h" * 300) + b"\n" + event_line("ok-host") + b"\n"
                    + b"[" * 50_000 + b"]" * 50_000 + b"\n")
    r = site.cli("replay", "--config", str(site.config), str(log))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "refused (over a field limit): " in r.stderr and "host name is 300 characters long" in r.stderr
    assert "ok-host" in r.stdout and "h" * 300 not in r.stdout
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"config: {site.config}\nevents:\n  - {{at: 0s, host: {'h' * 300}, state: DOWN}}\n"
                        "expect: []\n")
    r = site.cli("test", "--config", str(site.config), str(scenario))
    assert r.returncode == 2 and "host name is 300 characters long" in r.stdout + r.stderr, r.stdout + r.stderr


# -- issue 27 item 4: a run cut short by a journal that cannot be written says so --------------------------


def test_a_run_cut_short_by_a_journal_write_failure_is_closed_saying_so_and_lists_the_finished_step(
        site: Site) -> None:
    import resource

    out = site.out
    site.write_config([
        {"name": "vm", "quiescence": 0, "max_attempts": 1,
         "steps": [{"shell": f"echo one >> {out}/ran; printf '%04000d\\n' 0"},   # a 4 KB step record
                   {"shell": f"echo two >> {out}/ran"}]},
    ], CHECKS, quiescence=0)
    for i in range(60):   # a journal of some size first, so the note beside it fits under the limit
        site.event(f"warm{i:02d}", "UP", output="x" * 300)
    assert collect(site).returncode == 0
    size = site.journal.stat().st_size
    site.event("web1", "DOWN")
    limit = size + 2500   # the event and the run's start fit; the first step's record does not

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([str(Path(HANDLER).with_name("escalator")), "collect", "--config", str(site.config)],
                       env=handler_env(), capture_output=True, text=True, timeout=60, preexec_fn=cap)
    assert r.returncode == 1, r.stderr
    assert "File too large" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert site.lines("ran") == ["one"]          # nothing started after the failure
    assert site.records("start") and not [x for x in site.records("run") if x.get("outcome") != "skipped"]

    r = collect(site)                          # space again: the next start closes the run as it was
    assert r.returncode in (0, 1), r.stderr
    (start,) = site.records("start")
    (closed,) = [x for x in site.records("run") if x.get("run") == start["run"]]
    assert closed["outcome"] == "failed"
    assert "the journal could not be written" in closed["reason"] and "File too large" in closed["reason"]
    assert "the collector stopped" not in closed["reason"]
    assert closed["steps_done"] == ["levels[0].steps[0]"], closed
    assert closed["not_done"] == ["levels[0].steps[1]"], closed
    (step,) = [s for s in site.records("step") if s.get("run") == start["run"]]
    assert step["exit"] == 0 and step["step"] == "levels[0].steps[0]"
    assert not Path(str(site.journal) + ".unwritten").exists()


def test_a_hold_for_longer_than_a_century_is_refused_saying_out_of_range(site: Site) -> None:
    config(site)
    r = site.cli("hold", "--config", str(site.config), "--host", "web1", "--for", "99999999999999999999h")
    assert r.returncode == 2 and "is out of range: a duration is at most 100 years" in r.stderr, r.stderr
    assert not site.records("hold")


def test_a_foreach_command_too_long_for_one_argument_runs_for_every_host_and_leaves_no_files(site: Site) -> None:
    out = site.out
    site.write_config([   # 110 KB of command: over what one argument of sh -c may be
        {"name": "vm", "quiescence": 0, "max_attempts": 1,
         "steps": [{"shell": f": '{'z' * 110_000}'; printf '%s\\n' {{hosts}} | wc -l > {out}/{{host}}.count",
                    "foreach": "host", "concurrency": 4}]},
    ], CHECKS, quiescence=0)
    for i in range(40):
        spool_line(site, event_line(f"h{i:03d}"))
    tmp = site.root / "tmp"
    tmp.mkdir()
    r = site.cli("collect", "--config", str(site.config), env={"TMPDIR": str(tmp)}, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = sorted(out.glob("*.count"))
    assert len(counts) == 40 and {p.read_text().strip() for p in counts} == {"40"}
    assert all(s["exit"] == 0 and len(s["command"]) < 5000 for s in site.records("step"))
    assert list(tmp.iterdir()) == []
