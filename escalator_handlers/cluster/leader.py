"""Leadership in etcd (the storage seam's ``Leadership``): one collector acts, the others wait.

A node campaigns by creating ``P/leader`` under its lease with a
create-if-absent transaction.  The key's ``create_revision`` is the node's
fencing token: every write of the leader compares it (:class:`.journal.Fence`),
so the writes of a leader that lost its lease are refused.

A refused write cannot stop a step that the old leader was just about to
start, though: a leader frozen (SIGSTOP, swap, a VM pause) past its lease
wakes up believing it still leads.  So before each step the collector asks
:meth:`EtcdLeadership.check`: was the lease renewed less than ``ttl - margin``
ago, by this process's monotonic clock, counted from when the renewal was
*sent*?  etcd's lease cannot have expired before that moment.  A node that
is frozen longer than that finds itself stale on waking and starts nothing.

A candidate that lost waits on a watch of the leader key (:mod:`.watch`):
the key's deletion (a lapsed lease, a leader stepping down) wakes it at once,
and nothing is polled meanwhile.  Each process also keeps
``P/members/<node>/<role>`` under its lease, so ``status`` can say which
nodes are alive.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any, Callable, Mapping, Optional

from .. import kinds
from ..system import drain
from .journal import Deposed, Fence
from .etcd import delete_op, put_op, range_op, same_create_revision

log = logging.getLogger("escalator")

LAPSED = "lost leadership: the lease was not renewed in time"


def margin(ttl: float) -> float:
    """How long before the lease's end a leader stops starting steps."""
    return max(0.5, ttl / 4)


class EtcdLeadership:
    """A lease kept alive by a thread, the presence key, and (when won) the leader key."""

    def __init__(self, fence: Fence, node: str, role: str, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fence = fence
        self.etcd = fence.etcd
        self.keys = fence.keys
        self.node = node
        self.role = role
        self.ttl = int(ttl)
        self.clock = clock
        self.lease = 0
        self.renewed = float("-inf")   # monotonic time the last successful renewal was sent
        self.leader_seen: Optional[dict] = None
        self.campaigned_at = 0.0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._watch: Any = None        # the leader-key watch, once a campaign was lost
        self._pipe = (-1, -1)          # what that watch wakes
        self._changed = True           # the leader key may have changed since the last lost campaign

    @property
    def token(self) -> Optional[int]:
        return self.fence.token

    @property
    def held(self) -> bool:
        return self.fence.token is not None

    # -- the lease ----------------------------------------------------------

    def ensure_lease(self) -> None:
        """A live lease with our presence key on it (a new one after a lapse)."""
        with self._lock:
            if self.lease and self.clock() < self.renewed + self.ttl:
                return
            sent = self.clock()
            lease, granted = self.etcd.grant(self.ttl)
            self.lease, self.renewed, self.fence.token = lease, sent, None
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
            except Exception as exc:  # noqa: BLE001 -- any failure: try again; check() runs out meanwhile
                log.debug("lease keepalive failed: %s", exc)
                continue
            with self._lock:
                if lease != self.lease:
                    continue
                if left > 0:
                    self.renewed = max(self.renewed, sent)
                else:
                    if self.fence.token is not None:
                        log.warning("lease expired: no longer the leader")
                    self.lease, self.fence.token = 0, None

    def fresh(self) -> bool:
        """Whether we lead and etcd cannot have let our lease lapse for ``margin`` more seconds."""
        return self.fence.token is not None and self.clock() < self.renewed + self.ttl - margin(self.ttl)

    # -- the seam ----------------------------------------------------------

    def acquire(self, timeout: float) -> bool:
        """Campaign; when another node leads, wait up to ``timeout`` for its key to go (or for
        this node's spool to need forwarding) and campaign once more.

        From the first lost campaign on, a watch of the leader key also makes the intake's
        wake-up descriptor readable when the key goes: a collector that waits on that
        descriptor itself (to see signals too) may call ``acquire(0)``."""
        self.ensure_lease()
        if self._worth_campaigning() and self.campaign():
            return True
        self._watch_leader()
        if timeout <= 0:
            return False
        fds = [fd for fd in (self._pipe[0], self.fence.wake_fd) if fd >= 0]
        try:
            select.select(fds, [], [], timeout)
        except InterruptedError:
            pass
        # Only our own pipe is emptied: the intake's descriptor is the collector's to read (it
        # returns at once from its own wait and forwards what this node's handler spooled).
        drain(self._pipe[0])
        return self._worth_campaigning() and self.campaign()

    def _worth_campaigning(self) -> bool:
        """False while the leader-key watch is up and saw no deletion since we last lost: the
        key is still there, so a campaign would only cost etcd a transaction."""
        w = self._watch
        if self.fence.token is not None or w is None or not w.connected.is_set():
            return True
        with self._lock:
            changed, self._changed = self._changed, False
        return changed

    def check(self) -> Optional[str]:
        # Runs between fork and exec too: only arithmetic on what the threads keep, nothing raised.
        return None if self.fresh() else LAPSED

    def announce(self, what: Mapping[str, Any]) -> None:
        """Write ``P/running`` (fenced): the step about to start, for a successor to name."""
        if not self.fresh():
            raise Deposed(LAPSED)
        self.fence.txn([put_op(self.keys.running, dict(what, node=self.node, token=self.fence.token))])

    def previous(self) -> Optional[dict]:
        kv = self.etcd.get(self.keys.running)
        try:
            value = kv.json() if kv is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def facts(self) -> dict:
        return {"node": self.node, "token": self.fence.token} if self.fence.token is not None else {}

    def tenure_record(self, now: float) -> Optional[dict]:
        # In the journal, so `history` and the chaos test see every leadership and when it began.
        return {"time": now, "kind": kinds.LEADER, "node": self.node, "token": self.fence.token,
                "campaigned": self.campaigned_at}

    def holder(self) -> Optional[str]:
        return (self.leader_seen or {}).get("node")

    def release(self) -> None:
        self.step_down()

    def close(self) -> None:
        """Step down, revoke the lease (removes the presence key), stop the threads."""
        self.step_down()
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        for fd in self._pipe:
            if fd >= 0:
                os.close(fd)
        self._pipe = (-1, -1)
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        if self.lease:
            try:
                self.etcd.revoke(self.lease)
            except Exception as exc:  # noqa: BLE001
                log.info("could not revoke the lease (%s); it lapses by itself", exc)
            self.lease = 0
        self.etcd.close()

    # -- campaigning ------------------------------------------------------------

    def campaign(self) -> bool:
        """Try once to become leader; True when we are (the fence has our token)."""
        self.ensure_lease()
        if self.fence.token is not None:
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
        kvs = r.ranges()[0] if not r.succeeded and r.ranges() else []
        if r.succeeded or (kvs and kvs[0].lease == self.lease):
            # Won, or our own key from before (same lease): it is still ours.
            with self._lock:
                self.fence.token = r.revision if r.succeeded else kvs[0].create_revision
                self.fence.seq = None    # the journal's end is looked up before the first write
            self.leader_seen = value if r.succeeded else kvs[0].json()
            return True
        self.leader_seen = kvs[0].json() if kvs else None
        return False

    def step_down(self) -> None:
        """Stop leading: delete the leader key if it is still ours, so another node takes over at once."""
        with self._lock:
            token, self.fence.token = self.fence.token, None
        if token is None:
            return
        try:
            self.etcd.txn([same_create_revision(self.keys.leader, token)], [delete_op(self.keys.leader)])
        except Exception as exc:  # noqa: BLE001 -- the lease runs out anyway
            log.info("could not delete the leader key (%s); it lapses with the lease", exc)

    def _watch_leader(self) -> None:
        """Start watching the leader key for its deletion (once)."""
        from .watch import Watch

        if self._watch is not None:
            return
        self._pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        w = self._pipe[1]

        def wake() -> None:
            self._changed = True
            try:
                os.write(w, b"\0")
            except OSError:
                pass
            self.fence.wake()
        # A deletion between the lost campaign and the watch's start is covered by the wake
        # every watch gives once it is established.
        self._watch = Watch(self.etcd.urls, self.keys.leader, wake, filters=("NOPUT",))


__all__ = ["LAPSED", "EtcdLeadership", "margin"]
