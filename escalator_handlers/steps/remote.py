"""Commands on the far side of an SSH connection: how they are built and run.

The command string always runs under ``/bin/sh`` semantics with every value
quoted (sudo and env in front, ``2>&1`` behind); it runs in its own channel
with no pty and stdin closed.  On timeout or cancel the remote process group
is asked to stop with the SSH "signal" request before the channel closes.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from typing import TYPE_CHECKING, List, Mapping, Optional, Union

from .result import TailBuffer
from .shell import POLL, Outcome, stop_message
from .target import Target
from .template import check_user, env_words

if TYPE_CHECKING:  # paramiko is imported where a command really runs: a dry run never needs it
    import paramiko


def remote_command(words: List[str], *, sudo: Union[bool, str], env: Mapping[str, str]) -> str:
    """The command string for sshd: ``[sudo -n [-u U] --] [env K=V...] WORDS 2>&1``.

    ``words`` are already shell-quoted.  sudo comes first because sudo resets
    the environment; ``env`` then sets the variables for the command itself.
    """
    # 2>&1 on the remote side: sshd carries stdout and stderr on separate
    # streams, merging them here would lose their relative order.
    return " ".join(_sudo_words(sudo) + (["env"] + env_words(env) if env else []) + words
                    + ["2>&1"])


def display_command(target: Target, words: List[str], *, sudo: Union[bool, str],
                    env: Mapping[str, str]) -> str:
    """What the journal shows: env values masked (they may be tokens)."""
    shown = [f"{k}=***" for k in env]
    return f"ssh {target.login}@{target.address}: " + " ".join(
        _sudo_words(sudo) + (["env"] + shown if shown else []) + words)


def _sudo_words(sudo: Union[bool, str]) -> List[str]:
    if sudo is True:
        return ["sudo", "-n", "--"]
    if sudo:
        return ["sudo", "-n", "-u", shlex.quote(check_user(str(sudo))), "--"]
    return []


def exec_command(client: paramiko.SSHClient, target: Target, command: str, *, timeout: float,
                 tail: TailBuffer, cancel: Optional[threading.Event] = None,
                 kill_grace: float = 2.0) -> Outcome:
    """Run ``command`` in a new channel (no pty, stdin closed); output into ``tail``."""
    import paramiko

    deadline = time.monotonic() + timeout
    tr = client.get_transport()
    try:
        assert tr is not None
        chan = tr.open_session(timeout=target.connect_timeout)
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        chan.shutdown_write()
    except (paramiko.SSHException, EOFError, OSError, AssertionError) as exc:
        return Outcome(None, f"cannot start the command on {target.address}: "
                             f"{exc or type(exc).__name__}")
    stopped: Optional[str] = None
    try:
        chan.settimeout(POLL)
        while True:
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
                break
            if time.monotonic() >= deadline:
                stopped = "timeout"
                break
            try:
                data = chan.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            tail.add(data)
        while not stopped and not chan.status_event.wait(POLL):
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() >= deadline:
                stopped = "timeout"
        if stopped:
            _stop_remote(chan, kill_grace)
            return Outcome(None, stop_message(stopped, timeout)
                           + " (asked sshd to signal the remote command, closed the channel)", stopped)
        if chan.exit_status < 0:
            if not tr.is_active():
                return Outcome(None, f"connection to {target.address} lost during the command")
            return Outcome(None, "the remote command ended without an exit status "
                                 "(killed by a signal?)")
        return Outcome(chan.exit_status)
    finally:
        chan.close()


def _stop_remote(chan: paramiko.Channel, grace: float) -> None:
    """Ask sshd to signal the command's process group (RFC 4254 6.9), TERM then KILL.

    OpenSSH answers with killpg() on the session's process group; it refuses
    for root logins ("session signalling requires privilege separation") and
    then only closing the channel is left, which stops a remote command as
    soon as it writes output (SIGPIPE) but not a silent one.
    """
    # want_reply: a refusal comes back as CHANNEL_FAILURE, on which paramiko
    # closes the channel and sets status_event, so we do not wait in vain.
    _signal(chan, "TERM")
    if not chan.status_event.wait(grace):
        _signal(chan, "KILL")
        chan.status_event.wait(min(grace, 0.5))


def _signal(chan: paramiko.Channel, name: str) -> None:
    import paramiko
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    # paramiko has no public API for the "signal" channel request.
    if chan.closed:
        return
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("signal")
    m.add_boolean(True)
    m.add_string(name)
    try:
        chan.transport._send_user_message(m)  # noqa: SLF001
    except (paramiko.SSHException, EOFError, OSError):
        pass
