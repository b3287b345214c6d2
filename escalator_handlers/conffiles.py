"""The drop-in files shipped with the package: Nagios/Icinga definitions, systemd units,
logrotate, the example config (``escalator show-config``).

They live in ``nagios-conf/`` in the source tree and are installed as the
package data ``escalator_handlers.dropin`` (see setup.py), so a plain ``pip
install`` has them.  A topic names one file (or two that go into one file);
any file is also reachable by its path under the directory.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from .defaults import CONFIG_PATH
from .errors import UsageError

#: Where a checkout keeps them (an editable install reads them from there).
CHECKOUT = Path(__file__).resolve().parent.parent / "nagios-conf"


@dataclass(frozen=True)
class Topic:
    name: str
    files: Tuple[str, ...]         # paths under the drop-in directory, printed in order
    goes: str                      # where the operator puts it


TOPICS: Tuple[Topic, ...] = (
    Topic("nagios", ("nagios4/commands.cfg", "nagios4/templates.cfg"),
          "/etc/nagios4/conf.d/escalator.cfg (the two files below, in one)"),
    Topic("nagios-commands", ("nagios4/commands.cfg",), "/etc/nagios4/conf.d/"),
    Topic("nagios-templates", ("nagios4/templates.cfg",), "/etc/nagios4/conf.d/"),
    Topic("nagios-global-handler", ("nagios4/global-handler.cfg",),
          "its lines into nagios.cfg (instead of the templates)"),
    Topic("nagios-objects-example", ("nagios4/objects-example.cfg",), "an example to adapt"),
    Topic("plugins", ("plugins.cfg",), "/etc/nagios4/conf.d/ (check_escalator, check_cucumber)"),
    Topic("icinga2", ("icinga2/escalator.conf",), "/etc/icinga2/conf.d/"),
    Topic("systemd-collector", ("systemd/escalator-collector.service",), "/etc/systemd/system/"),
    Topic("systemd-forward", ("systemd/escalator-forward.service",), "/etc/systemd/system/ (cluster: only)"),
    Topic("logrotate", ("logrotate/escalator",), "/etc/logrotate.d/escalator"),
    Topic("example-config", ("examples/escalator.yaml",), f"{CONFIG_PATH}, to adapt"),
)


def directory() -> Path:
    """The directory holding the drop-in files; raise UsageError when the install lacks them."""
    try:
        spec = importlib.util.find_spec("escalator_handlers.dropin")
    except (ImportError, ValueError):
        spec = None
    for where in (list(spec.submodule_search_locations or ()) if spec else []) + [str(CHECKOUT)]:
        if (Path(where) / "nagios4" / "commands.cfg").is_file():
            return Path(where)
    raise UsageError("the drop-in files are not installed with this copy of escalator "
                     "(reinstall it with pip, or use nagios-conf/ of a source checkout)")


def files(root: Path) -> List[str]:
    """Every shipped file, as a path under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def resolve(name: str, root: Path) -> List[Path]:
    """The files of a topic name, or of a path under ``root``; UsageError naming the topics."""
    for t in TOPICS:
        if t.name == name:
            return [root / f for f in t.files]
    shipped = files(root)
    if name.strip("/") in shipped:
        return [root / name.strip("/")]
    raise UsageError(f"no drop-in file {name!r}: topics are {', '.join(t.name for t in TOPICS)}, "
                     f"or a file listed by `escalator show-config`")


__all__ = ["CHECKOUT", "TOPICS", "Topic", "directory", "files", "resolve"]
