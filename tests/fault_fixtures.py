"""Shared helpers for the fault and hostile-input suite (tests/test_faults_*.py).

Runs the real ``escalator`` console script (or ``python -m`` this module,
which adds crash injection, see below) against configs written into
``tmp_path``, reads journals the way an auditor would (line by line, counting
what does not parse), and always reaps the collectors it starts.

Crash injection without a hook in the product: ``python fault_fixtures.py
POINT COUNT DELAY -- escalator-args...`` patches a few module functions of
escalator_handlers in that process only and then runs ``escalator``.  The
COUNT-th time the collector passes POINT it SIGKILLs itself:

``taken``           after spool.take returned files (read, nothing journalled yet)
``journal[.KIND]``  after a journal append (of a batch with a KIND record) was fsynced
``torn[.KIND]``     in the middle of a journal append: part of the batch is written
``finish``          while removing taken spool files (the first is gone, the rest not)
``finished``        after the taken spool files were removed
``saved``           after a state snapshot was written
``save-torn``       while writing a snapshot (a half-written temporary file)
``step``            DELAY seconds after a step process started (during the step)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from spool_fixtures import wait_for  # noqa: F401 (the fault tests import it from here)

BIN = Path(sys.executable).parent
ESCALATOR = str(BIN / "escalator")
HANDLER = str(BIN / "escalator-handler")
HERE = Path(__file__).resolve().parent

#: Bytes that must never reach a terminal raw from untrusted input.
CONTROL = {c for c in range(32) if c not in (9, 10)} | {127}


# --- configs ------------------------------------------------------------------

def write_config(tmp: Path, body: str, *, name: str = "escalator.yaml",
                 spool: Optional[Path] = None, journal: Optional[Path] = None) -> Path:
    """tmp/escalator.yaml with spool and journal inside tmp, then ``body`` (YAML)."""
    conf = tmp / name
    conf.write_text(f"spool: {spool or tmp / 'spool'}\n"
                    f"journal: {journal or tmp / 'journal.jsonl'}\n" + body)
    return conf


def clean_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAGIOS_", "ESCALATOR_"))}
    env.update(extra or {})
    return env


def escalator(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 60,
              **kw) -> subprocess.CompletedProcess:
    """Run the installed ``escalator`` console script; capture text output."""
    return subprocess.run([ESCALATOR, *args], env=clean_env(env), capture_output=True,
                          timeout=timeout, **kw)


def handler(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([HANDLER, *args], env=clean_env(env), capture_output=True, timeout=60)


# --- journals -----------------------------------------------------------------

def read_journal(path: Path) -> Tuple[List[dict], int]:
    """(records, number of lines that are not a JSON object); every byte must be ASCII."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    data.decode("ascii")  # raises on a non-ASCII byte: the journal is ASCII JSON
    records, bad = [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict) and "kind" in rec:
            records.append(rec)
        else:
            bad += 1
    return records, bad


def of_kind(records: Sequence[dict], *kinds: str) -> List[dict]:
    return [r for r in records if r.get("kind") in kinds]


def assert_no_control_chars(text: bytes, what: str) -> None:
    bad = sorted({b for b in text if b in CONTROL})
    assert not bad, f"{what} contains raw control bytes {bad}: {text[:2000]!r}"


# --- processes ----------------------------------------------------------------

def reap(proc: "subprocess.Popen", grace: float = 5.0) -> None:
    """End a process we started: SIGTERM, then SIGKILL after ``grace``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Daemon:
    """``escalator collect --daemon`` as a context manager that always reaps it."""

    def __init__(self, conf: Path, *extra: str, env: Optional[Dict[str, str]] = None,
                 stdin=subprocess.DEVNULL) -> None:
        self.conf = conf
        self.spool = None
        self.proc = subprocess.Popen(
            [ESCALATOR, "collect", "--daemon", "--config", str(conf), *extra],
            env=clean_env(env), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        reap(self.proc)
        for f in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if f is not None:
                f.close()

    def stop(self, timeout: float = 10.0) -> Tuple[int, str]:
        """SIGTERM, wait, return (exit status, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode("utf-8", "replace")


def lock_holder(spool: Path) -> Optional[int]:
    from escalator_handlers import spool as spoolmod

    return spoolmod.collector_running(str(spool))


# --- crash injection ----------------------------------------------------------

def faulty(point: str, count: int, delay: float, *args: str) -> List[str]:
    """argv that runs ``escalator *args`` with crash injection (module docstring)."""
    return [sys.executable, str(HERE / "fault_fixtures.py"), point, str(count), f"{delay:.3f}", "--", *args]


def _install(point: str, count: int, delay: float) -> None:
    from escalator_handlers import journal, spool_reader, store
    from escalator_handlers.steps import runner

    seen = {"n": 0}

    def hit(*names: str) -> bool:
        if point not in names:
            return False
        seen["n"] += 1
        return seen["n"] == count

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached

    orig_take = spool_reader.take

    def take(spool_dir):
        paths = orig_take(spool_dir)
        if paths and hit("taken"):
            die()
        return paths

    orig_finish = spool_reader.finish

    def finish(paths):
        if paths and hit("finish"):
            os.unlink(paths[0])
            die()
        orig_finish(paths)
        if paths and hit("finished"):
            die()

    orig_append = journal.append

    def append(path, records):
        records = list(records)
        kinds = sorted({str(r.get("kind")) for r in records})
        if records and hit("torn", *(f"torn.{k}" for k in kinds)):
            data = "".join(journal.dumps(r) + "\n" for r in records).encode("ascii")
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            cut = random.Random(delay).randint(1, len(data) - 1)
            os.write(fd, data[:cut])
            os.fsync(fd)
            die()
        end = orig_append(path, records)
        if records and hit("journal", *(f"journal.{k}" for k in kinds)):
            die()
        return end

    orig_save = store.save

    def save(cfg, state, position):
        if hit("save-torn"):
            with open(f"{cfg.state_path}.tmp.{os.getpid()}", "w") as f:
                f.write('{"journal": {"dev": ')
            die()
        orig_save(cfg, state, position)
        if hit("saved"):
            die()

    orig_run_process = runner.run_process

    def run_process(argv, **kw):
        if hit("step"):
            threading.Timer(delay, die).start()
        return orig_run_process(argv, **kw)

    spool_reader.take, spool_reader.finish = take, finish
    journal.append, store.save, runner.run_process = append, save, run_process


if __name__ == "__main__":
    # python fault_fixtures.py POINT COUNT DELAY -- escalator-args...
    _point, _count, _delay, _sep, *_args = sys.argv[1:]
    assert _sep == "--"
    _install(_point, int(_count), float(_delay))
    from escalator_handlers.cli import main

    sys.exit(main(_args))
