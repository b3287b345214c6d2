"""SSH benchmarks against a real OpenSSH sshd on loopback.

Debian's sshd is started the way ``tests/sshd_fixtures.py`` starts it (its
key generation, user choice and shutdown helpers; generated host and client
keys, a known_hosts file), here listening on 50 loopback addresses
127.0.0.1-127.0.0.50 and one port, so a ``foreach: host`` ssh step has 50
distinct targets.  Network only to 127.0.0.x.

Fan-out: one command (``true``) on 50 targets through ``StepRunner.run_foreach``
(paramiko, concurrency 10) vs the OpenSSH client run once per target in
sequence (BatchMode, the same key, known_hosts and key exchange).  Reuse: five commands
on one host in one level through one StepRunner (one pooled connection) vs
a new StepRunner, hence a new connection, per command.  sshd's log counts
the logins to show how many connections each side opened.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .harness import REPO, Context, Row, interleaved, median, ms

FANOUT = 50
COMMANDS = 5
#: The key exchange paramiko uses.  OpenSSH 9's default, sntrup761x25519, costs
#: about 90 ms more per connection here; paramiko does not offer it, and the
#: comparison is about connections, not about post-quantum key exchange.
KEX = "curve25519-sha256,curve25519-sha256@libssh.org"


def _import_fixtures():
    tests = os.path.join(REPO, "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import sshd_fixtures

    return sshd_fixtures


class _Server:
    """sshd on ``n`` loopback addresses and one port, with generated keys.

    sshd listens on at most 16 sockets (MAX_LISTEN_SOCKS), so 50 addresses
    take four sshd processes sharing one host key and one port.  As the
    fixtures' ``user_sshd`` does, as root they run as, and log in as, an
    unprivileged user with a stock shell: root's ~/.bashrc here runs
    ``pyenv init`` (~100 ms per remote command), which would time the
    target's shell rather than the connection.
    """

    def __init__(self, ctx: Context, n: int) -> None:
        fx = _import_fixtures()
        self.fx = fx
        keys = Path(ctx.tmp) / "sshkeys"
        keys.mkdir()
        fx._keygen(keys / "client")
        self.key_file = str(keys / "client")
        user = fx._unprivileged_user() if os.geteuid() == 0 and shutil.which("setpriv") else None
        self.user = user or pwd.getpwuid(os.geteuid()).pw_name
        # The sshd's own files must be readable by that user: not under the 0700 scratch dir.
        self.dir = Path(tempfile.mkdtemp(prefix="escalator-bench-sshd-"))
        os.chmod(self.dir, 0o755)
        self.procs: List["subprocess.Popen[bytes]"] = []
        self.logs: List[Path] = []
        try:
            self._start(fx, keys, user, n)
        except BaseException:
            self.close()
            raise

    def _start(self, fx: Any, keys: Path, user: Optional[str], n: int) -> None:
        d = self.dir
        fx._keygen(d / "host_ed25519")
        (d / "authorized_keys").write_text((keys / "client.pub").read_text())
        self.port = fx.free_port()
        self.addresses = [f"127.0.0.{i}" for i in range(1, n + 1)]
        algo, key = (d / "host_ed25519.pub").read_text().split()[:2]
        self.known_hosts = str(keys / "known_hosts")
        Path(self.known_hosts).write_text("".join(f"[{a}]:{self.port} {algo} {key}\n" for a in self.addresses))
        groups = [self.addresses[i:i + 16] for i in range(0, n, 16)]
        for i, group in enumerate(groups):
            (d / f"sshd_config-{i}").write_text("".join(f"ListenAddress {a}\n" for a in group) + f"""\
Port {self.port}
HostKey {d}/host_ed25519
PidFile {d}/sshd-{i}.pid
AuthorizedKeysFile {d}/authorized_keys
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
PrintMotd no
UseDNS no
MaxStartups 64
MaxSessions 64
LogLevel INFO
""")
        if user:
            subprocess.run(["chown", "-R", user, str(d)], check=True)
        elif os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        for i, group in enumerate(groups):
            argv = [fx.SSHD, "-D", "-e", "-f", str(d / f"sshd_config-{i}")]
            if user:
                argv = ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
                        "--init-groups", "--"] + argv
            log = d / f"sshd-{i}.log"
            with open(log, "wb") as err:
                self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err))
            self.logs.append(log)
        deadline = time.monotonic() + 10
        for proc, log, group in zip(self.procs, self.logs, groups):
            while log.read_text(errors="replace").count("Server listening on") < len(group):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.01)

    def accepted(self) -> int:
        """Logins accepted so far (one per TCP connection)."""
        return sum(log.read_text(errors="replace").count("Accepted publickey") for log in self.logs)

    def close(self) -> None:
        for proc in self.procs:
            self.fx._stop(proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def _step(sshd: Any, host: str, foreach: bool, command: str = "true"):
    from escalator_handlers.config import SshOptions, Step

    opts = SshOptions(host=host, port=sshd.port, user=sshd.user, key_file=sshd.key_file,
                      known_hosts=sshd.known_hosts, connect_timeout=10.0)
    return Step(kind="ssh", where="levels[0].steps[0]", command=command, ssh=opts,
                foreach="host" if foreach else None, concurrency=10, timeout=60.0)


def _values(hosts: List[str]) -> Dict[str, Any]:
    return {"level": "bench", "hosts": hosts, "summary": "benchmark", "checks": []}


def _ssh_argv(sshd: Any, addr: str) -> List[str]:
    return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"IdentityFile={sshd.key_file}", "-o", f"UserKnownHostsFile={sshd.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", f"KexAlgorithms={KEX}", "-o", "LogLevel=ERROR", "-p", str(sshd.port), f"{sshd.user}@{addr}", "true"]


def ssh(ctx: Context) -> List[Row]:
    from escalator_handlers.steps import StepRunner

    from .harness import run_child

    n = 5 if ctx.quick else FANOUT
    server = _Server(ctx, n)
    sshd = server
    try:
        hosts = list(sshd.addresses)
        step = _step(sshd, "{host}", True)
        logins: Dict[str, List[int]] = {"fanout": [], "sequential": [], "reused": [], "per-command": []}

        def counted(name: str, fn):
            def go() -> float:
                before = sshd.accepted()
                t = time.perf_counter()
                fn()
                dt = time.perf_counter() - t
                time.sleep(0.05)  # sshd logs the login a moment after it happens
                logins[name].append(sshd.accepted() - before)
                return dt
            return go

        def fanout() -> None:
            with StepRunner() as r:
                res = r.run_foreach(step, hosts, _values(hosts))
            bad = [x for x in res if x.exit != 0]
            if bad or len(res) != len(hosts):
                raise RuntimeError(f"ssh fan-out failed: {bad[:3]}")

        def sequential() -> None:
            for addr in hosts:
                run_child(_ssh_argv(sshd, addr))

        rounds = 1 if ctx.quick else 3
        ctx.say(f"ssh fan-out: {n} targets, {rounds} round(s) of paramiko (concurrency 10) and ssh in sequence")
        t = interleaved({"fanout": counted("fanout", fanout), "sequential": counted("sequential", sequential)},
                        rounds, warmup=0)
        f, s = median(t["fanout"]), median(t["sequential"])
        rows = [Row(f"ssh fan-out: one command on {n} targets, concurrency 10", ms(f),
                    f"ssh client in sequence: {ms(s)}", f"{s / f:.1f}x faster", ">= 4x faster", s / f >= 4.0,
                    f"median of {rounds}; logins per round: {logins['fanout'][-1]} vs {logins['sequential'][-1]}; "
                    f"{os.cpu_count()} cores shared by sshd, the client and the harness; login user {server.user}")]

        steps = [_step(sshd, "127.0.0.1", False, f"echo step {i}") for i in range(COMMANDS)]
        one = _values(["127.0.0.1"])

        def reused() -> None:
            with StepRunner() as r:
                for st in steps:
                    if r.run(st, one).exit != 0:
                        raise RuntimeError("ssh step failed")

        def per_command() -> None:
            for st in steps:
                with StepRunner() as r:
                    if r.run(st, one).exit != 0:
                        raise RuntimeError("ssh step failed")

        rounds = 3 if ctx.quick else 10
        ctx.say(f"ssh reuse: {COMMANDS} commands on one host, {rounds} rounds each")
        t = interleaved({"reused": counted("reused", reused), "per-command": counted("per-command", per_command)},
                        rounds, warmup=1)
        a, b = median(t["reused"]), median(t["per-command"])
        rows.append(Row(f"ssh: {COMMANDS} commands on one host in one level", ms(a),
                        f"a connection per command: {ms(b)}", f"{b / a:.1f}x faster", ">= 2x faster", b / a >= 2.0,
                        f"median of {rounds}; logins per round: {logins['reused'][-1]} vs {logins['per-command'][-1]}"))
        return rows
    finally:
        server.close()
