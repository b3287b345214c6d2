"""Feedback into Nagios 4 (external command file) and Icinga 2 (REST API).

The collector tells the monitoring system what escalator is doing: when a
run starts it comments on (and optionally acknowledges) every check that
asked for it, and it reports each run's outcome as a passive result of an
``escalator`` service, so the monitoring system's own notifications reach an
administrator when a run fails or a level is held.

Two sinks share one interface (``add_comment``, ``acknowledge``,
``passive_result``, ``schedule_downtime``): ``CommandFile`` writes Nagios
external commands into its FIFO, ``icinga_api.IcingaClient`` posts to the
Icinga 2 API.  ``Feedback`` is what the collector uses; built from a config
without a ``nagios:`` section it does nothing.  Failures raise
``FeedbackError`` (an EscalatorError) for the collector to journal; feedback
never blocks: a Nagios that is not reading its command file is an error at
once, not a hang.

Reading Nagios's ``status.dat`` lives in ``nagios_status`` (re-exported
here: ``parse_status``, ``status_events``, ``still_failing``).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Protocol, Sequence, Tuple

from .config import NagiosFeedback
from .errors import EscalatorError
from .event import CheckKey, check_name
from .nagios_status import CheckStatus, StatusError, parse_status, status_events, still_failing

log = logging.getLogger(__name__)

AUTHOR = "escalator"

#: A write of at most PIPE_BUF bytes to a FIFO is atomic: concurrent writers
#: (Nagios's CGIs, other tools) cannot interleave with our command line.
PIPE_BUF = 4096
MAX_TEXT = 1000

# Nagios separates command fields with ';' and commands with '\n'; any
# control character in a field is at best garbage in the log.
_UNSAFE = re.compile(r"[;\x00-\x1f\x7f]")

#: Passive result code for each run outcome; anything else is UNKNOWN (3).
OUTCOME_CODES = {
    "ok": 0, "converged": 0, "dry-run": 0,
    "held": 1, "skipped": 1, "exhausted": 1,
    "failed": 2, "not converged": 2,
}
CODE_LABELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


class FeedbackError(EscalatorError):
    """The monitoring system could not be told; ``target`` names the file or URL.

    ``unreachable`` means the sink as a whole is unusable (daemon down,
    wrong path, refused login), not just one object or command.
    """

    def __init__(self, message: str, target: str = "", unreachable: bool = False):
        self.target = target
        self.unreachable = unreachable
        super().__init__(message)


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Free text made safe as the last field of an external command.

    ';' becomes ':' (as Nagios itself does with plugin output) and control
    characters become spaces, so untrusted text (plugin output, host names
    quoted in a summary) cannot end the field or start another command.
    """
    text = _UNSAFE.sub(lambda m: ":" if m.group() == ";" else " ", str(text))
    text = re.sub(r" {2,}", " ", text).strip()
    return text[:limit]


def object_name(name: Optional[str], what: str) -> str:
    """A host or service name, refused (not altered) when it cannot be addressed."""
    if not name or _UNSAFE.search(name):
        raise FeedbackError(f"cannot address {what} {name!r} in a Nagios command: "
                            "empty or contains ';' or a control character")
    return name


class CommandSink(Protocol):
    """What a monitoring system accepts from escalator; ``service`` None = host."""

    def add_comment(self, host: str, service: Optional[str], text: str) -> None: ...

    def acknowledge(self, host: str, service: Optional[str], text: str) -> None: ...

    def passive_result(self, host: str, service: Optional[str], code: int, output: str) -> None: ...

    def schedule_downtime(self, host: str, service: Optional[str], start: float, end: float,
                          text: str, fixed: bool = True, duration: float = 0) -> None: ...


class CommandFile:
    """Writes Nagios external commands (``[epoch] COMMAND;args``) to its FIFO.

    Opens with O_NONBLOCK: a blocking open of a FIFO nobody reads hangs
    forever, and that is exactly the state of a stopped Nagios.
    """

    def __init__(self, path: str, author: str = AUTHOR, clock: Callable[[], float] = time.time):
        self.path = path
        self.author = author
        self.clock = clock

    def line(self, command: str, *args: object) -> bytes:
        """One command line; the last argument is free text, the others must be clean."""
        fields = [str(a) for a in args]
        for f in fields[:-1]:
            if _UNSAFE.search(f):
                raise FeedbackError(f"unsafe field {f!r} in {command}", self.path)
        if fields:
            fields[-1] = clean_text(fields[-1])
        data = f"[{int(self.clock())}] {';'.join([command, *fields])}\n".encode("utf-8", "replace")
        if len(data) > PIPE_BUF:
            raise FeedbackError(f"{command} line longer than {PIPE_BUF} bytes", self.path)
        return data

    def send(self, lines: Sequence[bytes]) -> None:
        """Write each line with one write(2); raise FeedbackError, never block."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise FeedbackError(self._why(exc), self.path, unreachable=True) from None
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                # Nagios 4 reads only a FIFO: appending to a plain file would
                # look like success and reach nobody.
                raise FeedbackError(f"{self.path} is not a FIFO (is it Nagios's command_file?)",
                                    self.path, unreachable=True)
            for data in lines:
                try:
                    written = os.write(fd, data)
                except OSError as exc:
                    raise FeedbackError(self._why(exc), self.path, unreachable=True) from None
                if written != len(data):
                    raise FeedbackError(f"short write to {self.path}", self.path)
                log.debug("nagios command: %s", data.decode("utf-8", "replace").rstrip())
        finally:
            os.close(fd)

    def _why(self, exc: OSError) -> str:
        if exc.errno == errno.ENXIO:
            return f"Nagios is not reading {self.path} (is it running?)"
        if exc.errno == errno.ENOENT:
            return f"{self.path} does not exist (Nagios not running, or check_external_commands=0?)"
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return f"{self.path} is full: Nagios is not keeping up with its commands"
        if exc.errno == errno.EPIPE:
            return f"Nagios stopped reading {self.path}"
        return f"cannot write {self.path}: {exc.strerror}"

    def command(self, command: str, *args: object) -> None:
        self.send([self.line(command, *args)])

    def add_comment(self, host: str, service: Optional[str], text: str) -> None:
        # persistent=0: the note belongs to this incident, not to the history
        # Nagios keeps across restarts.
        if service is None:
            self.command("ADD_HOST_COMMENT", object_name(host, "host"), 0, self.author, text)
        else:
            self.command("ADD_SVC_COMMENT", object_name(host, "host"),
                         object_name(service, "service"), 0, self.author, text)

    def acknowledge(self, host: str, service: Optional[str], text: str) -> None:
        # Not sticky (a change to another problem state pages again), no
        # notification, not persistent (the comment goes with the ack).
        if service is None:
            self.command("ACKNOWLEDGE_HOST_PROBLEM", object_name(host, "host"), 0, 0, 0, self.author, text)
        else:
            self.command("ACKNOWLEDGE_SVC_PROBLEM", object_name(host, "host"),
                         object_name(service, "service"), 0, 0, 0, self.author, text)

    def passive_result(self, host: str, service: Optional[str], code: int, output: str) -> None:
        # Nagios splits a check result's output at the first '|': what follows
        # would be read as performance data, so none of ours may contain one.
        output = str(output).replace("|", "/")
        if service is None:
            self.command("PROCESS_HOST_CHECK_RESULT", object_name(host, "host"), int(code), output)
        else:
            self.command("PROCESS_SERVICE_CHECK_RESULT", object_name(host, "host"),
                         object_name(service, "service"), int(code), output)

    def schedule_downtime(self, host: str, service: Optional[str], start: float, end: float,
                          text: str, fixed: bool = True, duration: float = 0) -> None:
        times = (int(start), int(end), 1 if fixed else 0, 0, int(duration or end - start))
        if service is None:
            self.command("SCHEDULE_HOST_DOWNTIME", object_name(host, "host"), *times, self.author, text)
        else:
            self.command("SCHEDULE_SVC_DOWNTIME", object_name(host, "host"),
                         object_name(service, "service"), *times, self.author, text)


class _Unusable:
    """A sink that could not be set up: every call raises the setup error."""

    def __init__(self, error: FeedbackError):
        self.error = error

    def _fail(self, *args: object, **kwargs: object) -> None:
        raise FeedbackError(str(self.error), self.error.target, unreachable=True)

    add_comment = acknowledge = passive_result = schedule_downtime = _fail


def outcome_code(outcome: str) -> int:
    return OUTCOME_CODES.get(str(outcome).lower(), 3)


@dataclass
class Feedback:
    """The collector's view: tell the monitoring system about runs.

    ``sinks`` empty means feedback is off and every method does nothing.
    """

    sinks: Tuple[CommandSink, ...] = ()
    acknowledge: bool = False
    host: str = field(default_factory=socket.gethostname)
    service: str = "escalator"

    @classmethod
    def from_config(cls, cfg: Optional[NagiosFeedback]) -> "Feedback":
        """Feedback as configured; a missing ``nagios:`` section gives a silent one.

        Never raises: a sink that cannot be set up fails each call instead.
        """
        if cfg is None:
            return cls()
        sinks: List[CommandSink] = []
        if cfg.command_file:
            sinks.append(CommandFile(cfg.command_file))
        if cfg.icinga_api is not None:
            from .icinga_api import IcingaClient

            try:
                sinks.append(IcingaClient.from_config(cfg.icinga_api))
            except FeedbackError as exc:
                # Reported on first use, like any other feedback failure, so
                # an unreadable password file does not stop the collector.
                sinks.append(_Unusable(exc))
        return cls(sinks=tuple(sinks), acknowledge=cfg.acknowledge,
                   host=cfg.host or socket.gethostname(), service=cfg.service)

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def run_started(self, checks: Iterable[CheckKey], levels: Sequence[str]) -> None:
        """Comment on (and acknowledge, if configured) each check that asked for the run."""
        text = "escalator: running levels " + ", ".join(levels)
        calls: List[Tuple[str, Callable[[CommandSink], None]]] = []
        for host, service in checks:
            name = check_name((host, service))
            calls.append((f"comment on {name}",
                          lambda s, h=host, v=service: s.add_comment(h, v, text)))
            if self.acknowledge:
                calls.append((f"acknowledge {name}",
                              lambda s, h=host, v=service: s.acknowledge(h, v, text)))
        self._each(calls)

    def run_finished(self, outcome: str, summary: str) -> None:
        """Report a run's outcome: ok -> OK, held/skipped -> WARNING, failed -> CRITICAL."""
        self.report(outcome_code(outcome), summary)

    def level_held(self, level: str, reason: str) -> None:
        """A level is held (attempts exhausted, limits, operator hold): WARNING."""
        self.report(1, f"level {level} held: {reason}")

    def report(self, code: int, summary: str) -> None:
        """A passive result of the ``escalator`` service."""
        output = f"ESCALATOR {CODE_LABELS[code] if 0 <= code < 4 else 'UNKNOWN'} - {summary}"
        self._each([(f"report to {self.host}/{self.service}",
                     lambda s: s.passive_result(self.host, self.service, code, output))])

    def _each(self, calls: Sequence[Tuple[str, Callable[[CommandSink], None]]]) -> None:
        # One unknown check or dead sink must not keep the others uninformed:
        # try everything, then raise one error naming every failure.  A sink
        # found unreachable is not tried again for the remaining calls.
        failures: List[str] = []
        dead = 0
        for sink in self.sinks:
            for what, call in calls:
                try:
                    call(sink)
                except FeedbackError as exc:
                    failures.append(f"{what}: {exc}")
                    if exc.unreachable:
                        dead += 1
                        break
        if failures:
            raise FeedbackError("; ".join(failures), unreachable=dead == len(self.sinks))


__all__ = [
    "CODE_LABELS", "CheckStatus", "CommandFile", "CommandSink", "Feedback", "FeedbackError",
    "OUTCOME_CODES", "StatusError", "clean_text", "object_name", "outcome_code",
    "parse_status", "status_events", "still_failing",
]
