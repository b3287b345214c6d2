"""Helpers for tests of the spool and of escalator-handler: run the real
console script, read what a spool holds, wait for /proc facts, and wait until
a collector has settled (instead of sleeping to show that nothing happens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, List, Optional

from escalator_handlers import spool, spool_reader

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HANDLER = str(BIN / "escalator-handler")
ESCALATOR = str(BIN / "escalator")


def handler_env(extra: Optional[dict] = None) -> dict:
    """The test's environment without NAGIOS_* or ESCALATOR_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAGIOS_", "ESCALATOR_"))}
    env.update(extra or {})
    return env


def run_handler(args: Iterable, env: Optional[dict] = None, **kw) -> subprocess.CompletedProcess:
    """Run the installed escalator-handler as Nagios would; capture its output."""
    return subprocess.run(
        [HANDLER, *args], env=handler_env(env), capture_output=True, timeout=60, **kw
    )


def spool_records(spool_dir) -> List[dict]:
    """Every good record in the spool, taken files first, failing on a corrupt line."""
    out = []
    for path in spool_reader._pending_files(str(spool_dir)):
        for number, rec, raw in spool_reader.read_records(path):
            assert rec is not None, f"{path}:{number}: corrupt line {raw!r}"
            out.append(rec)
    return out


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.005, what: str = ""):
    """Poll until predicate() is truthy; return its value or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def blocked_flock_waiters(path) -> int:
    """How many processes wait (blocked) for an flock on *path*, from /proc/locks."""
    st = os.stat(path)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line and "FLOCK" in line and line.split()[-3] == ident)


def process_gone(pid: int) -> bool:
    """True when *pid* has exited (a zombie nobody reaps counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def sleeping_in_select(pid: int) -> bool:
    """True when the process sleeps in select/poll (the collector's idle wait)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state == "S" and ("select" in wchan or "poll" in wchan)


def nothing_planned(config, horizon: float = 120.0) -> bool:
    """``escalator plan --json``: no run and no record due within ``horizon`` seconds.

    The plan looks one step ahead (to the planner's next wake); something due
    later than the horizon (a limit that frees up in an hour) is beyond any
    test.
    """
    out = subprocess.run([ESCALATOR, "plan", "--json", "--config", str(config)], env=handler_env(),
                         capture_output=True, timeout=60)
    if out.returncode != 0:
        return False
    plan = json.loads(out.stdout)
    if "levels" not in plan and not plan.get("records"):
        return True
    return plan.get("at") is not None and plan["at"] - time.time() > horizon


def collector_settled(config, spool_dir) -> bool:
    """The collector has journalled every event, decided, and has nothing left to do.

    True when the spool is empty and either no collector runs (one without
    --daemon exits when nothing is pending) or the running one sleeps in its
    idle wait while the planner (the collector's own code, via ``escalator
    plan``) has no run or record due.  A wrong run would be due by then, so a
    test asserts "nothing more happened" after this instead of after a sleep.
    """
    spool_dir = str(spool_dir)
    if spool_reader.pending_stats(spool_dir)[0]:
        return False
    pid = spool.collector_running(spool_dir)
    if pid is None:
        return True
    return sleeping_in_select(pid) and nothing_planned(config) and sleeping_in_select(pid)
