"""Reading a composed YAML node tree while keeping line numbers.

``config.load`` validates the config by walking the node tree that
``yaml.compose`` builds (not the Python objects ``yaml.safe_load`` returns),
so that every problem can name its line, and so that duplicate keys -- which
a plain load silently collapses to the last one -- can be reported.  The
``Reader`` here collects problems instead of raising on the first one; its
typed getters return ``BAD`` (after recording why) when a value is unusable.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Tuple, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import ConfigProblem
from .durations import DURATION_EXPECTED, parse_duration

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = (_STR_TAG, _NULL_TAG, _BOOL_TAG, "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Bad:
    """Marks a value that was rejected (the reason is already recorded)."""

    def __repr__(self) -> str:
        return "BAD"


class _AnyKey:
    """``allowed`` for mappings whose keys are free (``env``)."""

    def __contains__(self, name: object) -> bool:
        return True


BAD: Any = _Bad()
MISSING: Any = object()
ANY_KEY: Any = _AnyKey()

Parser = Callable[["Reader", Node, str], Any]

def line_of(node: Optional[Node]) -> Optional[int]:
    return node.start_mark.line + 1 if node is not None and node.start_mark else None


def join(path: str, key: Union[str, int]) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def describe(node: Node) -> str:
    """How a bad value is quoted in a message: 'got ...'."""
    if not isinstance(node, ScalarNode) and node.tag not in (_MAP_TAG, _SEQ_TAG):
        return f"got a value tagged {node.tag.replace('tag:yaml.org,2002:', '!!')}"
    if isinstance(node, MappingNode):
        return "got a mapping"
    if isinstance(node, SequenceNode):
        return "got a list"
    if node.tag == _NULL_TAG:
        return "got nothing (null)"
    text = node.value if len(node.value) <= 60 else node.value[:57] + "..."
    if node.tag == _STR_TAG:
        return f"got {text!r}"
    if node.tag == _BOOL_TAG:
        return f"got {text} (a boolean; quote it if you mean a string)"
    if node.tag not in _PLAIN_TAGS:
        short = node.tag.replace("tag:yaml.org,2002:", "!!")
        return f"got {text} (a {short})" if text else f"got a value tagged {short}"
    return f"got {text}"


def suggest(name: str, allowed: Collection[str]) -> Optional[str]:
    lower = {a.lower(): a for a in allowed}
    if name.lower() in lower:
        return lower[name.lower()]
    import difflib  # only for a key or value that is wrong

    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return close[0] if close else None


def _key_name(node: Node) -> Optional[str]:
    """A mapping key as a string; None when YAML typed it otherwise (yes, 1, [a])."""
    if isinstance(node, ScalarNode) and node.tag == _STR_TAG:
        return node.value
    return None


class Entries:
    """The keys of one YAML mapping: name -> (key node, value node)."""

    def __init__(self, node: Node, path: str):
        self.node = node
        self.path = path
        self.items: Dict[str, Tuple[Node, Node]] = {}
        self.suggestions: List[str] = []   # what unknown keys were probably meant to be

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def value(self, name: str) -> Optional[Node]:
        pair = self.items.get(name)
        return pair[1] if pair else None

    def key_node(self, name: str) -> Optional[Node]:
        pair = self.items.get(name)
        return pair[0] if pair else None

    def given(self, name: str) -> bool:
        """The key is present with a non-null value."""
        v = self.value(name)
        return v is not None and not is_null(v)


class Reader:
    """Walks nodes of one file, collecting every problem found."""

    def __init__(self, file: str):
        self.file = file
        self.problems: List[ConfigProblem] = []
        self._ctor = yaml.constructor.SafeConstructor()

    def error(self, where: Union[Node, int, None], key: str, message: str) -> Any:
        line = where if isinstance(where, int) or where is None else line_of(where)
        self.problems.append(ConfigProblem(self.file, line, key, message))
        return BAD

    def scalar(self, node: Node, path: str, what: str = "a single value") -> Any:
        """The Python value of a scalar node (YAML 1.1 types), or BAD."""
        if not isinstance(node, ScalarNode):
            return self.error(node, path, f"expected {what}, {describe(node)}")
        try:
            return self._ctor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            why = getattr(exc, "problem", None) or str(exc)
            short = node.tag.replace("tag:yaml.org,2002:", "!!")
            if "could not determine a constructor" in why:
                return self.error(node, path, f"expected {what}, got a value tagged {short} "
                                  "(only YAML's standard types are supported)")
            return self.error(node, path, f"expected {what}, got {node.value!r}, "
                              f"which is not a valid {short} ({why})")

    def _pairs(self, node: MappingNode, path: str, seen: set) -> List[Tuple[Node, Node]]:
        """Own key/value pairs after YAML merge keys (``<<: *anchor``) are applied."""
        merged: List[Tuple[Node, Node]] = []
        own: List[Tuple[Node, Node]] = []
        for k, v in node.value:
            if k.tag != _MERGE_TAG:
                own.append((k, v))
                continue
            sources = v.value if isinstance(v, SequenceNode) else [v]
            for src in sources:
                if not isinstance(src, MappingNode) or id(src) in seen:
                    self.error(src, path, "a merge key (<<) needs a mapping or a list of mappings, "
                               + describe(src))
                    continue
                merged.extend(self._pairs(src, path, seen | {id(node)}))
        return merged + own

    def mapping(self, node: Optional[Node], path: str, allowed: Collection[str], *,
                hints: Optional[Mapping[str, str]] = None, what: str = "a mapping",
                extensions: bool = False) -> Optional[Entries]:
        """Check that ``node`` is a mapping of known, unique string keys.

        With ``extensions``, keys starting ``x-`` are ignored: they hold YAML
        anchors for reuse elsewhere (the docker-compose convention)."""
        if node is None:
            return None
        if not isinstance(node, MappingNode) or node.tag != _MAP_TAG:
            self.error(node, path, f"expected {what} (key: value lines), {describe(node)}")
            return None
        entries = Entries(node, path)
        own_keys: Dict[str, Node] = {}
        for k, _v in node.value:
            if k.tag == _MERGE_TAG:
                continue
            name = _key_name(k)
            if name is None:
                self.error(k, path, "keys must be plain strings, " + describe(k))
                continue
            if name in own_keys:
                self.error(k, join(path, name),
                           f"duplicate key {name!r} (first given on line {line_of(own_keys[name])}); "
                           "YAML would silently keep only the last one")
                continue
            own_keys[name] = k
        reported: set = set()
        for k, v in self._pairs(node, path, set()):
            name = _key_name(k)
            if name is None:
                continue
            if name in allowed:
                entries.items[name] = (k, v)   # merged pairs come first: own keys win
                continue
            if extensions and name.startswith("x-"):
                continue
            if name in reported:
                continue
            reported.add(name)
            hint = (hints or {}).get(name)
            close = suggest(name, allowed)
            if close:
                entries.suggestions.append(close)
            if hint:
                tail = f": {hint}"
            elif close:
                tail = f"; did you mean {close!r}?"
            else:
                tail = "; expected one of " + ", ".join(sorted(allowed))
            self.error(k, join(path, name), f"unknown key {name!r}{tail}")
        return entries

    def sequence(self, node: Node, path: str, *, what: str = "a list") -> Optional[List[Node]]:
        if not isinstance(node, SequenceNode) or node.tag != _SEQ_TAG:
            self.error(node, path, f"expected {what}, {describe(node)}")
            return None
        return list(node.value)

    # -- typed values: each returns the value or BAD ---------------------------

    def string(self, node: Node, path: str, what: str = "a string") -> Any:
        v = self.scalar(node, path, what)
        if v is BAD:
            return BAD
        if not isinstance(v, str):
            return self.error(node, path, f"expected {what}, {describe(node)}")
        if not v.strip():
            return self.error(node, path, f"expected {what}, got an empty string")
        return v

    def boolean(self, node: Node, path: str) -> Any:
        v = self.scalar(node, path, "true or false")
        if v is BAD:
            return BAD
        if not isinstance(v, bool):
            return self.error(node, path, f"expected true or false, {describe(node)}")
        return v

    def integer(self, node: Node, path: str, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> Any:
        bounds = (f" >= {minimum}" if minimum is not None else "") if maximum is None \
            else f" from {minimum} to {maximum}"
        v = self.scalar(node, path, f"a whole number{bounds}")
        if v is BAD:
            return BAD
        if isinstance(v, bool) or not isinstance(v, int):
            return self.error(node, path, f"expected a whole number{bounds}, {describe(node)}")
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            return self.error(node, path, f"expected a whole number{bounds}, {describe(node)}")
        return v

    def duration(self, node: Node, path: str, *, positive: bool = False) -> Any:
        v = self.scalar(node, path, DURATION_EXPECTED)
        if v is BAD:
            return BAD
        try:
            seconds = parse_duration(v)
        except ValueError as exc:
            plain = isinstance(v, (str, int, float)) and not isinstance(v, bool)
            return self.error(node, path, str(exc) if plain
                              else f"expected {DURATION_EXPECTED}, {describe(node)}")
        if positive and seconds <= 0:
            return self.error(node, path, f"expected a duration greater than 0, {describe(node)}")
        return seconds

    def choice(self, node: Node, path: str, choices: Collection[str]) -> Any:
        v = self.scalar(node, path, "one of " + " or ".join(choices))
        if v is BAD:
            return BAD
        if not isinstance(v, str) or v not in choices:
            close = suggest(str(v), choices) if isinstance(v, str) else None
            hint = f" (did you mean {close!r}?)" if close else ""
            return self.error(node, path, "expected one of " + " or ".join(choices)
                              + f", {describe(node)}{hint}")
        return v

    def field(self, entries: Optional[Entries], name: str, parse: Parser, default: Any = None, *,
              nullable: bool = False, required: bool = False) -> Any:
        """Parse key ``name`` of ``entries``: ``default`` when absent (or null, if
        ``nullable``) or unusable; a missing required key is recorded."""
        if entries is None:
            return default
        node = entries.value(name)
        path = join(entries.path, name)
        if node is None:
            if required:
                self.error(entries.node, path, f"missing required key {name!r}")
            return default
        if is_null(node):
            if nullable and not required:
                return default
            self.error(node, path, "expected a value, got nothing (null)")
            return default
        v = parse(self, node, path)
        return default if v is BAD else v


def switch(r: Reader, node: Node, path: str, expected: str, on: Any) -> Any:
    """A key that is ``true`` (``on``: its defaults), ``false`` (None) or a mapping, read here
    when it is not a mapping; anything else is an error saying ``expected``."""
    v = r.scalar(node, path, expected)
    if v is BAD:
        return BAD
    if v is True:
        return on
    if v is False:
        return None
    return r.error(node, path, f"expected {expected}, {describe(node)}")


def p_string(r: Reader, node: Node, path: str) -> Any:
    return r.string(node, path)


def p_bool(r: Reader, node: Node, path: str) -> Any:
    return r.boolean(node, path)


def p_duration(r: Reader, node: Node, path: str) -> Any:
    return r.duration(node, path)


def p_timeout(r: Reader, node: Node, path: str) -> Any:
    return r.duration(node, path, positive=True)


def p_positive_int(r: Reader, node: Node, path: str) -> Any:
    return r.integer(node, path, minimum=1)


def p_port(r: Reader, node: Node, path: str) -> Any:
    return r.integer(node, path, minimum=1, maximum=65535)
