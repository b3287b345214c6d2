"""What both check plugins share: Monitoring Plugins conventions on top of nagiosplugin.

Perfdata always on the status line, usage errors and ``-h``/``-V`` as
UNKNOWN (exit 3) with a one-line reason, and ``-w``/``-c`` ranges in the
standard syntax with a readable error.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Optional, Sequence

import nagiosplugin
from nagiosplugin.output import Output

from ..display import safe


class StatusLineOutput(Output):
    """Perfdata always on the first line; long output after it.

    nagiosplugin's own Output moves perfdata to a last line once -v is given
    and hides long output without it; both plugins' contracts want the
    cucumber-nagios layout instead.
    """

    def add(self, check: nagiosplugin.Check) -> None:
        self.status = self.format_status(check)
        perfdata = self.format_perfdata(check)
        if perfdata:
            self.status += " " + perfdata
        self.add_longoutput(check.verbose_str)


class OrderedPerfCheck(nagiosplugin.Check):
    """A Check that keeps perfdata in ``perf_order`` instead of sorting it by name.

    Subclasses set ``perf_order``: the order their documentation (and
    graphing setups built on it) promise.  Unknown labels go last.
    """

    perf_order: Sequence[str] = ()

    def __call__(self) -> None:
        super().__call__()
        rank = {label: i for i, label in enumerate(self.perf_order)}
        self.perfdata.sort(key=lambda p: rank.get(p.split("=", 1)[0].strip("'"), 99))


def add_version(parser: argparse.ArgumentParser, prog: str, version: str) -> None:
    """``-V``/``--version`` as the guidelines want: the plugin, its package, nagiosplugin."""
    parser.add_argument("-V", "--version", action="version",
                        version=f"{prog} v{version} (escalator-handlers, "
                                f"nagiosplugin {nagiosplugin.__version__})")


def unknown(name: str, reason: str, *details: str) -> NoReturn:
    """Print an UNKNOWN status line (and details) and exit 3."""
    print(f"{name} UNKNOWN - {reason}")
    for line in details:
        print(line)
    sys.exit(3)


class Parser(argparse.ArgumentParser):
    """Usage errors are UNKNOWN (exit 3) with a one-line reason, per the guidelines.

    Subclasses set ``plugin_name`` (the status line's first word).
    """

    plugin_name = "PLUGIN"

    def error(self, message: str) -> NoReturn:
        unknown(self.plugin_name, message, self.format_usage().strip())

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        # -h and -V exit 3 like the Monitoring Plugins' own plugins (check_dummy -V):
        # their output is not a check result.
        if message:
            sys.stderr.write(message)
        sys.exit(3)


def parse_range(name: str, option: str, spec: Optional[str]) -> Optional[nagiosplugin.Range]:
    """A Monitoring Plugins range, or UNKNOWN naming the option and the syntax."""
    if spec is None:
        return None
    try:
        return nagiosplugin.Range(spec)
    except ValueError as err:
        # nagiosplugin's own message is only helpful for "start > end".
        why = f": {err}" if "greater" in str(err) else ""
        shown = safe(spec, 80).replace("|", "\\x7c")
        unknown(name, f"invalid range {shown!r} for {option}{why} (expected N, N:, ~:N, N:M or @N:M)")
