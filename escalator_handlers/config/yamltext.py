"""From YAML text to the node tree that :mod:`~escalator_handlers.config.yamlnodes` walks.

libyaml (when PyYAML was built with it) composes a config ten times faster
than PyYAML's own parser, a few milliseconds of every command's start-up.  The
two agree on the nodes, tags, values and lines of ordinary YAML, but not on
all of it: libyaml takes a tab after a value, ``|#`` and ``[a?b]``, reads
an empty ``!`` node as a string, puts a value left out in ``{key:`` then a
line break on the next line, and reads nesting far deeper than PyYAML's
recursive parser can.  So libyaml reads only a text that ``_NOT_FOR_LIBYAML``
does not match (tabs, odd line breaks, byte order marks, any ``?``, a token
starting with ``! % @`` or a backquote, ``|`` or ``>`` followed by ``#``) into
a tree ``_agrees`` accepts; anything else, and anything libyaml
refuses, PyYAML reads as before, so every error keeps PyYAML's words, line
and column.
tests/test_config_yaml.py compares the two parsers on generated YAML.
"""

from __future__ import annotations

import re
from typing import Optional, Union

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from .yamlnodes import Reader, is_null

_C_LOADER = getattr(yaml, "CSafeLoader", None)
_NOT_FOR_LIBYAML = re.compile(r"[\t\r\x85\u2028\u2029\ufeff?]|(?:^|[\s\[\]{},])[!%@`]|[|>][-+0-9]*#",
                              re.MULTILINE)
# PyYAML's parser recurses about three frames a level: past some hundreds of
# levels it fails where libyaml does not.  No config comes near this.
_MAX_DEPTH = 64


def _fast(data: str) -> Optional[Node]:
    """libyaml's tree of ``data``, or None where PyYAML must read it."""
    if _C_LOADER is None or _NOT_FOR_LIBYAML.search(data):
        return None
    try:
        root = yaml.compose(data, Loader=_C_LOADER)
    except Exception:  # noqa: BLE001 - whatever libyaml refuses, PyYAML says why
        return None
    # An empty document is PyYAML's to read: libyaml marks its null on another line.
    return root if root is not None and not is_null(root) and _agrees(root) else None


def _agrees(root: Node) -> bool:
    """Nothing PyYAML would read otherwise: no node deeper than _MAX_DEPTH, no
    value left out in a flow mapping with a line break after its ``:`` (libyaml
    puts that null on the next line, PyYAML on the key's).  Pre-order walk, so
    an anchor is reached before its aliases, which PyYAML does not descend into
    either."""
    seen = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return False
        if isinstance(node, ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            children = node.value
        else:
            if node.flow_style and any(is_null(v) and v.value == "" and v.start_mark.line != k.end_mark.line
                                       for k, v in node.value):
                return False
            children = [n for pair in node.value for n in pair]
        stack.extend((child, depth + 1) for child in reversed(children))
    return True


def compose(r: Reader, data: Union[str, bytes]) -> Optional[Node]:
    """The node tree of a YAML document (None after recording why it cannot be read)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            r.error(line, "", f"not valid UTF-8 text (byte 0x{data[exc.start]:02x})")
            return None
    root = _fast(data)
    if root is not None:
        return root
    try:
        return yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        col = f" (column {mark.column + 1})" if mark else ""
        hint = ""
        if exc.problem and "mapping values are not allowed" in exc.problem:
            hint = "; a value containing ': ' must be quoted"
        elif exc.context and "flow" in exc.context and any(
                f"'{c}'" in (exc.problem or "") for c in "{}[]"):
            hint = ("; inside {...} or [...] a value containing {, }, [ or ] "
                    "(a {template}, a role[name]) must be quoted")
        elif exc.problem and "'\\t'" in exc.problem:
            hint = "; YAML indents with spaces, not tabs"
        r.error(mark.line + 1 if mark else None, "", f"YAML syntax error: {what}{col}{hint}")
    except yaml.reader.ReaderError as exc:
        line = data[:exc.position].count("\n") + 1
        r.error(line, "", f"YAML cannot read this file: {exc.reason} "
                f"(character {exc.character!r})")
    except yaml.YAMLError as exc:
        r.error(None, "", f"YAML error: {exc}")
    except RecursionError:
        r.error(None, "", "YAML nested too deeply to read")
    return None


def document(r: Reader, data: Union[str, bytes], expected: str) -> Optional[Node]:
    """The root node of a non-empty YAML document; None after recording why there is none."""
    root = compose(r, data)
    if r.problems:
        return None
    if root is None or is_null(root):
        r.error(None, "", f"the file is empty: expected {expected}")
        return None
    return root
