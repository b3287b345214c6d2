"""The config as the operator's commands need it: working even when the file is invalid.

``pause``, ``resume``, ``hold``, ``release``, ``status`` and ``check_escalator``
are the emergency brake and the dashboard: an edit with a mistake must not
take them away while the collector keeps running on its last good config.
They need only the spool and the journal, so when the file fails validation
they read those paths leniently from it (or take ``--spool``/``--journal``)
and say that the file is invalid.  The collector records which config it
runs (``collector.config`` in the spool) so that ``status`` can say when the
file on disk is not what the collector obeys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .config import Config, load_config
from .errors import ConfigError, ConfigProblem
from .safefs import open_dir, open_regular, write_atomic

#: In the spool: the config the collector holding the lock runs (path, sha256, when loaded).
RUNNING_CONFIG = "collector.config"


@dataclass(frozen=True)
class OperatorConfig:
    config: Config
    problems: List[ConfigProblem]      # empty: the file is valid

    @property
    def valid(self) -> bool:
        return not self.problems

    def warning(self) -> Optional[str]:
        if self.valid:
            return None
        n = len(self.problems)
        first = str(self.problems[0])
        return (f"{self.config.source} is not a valid config ({n} problem{'s' if n != 1 else ''}, e.g. "
                f"{first}; `escalator validate` lists them): using only its spool {self.config.spool} "
                f"and journal {self.config.journal}; a running collector keeps its last good config")


def with_environment(cfg: Config, spool: Optional[str] = None, journal: Optional[str] = None) -> Config:
    """Apply ``--spool``/``--journal``, else ``$ESCALATOR_SPOOL`` (which ``load_config`` applies
    to a valid file; a stand-in needs it here)."""
    spool = spool or os.environ.get("ESCALATOR_SPOOL") or None
    changes: Dict[str, Any] = {}
    if spool and spool != cfg.spool:
        changes["spool"] = spool
    if journal and journal != cfg.journal:
        changes["journal"] = journal
    return dataclasses.replace(cfg, **changes) if changes else cfg


def load_for_operator(path: str, spool: Optional[str] = None, journal: Optional[str] = None) -> OperatorConfig:
    """The config at ``path``, or -- when it is invalid -- a stand-in with its paths only.

    Raise UsageError when the file is invalid and the spool or journal cannot be
    known from it or from the options.
    """
    try:
        return OperatorConfig(with_environment(load_config(path), spool, journal), [])
    except ConfigError as exc:
        problems = list(exc.problems)
    if any("world-writable" in str(p) for p in problems):
        raise ConfigError(problems)  # whoever can write it could point us anywhere: no leniency
    paths = _paths_leniently(path)
    if paths is None and not (spool or os.environ.get("ESCALATOR_SPOOL")) and not journal:
        raise ConfigError(problems)  # not even the paths can be read: --spool/--journal can say
    paths = paths or {}
    stand_in = Config(source=path, levels=(), spool=paths.get("spool", Config.spool),
                      journal=paths.get("journal", Config.journal), state_file=paths.get("state_file"))
    return OperatorConfig(with_environment(stand_in, spool, journal), problems)


def _paths_leniently(path: str) -> Optional[Dict[str, str]]:
    """spool, journal and state_file as the file gives them (defaults left out), or None."""
    import yaml

    try:
        with open(path, "rb") as f:
            text = f.read(1 << 22)
    except OSError:
        return None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return _top_level_lines(text) or None  # a syntax error elsewhere: the path lines may be intact
    if not isinstance(data, dict):
        return None
    return {k: data[k] for k in _PATH_KEYS if isinstance(data.get(k), str) and data[k]}


_PATH_KEYS = ("spool", "journal", "state_file")


def _top_level_lines(text: bytes) -> Dict[str, str]:
    """``spool: /x``-style lines at the top level, read without YAML (whose parse failed)."""
    import re

    out: Dict[str, str] = {}
    pattern = re.compile(r"^(spool|journal|state_file):[ \t]*(?:\"([^\"]*)\"|'([^']*)'|([^#\s][^#]*?))[ \t]*(?:#.*)?$")
    for line in text.decode("utf-8", "replace").splitlines():
        m = pattern.match(line.rstrip("\r"))
        if m and m.group(1) not in out:
            value = next(g for g in m.groups()[1:] if g is not None)
            if value:
                out[m.group(1)] = value
    return out


def file_digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def record_running(cfg: Config, digest: Optional[str], loaded: float) -> None:
    """Called by the collector holding the lock: say which config it obeys (best effort).

    Written into the spool as a whole new file renamed into place (``safefs``):
    a symlink the spool's owner plants there is replaced, never followed.
    """
    data = json.dumps({"path": os.path.abspath(cfg.source), "sha256": digest, "loaded": loaded,
                       "pid": os.getpid()})
    try:
        write_atomic(cfg.spool, RUNNING_CONFIG, (data + "\n").encode("ascii"), 0o644)
    except OSError:
        pass  # only informational: status then cannot compare


def running_config(cfg: Config) -> Optional[Dict[str, Any]]:
    """What the collector last recorded with ``record_running``, or None (also when something
    else than a regular file is there: nothing planted in the spool can hang or fool status)."""
    try:
        dfd = open_dir(cfg.spool)
        try:
            fd = open_regular(dfd, RUNNING_CONFIG, os.O_RDONLY)
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(1 << 16))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def compare_with_running(op: OperatorConfig, running_pid: Optional[int]) -> Dict[str, Any]:
    """The ``config`` part of ``status``: the file on disk against what the collector runs."""
    cfg = op.config
    out: Dict[str, Any] = {"path": cfg.source, "valid": op.valid, "problems": [str(p) for p in op.problems],
                           "collector_loaded": None, "collector_path": None, "differs": None}
    rc = running_config(cfg) if running_pid is not None else None
    if rc is not None and (running_pid <= 0 or rc.get("pid") == running_pid):
        out["collector_loaded"] = rc.get("loaded")
        out["collector_path"] = rc.get("path")
        out["differs"] = (rc.get("path") != os.path.abspath(cfg.source)
                          or rc.get("sha256") != file_digest(cfg.source))
    return out
