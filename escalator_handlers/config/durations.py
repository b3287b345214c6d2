"""Durations in the config and on the command line: ``30s``, ``5m``, ``1h30m``, ``500ms``, ``2d``.

The largest unit comes first and each unit at most once; a plain number is
seconds.  :func:`parse_duration` is the one parser: config keys (through the
YAML reader) and ``escalator hold --for`` both use it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

# Largest unit first; a duration lists each unit at most once, in this order.
_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_UNIT_RANK = {u: i for i, (u, _) in enumerate(_UNITS)}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)\s*")
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
DURATION_EXPECTED = "a duration such as 30s, 5m, 1h30m, 500ms or a number of seconds"


def _text_seconds(text: str) -> Optional[float]:
    if _NUMBER.fullmatch(text):
        return float(text)
    seconds, pos, last = 0.0, 0, -1
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m or _UNIT_RANK[m.group(2)] <= last:
            return None
        last = _UNIT_RANK[m.group(2)]
        seconds += float(m.group(1)) * _UNITS[last][1]
        pos = m.end()
    return seconds if text else None


def parse_duration(value: Any) -> float:
    """Seconds in ``value`` ("30s", "5m", "1h30m", "500ms", "2d", or a number >= 0).

    Raise ValueError saying what was expected when ``value`` is none of these.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        negative = text.startswith("-")
        seconds = _text_seconds(text[1:] if negative else text)
        if seconds is None:
            raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}")
        if negative:
            seconds = -seconds
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"{value!r} is out of range: a duration is at most 100 years ({MAX_DURATION:.0f}s)")
    return seconds


#: The longest duration taken (100 years): beyond it no time can be written (the year 9999 comes
#: sooner than a hold ``--for 1e20h`` would end).
MAX_DURATION = 100 * 365.25 * 86400


__all__ = ["DURATION_EXPECTED", "parse_duration"]
