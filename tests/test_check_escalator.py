"""check_escalator end to end: real spool, journal and collector; plugin run as Nagios would.

Each test builds the escalator's state with the project's own code -- events
through ``spool.append`` (the handler's write path), operator actions through
``control.control`` (what ``escalator pause``/``hold`` call), runs and
verdicts by the real collector (in-process at a chosen clock, or a real
``escalator collect --daemon``) running real shell steps -- then starts the
installed console script as a subprocess from / with a minimal environment
and asserts the exact status line and exit code.  Times in status lines are
matched as ``~N`` (N plus or minus 2), because the plugin reads the clock a
little after the test set things up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from escalator_handlers import __version__, spool, spool_reader, storage
from escalator_handlers.collector import Collector
from escalator_handlers.control import control
from escalator_handlers.config import Config, load_config
from escalator_handlers.event import Event

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
CONSOLE_SCRIPT = BIN / "check_escalator"
PLUGIN_SCRIPT = REPO / "plugins" / "check_escalator"
# Nagios starts plugins with a small environment and no terminal.
NAGIOS_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
PERF_IDLE = ("backlog=0;;;0 oldest_age=0s;120;600;0 runs_last_hour={runs};;;0;6 "
             "failing={failing};;;0 quiescence_left={quiet}s;;;0 "
             "approvals_waiting=0;;;0 approval_age=0s;;;0")

pytestmark = pytest.mark.integration

CONFIG = """\
spool: {root}/spool
journal: {root}/journal.jsonl
quiescence: 30s
levels:
  - name: vm
    quiescence: 1m
    max_attempts: 1
    steps:
      - shell: {vm_step}
        foreach: host
  - name: deploy
    quiescence: 1m
    steps:
      - shell: {deploy_step}
checks:
  - {{service: PING, level: vm}}
  - {{service: "Smoke*", level: deploy}}
limits:
  max_runs_per_hour: 6
"""


# --- helpers -----------------------------------------------------------------------

def make_config(root: Path, vm_step: str = "'true'", deploy_step: str = "'true'", quiet: str = "30s",
                spool: bool = True) -> Config:
    path = root / "escalator.yaml"
    text = CONFIG.format(root=root, vm_step=vm_step, deploy_step=deploy_step)
    path.write_text(text.replace("quiescence: 30s", f"quiescence: {quiet}", 1))
    if spool:  # as an installed site has it (a missing spool is CRITICAL)
        (root / "spool").mkdir(mode=0o750, exist_ok=True)
        Path(root / "journal.jsonl").touch(mode=0o640)  # as the collector creates it
    return load_config(str(path))


def run(*args: str, plugin: Path = CONSOLE_SCRIPT, env: dict | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(plugin), *args], cwd="/", env={**NAGIOS_ENV, **(env or {})},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def check(cfg: Config, *args: str, **kw) -> subprocess.CompletedProcess:
    """The plugin as plugins.cfg runs it: --config, -w 120 -c 600, -t 10."""
    return run("--config", cfg.source, "-w", "120", "-c", "600", "-t", "10", *args, **kw)


def assert_line(actual: str, expected: str) -> None:
    """Exact match, except that ``~N`` in ``expected`` matches a number within 2 of N."""
    parts = re.split(r"~(\d+)", expected)
    pattern = "".join(re.escape(p) if i % 2 == 0 else r"(\d+)" for i, p in enumerate(parts))
    m = re.fullmatch(pattern, actual)
    assert m, f"\n  actual:   {actual}\n  expected: {expected}"
    for got, want in zip(m.groups(), parts[1::2]):
        assert abs(int(got) - int(want)) <= 2, f"{got} is not ~{want} in: {actual}"


def event(host: str, service: str | None, state: str, t: float, state_type: str = "HARD") -> dict:
    return Event(time=t, host=host, service=service, state=state, state_type=state_type,
                 attempt=2, output=f"{state} - test").to_dict()


def spool_event(cfg: Config, *args, **kw) -> None:
    """Record an event the way escalator-handler does."""
    spool.append(cfg.spool, event(*args, **kw), mode=cfg.spool_mode)


def collect_at(cfg: Config, now: float) -> None:
    """One pass of `escalator collect` with its clock at ``now``: take the spool,
    decide, run steps, journal, until only waiting is left (the wait is skipped)."""
    c = Collector(cfg, clock=lambda: now)
    c.storage.leadership.acquire(1.0)
    try:
        c._recover()
        # The debounce runs on the collector's clock: these tests' events were taken
        # when they happened, as a collector that was running would have.
        stamps = [float(r["time"]) for r in spool_reader.pending(cfg.spool) if "time" in r]
        if stamps:
            c.clock = lambda: min(max(stamps), now)
            c.ingest()
            c.clock = lambda: now
        while c.cycle() is None:  # None: a run just finished, plan again
            pass
    finally:
        c._save()
        c.storage.leadership.release()


def ingest_at(cfg: Config, now: float) -> None:
    """A collector with its clock at ``now`` takes the spool into the journal, deciding nothing."""
    c = Collector(cfg, clock=lambda: now)
    c.storage.leadership.acquire(1.0)
    try:
        c._recover()
        c.ingest()
    finally:
        c._save()
        c.storage.leadership.release()


def operator(cfg: Config, kind: str, **fields) -> None:
    """What `escalator pause/hold/...` records."""
    control(cfg, {"kind": kind, "time": time.time(), "user": "test", **fields})


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator:
    """Start a real `escalator collect --daemon` for a config; always reaped."""
    procs = []

    def start(cfg: Config) -> subprocess.Popen:
        proc = subprocess.Popen([str(BIN / "escalator"), "collect", "--daemon", "--config", cfg.source],
                                cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "collector.stderr", "w"),
                                start_new_session=True)
        procs.append(proc)
        wait_for(lambda: spool.collector_running(cfg.spool) == proc.pid or proc.poll() is not None)
        assert proc.poll() is None, (tmp_path / "collector.stderr").read_text()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.01)
    return value


def journal_runs(cfg: Config) -> list:
    return storage.recent(cfg, ("run",))


# --- OK ------------------------------------------------------------------------------

def test_missing_spool_and_journal_are_critical_until_a_collector_ran_once(tmp_path):
    # A spool and journal nothing uses: events recorded elsewhere would sit unseen.
    cfg = make_config(tmp_path, spool=False)
    done = check(cfg)
    assert done.returncode == 2, done.stdout
    assert done.stdout.startswith(f"ESCALATOR CRITICAL - spool directory {tmp_path}/spool does not exist"), done.stdout
    assert f"journal {tmp_path}/journal.jsonl does not exist" in done.stdout
    assert not (tmp_path / "spool").exists(), "the plugin must not create anything"
    collect = subprocess.run([str(Path(sys.executable).with_name("escalator")), "collect", "--config", cfg.source],
                             capture_output=True, text=True, timeout=60)
    assert collect.returncode == 0, collect.stderr
    done = check(cfg)
    assert done.stdout.splitlines() == [
        "ESCALATOR OK - idle, 0 pending, no runs yet | " + PERF_IDLE.format(runs=0, failing=0, quiet=0)]
    assert done.returncode == 0, done.stderr


def test_idle_after_a_converged_run_is_ok(tmp_path):
    cfg = make_config(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "Smoke test", "CRITICAL", now - 400)
    collect_at(cfg, now - 300)                    # runs deploy; quiet for 1m
    spool_event(cfg, "web01", "Smoke test", "OK", now - 290)
    collect_at(cfg, now - 200)                    # judges it: converged
    assert [r["outcome"] for r in journal_runs(cfg)] == ["ok"]
    done = check(cfg)
    assert_line(done.stdout.rstrip("\n"), "ESCALATOR OK - idle, 0 pending, last run ok 5m ago | "
                + PERF_IDLE.format(runs=1, failing=0, quiet=0))
    assert done.returncode == 0


# --- backlog -------------------------------------------------------------------------

def test_backlog_older_than_w_is_warning(tmp_path):
    cfg = make_config(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "PING", "CRITICAL", now - 90)
    spool_event(cfg, "web02", "PING", "CRITICAL", now - 80)
    done = run("--config", cfg.source, "-w", "60", "-c", "600")
    assert_line(done.stdout.rstrip("\n"),
                "ESCALATOR WARNING - oldest ~90s (outside range 0:60), collector not running, "
                "2 pending, 2 failing checks (level vm), no runs yet | backlog=2;;;0 "
                "oldest_age=~90s;60;600;0 runs_last_hour=0;;;0;6 failing=2;;;0 quiescence_left=0s;;;0 "
                "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 1


def test_backlog_older_than_c_is_critical(tmp_path):
    cfg = make_config(tmp_path)
    spool_event(cfg, "web01", "PING", "CRITICAL", time.time() - 400)
    # --dead-after above the age: only the -c threshold speaks.
    done = run("--config", cfg.source, "-w", "60", "-c", "300", "--dead-after", "1000")
    assert_line(done.stdout.splitlines()[0],
                "ESCALATOR CRITICAL - oldest ~400s (outside range 0:300), collector not running, "
                "1 pending, 1 failing check (level vm), no runs yet | backlog=1;;;0 "
                "oldest_age=~400s;60;300;0 runs_last_hour=0;;;0;6 failing=1;;;0 quiescence_left=0s;;;0 "
                "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 2


def test_backlog_count_thresholds(tmp_path):
    cfg = make_config(tmp_path)
    now = time.time()
    for i in range(3):
        spool_event(cfg, f"web0{i}", "PING", "CRITICAL", now - 5)
    done = run("--config", cfg.source, "--backlog-warning", "2", "--backlog-critical", "10")
    assert_line(done.stdout.rstrip("\n"),
                "ESCALATOR WARNING - 3 pending (outside range 0:2), collector not running, oldest ~5s, "
                "3 failing checks (level vm), no runs yet | backlog=3;2;10;0 oldest_age=~5s;;;0 "
                "runs_last_hour=0;;;0;6 failing=3;;;0 quiescence_left=0s;;;0 "
                "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 1
    assert run("--config", cfg.source, "--backlog-critical", "@3:5").returncode == 2


def test_events_waiting_with_no_collector_is_critical(tmp_path):
    cfg = make_config(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "PING", "CRITICAL", now - 400)
    spool_event(cfg, "web02", "PING", "CRITICAL", now - 399)
    done = check(cfg)  # default --dead-after: 2 x quiescence 30s + 60s = 120s
    assert_line(done.stdout.splitlines()[0],
                "ESCALATOR CRITICAL - collector not running with events waiting over 120s, "
                "oldest ~400s (outside range 0:120), 2 pending, 2 failing checks (level vm), "
                "no runs yet | backlog=2;;;0 "
                "oldest_age=~400s;120;600;0 runs_last_hour=0;;;0;6 failing=2;;;0 quiescence_left=0s;;;0 "
                "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 2


def test_young_backlog_without_collector_is_ok(tmp_path):
    cfg = make_config(tmp_path)
    spool_event(cfg, "web01", "PING", "OK", time.time() - 3)  # a handler is starting one
    done = check(cfg)
    assert_line(done.stdout.split(" | ")[0],
                "ESCALATOR OK - collector not running, 1 pending, oldest ~3s, no runs yet")
    assert done.returncode == 0


# --- the collector ---------------------------------------------------------------------

@pytest.mark.slow
def test_live_collector_failed_run_is_critical_until_the_checks_recover(tmp_path, daemon):
    cfg = make_config(tmp_path, deploy_step="'exit 3'", quiet="0.2s")  # the debounce is on arrival
    proc = daemon(cfg)
    done = check(cfg)
    assert done.stdout.split(" | ")[0] == \
        f"ESCALATOR OK - collector running (pid {proc.pid}), 0 pending, no runs yet"
    assert done.returncode == 0

    spool_event(cfg, "web01", "Smoke test", "CRITICAL", time.time())
    wait_for(lambda: journal_runs(cfg))
    assert journal_runs(cfg)[-1]["outcome"] == "failed"
    done = check(cfg)
    assert_line(done.stdout.rstrip("\n"),
                "ESCALATOR CRITICAL - last run failed ~0s ago, still failing: web01/Smoke test, "
                f"collector running (pid {proc.pid}), 0 pending, 1 failing check (level deploy), "
                "quiescence ~60s left | backlog=0;;;0 oldest_age=0s;120;600;0 runs_last_hour=1;;;0;6 "
                "failing=1;;;0 quiescence_left=~60s;;;0 "
                "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 2

    spool_event(cfg, "web01", "Smoke test", "OK", time.time())
    wait_for(lambda: spool_reader.pending_stats(cfg.spool)[0] == 0)
    done = check(cfg)
    assert_line(done.stdout.split(" | ")[0],
                f"ESCALATOR OK - collector running (pid {proc.pid}), 0 pending, quiescence ~60s left, "
                "last run failed ~0s ago, checks recovered")
    assert done.returncode == 0


def test_failed_run_with_checks_still_failing_is_critical(tmp_path):
    cfg = make_config(tmp_path, deploy_step="'echo deploy broke >&2; exit 3'")
    now = time.time()
    spool_event(cfg, "web01", "Smoke test", "CRITICAL", now - 100)
    collect_at(cfg, now - 10)   # the run fails; its quiescence lasts until now + 50
    done = check(cfg, "-v")
    out = done.stdout.splitlines()
    assert_line(out[0], "ESCALATOR CRITICAL - last run failed ~10s ago, still failing: web01/Smoke test, "
                        "collector not running with work due in ~50s, 0 pending, "
                        "1 failing check (level deploy), quiescence ~50s left | backlog=0;;;0 "
                        "oldest_age=0s;120;600;0 runs_last_hour=1;;;0;6 failing=1;;;0 "
                        "quiescence_left=~50s;;;0 "
                        "approvals_waiting=0;;;0 approval_age=0s;;;0")
    assert done.returncode == 2
    assert out[1] == "collector: not running (dead when events wait over 120s)"
    assert "failing: web01/Smoke test CRITICAL HARD -> deploy" in out
    last = [line for line in out if line.startswith("last run: ")]
    assert len(last) == 1 and "RUN END  failed: levels deploy: step levels[1].steps[0] of level " \
                              "deploy failed: exit status 3" in last[0], out


def test_work_due_with_no_collector_is_critical(tmp_path):
    cfg = make_config(tmp_path, deploy_step="'exit 3'")
    now = time.time()
    spool_event(cfg, "web01", "Smoke test", "CRITICAL", now - 200)
    collect_at(cfg, now - 100)   # quiescence ended at now - 40: a verdict is due, nobody judges
    done = check(cfg)
    assert_line(done.stdout.split(" | ")[0],
                "ESCALATOR CRITICAL - collector not running with work due now, last run failed ~100s ago, "
                "still failing: web01/Smoke test, 0 pending, 1 failing check (level deploy)")
    assert done.returncode == 2


def test_failed_run_whose_checks_recovered_is_ok(tmp_path):
    cfg = make_config(tmp_path, deploy_step="'exit 3'")
    now = time.time()
    spool_event(cfg, "web01", "Smoke test", "CRITICAL", now - 200)
    collect_at(cfg, now - 100)
    spool_event(cfg, "web01", "Smoke test", "OK", now - 50)
    collect_at(cfg, now - 30)    # verdict: converged after all
    done = check(cfg)
    assert_line(done.stdout.rstrip("\n"),
                "ESCALATOR OK - idle, 0 pending, last run failed ~100s ago, checks recovered | "
                + PERF_IDLE.format(runs=1, failing=0, quiet=0))
    assert done.returncode == 0


# --- pause and holds -----------------------------------------------------------------

def test_paused_is_warning_with_the_reason(tmp_path):
    cfg = make_config(tmp_path)
    operator(cfg, "pause", reason="maintenance window")
    done = check(cfg)
    assert done.stdout.splitlines() == [
        "ESCALATOR WARNING - paused: maintenance window, idle, 0 pending, no runs yet | "
        + PERF_IDLE.format(runs=0, failing=0, quiet=0)]
    assert done.returncode == 1
    operator(cfg, "resume")
    assert check(cfg).returncode == 0


def test_level_held_after_exhausted_attempts_is_warning(tmp_path):
    cfg = make_config(tmp_path)  # vm: max_attempts 1, on_exhausted notify
    now = time.time()
    spool_event(cfg, "web01", "PING", "CRITICAL", now - 400)
    collect_at(cfg, now - 300)   # runs vm, deploy: ok
    collect_at(cfg, now - 200)   # not converged: level vm exhausted, held
    done = check(cfg, "-v")
    out = done.stdout.splitlines()
    assert_line(out[0], "ESCALATOR WARNING - level vm held: exhausted after 1 attempt, idle, 0 pending, "
                        "1 failing check (level vm), last run ok 5m ago | "
                        + PERF_IDLE.format(runs=1, failing=1, quiet=0))
    assert done.returncode == 1
    assert "held level: vm: level vm exhausted after 1 attempt" in out
    assert "failing: web01/PING CRITICAL HARD -> vm" in out


def test_held_host_is_warning_naming_host_and_reason(tmp_path):
    cfg = make_config(tmp_path)
    spool_event(cfg, "web01", "PING", "CRITICAL", time.time() - 100)
    ingest_at(cfg, time.time() - 100)  # taken when it happened: quiet since
    operator(cfg, "hold", host="web01", reason="disk swap")
    done = check(cfg, "-v")
    out = done.stdout.splitlines()
    assert out[0] == ("ESCALATOR WARNING - host web01 held: disk swap, idle, 0 pending, "
                      "1 failing check, no runs yet | " + PERF_IDLE.format(runs=0, failing=1, quiet=0))
    assert done.returncode == 1
    assert out[1:] == [
        "collector: not running (dead when events wait over 120s)",
        "spool: 0 pending",
        "next: skipped: hosts held by an operator: web01",
        "failing: web01/PING CRITICAL HARD -> vm (host held)",
        "held host: web01: disk swap",
    ]


def test_hostile_names_and_reasons_stay_on_one_escaped_line(tmp_path):
    cfg = make_config(tmp_path)
    operator(cfg, "pause", reason="a\nESCALATOR OK - fine | x=1\x1b[31m")
    operator(cfg, "hold", host="evil|host\n", reason="r\r\n")
    done = check(cfg, "-v")
    first = done.stdout.splitlines()[0]
    assert first.startswith("ESCALATOR WARNING - paused: a\\nESCALATOR OK - fine \\x7c x=1\\x1b[31m, "
                            "host evil\\x7chost\\n held: r\\r\\n, idle, 0 pending"), first
    assert first.count("|") == 1  # only the perfdata separator
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    assert done.returncode == 1
    assert "held host: evil\\x7chost\\n: r\\r\\n" in done.stdout.splitlines()


# --- UNKNOWN ---------------------------------------------------------------------------

def test_bad_config_is_unknown_with_the_first_error_line():
    broken = HERE / "configs" / "broken" / "61-three-independent-errors.yaml"
    done = run("--config", str(broken))
    # Its spool and journal (the defaults) do not exist here: CRITICAL, naming the config problem.
    first = done.stdout.splitlines()[0]
    assert first.startswith("ESCALATOR CRITICAL - spool directory /var/spool/escalator does not exist"), first
    assert (f"config {broken} is invalid: {broken}:4: quiescence: expected a duration such as "
            "30s, 5m, 1h30m, 500ms or a number of seconds, got 'soon'") in first
    assert done.returncode == 2
    assert done.stderr == ""


def test_config_from_environment_and_missing_default(tmp_path):
    cfg = make_config(tmp_path)
    done = run(env={"ESCALATOR_CONFIG": cfg.source})
    assert done.stdout.startswith("ESCALATOR OK - idle")
    assert done.returncode == 0
    if os.path.exists("/etc/escalator/escalator.yaml"):
        pytest.skip("this machine has a real /etc/escalator/escalator.yaml")
    done = run()
    assert done.stdout.splitlines() == [
        "ESCALATOR UNKNOWN - invalid config: /etc/escalator/escalator.yaml: cannot read config file: "
        "No such file or directory"]
    assert done.returncode == 3


@pytest.mark.parametrize("args,expected", [
    (["-w", "10:5"], "ESCALATOR UNKNOWN - invalid range '10:5' for -w/--warning: start 10 must not "
                     "be greater than end 5 (expected N, N:, ~:N, N:M or @N:M)"),
    (["-c", "abc"], "ESCALATOR UNKNOWN - invalid range 'abc' for -c/--critical "
                    "(expected N, N:, ~:N, N:M or @N:M)"),
    (["--backlog-warning", "1:2:3"], "ESCALATOR UNKNOWN - invalid range '1:2:3' for "
                                     "--backlog-warning (expected N, N:, ~:N, N:M or @N:M)"),
    (["-t", "0"], "ESCALATOR UNKNOWN - timeout must be a positive number of seconds, not 0"),
    (["--dead-after", "soon"], "ESCALATOR UNKNOWN - argument --dead-after: invalid seconds value: 'soon'"),
    (["--bogus"], "ESCALATOR UNKNOWN - unrecognized arguments: --bogus"),
])
def test_bad_usage_is_unknown_with_the_reason(tmp_path, args, expected):
    cfg = make_config(tmp_path)
    done = run("--config", cfg.source, *args)
    assert done.stdout.splitlines()[0] == expected
    assert done.returncode == 3


def test_timeout_is_unknown_saying_what_hung(tmp_path):
    cfg = make_config(tmp_path)
    os.mkfifo(cfg.state_path)  # opening it blocks, like a hung file system
    started = time.monotonic()
    done = run("--config", cfg.source, "-t", "1")
    assert done.stdout.splitlines() == [
        f"ESCALATOR UNKNOWN - timed out after 1s reading spool {cfg.spool} and journal {cfg.journal}"]
    assert done.returncode == 3
    assert time.monotonic() - started < 5


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the plugin as another user")
def test_journal_the_nagios_user_may_not_read_is_critical_with_the_reason():
    root = Path(tempfile.mkdtemp(prefix="check-escalator-"))  # pytest's tmp is root-only
    try:
        root.chmod(0o755)
        cfg = make_config(root)
        Path(cfg.source).chmod(0o644)
        Path(cfg.spool).chmod(0o755)  # only the journal is out of reach here
        operator(cfg, "pause", reason="x")  # journal 0640 root:root, as the collector writes it
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               str(CONSOLE_SCRIPT), "--config", cfg.source], cwd="/",
                              env=NAGIOS_ENV, capture_output=True, text=True, timeout=30)
        # What escalator records cannot be seen: CRITICAL, as when it is missing.
        first = done.stdout.splitlines()[0]
        assert first.startswith(f"ESCALATOR CRITICAL - cannot read journal {cfg.journal}: Permission denied "
                                "(run the check as a user that may read the spool, state and journal)"), first
        assert done.returncode == 2
    finally:
        shutil.rmtree(root)


def test_unreadable_journal_lines_are_noted_not_fatal(tmp_path):
    cfg = make_config(tmp_path)
    Path(cfg.journal).write_text('{"time": 1, "kind": "pause", "reason": "x"}\nnot json\n')
    Path(cfg.state_path).write_text("{torn")
    done = check(cfg, "-v")
    assert done.stdout.startswith("ESCALATOR WARNING - paused: x, idle")
    out = done.stdout.splitlines()
    assert "journal: 1 unreadable line skipped" in out
    assert any(line.startswith(f"note: ignoring unreadable state snapshot {cfg.state_path} ")
               for line in out), out
    assert done.returncode == 1
    assert done.stderr == ""


# --- guideline options -----------------------------------------------------------------

def test_version_prints_name_and_version():
    done = run("-V")
    assert done.stdout.splitlines()[0].startswith(f"check_escalator v{__version__} ")
    assert done.returncode == 3  # like check_dummy -V


def test_help_documents_the_guideline_options():
    done = run("--help")
    for option in ("-h, --help", "-V, --version", "-v, --verbose", "-t SECONDS, --timeout SECONDS",
                   "-w RANGE, --warning RANGE", "-c RANGE, --critical RANGE", "--backlog-warning RANGE",
                   "--backlog-critical RANGE", "--dead-after SECONDS", "-C PATH, --config PATH"):
        assert option in done.stdout, option
    assert "10, 10:, ~:10, 10:20, @10:20" in done.stdout
    assert done.returncode == 3


def test_verbosity_levels(tmp_path):
    cfg = make_config(tmp_path)
    now = time.time()
    spool_event(cfg, "web01", "Smoke test", "CRITICAL", now - 400)
    collect_at(cfg, now - 300)
    spool_event(cfg, "web01", "Smoke test", "OK", now - 290)
    collect_at(cfg, now - 200)
    v0, v2, v3 = check(cfg), check(cfg, "-vv"), check(cfg, "-vvvv")  # more than 3 counts as 3
    assert len(v0.stdout.splitlines()) == 1
    assert any(line.startswith("run: ") and "RUN END  ok: levels deploy" in line
               for line in v2.stdout.splitlines()), v2.stdout
    assert any(line.startswith("verdict: ") and "converged" in line for line in v2.stdout.splitlines())
    assert f"journal: {cfg.journal}" in v3.stdout.splitlines()
    for done in (v0, v2, v3):  # perfdata stays on the first line
        assert " | backlog=0;;;0 " in done.stdout.splitlines()[0]
        assert done.returncode == 0


def test_plugins_script_runs_like_the_console_script(tmp_path):
    cfg = make_config(tmp_path)
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}  # python3 with escalator-handlers comes first
    done = run("--config", cfg.source, plugin=PLUGIN_SCRIPT, env=env)
    assert done.stdout.startswith("ESCALATOR OK - idle, 0 pending, no runs yet | backlog=0;;;0 ")
    assert done.returncode == 0
    assert os.access(PLUGIN_SCRIPT, os.X_OK)


@pytest.mark.slow
def test_nagios_runs_the_shipped_command_definition(tmp_path):
    """A real Nagios 4 runs check_escalator through nagios-conf/plugins.cfg."""
    from nagios_fixtures import service_status, start_nagios

    cfg = make_config(tmp_path)
    operator(cfg, "pause", reason="night | freeze")
    text = (REPO / "nagios-conf" / "plugins.cfg").read_text()
    command = re.search(r"define command \{\s*command_name\s+check_escalator\n.*?\}", text, re.S)
    assert command, "plugins.cfg has no check_escalator command"
    objects = command.group(0).replace("$USER1$", str(BIN)) + f"""

define service {{
    use                     generic-service
    host_name               web01
    service_description     escalator health
    check_command           check_escalator!{cfg.source}!120!600!-v
    max_check_attempts      1
}}
"""
    with start_nagios(tmp_path / "nagios", extra_objects=objects) as nagios:
        status = nagios.wait_for(lambda: service_status(nagios.status_file, "web01", "escalator health"),
                                 timeout=15, what="the escalator check's first run")
    assert status["current_state"] == "1"
    assert status["plugin_output"] == \
        "ESCALATOR WARNING - paused: night \\x7c freeze, idle, 0 pending, no runs yet"
    assert status["performance_data"] == PERF_IDLE.format(runs=0, failing=0, quiet=0)
    # status.dat writes long output's line breaks as \n and doubles its backslashes.
    assert status["long_plugin_output"].split("\\n") == [
        "collector: not running (dead when events wait over 120s)", "spool: 0 pending",
        "next: nothing to do", "paused: night \\\\x7c freeze"]
