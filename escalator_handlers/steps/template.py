"""Command templates: fill ``{host}``, ``{hosts}``, ``{level}``, ``{summary}``, ``{checks}``.

Every value that reaches a shell is quoted with :func:`shlex.quote`, because
the values come from monitoring (host names, plugin output) and are
untrusted.  A list value becomes separately quoted words joined by spaces.
``{{`` and ``}}`` are literal braces; a brace that does not form
``{name}`` is left alone, so ``awk '{print $1}'`` and ``${HOME:-/}`` need no
escaping, but ``${HOME}`` does (write ``${{HOME}}`` or ``$HOME``).

The same values are exported as ``ESCALATOR_*`` environment variables.  Host
fields of ssh and chef steps are filled *raw* (they are not shell words) and
must then look like a host name or address, or the step is refused.

Every value is made one line first (:func:`one_line`): a newline, carriage
return or other control character is written in caret notation (``^J``,
``^M``, ``^[``), so a host named ``evil<newline>Bcc: ...`` cannot add a header
line to ``mail -s "escalator: {summary}"``.  A step with ``raw: true`` gets the values
as monitoring gave them (NUL, which no process can receive, is dropped).
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import StepError

#: The placeholders docs/configuration.rst promises; other keys of the values mapping also work.
PLACEHOLDERS: Sequence[str] = ("host", "hosts", "level", "summary", "checks")

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Letters, digits, dot, dash, underscore, colon (IPv6); no leading dash so a
# host can never be taken for an option by ssh, sudo or chef-client.
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")


def placeholders(template: str) -> List[str]:
    """The placeholder names used in ``template``, in order of appearance."""
    return [m.group(1) for m in _TOKEN.finditer(template) if m.group(1)]


#: What one_line replaces: C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(m: "re.Match[str]") -> str:
    # Caret notation (as cat -v writes it), not a backslash escape: echo in dash turns
    # "\n" back into a newline, but nothing turns "^J" into one.
    c = ord(m.group(0))
    if c < 0x20:
        return "^" + chr(c + 0x40)
    if c == 0x7f:
        return "^?"
    return f"<U+{c:04X}>"


def one_line(text: str) -> str:
    """``text`` with every control character (newline, tab, ESC, NUL ...) written visibly in
    caret notation (``^J``, ``^[``; ``<U+0085>`` beyond ASCII): one line, and nothing a
    terminal or a mail header would act on."""
    return _CONTROL.sub(_visible, text)


def _words(value: Any, raw: bool = False) -> List[str]:
    # NUL cannot travel in argv, environ or an SSH command string; raw, drop it
    # rather than let hostile plugin output make the step unrunnable.
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple, set, frozenset)) else (value,)
    if raw:
        return [str(v).replace("\0", "") for v in items]
    return [one_line(str(v)) for v in items]


def _missing(template: str, name: str) -> StepError:
    """The error for a placeholder without a value in ``values``."""
    if name == "host":
        return StepError("{host} is only set in steps with foreach: host")
    return StepError(f"unknown placeholder {{{name}}} in {template!r}: expected one of "
                     + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                     + " (write {{ and }} for literal braces)")


def _substitute(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with every placeholder replaced by its words, unquoted (host fields)."""
    def repl(m: "re.Match[str]") -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = m.group(1)
        if name not in values or values[name] is None:
            raise _missing(template, name)
        return " ".join(_words(values[name]))

    return _TOKEN.sub(repl, template)


def render_command(template: str, values: Mapping[str, Any], raw: bool = False) -> str:
    """``template`` with every placeholder replaced by its shell-quoted value, made one line
    (:func:`one_line`) unless ``raw``.

    The template's own shell quoting is tracked: a placeholder written inside
    ``"..."`` or ``'...'`` (docs/planning.rst's own ``mail -s "escalator: {summary}"``)
    would otherwise put a quoted value where ``$(...)`` and backticks still
    expand.  There the quote is closed, the quoted value inserted, and the
    quote reopened, so the text stays one word and stays literal.
    """
    out: List[str] = []
    for literal, name, quote in _compile(template):
        if name is None:
            out.append(literal)
        elif quote:
            # Inside quotes the author meant one word: join lists first.
            value = " ".join(_words(_value(template, values, name), raw))
            out.append(quote + shlex.quote(value) + quote)
        else:
            value = _value(template, values, name)
            if isinstance(value, (list, tuple, set, frozenset)):
                out.append(" ".join(shlex.quote(w) for w in _words(value, raw)))
            else:
                out.append(shlex.quote(_words(value, raw)[0]))
    return "".join(out)


def render_dry(template: str, values: Mapping[str, Any], raw: bool = False) -> str:
    """What a dry run shows for a command template: the command, or why it would fail."""
    try:
        return render_command(template, values, raw)
    except StepError as exc:
        return f"(would fail: {exc})"


@lru_cache(maxsize=256)
def _compile(template: str) -> Tuple[Tuple[str, Optional[str], str], ...]:
    """``template`` cut into (literal, None, "") and (``""``, placeholder, quote) parts.

    ``quote`` is the template's own quote (``'``, ``"`` or ``""``) around the
    placeholder.  Done once per template: a dry run renders a step per host.
    """
    parts: List[Tuple[str, Optional[str], str]] = []
    lit: List[str] = []
    state = ""  # "", "'" or '"'
    i, n = 0, len(template)
    while i < n:
        m = _TOKEN.match(template, i)
        if m is not None:
            tok = m.group(0)
            if tok in ("{{", "}}"):
                lit.append(tok[0])
            else:
                if lit:
                    parts.append(("".join(lit), None, ""))
                    lit = []
                parts.append(("", m.group(1), state))
            i = m.end()
            continue
        c = template[i]
        if c == "\\" and state != "'":
            lit.append(template[i:i + 2])
            i += 2
            continue
        if not state and c in "'\"":
            state = c
        elif state and c == state:
            state = ""
        lit.append(c)
        i += 1
    if lit:
        parts.append(("".join(lit), None, ""))
    return tuple(parts)


def _value(template: str, values: Mapping[str, Any], name: str) -> Any:
    if name not in values or values[name] is None:
        raise _missing("{" + name + "}", name)
    return values[name]


def check_host(host: str, what: str = "host") -> str:
    """Return ``host`` if it is a safe host name or address, else raise StepError."""
    if not host or not _HOST_RE.match(host) or len(host) > 255:
        raise StepError(f"invalid {what} {host!r}: expected a host name or address "
                        "(letters, digits, '.', '-', '_', ':'; not starting with '-'); "
                        "nothing was run")
    return host


def check_user(user: str) -> str:
    if not _USER_RE.match(user) or len(user) > 64:
        raise StepError(f"invalid user name {user!r}; nothing was run")
    return user


def render_host(template: str, values: Mapping[str, Any]) -> str:
    """A host field: placeholders filled raw, then validated with :func:`check_host`."""
    return check_host(_substitute(template, values))


def values_env(values: Mapping[str, Any], raw: bool = False) -> Dict[str, str]:
    """The ``ESCALATOR_*`` environment variables for ``values`` (each item one line unless
    ``raw``; ``ESCALATOR_CHECKS`` has one check a line)."""
    env = {
        "ESCALATOR_HOSTS": " ".join(_words(values.get("hosts"), raw)),
        "ESCALATOR_LEVEL": " ".join(_words(values.get("level"), raw)),
        "ESCALATOR_SUMMARY": " ".join(_words(values.get("summary"), raw)),
        "ESCALATOR_CHECKS": "\n".join(_words(values.get("checks"), raw)),
    }
    if values.get("host") is not None:
        env["ESCALATOR_HOST"] = " ".join(_words(values["host"], raw))  # NUL cannot be in environ
    return env


#: Longest ``ESCALATOR_*`` value (bytes) put in a step's environment.  Linux refuses one
#: string over 128 KiB (MAX_ARG_STRLEN) and all of them over ARG_MAX; a longer value goes to
#: a file named by ``ESCALATOR_<NAME>_FILE`` (see :func:`spill_env`).
ENV_VALUE_MAX = 32 * 1024
#: Longest command line (bytes) passed as one argument (``sh -c COMMAND``, ssh's command).
COMMAND_MAX = 100 * 1024
#: The variables that may spill to a file, and the values each file holds (one item a line).
SPILLED = {"ESCALATOR_HOSTS": "hosts", "ESCALATOR_SUMMARY": "summary", "ESCALATOR_CHECKS": "checks"}


def size(text: str) -> int:
    """Bytes ``text`` takes in argv or the environment (undecodable bytes count as one)."""
    return len(text.encode("utf-8", "surrogateescape"))


def spill_env(env: Dict[str, str], values: Mapping[str, Any], raw: bool,
              write: Any) -> Dict[str, str]:
    """``env`` with every value of :data:`SPILLED` over :data:`ENV_VALUE_MAX` moved to a file:
    the variable is then empty and ``<NAME>_FILE`` holds the file's path (``write(name, text)``
    writes it and returns the path; None: no file, the variable is left empty)."""
    out = dict(env)
    for name, key in SPILLED.items():
        if size(out.get(name, "")) <= ENV_VALUE_MAX:
            continue
        text = "".join(w + "\n" for w in _words(values.get(key), raw))
        out[name] = ""
        path = write(name, text) if write is not None else None
        if path is not None:
            out[name + "_FILE"] = path
    return out


def env_words(env: Mapping[str, str]) -> List[str]:
    """``K=V`` words for ``env(1)``, each quoted; names must be valid variable names."""
    out = []
    for k, v in env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise StepError(f"invalid environment variable name {k!r}; nothing was run")
        out.append(shlex.quote(f"{k}={v}"))
    return out
