"""A connection to Icinga 2's event stream, ``POST /v1/events``, read line by line.

What the real daemon does (Debian 12's 2.13.6; see docs/icinga.rst):

- ``queue`` is required up to 2.15 (HTTP 400 without it), ``types`` always.
- The body has neither Content-Length nor chunked encoding: it ends when
  Icinga closes the connection.  Each event is one JSON line; reading in
  blocks could hold the last event back, so this reads a line at a time.
- A filter or type Icinga does not like answers 200 and then sends nothing:
  only a watchdog (the socket's read timeout here) tells.
- TLS: the certificate's name is verified against ``server_name``
  (``nagios.icinga_api.server_name``, default the URL's host), so an API
  reached at 127.0.0.1 can still be checked against its node's CN.

Credentials travel in the ``Authorization`` header only; no error message
built here contains them.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import urllib.parse
from typing import Optional, Sequence

from ..errors import EscalatorError


class StreamError(EscalatorError):
    """The stream could not be opened or broke; the message is safe to journal."""


class EventStream:
    """One open ``/v1/events`` response; ``readline`` returns b"" at its end."""

    def __init__(self, url: str, user: str, password: str, ca_file: Optional[str] = None,
                 server_name: Optional[str] = None, timeout: float = 60.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StreamError(f"Icinga API URL {_bare(url)} is not http(s)://host:port")
        self.where = f"{parts.scheme}://{parts.hostname}:{parts.port or 5665}"
        self._host, self._port = parts.hostname, parts.port or 5665
        self._tls = parts.scheme == "https"
        self._ca, self._name = ca_file, server_name or parts.hostname
        self._timeout = timeout
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._conn: Optional[http.client.HTTPConnection] = None
        self._resp: Optional[http.client.HTTPResponse] = None
        # Ours to shut down: http.client hands a body without a length to the response
        # and forgets the socket (conn.sock becomes None).
        self._sock: Optional[socket.socket] = None

    def open(self, types: Sequence[str], queue: str, filter: Optional[str] = None) -> None:
        """Send the subscription and wait for Icinga's answer (raise StreamError)."""
        body = {"queue": queue, "types": list(types)}
        if filter:
            body["filter"] = filter
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
            if self._tls:
                try:
                    ctx = ssl.create_default_context(cafile=self._ca)
                except (OSError, ssl.SSLError) as exc:
                    sock.close()
                    raise StreamError(f"cannot load CA file {self._ca}: {exc}") from None
                sock = ctx.wrap_socket(sock, server_hostname=self._name)
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            conn.sock = sock
            conn.request("POST", "/v1/events", body=json.dumps(body).encode(), headers={
                "Accept": "application/json", "Content-Type": "application/json",
                "Authorization": self._auth})
            resp = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            raise StreamError(f"Icinga API at {self.where}: certificate not trusted for the name "
                              f"{self._name!r}: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise StreamError(f"Icinga API at {self.where} unreachable: {_reason(exc)}") from None
        if resp.status != 200:
            detail = _message(resp.read(2000))
            conn.close()
            hint = " (check nagios.icinga_api user and password file)" if resp.status == 401 else ""
            raise StreamError(f"Icinga API at {self.where} refused the event stream: HTTP {resp.status} "
                              f"{detail or resp.reason}{hint}")
        self._conn, self._resp, self._sock = conn, resp, sock

    def readline(self) -> bytes:
        """The next line (with its newline), b"" when Icinga closed the stream; raise
        ``socket.timeout`` when nothing came within the timeout, StreamError when it broke."""
        assert self._resp is not None
        try:
            return self._resp.readline(1 << 24)
        except socket.timeout:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise StreamError(f"Icinga event stream from {self.where} broke: {_reason(exc)}") from None

    def shutdown(self) -> None:
        """Wake a reader blocked in ``readline`` (it then sees the end); safe from a signal handler."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
        if self._conn is not None:
            self._conn.close()
        if self._sock is not None:
            self._sock.close()
        self._conn = self._resp = self._sock = None


def _bare(url: str) -> str:
    """A URL without any user:password@ part."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc or type(exc).__name__)[:300]


def _message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:200]
    return str(data.get("status") or data.get("error") or "")[:200] if isinstance(data, dict) else ""


__all__ = ["EventStream", "StreamError"]
