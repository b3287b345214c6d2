"""What one step execution produced: :class:`StepResult`, and the bounded output tail.

Steps can print without limit (a chef-client run at debug level, a build
log); the journal keeps only the last :data:`OUTPUT_TAIL` characters, and
:class:`TailBuffer` makes sure memory stays bounded while reading too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

#: Characters of combined stdout+stderr kept per step execution.
OUTPUT_TAIL = 4096

# UTF-8 needs at most 4 bytes a character: keeping this many bytes always
# yields OUTPUT_TAIL characters after decoding, whatever the encoding mix.
_TAIL_BYTES = OUTPUT_TAIL * 4


@dataclass(frozen=True)
class StepResult:
    """One execution of one step (on one host for ``foreach: host`` steps).

    ``error`` says why the step failed when it is not simply a non-zero
    exit status (timeout, connection, host key, bad template...).
    ``ok_exits`` are the exit statuses that count as success (chef-client
    accepts more than 0).  Never holds secrets: no passphrases, no key
    material, and ssh ``env`` values are masked in ``command``.
    """

    where: str
    host: Optional[str]
    command: str
    exit: Optional[int]
    duration: float
    output: str
    error: Optional[str] = None
    warning: Optional[str] = None
    ok_exits: Tuple[int, ...] = (0,)
    attempts: int = 1
    skipped: Optional[str] = None   # not run on this host, and why (a converge already in flight)

    @property
    def ok(self) -> bool:
        if self.skipped:
            return True  # nothing was started; the run goes on, the verdict judges the host
        return self.error is None and self.exit is not None and self.exit in self.ok_exits


class TailBuffer:
    """Accumulates bytes, keeping only the last ``_TAIL_BYTES``; counts what it dropped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= _TAIL_BYTES:
            self._buf[:] = data[-_TAIL_BYTES:]
            return
        self._buf += data
        if len(self._buf) > 2 * _TAIL_BYTES:
            # Trim in batches so a stream of small chunks is not quadratic.
            del self._buf[:-_TAIL_BYTES]

    def note(self, text: str) -> None:
        """Append a line of our own (e.g. a retry notice) to the tail."""
        self.add(("\n" if self._buf and not self._buf.endswith(b"\n") else "").encode()
                 + text.encode() + b"\n")

    def text(self) -> str:
        data = bytes(self._buf[-_TAIL_BYTES:])
        if len(data) < self.total:
            # Cut mid-stream: skip UTF-8 continuation bytes so the tail does not
            # start with a replacement character.
            i = 0
            while i < len(data) and i < 3 and (data[i] & 0xC0) == 0x80:
                i += 1
            data = data[i:]
        return data.decode("utf-8", errors="replace")[-OUTPUT_TAIL:]
