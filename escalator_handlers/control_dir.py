"""The operators' channel: pause, hold, run, approve... as files in the control directory.

The event spool is written by the monitoring user, so nothing found there can
prove an operator.  Operator commands are files in ``control/`` beside
``state.json`` (the state directory, which only root and escalator's own user
may write: the same users who could write the journal anyway).  Who gave a
command is the file's owner (``st_uid``), never a field it declares: only a
file root wrote may name the person root acts for (``sudo``'s caller).

A command is written whole (an O_EXCL temporary file renamed into place,
:mod:`.safefs`), taken by the collector holding the lock, journalled, and only
then removed, like a spool file.  A command file owned by anybody else is
rejected (``rejected`` record), and so is an operator record in the spool
(:func:`escalator_handlers.storage.intake_records`).
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import List, Set, Tuple

from . import defaults
from .errors import EscalatorError
from .safefs import UnsafePath, follow_owner, open_dir, open_regular, write_atomic_at
from .storage.seam import Taken

#: Command files are named ``cmd-<ns>-<pid>-<random>.json`` (name order is time order).
PREFIX = "cmd-"
SUFFIX = ".json"
#: A command file longer than this is not read (rejected).
MAX_COMMAND = 1 << 16


def path_for(state_dir: str) -> str:
    return os.path.join(state_dir, defaults.CONTROL_DIR_NAME)


def trusted_uids(state_dir: str) -> Set[int]:
    """Who may command: root, this process's user, and the owner of the state directory."""
    uids = {0, os.geteuid()}
    try:
        uids.add(os.stat(state_dir).st_uid)
    except OSError:
        pass
    return uids


def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def owner_hint(state_dir: str) -> str:
    try:
        owner = user_name(os.stat(state_dir).st_uid)
    except OSError:
        owner = "escalator's user"
    return (f"only root and {owner} (the owner of {state_dir}) may give operator commands: "
            f"run it with sudo, or sudo -u {owner}")


def ensure(state_dir: str) -> int:
    """The control directory as a descriptor, created (mode 0750, owned like the state
    directory) when missing.  Raises EscalatorError when it is unsafe or cannot be made."""
    control = path_for(state_dir)
    try:
        os.makedirs(state_dir, defaults.STATE_DIR_MODE, exist_ok=True)
        try:
            os.mkdir(control, defaults.CONTROL_DIR_MODE)
        except FileExistsError:
            pass
        else:
            dfd = open_dir(control)
            try:
                os.fchmod(dfd, defaults.CONTROL_DIR_MODE)
                follow_owner(dfd, os.stat(state_dir))
            except BaseException:
                os.close(dfd)
                raise
            return dfd
        dfd = open_dir(control)
    except PermissionError:
        raise EscalatorError(f"cannot create {control}: permission denied; {owner_hint(state_dir)}") from None
    except OSError as exc:
        raise EscalatorError(f"cannot use control directory {control}: {exc.strerror or exc}") from None
    try:
        _check(control, os.fstat(dfd), trusted_uids(state_dir))
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _check(control: str, st: os.stat_result, trusted: Set[int]) -> None:
    if st.st_uid not in trusted:
        raise EscalatorError(f"refusing control directory {control}: owned by {user_name(st.st_uid)}, "
                             f"not root or escalator's user; chown it to the owner of {os.path.dirname(control)}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise EscalatorError(f"refusing control directory {control}: others may write it "
                             f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod go-w {control}")


def write(state_dir: str, record: dict) -> str:
    """Write one operator command; return its file name.  Raises EscalatorError with a plain
    reason (who may command) when this user may not."""
    data = (json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")
    if len(data) > MAX_COMMAND:
        raise EscalatorError(f"operator command too long ({len(data)} bytes, at most {MAX_COMMAND})")
    name = f"{PREFIX}{time.time_ns():020d}-{os.getpid()}-{os.urandom(6).hex()}{SUFFIX}"
    dfd = ensure(state_dir)
    try:
        write_atomic_at(dfd, name, data, 0o640, keep_owner=True)  # its owner says who gave it
        os.fsync(dfd)
    except PermissionError:
        raise EscalatorError(f"cannot write to {path_for(state_dir)}: permission denied; "
                             f"{owner_hint(state_dir)}") from None
    except OSError as exc:
        raise EscalatorError(f"cannot write to {path_for(state_dir)}: {exc.strerror or exc}") from None
    finally:
        os.close(dfd)
    return name


def take(state_dir: str) -> Tuple[List[Taken], List[str]]:
    """For the lock holder (and readers): every command waiting, oldest first, and their paths.

    A command file whose owner may not command, or which is not a regular file,
    is taken as untrusted (``intake_records`` rejects it) and removed with the rest.
    """
    control = path_for(state_dir)
    try:
        dfd = open_dir(control)
    except FileNotFoundError:
        return [], []
    except OSError:
        return [], []  # ensure() (the writers) says what is wrong with it
    items: List[Taken] = []
    paths: List[str] = []
    try:
        trusted = trusted_uids(state_dir)
        try:
            _check(control, os.fstat(dfd), trusted)
            dir_ok = True
        except EscalatorError:
            dir_ok = False  # read nothing from it as trusted
        for name in sorted(os.listdir(dfd)):
            if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
                continue
            source = f"{control}/{name}"
            paths.append(source)
            items.append(_read(dfd, name, source, trusted if dir_ok else set()))
    finally:
        os.close(dfd)
    return items, paths


def _read(dfd: int, name: str, source: str, trusted: Set[int]) -> Taken:
    try:
        fd = open_regular(dfd, name, os.O_RDONLY)
    except (UnsafePath, OSError) as exc:
        return Taken(source, 0, None, f"(not readable: {exc.strerror or exc})")
    try:
        st = os.fstat(fd)
        raw = os.read(fd, MAX_COMMAND + 1)
    finally:
        os.close(fd)
    text = raw.decode("utf-8", "backslashreplace").rstrip("\n")
    try:
        rec = json.loads(raw) if len(raw) <= MAX_COMMAND else None
    except (ValueError, RecursionError):
        rec = None
    if not isinstance(rec, dict):
        return Taken(source, 1, None, text)
    declared = rec.get("user")
    rec = dict(rec, uid=st.st_uid)
    # The owner is who gave it; root may say whom it acts for (sudo's caller).
    if st.st_uid == 0 and isinstance(declared, str) and declared:
        rec["user"] = declared
    else:
        rec["user"] = user_name(st.st_uid)
    if st.st_uid not in trusted:
        return Taken(source, 1, rec, text, False,
                     f"a command file owned by {user_name(st.st_uid)}, who may not give operator commands")
    return Taken(source, 1, rec, text, True)


def layout_warnings(state_dir: str) -> List[str]:
    """For ``validate``: a state directory others may write (they could then remove the
    collector's lock or replace ``control/``)."""
    try:
        st = os.stat(state_dir)
    except OSError:
        return []  # created by the collector, with the right mode
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return [f"state directory {state_dir} is writable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"they could remove the collector's lock or give operator commands; chmod go-w {state_dir}"]
    return []


def pending(state_dir: str) -> List[dict]:
    """The commands no collector has taken yet, for ``status`` and ``approve``."""
    items, _ = take(state_dir)
    return [t.record for t in items if t.trusted and t.record is not None]


__all__ = ["path_for", "trusted_uids", "ensure", "write", "take", "pending", "layout_warnings", "PREFIX", "SUFFIX"]
