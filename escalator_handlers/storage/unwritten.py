"""A run cut short because the journal could not be written (a full disk, a file size limit).

When a journal append fails in the middle of a run, the collector starts no
further step, keeps the records it could not write (the steps that did finish,
and the run's end), and closes the run with a reason saying why: "the journal
could not be written".  It tries the journal once more; when that fails too,
it leaves those records in a small file beside the journal
(``JOURNAL.unwritten``), and the next collector to start journals them before
anything else.  So the run is closed as what it was, and a step that finished
is listed as done, not as "not run".
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence

from .. import kinds
from ..config import Config
from ..errors import EscalatorError
from ..steps.run_plan import interrupted_run
from ..system import System
from .seam import LeadershipLost, StorageUnavailable

SUFFIX = ".unwritten"

log = logging.getLogger("escalator")


class Held:
    """What a run still had to journal after the journal failed in it, and why it failed."""

    def __init__(self, error: str, records: Sequence[dict]) -> None:
        self.error = error
        self.records: List[dict] = [r for r in records if r.get("kind") != kinds.CHECKPOINT]
        self.closing = False   # set by close(): what is emitted then goes to the journal

    def reason(self) -> str:
        """Why the run starts no further step (the collector's interrupt)."""
        return f"the journal could not be written ({self.error})"


def hold(exc: EscalatorError, acting: bool, state: Any, records: Sequence[dict], batch: Any) -> Held:
    """For a journal append that raised ``exc``: what to hold when it failed in the middle of a
    run (``acting``, a local one, and ``state`` has it open); else raise ``exc`` again.  A taken
    intake batch is not held: it stays taken."""
    if not acting or state.open_run is None or isinstance(exc, (LeadershipLost, StorageUnavailable)):
        raise exc
    log.error("%s: no further step starts; closing the run", exc)
    return Held(str(exc), [] if batch else records)


def close(held: Held, open_run: Optional[Mapping[str, Any]], now: float, config: Config,
          emit: Callable[[Sequence[dict]], None], system: System) -> None:
    """Close the run ``held`` came from: in the journal if it takes the records now, else in
    the note the next collector journals first; then raise, so that the collector stops."""
    held.closing = True
    records = closing_records(open_run or {}, held.records, now, config, held.error)
    where = record(emit, config.journal, records, system)
    raise EscalatorError(f"{held.error}; the run {(open_run or {}).get('run')} stopped there, its end {where}")


def closing_records(open_run: Mapping[str, Any], held: Sequence[Mapping[str, Any]], now: float,
                    config: Config, error: str) -> List[dict]:
    """What to journal for ``open_run`` (its ``start`` as folded, with the steps journalled
    before the failure) given the records ``held`` since: the steps of this run that ended,
    then the ``run`` record closing it with the reason."""
    rid = open_run.get("run")
    steps = [dict(r) for r in held if r.get("kind") == kinds.STEP and r.get("run") == rid]
    done = list(open_run.get("steps_done") or ()) + steps
    closed = interrupted_run(open_run, done, now, config)
    names = closed.get("steps_done") or []
    not_done = closed.get("not_done") or []
    closed["reason"] = (f"stopped: the journal could not be written ({error}); no step was started after "
                        f"that; steps completed: {', '.join(names) or 'none'}; not run: {', '.join(not_done) or 'none'}")
    closed["journal_error"] = error[:500]
    closed["may_be_running"] = []   # the collector waited for every step it had started
    return steps + [closed]


def record(emit: Callable[[Sequence[dict]], None], journal: str, records: Sequence[dict],
           system: System) -> str:
    """Journal ``records`` through ``emit``, else leave them in the note; say where they went."""
    try:
        emit(records)
        return "closed in the journal"
    except EscalatorError:
        pass
    try:
        leave(journal, records, system)
        return f"left in {note_path(journal)} for the next start"
    except OSError as exc:
        return f"not recorded ({exc.strerror}): the next start closes it as interrupted"


def recover(emit: Callable[[Sequence[dict]], None], config: Config, open_run: Optional[Mapping[str, Any]],
            system: System) -> None:
    """At start: journal what a collector left in the note for the run still open, then remove it
    (local storage only: a cluster's journal is in etcd)."""
    journal = config.journal
    if getattr(config, "cluster", None) is not None or not os.path.exists(note_path(journal)):
        return
    left = take(journal, open_run)
    if left and open_run is not None:
        log.warning("the previous collector could not write the journal during run %s; "
                    "journalling how that run ended", open_run.get("run"))
        emit(left)
    done(journal, system)


def note_path(journal: str) -> str:
    return journal + SUFFIX


def leave(journal: str, records: Iterable[Mapping[str, Any]], system: System) -> None:
    """Write ``records`` to the note beside ``journal`` (a new file, fsynced, renamed into place)."""
    path = note_path(journal)
    tmp = f"{path}.{os.getpid()}"
    data = "".join(json.dumps(r, ensure_ascii=True, default=str) + "\n" for r in records).encode("ascii")
    fd = system.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[system.write(fd, view):]
        system.fsync(fd)
    except BaseException:
        system.close(fd)
        system.unlink(tmp)
        raise
    system.close(fd)
    system.rename(tmp, path)


def take(journal: str, open_run: Optional[Mapping[str, Any]]) -> List[dict]:
    """The records a collector left in the note for ``open_run`` (the run still open in the
    journal), or nothing; the note is read, not removed (see :func:`done`)."""
    try:
        with open(note_path(journal), "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    rid = open_run.get("run") if open_run else None
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rid is not None and rec.get("run") == rid \
                and rec.get("kind") in (kinds.STEP, kinds.RUN):
            out.append(rec)
    return out


def done(journal: str, system: System) -> None:
    """Remove the note once its records are journalled (or it is stale)."""
    try:
        system.unlink(note_path(journal))
    except FileNotFoundError:
        pass
