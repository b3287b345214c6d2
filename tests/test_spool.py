"""The spool: concurrent writers, a concurrent taker, torn lines, the rename
race, refusals and a full disk.  Everything runs against real files, real
locks and real processes."""

from __future__ import annotations

import collections
import fcntl
import json
import os
import resource
import select
import stat
import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator_handlers import spool, spool_reader
from escalator_handlers.errors import SpoolError
from escalator_handlers.system import drain
from spool_fixtures import blocked_flock_waiters, spool_records, wait_for


def event(n: int = 0, **kw) -> dict:
    rec = {"time": 1700000000.0 + n, "host": f"web{n:02d}", "service": "HTTP", "state": "CRITICAL",
           "state_type": "HARD", "attempt": 1, "downtime": 0, "output": f"down {n}"}
    rec.update(kw)
    return rec


def test_append_returns_an_id_and_the_record_round_trips(tmp_path):
    sp = tmp_path / "spool"
    rid = spool.append(str(sp), event(1))
    spool.append(str(sp), {"kind": "pause", "time": 1.5, "reason": "maintenance"})
    (one, two) = list(spool_reader.read_records(str(sp / "events.jsonl")))
    assert one == (1, {**event(1), "id": rid}, one[2])
    assert two[1]["kind"] == "pause" and two[1]["id"] != rid
    raw = (sp / "events.jsonl").read_bytes()
    assert raw.isascii() and raw.count(b"\n") == 2 and raw.endswith(b"\n")


def test_text_that_could_break_a_line_is_escaped(tmp_path):
    sp = tmp_path / "spool"
    nasty = "a\nb\r\x00c\u2028\udcff\U0001F600 \"q\" \\"
    spool.append(str(sp), event(output=nasty, host=nasty))
    lines = (sp / "events.jsonl").read_bytes().split(b"\n")
    assert len(lines) == 2 and lines[1] == b"" and lines[0].isascii()
    (rec,) = spool_records(sp)
    assert rec["output"] == nasty and rec["host"] == nasty


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_spool_is_created_with_the_exact_mode_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        spool.check_spool_dir(str(tmp_path / "a" / "spool"), mode=0o750)
        spool.append(str(tmp_path / "b"), event(), mode=0o700)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "spool").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o700


def test_check_without_create_refuses_a_missing_spool(tmp_path):
    with pytest.raises(SpoolError, match="does not exist"):
        spool.check_spool_dir(str(tmp_path / "nope"), create=False)
    assert not (tmp_path / "nope").exists()


def _symlinked_dir(tmp_path):
    (tmp_path / "real").mkdir(mode=0o750)
    os.symlink(tmp_path / "real", tmp_path / "spool")


def _world_writable_dir(tmp_path):
    (tmp_path / "spool").mkdir()
    os.chmod(tmp_path / "spool", 0o777)


def _file_instead_of_dir(tmp_path):
    (tmp_path / "spool").write_text("x")


def _symlinked_events(tmp_path):
    (tmp_path / "spool").mkdir(mode=0o750)
    os.symlink(tmp_path / "target", tmp_path / "spool" / "events.jsonl")


def _world_writable_events(tmp_path):
    (tmp_path / "spool").mkdir(mode=0o750)
    (tmp_path / "spool" / "events.jsonl").write_text("")
    os.chmod(tmp_path / "spool" / "events.jsonl", 0o666)


def _fifo_events(tmp_path):
    (tmp_path / "spool").mkdir(mode=0o750)
    os.mkfifo(tmp_path / "spool" / "events.jsonl")


def _symlinked_wakeup(tmp_path):
    (tmp_path / "spool").mkdir(mode=0o750)
    os.symlink(tmp_path / "target", tmp_path / "spool" / "wakeup")


@pytest.mark.parametrize("make, message", [
    (_symlinked_dir, r"it is a symbolic link \(to .*real\); point the spool at the real directory"),
    (_world_writable_dir, r"it is world-writable \(mode 0777\); chmod o-w .*spool$"),
    (_file_instead_of_dir, r"it is not a directory"),
    (_symlinked_events, r".*/spool/events.jsonl is a symbolic link; remove .*events.jsonl"),
    (_world_writable_events, r".*/spool/events.jsonl is world-writable \(mode 0666\); chmod o-w .*events.jsonl"),
    (_fifo_events, r".*/spool/events.jsonl is not a regular file"),
    (_symlinked_wakeup, r".*/spool/wakeup is a symbolic link; remove"),
])
def test_unsafe_spools_are_refused_with_a_clear_message(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(SpoolError, match="^refusing to use spool [^:]*/spool: " + message):
        spool.append(str(tmp_path / "spool"), event())
    assert not (tmp_path / "target").exists()
    assert not (tmp_path / "real" / "events.jsonl").exists()


def test_torn_and_junk_lines_are_reported_not_fatal_and_the_next_record_is_intact(tmp_path):
    sp = tmp_path / "spool"
    first = spool.append(str(sp), event(1))
    with open(sp / "events.jsonl", "ab") as f:
        f.write(b'[1,2]\nnot json\n\xff\xfe\n{"time":1,"host":"x","out')  # a writer killed mid-record
    result = list(spool_reader.read_records(str(sp / "events.jsonl")))
    assert [r[1] is None for r in result] == [False, True, True, True, True]
    assert result[3][2] == "\\xff\\xfe" and result[4][2].endswith('"out')
    second = spool.append(str(sp), event(2))
    result = list(spool_reader.read_records(str(sp / "events.jsonl")))
    assert [r[1]["id"] for r in result if r[1]] == [first, second]
    assert result[4][1] is None and result[5][1]["host"] == "web02"
    assert len(spool_reader.pending(str(sp))) == 2


def test_an_overlong_line_is_reported_and_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_reader, "MAX_LINE", 100)
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a":"' + b"x" * 500 + b'"}\n{"b":1}\n')
    result = list(spool_reader.read_records(str(path)))
    assert [(n, r) for n, r, _ in result] == [(1, None), (2, {"b": 1})]


def test_take_renames_the_live_file_and_returns_leftovers_oldest_first(tmp_path):
    sp = tmp_path / "spool"
    spool.append(str(sp), event(1))
    leftover = sp / "taken-00000000000000000001-42.jsonl"  # from a crashed collector
    leftover.write_bytes(spool.encode({**event(0), "id": "old"}))
    taken = spool_reader.take(str(sp))
    assert taken[0] == str(leftover) and len(taken) == 2
    assert not (sp / "events.jsonl").exists()
    assert [r["host"] for r in spool_records(sp)] == ["web00", "web01"]
    (sp / "events.jsonl").write_bytes(b"")
    assert spool_reader.take(str(sp)) == taken  # an empty live file is not taken
    spool_reader.finish(taken)
    assert sorted(os.listdir(sp)) == ["events.jsonl"]
    assert spool_reader.take(str(sp)) == []


def test_a_writer_that_opened_the_file_before_the_collector_took_it_retries_on_the_new_file(tmp_path):
    sp = tmp_path / "spool"
    spool.append(str(sp), event(1))
    live = sp / "events.jsonl"
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # stand-in for a writer in the middle of its record
    errors = []
    writer = threading.Thread(target=lambda: _append_catching(str(sp), event(2), errors), daemon=True)
    writer.start()
    try:
        wait_for(lambda: blocked_flock_waiters(live) == 1)  # opened the old file, waits for its lock
        taken = sp / "taken-00000000000000000002-1.jsonl"
        os.rename(live, taken)  # the collector takes the file meanwhile
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    writer.join(10)
    assert not writer.is_alive() and errors == []
    assert [r["host"] for _, r, _ in spool_reader.read_records(str(taken))] == ["web01"]
    assert [r["host"] for _, r, _ in spool_reader.read_records(str(live))] == ["web02"]


def _append_catching(sp, rec, errors):
    try:
        spool.append(sp, rec)
    except Exception as exc:  # reported through the list, asserted by the test
        errors.append(exc)


def test_a_writer_that_finds_its_file_already_consumed_retries_too(tmp_path):
    sp = tmp_path / "spool"
    spool.append(str(sp), event(1))
    live = sp / "events.jsonl"
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    errors = []
    writer = threading.Thread(target=lambda: _append_catching(str(sp), event(2), errors), daemon=True)
    writer.start()
    try:
        wait_for(lambda: blocked_flock_waiters(live) == 1)
        os.unlink(live)  # taken and finished while the writer waited
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    writer.join(10)
    assert errors == [] and [r["host"] for r in spool_records(sp)] == ["web02"]


def test_file_size_limit_fails_the_append_and_leaves_earlier_records_intact(tmp_path):
    sp = tmp_path / "spool"
    for n in range(3):
        spool.append(str(sp), event(n))
    before = (sp / "events.jsonl").read_bytes()
    script = textwrap.dedent("""
        import sys
        from escalator_handlers import spool
        from escalator_handlers.errors import SpoolError
        try:
            spool.append(sys.argv[1], {"time": 1.0, "host": "big", "output": "x" * 5000})
        except SpoolError as exc:
            print(exc)
            sys.exit(1)
    """)
    limit = len(before) + 100  # room for part of the record only: a short write, then EFBIG

    def fsize_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-c", script, str(sp)], preexec_fn=fsize_limit,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "File too large (the file size limit, RLIMIT_FSIZE, was reached)" in proc.stdout
    assert (sp / "events.jsonl").read_bytes() == before
    spool.append(str(sp), event(9))
    assert [r["host"] for r in spool_records(sp)] == ["web00", "web01", "web02", "web09"]


def test_wakeup_fifo_wakes_a_reader_and_is_harmless_without_one(tmp_path):
    sp = tmp_path / "spool"
    spool.check_spool_dir(str(sp))
    assert spool.wake(str(sp)) is False  # no FIFO yet: nothing, no error
    fd = spool_reader.open_wakeup(str(sp))
    try:
        assert stat.S_ISFIFO(os.stat(sp / "wakeup").st_mode)
        assert stat.S_IMODE(os.stat(sp / "wakeup").st_mode) == 0o620
        assert select.select([fd], [], [], 0)[0] == []  # read-write open: no EOF to spin on
        spool.append(str(sp), event(1))
        spool.append(str(sp), event(2))
        assert select.select([fd], [], [], 5)[0] == [fd]
        assert drain(fd) == 2
        assert drain(fd) == 0
    finally:
        os.close(fd)
    assert spool.wake(str(sp)) is False  # FIFO without a reader: ENXIO, not a hang
    assert len(spool_records(sp)) == 2


def test_pending_and_stats_peek_without_taking(tmp_path):
    sp = tmp_path / "spool"
    assert spool_reader.pending(str(sp)) == [] and spool_reader.pending_stats(str(sp)) == (0, None)
    spool.append(str(sp), event(5))
    spool_reader.take(str(sp))
    spool.append(str(sp), event(3))
    spool.append(str(sp), {"kind": "resume", "time": 2.0})
    assert [r.get("host") for r in spool_reader.pending(str(sp))] == ["web05", "web03", None]
    assert spool_reader.pending_stats(str(sp)) == (3, 1700000005.0)
    assert len(os.listdir(sp)) == 2


_LOCK_HOLDER = """
import sys, os, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
print("released", flush=True)
sys.stdin.close()
"""


def test_collector_running_sees_a_filelock_holder_and_never_creates_the_lock(tmp_path):
    sp = tmp_path / "spool"
    spool.check_spool_dir(str(sp))
    assert spool.collector_running(str(sp)) is None
    assert not (sp / "collector.lock").exists()
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(sp / "collector.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert spool.collector_running(str(sp)) == -1
        (sp / "collector.pid").write_text(f"{holder.pid}\n")
        assert spool.collector_running(str(sp)) == holder.pid
        holder.stdin.close()
        assert holder.stdout.readline() == "released\n"
        # filelock's Unix lock is an flock and leaves the file in place
        assert (sp / "collector.lock").exists()
        assert spool.collector_running(str(sp)) is None
    finally:
        holder.kill()
        holder.wait()


_WRITER = """
import sys
from escalator_handlers.handler import main
spool_dir, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.stdin.read()  # every writer starts when the test closes the pipe
for n in range(count):
    rc = main(["--host", f"w{writer}", "--service", f"s{n}", "--state", "CRITICAL",
               "--output", f"writer {writer} event {n} " + "x" * (n * 37 % 2000), "--spool", spool_dir])
    if rc:
        sys.exit(rc)
"""


class _Taker(threading.Thread):
    """The collector's side of the protocol, in a loop: take, read, finish."""

    def __init__(self, sp: str):
        super().__init__(daemon=True)
        self.sp, self.seen, self.corrupt, self.rounds = sp, [], [], 0
        self.stop, self.error = threading.Event(), None

    def once(self) -> None:
        taken = spool_reader.take(self.sp)
        for path in taken:
            for number, rec, raw in spool_reader.read_records(path):
                (self.seen if rec is not None else self.corrupt).append(rec or (path, number, raw))
        spool_reader.finish(taken)
        self.rounds += 1

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.once()
        except Exception as exc:  # surfaced by the test
            self.error = exc


def _run_writers(sp, commands):
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE) for cmd in commands]
    taker = _Taker(str(sp))
    taker.start()
    try:
        for p in procs:
            p.stdin.close()
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        taker.stop.set()
        taker.join(60)
    assert taker.error is None
    taker.once()  # what arrived after the last round
    return codes, taker


@pytest.mark.integration
def test_32_concurrent_handler_processes_lose_tear_and_duplicate_nothing_under_a_taker(tmp_path):
    sp = tmp_path / "spool"
    spool.check_spool_dir(str(sp))
    cmds = [[sys.executable, "-c", _WRITER, str(sp), str(w), "100"] for w in range(32)]
    codes, taker = _run_writers(sp, cmds)
    assert codes == [0] * 32
    assert taker.corrupt == []
    ids = collections.Counter(r["id"] for r in taker.seen)
    assert len(taker.seen) == 3200 and len(ids) == 3200
    keys = collections.Counter((r["host"], r["service"]) for r in taker.seen)
    assert len(keys) == 3200 and set(keys.values()) == {1}
    for r in taker.seen:
        assert r["output"].startswith(f"writer {r['host'][1:]} event {r['service'][1:]} ")
    assert taker.rounds > 1  # the taker really ran concurrently
    assert [n for n in os.listdir(sp) if n.startswith("taken-")] == []


@pytest.mark.integration
def test_real_handler_executables_in_parallel_are_all_recorded(tmp_path):
    sp = tmp_path / "spool"
    spool.check_spool_dir(str(sp))
    from spool_fixtures import HANDLER

    loop = (f'read _; for n in $(seq 10); do {HANDLER} --host "w$1" --service "s$n" --state 2 '
            f'--output "writer $1 event $n" --spool {sp} || exit $?; done')
    cmds = [["/bin/sh", "-c", loop, "sh", str(w)] for w in range(32)]
    codes, taker = _run_writers(sp, cmds)
    assert codes == [0] * 32 and taker.corrupt == []
    got = sorted((r["host"], r["service"]) for r in taker.seen)
    assert got == sorted((f"w{w}", f"s{n}") for w in range(32) for n in range(1, 11))


def test_records_are_plain_json_lines_readable_without_escalator(tmp_path):
    sp = tmp_path / "spool"
    rid = spool.append(str(sp), event(7))
    with open(sp / "events.jsonl", encoding="ascii") as f:
        assert [json.loads(line) for line in f] == [{**event(7), "id": rid}]


_JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                         st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON_VALUES, max_size=10),
       st.dictionaries(st.text(max_size=3), st.lists(st.integers(), max_size=2), max_size=2))
def test_encode_writes_what_json_dumps_writes_without_importing_json(flat, nested):
    # The handler writes lines without the json module (it costs re and enum at
    # start-up); its lines must stay byte for byte what json.dumps writes.
    for rec in (flat, {**flat, **nested}):
        want = json.dumps(rec, ensure_ascii=True, separators=(",", ":"), allow_nan=False) + "\n"
        assert spool.encode(rec) == want.encode("ascii")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_what_json_refuses(bad):
    with pytest.raises(ValueError):
        spool.encode({"time": bad})
