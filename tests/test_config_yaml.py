"""libyaml and PyYAML read a config the same (config/yamltext.py).

libyaml composes the node tree when it reads the text as PyYAML's own parser
would; every other text, and every text libyaml refuses, is read by PyYAML as
before.  These tests hold the two to that: every YAML file of the project, the
texts where they are known to differ, and generated YAML give the same nodes
(tags, values, lines), the same problems and the same config either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Union

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from yaml.nodes import Node, ScalarNode, SequenceNode

from escalator_handlers.config import yamltext
from escalator_handlers.config.load import _analyse
from escalator_handlers.config.yamlnodes import Reader

REPO = Path(__file__).resolve().parent.parent
YAML_FILES = sorted(p for d in ("tests/configs", "nagios-conf") for p in (REPO / d).rglob("*.yaml"))

needs_libyaml = pytest.mark.skipif(getattr(yaml, "CSafeLoader", None) is None,
                                   reason="PyYAML without libyaml: only its own parser runs")


def tree(node: Node, memo: Dict[int, int]) -> Any:
    """What the config reader uses of a node: kind, tag, line, value; aliases as back references."""
    if id(node) in memo:
        return ("alias", memo[id(node)])
    memo[id(node)] = len(memo)
    head = (type(node).__name__, node.tag, node.start_mark.line)
    if isinstance(node, ScalarNode):
        return head + (node.value,)
    if isinstance(node, SequenceNode):
        return head + (tuple(tree(n, memo) for n in node.value),)
    return head + (tuple((tree(k, memo), tree(v, memo)) for k, v in node.value),)


def pyyaml_tree(text: str) -> Any:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as exc:
        return ("error", type(exc).__name__)
    return None if root is None else tree(root, {})


def _same_tree_where_libyaml_reads(text: str) -> None:
    root = yamltext._fast(text)
    if root is not None:
        assert tree(root, {}) == pyyaml_tree(text), text


def analyse_both(text: Union[str, bytes], monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """``_analyse`` (the config and its problems) with libyaml allowed, then with PyYAML alone."""
    out = [_analyse(text, "escalator.yaml")]
    with monkeypatch.context() as m:
        m.setattr(yamltext, "_C_LOADER", None)
        out.append(_analyse(text, "escalator.yaml"))
    return out


@needs_libyaml
@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p.relative_to(REPO)) for p in YAML_FILES])
def test_every_yaml_file_of_the_project_gives_the_same_config_and_problems(path: Path, monkeypatch) -> None:
    data = path.read_bytes()
    fast, slow = analyse_both(data, monkeypatch)
    assert fast == slow
    try:
        _same_tree_where_libyaml_reads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        pass  # 52-not-utf8.yaml: no parser sees it


@needs_libyaml
def test_ordinary_configs_are_read_by_libyaml() -> None:
    # Else the speed-up silently stops applying (a too-wide screen, a missing libyaml).
    for name in ("nagios-conf/examples/escalator.yaml", "tests/configs/good/full.yaml"):
        assert yamltext._fast((REPO / name).read_text()) is not None, name


# Where libyaml and PyYAML part: each must give PyYAML's answer, problems and all.
DIFFERING = [
    "levels: [{steps: [{shell: echo}]}]\t\n",                 # a tab after a value: libyaml takes it
    "levels:\n\t- steps: [{shell: echo}]\n",                   # a tab indent
    "levels: [{steps: [{shell: |#\n    echo\n}]}]\n",          # '#' right after a block scalar header
    "spool: !\nlevels: [{steps: [{shell: echo}]}]\n",          # an empty non-specific tag: str or null
    "spool: ! \nlevels: [{steps: [{shell: echo}]}]\n",
    "? \nlevels: [{steps: [{shell: echo}]}]\n",                # an empty explicit key
    "? a\n: b\nlevels: [{steps: [{shell: echo}]}]\n",
    "levels: " + "[" * 200 + "]" * 200 + "\n",                 # deep, but not for libyaml
    "levels: " + "[" * 600 + "]" * 600 + "\n",                 # too deep for PyYAML's parser
    "---",
    "levels: [{steps: [{shell: echo}]}]\r\nspool: /x\r\n",
    "levels: [{steps: [{shell: echo\u2028x}]}]\n",
    "\ufefflevels: [{steps: [{shell: echo}]}]\n",
    "%YAML 1.1\n---\nlevels: [{steps: [{shell: echo}]}]\n",
    "levels: [{steps: [{shell: `echo`}]}]\n",
    "levels: [{steps: [{shell: @echo}]}]\n",
    "levels: [{steps: [{shell: curl http://x/?a=b}]}]\n",     # '?' in a flow plain scalar: PyYAML refuses
    "levels: [{name: a?, steps: [{shell: echo}]}]\n",
    "levels: [{name: vm, quiescence:\n    , steps: [{shell: echo}]}]\n",  # libyaml: the null on line 2
    "levels: [{name: vm, steps: [{shell: echo, timeout: # none\n  }]}]\n",
]


@needs_libyaml
@pytest.mark.parametrize("text", DIFFERING)
def test_where_the_parsers_differ_pyyaml_decides(text: str, monkeypatch) -> None:
    fast, slow = analyse_both(text, monkeypatch)
    assert fast == slow


# -- generated YAML ----------------------------------------------------------------

SCALARS = ["a", "web-*", "echo {host} >> /tmp/x", "'q: x'", '"d\\"q"', "30s", "1", "0750", "yes", "~", "",
           "x: y", "a #c", "a#b", "{x}", "[a]", "*anc", "&anc v", "<<", "|", ">", "|-\n  l1\n  l2",
           ">\n  f1\n\n  f2", "'multi\n  line'", '"e\\x41\\u00e9\\/"', "ssh -o X=y", "1.5", ".inf",
           "2001-12-14", "12:30:00", "é€", "\U0001F600", "a: b: c", "- x", "-x", "'", '"', "{", "}", "]",
           ",", "---", "...", "echo hi!", "a?b", "user@host", "!!str x", "!x y", "%s", "? k", "\t", "|#",
           "\n  ", "#c\n  ", "x\n  "]
TOKENS = ["a", "key", ": ", ":", "- ", "-", "\n", "\n  ", "\n    ", " ", "'", '"', "[", "]", "{", "}", ",",
          "#", " #", "&x ", "*x", "<<: ", "!!str ", "!!int ", "!", "?", "? ", "|", ">", "|-", ">+", "|2",
          "---", "...", "%", "\\", "\\n", "\\/", "1", "0o7", "1e3", "~", "null", "yes", "12:30", "é", "@",
          "`", "\t", "\r\n", "\u2028", "\ufeff", "$", "{host}", "echo hi!"]


@st.composite
def config_shaped(draw: st.DrawFn) -> str:
    def value(depth: int, indent: int) -> str:
        kind = draw(st.integers(0, 9)) if depth < 4 else 0
        if kind <= 4:
            return draw(st.sampled_from(SCALARS))
        if kind == 5:
            return "[" + ", ".join(draw(st.lists(st.sampled_from(SCALARS), max_size=3))) + "]"
        if kind == 6:
            pairs = draw(st.lists(st.tuples(st.sampled_from(SCALARS), st.sampled_from(SCALARS)), max_size=3))
            return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        sub = indent + draw(st.sampled_from([2, 2, 4, 1, 3, 0]))
        n = draw(st.integers(1, 3))
        if kind <= 8:
            return "".join(f"\n{' ' * sub}- {value(depth + 1, sub + 2)}" for _ in range(n))
        return "".join(f"\n{' ' * sub}{draw(st.sampled_from(SCALARS))}: {value(depth + 1, sub)}" for _ in range(n))

    lines = [f"{draw(st.sampled_from(SCALARS))}: {value(0, 0)}" for _ in range(draw(st.integers(1, 4)))]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


@needs_libyaml
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_shaped())
def test_libyaml_reads_generated_configs_as_pyyaml_does(text: str) -> None:
    _same_tree_where_libyaml_reads(text)


@needs_libyaml
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=20).map("".join))
def test_libyaml_reads_generated_token_soup_as_pyyaml_does(text: str) -> None:
    _same_tree_where_libyaml_reads(text)


def test_without_libyaml_pyyaml_reads_everything(monkeypatch) -> None:
    monkeypatch.setattr(yamltext, "_C_LOADER", None)
    r = Reader("escalator.yaml")
    root = yamltext.compose(r, "levels: [{steps: [{shell: echo}]}]\n")
    assert r.problems == [] and root is not None and yamltext._fast("a: b\n") is None
