"""Leadership: one collector acts, the others wait; a lapsed lease hands over.

A node campaigns by creating ``P/leader`` under its lease with a
create-if-absent transaction.  The key's ``create_revision`` is the node's
fencing token: every write of the leader compares it (:mod:`.store`), so the
writes of a leader that lost its lease are refused.

A refused write cannot stop a step that the old leader was just about to
start, though: a leader frozen (SIGSTOP, swap, a VM pause) past its lease
wakes up believing it still leads.  So before each step the collector asks
:meth:`Leadership.fresh`: was the lease renewed less than ``ttl - margin``
ago, by this process's monotonic clock, counted from when the renewal was
*sent*?  etcd's lease cannot have expired before that moment.  A node that
is frozen longer than that finds itself stale on waking and starts nothing.

Each process also keeps ``P/members/<node>/<role>`` under its lease, so
``status`` can say which nodes are alive.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Optional

from .etcd import Etcd, delete_op, put_op, range_op, same_create_revision
from .store import Keys

log = logging.getLogger("escalator")


def margin(ttl: float) -> float:
    """How long before the lease's end a leader stops starting steps."""
    return max(0.5, ttl / 4)


class Leadership:
    """A lease kept alive by a thread, the presence key, and (when won) the leader key."""

    def __init__(self, etcd: Etcd, keys: Keys, node: str, role: str, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.etcd = etcd
        self.keys = keys
        self.node = node
        self.role = role
        self.ttl = int(ttl)
        self.clock = clock
        self.lease = 0
        self.token: Optional[int] = None
        self.renewed = float("-inf")   # monotonic time the last successful renewal was sent
        self.leader_seen: Optional[dict] = None
        self.campaigned_at = 0.0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    # -- the lease ----------------------------------------------------------

    def ensure_lease(self) -> None:
        """A live lease with our presence key on it (a new one after a lapse)."""
        with self._lock:
            if self.lease and self.clock() < self.renewed + self.ttl:
                return
            sent = self.clock()
            lease, granted = self.etcd.grant(self.ttl)
            self.lease, self.renewed, self.token = lease, sent, None
            self.ttl = granted
        self.etcd.put(self._member_key(), {"node": self.node, "role": self.role, "pid": os.getpid(),
                                           "since": time.time()}, lease=lease)
        if self._thread is None:
            self._thread = threading.Thread(target=self._keepalive, name="etcd-lease", daemon=True)
            self._thread.start()

    def _member_key(self) -> str:
        return f"{self.keys.members}{self.node}/{self.role}"

    def _keepalive(self) -> None:
        while not self._stop.wait(max(0.2, self.ttl / 4)):
            lease = self.lease
            if not lease:
                continue
            sent = self.clock()
            try:
                left = self.etcd.keepalive(lease)
            except Exception as exc:  # noqa: BLE001 -- any failure: try again; fresh() runs out meanwhile
                log.debug("lease keepalive failed: %s", exc)
                continue
            with self._lock:
                if lease != self.lease:
                    continue
                if left > 0:
                    self.renewed = max(self.renewed, sent)
                else:
                    if self.token is not None:
                        log.warning("lease expired: no longer the leader")
                    self.lease, self.token = 0, None

    def fresh(self) -> bool:
        """Whether we lead and etcd cannot have let our lease lapse for ``margin`` more seconds."""
        return self.token is not None and self.clock() < self.renewed + self.ttl - margin(self.ttl)

    # -- leadership ---------------------------------------------------------

    def campaign(self) -> bool:
        """Try once to become leader; True when we are (``token`` is set)."""
        self.ensure_lease()
        if self.token is not None:
            return True
        # Taken before the request: the leadership cannot have begun earlier (the chaos test's bound).
        self.campaigned_at = time.time()
        value = {"node": self.node, "pid": os.getpid(), "since": self.campaigned_at}
        # The term key is written with the leader key, so every leadership is on record, even
        # one whose node died before it could journal anything (its create_revision = the token).
        term = f"{self.keys.terms}{self.campaigned_at:017.6f}-{self.node}"
        r = self.etcd.txn([same_create_revision(self.keys.leader, 0)],
                          [put_op(self.keys.leader, value, self.lease), put_op(term, value)],
                          [range_op(self.keys.leader)])
        if r.succeeded:
            with self._lock:
                self.token = r.revision
            self.leader_seen = value
            return True
        kvs = r.ranges()[0] if r.ranges() else []
        self.leader_seen = kvs[0].json() if kvs else None
        if kvs and kvs[0].lease == self.lease:
            # Our own key from before a restart of this object: it is still ours.
            with self._lock:
                self.token = kvs[0].create_revision
            return True
        return False

    def step_down(self) -> None:
        """Stop leading: delete the leader key if it is still ours, so another node takes over at once."""
        token, self.token = self.token, None
        if token is None:
            return
        try:
            self.etcd.txn([same_create_revision(self.keys.leader, token)], [delete_op(self.keys.leader)])
        except Exception as exc:  # noqa: BLE001 -- the lease runs out anyway
            log.info("could not delete the leader key (%s); it lapses with the lease", exc)

    def close(self) -> None:
        """Step down and revoke the lease (removes the presence key)."""
        self.step_down()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        if self.lease:
            try:
                self.etcd.revoke(self.lease)
            except Exception as exc:  # noqa: BLE001
                log.info("could not revoke the lease (%s); it lapses by itself", exc)
            self.lease = 0


__all__ = ["Leadership", "margin"]
