"""Helpers for end-to-end tests of ``escalator collect`` and the ``escalator`` CLI.

A :class:`Site` is one escalator installation in a temp dir: a config, a
spool, a journal and an ``out`` directory the shell steps write into.  Tests
record events with the real ``escalator-handler`` (as Nagios calls it),
start real collectors, and read the journal.  The ``site`` fixture reaps
every process a test started -- collectors it launched itself, collectors
the handler or the CLI spawned detached (found by the site's unique config
path), and step processes a killed collector left behind (their pid files).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest
import yaml

from escalator_handlers import spool
from spool_fixtures import HANDLER, collector_settled, handler_env, process_gone, sleeping_in_select, wait_for

BIN = Path(sys.executable).parent
ESCALATOR = str(BIN / "escalator")

#: Collector debounce used by these tests (the product default is 30 s).
QUIET = 0.5


def step_pid(site: "Site", name: str) -> str:
    """Shell snippet: record this step's pid (= its process group) as out/NAME.pid."""
    return f"echo $$ > {site.out}/{name}.pid"


class Site:
    """One escalator installation under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "escalator.yaml"
        self.spool = root / "spool"
        self.journal = root / "journal.jsonl"
        self.out = root / "out"
        self.out.mkdir()
        self.procs: List[subprocess.Popen] = []
        self.skip_damaged = 0  # leading journal lines a test damaged on purpose
        self._logs: Dict[int, Path] = {}

    # -- config ------------------------------------------------------------

    def write_config(self, levels: Sequence[dict], checks: Sequence[dict], *,
                     notify: Optional[Sequence[dict]] = None, **top: Any) -> Path:
        """Write the YAML config; ``top`` overrides quiescence, max_delay, limits..."""
        data: Dict[str, Any] = {"spool": str(self.spool), "journal": str(self.journal),
                                "quiescence": QUIET, "max_delay": 10}
        data.update(top)
        data["levels"] = list(levels)
        data["checks"] = list(checks)
        if notify is not None:
            data["notify"] = list(notify)
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, self.config)  # a SIGHUP never sees half a file
        return self.config

    # -- events ------------------------------------------------------------

    def handler_args(self, host: str, state: str, service: Optional[str] = None,
                     state_type: str = "HARD", attempt: int = 1, output: str = "",
                     spawn: bool = False) -> List[str]:
        args = ["--spool", str(self.spool), "--host", host, "--state", state,
                "--state-type", state_type, "--attempt", str(attempt), "--output", output]
        if service:
            args += ["--service", service]
        if spawn:
            args += ["--spawn-collector", "--config", str(self.config)]
        return args

    def event(self, host: str, state: str, service: Optional[str] = None, **kw: Any) -> None:
        """Record one event with the real escalator-handler; it must succeed."""
        r = subprocess.run([HANDLER, *self.handler_args(host, state, service, **kw)],
                           env=handler_env(), capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()

    def nagios_event(self, macros: Dict[str, str], spawn: bool = False) -> None:
        """As Nagios runs a global event handler: only NAGIOS_* macros, plus --spool."""
        args = ["--spool", str(self.spool)]
        if spawn:
            args += ["--spawn-collector", "--config", str(self.config)]
        r = subprocess.run([HANDLER, *args], env=handler_env(macros), capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()

    # -- processes ---------------------------------------------------------

    def start(self, *args: str, daemon: bool = True, verbose: bool = True) -> subprocess.Popen:
        """Start ``escalator collect`` on this site; stderr goes to a log file (see ``log``)."""
        argv = [ESCALATOR, "collect", "--config", str(self.config), *args]
        if daemon:
            argv.append("--daemon")
        if verbose:
            argv.append("-v")
        log = self.root / f"collector-{len(self.procs)}.log"
        with open(log, "wb") as err:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                                 env=handler_env())
        self.procs.append(p)
        self._logs[p.pid] = log
        return p

    def log(self, proc: subprocess.Popen) -> str:
        return self._logs[proc.pid].read_text(errors="replace")

    def cli(self, *args: str, env: Optional[dict] = None, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run the real ``escalator`` console script with this site's config."""
        return subprocess.run([ESCALATOR, *args], env=handler_env(env), capture_output=True, text=True,
                              timeout=timeout)

    def wait_ready(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        """Until ``proc`` holds the lock and sleeps in select() (its idle wait)."""
        def ready() -> bool:
            assert proc.poll() is None, f"collector exited {proc.returncode}: {self.log(proc)}"
            return spool.collector_running(str(self.spool)) == proc.pid and sleeping_in_select(proc.pid)
        wait_for(ready, timeout)

    def wait_settled(self, timeout: float = 15.0) -> None:
        """Until the collector has journalled everything and has nothing left to do (see collector_settled)."""
        wait_for(lambda: collector_settled(self.config, self.spool), timeout, 0.05, what="the collector to settle")

    def collector_pid(self) -> Optional[int]:
        return spool.collector_running(str(self.spool))

    def strays(self) -> List[int]:
        """Pids of processes (not ours to wait for) that run with this site's config or spool."""
        mine = {p.pid for p in self.procs}
        found = []
        needle = str(self.root).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in mine or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if needle in cmd and not process_gone(int(entry)):
                found.append(int(entry))
        return found

    def reap(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for pidfile in self.out.glob("*.pid"):  # step process groups a killed collector left
            try:
                os.killpg(int(pidfile.read_text().strip() or 0), signal.SIGKILL)
            except (ValueError, OSError):
                pass
        for pid in self.strays():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # -- journal and spool ---------------------------------------------------

    def records(self, kind: Optional[str] = None) -> List[dict]:
        """Every journal record (strict: a line that is not a JSON object fails the test)."""
        try:
            text = self.journal.read_text()
        except FileNotFoundError:
            return []
        out = []
        for n, line in enumerate(text.splitlines(keepends=True), 1):
            if not line.endswith("\n"):
                break  # being written right now
            if n <= self.skip_damaged:
                continue
            rec = json.loads(line)
            assert isinstance(rec, dict) and "kind" in rec, f"journal line {n}: {line!r}"
            if kind is None or rec["kind"] == kind:
                out.append(rec)
        return out

    def wait_records(self, kind: str, count: int = 1, timeout: float = 15.0,
                     where: Callable[[dict], bool] = lambda r: True) -> List[dict]:
        """Poll the journal until it holds ``count`` records of ``kind`` matching ``where``."""
        def enough() -> Optional[List[dict]]:
            found = [r for r in self.records(kind) if where(r)]
            return found if len(found) >= count else None
        return wait_for(enough, timeout, interval=0.02)

    def spool_empty(self) -> bool:
        live = self.spool / spool.EVENTS
        taken = [n for n in os.listdir(self.spool) if n.startswith(spool.TAKEN_PREFIX)]
        return not taken and (not live.exists() or live.stat().st_size == 0)

    def lines(self, name: str) -> List[str]:
        try:
            return (self.out / name).read_text().splitlines()
        except FileNotFoundError:
            return []


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runs(records: Sequence[dict], outcome: Optional[str] = None) -> List[dict]:
    """The ``run`` records (not skipped ones unless asked) of a journal."""
    return [r for r in records if r["kind"] == "run"
            and (r.get("outcome") == outcome if outcome else r.get("outcome") != "skipped")]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Send ``sig`` and wait for the exit status."""
    proc.send_signal(sig)
    return proc.wait(timeout=timeout)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.reap()


__all__ = ["ESCALATOR", "HANDLER", "QUIET", "Site", "collector_settled", "cpu_seconds", "handler_env", "process_gone",
           "runs", "site", "sleeping_in_select", "step_pid", "stop", "wait_for"]
