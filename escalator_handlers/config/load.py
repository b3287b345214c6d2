"""Loading and validating the YAML config into ``config.Config``.

Every problem in a file is collected and reported at once, each with the
file, the line, the key path (``levels[2].quiescence``) and what was
expected, quoting the bad value.  ``validate`` returns those problems (it
never raises, whatever the file holds); ``load_config`` raises ConfigError
with all of them, or returns the frozen Config.  Steps and ``defaults``
live in ``config.steps``; the node-walking helpers in ``config.yamlnodes``,
and ``config.yamltext`` turns the text into nodes.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from yaml.nodes import Node, SequenceNode

from .model import (CheckRule, Config, IcingaApi, Level, Limits, NagiosFeedback, Step,
                     config_path)
from .. import defaults as default  # the module; `defaults` is a config key here
from ..errors import ConfigError, ConfigProblem
from ..event import GOOD_STATES, HOST_STATES, SERVICE_STATES, STATE_TYPES, STATES
from .cluster import parse_cluster
from .humans import p_approval, p_backoff, p_per_host
from .rollout import busy_check, p_max_targets, p_rollout, with_busy
from .steps import StepDefaults, build_step, parse_defaults
from .yamlnodes import (BAD, Entries, Reader, describe, join, line_of, p_bool, p_duration,
                         p_positive_int, p_string, parse_duration)
from .yamltext import document

__all__ = ["format_problems", "load_config", "load_config_text", "parse_duration", "validate"]

TOP_KEYS = ("spool", "journal", "state_file", "quiescence", "max_delay", "state_types",
            "act_in_downtime", "defaults", "levels", "checks", "notify", "limits", "nagios",
            "spool_mode", "unreachable", "cluster")
LEVEL_KEYS = ("name", "quiescence", "max_attempts", "on_exhausted", "steps", "approval", "retry_backoff",
              "rollout", "busy_check", "busy_wait")
RULE_KEYS = ("host", "service", "state", "level", "target")
NAGIOS_KEYS = ("command_file", "icinga_api", "acknowledge", "service", "host", "status_file",
               "ack_interlock")
ICINGA_KEYS = ("url", "user", "password_file", "ca_file", "server_name")

_TOP_HINTS = {
    "ssh": "ssh settings shared by all steps go under defaults: ssh:",
    "chef": "chef settings shared by all steps go under defaults: chef:",
    "timeout": "a default step timeout goes under defaults: timeout:",
    "concurrency": "a default concurrency goes under defaults: concurrency:",
    "steps": "steps belong to a level: levels: [{name: ..., steps: [...]}]",
    "max_runs_per_hour": "it belongs under limits:", "max_targets": "it belongs under limits:",
    "command_file": "it belongs under nagios:", "icinga_api": "it belongs under nagios:",
    "per_host": "it belongs under limits:", "ack_interlock": "it belongs under nagios:",
    "approval": "approval belongs to a level: levels: [{name: ..., approval: true, steps: [...]}]",
    "retry_backoff": "retry_backoff belongs to a level: levels: [{name: ..., retry_backoff: {...}}]",
}
_LEVEL_HINTS = {k: f"{k!r} is a step key: put the step in a list under steps:"
                for k in ("shell", "ssh", "chef", "foreach", "concurrency", "timeout")}


def format_problems(problems: Iterable[ConfigProblem]) -> str:
    """One line per problem: ``FILE:LINE: KEY: message``."""
    return "\n".join(str(p) for p in problems)


def validate(path: Optional[str] = None) -> List[ConfigProblem]:
    """Every problem of the config at ``path`` (default: ``config_path(None)``); [] if fine."""
    return _load(path)[1]


def load_config(path: Optional[str] = None) -> Config:
    """The validated Config at ``path``; raise ConfigError listing every problem."""
    config, problems = _load(path)
    if problems or config is None:
        raise ConfigError(problems or [ConfigProblem(config_path(path), None, "", "unusable config")])
    # $ESCALATOR_SPOOL means the same to every command: the handler records there,
    # so the collector, status, pause... must read there too (it wins over `spool:`).
    spool = os.environ.get("ESCALATOR_SPOOL")
    if spool and spool != config.spool:
        import dataclasses

        config = dataclasses.replace(config, spool=spool)
    return config


def load_config_text(text: Union[str, bytes], source: str = "<config>") -> Config:
    """Like load_config, for YAML text (tests, stdin); ``source`` names it in messages."""
    config, problems = _analyse(text, source)
    if problems or config is None:
        raise ConfigError(problems or [ConfigProblem(source, None, "", "unusable config")])
    return config


def _load(path: Optional[str]) -> Tuple[Optional[Config], List[ConfigProblem]]:
    source = config_path(path)
    try:
        with open(source, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode  # of the file itself, after any symlink
            data = f.read()
    except OSError as exc:
        why = exc.strerror or str(exc)
        return None, [ConfigProblem(source, None, "", f"cannot read config file: {why}")]
    if mode & stat.S_IWOTH:
        # Like sshd's StrictModes: whoever can write the config can run any command as us.
        return None, [ConfigProblem(source, None, "", f"refusing config {source}: it is world-writable "
                                    f"(mode {stat.S_IMODE(mode):04o}); chmod o-w {source}")]
    return _analyse(data, source)


def _analyse(data: Union[str, bytes], source: str) -> Tuple[Optional[Config], List[ConfigProblem]]:
    r = Reader(source)
    try:
        config = _build(r, data)
    except Exception as exc:  # validation must never end in a traceback
        r.error(None, "", f"internal error while validating ({type(exc).__name__}: {exc}); "
                "please report this with the config")
        config = None
    problems = sorted(r.problems, key=lambda p: p.line or 0)
    return (None if problems else config), problems


def _build(r: Reader, data: Union[str, bytes]) -> Optional[Config]:
    root = document(r, data, "a mapping with at least 'levels'")
    if root is None:
        return None
    top = r.mapping(root, "", TOP_KEYS, hints=_TOP_HINTS,
                    what="a mapping of keys such as levels, checks, notify at the top level",
                    extensions=True)
    if top is None:
        return None
    quiescence = r.field(top, "quiescence", p_duration, default.QUIESCENCE)
    kw: Dict[str, Any] = {
        "spool": r.field(top, "spool", p_string, default.SPOOL),
        "journal": r.field(top, "journal", p_string, default.JOURNAL),
        "state_file": r.field(top, "state_file", p_string, None, nullable=True),
        "quiescence": quiescence,
        "max_delay": r.field(top, "max_delay", p_duration, default.MAX_DELAY),
        "state_types": r.field(top, "state_types", _p_state_types, default.STATE_TYPES),
        "act_in_downtime": r.field(top, "act_in_downtime", p_bool, default.ACT_IN_DOWNTIME),
        "spool_mode": r.field(top, "spool_mode", _p_mode, default.SPOOL_MODE),
        "unreachable": r.field(top, "unreachable", _p_unreachable, default.UNREACHABLE),
    }
    defaults = parse_defaults(r, top.value("defaults"))
    levels = _levels(r, top, quiescence, defaults)
    checks: Tuple[CheckRule, ...] = ()
    if top.given("checks"):
        nodes = r.sequence(top.value("checks"), "checks", what="a list of check rules")
        checks = tuple(_rules(r, nodes or [], levels))
    notify: List[Optional[Step]] = []
    if top.given("notify"):
        nodes = r.sequence(top.value("notify"), "notify", what="a list of shell or ssh steps")
        notify = [build_step(r, n, f"notify[{j}]", defaults, notify=True)
                  for j, n in enumerate(nodes or [])]
    limits = _limits(r, top)
    nagios = _nagios(r, top)
    cluster = parse_cluster(r, top)
    if r.problems:
        return None
    return Config(source=r.file, levels=tuple(levels or ()), checks=checks,
                  notify=tuple(s for s in notify if s is not None), limits=limits,
                  defaults=defaults.as_dict(), nagios=nagios, cluster=cluster, **kw)


def _p_state_types(r: Reader, node: Node, path: str) -> Any:
    items = [(join(path, i), n) for i, n in enumerate(node.value)] \
        if isinstance(node, SequenceNode) else [(path, node)]
    if not items:
        return r.error(node, path, "expected a non-empty list of SOFT and/or HARD, got an empty list")
    out = []
    for ipath, n in items:
        v = r.scalar(n, ipath)
        if isinstance(v, str) and v.strip().upper() in STATE_TYPES:
            out.append(v.strip().upper())
        elif v is not BAD:
            r.error(n, ipath, f"expected SOFT or HARD, {describe(n)}")
    return tuple(dict.fromkeys(out)) if len(out) == len(items) else BAD


def _p_mode(r: Reader, node: Node, path: str) -> Any:
    v = r.scalar(node, path)
    mode: Any = BAD
    if isinstance(v, str):
        text = v.strip().lower()
        text = text[2:] if text.startswith("0o") else text
        if text and all(c in "01234567" for c in text):
            mode = int(text, 8)
    elif isinstance(v, int) and not isinstance(v, bool):
        # YAML reads an unquoted 0750 as octal; a bare 750 is decimal and surely a slip.
        if node.value.startswith("0") or v == 0:
            mode = v
        else:
            return r.error(node, path, f'expected an octal mode such as "0750", got {node.value} '
                           '(write it with a leading 0, or quoted)')
    if v is BAD:
        return BAD
    if mode is BAD or not 0 <= mode <= 0o7777:
        return r.error(node, path, f'expected an octal mode such as "0750", {describe(node)}')
    if mode & 0o700 != 0o700:
        return r.error(node, path,
                       f"the spool's owner needs rwx (0700 at least), got {oct(mode)[2:]:0>4}")
    return mode


def _levels(r: Reader, top: Entries, quiescence: float, d: StepDefaults) -> Optional[List[Level]]:
    """The levels, or None when the list itself is unusable (so checks can't be resolved)."""
    node = top.value("levels")
    if node is None:
        r.error(top.node, "levels", "missing required key 'levels': a list of escalation levels, "
                "most drastic first")
        return None
    nodes = r.sequence(node, "levels", what="a list of levels, most drastic first")
    if nodes is None:
        return None
    if not nodes:
        r.error(node, "levels", "expected at least one level, got an empty list")
        return None
    levels: List[Level] = []
    seen: Dict[str, Tuple[int, Optional[int]]] = {}
    for i, n in enumerate(nodes):
        path = f"levels[{i}]"
        e = r.mapping(n, path, LEVEL_KEYS, hints=_LEVEL_HINTS, what="a level mapping with steps")
        name = str(i + 1)
        if e is not None and e.value("name") is not None:
            name_node = e.value("name")
            got = r.field(e, "name", p_string, None)
            if got is not None and got.strip().isdigit() and got.strip() != str(i + 1):
                r.error(name_node, join(path, "name"), f"a level name cannot be a number other "
                        f"than its position ({i + 1}): levels are also referred to by position, "
                        f"got {got!r}")
            elif got is not None and got in seen:
                first, line = seen[got]
                r.error(name_node, join(path, "name"), f"duplicate level name {got!r} "
                        f"(also levels[{first}] on line {line})")
            name = got if got is not None else f"<levels[{i}]>"
        seen.setdefault(name, (i, line_of(n)))
        steps: List[Optional[Step]] = []
        if e is not None:
            snode = e.value("steps")
            snodes = None
            if snode is None:
                r.error(n, join(path, "steps"), "missing required key 'steps': a level needs a "
                        "non-empty list of steps")
            else:
                snodes = r.sequence(snode, join(path, "steps"), what="a non-empty list of steps")
            if snodes == []:
                r.error(snode, join(path, "steps"), "expected at least one step, got an empty list")
            steps = [build_step(r, s, f"{path}.steps[{j}]", d) for j, s in enumerate(snodes or [])]
        rollout = r.field(e, "rollout", p_rollout, None, nullable=True)
        if rollout is not None and steps and not any(s is not None and s.foreach == "host" for s in steps):
            r.error(e.value("rollout") if e is not None else n, join(path, "rollout"),
                    "a rollout needs a step with foreach: host in this level (it runs hosts in waves)")
        check = busy_check(r, e.value("busy_check") if e is not None else None, join(path, "busy_check"), d)
        wait = r.field(e, "busy_wait", p_duration, default.BUSY_WAIT)
        levels.append(Level(
            index=i + 1, name=name,
            steps=with_busy(tuple(s for s in steps if s is not None), check, wait),
            rollout=rollout,
            quiescence=r.field(e, "quiescence", p_duration, quiescence),
            max_attempts=r.field(e, "max_attempts", p_positive_int, default.MAX_ATTEMPTS),
            on_exhausted=r.field(e, "on_exhausted", _p_on_exhausted, default.ON_EXHAUSTED),
            approval=r.field(e, "approval", p_approval, None, nullable=True),
            retry_backoff=r.field(e, "retry_backoff", p_backoff, None, nullable=True)))
    return levels


def _p_unreachable(r: Reader, node: Node, path: str) -> Any:
    return r.choice(node, path, ("ignore", "fail"))


def _p_on_exhausted(r: Reader, node: Node, path: str) -> Any:
    return r.choice(node, path, ("notify", "escalate"))


def _rules(r: Reader, nodes: Sequence[Node], levels: Optional[List[Level]]) -> List[CheckRule]:
    rules = []
    for i, n in enumerate(nodes):
        path = f"checks[{i}]"
        e = r.mapping(n, path, RULE_KEYS, what="a check rule such as {service: 'PING', level: vm}")
        if e is None:
            continue
        host = r.field(e, "host", _p_glob, "*")
        service = r.field(e, "service", _p_glob, None, nullable=True)
        states = r.field(e, "state", lambda r_, n_, p_: _p_states(r_, n_, p_, service is None), ())
        level = r.field(e, "level", lambda r_, n_, p_: _p_level_ref(r_, n_, p_, levels), None,
                        required=True)
        target = r.field(e, "target", p_bool, True)
        if level is not None:
            rules.append(CheckRule(level=level, host=host, service=service, states=states,
                                   line=line_of(n), target=target))
    return rules


def _p_glob(r: Reader, node: Node, path: str) -> Any:
    return r.string(node, path, "a glob pattern such as 'web-*'")


def _p_states(r: Reader, node: Node, path: str, host_rule: bool) -> Any:
    items = [(join(path, i), n) for i, n in enumerate(node.value)] \
        if isinstance(node, SequenceNode) else [(path, node)]
    if not items:
        return r.error(node, path, "expected a state or a non-empty list of states, got an empty list")
    valid = HOST_STATES if host_rule else SERVICE_STATES
    kind = "host checks (this rule has no service)" if host_rule else "services"
    out = []
    for ipath, n in items:
        v = r.scalar(n, ipath)
        s = v.strip().upper() if isinstance(v, str) else None
        if v is BAD:
            continue
        if s not in STATES:
            r.error(n, ipath, f"expected a state among {', '.join(STATES)}, {describe(n)}")
        elif s not in valid:
            r.error(n, ipath, f"{s} never occurs for {kind}: expected {', '.join(valid)}")
        elif s in GOOD_STATES:
            r.error(n, ipath, f"{s} is not a problem state: rules map failing checks only")
        else:
            out.append(s)
    return tuple(out) if len(out) == len(items) else BAD


def _p_level_ref(r: Reader, node: Node, path: str, levels: Optional[List[Level]]) -> Any:
    v = r.scalar(node, path)
    if v is BAD or levels is None:
        return BAD   # no usable levels list: that error is already reported
    names = ", ".join(lv.name for lv in levels)
    if isinstance(v, str):
        for lv in levels:
            if lv.name == v:
                return lv.index
        if v.strip().isdigit():
            v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        if 1 <= v <= len(levels):
            return v
        return r.error(node, path, f"no level at position {v}: levels are numbered 1 to "
                       f"{len(levels)} ({names})")
    if isinstance(v, str):
        return r.error(node, path, f"unknown level {v!r}: expected one of {names} "
                       "or a position from 1")
    return r.error(node, path, f"expected a level name ({names}) or position, {describe(node)}")


def _limits(r: Reader, top: Entries) -> Limits:
    e = r.mapping(top.value("limits"), "limits", ("max_runs_per_hour", "max_targets", "per_host")) \
        if top.given("limits") else None
    max_targets, rollout = r.field(e, "max_targets", p_max_targets, (None, None), nullable=True)
    return Limits(
        max_runs_per_hour=r.field(e, "max_runs_per_hour", p_positive_int, None, nullable=True),
        max_targets=max_targets, max_targets_rollout=rollout,
        per_host=r.field(e, "per_host", p_per_host, None, nullable=True))


def _nagios(r: Reader, top: Entries) -> Optional[NagiosFeedback]:
    if not top.given("nagios"):
        return None
    e = r.mapping(top.value("nagios"), "nagios", NAGIOS_KEYS)
    if e is None:
        return None
    api = None
    if e.given("icinga_api"):
        a = r.mapping(e.value("icinga_api"), "nagios.icinga_api", ICINGA_KEYS)
        url = r.field(a, "url", _p_url, None, required=True)
        user = r.field(a, "user", p_string, None, required=True)
        password_file = r.field(a, "password_file", p_string, None, required=True)
        ca_file = r.field(a, "ca_file", p_string, None, nullable=True)
        server_name = r.field(a, "server_name", p_string, None, nullable=True)
        if a is not None and None not in (url, user, password_file):
            api = IcingaApi(url=url, user=user, password_file=password_file, ca_file=ca_file,
                            server_name=server_name)
    return NagiosFeedback(
        command_file=r.field(e, "command_file", p_string, None, nullable=True),
        icinga_api=api,
        acknowledge=r.field(e, "acknowledge", p_bool, False),
        service=r.field(e, "service", p_string, default.FEEDBACK_SERVICE),
        host=r.field(e, "host", p_string, None, nullable=True),
        status_file=r.field(e, "status_file", p_string, None, nullable=True),
        ack_interlock=r.field(e, "ack_interlock", p_bool, True))


def _p_url(r: Reader, node: Node, path: str) -> Any:
    v = r.string(node, path, "an https:// URL")
    if v is BAD or v.startswith(("https://", "http://")):
        return v
    return r.error(node, path,
                   f"expected an https:// URL such as https://icinga:5665, {describe(node)}")
