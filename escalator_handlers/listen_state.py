"""What ``escalator listen`` leaves for others to read: its heartbeat and state file, its capture.

``listen.json`` (beside the journal) is rewritten every few seconds by a
running listener: when it last beat, when it last heard Icinga, the gap it
has open, and what it last knew of each check.  ``heartbeat_gap`` turns it
into the gap open now for ``status``, ``check_escalator`` and the collector:
a listener killed without a word writes no ``gap`` record, but its heartbeat
goes stale.  ``Capture`` keeps the raw stream for ``replay`` and ``test``.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from . import defaults
from .config import Config
from .event import finite_number as _num
from .event import iso_time as iso


def state_path(config: Config) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(config.journal)), defaults.LISTEN_STATE_NAME)


def read_state(config: Config) -> Optional[dict]:
    """listen.json, or None when listen never ran (or it is unreadable)."""
    try:
        with open(state_path(config), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_gap(config: Config, now: float, data: Optional[dict] = None) -> Optional[dict]:
    """An open gap as listen.json tells it (listen gone silent, or not connected), or None.

    None also when listen never ran here (no file): without ``listen`` there is
    no stream to miss."""
    data = read_state(config) if data is None else data
    if not data:
        return None
    beat = _num(data.get("beat"))
    if beat is None:
        return None
    if now - beat > defaults.LISTEN_STALE and not data.get("stopped"):
        heard = _num(data.get("heard")) or beat
        return {"start": heard, "reason": f"escalator listen silent since {iso(beat)} (not running?)"}
    gap = data.get("gap")
    if isinstance(gap, dict) and gap.get("start") is not None:
        return {"start": float(gap["start"]), "reason": str(gap.get("reason") or "")}
    return None


class Capture:
    """The raw stream, one JSON line per event as Icinga sent it, rotated by size
    (FILE, FILE.1 ... FILE.N); ``escalator replay`` and ``escalator test`` read it."""

    def __init__(self, path: str, size: int = defaults.LISTEN_CAPTURE_SIZE, keep: int = defaults.LISTEN_CAPTURE_KEEP):
        self.path, self.size, self.keep = path, size, keep
        self._f = open(path, "ab")

    def write(self, line: bytes) -> None:
        self._f.write(line if line.endswith(b"\n") else line + b"\n")
        self._f.flush()
        if self._f.tell() >= self.size:
            self._f.close()
            for n in range(self.keep - 1, 0, -1):
                if os.path.exists(f"{self.path}.{n}"):
                    os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            os.replace(self.path, f"{self.path}.1")
            self._f = open(self.path, "ab")


__all__ = ["Capture", "heartbeat_gap", "read_state", "state_path"]
