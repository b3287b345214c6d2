"""An etcd watch in a thread: it calls ``wake()`` when keys change, so nobody polls.

The collector sleeps in ``select()``; a leader must wake when a node
forwards an event (a put under ``P/events/``), a waiting candidate when the
leader key goes (a delete of ``P/leader``).  A watch is one long HTTP stream
from etcd's JSON gateway: etcd pushes each change within a millisecond and
sends nothing while nothing changes.

etcd3gw has a ``watch`` too, but it cannot be used here: its stream has no
end-of-stream signal (a killed member silently ends the watch for good), it
talks to one member only, and its connection has no keep-alive, so a member
that vanished from the network would keep it blocked for ever.  This one
reconnects, fails over to the next client URL, and turns TCP keep-alive on
so a dead peer is noticed in about a minute.  Every (re)connection also
wakes: whatever changed while the stream was down is then looked at.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Callable, List, Optional, Sequence

import requests
from requests.adapters import HTTPAdapter

from .etcd import b64, range_end

log = logging.getLogger("escalator")

#: TCP keep-alive: first probe after this many idle seconds, then every INTERVAL, give up after COUNT.
KEEPIDLE, KEEPINTERVAL, KEEPCOUNT = 30, 10, 3
#: After a stream fails, wait this long (doubling up to MAX_BACKOFF) before the next member.
BACKOFF, MAX_BACKOFF = 0.2, 5.0


class _KeepAlive(HTTPAdapter):
    """Connections with TCP keep-alive (a half-open stream is found out without traffic of ours)."""

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        for name, value in (("TCP_KEEPIDLE", KEEPIDLE), ("TCP_KEEPINTVL", KEEPINTERVAL), ("TCP_KEEPCNT", KEEPCOUNT)):
            if hasattr(socket, name):
                opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
        kwargs["socket_options"] = opts
        super().init_poolmanager(*args, **kwargs)


class Watch:
    """Watch ``key`` (with ``prefix``: every key under it) on the first of ``urls`` that answers.

    ``filters`` are etcd's (``"NOPUT"``, ``"NODELETE"``): a leader watching for
    events ignores its own deletions of consumed keys.  ``wake`` runs on the
    watch's thread: it must be quick and must not raise.
    """

    def __init__(self, urls: Sequence[str], key: str, wake: Callable[[], None], *, prefix: bool = False,
                 filters: Sequence[str] = (), connect_timeout: float = 2.0) -> None:
        self.urls: List[str] = list(urls)
        self.wake = wake
        request = {"key": b64(key)}
        if prefix:
            request["range_end"] = range_end(key)
        if filters:
            request["filters"] = list(filters)  # type: ignore[assignment]
        self.request = {"create_request": request}
        self.connect_timeout = connect_timeout
        self.connected = threading.Event()   # set while a stream is open (tests wait on it)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Optional[requests.Response] = None
        self._session = requests.Session()
        self._session.mount("http://", _KeepAlive())
        self._session.mount("https://", _KeepAlive())
        self._thread = threading.Thread(target=self._run, name=f"etcd-watch {key}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff, n = BACKOFF, 0
        while not self._stop.is_set():
            url = self.urls[n % len(self.urls)]
            try:
                if self._stream(url):
                    backoff = BACKOFF     # it was up: try the same member again at once
                    continue
            except Exception as exc:  # noqa: BLE001 -- a stream closed under its reader raises anything
                # (urllib3 errors, AttributeError on a closed body...): the thread must go on or end cleanly.
                if not self._stop.is_set():
                    log.debug("etcd watch on %s ended: %s", url, exc)
            finally:
                self.connected.clear()
            if self._stop.is_set():
                return
            self.wake()                    # something may have changed while it was down
            n += 1
            self._stop.wait(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    def _stream(self, url: str) -> bool:
        """Read one stream until it ends; True when it was established."""
        resp = self._session.post(f"{url}/v3/watch", json=self.request, stream=True,
                                  timeout=(self.connect_timeout, None))
        with self._lock:
            if self._stop.is_set():
                resp.close()
                return False
            self._response = resp
        resp.raise_for_status()
        established = False
        for line in resp.iter_lines(chunk_size=None):
            if self._stop.is_set():
                return established
            if not line.strip():
                continue
            result = json.loads(line).get("result", {})
            if result.get("created"):
                established = True
                self.connected.set()
                self.wake()                # changes made before the watch began are looked at now
            if result.get("canceled"):
                return established         # e.g. compacted away: reconnect from now
            if result.get("events"):
                self.wake()
        return established

    def stop(self) -> None:
        """End the stream and the thread (within a second or two)."""
        self._stop.set()
        with self._lock:
            resp = self._response
        if resp is not None:
            _shutdown(resp)
        self._thread.join(timeout=5)
        self._session.close()


def _shutdown(resp: requests.Response) -> None:
    """Unblock the thread reading ``resp``: closing is not enough while it waits in recv()."""
    try:
        # A duplicate of the socket's descriptor: shutting it down shuts the shared connection.
        dup = socket.fromfd(resp.raw.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        resp.close()
    except Exception:  # noqa: BLE001 -- closing a stream another thread reads may raise anything
        pass


__all__ = ["Watch"]
