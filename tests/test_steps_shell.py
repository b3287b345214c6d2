"""Shell steps and templates, run for real with /bin/sh."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from escalator_handlers.config import Step
from escalator_handlers.errors import StepError
from escalator_handlers.steps import OUTPUT_TAIL, StepRunner, render_command
from escalator_handlers.steps.template import one_line

HOSTILE = [
    "web01; touch {mark}",
    "$(touch {mark})",
    "`touch {mark}`",
    "it's \"quoted\" \\ back\\slash",
    "line one\nline two; touch {mark}",
    "-rf --no-preserve-root",
    "${{IFS}}*?[a] | & > /dev/null",
]


def shell(command: str, **kw: object) -> Step:
    return Step(kind="shell", where="levels[0].steps[0]", command=command, **kw)  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    """A process exists and is not a zombie (a zombie has already died)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_for_file(path: Path, timeout: float = 5.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


@pytest.fixture
def runner():
    with StepRunner() as r:
        yield r


def test_success_captures_merged_output_and_exit_zero(runner):
    r = runner.run(shell("echo out; echo err >&2; exit 0"), {})
    assert r.ok and r.exit == 0 and r.error is None
    assert r.output == "out\nerr\n"
    assert r.command == "echo out; echo err >&2; exit 0"
    assert r.where == "levels[0].steps[0]" and r.host is None
    assert 0 <= r.duration < 5


def test_nonzero_exit_fails_without_error_text(runner):
    r = runner.run(shell("echo about to fail; exit 3"), {})
    assert not r.ok and r.exit == 3 and r.error is None
    assert "about to fail" in r.output


def test_timeout_kills_the_whole_process_group(runner, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    step = shell(f"sh -c 'sleep 300' & echo $! > {pidfile}; sleep 300", timeout=0.5)
    t0 = time.monotonic()
    r = runner.run(step, {})
    took = time.monotonic() - t0
    assert r.exit is None and not r.ok
    assert r.error == "timed out after 0.5s"
    assert took < 2.0, took
    gc = int(wait_for_file(pidfile))
    assert not alive(gc), "the background grandchild survived the timeout"


def test_timeout_sends_sigkill_when_sigterm_is_ignored(tmp_path):
    pidfile = tmp_path / "pid"
    with StepRunner(kill_grace=0.3) as runner:
        t0 = time.monotonic()
        r = runner.run(shell(f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait", timeout=0.3),
                       {})
    assert r.error == "timed out after 0.3s"
    assert 0.5 < time.monotonic() - t0 < 2.0
    assert not alive(int(wait_for_file(pidfile)))


def test_100mb_of_output_keeps_only_the_tail_in_bounded_memory(tmp_path):
    # In a fresh interpreter so the peak RSS measures this step alone.
    script = f"""
import resource, sys, time
from escalator_handlers.config import Step
from escalator_handlers.steps import StepRunner
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step = Step(kind="shell", where="s", command="head -c 100000000 /dev/zero | tr '\\\\0' x; echo; echo END",
            timeout=60)
t0 = time.monotonic()
r = StepRunner().run(step, {{}})
took = time.monotonic() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(r.exit, len(r.output), repr(r.output[-8:]), before, after, round(took, 2))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    exit_, length, tail, before_kb, after_kb, took = out
    assert exit_ == "0"
    assert int(length) == OUTPUT_TAIL
    assert tail == repr("xxx\nEND\n")
    grew_mb = (int(after_kb) - int(before_kb)) / 1024
    assert grew_mb < 20, f"peak RSS grew by {grew_mb:.1f} MB while reading 100 MB"
    print(f"100 MB step: {took}s, peak RSS growth {grew_mb:.1f} MB")


def test_stdin_is_closed(runner):
    t0 = time.monotonic()
    r = runner.run(shell("cat; read line; echo read-status=$?", timeout=5), {})
    assert r.output == "read-status=1\n"
    assert time.monotonic() - t0 < 2


def test_escalator_environment_variables(tmp_path):
    values = {"host": "web01", "hosts": ["web01", "db 02"], "level": "converge",
              "summary": "2 checks failing", "checks": ["web01/HTTP", "db 02/PING"]}
    step = shell('printf "%s|" "$ESCALATOR_HOST" "$ESCALATOR_HOSTS" "$ESCALATOR_LEVEL" '
                 '"$ESCALATOR_SUMMARY" "$ESCALATOR_CHECKS" "$EXTRA" "${PATH:+has-path}"',
                 foreach="host")
    with StepRunner(env={"EXTRA": "from-runner"}) as runner:
        r = runner.run(step, values)
    assert r.ok, r
    assert r.host == "web01"
    assert r.output == ("web01|web01 db 02|converge|2 checks failing|web01/HTTP\ndb 02/PING|"
                        "from-runner|has-path|")


def test_hostile_template_values_are_never_executed(runner, tmp_path):
    mark = tmp_path / "PWNED"
    values = {"host": HOSTILE[0].format(mark=mark),
              "hosts": [h.format(mark=mark) for h in HOSTILE],
              "summary": HOSTILE[4].format(mark=mark), "level": HOSTILE[2].format(mark=mark),
              "checks": [HOSTILE[1].format(mark=mark), HOSTILE[3]]}
    out = tmp_path / "out"
    step = shell(f"printf '%s\\0' {{host}} {{hosts}} {{summary}} {{level}} {{checks}} > {out}",
                 foreach="host")
    r = runner.run(step, values)
    assert r.ok, r
    assert not mark.exists()
    words = out.read_bytes().split(b"\0")[:-1]
    expected = [values["host"], *values["hosts"], values["summary"], values["level"],
                *values["checks"]]
    # Each value arrives as one line: control characters in caret notation (^J) ...
    assert [w.decode() for w in words] == [one_line(v) for v in expected]
    assert all("\n" not in w.decode() for w in words)
    # ... and exactly as given when the step asks for raw text.
    r = runner.run(replace(step, raw=True), values)
    assert r.ok, r
    assert not mark.exists()
    assert [w.decode() for w in out.read_bytes().split(b"\0")[:-1]] == expected


def test_template_syntax():
    assert render_command("echo {{literal}} {level}", {"level": "a b"}) == "echo {literal} 'a b'"
    assert render_command("awk '{print $1}' ${HOME:-/}", {}) == "awk '{print $1}' ${HOME:-/}"
    assert render_command("x {hosts}", {"hosts": []}) == "x "
    assert render_command("x {hosts}", {"hosts": ["a", "b c"]}) == "x a 'b c'"
    with pytest.raises(StepError, match="unknown placeholder {hots}"):
        render_command("echo {hots}", {"hosts": []})
    with pytest.raises(StepError, match="only set in steps with foreach: host"):
        render_command("echo {host}", {"hosts": []})
    every = {"host": "h", "hosts": ["h"], "level": "l", "summary": "s", "checks": ["c"]}
    with pytest.raises(StepError, match="unknown placeholder {HOME}"):
        render_command("echo ${HOME}", every)
    render_command("echo {host} {hosts} {level} {summary} {checks} {{x}}", every)


def test_bad_template_fails_the_step_without_running(runner, tmp_path):
    mark = tmp_path / "ran"
    r = runner.run(shell(f"touch {mark}; echo {{nope}}"), {"hosts": []})
    assert not r.ok and r.exit is None and "unknown placeholder {nope}" in r.error
    assert not mark.exists()
    assert runner.render(shell("echo {nope}"), {}).startswith("(would fail: unknown placeholder")
    assert runner.render(shell("echo {summary}"), {"summary": "a;b"}) == "echo 'a;b'"


def test_a_dry_run_renders_as_the_runner_does(runner):
    from escalator_handlers.steps.run_plan import DryRunner

    dry = DryRunner()
    for template, values in (("echo {nope}", {}), ("echo {host}", {"hosts": []}),
                             ("echo {summary} \"{hosts}\" '{level}'", {"summary": "a;b $(x)", "hosts": ["h1", "h'2"],
                                                                         "level": "v m"})):
        assert dry.render(shell(template), values) == runner.render(shell(template), values)
    dry.close()


def test_foreach_runs_hosts_in_parallel_up_to_concurrency(runner, tmp_path):
    hosts = [f"node{i:02d}" for i in range(6)]
    step = shell(f"s=$(date +%s.%N); sleep 0.4; echo $s $(date +%s.%N) > {tmp_path}/{{host}}",
                 foreach="host", concurrency=3)
    seen = []
    t0 = time.monotonic()
    results = runner.run_foreach(step, hosts, {"hosts": hosts}, on_result=seen.append)
    took = time.monotonic() - t0
    assert [r.host for r in results] == hosts and all(r.ok for r in results)
    assert sorted(r.host for r in seen) == hosts
    spans = [tuple(map(float, (tmp_path / h).read_text().split())) for h in hosts]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 3, spans          # three at a time, never more
    assert 0.8 <= took < 2.0, took   # two waves of 0.4 s, not six


def test_cancel_stops_the_running_step_and_skips_the_rest(tmp_path):
    cancel = threading.Event()
    hosts = ["a", "b", "c"]
    step = shell(f"sleep 300 & echo $! > {tmp_path}/{{host}}.pid; wait", foreach="host",
                 concurrency=1, timeout=60)
    threading.Timer(0.4, cancel.set).start()
    t0 = time.monotonic()
    with StepRunner(cancel=cancel) as runner:
        results = runner.run_foreach(step, hosts, {"hosts": hosts})
    assert time.monotonic() - t0 < 3
    assert results[0].error == "cancelled" and results[0].exit is None
    assert [r.error for r in results[1:]] == ["cancelled before it started"] * 2
    assert not alive(int(wait_for_file(tmp_path / "a.pid")))
    assert not (tmp_path / "b.pid").exists()


def test_missing_shell_binary_and_killed_by_signal(runner):
    r = runner.run(shell("kill -SEGV $$"), {})
    assert not r.ok and r.exit == 128 + 11 and r.error == "killed by signal SIGSEGV"


def test_output_tail_keeps_last_characters_of_multibyte_text(runner):
    r = runner.run(shell("i=0; while [ $i -lt 3000 ]; do printf 'é€'; i=$((i+1)); done; echo Z"),
                   {})
    assert r.ok and len(r.output) == OUTPUT_TAIL
    assert r.output.endswith("é€Z\n") and "\ufffd" not in r.output


def test_background_child_holding_stdout_does_not_hang_the_step(runner, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    t0 = time.monotonic()
    r = runner.run(shell(f"sleep 300 & echo $! > {pidfile}; echo started", timeout=30), {})
    took = time.monotonic() - t0
    try:
        assert r.ok and r.output.startswith("started\n"), r
        assert "background processes still hold" in r.output
        assert took < 3, took
    finally:
        os.kill(int(wait_for_file(pidfile)), 9)


def test_a_closed_gate_starts_no_process_even_when_it_closes_between_fork_and_exec(tmp_path):
    mark = tmp_path / "ran"
    step = shell(f"touch {mark}", foreach="host")
    with StepRunner(gate=lambda: "lost leadership") as r:
        res = r.run(step, {"host": "web1"})
    assert not res.ok and res.error == "not started: lost leadership" and not mark.exists()
    # Open when the parent asks, closed when the child asks (after fork, before exec).
    parent = os.getpid()
    with StepRunner(gate=lambda: None if os.getpid() == parent else "lease lapsed") as r:
        res = r.run(step, {"host": "web1"})
    assert not res.ok and res.error.startswith("not started:") and not mark.exists()
    with StepRunner(gate=lambda: None) as r:
        assert r.run(step, {"host": "web1"}).ok and mark.exists()
