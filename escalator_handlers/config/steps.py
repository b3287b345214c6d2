"""Steps of the config: shell, ssh and chef steps, templates and ``defaults``.

``configload`` hands each step node here.  A step is validated as a whole
(exactly one kind key, its kind's mapping, the common keys) and its template
fields are checked against the placeholders the runner will fill in, so a
typo like ``{hsot}`` is a config error instead of a failed run at 3 a.m.
``defaults:`` are merged into every step of the same kind, step keys winning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from yaml.nodes import Node, ScalarNode, SequenceNode

from .. import defaults
from .model import ChefOptions, SshOptions, Step
from .yamlnodes import (ANY_KEY, BAD, MISSING, Entries, Parser, Reader, describe, is_null, join,
                         line_of, p_bool, p_port, p_positive_int, p_string, p_timeout, suggest)

PLACEHOLDERS = ("host", "hosts", "level", "summary", "checks")
KINDS = ("shell", "ssh", "chef")
STEP_KEYS = KINDS + ("foreach", "concurrency", "timeout", "raw")
DEFAULT_TIMEOUT = defaults.STEP_TIMEOUT
DEFAULT_CONCURRENCY = defaults.CONCURRENCY

# Patterns for ssh and chef steps stay strings: re compiles (and caches) them on
# first use, so a config of shell steps does not pay for them at start-up.
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*\Z"
# These three mirror steps/template.py (the runner refuses what they reject;
# tests/test_config.py checks that the two agree).
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]*\Z"
_USER = r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\Z"
_RUN_LIST_ITEM = r"(?:(?:role|recipe)\[[^\[\]\s,]+\]|[^\s,\[\]]+)\Z"


def p_sudo(r: Reader, node: Node, path: str) -> Any:
    v = r.scalar(node, path, "true, false or a user name")
    if isinstance(v, bool) or (isinstance(v, str) and re.match(_USER, v)):
        return v
    if v is BAD:
        return BAD
    return r.error(node, path, f"expected true, false or a user name to sudo to, {describe(node)}")


def p_user(r: Reader, node: Node, path: str) -> Any:
    v = r.string(node, path, "a user name")
    if v is BAD or re.match(_USER, v):
        return v
    return r.error(node, path,
                   f"expected a user name (letters, digits, '.', '-', '_'), {describe(node)}")


def p_host(r: Reader, node: Node, path: str) -> Any:
    v = r.string(node, path, "a host name or a template such as '{host}'")
    why = None if v is BAD else host_problem(v)
    return r.error(node, path, why) if why else v


def p_env(r: Reader, node: Node, path: str) -> Any:
    e = r.mapping(node, path, ANY_KEY, what="a mapping of environment variables")
    if e is None:
        return BAD
    env: Dict[str, str] = {}
    for name, (k, v) in e.items.items():
        vpath = join(path, name)
        if not re.match(_ENV_NAME, name):
            r.error(k, vpath,
                    f"expected an environment variable name (letters, digits, _), got {name!r}")
            continue
        value = r.scalar(v, vpath)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            if value is not BAD:
                r.error(v, vpath, f"expected a string or number, {describe(v)}")
            continue
        env[name] = str(value)
    return env


def p_proxy_jump(r: Reader, node: Node, path: str) -> Any:
    """``[user@]host[:port]`` or ``[user@][v6addr]:port``, as steps/ssh.py parses it."""
    v = r.string(node, path, "[user@]host[:port]")
    if v is BAD:
        return BAD
    user, _, hostport = v.strip().rpartition("@")
    port = "22"
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("22" if not rest else "x")
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host = hostport
    ok = (re.match(_HOST, host) and (not user or re.match(_USER, user))
          and port.isdigit() and 0 < int(port) < 65536)
    if ok:
        return v.strip()
    return r.error(node, path, f"expected [user@]host[:port] (one bastion), {describe(node)}")


def p_run_list(r: Reader, node: Node, path: str) -> Any:
    if isinstance(node, SequenceNode):
        items = [(join(path, i), n, r.string(n, join(path, i))) for i, n in enumerate(node.value)]
    else:
        text = r.string(node, path, "a run list (a list, or a comma-separated string)")
        if text is BAD:
            return BAD
        items = [(path, node, part) for part in text.split(",")]
    out: List[str] = []
    for ipath, inode, item in items:
        if item is BAD:
            continue
        item = item.strip()
        if not re.match(_RUN_LIST_ITEM, item):
            r.error(inode, ipath, "expected run-list items such as role[app] or "
                    f"recipe[cookbook::recipe], got {item!r}")
            continue
        out.append(item)
    return tuple(out) if len(out) == len(items) else BAD


def p_args(r: Reader, node: Node, path: str) -> Any:
    nodes = r.sequence(node, path, what="a list of arguments such as [--why-run]")
    if nodes is None:
        return BAD
    args = [r.string(n, join(path, i)) for i, n in enumerate(nodes)]
    return BAD if BAD in args else tuple(args)


SSH_CONN: Dict[str, Parser] = {
    "port": p_port, "user": p_user, "key_file": p_string, "known_hosts": p_string,
    "passphrase_file": p_string, "connect_timeout": p_timeout, "proxy_jump": p_proxy_jump}
SSH_KEYS: Dict[str, Parser] = {
    "host": p_host, "command": p_string, "timeout": p_timeout, "sudo": p_sudo, "env": p_env,
    **SSH_CONN}
DEFAULT_SSH_KEYS = {k: v for k, v in SSH_KEYS.items() if k not in ("host", "command")}
CHEF_OWN: Dict[str, Parser] = {
    "run_list": p_run_list, "json_attribs": p_string, "environment": p_string,
    "chef_client": p_string, "timeout": p_timeout, "sudo": p_sudo, "extra_args": p_args,
    "reboot_is_failure": p_bool, "lockfile": p_string, "file_cache_path": p_string}
CHEF_KEYS: Dict[str, Parser] = {"host": p_host, **CHEF_OWN, **SSH_CONN}
CHEF_TEMPLATED = ("host", "run_list", "json_attribs", "environment", "chef_client", "extra_args")

_INNER_HINTS = {k: f"{k!r} belongs to the step, beside the kind key, not inside it"
                for k in ("foreach", "concurrency")}
_STEP_HINTS = {k: f"{k!r} belongs inside the step's ssh: or chef: mapping"
               for k in set(SSH_KEYS) | set(CHEF_KEYS) if k not in STEP_KEYS}
_STEP_HINTS["command"] = "'command' belongs inside ssh:; a local command is written shell: CMD"
_STEP_HINTS["name"] = "steps have no name; their position names them (levels[i].steps[j])"


def scan_template(text: str) -> Tuple[List[str], List[str]]:
    """(placeholder names used, error messages) of one template string.

    The grammar is the runner's (steps/template.py): ``{name}`` with an
    identifier inside is a placeholder, ``{{``/``}}`` are literal braces, and
    any other brace is literal text (``awk '{print $1}'``, ``${HOME:-/}``).
    """
    names: List[str] = []
    errors: List[str] = []
    valid = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for m in _TOKEN.finditer(text):
        name = m.group(1)
        if not name:
            continue
        if name in PLACEHOLDERS:
            names.append(name)
            continue
        close = suggest(name, PLACEHOLDERS)
        hint = f"did you mean {{{close}}}? " if close else ""
        errors.append(f"unknown placeholder {{{name}}}: {hint}valid placeholders are {valid}; "
                      "write {{ and }} for literal braces (e.g. ${{HOME}})")
    return names, errors


def host_problem(template: str) -> Optional[str]:
    """Why ``template`` can never render to a host the runner accepts, or None."""
    rendered = _TOKEN.sub(lambda m: "h" if m.group(1) else m.group(0)[0], template)
    if re.match(_HOST, rendered) and len(rendered) <= 255:
        return None
    hint = "; the login name goes in user:" if "@" in rendered else ""
    return (f"expected a host name or address (letters, digits, '.', '-', '_', ':'; not starting "
            f"with '-') or a template such as '{{host}}', got {template!r}{hint}")


def _template_nodes(node: Node, path: str) -> Iterator[Tuple[Node, str, str]]:
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and not is_null(node):
        yield node, path, node.value
    elif isinstance(node, SequenceNode):
        for i, n in enumerate(node.value):
            if isinstance(n, ScalarNode):
                yield n, join(path, i), n.value


def check_templates(r: Reader, e: Entries, keys: Tuple[str, ...], *, foreach: bool,
                    notify: bool, defaults: bool = False) -> List[str]:
    """Check the template keys of ``e``; return the keys that use {host}."""
    uses_host = []
    for key in keys:
        node = e.value(key)
        if node is None:
            continue
        for n, path, text in _template_nodes(node, join(e.path, key)):
            names, errors = scan_template(text)
            for msg in errors:
                r.error(n, path, msg)
            if "host" not in names or defaults:
                if "host" in names:
                    uses_host.append(key)
                continue
            if notify:
                r.error(n, path, "{host} is not available in notify steps (they run once); "
                        "use {hosts} or {summary}")
            elif not foreach:
                r.error(n, path, "{host} needs foreach: host on this step")
    return uses_host


def read_keys(r: Reader, e: Entries, specs: Mapping[str, Parser],
              required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Values of the keys given in ``e`` (null = not given), required ones enforced."""
    out: Dict[str, Any] = {}
    for key, parse in specs.items():
        v = r.field(e, key, parse, MISSING, nullable=key not in required, required=key in required)
        if v is not MISSING:
            out[key] = v
    return out


@dataclass(frozen=True)
class StepDefaults:
    """The validated ``defaults:`` section."""

    ssh: Mapping[str, Any] = field(default_factory=dict)
    chef: Mapping[str, Any] = field(default_factory=dict)
    timeout: Optional[float] = None
    concurrency: Optional[int] = None
    chef_host_fields: Tuple[str, ...] = ()   # defaults.chef keys whose template uses {host}

    def as_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        if self.ssh:
            d["ssh"] = dict(self.ssh)
        if self.chef:
            d["chef"] = dict(self.chef)
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.concurrency is not None:
            d["concurrency"] = self.concurrency
        return d


def parse_defaults(r: Reader, node: Optional[Node]) -> StepDefaults:
    if node is None or is_null(node):
        return StepDefaults()
    e = r.mapping(node, "defaults", ("ssh", "chef", "timeout", "concurrency"),
                  hints={"shell": "shell steps have nothing to default but timeout and concurrency"})
    if e is None:
        return StepDefaults()
    ssh: Dict[str, Any] = {}
    chef: Dict[str, Any] = {}
    host_fields: List[str] = []
    if e.given("ssh"):
        se = r.mapping(e.value("ssh"), "defaults.ssh", DEFAULT_SSH_KEYS, hints={
            "host": "every ssh step names its own host",
            "command": "every ssh step names its own command"})
        if se is not None:
            ssh = read_keys(r, se, DEFAULT_SSH_KEYS)
    if e.given("chef"):
        hints = {k: f"connection settings of remote chef steps come from defaults.ssh.{k}"
                 for k in SSH_CONN}
        hints["host"] = "every chef step names its own host (or none, to run here)"
        ce = r.mapping(e.value("chef"), "defaults.chef", CHEF_OWN, hints=hints)
        if ce is not None:
            chef = read_keys(r, ce, CHEF_OWN)
            host_fields = check_templates(r, ce, CHEF_TEMPLATED, foreach=True, notify=False,
                                          defaults=True)
    return StepDefaults(
        ssh=ssh, chef=chef,
        timeout=r.field(e, "timeout", p_timeout, None, nullable=True),
        concurrency=r.field(e, "concurrency", p_positive_int, None, nullable=True),
        chef_host_fields=tuple(host_fields))


def p_foreach(r: Reader, node: Node, path: str) -> Any:
    v = r.scalar(node, path)
    if v == "host":
        return v
    if v is BAD:
        return BAD
    return r.error(node, path, f"expected foreach: host (the only supported value), {describe(node)}")


def _ssh_options(host: str, merged: Mapping[str, Any]) -> SshOptions:
    fields = {k: v for k, v in merged.items() if k not in ("host", "command", "timeout")}
    return SshOptions(host=host, **fields)


def build_step(r: Reader, node: Node, where: str, d: StepDefaults, *,
               notify: bool = False) -> Optional[Step]:
    """The Step described by ``node``, or None after recording why it is unusable."""
    before = len(r.problems)
    e = r.mapping(node, where, STEP_KEYS, hints=_STEP_HINTS,
                  what="a step mapping such as {shell: COMMAND}")
    if e is None:
        return None
    kinds = [k for k in KINDS if k in e]
    if not kinds:
        if not any(s in KINDS for s in e.suggestions):
            r.error(node, where, "a step needs exactly one of shell, ssh or chef")
        return None
    if len(kinds) > 1:
        r.error(e.key_node(kinds[1]), where, "a step has exactly one of shell, ssh or chef; "
                f"this one has {' and '.join(kinds)}")
        return None
    kind = kinds[0]
    if notify:
        if kind == "chef":
            r.error(e.key_node("chef"), join(where, "chef"),
                    "notify steps are shell or ssh steps, not chef")
            return None
        for key in ("foreach", "concurrency"):
            if key in e:
                r.error(e.key_node(key), join(where, key),
                        f"notify steps run once: {key} is not allowed here")
    foreach = r.field(e, "foreach", p_foreach, None, nullable=True)
    # A bad foreach value is reported once; don't also flag every {host} it would allow.
    per_host = foreach == "host" or (e.given("foreach") and foreach is None)
    concurrency = r.field(e, "concurrency", p_positive_int,
                          d.concurrency if d.concurrency is not None else DEFAULT_CONCURRENCY)
    step_timeout = r.field(e, "timeout", p_timeout, None, nullable=True)
    raw = r.field(e, "raw", p_bool, False)
    base_timeout = d.timeout if d.timeout is not None else DEFAULT_TIMEOUT
    command: Optional[str] = None
    ssh: Optional[SshOptions] = None
    chef: Optional[ChefOptions] = None
    timeout = step_timeout

    if kind == "shell":
        command = r.field(e, "shell", p_string, None)
        check_templates(r, e, ("shell",), foreach=per_host, notify=notify)
        kind_timeout = None
    else:
        specs = SSH_KEYS if kind == "ssh" else CHEF_KEYS
        what = "an ssh mapping with host and command" if kind == "ssh" else \
            "a chef mapping such as {run_list: [role[app]]}"
        knode = e.value(kind)
        if kind == "chef" and knode is not None and is_null(knode):
            ke: Optional[Entries] = Entries(knode, join(where, kind))   # bare "chef:" = run here
        else:
            ke = r.mapping(knode, join(where, kind), specs, hints=_INNER_HINTS, what=what)
        if ke is None:
            return None
        vals = read_keys(r, ke, specs, ("host", "command") if kind == "ssh" else ())
        kind_timeout = vals.get("timeout")
        if kind == "ssh":
            check_templates(r, ke, ("host", "command"), foreach=per_host, notify=notify)
            merged = {**d.ssh, **vals}
            if "env" in d.ssh and "env" in vals:
                merged["env"] = {**d.ssh["env"], **vals["env"]}
            command = vals.get("command")
            kind_timeout = merged.get("timeout")
            if "host" in vals:
                ssh = _ssh_options(vals["host"], merged)
        else:
            check_templates(r, ke, CHEF_TEMPLATED, foreach=per_host, notify=notify)
            own = {k: v for k, v in vals.items() if k in CHEF_OWN}
            opts = {**d.chef, **own}
            if not per_host:
                for key in d.chef_host_fields:
                    if key not in own:
                        r.error(node, join(where, "chef"), f"defaults.chef.{key} uses {{host}}, "
                                "which needs foreach: host on this step")
            kind_timeout = opts.pop("timeout", None)
            chef = ChefOptions(**opts)
            if "host" in vals:
                conn = {k: v for k, v in d.ssh.items() if k != "timeout"}
                conn.update({k: v for k, v in vals.items() if k in SSH_CONN})
                if "sudo" in opts:
                    conn["sudo"] = opts["sudo"]   # remote runs take sudo from the ssh side
                ssh = _ssh_options(vals["host"], conn)
            elif not ke.given("host"):
                for key in SSH_CONN:
                    if ke.given(key):
                        r.error(ke.key_node(key), join(ke.path, key),
                                f"{key} applies to remote runs only: set chef.host too "
                                "(without host chef-client runs on this machine)")
        if step_timeout is not None and "timeout" in vals:
            r.error(ke.key_node("timeout"), join(ke.path, "timeout"),
                    f"timeout is given both on the step (line {line_of(e.value('timeout'))}) "
                    f"and inside {kind}:; keep one")
    if timeout is None:
        timeout = kind_timeout if kind_timeout is not None else base_timeout
    if len(r.problems) > before:
        return None
    return Step(kind=kind, where=where, command=command, ssh=ssh, chef=chef, foreach=foreach,
                concurrency=concurrency, timeout=timeout, line=line_of(node), raw=bool(raw))
