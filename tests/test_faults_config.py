"""Bad configs and bad files: truncated YAML, a config broken under a running
daemon, spools that are not what they should be, full disks, and files
others could write (refused like sshd's StrictModes)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from escalator_handlers import spool, spool_reader
from escalator_handlers.config.load import validate
from fault_fixtures import (
    Daemon, escalator, handler, lock_holder, of_kind, read_journal, wait_for, write_config,
)

pytestmark = pytest.mark.faults

HEALING = """quiescence: 0s
levels:
  - name: vm
    quiescence: 0s
    max_attempts: 2
    steps:
      - shell: echo {tag} {{host}} >> '{marker}'; {handler} --spool '{spool}' --host {{host}} --service HTTP --state OK
        foreach: host
checks:
  - {{service: HTTP, level: vm}}
  - {{host: "db*", service: "*", level: vm}}
notify:
  - shell: echo "notify {{summary}}" >> '{marker}'
limits:
  max_runs_per_hour: 100
  max_targets: 10
"""


def healing_config(tmp: Path, tag: str = "old") -> Path:
    from fault_fixtures import HANDLER

    return write_config(tmp, HEALING.format(tag=tag, marker=tmp / "marker", handler=HANDLER,
                                            spool=tmp / "spool"))


def event(tmp: Path, host: str, state: str = "CRITICAL", service: str = "HTTP") -> str:
    return spool.append(str(tmp / "spool"), {"time": time.time(), "host": host, "service": service,
                                             "state": state, "output": "test"})


def marker(tmp: Path) -> list:
    path = tmp / "marker"
    return path.read_text().splitlines() if path.exists() else []


# --- truncated YAML -----------------------------------------------------------

def test_a_config_truncated_anywhere_is_valid_or_reported_never_a_crash(tmp_path):
    text = healing_config(tmp_path).read_bytes()
    broken = 0
    for cut in range(0, len(text), 3):
        path = tmp_path / "cut.yaml"
        path.write_bytes(text[:cut])
        problems = validate(str(path))
        for p in problems:
            assert p.file == str(path) and "internal error" not in p.message, p
        broken += bool(problems)
    assert broken > len(text) // 6


def test_collect_with_a_truncated_config_exits_2_with_file_and_line_and_touches_nothing(tmp_path):
    conf = healing_config(tmp_path)
    text = conf.read_text()
    conf.write_text(text[:text.index("foreach: host") + 5])
    ids = [event(tmp_path, "web1")]
    for args in (["collect"], ["collect", "--daemon"], ["validate"], ["status"]):
        r = escalator(*args, "--config", str(conf))
        err = r.stderr.decode()
        # status is the dashboard: with the spool and journal lines intact it works, and warns.
        assert r.returncode == (0 if args == ["status"] else 2), (args, r)
        assert f"{conf}:" in err and "Traceback" not in err, err
    assert not (tmp_path / "journal.jsonl").exists()
    assert [r["id"] for r in spool_reader.pending(str(tmp_path / "spool"))] == ids


# --- a config broken under a running daemon -------------------------------------

def test_sighup_with_a_broken_config_keeps_the_old_one_and_journals_the_rejection(tmp_path):
    conf = healing_config(tmp_path, "old")
    journal = tmp_path / "journal.jsonl"

    def records(kind):
        return of_kind(read_journal(journal)[0], kind)

    with Daemon(conf, "-v") as d:
        wait_for(lambda: lock_holder(tmp_path / "spool"), 15)
        good = conf.read_text()
        conf.write_text(good[:good.index("checks:") + 12])  # truncated mid-rule
        d.proc.send_signal(signal.SIGHUP)
        (rej,) = wait_for(lambda: records("config"), 10, what="the rejection")
        assert rej["outcome"] == "rejected" and f"{conf}:" in rej["reason"]
        # The daemon still acts, with the old config.
        event(tmp_path, "web1")
        wait_for(lambda: "old web1" in marker(tmp_path), 15, what="a run with the old config")
        # A world-writable config is no better than a broken one.
        conf.write_text(good.replace("echo old", "echo new"))
        conf.chmod(0o666)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(records("config")) == 2, 10)
        assert records("config")[1]["outcome"] == "rejected"
        assert "world-writable" in records("config")[1]["reason"]
        conf.chmod(0o644)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(records("config")) == 3, 10)
        assert records("config")[2]["outcome"] == "reloaded"
        event(tmp_path, "web2")
        wait_for(lambda: "new web2" in marker(tmp_path), 15, what="a run with the new config")
        assert d.proc.poll() is None
        rc, err = d.stop()
    assert rc == 0 and "config reload failed, keeping the old config" in err
    assert marker(tmp_path) == ["old web1", "new web2"]


# --- spools that are not directories we may use --------------------------------

def _regular_file(sp: Path) -> None:
    sp.write_text("not a spool\n")


def _symlink(sp: Path) -> None:
    real = sp.parent / "real-spool"
    real.mkdir(mode=0o750)
    sp.symlink_to(real)


def _events_is_a_directory(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    (sp / "events.jsonl").mkdir()


def _events_is_a_symlink(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    (sp / "events.jsonl").symlink_to("/etc/passwd")


def _world_writable_dir(sp: Path) -> None:
    sp.mkdir()
    sp.chmod(0o777)


def _world_writable_events(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    (sp / "events.jsonl").write_text("")
    (sp / "events.jsonl").chmod(0o666)


def _taken_is_a_directory(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    (sp / "taken-00000000000000000001-1.jsonl").mkdir()


def _taken_is_a_symlink(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    (sp / "taken-00000000000000000001-1.jsonl").symlink_to("/etc/passwd")


def _taken_is_a_fifo(sp: Path) -> None:
    sp.mkdir(mode=0o750)
    os.mkfifo(sp / "taken-00000000000000000001-1.jsonl")


@pytest.mark.parametrize("make, message", [
    (_regular_file, "it is not a directory"),
    (_symlink, "it is a symbolic link"),
    (_events_is_a_directory, "events.jsonl is not a regular file"),
    (_events_is_a_symlink, "events.jsonl is a symbolic link"),
    (_world_writable_dir, "it is world-writable (mode 0777); chmod o-w"),
    (_world_writable_events, "is world-writable (mode 0666); chmod o-w"),
    (_taken_is_a_directory, "taken-00000000000000000001-1.jsonl is not a regular file; remove"),
    (_taken_is_a_symlink, "taken-00000000000000000001-1.jsonl is a symbolic link; remove"),
    (_taken_is_a_fifo, "taken-00000000000000000001-1.jsonl is not a regular file; remove"),
])
def test_an_unusable_spool_is_refused_with_a_clear_message_by_collector_and_handler(tmp_path, make, message):
    sp = tmp_path / "spool"
    make(sp)
    conf = healing_config(tmp_path)
    passwd = Path("/etc/passwd").read_bytes()
    r = escalator("collect", "--config", str(conf))
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert err.startswith("Error: ") and message in err and "Traceback" not in err and "internal error" not in err, err
    assert err.count("\n") == 1
    h = handler("--spool", str(sp), "--host", "web1", "--state", "DOWN")
    if make.__name__.startswith("_taken"):
        assert h.returncode == 0  # the handler writes events.jsonl only; the collector refuses
    else:
        said = h.stderr.decode()
        assert h.returncode == 1 and said.startswith("escalator-handler: cannot record event for web1: ")
        assert str(sp) in said and said.count("\n") == 1, said
    assert Path("/etc/passwd").read_bytes() == passwd
    assert not (tmp_path / "journal.jsonl").exists()


# --- world-writable config ------------------------------------------------------

@pytest.mark.parametrize("command", [["validate"], ["collect"], ["status"]])
def test_a_world_writable_config_is_refused_like_sshd_strictmodes(tmp_path, command):
    conf = healing_config(tmp_path)
    conf.chmod(0o666)
    event(tmp_path, "web1")
    r = escalator(*command, "--config", str(conf))
    assert r.returncode == 2
    assert f"refusing config {conf}: it is world-writable (mode 0666); chmod o-w {conf}" in r.stderr.decode()
    assert not (tmp_path / "marker").exists() and not (tmp_path / "journal.jsonl").exists()
    # Through a symlink too: the file it points to is what counts.
    link = tmp_path / "link.yaml"
    link.symlink_to(conf)
    r = escalator(*command, "--config", str(link))
    assert r.returncode == 2 and "world-writable" in r.stderr.decode()
    conf.chmod(0o664)  # group-writable is the admin's choice (like a shared /etc/escalator)
    assert escalator("validate", "--config", str(conf)).returncode == 0


# --- full disks -----------------------------------------------------------------

@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs at tmp_path/fs (root only); unmounted afterwards."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0750", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: mount said {r.stderr.strip()!r}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> Path:
    """Fill the file system of ``path`` up; return the filler file."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_the_handler_loudly_and_keeps_earlier_events(tiny_fs):
    sp = tiny_fs / "spool"
    ids = [spool.append(str(sp), {"time": time.time(), "host": f"h{i}", "state": "DOWN"}) for i in range(5)]
    fill(tiny_fs)
    r = handler("--spool", str(sp), "--host", "late", "--state", "DOWN", "--output", "x" * 60000)
    assert r.returncode == 1
    assert b"No space left on device" in r.stderr and b"late" in r.stderr
    assert [x["id"] for x in spool_reader.pending(str(sp))] == ids


def test_a_full_disk_while_journalling_keeps_the_events_in_the_spool(tiny_fs, tmp_path):
    conf = write_config(tmp_path, HEALING.format(tag="x", marker=tmp_path / "marker", handler="true",
                                                 spool=tiny_fs / "spool"),
                        spool=tiny_fs / "spool", journal=tiny_fs / "journal.jsonl")
    ids = [spool.append(str(tiny_fs / "spool"), {"time": time.time(), "host": f"web{i}", "service": "HTTP",
                                                 "state": "CRITICAL", "output": "o" * 2000})
           for i in range(20)]
    filler = fill(tiny_fs)
    r = escalator("collect", "--config", str(conf))
    err = r.stderr.decode()
    assert r.returncode == 1 and "No space left on device" in err and "journal" in err, err
    assert "Traceback" not in err
    assert sorted(x["id"] for x in spool_reader.pending(str(tiny_fs / "spool"))) == sorted(ids)
    assert not (tmp_path / "marker").exists()  # nothing acted on what could not be recorded
    filler.unlink()
    r = escalator("collect", "--config", str(conf))
    assert r.returncode == 0, r.stderr
    records, bad = read_journal(tiny_fs / "journal.jsonl")
    assert bad == 0 and sorted(e["id"] for e in of_kind(records, "event")) == sorted(ids)
    assert spool_reader.pending(str(tiny_fs / "spool")) == []


def test_a_file_size_limit_hit_during_a_run_loses_nothing_and_the_restart_says_what_ran(tmp_path):
    conf = healing_config(tmp_path)
    ids = [event(tmp_path, f"web{i}") for i in range(4)]
    journal = tmp_path / "journal.jsonl"
    assert escalator("collect", "--config", str(conf)).returncode == 0
    records, _ = read_journal(journal)
    assert len(of_kind(records, "start")) == 1
    ids += [event(tmp_path, f"web{i}") for i in range(4, 8)]
    size = journal.stat().st_size
    limit = size + 2000  # the new events and the start fit; the steps' records do not all fit

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = escalator("collect", "--config", str(conf), preexec_fn=cap)
    err = r.stderr.decode()
    assert r.returncode == 1 and "File too large" in err and "Traceback" not in err, err
    assert journal.stat().st_size <= limit
    records, bad = read_journal(journal)
    assert bad == 0  # the failed append was cut back
    journalled = {e["id"] for e in of_kind(records, "event")}
    pending = {x["id"] for x in spool_reader.pending(str(tmp_path / "spool"))}
    assert set(ids) <= journalled | pending
    r = escalator("collect", "--config", str(conf))
    assert r.returncode in (0, 1), r.stderr
    records, bad = read_journal(journal)
    journalled = [e["id"] for e in of_kind(records, "event")]  # ours and the steps' OK events
    assert bad == 0 and set(ids) <= set(journalled) and len(journalled) == len(set(journalled))
    starts = {s["run"] for s in of_kind(records, "start")}
    closed = [x for x in of_kind(records, "run") if x.get("run") in starts]
    assert len(closed) == len(starts)
    assert any(x.get("interrupted") for x in closed)
