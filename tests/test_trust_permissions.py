"""The spool is a trust boundary: attacks by the monitoring user, as a second real user.

The layout the docs recommend: the spool owned by the monitoring user
(``nagios`` on Debian; here a user created for the test), the state
directory (journal, ``state.json``, the lock, ``control/``) owned by
escalator's own user, the collector run as root.  Every command runs as a
subprocess through the public commands, the attacker's through ``setpriv``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from escalator_handlers import spool
from spool_fixtures import ESCALATOR, HANDLER, handler_env, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "useradd", "userdel", "groupdel")),
    reason="needs root, setpriv and useradd to act as a second user")

CHECK_ESCALATOR = str(Path(ESCALATOR).parent / "check_escalator")


class Layout:
    """A root dir (0755) with spool/ (monitoring user), state/ (escalator's user), a config."""

    def __init__(self, root: Path, nagios: str, escalator: str) -> None:
        import pwd

        self.root, self.nagios, self.escalator = root, nagios, escalator
        self.nagios_uid = pwd.getpwnam(nagios).pw_uid
        self.esc_uid = pwd.getpwnam(escalator).pw_uid
        self.esc_gid = pwd.getpwnam(escalator).pw_gid
        self.spool = root / "spool"
        self.state = root / "state"
        self.out = root / "out"
        self.config = root / "escalator.yaml"
        self.spool.mkdir()
        os.chown(self.spool, self.nagios_uid, self.esc_gid)
        self.spool.chmod(0o2770)
        self.state.mkdir()
        os.chown(self.state, self.esc_uid, self.esc_gid)
        self.state.chmod(0o2750)
        self.out.mkdir()
        self.write_config()

    def write_config(self, level_extra: str = "") -> None:
        self.config.write_text(
            f"spool: {self.spool}\njournal: {self.state}/journal.jsonl\nquiescence: 0s\n"
            f"spool_mode: 0o2770\nlevels:\n  - name: vm\n    quiescence: 0s\n    max_attempts: 1\n{level_extra}"
            f"    steps: [{{shell: 'echo {{host}} >> {self.out}/vm.txt', foreach: host}}]\n"
            "checks:\n  - {host: '*', level: vm}\n")
        self.config.chmod(0o644)

    @property
    def journal(self) -> Path:
        return self.state / "journal.jsonl"

    def records(self, kind: str) -> List[dict]:
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [r for r in map(json.loads, lines) if r.get("kind") == kind]

    def vm(self) -> List[str]:
        p = self.out / "vm.txt"
        return p.read_text().split() if p.exists() else []

    def as_user(self, user: str, *argv: str, env: dict = None, check_rc: bool = False,
                timeout: float = 30) -> subprocess.CompletedProcess:
        import pwd

        pw = pwd.getpwnam(user)
        r = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *argv],
                           capture_output=True, text=True, cwd="/", timeout=timeout,
                           env=handler_env({"USER": user, "LOGNAME": user, **(env or {})}))
        if check_rc:
            assert r.returncode == 0, r.stderr
        return r

    def esc(self, *args: str, user: str = "root", **kw) -> subprocess.CompletedProcess:
        argv = [ESCALATOR, *args, "--config", str(self.config)]
        if user == "root":
            return subprocess.run(argv, capture_output=True, text=True, cwd="/", timeout=kw.get("timeout", 30),
                                  env=handler_env({"USER": "root"}))
        return self.as_user(user, *argv, **kw)

    def event(self, host: str, state: str = "DOWN") -> None:
        """The monitoring user's handler records an event (no collector spawned)."""
        self.as_user(self.nagios, HANDLER, "--spool", str(self.spool), "--host", host, "--state", state,
                     "--state-type", "HARD", "--attempt", "3", "--output", "x", check_rc=True)

    def plant(self, script: str) -> None:
        """Run a shell script as the monitoring user inside the spool."""
        self.as_user(self.nagios, "sh", "-ec", f"cd {self.spool}; {script}", check_rc=True)


@pytest.fixture
def layout() -> Iterator[Layout]:
    tag = f"{os.getpid() % 100000}{os.urandom(2).hex()}"
    nagios, escalator = f"esct{tag}n", f"esct{tag}e"
    made: List[str] = []
    root = Path(tempfile.mkdtemp(prefix="escalator-trust-"))  # pytest's tmp is root-only
    try:
        for name in (escalator, nagios):
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell",
                            "/usr/sbin/nologin", name], check=True, capture_output=True)
            made.append(name)
        # The reader's side: the monitoring user in escalator's group (docs/guarantees.rst).
        subprocess.run(["usermod", "-a", "-G", escalator, nagios], check=True, capture_output=True)
        root.chmod(0o755)
        site = Layout(root, nagios, escalator)
        yield site
        # A collector a command started (resume, approve) finishes before the tree goes.
        wait_for(lambda: spool.collector_running(str(site.spool)) is None, 30, what="the collector gone")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)


def _victim(layout: Layout, name: str) -> Path:
    p = layout.root / name
    p.write_text("root's secret\n")
    p.chmod(0o600)
    return p


def _unchanged(victims: List[Path]) -> None:
    for v in victims:
        st = v.lstat()
        assert stat.S_ISREG(st.st_mode) and v.read_text() == "root's secret\n", v
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), v


def test_symlinks_the_monitoring_user_plants_never_redirect_a_root_write(layout: Layout) -> None:
    victims = [_victim(layout, n) for n in ("pid", "config", "lock", "tmpconfig")]
    pid_now = int(Path("/proc/sys/kernel/ns_last_pid").read_text()) if Path(
        "/proc/sys/kernel/ns_last_pid").exists() else os.getpid()
    layout.plant(f"ln -s {victims[0]} collector.pid; ln -s {victims[1]} collector.config; "
                 f"ln -s {victims[2]} collector.lock; "
                 f"for p in $(seq {pid_now} {pid_now + 400}); do ln -s {victims[3]} .collector.config.$p; done")
    layout.event("web1")
    r = layout.esc("collect")
    assert r.returncode == 0, r.stderr
    assert layout.vm() == ["web1"]
    _unchanged(victims)
    assert layout.esc("pause", "--reason", "no collector running").returncode == 0
    _unchanged(victims)
    # Root's own files beside the journal are out of the monitoring user's reach.
    for name in ("journal.jsonl", "state.json", "collector.lock", "state.json.tmp.1", "control/x"):
        r = layout.as_user(layout.nagios, "ln", "-sf", str(victims[0]), str(layout.state / name))
        assert r.returncode != 0 and "Permission denied" in r.stderr, name
    _unchanged(victims)


def test_operator_records_forged_in_the_spool_are_rejected_and_never_obeyed(layout: Layout) -> None:
    assert layout.esc("pause", "--reason", "maintenance").returncode == 0
    forged = [{"kind": "resume", "time": time.time(), "user": "alice", "id": "forged-1"},
              {"kind": "request", "time": time.time(), "level": "vm", "hosts": ["attacker.example"],
               "user": "root", "id": "forged-2"},
              {"kind": "release", "time": time.time(), "host": "*", "user": "root", "id": "forged-3"}]
    lines = "".join(json.dumps(f) + "\n" for f in forged)
    layout.plant(f"printf '%s' '{lines}' >> events.jsonl")
    layout.event("web1")
    r = layout.esc("collect")
    assert r.returncode == 0, r.stderr
    assert "rejected a resume record" in r.stderr
    rejected = layout.records("rejected")
    assert len(rejected) == 3 and all("event spool" in x["reason"] for x in rejected), rejected
    assert {json.loads(x["text"])["id"] for x in rejected} == {"forged-1", "forged-2", "forged-3"}
    assert not layout.records("resume") and not layout.records("request") and not layout.records("start")
    assert layout.vm() == []
    history = layout.esc("history")
    assert "alice" not in history.stdout
    assert "PAUSED: maintenance" in layout.esc("status").stdout
    # The real operator's word still counts.
    assert layout.esc("resume").returncode == 0
    wait_for(lambda: layout.vm() == ["web1"], 20, what="the run after the real resume")
    assert "attacker.example" not in layout.vm()


def test_a_forged_approval_is_rejected_and_the_real_one_runs(layout: Layout) -> None:
    layout.write_config("    approval: {timeout: 10m}\n")
    daemon = subprocess.Popen([ESCALATOR, "collect", "--daemon", "--config", str(layout.config)], cwd="/",
                              env=handler_env({"USER": "root"}), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        layout.event("web1")
        ask = wait_for(lambda: [a for a in layout.records("approval") if a.get("outcome") == "requested"], 20)
        rid = ask[0]["approval"]
        layout.plant(f"printf '%s\\n' '{json.dumps({'kind': 'approve', 'approval': rid, 'user': 'alice'})}'"
                     " >> events.jsonl; printf '!' > wakeup")
        wait_for(lambda: layout.records("rejected"), 20, what="the forged approval rejected")
        layout.event("web1")  # one more collector cycle: the forged answer really was not taken
        wait_for(lambda: len(layout.records("event")) >= 2, 20)
        assert not layout.records("approve") and not layout.records("start") and layout.vm() == []
        r = layout.esc("approve", rid)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: layout.records("start"), 20, what="the run the real approval let start")
        (ok,) = layout.records("approve")
        assert ok["user"] == "root" and ok["uid"] == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def test_after_a_root_collect_escalators_user_commands_and_the_monitoring_user_reads(layout: Layout) -> None:
    layout.event("web1")
    assert layout.esc("collect").returncode == 0
    for name, mode in (("journal.jsonl", 0o640), ("state.json", 0o640), ("collector.lock", 0o600)):
        st = (layout.state / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (layout.esc_uid, layout.esc_gid, mode), name

    # escalator's user may command; the owner of the file is who gave it, whatever it says.
    r = layout.esc("pause", "--reason", "by the escalator user", user=layout.escalator, env={"USER": "alice"})
    assert r.returncode == 0, r.stderr
    (pause,) = layout.records("pause")
    assert (pause["user"], pause["uid"]) == (layout.escalator, layout.esc_uid)

    # The monitoring user may not, and is told who may.
    r = layout.esc("resume", user=layout.nagios)
    assert r.returncode == 1
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert f"only root and {layout.escalator} (the owner of {layout.state}) may give operator commands" \
        in r.stderr, r.stderr
    assert not layout.records("resume")
    r = layout.esc("collect", user=layout.nagios)
    assert r.returncode == 1 and "internal error" not in r.stderr, r.stderr
    assert f"cannot lock {layout.state}/collector.lock: Permission denied (only root and {layout.escalator}" \
        in r.stderr, r.stderr

    # ... but, in escalator's group, reads status, history and check_escalator.
    r = layout.esc("status", user=layout.nagios)
    assert r.returncode == 0 and "PAUSED: by the escalator user" in r.stdout, r.stderr
    r = layout.esc("history", user=layout.nagios)
    assert r.returncode == 0 and "web1" in r.stdout, r.stderr
    r = layout.as_user(layout.nagios, CHECK_ESCALATOR, "--config", str(layout.config))
    assert r.returncode == 1 and r.stdout.startswith("ESCALATOR WARNING - paused"), r.stdout + r.stderr


def test_the_spool_owner_removing_the_lock_cannot_make_two_collectors_act(layout: Layout) -> None:
    daemon = subprocess.Popen([ESCALATOR, "collect", "--daemon", "--config", str(layout.config)], cwd="/",
                              env=handler_env({"USER": "root"}), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (layout.spool / "collector.pid").exists() and
                 (layout.spool / "collector.pid").read_text().strip() == str(daemon.pid), 20)
        layout.plant("rm -f collector.lock collector.pid")
        r = layout.as_user(layout.nagios, "rm", "-f", str(layout.state / "collector.lock"))
        assert r.returncode != 0 and "Permission denied" in r.stderr
        second = layout.esc("collect")
        assert second.returncode == 1
        assert f"another collector holds {layout.state}/collector.lock" in second.stderr, second.stderr
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


@pytest.mark.parametrize("entry,plant", [
    ("events.jsonl", "mkdir events.jsonl"),
    ("events.jsonl", "mkfifo events.jsonl"),
    ("events.jsonl", "ln -s /etc/passwd events.jsonl"),
    ("collector.lock", "mkfifo collector.lock"),
    ("taken-00000000000000000001-1.jsonl", "mkfifo taken-00000000000000000001-1.jsonl"),
], ids=["events-dir", "events-fifo", "events-symlink", "lock-fifo", "taken-fifo"])
def test_the_brake_works_whatever_the_monitoring_user_plants_in_the_spool(layout: Layout, entry: str,
                                                                         plant: str) -> None:
    layout.plant(plant)
    full = f"{layout.spool}/{entry}"
    for args in (["pause", "--reason", "brake"], ["status"], ["hold", "--host", "db-*"],
                 ["release", "--host", "db-*"], ["resume"]):
        r = layout.esc(*args, timeout=20)
        assert r.returncode == 0, (args, r.stderr)
        assert "internal error" not in r.stderr + r.stdout and "Traceback" not in r.stderr
        assert full in (r.stdout if args == ["status"] else r.stderr), (args, r.stdout, r.stderr)
    assert [r["kind"] for r in map(json.loads, layout.journal.read_text().splitlines())
            if r["kind"] in ("pause", "hold", "release", "resume")] == ["pause", "hold", "release", "resume"]
