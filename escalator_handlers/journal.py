"""The journal: the durable record of everything escalator saw, decided and did.

One JSON object a line (ASCII, so hostile text is stored and shown escaped).
Every record has ``time`` and ``kind``.  The journal is the source of truth:
the collector's working state (``state.State``) is a fold of its records, and
``state.json`` is only a snapshot of that fold.  Only the collector (holding
the spool lock) appends, so appends need no lock of their own.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Mapping, Optional, Tuple

from .errors import EscalatorError
from .safefs import follow_owner
from .spool import write_at_end
from .system import REAL, System


def dumps(record: Mapping) -> str:
    """One journal line (without the newline)."""
    return json.dumps(record, ensure_ascii=True, separators=(", ", ": "), default=str)


def append(path: str, records: Iterable[Mapping], system: System = REAL) -> int:
    """Append records durably (one write, fsync); return the new end offset.

    A torn last line left by a crash is terminated first, so the new records
    always start on a line of their own.  Effects go through ``system``.
    """
    data = "".join(dumps(r) + "\n" for r in records).encode("ascii")
    if not data:
        return os.path.getsize(path) if os.path.exists(path) else 0
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    try:
        fd = system.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise EscalatorError(f"cannot open journal {path}: {exc.strerror}") from None
    try:
        _own(fd, d, path)
        size = os.fstat(fd).st_size
        try:
            written = write_at_end(fd, size, data, system.write)
            system.fsync(fd)
        except OSError as exc:
            # Never leave half a record behind: cut back to where we started.
            try:
                system.ftruncate(fd, size)
            except OSError:
                pass
            raise EscalatorError(f"cannot write journal {path}: {exc.strerror}") from None
        return size + written
    finally:
        system.close(fd)


def is_new(path: str) -> bool:
    """Whether an append would start a journal file (none yet, or empty after a logrotate)."""
    try:
        return os.path.getsize(path) == 0
    except FileNotFoundError:
        return True
    except OSError:
        return False  # the append says what is wrong


def create(path: str) -> None:
    """Make sure the journal exists (empty if new), as ``append`` would create it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise EscalatorError(f"cannot open journal {path}: {exc.strerror}") from None
    try:
        _own(fd, os.path.dirname(os.path.abspath(path)), path)
    finally:
        os.close(fd)


def _own(fd: int, d: str, path: str) -> None:
    """A regular file with one link, owned (when root writes it) like its directory, so that
    escalator's user and the readers of its group keep their access after a root collect."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        raise EscalatorError(f"refusing to write journal {path}: it is not a regular file with one link")
    follow_owner(fd, os.stat(d))


@dataclass
class ReadStats:
    """What a read of the journal skipped."""

    corrupt: int = 0            # lines skipped: damaged, or a torn last line


def read(path: str, offset: int = 0, stats: Optional[ReadStats] = None) -> Iterator[Tuple[int, dict]]:
    """Yield (end offset, record) from ``offset``; skip lines that do not parse.

    A torn last line (a crash mid-append) is detected and skipped, never fatal.
    A last line that is a whole record and lacks only its newline is a record:
    the next ``append`` terminates it, and every later read must agree with
    this one (a prefix of a JSON object never parses as one).
    """
    stats = stats if stats is not None else ReadStats()
    try:
        if path.endswith(".gz"):  # logrotate's `compress`: journal.jsonl.2.gz and older
            import gzip

            f = gzip.open(path, "rb")
        else:
            f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        pos = offset
        for raw in f:
            pos += len(raw)
            if raw == b"\n":
                continue  # the newline append() added after such a record
            try:
                rec = json.loads(raw)
            except ValueError:
                stats.corrupt += 1
                if not raw.endswith(b"\n"):
                    return  # a torn last line: nothing can follow it
                continue
            if not isinstance(rec, dict) or "kind" not in rec:
                stats.corrupt += 1
                continue
            yield pos, rec


def rotated(path: str) -> List[str]:
    """The rotated journals logrotate left beside ``path`` (``.1``, ``.2.gz``...), oldest first."""
    d, base = os.path.split(os.path.abspath(path))
    found = []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for name in names:
        if not name.startswith(base + "."):
            continue
        tail = name[len(base) + 1:]
        n = tail[:-3] if tail.endswith(".gz") else tail
        if n.isdigit():
            found.append((int(n), name.endswith(".gz"), os.path.join(d, name)))
    by_number = {}
    for n, gz, p in sorted(found, key=lambda x: x[1], reverse=True):
        by_number[n] = p  # a number present twice (mid-compression): the plain file wins
    return [by_number[n] for n in sorted(by_number, reverse=True)]  # oldest (highest) first


def identity(path: str) -> Optional[Tuple[int, int]]:
    """(device, inode) of the journal file, to notice rotation."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
