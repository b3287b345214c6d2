"""``escalator forward``: ship this node's spool into etcd.

The handler is unchanged: it appends to the local spool, which works when
etcd or the network is down.  The forwarder takes the spool (under the
spool's collector lock, like a collector), puts every record as
``P/events/<id>`` and removes the taken file only after etcd acknowledged
every put.  A forwarder killed in between sends the same file again; the
keys are the same and the collector skips ids it journalled already, so a
re-send is harmless.  A line that is not a record is forwarded as text and
journalled by the collector as ``rejected``, as a local collector would.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from typing import List, Optional, Tuple

from .. import kinds, spool, spool_reader
from ..config import Config
from ..errors import EscalatorError
from ..safefs import FlockFile
from ..system import drain
from .etcd import Etcd, put_op
from .journal import FROM_SPOOL, MAX_OPS, Fence, Keys

log = logging.getLogger("escalator")

#: Re-check the spool this often without a wake-up; back off this far at most when etcd is down.
RECHECK = 30.0
MAX_BACKOFF = 10.0


def spool_lock(config: Config) -> FlockFile:
    """The spool's ``collector.lock``, opened without following a symlink and never truncated."""
    return FlockFile(config.spool, spool.LOCK, 0o644)


def forward_once(config: Config, etcd: Etcd, keys: Keys, lock: Optional[FlockFile] = None) -> int:
    """Move what the spool holds into etcd; how many records were sent (-1: spool busy)."""
    spool.check_spool_dir(config.spool, create=True, mode=config.spool_mode)
    lock = lock or spool_lock(config)
    try:
        got = lock.acquire(0.0)
    except OSError as exc:
        raise EscalatorError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
    if not got:
        return -1  # another forwarder (or this node's collector) is taking the spool now
    try:
        taken = spool_reader.take(config.spool)
        sent = 0
        for path in taken:
            ops = [put_op(keys.event(rid), line) for rid, line in _lines(path, config)]
            for i in range(0, len(ops), MAX_OPS):
                r = etcd.txn([], ops[i:i + MAX_OPS])
                if not r.succeeded:  # an empty compare list always succeeds; be sure anyway
                    raise EscalatorError("etcd refused the forwarded records")
            sent += len(ops)
            spool_reader.finish([path])  # only now: every record of the file is in etcd
        return sent
    finally:
        lock.release()


def _lines(path: str, config: Config) -> List[Tuple[str, bytes]]:
    node = config.cluster.node if config.cluster else "local"
    out = []
    base = os.path.basename(path)
    for lineno, rec, raw in spool_reader.read_records(path):
        rid = rec.get("id") if rec is not None else None
        if not isinstance(rid, str) or not rid or "/" in rid or len(rid) > 200:
            # No usable id: name it by where it sits, the same on every re-send of this file.
            rid = f"{node}-{base}-{lineno}"
            if rec is not None:
                rec = dict(rec, id=rid)
        if rec is not None and rec.get("kind") in kinds.CONTROL_KINDS:
            rec = dict(rec, **{FROM_SPOOL: node})  # the monitoring user wrote it: no operator
        data = spool.encode(rec)[:-1] if rec is not None else raw.encode("utf-8", "backslashreplace")
        out.append((rid, data))
    return out


class Forwarder:
    """The ``forward --daemon`` loop: forward, then sleep on the spool's wake-up FIFO."""

    def __init__(self, config: Config, etcd: Etcd) -> None:
        assert config.cluster is not None
        self.config = config
        self.etcd = etcd
        self.keys = Keys(config.cluster.prefix)
        self.stopping = threading.Event()
        self.sent = 0

    def run(self, daemon: bool) -> int:
        from .leader import EtcdLeadership

        # Only the lease and the presence key (P/members/<node>/forward): a forwarder never campaigns.
        presence = EtcdLeadership(Fence(self.etcd, self.keys), self.config.cluster.node, "forward",
                                  self.config.cluster.lease_ttl)
        old = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        spool.check_spool_dir(self.config.spool, create=True, mode=self.config.spool_mode)
        wake = spool_reader.open_wakeup(self.config.spool) if daemon else -1
        backoff = 0.5
        try:
            while True:
                try:
                    if daemon:
                        presence.ensure_lease()
                    n = forward_once(self.config, self.etcd, self.keys)
                    if n > 0:
                        self.sent += n
                        log.info("forwarded %d record(s) to etcd", n)
                    backoff = 0.5
                    timeout = RECHECK if n >= 0 else 1.0
                except EscalatorError as exc:
                    if not daemon:
                        raise type(exc)(f"{exc} (nothing is lost: this node's spool keeps the records)") from None
                    log.warning("cannot forward (the spool keeps the records): %s", exc)
                    timeout, backoff = backoff, min(MAX_BACKOFF, backoff * 2)
                if not daemon or self.stopping.is_set():
                    return 0
                self._sleep(wake, timeout)
                if self.stopping.is_set():
                    return 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if wake >= 0:
                os.close(wake)
            if daemon:
                presence.close()

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping.set()

    def _sleep(self, wake: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                ready, _, _ = select.select([wake], [], [], min(left, 0.5))
            except InterruptedError:
                continue
            if ready:
                drain(wake)
                return


__all__ = ["Forwarder", "forward_once", "spool_lock"]
