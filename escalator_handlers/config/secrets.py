"""Secret files a config names (ssh keys, passphrases, the Icinga API password), and whether
users other than their owner and group can read them: ``escalator validate`` warns."""

from __future__ import annotations

import os
import stat
from typing import Iterator, List, Tuple

from .model import Config


def secret_files(cfg: Config) -> Iterator[Tuple[str, str]]:
    """(what, path) for every secret file the config names, each once."""
    seen = set()
    api = cfg.nagios.icinga_api if cfg.nagios is not None else None
    found = [("nagios: icinga_api: password_file", api.password_file)] if api is not None else []
    steps = [(lv.name, s) for lv in cfg.levels for s in lv.steps] + [("notify", s) for s in cfg.notify]
    for where, step in steps:
        if step.ssh is not None:
            found += [(f"{where}: ssh key_file", step.ssh.key_file),
                      (f"{where}: ssh passphrase_file", step.ssh.passphrase_file)]
    for what, path in found:
        if path and path not in seen:
            seen.add(path)
            yield what, path


def readable_by_others(cfg: Config) -> List[str]:
    """One warning per secret file every user of the machine may read."""
    out = []
    for what, path in secret_files(cfg):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a missing key is the step's error when it runs
        if mode & stat.S_IROTH:
            out.append(f"{path} ({what}) is readable by every user (mode {stat.S_IMODE(mode):04o}): "
                       f"chmod o-rwx {path}")
    return out


__all__ = ["secret_files", "readable_by_others"]
