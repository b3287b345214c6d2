"""``escalator listen``: Icinga 2's event stream into the spool, with catch-up and a gap ledger.

The listener is one more writer of the intake, like the handler: it appends
event records to the spool (``spool.append``; in cluster mode the forwarder
ships them to etcd) and the collector stays the only thing that acts.

On every (re)connect it first opens the stream (Icinga queues what happens
from then on), then reads the current state of every host and service from
``/v1/objects`` (the catch-up) and spools what changed since it last knew,
then reads the stream, skipping what is not newer than the catch-up saw.  So
nothing that happened while it was away is lost and nothing is applied out
of order.

The gap ledger: whenever escalator cannot hear Icinga (not connected, a
reconnect, the stream silent longer than the watchdog, listen stopped) a
``gap`` record ``outcome: open`` goes to the spool with the last time Icinga
was heard as its ``start``; after the next catch-up a ``gap`` record
``outcome: closed`` gives ``start``, ``end`` and ``reason``.  A listener killed
without a word leaves its heartbeat (``listen.json`` beside the journal,
rewritten every few seconds) to go stale: readers (``listen_state.heartbeat_gap``) count
that as an open gap, and the restarted listener journals it.

``listen.json`` also holds what listen last knew of each check (state, state
type, downtime, check time), which is what a catch-up compares against.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import defaults, kinds, spool
from .config import Config
from .display import iso, safe
from .errors import EscalatorError, UsageError
from .event import GOOD_STATES, CheckKey, check_name, finite_number as _num, observation_id
from .listen_state import Capture, read_state, state_path
from .monitoring import icinga_events as ie

log = logging.getLogger("escalator")

#: What listen remembers of a check: (state, state_type, downtime, check_time).
Known = Tuple[Optional[str], str, int, Optional[float]]
#: Observations remembered to drop a second hearing (StateChange and CheckResult of one result).
RECENT_IDS = 20_000


class Listener:
    """The loop of ``escalator listen``; ``clock`` is wall time, ``sleep`` waits (tests swap both)."""

    def __init__(self, config: Config, password: str, watchdog: float = defaults.LISTEN_WATCHDOG,
                 capture: Optional[str] = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        api = config.nagios.icinga_api if config.nagios else None
        if api is None:
            raise UsageError(f"{config.source}: listen needs nagios: icinga_api: (url, user, password_file)")
        self.config, self.api, self.password = config, api, password
        self.watchdog, self.clock, self.sleep = watchdog, clock, sleep
        self.capture = Capture(capture) if capture else None
        self.stopping = False
        self.stream: Any = None
        self.known: Dict[CheckKey, Known] = {}
        self.recent: "OrderedDict[str, None]" = OrderedDict()
        self.gap: Optional[dict] = None       # the open gap listen spooled (start, reason)
        self.heard: Optional[float] = None    # when Icinga was last heard
        self.stopped = False
        self.spooled = 0
        self._beat = 0.0
        self._close_on_line = False
        self._dirty = True
        self._load()

    # -- the state file ------------------------------------------------------

    def _load(self) -> None:
        data = read_state(self.config)
        if not data:
            return
        for row in data.get("checks") or ():
            try:
                host, service, state, stype, downtime, ct = row
                self.known[(str(host), service or None)] = (state, str(stype), int(downtime), _num(ct))
            except (TypeError, ValueError):
                continue
        self.heard = _num(data.get("heard"))
        gap = data.get("gap")
        if isinstance(gap, dict) and gap.get("start") is not None:
            self.gap = {"start": float(gap["start"]), "reason": str(gap.get("reason") or ""), "spooled": True}
        elif self.heard is not None:
            # Not stopped cleanly (killed, crashed) or stopped: the time since is a gap.
            beat = _num(data.get("beat")) or self.heard
            why = "escalator listen was stopped" if data.get("stopped") else \
                f"escalator listen was not running (its last heartbeat {iso(beat)})"
            self.gap = {"start": self.heard, "reason": why, "spooled": False}

    def save(self, force: bool = False) -> None:
        now = self.clock()
        if not force and not self._dirty and now - self._beat < defaults.LISTEN_HEARTBEAT:
            return
        data = {"pid": os.getpid(), "beat": now, "heard": self.heard, "stopped": self.stopped,
                "gap": {k: v for k, v in self.gap.items() if k != "spooled"} if self.gap else None,
                "checks": [[h, s, *k] for (h, s), k in self.known.items()]}
        path = state_path(self.config)
        tmp = f"{path}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror)
            return
        self._beat, self._dirty = now, False

    # -- spooling ------------------------------------------------------------

    def _spool(self, rec: dict) -> None:
        spool.append(self.config.spool, rec, mode=self.config.spool_mode)
        self.spooled += 1

    def open_gap(self, reason: str) -> None:
        """Record that escalator stopped hearing Icinga (once per gap)."""
        if self.gap is not None and self.gap.get("spooled"):
            return
        start = self.heard if self.heard is not None else self.clock()
        if self.gap is not None:
            start, reason = self.gap["start"], self.gap["reason"]
        self.gap = {"start": start, "reason": reason, "spooled": True}
        log.warning("gap: cannot hear Icinga since %s: %s", iso(start), reason)
        self._spool({"time": self.clock(), "kind": kinds.GAP, "outcome": "open", "start": start,
                     "reason": reason, "source": "listen"})
        self._dirty = True
        self.save(force=True)

    def close_gap(self) -> None:
        """After a catch-up: the gap is over, its end is now."""
        if self.gap is None:
            return
        now = self.clock()
        rec = {"time": now, "kind": kinds.GAP, "outcome": "closed", "start": self.gap["start"], "end": now,
               "reason": self.gap["reason"], "source": "listen"}
        self._spool(rec)
        log.warning("gap closed: %s to %s: %s", iso(rec["start"]), iso(now), safe(rec["reason"], 300))
        self.gap = None
        self._dirty = True

    def offer(self, ev: dict, force: bool = False) -> bool:
        """Spool one event record if it tells the collector something new; True if spooled."""
        key = (ev["host"], ev.get("service"))
        obs = observation_id(ev["host"], ev.get("service"), ev.get("state"), ev["state_type"],
                             ev["downtime"], ev.get("check_time"))
        if obs is not None:
            if obs in self.recent:
                return False
            self.recent[obs] = None
            if len(self.recent) > RECENT_IDS:
                self.recent.popitem(last=False)
        old = self.known.get(key)
        state = ev.get("state") if ev.get("state") is not None else (old[0] if old else None)
        new: Known = (state, ev["state_type"] if ev.get("state") is not None else (old[1] if old else "HARD"),
                      ev["downtime"], ev.get("check_time") if ev.get("check_time") is not None else
                      (old[3] if old else None))
        changed = old is None or old[:3] != new[:3]
        # A failing check's every fresh result goes on (verdicts judge on fresh results);
        # an OK check's repeated OK does not.
        if not (force or changed or (state is not None and state not in GOOD_STATES)):
            self.known[key] = new
            return False
        self.known[key] = new
        self._dirty = True
        self._spool(ev)
        return True

    # -- Icinga ----------------------------------------------------------------

    def _client(self):
        from .monitoring.icinga_api import IcingaClient

        return IcingaClient(self.api.url, self.api.user, self.password, self.api.ca_file,
                            server_name=self.api.server_name)

    def catch_up(self) -> Dict[CheckKey, Optional[float]]:
        """Spool what changed in Icinga since listen last knew; the check times it saw."""
        client = self._client()
        now = self.clock()
        first = not self.known
        seen: Dict[CheckKey, Optional[float]] = {}
        found: List[dict] = []
        for kind, is_host in (("hosts", True), ("services", False)):
            attrs = [a for a in ie.OBJECT_ATTRS if not (is_host and a == "host_name")]
            for obj in client.objects(kind, None, attrs):
                ev = ie.from_object(obj, is_host, now)
                if ev is not None:
                    found.append(ev)
        found.sort(key=lambda r: r["time"])
        sent = 0
        for ev in found:
            key = (ev["host"], ev.get("service"))
            seen[key] = ev.get("check_time")
            old = self.known.get(key)
            if first and ev["state"] in GOOD_STATES and not ev["downtime"]:
                self.known[key] = (ev["state"], ev["state_type"], ev["downtime"], ev.get("check_time"))
                continue  # the first start reports problems only (see docs/icinga.rst)
            if old is not None and old[:3] == (ev["state"], ev["state_type"], ev["downtime"]):
                self.known[key] = old[:3] + (ev.get("check_time"),)
                continue
            sent += self.offer(ev, force=True)
        self._dirty = True
        log.info("catch-up: %d hosts and services read, %d changes spooled", len(found), sent)
        return seen

    def handle(self, line: bytes, snapshot: Dict[CheckKey, Optional[float]]) -> None:
        """One line of the stream."""
        now = self.clock()
        self.heard = now
        if self._close_on_line:
            self._close_on_line = False
            self.close_gap()
        if not line.strip():
            return
        if self.capture is not None:
            self.capture.write(line)
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("event stream: not a JSON line: %s", safe(line, 200))
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind in ie.STATE_TYPES_STREAM:
            ev = ie.from_stream(msg, now)
            if ev is None:
                return
            key = (ev["host"], ev.get("service"))
            ct, snap = ev.get("check_time"), snapshot.get(key)
            if ct is not None and snap is not None and ct <= snap:
                return  # the catch-up reported this result, or a newer one
            self.offer(ev)
        elif kind in ie.DOWNTIME_TYPES:
            self._downtime(msg, now)
        elif kind in ie.ACK_TYPES:
            # The collector reads acknowledgements from the API itself (nagios.ack_interlock):
            # wake it so it reads them now.
            log.info("%s: %s", kind, safe(check_name((str(msg.get("host")), msg.get("service") or None)), 300))
            spool.wake(self.config.spool)

    def _downtime(self, msg: dict, now: float) -> None:
        """DowntimeTriggered starts one downtime, DowntimeRemoved of a triggered one ends it
        (a fixed downtime also sends DowntimeStarted: not counted twice)."""
        key = ie.downtime_object(msg)
        if key is None:
            return
        d = msg.get("downtime") if isinstance(msg.get("downtime"), dict) else {}
        old = self.known.get(key)
        depth = old[2] if old else 0
        if msg.get("type") == "DowntimeTriggered":
            depth += 1
        elif msg.get("type") == "DowntimeRemoved" and (_num(d.get("trigger_time")) or 0) > 0:
            depth = max(0, depth - 1)
        else:
            return
        self.offer(ie.event_record(key[0], key[1], None, old[1] if old else "HARD", 1, depth, "",
                                   _num(msg.get("timestamp")) or now, None, ie.SOURCE_STREAM))

    # -- the loop --------------------------------------------------------------

    def connect(self):
        from .monitoring.icinga_stream import EventStream

        stream = EventStream(self.api.url, self.api.user, self.password, self.api.ca_file,
                             self.api.server_name, timeout=self.watchdog)
        stream.open(ie.STREAM_TYPES, queue=f"escalator-{socket.gethostname()}-{os.getpid()}")
        return stream

    def once(self) -> int:
        """Catch up from /v1/objects once (no stream) and close an open gap."""
        self.catch_up()
        self.close_gap()
        self.heard = self.clock()
        self.save(force=True)
        return 0

    def run(self) -> int:
        """Listen until SIGTERM/SIGINT; reconnect (with a gap) whenever the stream is lost."""
        retry = 1.0
        while not self.stopping:
            try:
                self.stream = self.connect()
                snapshot = self.catch_up()
            except EscalatorError as exc:
                self._drop_stream()
                if self.stopping:
                    break
                self.open_gap(str(exc))
                log.warning("%s; trying again in %.0fs", exc, retry)
                self._pause(retry)
                retry = min(retry * 2, defaults.LISTEN_RETRY_MAX)
                continue
            # The gap ends with the first line of the new stream, not with the catch-up:
            # a stream that answers 200 and then nothing (a bad filter) is no hearing.
            self._close_on_line = True
            self.save(force=True)
            log.info("listening to %s", self.stream.where)
            retry = 1.0
            reason = self._read(snapshot)
            self._drop_stream()
            if not self.stopping:
                self.open_gap(reason)
        self.stopped = True
        if self.heard is not None:
            self.open_gap("escalator listen was stopped")
        self.save(force=True)
        return 0

    def _read(self, snapshot: Dict[CheckKey, Optional[float]]) -> str:
        """Read the stream until it ends; return why it ended."""
        while not self.stopping:
            try:
                line = self.stream.readline()
            except socket.timeout:
                return f"event stream silent for {self.watchdog:.0f}s (watchdog)"
            except EscalatorError as exc:
                return str(exc)
            if not line:
                return "Icinga closed the event stream"
            try:
                self.handle(line, snapshot)
            except EscalatorError as exc:  # the spool cannot be written: nothing heard is kept
                log.error("%s", exc)
                return f"cannot spool what Icinga says: {exc}"
            self.save()
        return "escalator listen was stopped"

    def _drop_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = None

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            self.sleep(min(0.2, end - time.monotonic()) if end > time.monotonic() else 0)
            self.save()

    def stop(self, *_: Any) -> None:
        """Signal handler: finish the current line and leave."""
        self.stopping = True
        if self.stream is not None:
            self.stream.shutdown()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)


def read_password(config: Config) -> str:
    api = config.nagios.icinga_api if config.nagios else None
    if api is None:
        raise UsageError(f"{config.source}: listen needs nagios: icinga_api: (url, user, password_file)")
    try:
        with open(api.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"cannot read Icinga API password file {api.password_file}: {exc.strerror}") from None


__all__ = ["Listener", "read_password"]
