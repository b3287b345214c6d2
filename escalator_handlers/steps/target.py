"""Where an ssh or remote chef step connects: the target and its bastion.

Plain data, no paramiko: dry runs render ssh steps without importing it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Optional

from ..errors import StepError
from .template import check_host, check_user


@dataclass(frozen=True)
class Target:
    """Where to connect, and with what credentials (paths only, never contents)."""

    host: str
    port: int = 22
    user: Optional[str] = None
    key_file: Optional[str] = None
    passphrase_file: Optional[str] = None
    known_hosts: Optional[str] = None
    connect_timeout: float = 10.0
    via: Optional["Target"] = None

    @property
    def login(self) -> str:
        return self.user or getpass.getuser()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def known_hosts_path(self) -> str:
        return os.path.expanduser(self.known_hosts or "~/.ssh/known_hosts")


def parse_jump(spec: str, base: Target) -> Target:
    """``[user@]host[:port]`` (``[v6addr]:port`` too) -> the bastion's Target."""
    user, _, hostport = spec.rpartition("@")
    port = 22
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], spec)
    elif hostport.count(":") == 1:
        host, _, p = hostport.partition(":")
        port = _port(p, spec)
    else:
        host = hostport
    check_host(host, "proxy_jump host")
    if user:
        check_user(user)
    # The bastion uses the step's own key and known_hosts; its user defaults
    # to the step's user (escalator reads no ~/.ssh/config).
    return Target(host=host, port=port, user=user or base.user, key_file=base.key_file,
                  passphrase_file=base.passphrase_file, known_hosts=base.known_hosts,
                  connect_timeout=base.connect_timeout)


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise StepError(f"invalid proxy_jump {spec!r}: expected [user@]host[:port]")
    return int(text)
