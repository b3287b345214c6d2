"""``escalator listen``: state changes from Icinga 2's event stream into the journal.

A local fake API on 127.0.0.1 (standard library HTTP server) answers the
catch-up with no objects and streams N ``StateChange`` lines the way 2.13.6
does (no Content-Length, one JSON line per event, the body ends when it
closes).  Measured: wall time from the first line until every state change
is in the spool (fsync per record) and then in the journal (``escalator
collect`` once), and listen's CPU (utime + stime from /proc) per state
change.  Baseline: the EventCommand path, one ``escalator-handler`` process
per state change (its CPU from the child's rusage), collected the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

from .harness import Context, Row, median, ms, ratio, run_child


def _server(lines: List[bytes], go: threading.Event) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/events":
                raw = b'{"results": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.close_connection = True
            go.wait()
            for line in lines:
                self.wfile.write(line)
            self.wfile.flush()
            time.sleep(3600)  # keep the stream open: listen must not need the close to see the last line

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _config(ctx: Context, name: str, url: str) -> str:
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, exist_ok=True)
    pw = os.path.join(d, "pw")
    with open(pw, "w") as f:
        f.write("x\n")
    cfg = os.path.join(d, "escalator.yaml")
    with open(cfg, "w") as f:  # JSON is YAML
        json.dump({"spool": os.path.join(d, "spool"), "journal": os.path.join(d, "journal.jsonl"),
                   "quiescence": 0.1, "max_delay": 0.2,
                   "levels": [{"name": "fix", "steps": [{"shell": "true"}]}],
                   "checks": [{"host": "no-such-host", "level": "fix"}],
                   "nagios": {"icinga_api": {"url": url, "user": "u", "password_file": pw},
                              "ack_interlock": False, "host": "monitor"}}, f)
    return cfg


def _spooled(cfg: str) -> int:
    path = os.path.join(os.path.dirname(cfg), "spool", "events.jsonl")
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if b'"kind": "event"' in line or b'"kind":"event"' in line)
    except FileNotFoundError:
        return 0


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream(ctx: Context) -> List[Row]:
    n = 200 if ctx.quick else 2000
    forks = 20 if ctx.quick else 100
    t0 = 1_800_000_000.0
    lines = [json.dumps({"type": "StateChange", "timestamp": t0 + i + 0.5, "host": f"web-{i % 50:04d}",
                         "service": "HTTP", "state": 2 if (i // 50) % 2 == 0 else 0, "state_type": 1,
                         "downtime_depth": 0,
                         "check_result": {"execution_start": t0 + i, "execution_end": t0 + i + 0.01,
                                          "output": "CRITICAL - Connection refused on port 443",
                                          "vars_after": {"attempt": 1, "reachable": True}}}).encode() + b"\n"
             for i in range(n)]
    go = threading.Event()
    srv = _server(lines, go)
    escalator = ctx.installed().script("escalator")
    cfg = _config(ctx, "listen-bench", f"http://127.0.0.1:{srv.server_address[1]}")
    ctx.say(f"listen: {n} state changes from a stream, then collect")
    proc = subprocess.Popen([escalator, "listen", "--config", cfg, "--daemon"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spool_file = os.path.join(os.path.dirname(cfg), "spool", "events.jsonl")
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(os.path.dirname(cfg), "listen.json")) and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu0 = _cpu(proc.pid)
        start = time.perf_counter()
        go.set()
        while _spooled(cfg) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        spooled_s = time.perf_counter() - start
        cpu = _cpu(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        srv.shutdown()
    got = _spooled(cfg)
    collect_s, _, _ = run_child([escalator, "collect", "--config", cfg])
    with open(os.path.join(os.path.dirname(cfg), "journal.jsonl"), "rb") as f:
        journalled = sum(1 for line in f if b'"kind": "event"' in line)
    total = spooled_s + collect_s

    # Baseline: one escalator-handler process per state change (as an EventCommand runs it).
    hcfg = _config(ctx, "handler-bench", "http://127.0.0.1:1")
    hspool = os.path.join(os.path.dirname(hcfg), "spool")
    handler = ctx.installed().script("escalator-handler")
    walls, cpus = [], []
    for i in range(forks):
        wall, _, ru = run_child([handler, "--spool", hspool, "--host", f"web-{i % 50:04d}", "--service", "HTTP",
                                 "--state", "CRITICAL" if i % 2 == 0 else "OK", "--state-type", "HARD",
                                 "--attempt", "1", "--output", "CRITICAL - Connection refused on port 443"])
        walls.append(wall)
        cpus.append(ru.ru_utime + ru.ru_stime)
    hcollect, _, _ = run_child([escalator, "collect", "--config", hcfg])
    h_total = sum(walls) + hcollect
    per_listen, per_handler = cpu / max(got, 1), median(cpus)
    return [
        Row(f"listen: {n} state changes, stream -> journal", f"{journalled / total:,.0f} events/s",
            f"handler forks: {forks / h_total:,.0f} events/s", ratio(journalled / total, forks / h_total),
            note=f"{got} spooled in {spooled_s:.2f}s (fsync per record), collect {collect_s:.2f}s; "
                 f"{journalled} events journalled; handler: {forks} forks, collect {hcollect:.2f}s"),
        Row("listen: CPU per state change", ms(per_listen), f"handler fork: {ms(per_handler)}",
            ratio(per_listen, per_handler), note="listen utime+stime over the stream; handler: median child rusage"),
    ]
