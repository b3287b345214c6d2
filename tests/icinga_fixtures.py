"""A real Icinga 2 for tests: generated config in a temp dir, foreground daemon.

``start_icinga`` runs ``icinga2 daemon`` with every directory redefined
(-DDataDir ... -DInitRunDir) under a fresh temp dir, RunAsUser/RunAsGroup
set to the current user, the shipped ``nagios-conf/icinga2/escalator.conf``
included unchanged (the handler path, spool and config are custom
variables, overridden on the test host), and a host ``web01`` with a service
``web01/HTTP`` whose check script reports the state the test writes into a
file.  With ``api=True`` it also starts the REST API on 127.0.0.1 with a
test CA made by openssl and an ApiUser, for the feedback client.  The
daemon is always stopped and reaped afterwards.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import nagios_fixtures
from escalator_handlers.config import IcingaApi
from daemon_fixtures import RunningDaemon
from nagios_fixtures import CHECK_SCRIPT, HOST, SERVICE

ICINGA = "/usr/sbin/icinga2"
PLUGINS = "/usr/lib/nagios/plugins"
REPO = Path(__file__).resolve().parent.parent
ICINGA_CONF = REPO / "nagios-conf" / "icinga2" / "escalator.conf"
API_USER = "escalator"
FEEDBACK_HOST = "monitor"


def icinga_available() -> Optional[str]:
    """None when Icinga 2 can run here, else the reason it cannot."""
    if not os.path.exists(ICINGA):
        return f"{ICINGA} is not installed (Debian package icinga2-bin; see setup.sh)"
    return None


def defines(root: Path) -> List[str]:
    """The -D options that keep every Icinga 2 path inside ``root``."""
    d = root / "d"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    args = []
    for const, sub in (("DataDir", "data"), ("CacheDir", "cache"), ("LogDir", "log"),
                       ("InitRunDir", "run"), ("SpoolDir", "spool")):
        (d / sub).mkdir(parents=True, exist_ok=True)
        args.append(f"-D{const}={d / sub}")
    return args + [f"-DRunAsUser={user}", f"-DRunAsGroup={group}",
                   "-DNodeName=localhost", "-DZoneName=localhost"]


def validate(conf: Path, root: Path) -> subprocess.CompletedProcess:
    """``icinga2 daemon -C`` on a main config."""
    return subprocess.run([ICINGA, "daemon", "-C", "-c", str(conf), *defines(root)],
                          capture_output=True, text=True, timeout=60)


def compiled_objects(root: Path) -> List[dict]:
    """The objects ``icinga2 daemon -C`` wrote to CacheDir/icinga2.debug (netstrings of JSON)."""
    data = (root / "d" / "cache" / "icinga2.debug").read_bytes()
    objects, pos = [], 0
    while pos < len(data):
        colon = data.index(b":", pos)
        size = int(data[pos:colon])
        objects.append(json.loads(data[colon + 1:colon + 1 + size]))
        pos = colon + 1 + size + 1  # skip the trailing ","
    return objects


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(certs: Path) -> Path:
    """A test CA and a localhost certificate signed by it, where Icinga looks for them."""
    certs.mkdir(parents=True, exist_ok=True)
    ext = certs / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=escalator test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "localhost.key", "-out", "localhost.csr",
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "localhost.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "localhost.crt", "-days", "2", "-extfile", "san.ext")
    return certs / "ca.crt"


@dataclass
class IcingaDaemon(RunningDaemon):
    root: Path
    conf: Path
    spool: Path
    proc: subprocess.Popen
    api_url: Optional[str] = None
    api_password: Optional[str] = None
    ca_file: Optional[Path] = None
    host: str = HOST
    service: str = SERVICE

    @property
    def log(self) -> Path:
        return self.root / "d" / "log" / "icinga2.log"

    def problem_events(self) -> List[dict]:
        """The service's events from its first problem on (skips the start-up OK events)."""
        events = [e for e in self.events() if e.get("service") == self.service]
        for i, e in enumerate(events):
            if e.get("state") != "OK":
                return events[i:]
        return []


def main_conf(root: Path, spool: Path, config: Optional[Path], api_port: Optional[int] = None,
              password: str = "", extra: str = "", event_handlers: bool = True,
              permissions: Optional[List[str]] = None) -> Path:
    """The generated icinga2.conf: ITL, the shipped escalator.conf, the test objects
    (without ``event_handlers``, no EventCommand on them: ``escalator listen`` hears them)."""
    check = root / "check_flip"
    check.write_text(CHECK_SCRIPT)
    check.chmod(0o755)
    spawn = "true" if config else "false"
    api = ""
    if api_port:
        api = f"""
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {api_port}
}}
object ApiUser "{API_USER}" {{
  password = {json.dumps(password)}
  permissions = {json.dumps(permissions or ["actions/*", "objects/query/*", "events/*"])}
}}
object Endpoint NodeName {{ }}
object Zone ZoneName {{ endpoints = [ NodeName ] }}
"""
    host_handler = '  import "escalated-host"\n' if event_handlers else ""
    service_handler = '  import "escalated-service"\n' if event_handlers else ""
    conf = root / "icinga2.conf"
    conf.write_text(f"""const PluginDir = "{PLUGINS}"
include <itl>
include <plugins>
include "{ICINGA_CONF}"

object CheckerComponent "checker" {{ }}
object FileLogger "main-log" {{
  path = LogDir + "/icinga2.log"
  severity = "information"
}}
object CheckCommand "escalator-test-flip" {{
  command = [ "{check}", "$flip_file$" ]
}}
template Host "escalator-test-host" {{
  check_command = "escalator-test-flip"
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 2
  vars.escalator_handler = {json.dumps(str(nagios_fixtures.HANDLER))}
  vars.escalator_spool = {json.dumps(str(spool))}
  vars.escalator_config = {json.dumps(str(config or ""))}
  vars.escalator_spawn_collector = {spawn}
}}
object Host "{HOST}" {{
  import "escalator-test-host"
{host_handler}  vars.flip_file = "{root}/host.state"
}}
object Service "{SERVICE}" {{
  host_name = "{HOST}"
{service_handler}  check_command = "escalator-test-flip"
  vars.flip_file = "{root}/service.state"
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 2
}}
object Host "{FEEDBACK_HOST}" {{
  check_command = "dummy"
  check_interval = 1h
  vars.escalator_feedback = true
}}
{api}{extra}""")
    return conf


@contextlib.contextmanager
def start_icinga(workdir: Path, config: Optional[Path] = None, api: bool = False,
                 extra: str = "", event_handlers: bool = True,
                 permissions: Optional[List[str]] = None) -> Iterator[IcingaDaemon]:
    """Start Icinga 2 in the foreground; ``config`` makes the handler spawn a collector;
    ``extra`` is appended to its configuration; ``event_handlers=False`` leaves the
    EventCommand off the test host and service."""
    reason = icinga_available()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="ici", dir="/tmp"))
    spool = workdir / "spool"  # the handler creates it with the mode it wants
    (root / "host.state").write_text("UP\n")
    (root / "service.state").write_text("OK\n")
    port = password = ca = None
    if api:
        if shutil.which("openssl") is None:
            pytest.skip("openssl is needed to make the Icinga 2 API test certificates")
        ca = make_certs(root / "d" / "data" / "certs")
        port, password = free_port(), "test-" + os.urandom(8).hex()
    conf = main_conf(root, spool, config, port, password or "", extra, event_handlers, permissions)
    out = open(root / "icinga2.out", "wb")
    proc = subprocess.Popen([ICINGA, "daemon", "-c", str(conf), *defines(root)],
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=str(root), start_new_session=True)
    daemon = IcingaDaemon(root=root, conf=conf, spool=spool, proc=proc,
                          api_url=f"https://localhost:{port}" if port else None,
                          api_password=password, ca_file=ca)
    try:
        # Ready once the service has had its first (OK) check: a flip after
        # that is a state change.  (The handler's start-up UNKNOWN -> OK
        # event may still be on its way: see ``problem_events``.)
        daemon.wait_for(lambda: (root / "service.state.checked").exists(),
                        timeout=20, what="Icinga 2 start-up and first service check")
        if port:
            daemon.wait_for(lambda: _listening(port), timeout=10, what="the Icinga 2 API port")
        yield daemon
    finally:
        daemon.stop()
        out.close()
        if os.environ.get("ESCALATOR_KEEP_ICINGA"):
            print(f"kept Icinga dir {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def critical_via_api(ic: IcingaDaemon, tmp_path: Path) -> IcingaApi:
    """Make the service CRITICAL HARD; the ``nagios.icinga_api`` settings that reach this daemon."""
    ic.flip("CRITICAL")
    ic.wait_for(lambda: any(e["state_type"] == "HARD" for e in ic.problem_events()), what="HARD")
    pw = tmp_path / "api-password"
    pw.write_text(f"{ic.api_password}\n")
    return IcingaApi(url=str(ic.api_url), user=API_USER, password_file=str(pw), ca_file=str(ic.ca_file))


@pytest.fixture
def icinga(tmp_path: Path) -> Iterator[IcingaDaemon]:
    """A running Icinga 2 whose event handlers spool to ``tmp_path/spool`` (no collector)."""
    with start_icinga(tmp_path) as daemon:
        yield daemon


def restart_icinga(ic: IcingaDaemon) -> None:
    """Stop the daemon (SIGTERM) and start it again on the same config and DataDir."""
    ic.stop()
    out = open(ic.root / "icinga2.out", "ab")
    ic.proc = subprocess.Popen([ICINGA, "daemon", "-c", str(ic.conf), *defines(ic.root)],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=str(ic.root), start_new_session=True)
    out.close()
    if ic.api_url:
        port = int(ic.api_url.rsplit(":", 1)[1])
        ic.wait_for(lambda: _listening(port), timeout=20, what="the Icinga 2 API port after a restart")
