"""``escalator-handler``: the event handler Nagios and Icinga run on every state change.

It records one event durably in the spool and returns; it never reads the
config and never waits for the collector.  Because the monitoring core runs
it for every SOFT attempt, HARD change and recovery, it is the hot path: it
parses argv by hand and imports only ``spool`` and light standard modules
(``tests/test_handler.py`` checks that yaml, click, paramiko, nagiosplugin,
filelock, argparse, typing and dataclasses stay out).  Everything needed
only on an error path is imported where the error is handled.

Exit status: 0 recorded; 2 bad usage; 1 the spool could not be written (the
reason is on stderr; the event is not recorded), or -- with --spawn-collector --
the event was recorded where the collector of that config would never see it
(a config that cannot be read, or names another spool).
"""

from __future__ import annotations

import os
import sys
import time

from . import __version__, event_limits, spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Optional, Sequence

PROG = "escalator-handler"
DEFAULT_SPOOL = spool.DEFAULT_SPOOL
MAX_OUTPUT = event_limits.OUTPUT_MAX
#: Testing only: a command line (shell words) run instead of the collector.
COLLECTOR_CMD_ENV = "ESCALATOR_COLLECTOR_CMD"

USAGE = f"""\
usage: {PROG} --host HOST [--service SERVICE] --state STATE [--state-type SOFT|HARD]
                         [--attempt N] [--downtime N] [--output TEXT] [--time T]
                         [--spool DIR] [--spawn-collector [--config PATH]]
       {PROG}            (event taken from NAGIOS_* environment macros)

Record one Nagios/Icinga event in the escalator spool, durably, and return.

options:
  --host HOST          host name
  --service SERVICE    service description; absent or empty for a host check
  --state STATE        OK WARNING CRITICAL UNKNOWN / UP DOWN UNREACHABLE, or 0-3
  --state-type TYPE    SOFT or HARD (default HARD)
  --attempt N          check attempt (default 1)
  --downtime N         scheduled downtime depth (default 0)
  --output TEXT        plugin output (kept up to {MAX_OUTPUT} characters)
  --time TIME          when the state was observed: epoch seconds or ISO 8601
                       (default: now; more than 5 minutes ahead or before 2000 is
                       recorded as now, with the claimed time kept)
  --spool DIR          spool directory (default $ESCALATOR_SPOOL, else {DEFAULT_SPOOL})
  --spawn-collector    start a detached `escalator collect` if none is running
  --config PATH        config passed to that collector (ignored otherwise)
  -h, --help           show this help and exit
  --version            show the version and exit

With neither --host nor --state, the event comes from NAGIOS_HOSTNAME,
NAGIOS_SERVICEDESC, NAGIOS_{{SERVICE,HOST}}{{STATE,STATETYPE,ATTEMPT,DOWNTIME,OUTPUT}}.
Exit status: 0 recorded, 2 bad usage, 1 the spool could not be written or (with
--spawn-collector) the event is recorded where that config's collector never looks.
"""

_VALUE_OPTIONS = frozenset(
    ("--host", "--service", "--state", "--state-type", "--attempt", "--downtime",
     "--output", "--spool", "--time", "--config")
)
_FLAGS = frozenset(("--spawn-collector", "-h", "--help", "--version"))

# The canonical values map to themselves; anything else goes to
# event.normalise_state, which knows the odd cases and words the error.
_SERVICE_STATES = {"OK": "OK", "WARNING": "WARNING", "CRITICAL": "CRITICAL", "UNKNOWN": "UNKNOWN",
                   "0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}
_HOST_STATES = {"UP": "UP", "DOWN": "DOWN", "UNREACHABLE": "UNREACHABLE",
                "0": "UP", "1": "DOWN", "2": "UNREACHABLE"}
_STATE_TYPES = {"HARD": "HARD", "SOFT": "SOFT", "1": "HARD", "0": "SOFT"}


class _Usage(Exception):
    """Bad command line or macros: exit 2."""


class _Refused(_Usage):
    """A field over its limit (``event_limits``): exit 2, and the refusal goes to the spool
    as a ``rejected`` record, so the journal says that an event was lost and why."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record


def parse_argv(argv: Sequence[str]) -> dict:
    """Options as {"--name": value}; flags map to True.  Raises _Usage."""
    opts: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUE_OPTIONS:
            if not eq:
                if i >= len(argv):
                    raise _Usage(f"option {name} needs a value")
                value = argv[i]  # taken literally, even when it starts with '-'
                i += 1
            opts[name] = value
        elif name in _FLAGS:
            if eq:
                raise _Usage(f"option {name} takes no value")
            opts[name] = True
        elif arg.startswith("-"):
            raise _Usage(f"unknown option {name!r}")
        else:
            raise _Usage(f"unexpected argument {arg!r}")
    return opts


def _state(value: str, is_host: bool) -> str:
    s = value.strip().upper()
    found = (_HOST_STATES if is_host else _SERVICE_STATES).get(s)
    if found:
        return found
    from .event import normalise_state  # rare values and the error wording live there

    try:
        return normalise_state(value, is_host)
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _state_type(value: str) -> str:
    if not value.strip():
        return "HARD"
    found = _STATE_TYPES.get(value.strip().upper())
    if found:
        return found
    from .event import normalise_state_type

    try:
        return normalise_state_type(value)
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _count(value: str, what: str, default: int) -> int:
    """A whole number >= default (attempts count from 1, downtime depth from 0)."""
    if not value.strip():
        return default  # Nagios passes empty macros for unset values
    try:
        n = int(value.strip(), 10)
    except ValueError:
        raise _Usage(f"{what} must be a whole number, not {value!r}") from None
    if n < default:
        raise _Usage(f"{what} must be at least {default}, not {value!r}")
    return n


def _epoch(value: Optional[str]) -> float:
    if value is None or not value.strip():
        return time.time()
    from .event import parse_time

    try:
        return parse_time(value)
    except ValueError as exc:
        raise _Usage(f"--time: {exc}") from None


def _clamp_time(record: dict, now: float) -> Optional[str]:
    """Keep a claimed time the collector can trust; say why when it cannot (see event.clamp)."""
    from .event import clamp_reason  # only reached with --time

    why = clamp_reason(record["time"], now)
    if why:
        record["claimed_time"] = record["time"]
        record["time"] = now
    return why


def cap_output(text: str) -> str:
    """Plugin output cut to MAX_OUTPUT characters, the mark saying how much was cut included."""
    return event_limits.clip(text, MAX_OUTPUT)


def build_record(opts: dict, environ: Mapping[str, str]) -> dict:
    """The event record (Event.to_dict() field order) from options or NAGIOS_* macros."""
    if "--host" in opts or "--state" in opts:
        if "--host" not in opts:
            raise _Usage("--host is required with --state")
        if "--state" not in opts:
            raise _Usage("--state is required with --host")
        raw = {k[2:]: v for k, v in opts.items() if k in _VALUE_OPTIONS}
    else:
        if not environ.get("NAGIOS_HOSTNAME"):
            raise _Usage("no event given: pass --host and --state, or run from Nagios/Icinga "
                         "with NAGIOS_HOSTNAME and NAGIOS_SERVICESTATE/NAGIOS_HOSTSTATE set")
        service = environ.get("NAGIOS_SERVICEDESC", "")
        p = "NAGIOS_SERVICE" if service else "NAGIOS_HOST"
        raw = {"host": environ["NAGIOS_HOSTNAME"], "service": service}
        for key, macro in (("state", "STATE"), ("state-type", "STATETYPE"), ("attempt", "ATTEMPT"),
                           ("downtime", "DOWNTIME"), ("output", "OUTPUT")):
            if p + macro in environ:
                raw[key] = environ[p + macro]
        if "state" not in raw:
            raise _Usage(f"{p}STATE is not set")
        raw.update((k[2:], v) for k, v in opts.items() if k in _VALUE_OPTIONS)  # options win
    host = raw["host"]
    if not host:
        raise _Usage("the host name is empty")
    service = raw.get("service") or None
    state = _state(raw["state"], service is None)
    record = {
        "time": _epoch(raw.get("time")),
        "host": host,
        "service": service,
        "state": state,
        "state_type": _state_type(raw.get("state-type", "")),
        "attempt": _count(raw.get("attempt", ""), "the attempt", 1),
        "downtime": _count(raw.get("downtime", ""), "the downtime depth", 0),
        "output": cap_output(raw.get("output", "")),
    }
    given = raw["state"].strip().upper()
    if given != state and not given.isdigit():
        record["reported_state"] = given  # a host WARNING is stored as UP, as Nagios does
    try:
        record, _ = event_limits.limit_fields(record)  # the same limits as every other intake
    except ValueError as exc:
        raise _Refused(str(exc), record) from None
    return record



def collector_command(config: Optional[str], environ: Mapping[str, str]) -> list:
    """The command line that starts a collector for --spawn-collector."""
    override = environ.get(COLLECTOR_CMD_ENV)
    if override:
        import shlex

        cmd = shlex.split(override)
    else:
        cmd = [sys.executable, "-m", "escalator_handlers.cli", "collect"]
    # absolute: the collector runs from / so that it pins no directory
    return cmd + (["--config", os.path.abspath(config)] if config else [])


def spawn_collector(cmd: Sequence[str], env: Optional[Mapping[str, str]] = None) -> int:
    """Start *cmd* detached (own session, no inherited fds, /dev/null stdio); return its pid.
    ``env``: its environment (default: ours)."""
    import subprocess

    proc = subprocess.Popen(
        list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        close_fds=True, start_new_session=True, cwd="/", env=env,
    )
    proc.returncode = 0  # not waited for: keep Popen.__del__ from tracking it
    return proc.pid


def _show(text: str) -> str:
    """Untrusted text fit for one line of stderr: control and non-ASCII escaped."""
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr closed: the exit status still tells


def _check_name(record: Optional[dict]) -> str:
    if not record:
        return "?"
    name = record["host"] if record["service"] is None else f"{record['host']}/{record['service']}"
    return _show(name)


def _ignore_sigxfsz() -> None:
    """Get EFBIG instead of a silent kill when RLIMIT_FSIZE is reached.

    CPython already ignores SIGXFSZ at start-up; an embedding might not.
    ``_signal`` is built in and loaded at start-up, where ``signal`` would
    import enum.
    """
    try:
        import _signal as sig
    except ImportError:  # not CPython
        import signal as sig  # type: ignore[no-redef]
    sig.signal(sig.SIGXFSZ, sig.SIG_IGN)


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    """Run the handler; return the exit status (never raises, never prints a traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    record = None
    try:
        _ignore_sigxfsz()
        opts = parse_argv(argv)
        if opts.get("-h") or opts.get("--help"):
            sys.stdout.write(USAGE)
            return 0
        if opts.get("--version"):
            sys.stdout.write(f"{PROG} {__version__}\n")
            return 0
        record = build_record(opts, environ)
        clamped = _clamp_time(record, time.time()) if opts.get("--time") else None
        spool_dir = opts.get("--spool") or environ.get("ESCALATOR_SPOOL") or DEFAULT_SPOOL
    except _Refused as exc:
        _say(f"error: {_show(str(exc))}{_journal_refusal(opts, environ, exc)}")
        return 2
    except _Usage as exc:
        _say(f"error: {_show(str(exc))}")
        return 2
    except Exception as exc:  # the monitoring core shows stderr, never a traceback
        _say(f"internal error: {type(exc).__name__}: {_show(str(exc))}")
        return 1
    try:
        spool.append(spool_dir, record)
    except KeyboardInterrupt:
        _say(f"cannot record event for {_check_name(record)}: interrupted")
        return 1
    except Exception as exc:
        from .errors import SpoolError

        reason = str(exc) if isinstance(exc, SpoolError) else f"internal error: {type(exc).__name__}: {exc}"
        _say(f"cannot record event for {_check_name(record)}: {_show(reason)}")
        return 1
    if clamped:
        _say(f"warning: event for {_check_name(record)} recorded at the current time: {clamped}")
    if opts.get("--spawn-collector"):
        from .defaults import CONFIG_PATH  # only with --spawn-collector

        config = opts.get("--config") or environ.get("ESCALATOR_CONFIG") or CONFIG_PATH
        unseen = _unseen(spool_dir, config, environ)
        if unseen:
            # Recorded, but no collector of this config would ever look there: say so loudly.
            _say(f"event for {_check_name(record)} recorded in {_show(spool_dir)}, but {_show(unseen)}")
            return 1
        try:
            if spool.collector_running(spool_dir) is None:
                spawn_collector(collector_command(opts.get("--config"), environ))
        except Exception as exc:
            # The event is on disk; only the prompt reaction is at stake.
            _say(f"event recorded, but the collector could not be started: {_show(str(exc))}")
    return 0


def _journal_refusal(opts: dict, environ: Mapping[str, str], exc: _Refused) -> str:
    """Spool the refusal (see ``_Refused``); the end of the error line: where it went, or why not."""
    spool_dir = opts.get("--spool") or environ.get("ESCALATOR_SPOOL") or DEFAULT_SPOOL
    try:
        spool.append(spool_dir, event_limits.refusal_record(str(exc), exc.record, time.time(), PROG))
    except Exception as err:  # the refusal itself stands; say the record is missing
        return f" (and the refusal could not be recorded in the spool: {_show(str(err))})"
    return " (recorded in the spool)"


def _unseen(spool_dir: str, config: str, environ: Mapping[str, str]) -> Optional[str]:
    """Why a collector started with ``config`` would never see ``spool_dir``, or None.

    The handler does not load YAML (the hot path); it reads only a top-level
    ``spool:`` line with a plain or quoted value, which is how configs say it.
    """
    try:
        with open(config, "rb") as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError as exc:
        return f"the config {config} given for the collector cannot be read ({exc.strerror}): no collector starts"
    theirs = environ.get("ESCALATOR_SPOOL") or _spool_line(text) or DEFAULT_SPOOL
    if os.path.realpath(theirs) != os.path.realpath(spool_dir):
        return (f"the collector of {config} reads spool {theirs}: it would never see this event "
                f"(give the handler --spool {theirs}, or fix the config's spool)")
    return None


def _spool_line(text: str) -> Optional[str]:
    """The value of a top-level ``spool:`` line, or None (absent or not a plain scalar)."""
    for line in text.splitlines():
        if not line.startswith("spool:"):
            continue
        value = line[6:].split(" #", 1)[0].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if not value or value[0] in "&*{[|>!%@`":
            return None  # YAML beyond a plain scalar: let the collector judge
        return value
    return None


if __name__ == "__main__":
    sys.exit(main())
