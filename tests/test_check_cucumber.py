"""check_cucumber end to end: real behave and cucumber runs, plugin run as Nagios would.

Every test starts the installed console script (or plugins/check_cucumber)
as a subprocess from / with a minimal environment, and asserts the exact
status line (the runtime aside), long output and exit code.  The feature
files live in tests/features/ (passing, failing, undefined, library,
slow); features that need a port or Ruby steps are written to tmp_path.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from escalator_handlers import __version__
from escalator_handlers.plugins.cucumber_report import parse_report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FEATURES = HERE / "features"
BIN = Path(sys.executable).parent
CONSOLE_SCRIPT = BIN / "check_cucumber"
PLUGIN_SCRIPT = REPO / "plugins" / "check_cucumber"
CUCUMBER = "/usr/bin/cucumber"
# Nagios starts plugins with a small environment and no terminal.
NAGIOS_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
TIME = re.compile(r"time=\d+(\.\d+)?s")

pytestmark = pytest.mark.integration


def run(*args: str, plugin: Path = CONSOLE_SCRIPT, env: dict | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(plugin), *args], cwd="/", env={**NAGIOS_ENV, **(env or {})},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def lines(done: subprocess.CompletedProcess) -> list[str]:
    return done.stdout.splitlines()


def status_line(done: subprocess.CompletedProcess) -> str:
    """The first line with the runtime replaced by T (it is the one thing that varies)."""
    assert done.stdout, f"no output; stderr: {done.stderr}"
    return TIME.sub("time=Ts", lines(done)[0])


# --- behave: the three basic outcomes -------------------------------------------

def test_passing_features_print_the_cucumber_nagios_ok_line_and_exit_0():
    done = run(str(FEATURES / "passing"))
    assert status_line(done) == ("CUCUMBER OK - Critical: 0, Warning: 0, 4 okay | "
                                 "passed=4 failed=0 nosteps=0 total=4 time=Ts")
    assert lines(done)[1:] == []
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r" time=\d+\.\d{1,2}s$", lines(done)[0])


def test_failed_step_is_critical_with_a_failed_line_naming_file_and_line():
    done = run(str(FEATURES / "failing"))
    # The step after the failure is skipped and, as in cucumber-nagios, not counted.
    assert status_line(done) == ("CUCUMBER CRITICAL - Critical: 1, Warning: 0, 3 okay | "
                                 "passed=3 failed=1 nosteps=0 total=4 time=Ts")
    assert lines(done)[1:] == ["Failed: Then the answer is 43 in failing/arithmetic.feature:6"]
    assert done.returncode == 2


def test_undefined_step_is_a_warning_and_the_step_it_skipped_is_not_counted():
    done = run(str(FEATURES / "undefined"))
    assert status_line(done) == ("CUCUMBER WARNING - Critical: 0, Warning: 1, 1 okay | "
                                 "passed=1 failed=0 nosteps=1 total=2 time=Ts")
    assert done.returncode == 1


def test_a_single_feature_file_can_be_given_with_f():
    done = run("-f", str(FEATURES / "failing" / "arithmetic.feature"))
    assert done.returncode == 2
    assert lines(done)[1] == "Failed: Then the answer is 43 in failing/arithmetic.feature:6"


def test_verbose_levels_add_messages_scenarios_and_the_runner_command():
    v1 = run("-v", str(FEATURES / "failing"))
    assert lines(v1)[1:] == ["Failed: Then the answer is 43 in failing/arithmetic.feature:6",
                             "  ASSERT FAILED: expected 43, got 42"]
    v2 = run("-vv", str(FEATURES / "undefined"))
    assert "Undefined: When I multiply by 7 in undefined/arithmetic.feature:5" in lines(v2)
    assert any(re.fullmatch(r"Scenario: multiplying \(undefined/arithmetic\.feature:3\) "
                            r"error, 3 steps, \d\.\d{3}s", line) for line in lines(v2))
    v3 = run("-vvvv", str(FEATURES / "passing"))  # more than 3 counts as 3
    assert any(line.startswith(f"Runner: cd {FEATURES} && {sys.executable} -m behave "
                               "--format json --outfile ") for line in lines(v3)), v3.stdout
    assert "Runner exit status: 0," in v3.stdout
    for done in (v1, v2, v3):  # perfdata stays on the first line at every level
        assert " | passed=" in lines(done)[0]


# --- thresholds ------------------------------------------------------------------

def test_warning_and_critical_ranges_apply_to_failed_steps_and_show_in_perfdata():
    done = run("-w", "0", "-c", "1", str(FEATURES / "failing"))
    assert status_line(done) == ("CUCUMBER WARNING - Critical: 1, Warning: 0, 3 okay | "
                                 "passed=3 failed=1;0;1 nosteps=0 total=4 time=Ts")
    assert done.returncode == 1
    inverted = run("-c", "@1:5", str(FEATURES / "failing"))
    assert inverted.returncode == 2
    tolerant = run("-c", "~:3", str(FEATURES / "failing"))
    assert tolerant.returncode == 0
    assert "failed=1;;~:3 " in lines(tolerant)[0]


def test_time_critical_applies_to_the_runtime():
    done = run("--time-critical", "0.001", str(FEATURES / "passing"))
    assert done.returncode == 2
    assert re.fullmatch(r"CUCUMBER CRITICAL - Critical: 0, Warning: 0, 4 okay, time "
                        r"\d+(\.\d+)?s outside range 0:0\.001 \| passed=4 failed=0 nosteps=0 "
                        r"total=4 time=\d+(\.\d+)?s;;0\.001", lines(done)[0]), done.stdout
    assert run("--time-warning", "10:", str(FEATURES / "passing")).returncode == 1


@pytest.mark.parametrize("option,spec,expected", [
    ("-w", "10:5", "CUCUMBER UNKNOWN - invalid range '10:5' for -w/--warning: start 10 "
                   "must not be greater than end 5 (expected N, N:, ~:N, N:M or @N:M)"),
    ("-c", "abc", "CUCUMBER UNKNOWN - invalid range 'abc' for -c/--critical "
                  "(expected N, N:, ~:N, N:M or @N:M)"),
    ("--time-warning", "1:2:3", "CUCUMBER UNKNOWN - invalid range '1:2:3' for --time-warning "
                                "(expected N, N:, ~:N, N:M or @N:M)"),
])
def test_bad_range_syntax_is_unknown_with_the_reason(option, spec, expected):
    done = run(option, spec, str(FEATURES / "passing"))
    assert lines(done) == [expected]
    assert done.returncode == 3


# --- runner errors are UNKNOWN with a one-line reason ------------------------------

def test_missing_feature_path_is_unknown():
    done = run("/nonexistent/features")
    assert lines(done) == ["CUCUMBER UNKNOWN - feature path /nonexistent/features does not exist"]
    assert done.returncode == 3


def test_missing_cucumber_runner_is_unknown():
    done = run("--runner", "cucumber", "--cucumber", "/nonexistent/cucumber",
               str(FEATURES / "passing"))
    assert lines(done) == ["CUCUMBER UNKNOWN - cucumber runner not found: /nonexistent/cucumber"]
    assert done.returncode == 3


def test_gherkin_syntax_error_is_unknown_with_the_parser_message(tmp_path):
    (tmp_path / "broken.feature").write_text("Feature: x\n  Scenario: y\n    Given a\n"
                                             "    | a | b |\n    | c |\n")
    done = run(str(tmp_path))
    assert lines(done) == [f"CUCUMBER UNKNOWN - behave wrote no JSON report (exit 1): ParserError: "
                           f'Failed to parse "{tmp_path}/broken.feature": '
                           "Malformed table at line 5"]
    assert done.returncode == 3


def test_features_without_steps_to_run_are_unknown(tmp_path):
    (tmp_path / "empty.feature").write_text("Feature: nothing yet\n")
    done = run(str(tmp_path))
    assert lines(done) == [f"CUCUMBER UNKNOWN - no steps ran in {tmp_path} (behave exit 0)"]
    assert done.returncode == 3


def test_usage_errors_are_unknown():
    done = run()
    assert lines(done)[0] == "CUCUMBER UNKNOWN - no feature directory or file given"
    assert done.returncode == 3
    done = run("--bogus", "x")
    assert lines(done)[0] == "CUCUMBER UNKNOWN - unrecognized arguments: --bogus"
    assert done.returncode == 3


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie may wait for a slow init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_timeout_kills_the_runners_process_group_and_is_unknown(tmp_path):
    pidfile = tmp_path / "step.pid"
    started = time.monotonic()
    done = run("--builtin-steps", "-t", "1", str(FEATURES / "slow"),
               env={"CHECK_CUCUMBER_PIDFILE": str(pidfile)})
    elapsed = time.monotonic() - started
    assert lines(done) == [f"CUCUMBER UNKNOWN - behave timed out after 1s running {FEATURES}/slow"]
    assert done.returncode == 3
    assert elapsed < 4, elapsed
    # The step's `sleep 97` (a grandchild of the plugin) went with the group.
    assert _wait_gone(int(pidfile.read_text())), "the step's sleep survived the timeout"


def test_sigterm_to_the_plugin_ends_the_runner_too(tmp_path):
    pidfile = tmp_path / "step.pid"
    proc = subprocess.Popen([str(CONSOLE_SCRIPT), "--builtin-steps", "-t", "30",
                             str(FEATURES / "slow")], cwd="/", stdout=subprocess.PIPE,
                            text=True, env={**NAGIOS_ENV, "CHECK_CUCUMBER_PIDFILE": str(pidfile)})
    try:
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.splitlines() == [f"CUCUMBER UNKNOWN - interrupted by signal 15 while behave "
                                f"ran {FEATURES}/slow"]
    assert proc.returncode == 3
    assert _wait_gone(int(pidfile.read_text()))


# --- guideline options -------------------------------------------------------------

def test_version_prints_name_and_version():
    done = run("-V")
    assert lines(done)[0].startswith(f"check_cucumber v{__version__} ")
    # Like the Monitoring Plugins' own plugins (check_dummy -V exits 3 too).
    assert done.returncode == 3


def test_help_documents_the_guideline_options():
    done = run("--help")
    for option in ("-h, --help", "-V, --version", "-v, --verbose", "-t SECONDS, --timeout SECONDS",
                   "-w RANGE, --warning RANGE", "-c RANGE, --critical RANGE",
                   "--time-warning RANGE", "--builtin-steps", "--runner"):
        assert option in done.stdout, option
    assert "10, 10:, ~:10, 10:20, @10:20" in done.stdout
    assert done.returncode == 3


def test_plugins_script_runs_like_the_console_script():
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}  # python3 with escalator-handlers comes first
    done = run(str(FEATURES / "passing"), plugin=PLUGIN_SCRIPT, env=env)
    assert status_line(done) == ("CUCUMBER OK - Critical: 0, Warning: 0, 4 okay | "
                                 "passed=4 failed=0 nosteps=0 total=4 time=Ts")
    assert done.returncode == 0
    assert os.access(PLUGIN_SCRIPT, os.X_OK)
    assert run("-V", plugin=PLUGIN_SCRIPT, env=env).stdout.startswith("check_cucumber v")


def test_plugins_script_without_the_package_is_unknown_not_warning():
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip(f"{python} is not installed")
    if subprocess.run([python, "-c", "import escalator_handlers"], capture_output=True,
                      env=NAGIOS_ENV, cwd="/").returncode == 0:
        pytest.skip(f"{python} can import escalator_handlers, nothing to show")
    done = subprocess.run([python, str(PLUGIN_SCRIPT), "x"], capture_output=True, text=True,
                          env=NAGIOS_ENV, cwd="/", timeout=30)
    assert done.stdout.startswith("CUCUMBER UNKNOWN - cannot import escalator_handlers")
    assert done.returncode == 3


# --- the bundled step library --------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body, status = (b"ok\n", 200) if self.path == "/health" else (b"no such page\n", 404)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_smoke_steps_http_tcp_and_commands_without_a_steps_directory(tmp_path, http_server):
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    closed = _closed_port()
    (smoke / "app.feature").write_text(f"""Feature: application smoke test

  Scenario: health page
    Given the timeout is 5 seconds
    When I GET "http://127.0.0.1:{http_server}/health"
    Then the status is 200
    And the body contains "ok"
    And the body does not contain "error"

  Scenario: a missing page is a response, not an error
    When I GET "http://127.0.0.1:{http_server}/missing"
    Then the status is 404

  Scenario: ports
    Then TCP port {http_server} on "127.0.0.1" is open
    And TCP port {closed} on "127.0.0.1" is closed

  Scenario: commands
    When I run "true"
    Then the exit status is 0
""")
    done = run("-vvv", str(smoke))
    assert status_line(done) == ("CUCUMBER OK - Critical: 0, Warning: 0, 11 okay | "
                                 "passed=11 failed=0 nosteps=0 total=11 time=Ts"), done.stdout
    assert "(bundled smoke steps)" in done.stdout
    assert done.returncode == 0


def test_smoke_step_failures_say_what_was_wrong(tmp_path, http_server):
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    closed = _closed_port()
    (smoke / "app.feature").write_text(f"""Feature: failing smoke test

  Scenario: wrong body
    When I GET "http://127.0.0.1:{http_server}/health"
    Then the body contains "healthy"

  Scenario: service down
    When I GET "http://127.0.0.1:{closed}/health"
    Then the status is 200

  Scenario: port closed
    Then TCP port {closed} on "127.0.0.1" is open

  Scenario: command
    When I run "sh -c 'echo broken >&2; exit 4'"
    Then the exit status is 0

  Scenario: no such command
    When I run "/nonexistent/smoke-command --flag"
""")
    done = run("-v", str(smoke))
    assert status_line(done) == ("CUCUMBER CRITICAL - Critical: 5, Warning: 0, 2 okay | "
                                 "passed=2 failed=5 nosteps=0 total=7 time=Ts"), done.stdout
    assert lines(done)[1:] == [
        'Failed: Then the body contains "healthy" in smoke/app.feature:5',
        f"  ASSERT FAILED: body of http://127.0.0.1:{http_server}/health does not contain "
        "'healthy': 'ok'",
        f'Failed: When I GET "http://127.0.0.1:{closed}/health" in smoke/app.feature:8',
        f"  ASSERT FAILED: GET http://127.0.0.1:{closed}/health failed: [Errno 111] "
        "Connection refused",
        f'Failed: Then TCP port {closed} on "127.0.0.1" is open in smoke/app.feature:12',
        f"  ASSERT FAILED: TCP port {closed} on 127.0.0.1 is not open: [Errno 111] "
        "Connection refused",
        "Failed: Then the exit status is 0 in smoke/app.feature:16",
        "  ASSERT FAILED: sh -c 'echo broken >&2; exit 4' exited 4, expected 0; "
        "stderr: 'broken'",
        'Failed: When I run "/nonexistent/smoke-command --flag" in smoke/app.feature:19',
        "  ASSERT FAILED: command not found: /nonexistent/smoke-command",
    ]
    assert done.returncode == 2


def test_one_line_steps_file_loads_the_library_next_to_own_steps():
    done = run("-vvv", str(FEATURES / "library"))
    assert status_line(done) == ("CUCUMBER OK - Critical: 0, Warning: 0, 5 okay | "
                                 "passed=5 failed=0 nosteps=0 total=5 time=Ts")
    assert "(bundled smoke steps)" not in done.stdout
    assert done.returncode == 0


def test_builtin_steps_can_be_refused(tmp_path):
    (tmp_path / "cmd.feature").write_text(
        'Feature: f\n  Scenario: s\n    When I run "true"\n    Then the exit status is 0\n')
    done = run("--no-builtin-steps", str(tmp_path))
    assert lines(done)[0].startswith(f"CUCUMBER UNKNOWN - behave wrote no JSON report (exit 1): "
                                     f"ConfigError: No steps directory in '{tmp_path}'")
    assert done.returncode == 3


def test_failing_hook_is_critical(tmp_path):
    features = tmp_path / "hooks"
    (features / "steps").mkdir(parents=True)
    (features / "steps" / "s.py").write_text("from escalator_handlers.plugins.smoke_steps import *\n")
    (features / "environment.py").write_text(
        "def before_scenario(context, scenario):\n"
        "    if 'broken' in scenario.name:\n"
        "        raise RuntimeError('database fixture missing')\n")
    (features / "h.feature").write_text(
        'Feature: hooks\n  Scenario: fine\n    When I run "true"\n\n'
        '  Scenario: broken setup\n    When I run "true"\n')
    done = run(str(features))
    assert status_line(done) == ("CUCUMBER CRITICAL - Critical: 1, Warning: 0, 1 okay | "
                                 "passed=1 failed=1 nosteps=0 total=2 time=Ts")
    assert lines(done)[1:] == ['Failed: Hook for Scenario "broken setup" in hooks/h.feature:5']


# --- Debian's cucumber ----------------------------------------------------------------

RUBY_STEPS = """\
Given(/^the number (\\d+)$/) { |n| @total = n.to_i }
When(/^I add (\\d+)$/) { |n| @total += n.to_i }
Then(/^the answer is (\\d+)$/) { |n| raise "expected #{n}, got #{@total}" unless @total == n.to_i }
"""

MIXED_FEATURE = """\
Feature: arithmetic for two runners

  Background:
    Given the number 40

  Scenario: adding
    When I add 2
    Then the answer is 42

  Scenario: wrong answer
    When I add 1
    Then the answer is 42
    And the answer is 41

  Scenario: multiplying
    When I multiply by 7
    Then the answer is 280
"""


@pytest.fixture
def two_runner_features(tmp_path: Path) -> Path:
    """One feature directory with Ruby step definitions and the same steps in Python."""
    features = tmp_path / "features"
    (features / "step_definitions").mkdir(parents=True)
    (features / "step_definitions" / "arithmetic.rb").write_text(RUBY_STEPS)
    (features / "steps").mkdir()
    shutil.copy(FEATURES / "steps" / "arithmetic.py", features / "steps" / "arithmetic.py")
    (features / "arithmetic.feature").write_text(MIXED_FEATURE)
    return features


@pytest.mark.slow
def test_debian_cucumber_run_reports_like_behave(two_runner_features):
    if not os.path.exists(CUCUMBER):
        pytest.skip(f"{CUCUMBER} is not installed (Debian package cucumber; see setup.sh)")
    ruby = run("--runner", "cucumber", "-v", str(two_runner_features))
    # Passed: 3 backgrounds + 2 (adding) + 1 (wrong answer's "add 1"); one
    # failure (the step after it not counted); one undefined step plus the
    # step it skipped.
    expected = ("CUCUMBER CRITICAL - Critical: 1, Warning: 1, 6 okay | "
                "passed=6 failed=1 nosteps=1 total=8 time=Ts")
    assert status_line(ruby) == expected, ruby.stdout + ruby.stderr
    assert lines(ruby)[1:] == [
        "Failed: Then the answer is 42 in features/arithmetic.feature:12",
        "  expected 42, got 41 (RuntimeError)",
        "Undefined: When I multiply by 7 in features/arithmetic.feature:16",
    ]
    assert ruby.returncode == 2
    python = run("-v", str(two_runner_features))
    assert status_line(python) == expected
    assert lines(python)[1] == lines(ruby)[1]
    assert lines(python)[3] == lines(ruby)[3]


@pytest.mark.slow
def test_debian_cucumber_single_file_loads_its_step_definitions(two_runner_features):
    if not os.path.exists(CUCUMBER):
        pytest.skip(f"{CUCUMBER} is not installed (Debian package cucumber; see setup.sh)")
    done = run("-r", "cucumber", "--tags", "~@nothing",
               str(two_runner_features / "arithmetic.feature"))
    assert status_line(done).startswith("CUCUMBER CRITICAL - Critical: 1, Warning: 1, 6 okay")


def test_builtin_steps_need_behave(two_runner_features):
    done = run("--runner", "cucumber", "--builtin-steps", str(two_runner_features))
    assert lines(done) == ["CUCUMBER UNKNOWN - --builtin-steps needs the behave runner "
                           "(the steps are Python)"]
    assert done.returncode == 3


# --- the report parser on the two dialects (no subprocess) ------------------------------

def test_report_parser_counts_cucumber_background_and_nanoseconds():
    doc = [{"uri": "f/a.feature", "elements": [
        {"type": "background", "line": 2, "steps": [
            {"keyword": "Given ", "name": "x", "line": 3,
             "result": {"status": "undefined"}}]},
        {"type": "scenario", "keyword": "Scenario", "name": "s", "line": 5, "steps": [
            {"keyword": "When ", "name": "y", "line": 6,
             "result": {"status": "skipped"}}],
         "before": [{"match": {"location": "f/support/h.rb:1"},
                     "result": {"status": "failed", "error_message": "boom\nbacktrace"}}]},
        {"type": "scenario", "keyword": "Scenario", "name": "t", "line": 8, "steps": [
            {"keyword": "Then ", "name": "z", "line": 9,
             "result": {"status": "passed", "duration": 1_500_000_000}}]},
    ]}]
    report = parse_report(json.loads(json.dumps(doc)), "cucumber")
    # The skipped step after the undefined background step did not run: not counted.
    assert (report.passed, report.failed, report.nosteps, report.total) == (1, 1, 1, 3)
    assert [s.duration for s in report.scenarios[1].steps] == [1.5]
    hook = report.failures[0]
    assert (f"{hook.text} in {hook.location}", hook.message) == (
        'Before hook for Scenario "s" in f/support/h.rb:1', "boom")


def test_report_parser_ignores_behave_background_elements_and_seconds_stay_seconds():
    doc = [{"location": "f/a.feature:1", "status": "failed", "elements": [
        {"type": "background", "location": "f/a.feature:2", "steps": [
            {"keyword": "Given", "name": "x", "location": "f/a.feature:3"}]},
        {"type": "scenario", "keyword": "Scenario", "name": "s", "location": "f/a.feature:5",
         "status": "failed", "steps": [
             {"keyword": "Given", "name": "x", "location": "f/a.feature:3",
              "result": {"status": "passed", "duration": 0.25}},
             {"keyword": "When", "name": "y", "location": "f/a.feature:6",
              "result": {"status": "error", "duration": 0.5}},
             {"keyword": "Then", "name": "z", "location": "f/a.feature:7"}]},
    ]}]
    report = parse_report(doc, "behave")
    assert (report.passed, report.failed, report.nosteps, report.total) == (1, 1, 0, 2)
    assert report.scenarios[0].duration == 0.75
    assert [f"{s.text} in {s.location}" for s in report.failures] == ["When y in f/a.feature:6"]


@pytest.mark.slow
def test_nagios_runs_the_shipped_command_definition(tmp_path):
    """A real Nagios 4 runs check_cucumber through nagios-conf/plugins.cfg."""
    from nagios_fixtures import service_status, start_nagios

    text = (REPO / "nagios-conf" / "plugins.cfg").read_text()
    shipped = "$USER1$/check_cucumber -t 50 '$ARG1$' $ARG2$"
    assert shipped in text
    command = re.search(r"define command \{\s*command_name\s+check_cucumber\n.*?\}", text, re.S)
    assert command, "plugins.cfg has no check_cucumber command"
    objects = command.group(0).replace("$USER1$", str(BIN)) + f"""

define service {{
    use                     generic-service
    host_name               web01
    service_description     Smoke test
    check_command           check_cucumber!{FEATURES / 'failing'}!-w 0 -c 3
    max_check_attempts      1
}}
"""
    with start_nagios(tmp_path, extra_objects=objects) as nagios:
        status = nagios.wait_for(lambda: service_status(nagios.status_file, "web01", "Smoke test"),
                                 timeout=15, what="the smoke test's first check")
    assert status["current_state"] == "1"
    assert status["plugin_output"] == "CUCUMBER WARNING - Critical: 1, Warning: 0, 3 okay"
    assert status["long_plugin_output"] == \
        "Failed: Then the answer is 43 in failing/arithmetic.feature:6"
    assert TIME.sub("time=Ts", status["performance_data"]) == \
        "passed=3 failed=1;0;3 nosteps=0 total=4 time=Ts"
