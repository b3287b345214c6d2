"""Bundled behave steps for smoke checks: HTTP GET, TCP port, command exit status.

Operators write only ``.feature`` files.  check_cucumber loads these steps by
itself when the features have no ``steps/`` directory (or with
``--builtin-steps``); to combine them with your own steps, add a one-line
steps file ``features/steps/smoke.py``::

    from escalator_handlers.plugins.smoke_steps import *  # noqa

Importing the module registers the steps with behave; nothing else is needed.
The phrases (any of Given/When/Then/And/But works)::

    Given the timeout is 5 seconds
    When I GET "http://127.0.0.1:8080/health"
    Then the status is 200
    And the body contains "ok"
    And the body does not contain "error"
    Then TCP port 5432 on "127.0.0.1" is open
    Then TCP port 6000 on "127.0.0.1" is closed
    When I run "systemctl is-active nginx"
    Then the exit status is 0
    And the output contains "active"

Commands are split with :func:`shlex.split` and run without a shell, so a
feature file cannot smuggle shell syntax into them.  Every network or
process action has a timeout (default 10 s) so a hung service fails the step
instead of hanging the check.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from behave import step

from .. import defaults
# Importing the module is what matters (the decorators register the steps);
# ``import *`` must not drop helper names into the operator's steps file.
__all__: list[str] = []

DEFAULT_TIMEOUT = defaults.SMOKE_TIMEOUT
#: Bodies and outputs longer than this are truncated in failure messages.
_SHOW = 200


@dataclass(frozen=True)
class HttpResponse:
    url: str
    status: int
    body: str


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str


def _timeout(context: Any) -> float:
    return float(getattr(context, "smoke_timeout", DEFAULT_TIMEOUT))


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SHOW else text[:_SHOW] + "..."


@step("the timeout is {seconds:g} seconds")
def set_timeout(context: Any, seconds: float) -> None:
    """Timeout for the HTTP, TCP and command steps that follow (default 10 s)."""
    assert seconds > 0, f"timeout must be positive, not {seconds:g}"
    context.smoke_timeout = seconds


@step('I GET "{url}"')
def http_get(context: Any, url: str) -> None:
    """Fetch ``url``; an HTTP error status is a response, not a failure."""
    request = urllib.request.Request(url, headers={"User-Agent": "check_cucumber"})
    try:
        with urllib.request.urlopen(request, timeout=_timeout(context)) as response:
            status, raw = response.status, response.read()
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read() or b""
        charset = (err.headers and err.headers.get_content_charset()) or "utf-8"
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise AssertionError(f"GET {url} failed: {reason}") from None
    context.http_response = HttpResponse(url, status, raw.decode(charset, "replace"))


def _response(context: Any) -> HttpResponse:
    response = getattr(context, "http_response", None)
    assert response is not None, 'no HTTP response yet: use When I GET "URL" first'
    return response


@step("the status is {status:d}")
def http_status(context: Any, status: int) -> None:
    response = _response(context)
    assert response.status == status, \
        f"GET {response.url} returned status {response.status}, expected {status}"


@step('the body contains "{text}"')
def http_body_contains(context: Any, text: str) -> None:
    response = _response(context)
    assert text in response.body, \
        f"body of {response.url} does not contain {text!r}: {_short(response.body)!r}"


@step('the body does not contain "{text}"')
def http_body_lacks(context: Any, text: str) -> None:
    response = _response(context)
    assert text not in response.body, f"body of {response.url} contains {text!r}"


def _port_open(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection succeeds, else the reason it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return str(err) or type(err).__name__


@step('TCP port {port:d} on "{host}" is open')
def tcp_port_open(context: Any, port: int, host: str) -> None:
    reason = _port_open(host, port, _timeout(context))
    assert reason is None, f"TCP port {port} on {host} is not open: {reason}"


@step('TCP port {port:d} on "{host}" is closed')
def tcp_port_closed(context: Any, port: int, host: str) -> None:
    reason = _port_open(host, port, _timeout(context))
    assert reason is not None, f"TCP port {port} on {host} is open"


@step('I run "{command}"')
def run_command(context: Any, command: str) -> None:
    """Run ``command`` (shlex-split, no shell); record its exit status and output."""
    argv = tuple(shlex.split(command))
    assert argv, "empty command"
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=_timeout(context), check=False)
    except FileNotFoundError:
        raise AssertionError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise AssertionError(f"command not executable: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{command!r} still running after {_timeout(context):g}s (killed)") from None
    context.command_result = CommandResult(
        argv, done.returncode, done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"))


def _command(context: Any) -> CommandResult:
    result = getattr(context, "command_result", None)
    assert result is not None, 'no command has run yet: use When I run "COMMAND" first'
    return result


@step("the exit status is {status:d}")
def exit_status(context: Any, status: int) -> None:
    result = _command(context)
    assert result.exit_status == status, (
        f"{shlex.join(result.argv)} exited {result.exit_status}, expected {status}"
        + (f"; stderr: {_short(result.stderr)!r}" if result.stderr.strip() else ""))


@step('the output contains "{text}"')
def output_contains(context: Any, text: str) -> None:
    result = _command(context)
    assert text in result.stdout, \
        f"output of {shlex.join(result.argv)} does not contain {text!r}: {_short(result.stdout)!r}"
