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
import os
from typing import Any, Iterable, List, Mapping, Optional, Sequence

from . import kinds
from .config import Config
from .steps.run_plan import interrupted_run
from .system import System

SUFFIX = ".unwritten"


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
