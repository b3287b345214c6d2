"""One writer process of the concurrent-append benchmark.

``python -m benchmarks.spoolwriter MODE PATH COUNT WRITER`` prints ``ready``,
waits for a line on stdin (so that all writers start together), appends
COUNT records and prints ``{"start": t0, "end": t1}`` (CLOCK_MONOTONIC,
which all processes share).  MODE is ``spool`` (escalator_handlers.spool.append
to the spool directory PATH, durable), ``fsync`` (one O_APPEND file at PATH,
fsync after every line) or ``nofsync`` (the same without fsync).  Every
record carries its writer and sequence number so the parent can check that
nothing was lost, duplicated or torn.
"""

from __future__ import annotations

import json
import os
import sys
import time


def record(writer: int, seq: int) -> dict:
    return {"time": 1795500000.0 + seq, "host": f"web-{writer:04d}", "service": "HTTP",
            "state": "CRITICAL", "state_type": "SOFT", "attempt": 1, "downtime": 0,
            "output": f"CRITICAL - Connection refused (writer {writer} event {seq})",
            "writer": writer, "seq": seq}


def main() -> int:
    mode, path, count, writer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    records = [record(writer, i) for i in range(count)]
    if mode == "spool":
        from escalator_handlers import spool

        append = spool.append
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        t0 = time.monotonic()
        for rec in records:
            append(path, rec)
    else:
        from escalator_handlers.spool import encode, new_id

        lines = [encode(dict(rec, id=new_id())) for rec in records]  # the same bytes a spool line has
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        sync = mode == "fsync"
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        t0 = time.monotonic()
        for line in lines:
            os.write(fd, line)
            if sync:
                os.fsync(fd)
        os.close(fd)
    t1 = time.monotonic()
    sys.stdout.write(json.dumps({"start": t0, "end": t1}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
