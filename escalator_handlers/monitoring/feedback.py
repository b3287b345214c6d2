"""Feedback into Nagios 4 (external command file) and Icinga 2 (REST API).

The collector tells the monitoring system what escalator is doing: when a
run starts it comments on (and optionally acknowledges) every check that
asked for it, and it reports each run's outcome as a passive result of an
``escalator`` service, so the monitoring system's own notifications reach an
administrator when a run fails or a level is held.

Two sinks share one interface (``add_comment``, ``acknowledge``,
``passive_result``):
:class:`~escalator_handlers.monitoring.commandfile.CommandFile` writes Nagios
external commands into its FIFO,
:class:`~escalator_handlers.monitoring.icinga_api.IcingaClient` posts to the
Icinga 2 API.  ``Feedback`` is what the collector uses; built from a config
without a ``nagios:`` section it does nothing.  Failures raise
``FeedbackError`` (an EscalatorError) for the collector to journal.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from ..config import NagiosFeedback
from ..event import CheckKey, check_name
from .commandfile import CommandFile, CommandSink, FeedbackError, clean_text
from .icinga_api import IcingaClient

log = logging.getLogger(__name__)

#: Passive result code for each run outcome; anything else is UNKNOWN (3).
OUTCOME_CODES = {
    "ok": 0, "converged": 0, "dry-run": 0,
    "held": 1, "skipped": 1, "exhausted": 1,
    "failed": 2, "not converged": 2,
}
CODE_LABELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


class _Unusable:
    """A sink that could not be set up: every call raises the setup error."""

    def __init__(self, error: FeedbackError):
        self.error = error

    def _fail(self, *args: object, **kwargs: object) -> None:
        raise FeedbackError(str(self.error), self.error.target, unreachable=True)

    add_comment = acknowledge = passive_result = _fail


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
        # With the Icinga API set, feedback goes through it only: never Icinga's command
        # pipe, which v2.18 removes (a command_file left in the config is not written).
        if cfg.command_file and cfg.icinga_api is None:
            sinks.append(CommandFile(cfg.command_file))
        if cfg.icinga_api is not None:
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
    "CODE_LABELS", "OUTCOME_CODES", "CommandFile", "Feedback", "FeedbackError", "clean_text", "outcome_code",
]
