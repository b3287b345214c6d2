"""A real OpenSSH sshd for the step tests, started once per test session.

``sshd``: Debian's /usr/sbin/sshd in the foreground (``-D -e``) listening on
127.0.0.1..127.0.0.8 and two free ports (distinct targets for fan-out),
with a host key, an authorized client key, an encrypted client key and an
unauthorized one generated in a temporary directory, and a known_hosts file
listing every ``[addr]:port``.  As root it logs in as root (sudo works); the
privilege-separation directory /run/sshd is created if missing.

``user_sshd``: a second sshd running as an unprivileged local user, logging
in as that user.  OpenSSH honours the SSH "signal" channel request only for
such sessions, so the remote-timeout test needs it.

Both are always stopped at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from escalator_handlers.config import SshOptions

SSHD = "/usr/sbin/sshd"
ADDRESSES = tuple(f"127.0.0.{i}" for i in range(1, 9))  # all loopback on Linux


@dataclass(frozen=True)
class Sshd:
    dir: Path
    ports: Tuple[int, ...]
    addresses: Tuple[str, ...]
    user: str
    key_file: str              # authorized, unencrypted
    enc_key_file: str          # authorized, encrypted with the passphrase below
    passphrase_file: str
    wrong_key_file: str        # not authorized
    known_hosts: str
    host_key_line: str         # "ssh-ed25519 AAAA..." of this server
    log: Path
    proc: "subprocess.Popen[bytes]"

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def targets(self) -> List[Tuple[str, int]]:
        return [(a, p) for a in self.addresses for p in self.ports]

    def accepted(self) -> int:
        """How many logins sshd has accepted so far (one per TCP connection)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def options(self, **kw: object) -> SshOptions:
        base = dict(host="127.0.0.1", port=self.port, user=self.user, key_file=self.key_file,
                    known_hosts=self.known_hosts, connect_timeout=5.0)
        base.update(kw)
        return SshOptions(**base)  # type: ignore[arg-type]


def _keygen(path: Path, passphrase: str = "") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "escalator-test",
                    "-f", str(path)], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(d: Path, keys: Path, run_as: Optional[str], login: str) -> Sshd:
    """Write the config into ``d`` (owned by the sshd's user) and start sshd."""
    _keygen(d / "host_ed25519")
    ports = (free_port(), free_port())
    authorized = d / "authorized_keys"
    authorized.write_text((keys / "client.pub").read_text() + (keys / "client_enc.pub").read_text())
    conf = d / "sshd_config"
    conf.write_text("".join(f"ListenAddress {a}\n" for a in ADDRESSES)
                    + "".join(f"Port {p}\n" for p in ports) + f"""\
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {authorized}
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
    host_key_line = (d / "host_ed25519.pub").read_text().split()
    kh = keys / f"known_hosts-{ports[0]}"
    kh.write_text("".join(f"[{a}]:{p} {host_key_line[0]} {host_key_line[1]}\n"
                          for a in ADDRESSES for p in ports))
    log = d / "sshd.log"
    argv = [SSHD, "-D", "-e", "-f", str(conf)]
    if run_as:
        subprocess.run(["chown", "-R", run_as, str(d)], check=True)
        argv = ["setpriv", f"--reuid={run_as}", f"--regid={pwd.getpwnam(run_as).pw_gid}",
                "--init-groups", "--"] + argv
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    deadline = time.monotonic() + 10
    want = len(ADDRESSES) * len(ports)
    while log.read_text(errors="replace").count("Server listening on") < want:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"sshd did not start: {log.read_text(errors='replace')}")
        time.sleep(0.01)
    return Sshd(dir=d, ports=ports, addresses=ADDRESSES, user=login,
                key_file=str(keys / "client"), enc_key_file=str(keys / "client_enc"),
                passphrase_file=str(keys / "passphrase"), wrong_key_file=str(keys / "wrong"),
                known_hosts=str(kh), host_key_line=" ".join(host_key_line[:2]), log=log, proc=proc)


def _stop(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Client keys for the session: authorized, encrypted+authorized, unauthorized."""
    keys = tmp_path_factory.mktemp("sshkeys")
    _keygen(keys / "client")
    (keys / "passphrase").write_text("correct horse battery staple\n")
    _keygen(keys / "client_enc", "correct horse battery staple")
    _keygen(keys / "wrong")
    return keys


@pytest.fixture(scope="session")
def sshd(ssh_keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} not installed (apt-get install openssh-server)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    server = _start(tmp_path_factory.mktemp("sshd"), ssh_keys, None,
                    pwd.getpwuid(os.geteuid()).pw_name)
    try:
        yield server
    finally:
        _stop(server.proc)


def _unprivileged_user() -> Optional[str]:
    for pw in pwd.getpwall():
        if pw.pw_uid >= 100 and pw.pw_uid != 65534 and not pw.pw_shell.endswith(
                ("nologin", "false", "sync")) and os.path.exists(pw.pw_shell):
            return pw.pw_name
    return None


@pytest.fixture(scope="session")
def user_sshd(ssh_keys: Path) -> Iterator[Sshd]:
    """sshd running as (and logging in as) an unprivileged user."""
    if os.geteuid() != 0:
        d = Path(tempfile.mkdtemp(prefix="escalator-usshd-"))
        server = _start(d, ssh_keys, None, pwd.getpwuid(os.geteuid()).pw_name)
    else:
        user = _unprivileged_user()
        if user is None:
            pytest.skip("no unprivileged local user with a login shell to run a second sshd as")
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) not installed")
        # Outside the root-only pytest temp dir: the user's sshd must read it.
        d = Path(tempfile.mkdtemp(prefix="escalator-usshd-"))
        os.chmod(d, 0o755)
        server = _start(d, ssh_keys, user, user)
    try:
        yield server
    finally:
        _stop(server.proc)
        shutil.rmtree(server.dir, ignore_errors=True)
