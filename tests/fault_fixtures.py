"""Shared helpers for the fault and hostile-input suite (tests/test_faults_*.py).

Runs the real ``escalator`` console script (or ``python -m`` this module,
which adds crash injection, see below) against configs written into
``tmp_path``, reads journals the way an auditor would (line by line, counting
what does not parse), and always reaps the collectors it starts.

Crash injection without a hook in the product and without patching it:
``python fault_fixtures.py POINT COUNT DELAY -- escalator-args...`` runs
``escalator`` with a :class:`CrashingSystem` (the operating system the
collector and its storage see, handed to ``cli.main(system=...)``, as
supervisor's tests swap its options object).  The COUNT-th time the
collector passes POINT it SIGKILLs itself:

``taken``           after the spool was taken (renamed; nothing journalled yet)
``journal[.KIND]``  after a journal append (of a batch with a KIND record) was fsynced
``torn[.KIND]``     in the middle of a journal append: part of the batch is written
``finish``          while removing taken spool files (the first is gone, the rest not)
``finished``        after the taken spool files were removed
``saved``           after a state snapshot was written (and its directory fsynced)
``save-torn``       while writing a snapshot (a half-written temporary file)
``step``            DELAY seconds after a step process was spawned (during the step)
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

from escalator_handlers.spool import TAKEN_PREFIX
from escalator_handlers.system import System
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


def _kind(line: bytes) -> str:
    try:
        return str(json.loads(line).get("kind"))
    except (ValueError, AttributeError):
        return "?"  # the rest of a line a short write left (never seen on a regular file)


class CrashingSystem(System):
    """The real operating system, except that the COUNT-th time the collector passes
    POINT (module docstring) it SIGKILLs itself.  Handed to ``cli.main(system=...)``,
    so the product's own code paths reach it: nothing is patched."""

    def __init__(self, point: str, count: int, delay: float, *, journal: str, state: str, spool: str) -> None:
        self.point, self.count, self.delay = point, count, delay
        self.journal, self.state, self.spool = (os.path.abspath(p) for p in (journal, state, spool))
        self.seen = 0
        self.paths: Dict[int, str] = {}          # open fd -> path, to tell the journal from the rest
        self.kinds: Dict[int, List[str]] = {}    # journal fd -> kinds of the batch being written

    def hit(self, *names: str) -> bool:
        if self.point not in names:
            return False
        self.seen += 1
        return self.seen == self.count

    @staticmethod
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: Optional[int] = None) -> int:
        fd = super().open(path, flags, mode, dir_fd=dir_fd)
        self.paths[fd] = os.path.abspath(path)
        return fd

    def close(self, fd: int) -> None:
        self.paths.pop(fd, None)
        self.kinds.pop(fd, None)
        super().close(fd)

    def write(self, fd: int, data: bytes) -> int:
        path = self.paths.get(fd)
        if path == self.journal:
            kinds = sorted({_kind(line) for line in bytes(data).split(b"\n") if line.strip()})
            self.kinds[fd] = kinds
            if self.hit("torn", *(f"torn.{k}" for k in kinds)):
                cut = random.Random(self.delay).randint(1, len(data) - 1)
                super().write(fd, bytes(data[:cut]))  # part of the batch reaches the disk
                super().fsync(fd)
                self.die()
        elif path is not None and path.startswith(self.state + ".tmp.") and self.hit("save-torn"):
            super().write(fd, b'{"journal": {"dev": ')  # a half-written temporary snapshot
            self.die()
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        path = self.paths.get(fd)
        if path == self.journal and fd in self.kinds:
            kinds = self.kinds.pop(fd)
            if self.hit("journal", *(f"journal.{k}" for k in kinds)):
                self.die()  # the batch is durable, nothing after it happened
        elif path == self.spool and self.hit("finished"):
            self.die()      # the taken spool files are removed, durably
        elif path == os.path.dirname(self.state) and self.hit("saved"):
            self.die()      # a snapshot is written, durably

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        if os.path.basename(dst).startswith(TAKEN_PREFIX) and self.hit("taken"):
            self.die()      # the spool is taken, nothing journalled yet

    def unlink(self, path: str) -> None:
        super().unlink(path)
        if os.path.basename(path).startswith(TAKEN_PREFIX) and self.hit("finish"):
            self.die()      # the first taken file is gone, the rest not

    def spawn(self, argv, **popen):
        proc = super().spawn(argv, **popen)
        if self.hit("step"):
            threading.Timer(self.delay, self.die).start()  # during the step
        return proc


if __name__ == "__main__":
    # python fault_fixtures.py POINT COUNT DELAY -- escalator-args...
    _point, _count, _delay, _sep, *_args = sys.argv[1:]
    assert _sep == "--"
    from escalator_handlers.cli import main
    from escalator_handlers.config import load_config

    _cfg = load_config(_args[_args.index("--config") + 1])
    sys.exit(main(_args, system=CrashingSystem(_point, int(_count), float(_delay), journal=_cfg.journal,
                                               state=_cfg.state_path, spool=_cfg.spool)))
