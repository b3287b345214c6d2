"""Nagios's external command file, and what every feedback sink shares.

``CommandFile`` writes Nagios external commands (comments, acknowledgements,
passive results) into the command FIFO.  A write never blocks: a
Nagios that is not reading its command file is an error at once
(``FeedbackError``), not a hang.  ``AUTHOR``, ``MAX_TEXT``, ``clean_text``
and ``FeedbackError`` are shared with the Icinga 2 API sink
(:mod:`~escalator_handlers.monitoring.icinga_api`); choosing the sinks is
:mod:`~escalator_handlers.monitoring.feedback`'s job.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from typing import Callable, Optional, Protocol, Sequence

from .. import defaults
from ..errors import EscalatorError

log = logging.getLogger(__name__)

AUTHOR = defaults.FEEDBACK_AUTHOR

#: A write of at most PIPE_BUF bytes to a FIFO is atomic: concurrent writers
#: (Nagios's CGIs, other tools) cannot interleave with our command line.
PIPE_BUF = 4096
MAX_TEXT = 1000

# Nagios separates command fields with ';' and commands with '\n'; any
# control character in a field is at best garbage in the log.
_UNSAFE = re.compile(r"[;\x00-\x1f\x7f]")

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


__all__ = [
    "AUTHOR", "MAX_TEXT", "PIPE_BUF", "CommandFile", "CommandSink", "FeedbackError", "clean_text", "object_name",
]
