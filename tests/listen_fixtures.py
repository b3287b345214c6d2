"""A fake Icinga 2 API on 127.0.0.1 for ``escalator listen`` tests and the benchmark.

It answers as the real 2.13.6 does where it matters: ``POST /v1/events``
gets 200 with neither Content-Length nor chunked encoding, then one JSON line
per event, and the body ends when the server closes the connection;
``/v1/objects/<kind>`` answers ``{"results": [{"attrs": ...}]}``.  A wrong
password gets 401.  Tests push lines with ``send`` and end the stream with
``hang_up``.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional


class FakeIcinga:
    def __init__(self, user: str = "escalator", password: str = "s3cret-pw",
                 tls: Optional[tuple] = None) -> None:
        """``tls``: (certificate file, key file) to serve https."""
        self.user, self.password = user, password
        self.objects: Dict[str, List[dict]] = {"hosts": [], "services": []}
        self.subscriptions: List[dict] = []
        self.lines: "queue.Queue[Optional[bytes]]" = queue.Queue()   # the latest connection's
        self.queues: List["queue.Queue[Optional[bytes]]"] = []
        self.silent = False  # 200 and then nothing (a bad filter or type)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {token}":
                    self._json(401, {"error": 401, "status": "Unauthorized. Please check your user credentials."})
                    return
                if self.path == "/v1/events":
                    req = json.loads(body)
                    if "queue" not in req:
                        self._json(400, {"error": 400, "status": "'queue' query parameter is required."})
                        return
                    lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
                    fake.queues.append(lines)
                    fake.lines = lines
                    fake.subscriptions.append(req)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.flush()
                    self.close_connection = True
                    while True:
                        line = lines.get()
                        if line is None:
                            return
                        if not fake.silent:
                            self.wfile.write(line)
                            self.wfile.flush()
                    return
                kind = self.path.rsplit("/", 1)[-1]
                self._json(200, {"results": [{"attrs": a} for a in fake.objects.get(kind, [])]})

            def _json(self, code: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def send(self, msg: dict) -> None:
        self.lines.put(json.dumps(msg).encode() + b"\n")

    def hang_up(self) -> None:
        self.lines.put(None)

    def close(self) -> None:
        for q in self.queues:
            q.put(None)
        self.server.shutdown()
        self.server.server_close()


def state_change(host: str, service: Optional[str], state: int, state_type: int, check_time: float,
                 attempt: int = 1, reachable: bool = True, output: str = "synthetic") -> dict:
    """A StateChange as Icinga 2.13 emits it (host ``state`` 0/1, check_result 0..3)."""
    msg = {"type": "StateChange", "timestamp": check_time + 0.5, "host": host, "state": state,
           "state_type": state_type, "downtime_depth": 0, "acknowledgement": False,
           "check_result": {"execution_start": check_time, "execution_end": check_time + 0.01,
                            "exit_status": 0, "output": output, "state": state if service else (2 if state else 0),
                            "vars_after": {"attempt": attempt, "reachable": reachable, "state": state,
                                           "state_type": state_type}}}
    if service is not None:
        msg["service"] = service
    return msg
