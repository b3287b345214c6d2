"""A real Nagios 4 for tests: generated config in a temp dir, foreground daemon.

``start_nagios`` writes a main config with every path inside the temp dir and
the fast-test settings of REAL-DAEMONS.md, loads the shipped
``nagios-conf/nagios4/commands.cfg`` and ``templates.cfg`` (only the
installation paths are rewritten, so the real macros and quoting are what
run) and defines a host ``web01`` and a service ``web01/HTTP`` whose check
script reports whatever state the test writes into a file.  It yields a
``NagiosDaemon`` and always stops and reaps the daemon afterwards.

Import the ``nagios`` fixture or call ``start_nagios`` directly when a test
needs the handler to spawn a collector with a config.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from daemon_fixtures import RunningDaemon
from escalator_handlers.monitoring.commandfile import MAX_TEXT, CommandFile, object_name
from escalator_handlers.monitoring.icinga_api import IcingaClient
from escalator_handlers.monitoring.statusdat import parse_blocks, read_status

NAGIOS = "/usr/sbin/nagios4"
PLUGINS = "/usr/lib/nagios/plugins"
REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "nagios-conf" / "nagios4"
HANDLER = Path(sys.executable).parent / "escalator-handler"

#: The installation paths the shipped command definitions use.
SHIPPED_HANDLER = "/usr/local/bin/escalator-handler"
SHIPPED_SPOOL = "/var/spool/escalator"
SHIPPED_CONFIG = "/etc/escalator/escalator.yaml"
SHIPPED_SPAWN = " --spawn-collector --config " + SHIPPED_CONFIG

HOST = "web01"
SERVICE = "HTTP"
FEEDBACK_HOST = "monitor"
FEEDBACK_SERVICE = "escalator"

# The check reports the state named in file $1 (OK WARNING CRITICAL UNKNOWN
# UP DOWN) with the text in $1.output, so a test controls both; $1.checked
# says it has run at least once.
CHECK_SCRIPT = """#!/bin/sh
: > "$1.checked"
state=$(cat "$1" 2>/dev/null || echo UNKNOWN)
text=$(cat "$1.output" 2>/dev/null || echo "synthetic $state")
case "$state" in
  OK|UP) code=0 ;;
  WARNING) code=1 ;;
  CRITICAL|DOWN) code=2 ;;
  *) code=3 ;;
esac
printf '%s - %s\\n' "$state" "$text"
exit $code
"""


def nagios_available() -> Optional[str]:
    """None when Nagios 4 can run here, else the reason it cannot."""
    if not os.path.exists(NAGIOS):
        return f"{NAGIOS} is not installed (Debian package nagios4-core; see setup.sh)"
    return None


def short_tmpdir() -> Path:
    """A temp dir with a short path: Nagios crashes on a long query_socket path."""
    return Path(tempfile.mkdtemp(prefix="nag", dir="/tmp"))


def main_config(root: Path, cfg_files: List[Path], extra: str = "") -> Path:
    """Write ``root/nagios.cfg``: every path under ``root``, fast-test settings."""
    for sub in ("var", "var/checkresults", "var/archives", "var/tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    resource = root / "resource.cfg"
    resource.write_text(f"$USER1$={PLUGINS}\n")
    user = "root" if os.geteuid() == 0 else None
    lines = [
        f"log_file={root}/var/nagios.log",
        *(f"cfg_file={p}" for p in cfg_files),
        f"resource_file={resource}",
        f"object_cache_file={root}/var/objects.cache",
        f"precached_object_file={root}/var/objects.precache",
        f"status_file={root}/var/status.dat",
        f"command_file={root}/var/nagios.cmd",
        f"query_socket={root}/var/q.qh",
        f"lock_file={root}/var/nagios.lock",
        f"temp_file={root}/var/nagios.tmp",
        f"temp_path={root}/var/tmp",
        f"check_result_path={root}/var/checkresults",
        f"log_archive_path={root}/var/archives",
        f"state_retention_file={root}/var/retention.dat",
        f"debug_file={root}/var/debug.log",
        *([f"nagios_user={user}", f"nagios_group={user}"] if user else []),
        "check_external_commands=1",
        "interval_length=1",
        "check_result_reaper_frequency=1",
        "status_update_interval=1",
        "service_inter_check_delay_method=n",
        "host_inter_check_delay_method=n",
        "max_service_check_spread=1",
        "max_host_check_spread=1",
        "cached_host_check_horizon=0",
        "cached_service_check_horizon=0",
        "log_service_retries=1",
        "log_host_retries=1",
        "log_event_handlers=1",
        "log_external_commands=1",
        "log_passive_checks=1",
        "enable_notifications=0",
        "enable_event_handlers=1",
        "enable_flap_detection=0",
        "check_for_updates=0",
        "use_syslog=0",
        "retain_state_information=0",
        "event_handler_timeout=10",
        # Debian's default; the single quotes in commands.cfg rely on it.
        "illegal_macro_output_chars=`~$&|'\"<>",
        "illegal_object_name_chars=`~!$%^&*|'\"<>?,()=",
        extra,
    ]
    cfg = root / "nagios.cfg"
    cfg.write_text("\n".join(line for line in lines if line) + "\n")
    return cfg


def base_objects(root: Path) -> Path:
    """Time period, contact, do-nothing notification command, generic-* templates.

    Nagios insists on the first three; the templates stand in for the
    generic-host/generic-service an installation already has.
    """
    path = root / "base.cfg"
    days = "\n".join(f"    {d} 00:00-24:00" for d in
                     ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))
    path.write_text(f"""define timeperiod {{
    timeperiod_name 24x7
    alias 24x7
{days}
}}

define command {{
    command_name notify-none
    command_line /bin/true
}}

define contact {{
    contact_name admin
    alias admin
    host_notifications_enabled 0
    service_notifications_enabled 0
    host_notification_period 24x7
    service_notification_period 24x7
    host_notification_options n
    service_notification_options n
    host_notification_commands notify-none
    service_notification_commands notify-none
}}

define host {{
    name generic-host
    check_interval 1
    retry_interval 1
    max_check_attempts 2
    check_period 24x7
    notification_period 24x7
    contacts admin
    register 0
}}

define service {{
    name generic-service
    check_interval 1
    retry_interval 1
    max_check_attempts 2
    check_period 24x7
    notification_period 24x7
    contacts admin
    register 0
}}
""")
    return path


def shipped_commands(dest: Path, spool: Path, config: Optional[Path]) -> Path:
    """Copy the shipped commands.cfg, rewriting only the installation paths."""
    text = (CONF_DIR / "commands.cfg").read_text()
    for needle in (SHIPPED_HANDLER, SHIPPED_SPOOL, SHIPPED_SPAWN):
        assert needle in text, f"commands.cfg no longer contains {needle!r}"
    text = text.replace(SHIPPED_HANDLER, str(HANDLER)).replace(SHIPPED_SPOOL, str(spool))
    if config is None:
        text = text.replace(SHIPPED_SPAWN, "")
    else:
        text = text.replace(SHIPPED_CONFIG, str(config))
    dest.write_text(text)
    return dest


def verify(cfg: Path) -> subprocess.CompletedProcess:
    """Run ``nagios4 -v`` on a main config."""
    return subprocess.run([NAGIOS, "-v", str(cfg)], capture_output=True, text=True, timeout=30)


@dataclass
class NagiosDaemon(RunningDaemon):
    """A running Nagios 4 and the files a test looks at."""

    root: Path
    cfg: Path
    spool: Path
    proc: subprocess.Popen
    host: str = HOST
    service: str = SERVICE
    started: float = field(default_factory=time.time)

    @property
    def log(self) -> Path:
        return self.root / "var" / "nagios.log"

    @property
    def command_file(self) -> Path:
        return self.root / "var" / "nagios.cmd"

    @property
    def status_file(self) -> Path:
        return self.root / "var" / "status.dat"



@contextlib.contextmanager
def start_nagios(workdir: Path, config: Optional[Path] = None, extra_objects: str = "",
                 spool: Optional[Path] = None, main_extra: str = "") -> Iterator[NagiosDaemon]:
    """Start Nagios 4 in the foreground; ``config`` makes the handler spawn a collector;
    ``main_extra`` lines go at the end of nagios.cfg (a later setting wins).

    ``workdir`` holds the spool and test files; the daemon itself lives in a
    short /tmp path (the query socket path must be short) removed afterwards.
    """
    reason = nagios_available()
    if reason:
        pytest.skip(reason)
    root = short_tmpdir()
    spool = spool or workdir / "spool"  # the handler creates it with the mode it wants
    check = root / "check_flip"
    check.write_text(CHECK_SCRIPT)
    check.chmod(0o755)
    (root / "host.state").write_text("UP\n")
    (root / "service.state").write_text("OK\n")
    objects = root / "objects.cfg"
    objects.write_text(f"""define command {{
    command_name escalator-test-flip
    command_line {check} $ARG1$
}}

define host {{
    use escalated-host,generic-host
    host_name {HOST}
    alias test node
    address 127.0.0.1
    check_command escalator-test-flip!{root}/host.state
}}

define service {{
    use escalated-service,generic-service
    host_name {HOST}
    service_description {SERVICE}
    check_command escalator-test-flip!{root}/service.state
}}

define host {{
    use generic-host
    host_name {FEEDBACK_HOST}
    alias escalator reports here
    address 127.0.0.1
    check_command escalator-test-flip!{root}/feedback-host.state
}}

define service {{
    use generic-service
    host_name {FEEDBACK_HOST}
    service_description {FEEDBACK_SERVICE}
    check_command escalator-test-flip!{root}/feedback.state
    active_checks_enabled 0
    passive_checks_enabled 1
    max_check_attempts 1
}}
{extra_objects}
""")
    (root / "feedback-host.state").write_text("UP\n")
    cfg = main_config(root, [
        base_objects(root),
        shipped_commands(root / "commands.cfg", spool, config),
        CONF_DIR / "templates.cfg",
        objects,
    ], main_extra)
    out = open(root / "nagios.out", "wb")
    proc = subprocess.Popen([NAGIOS, str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(root), start_new_session=True)
    daemon = NagiosDaemon(root=root, cfg=cfg, spool=spool, proc=proc)
    try:
        # Ready when the service has had its first (OK) check: flips after
        # that are state changes Nagios reports to the handler.
        daemon.wait_for(lambda: daemon.command_file.exists() and checked(daemon.status_file, HOST, SERVICE),
                        timeout=15, what="Nagios start-up and first service check")
        yield daemon
    finally:
        daemon.stop()
        out.close()
        if os.environ.get("ESCALATOR_KEEP_NAGIOS"):
            print(f"kept Nagios dir {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def nagios(tmp_path: Path) -> Iterator[NagiosDaemon]:
    """A running Nagios 4 whose event handlers spool to ``tmp_path/spool`` (no collector)."""
    with start_nagios(tmp_path) as daemon:
        yield daemon


def service_status(status_file: Path, host: str, service: str) -> Optional[Dict[str, str]]:
    """status.dat's fields for a service once it has had a check, else None.

    Parsed here, independent of escalator's own status.dat parser.
    """
    try:
        text = status_file.read_text(errors="replace")
    except FileNotFoundError:
        return None
    for block in re.findall(r"servicestatus \{(.*?)\}", text, re.S):
        fields = dict(line.strip().split("=", 1) for line in block.strip().splitlines() if "=" in line)
        if fields.get("host_name") == host and fields.get("service_description") == service \
                and fields.get("has_been_checked") == "1":
            return fields
    return None


def checked(status_file: Path, host: str, service: str) -> bool:
    """Whether status.dat says the service has had a check."""
    return service_status(status_file, host, service) is not None


def service_alerts(log_text: str, host: str = HOST, service: str = SERVICE) -> List[str]:
    """The ``SERVICE ALERT`` lines of one service in a Nagios log."""
    pat = re.compile(rf"^\[\d+\] SERVICE ALERT: {re.escape(host)};{re.escape(service)};(.*)$", re.M)
    return pat.findall(log_text)


# -- what tests do to a monitoring system that escalator itself never does --


@dataclass(frozen=True)
class Comment:
    host: str
    service: Optional[str]
    author: str
    text: str
    entry_time: float
    entry_type: int                # 1 user, 2 downtime, 3 flapping, 4 acknowledgement


def parse_comments(path: str) -> List[Comment]:
    """The host and service comments in a status.dat."""
    comments = []
    for kind, fields in parse_blocks(read_status(path)):
        if kind in ("hostcomment", "servicecomment") and fields.get("host_name"):
            comments.append(Comment(
                host=fields["host_name"],
                service=fields.get("service_description") if kind == "servicecomment" else None,
                author=fields.get("author", ""),
                text=fields.get("comment_data", ""),
                entry_time=float(fields.get("entry_time") or 0),
                entry_type=int(fields.get("entry_type") or 1),
            ))
    return comments


def schedule_downtime(sink, host: str, service: Optional[str], start: float, end: float, text: str,
                      fixed: bool = True, duration: float = 0) -> None:
    """Schedule a downtime through Nagios's command file or the Icinga 2 API, as an operator would."""
    if isinstance(sink, IcingaClient):
        sink.action("schedule-downtime", host, service, author=sink.author, comment=str(text)[:MAX_TEXT],
                    start_time=int(start), end_time=int(end), fixed=fixed, duration=int(duration or end - start))
        return
    assert isinstance(sink, CommandFile)
    times = (int(start), int(end), 1 if fixed else 0, 0, int(duration or end - start))
    if service is None:
        sink.command("SCHEDULE_HOST_DOWNTIME", object_name(host, "host"), *times, sink.author, text)
    else:
        sink.command("SCHEDULE_SVC_DOWNTIME", object_name(host, "host"),
                     object_name(service, "service"), *times, sink.author, text)
