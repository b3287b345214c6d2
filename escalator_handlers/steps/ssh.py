"""SSH for ssh and remote chef steps: a verified, pooled connection per target.

Security rules, all enforced here: host keys are checked against a
known_hosts file and an unknown or changed key is refused (never added);
only the configured key file authenticates (no agent, no default keys, no
passwords); an encrypted key needs ``passphrase_file``, whose content never
leaves this module.  One connection per (host, port, user, ...) serves every
step of a run, also from parallel ``foreach`` threads (paramiko multiplexes
channels).  ``proxy_jump`` tunnels through one bastion with a direct-tcpip
channel, like OpenSSH's ``ProxyJump``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from ..errors import StepError
from .target import Target

log = logging.getLogger("escalator_handlers.steps")


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse hosts missing from known_hosts, saying how to add them deliberately."""

    def __init__(self, target: Target):
        self.target = target

    def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
        t = self.target
        kh = t.known_hosts_path
        scan = f"ssh-keyscan -p {t.port} {t.host}" if t.port != 22 else f"ssh-keyscan {t.host}"
        raise StepError(
            f"unknown host key for {t.address} (not in {kh}); add it with ssh-keyscan "
            f"after verifying it: {scan} >> {kh} (server offered {key.get_name()} "
            f"{_fingerprint(key)})")


def _fingerprint(key: paramiko.PKey) -> str:
    return getattr(key, "fingerprint", None) or key.get_fingerprint().hex()


class SshPool:
    """Connections of one run, keyed by target; thread-safe; ``close()`` ends them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: Dict[Target, Tuple[threading.Lock, List[Optional[paramiko.SSHClient]]]] = {}
        self._keys: Dict[Tuple[str, Optional[str]], paramiko.PKey] = {}
        self._known: Dict[str, List[HostKeyEntry]] = {}
        self.opened = 0  # connections made, for tests and debugging

    def client(self, target: Target) -> paramiko.SSHClient:
        """A live connection to ``target``, reusing the pooled one; raises StepError."""
        with self._lock:
            lock, slot = self._conns.setdefault(target, (threading.Lock(), [None]))
        with lock:
            c = slot[0]
            if c is not None:
                tr = c.get_transport()
                if tr is not None and tr.is_active():
                    return c
                c.close()
                slot[0] = None
            slot[0] = self._connect(target)
            with self._lock:
                self.opened += 1
            return slot[0]

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, {}
        # Tunnelled connections first, then their bastions.
        for target, (_, slot) in sorted(conns.items(), key=lambda kv: kv[0].via is None):
            if slot[0] is not None:
                slot[0].close()

    def _pkey(self, t: Target) -> paramiko.PKey:
        if not t.key_file:
            raise StepError(f"no key_file for {t.login}@{t.address}: escalator authenticates "
                            "with a key file only (no agent, no default keys, no passwords)")
        cache_key = (t.key_file, t.passphrase_file)
        with self._lock:
            if cache_key in self._keys:
                return self._keys[cache_key]
        secret = None
        if t.passphrase_file:
            try:
                with open(t.passphrase_file, encoding="utf-8") as fh:
                    secret = fh.read().rstrip("\r\n").encode("utf-8")
            except OSError as exc:
                raise StepError(f"cannot read passphrase_file {t.passphrase_file}: "
                                f"{exc.strerror or type(exc).__name__}") from None
        try:
            key = paramiko.PKey.from_path(t.key_file, secret)
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            # cryptography raises TypeError for "password-protected, but no password".
            if secret is not None:
                raise StepError(f"cannot load key_file {t.key_file}: "
                                f"{type(exc).__name__}: {exc}") from None
            raise StepError(f"key_file {t.key_file} is encrypted: set passphrase_file") from None
        except OSError as exc:
            raise StepError(f"cannot read key_file {t.key_file}: "
                            f"{exc.strerror or type(exc).__name__}") from None
        except (paramiko.SSHException, ValueError) as exc:
            # Messages from paramiko name the problem, never the passphrase.
            raise StepError(f"cannot load key_file {t.key_file} (wrong passphrase or "
                            f"unsupported key?): {type(exc).__name__}: {exc}") from None
        finally:
            secret = None
        with self._lock:
            self._keys[cache_key] = key
        return key

    def _known_hosts(self, path: str) -> List[HostKeyEntry]:
        """Parse ``path`` once per run, like OpenSSH skipping lines it cannot use.

        paramiko's own loader aborts on a ``@cert-authority``/``@revoked``
        line; we drop those lines, so a revoked or CA-signed key is simply
        not known, hence refused.
        """
        with self._lock:
            if path in self._known:
                return self._known[path]
        entries: List[HostKeyEntry] = []
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise StepError(f"cannot read known_hosts file {path}: "
                            f"{exc.strerror or type(exc).__name__}") from None
        for lineno, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                log.debug("%s:%d: %s entries are not supported; ignored", path, lineno,
                          line.split()[0])
                continue
            try:
                entry = HostKeyEntry.from_line(line, lineno)
            except (InvalidHostKey, paramiko.SSHException, ValueError) as exc:
                log.debug("%s:%d: unusable known_hosts line ignored: %s", path, lineno, exc)
                continue
            if entry is not None:
                entries.append(entry)
        with self._lock:
            self._known[path] = entries
        return entries

    def _socket(self, t: Target) -> Any:
        if t.via is not None:
            try:
                bastion = self.client(t.via).get_transport()
            except StepError as exc:
                raise StepError(f"{exc} (proxy_jump bastion for {t.address})") from None
            assert bastion is not None
            try:
                return bastion.open_channel("direct-tcpip", (t.host, t.port), ("127.0.0.1", 0),
                                            timeout=t.connect_timeout)
            except paramiko.ChannelException as exc:
                raise StepError(f"bastion {t.via.address} could not connect to {t.address}: "
                                f"{exc.text or 'channel open failed'}") from None
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise StepError(f"connection through bastion {t.via.address} to {t.address} "
                                f"failed: {exc or type(exc).__name__}") from None
        try:
            sock = socket.create_connection((t.host, t.port), timeout=t.connect_timeout)
        except socket.gaierror as exc:
            raise StepError(f"cannot resolve host {t.host}: {exc.strerror}") from None
        except ConnectionRefusedError:
            raise StepError(f"connection refused: {t.address}") from None
        except (socket.timeout, TimeoutError):
            raise StepError(f"connection to {t.address} timed out after "
                            f"{t.connect_timeout:g}s") from None
        except OSError as exc:
            raise StepError(f"cannot connect to {t.address}: {exc.strerror or exc}") from None
        # Without TCP_NODELAY each small SSH packet waits for Nagle: measured
        # 2x slower connect+exec and 10x slower for many commands in a row.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _connect(self, t: Target) -> paramiko.SSHClient:
        pkey = self._pkey(t)
        kh = t.known_hosts_path
        if not os.path.isfile(kh):
            raise StepError(f"known_hosts file {kh} does not exist: cannot verify the host "
                            f"key of {t.address}; nothing was run")
        known = self._known_hosts(kh)
        client = paramiko.SSHClient()
        sock = None
        try:
            # Held in memory only: nothing is ever written back to known_hosts.
            store = client.get_host_keys()
            for entry in known:
                for name in entry.hostnames:
                    store.add(name, entry.key.get_name(), entry.key)
            client.set_missing_host_key_policy(_RejectUnknown(t))
            sock = self._socket(t)
            ct = t.connect_timeout
            client.connect(t.host, port=t.port, username=t.login, pkey=pkey, sock=sock,
                           timeout=ct, banner_timeout=ct, auth_timeout=ct, channel_timeout=ct,
                           look_for_keys=False, allow_agent=False)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise StepError(
                f"host key for {t.address} CHANGED: {kh} has {exc.expected_key.get_name()} "
                f"{_fingerprint(exc.expected_key)} but the server offered "
                f"{exc.key.get_name()} {_fingerprint(exc.key)}; refusing to connect (possible "
                f"man-in-the-middle). If the host was rebuilt, verify the new key, then "
                f"ssh-keygen -R '{_kh_name(t)}' -f {kh} and add it") from None
        except paramiko.AuthenticationException:
            client.close()
            raise StepError(f"authentication failed for {t.login}@{t.address} with key "
                            f"{t.key_file} (is its public key in authorized_keys?)") from None
        except StepError:
            client.close()
            if sock is not None:
                sock.close()
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise StepError(f"ssh handshake with {t.address} failed: "
                            f"{exc or type(exc).__name__}") from None
        tr = client.get_transport()
        if tr is not None:
            tr.set_keepalive(30)  # idle between steps must not let a NAT drop us
        log.debug("ssh connected to %s@%s%s", t.login, t.address,
                  f" via {t.via.address}" if t.via else "")
        return client


def _kh_name(t: Target) -> str:
    return t.host if t.port == 22 else f"[{t.host}]:{t.port}"
