"""Read Nagios 4 ``nagios.log`` (and Icinga 2's compat log, same format).

Turns ``SERVICE ALERT``, ``HOST ALERT``, ``CURRENT SERVICE STATE``,
``CURRENT HOST STATE`` (and the ``INITIAL`` ones Nagios logs at start-up with
``log_initial_states=1``, same format) and downtime alerts into observations
for the state fold.

Downtime is derived from ``HOST/SERVICE DOWNTIME ALERT`` lines the way each
daemon writes them (see :class:`Downtimes`); one :class:`Downtimes` passed to
every file of a history carries it across rotated archives.  Other
well-formed lines (notifications, event handler runs, external commands,
start-up messages) are ignored; lines that are not Nagios log lines at all,
or alerts with missing fields, are counted as unparsed with their line
numbers; so are those whose time or attempt number no clock or count can use
("[inf]", "[nan]", an attempt of "\u00b2").

Built for speed: :func:`parse_file` matches a block of lines per regex call
and reads a million-line log in about a second (``benchmarks``); the
general parser, a line at a time, stays the definition of every line and
reads the few the block matcher leaves to it.
"""

from __future__ import annotations

import codecs
import io
import math
import re
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..event import HOST_STATES, SERVICE_STATES

#: (time, host, service, state, state_type, attempt, downtime, output)
Observation = Tuple[float, str, Optional[str], Optional[str], str, int, int, str]

_SVC_STATES = frozenset(SERVICE_STATES)
_HOST_STATES = frozenset(HOST_STATES)
_TYPES = frozenset(("SOFT", "HARD"))


@dataclass
class ParseStats:
    lines: int = 0
    used: int = 0
    ignored: int = 0
    unparsed: int = 0
    unparsed_lines: List[int] = field(default_factory=list)

    def bad(self, lineno: int) -> None:
        self.unparsed += 1
        if len(self.unparsed_lines) < 1000:
            self.unparsed_lines.append(lineno)


#: The words a downtime alert carries, and the message Icinga 2 writes with
#: STARTED (Nagios, Icinga 1 and Naemon write "Host/Service has entered ...").
DOWNTIME_WORDS = frozenset(("STARTED", "STOPPED", "CANCELLED"))
_ICINGA2_STARTED = "Checkable has entered"


class Downtimes:
    """Scheduled-downtime depth per object, as far as a log can tell.

    Nagios (3.x and 4.x; Icinga 1 and Naemon keep its ``downtime.c`` rule)
    logs ``STARTED`` only when an object's depth goes from 0 to 1 -- Nagios
    again after every restart for each downtime still in effect -- and
    ``STOPPED``/``CANCELLED`` only when it returns to 0: an on/off signal.  Icinga 2's compat logger writes one ``STARTED`` per
    triggered downtime ("Checkable has entered ...") and one
    ``STOPPED``/``CANCELLED`` per removed downtime, overlapping ones
    included: a count.  So a Nagios STARTED means "on" (depth 1), an Icinga 2
    STARTED adds one, and STOPPED/CANCELLED take one off (from a Nagios depth
    of 1 that is "off").  Icinga 2 also writes STOPPED or CANCELLED for a
    downtime that never started; the log cannot tell those apart, so such a
    line ends one of the overlapping downtimes early (README: replay).

    Only objects in downtime are kept (depth > 0), services by host: most
    alerts are of hosts with none, and the parser asks for every alert.
    """

    __slots__ = ("service", "host")

    def __init__(self) -> None:
        self.service: Dict[str, Dict[str, int]] = {}  # host -> service -> depth
        self.host: Dict[str, int] = {}

    def of_service(self, host: str, service: str) -> int:
        return self.service[host].get(service, 0) if host in self.service else 0

    def set_service(self, host: str, service: str, depth: int) -> None:
        services = self.service.setdefault(host, {})
        if depth:
            services[service] = depth
        else:
            services.pop(service, None)
            if not services:
                del self.service[host]

    def set_host(self, host: str, depth: int) -> None:
        if depth:
            self.host[host] = depth
        else:
            self.host.pop(host, None)

    @staticmethod
    def next_depth(depth: int, word: str, message: str) -> int:
        if word == "STARTED":
            return depth + 1 if message.lstrip().startswith(_ICINGA2_STARTED) else 1
        return depth - 1 if depth > 0 else 0


#: The kinds of line turned into observations, each with a small code.
_KINDS = {
    "SERVICE ALERT": 1, "CURRENT SERVICE STATE": 1, "INITIAL SERVICE STATE": 1,
    "HOST ALERT": 2, "CURRENT HOST STATE": 2, "INITIAL HOST STATE": 2,
    "SERVICE DOWNTIME ALERT": 3, "HOST DOWNTIME ALERT": 4,
}


def _general(line: str, lineno: int, st: ParseStats, dts: Downtimes) -> Optional[Observation]:
    """What one line means: an observation, or None when it is ignored or (counted in ``st``) unparsed.

    The definition of the format; :func:`_observe` gives the common lines to it
    only when they are not what its matcher recognises.
    """
    if line[:1] != "[":
        if line.strip():
            st.bad(lineno)
        return None  # a blank line is ignored
    end = line.find("] ", 1)
    colon = line.find(": ", end)
    code = _KINDS.get(line[end + 2:colon]) if colon > 0 else None
    try:
        t = float(line[1:end])
    except ValueError:
        st.bad(lineno)
        return None
    if code is None:
        return None  # notifications, handler runs, "Nagios 4.4.6 starting..." and the like
    if not math.isfinite(t):  # "[inf]", "[nan]", 400 digits: no clock can run to or from it
        st.bad(lineno)
        return None
    if line[-1:] == "\n":
        line = line[:-1]
    if code == 1:
        p = line[colon + 2:].split(";", 5)
        n = _attempt(p[4]) if len(p) >= 5 else None
        if n is None or p[2] not in _SVC_STATES or p[3] not in _TYPES:
            st.bad(lineno)
            return None
        return (t, p[0], p[1], p[2], p[3], n, dts.of_service(p[0], p[1]), p[5] if len(p) > 5 else "")
    if code == 2:
        p = line[colon + 2:].split(";", 4)
        n = _attempt(p[3]) if len(p) >= 4 else None
        if n is None or p[1] not in _HOST_STATES or p[2] not in _TYPES:
            st.bad(lineno)
            return None
        return (t, p[0], None, p[1], p[2], n, dts.host.get(p[0], 0), p[4] if len(p) > 4 else "")
    if code == 3:
        p = line[colon + 2:].split(";", 3)
        if len(p) < 3 or p[2] not in DOWNTIME_WORDS:
            st.bad(lineno)
            return None
        d = Downtimes.next_depth(dts.of_service(p[0], p[1]), p[2], p[3] if len(p) > 3 else "")
        dts.set_service(p[0], p[1], d)
        return (t, p[0], p[1], None, "HARD", 1, d, p[2])
    p = line[colon + 2:].split(";", 2)
    if len(p) < 2 or p[1] not in DOWNTIME_WORDS:
        st.bad(lineno)
        return None
    d = Downtimes.next_depth(dts.host.get(p[0], 0), p[1], p[2] if len(p) > 2 else "")
    dts.set_host(p[0], d)
    return (t, p[0], None, None, "HARD", 1, d, p[1])


def _attempt(text: str) -> Optional[int]:
    """An attempt number, or None: digits only, and ones int() reads ("\u00b2" is a digit
    it refuses, and so is a number of more than 4300 digits)."""
    if not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _by_last_letter(words: Sequence[str]) -> Dict[str, str]:
    table = {word[-1]: word for word in words}
    assert len(table) == len(words), words  # the matcher below relies on it
    return table


#: A state or type by its last letter, which the matcher captures instead of the word: a
#: letter is a string Python does not allocate, and the fold compares and hashes these shared
#: words faster than a fresh copy in every observation (parse + fold of a busy log: a tenth).
_SVC_STATE, _HOST_STATE, _TYPE = map(_by_last_letter, (SERVICE_STATES, HOST_STATES, tuple(_TYPES)))


def _lines_matcher() -> Callable[..., List[Tuple[str, ...]]]:
    """``findall`` over a text of whole lines: one tuple a line, in order.

    Matching all the lines of a block in one call costs far less than a call
    a line.  Each line matches one branch, up to and including its "\\n":
    (1) a service or host alert (or state) with every field, as (time, host,
    service, state, "", "", type, attempt, output, "") or (time, "", "", "",
    host, state, type, attempt, output, ""), with the state and type as their
    last letters (a look back captures them: see :data:`_SVC_STATE`); (2) a
    line of another kind (its text after "] " does not start with a kind and
    ": "), which the general parser ignores: (time, "", ...); (3) anything
    else, whole, in the last field, for the general parser: downtime alerts,
    missing fields, times or attempts that are not 1-15 digits, foreign lines.  The
    matcher only recognises: it gives what the general parser would
    (``tests/test_nagioslog.py``).  Possessive repeats: backtracking into a
    field can never help.
    """
    def kinds(code: int) -> str:
        return "|".join(k for k, c in _KINDS.items() if c == code)

    return re.compile(
        rf"\[([0-9]{{1,15}}+)\] (?:"
        rf"(?:(?:{kinds(1)}): ([^;\n]*+);([^;\n]*+);(?:{'|'.join(SERVICE_STATES)})(?<=(.))"
        rf"|(?:{kinds(2)}): ([^;\n]*+);(?:{'|'.join(HOST_STATES)})(?<=(.)))"
        rf";(?:SOFT|HARD)(?<=(.));([0-9]{{1,15}}+);([^\n]*+)\n"
        rf"|(?!(?:{'|'.join(_KINDS)}): )[^\n]*+\n)"
        rf"|([^\n]*+\n)").findall


_LINES = _lines_matcher()
_OTHER = ("",) * 9  # a row of branch (3), but for its line


class _Attempts(dict):
    """Attempt numbers by their text, each converted once (``_observe`` checked the digits)."""

    __slots__ = ()

    def __missing__(self, text: str) -> int:
        n = int(text)
        if len(self) < 1000:
            self[text] = n
        return n


_ATTEMPTS = _Attempts((str(i), i) for i in range(1, 11))


def _observe(rows: List[Tuple[str, ...]], lineno: int, st: ParseStats, dts: Downtimes) -> List[Observation]:
    """The observations of :data:`_LINES`' ``rows``, the lines after line ``lineno``."""
    svc_dt, host_dt, general, attempts = dts.service, dts.host, _general, _ATTEMPTS
    svc_state, host_state, types = _SVC_STATE, _HOST_STATE, _TYPE
    out: List[Observation] = []
    add = out.append
    # A busy log writes many lines a second and few distinct attempts: convert each once.
    # float(int(ts)): the same value as float(ts) for up to 15 digits, at half the cost.
    last_ts, last_t = "", 0.0
    i = 0
    for ts, host, service, state, h_host, h_state, state_type, attempt, output, other in rows:
        if state:
            if ts != last_ts:
                last_ts, last_t = ts, float(int(ts))
            add((last_t, host, service, svc_state[state], types[state_type],
                 attempts[attempt], svc_dt[host].get(service, 0) if host in svc_dt else 0, output))
        elif h_state:
            if ts != last_ts:
                last_ts, last_t = ts, float(int(ts))
            add((last_t, h_host, None, host_state[h_state], types[state_type],
                 attempts[attempt], host_dt.get(h_host, 0) if host_dt else 0, output))
        elif other:
            # Its line number, looked up instead of counting every line: the rows since the
            # last such line are alerts and ignored lines, none equal to this one.
            i = rows.index(_OTHER + (other,), i) + 1
            obs = general(other, lineno + i, st, dts)
            if obs is not None:
                add(obs)
    return out



def parse(f: Iterable[str], stats: Optional[ParseStats] = None,
          downtimes: Optional[Downtimes] = None) -> Iterator[Observation]:
    """Yield observations from an open nagios.log (any iterable of its lines), in file order.

    A downtime alert becomes an observation without a state whose output is
    the alert's word (STARTED, STOPPED, CANCELLED) and whose downtime is the
    depth after it; alerts carry their object's current depth.  Pass the same
    ``downtimes`` to every file of one history, in time order.  ``stats`` is
    complete once the observations are exhausted.
    """
    st = stats if stats is not None else ParseStats()
    dts = downtimes if downtimes is not None else Downtimes()
    return chain.from_iterable(_line_batches(iter(f), st, dts))  # lists of observations, taken apart in C


def parse_file(f: BinaryIO, stats: Optional[ParseStats] = None,
               downtimes: Optional[Downtimes] = None) -> Iterator[Observation]:
    """:func:`parse` for a nagios.log opened in binary mode (plain or gzip), read in large blocks.

    It reads the text ``open(path, encoding="utf-8", errors="replace")``
    would: UTF-8 with replacement characters, "\\r\\n" and "\\r" read as "\\n".
    """
    return chain.from_iterable(parse_blocks(f, stats, downtimes))


def parse_blocks(f: BinaryIO, stats: Optional[ParseStats] = None,
                 downtimes: Optional[Downtimes] = None) -> Iterator[List[Observation]]:
    """:func:`parse_file`'s observations in lists, a block of the file at a time.

    For a caller that wraps the reading (replay turns read errors into usage
    errors) at a cost per block instead of per observation.
    """
    st = stats if stats is not None else ParseStats()
    dts = downtimes if downtimes is not None else Downtimes()
    return _blocks(f, st, dts)


#: Lines a batch of :func:`parse`, bytes a read of :func:`parse_file`: large enough that one
#: call matches many lines, small enough that a block's tuples (some 50 KB for 8 KB of log)
#: stay in a core's own cache.  At 64 KB (half a megabyte of tuples a block) replay of the
#: benchmarks' 1M-line log took as many instructions but a third longer on a busy machine
#: (best runs 5.4 against 3.9 s, interleaved).
_BATCH_LINES = 128
_BLOCK_BYTES = 1 << 13
_LAST = itemgetter(slice(-1, None))


def _line_batches(lines: Iterator[str], st: ParseStats, dts: Downtimes) -> Iterator[List[Observation]]:
    lineno = used = 0
    bad_before = st.unparsed
    error: Optional[Exception] = None
    while error is None:
        batch: List[str] = []
        try:
            batch.extend(islice(lines, _BATCH_LINES))
        except Exception as exc:  # a damaged file: the lines read before it still count, as line by line
            error = exc
        if not batch:
            break
        rows = None
        # The matcher splits at "\n": it may take the batch whole only if every line ends
        # in its only "\n" (each ends in one, and there are as many rows as lines).
        if "".join(map(_LAST, batch)) == "\n" * len(batch):
            rows = _LINES("".join(batch))
        if rows is not None and len(rows) == len(batch):
            obs = _observe(rows, lineno, st, dts)
        else:  # a last line without "\n", lines split at "\r" (newline=""): one at a time
            obs = [o for o in (_general(line, n, st, dts) for n, line in enumerate(batch, lineno + 1))
                   if o is not None]
        lineno += len(batch)
        used += len(obs)
        yield obs
    if error is not None:
        raise error
    _count(st, lineno, used, bad_before)


def _blocks(f: BinaryIO, st: ParseStats, dts: Downtimes) -> Iterator[List[Observation]]:
    # The decoder io.TextIOWrapper(f, encoding="utf-8", errors="replace") uses, fed a block at a time.
    decode = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")("replace"), translate=True).decode
    # read1: at most one read of the file below, so a truncated gzip archive raises only after
    # every byte before the damage was given out, as it does when read line by line.
    read = getattr(f, "read1", f.read)
    lineno = used = 0
    bad_before = st.unparsed
    rest = ""
    while True:
        data = read(_BLOCK_BYTES)
        text = rest + decode(data, final=not data)
        end = text.rfind("\n") + 1
        if end:
            rows = _LINES(text, 0, end)
            obs = _observe(rows, lineno, st, dts)
            lineno += len(rows)
            used += len(obs)
            yield obs
        rest = text[end:]
        if not data:
            break
    if rest:  # the last line, without its "\n"
        lineno += 1
        obs = [o for o in (_general(rest, lineno, st, dts),) if o is not None]
        used += len(obs)
        yield obs
    _count(st, lineno, used, bad_before)


def _count(st: ParseStats, lines: int, used: int, bad_before: int) -> None:
    """Every line is used, ignored or unparsed: ignored ones are what the others leave."""
    st.lines += lines
    st.used += used
    st.ignored += lines - used - (st.unparsed - bad_before)
