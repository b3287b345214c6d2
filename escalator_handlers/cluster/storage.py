"""The storage seam on etcd: several nodes, one logical collector (``cluster:`` in the config).

:func:`open_cluster` is what :func:`escalator_handlers.storage.open_storage`
returns for a config with ``cluster:``; the collector drives it exactly as
it drives the local files.  The four parts share one :class:`.journal.Fence`
(the etcd client, the keys, the fencing token of the current leadership):

* :class:`EtcdIntake` (here): ``gather`` forwards this node's spool into
  ``P/events/`` (as ``escalator forward`` does, :mod:`.forward`), ``take``
  reads the forwarded records oldest id first (a line that is no record
  and was journalled as rejected before is left out: a forwarder's re-send),
  ``acknowledge`` deletes their
  keys unless the journal's write deleted them already (it does, in the same
  fenced transaction), and ``wakeup_fd`` is the spool's wake-up FIFO, which
  a watch of ``P/events/`` (:mod:`.watch`) also makes readable while this
  node leads: an idle leader sleeps in ``select()`` and polls nothing;
* :class:`.journal.EtcdJournal` and :class:`.journal.EtcdSnapshot`;
* :class:`.leader.EtcdLeadership`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any, List, Optional

from .. import kinds
from ..storage.seam import Batch, Storage, Taken
from .etcd import Etcd
from .journal import FROM_SPOOL, MAX_OPS, Consumed, EtcdJournal, EtcdSnapshot, Fence, Keys
from .leader import EtcdLeadership

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("escalator")

#: Records taken at once: one journal transaction deletes them with the batch that holds them.
PAGE = MAX_OPS - 1


class EtcdIntake:
    """Forwarded records under ``P/events/`` (and this node's local spool, forwarded first)."""

    def __init__(self, config: Config, fence: Fence) -> None:
        self.config = config
        self.fence = fence
        self._fd = -1
        self._watch: Any = None
        self._lock: Any = None
        self._said: Optional[str] = None   # the last forwarding failure logged (once per outage)

    def prepare(self) -> None:
        from .. import spool

        spool.check_spool_dir(self.config.spool, create=True, mode=self.config.spool_mode)

    def open(self) -> None:
        from .. import spool_reader
        from .watch import Watch

        if self._fd >= 0:
            return
        self._fd = spool_reader.open_wakeup(self.config.spool)
        self.fence.wake_fd = self._fd
        fence = self.fence

        def wake() -> None:
            if fence.token is not None:   # a candidate has nothing to take: only the leader wakes
                fence.wake()
        # PUTs only: the leader's own deletions of consumed keys must not wake it.
        self._watch = Watch(fence.etcd.urls, fence.keys.events, wake, prefix=True, filters=("NODELETE",))

    def gather(self) -> None:
        """Forward this node's spool (leader or not); a failure is logged once, the spool keeps it all."""
        from ..errors import EscalatorError
        from .forward import forward_once, spool_lock

        if self._lock is None:
            self._lock = spool_lock(self.config)
        try:
            forward_once(self.config, self.fence.etcd, self.fence.keys, self._lock)
        except EscalatorError as exc:
            if str(exc) != self._said:
                log.warning("cannot forward this node's spool (it keeps the records): %s", exc)
                self._said = str(exc)
            return
        self._said = None

    def take(self) -> Batch:
        kvs, more, _ = self.fence.etcd.get_prefix(self.fence.keys.events, limit=PAGE)
        items: List[Taken] = []
        for kv in kvs:
            raw = kv.value.decode("utf-8", "replace")
            try:
                rec = json.loads(raw)
            except ValueError:
                rec = None
            if not isinstance(rec, dict):
                rec = None
                if self.fence.etcd.get(self.fence.keys.rejected_mark(kv.key)) is not None:
                    continue   # journalled as rejected before, sent again: deleted with this batch
            # Written by `escalator` with etcd's credentials; a forwarder marks what came from a spool.
            command = rec is not None and rec.get("kind") in kinds.CONTROL_KINDS
            items.append(Taken(kv.key, 0, rec, raw, command and not rec.get(FROM_SPOOL),
                               f"an operator command from the spool of {rec.get(FROM_SPOOL)}" if command else None))
        return Batch(tuple(items), Consumed([kv.key for kv in kvs]), more=more)

    def acknowledge(self, batch: Batch) -> None:
        token = batch.token
        if not isinstance(token, Consumed) or token.deleted or not token.keys:
            return
        from .etcd import delete_op

        deletes = [delete_op(k) for k in token.keys]
        for i in range(0, len(deletes), MAX_OPS):
            self.fence.txn(deletes[i:i + MAX_OPS])
        token.deleted = True

    def pending(self) -> bool:
        from .. import spool_reader

        if self.fence.etcd.count_prefix(self.fence.keys.events) > 0:
            return True
        try:
            return spool_reader.pending_stats(self.config.spool)[0] > 0
        except OSError:
            return False

    def wakeup_fd(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self.fence.wake_fd = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_cluster(config: Config) -> Storage:
    """The etcd storage for ``config.cluster`` (nothing is contacted until it is used)."""
    c = config.cluster
    assert c is not None
    # Short request timeouts: a member that does not answer must not eat the lease's margin.
    fence = Fence(Etcd(c.etcd, timeout=max(0.5, min(2.0, c.lease_ttl / 4)), source=config.source),
                  Keys(c.prefix))
    return Storage(intake=EtcdIntake(config, fence), journal=EtcdJournal(fence), snapshot=EtcdSnapshot(fence),
                   leadership=EtcdLeadership(fence, c.node, "collect", c.lease_ttl))


__all__ = ["EtcdIntake", "open_cluster"]
