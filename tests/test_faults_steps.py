"""Steps misbehaving, end to end through ``escalator collect``: a step that
hangs (and ignores SIGTERM, and leaves background children) is killed with
its whole process group at its timeout; a step that prints 100 MB leaves the
collector's memory alone and the journal with the tail; a step that reads
stdin gets end-of-file at once, never the collector's stdin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from escalator_handlers import spool
from escalator_handlers.steps.result import OUTPUT_TAIL
from fault_fixtures import clean_env, of_kind, read_journal, wait_for, write_config

pytestmark = pytest.mark.faults

#: Runs ``escalator`` in-process and reports the peak resident set size on stderr.
MEASURED = ("import resource, sys\n"
            "from escalator_handlers.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "sys.stderr.write(f'maxrss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n"
            "sys.exit(rc)\n")


def config_with_step(tmp: Path, step: str, timeout: str = "30s") -> Path:
    return write_config(tmp, f"""quiescence: 0s
levels:
  - name: vm
    max_attempts: 1
    steps:
      - shell: {step}
        timeout: {timeout}
checks:
  - {{service: "*", level: vm}}
""")


def collect(conf: Path, **kw) -> subprocess.CompletedProcess:
    spool.append(str(conf.parent / "spool"), {"time": time.time(), "host": "web1", "service": "HTTP",
                                             "state": "CRITICAL"})
    return subprocess.run([sys.executable, "-c", MEASURED, "collect", "--config", str(conf)],
                          env=clean_env(), capture_output=True, timeout=120, **kw)


def maxrss_mib(r: subprocess.CompletedProcess) -> float:
    line = [x for x in r.stderr.decode().splitlines() if x.startswith("maxrss_kib=")][-1]
    return int(line.split("=")[1]) / 1024


def only_step(tmp: Path) -> dict:
    (step,) = of_kind(read_journal(tmp / "journal.jsonl")[0], "step")
    return step


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_hanging_step_is_killed_with_its_whole_process_group_at_its_timeout(tmp_path):
    pids = tmp_path / "pids"
    # The shell, a background sleeper, and a grandchild that ignores SIGTERM.
    step = (f"'echo $$ > {pids}; sleep 300 & echo $! >> {pids}; "
            f"sh -c \"trap \\\"\\\" TERM; echo \\$\\$ >> {pids}; sleep 300 & wait\" & wait'")
    conf = config_with_step(tmp_path, step, timeout="1s")
    started = time.monotonic()
    r = collect(conf)
    took = time.monotonic() - started
    assert r.returncode == 1, r.stderr  # the run failed
    rec = only_step(tmp_path)
    assert rec["exit"] is None and rec["error"] == "timed out after 1s"
    assert 1.0 <= rec["duration"] < 6, rec["duration"]
    (run,) = [x for x in of_kind(read_journal(tmp_path / "journal.jsonl")[0], "run") if x["outcome"] != "skipped"]
    assert run["outcome"] == "failed" and "timed out after 1s" in run["reason"]
    group = [int(p) for p in pids.read_text().split()]
    assert len(group) == 3
    wait_for(lambda: not any(alive(p) for p in group), 5, what=f"every process of {group} to be gone")
    print(f"\nhanging step: timeout 1s, group of {len(group)} (one ignoring SIGTERM) gone; "
          f"step took {rec['duration']}s, collector {took:.1f}s")


def test_a_step_printing_100_mb_leaves_memory_bounded_and_the_journal_with_its_tail(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    baseline = maxrss_mib(collect(config_with_step(small, "echo small")))
    big = tmp_path / "big"
    big.mkdir()
    conf = config_with_step(big, "'head -c 100000000 /dev/zero | tr \"\\0\" x; echo; echo THE-END'")
    started = time.monotonic()
    r = collect(conf)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    peak = maxrss_mib(r)
    rec = only_step(big)
    assert rec["exit"] == 0
    assert rec["output"].endswith("xxx\nTHE-END\n") and len(rec["output"]) <= OUTPUT_TAIL + 200
    assert (big / "journal.jsonl").stat().st_size < 64 * 1024
    print(f"\n100 MB step: collector peak RSS {peak:.0f} MiB (baseline {baseline:.0f} MiB), "
          f"journal tail {len(rec['output'])} chars; {took:.1f}s")
    assert peak - baseline < 20, f"peak RSS {peak:.0f} MiB against {baseline:.0f} MiB for a quiet step"


def test_a_step_s_stdin_is_closed_not_the_collector_s(tmp_path):
    conf = config_with_step(tmp_path, "'read line; echo \"read=$? line=[$line]\"; readlink /proc/self/fd/0; cat'",
                            timeout="20s")
    spool.append(str(tmp_path / "spool"), {"time": time.time(), "host": "web1", "service": "HTTP",
                                           "state": "CRITICAL"})
    with subprocess.Popen([sys.executable, "-c", MEASURED, "collect", "--config", str(conf)], env=clean_env(),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        # Our end of the collector's stdin stays open: a step reading it would hang.
        p.wait(15)
        p.stdin.close()
    rec = only_step(tmp_path)
    assert rec["exit"] == 0 and rec["duration"] < 5
    assert rec["output"] == "read=1 line=[]\n/dev/null\n"
