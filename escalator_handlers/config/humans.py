"""Config keys that put a person in the loop: ``approval``, ``retry_backoff``, ``limits.per_host``.

Parsers in the style of ``config.yamlnodes`` (each returns the value or BAD after
recording a problem with file, line and key); ``config.load`` calls them.
Their defaults live in ``defaults``: an approval waits 30 minutes, a backoff
starts at 2 minutes and doubles up to 30, a per-host limit is 3 runs an hour.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node

from .. import defaults as default
from .model import Backoff, PerHostLimit
from .yamlnodes import BAD, Reader, describe, is_null, p_positive_int, p_timeout, switch

APPROVAL_TIMEOUT = default.APPROVAL_TIMEOUT
BACKOFF_DEFAULT = Backoff()
PER_HOST_DEFAULT = PerHostLimit()

APPROVAL_KEYS = ("timeout",)
BACKOFF_KEYS = ("initial", "factor", "max")
PER_HOST_KEYS = ("max_runs", "within")


def p_approval(r: Reader, node: Node, path: str) -> Any:
    """``true`` (wait APPROVAL_TIMEOUT), ``false``, or ``{timeout: DURATION}``; seconds or None."""
    if isinstance(node, MappingNode):
        e = r.mapping(node, path, APPROVAL_KEYS, what="true, false or {timeout: 30m}")
        if e is None:
            return BAD
        return r.field(e, "timeout", p_timeout, APPROVAL_TIMEOUT)
    return switch(r, node, path, "true, false or {timeout: 30m}", APPROVAL_TIMEOUT)


def p_backoff(r: Reader, node: Node, path: str) -> Any:
    """``{initial: 2m, factor: 2, max: 30m}`` (each optional) -> Backoff."""
    e = r.mapping(node, path, BACKOFF_KEYS, what="a mapping such as {initial: 2m, factor: 2, max: 30m}")
    if e is None:
        return BAD
    d = BACKOFF_DEFAULT
    initial = r.field(e, "initial", p_timeout, d.initial)
    factor = r.field(e, "factor", _p_factor, d.factor)
    most = r.field(e, "max", p_timeout, max(d.max, initial))
    if most < initial:
        return r.error(e.value("max") or node, f"{path}.max",
                       f"expected a duration at least the initial wait ({initial:g}s), got {most:g}s")
    return Backoff(initial=initial, factor=factor, max=most)


def _p_factor(r: Reader, node: Node, path: str) -> Any:
    v = r.scalar(node, path, "a number >= 1")
    if v is BAD:
        return BAD
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 1 <= v <= 100:
        return r.error(node, path, f"expected a number from 1 to 100, {describe(node)}")
    return float(v)


def p_per_host(r: Reader, node: Node, path: str) -> Any:
    """``{max_runs: 3, within: 1h}`` -> PerHostLimit; null or absent = no limit."""
    if is_null(node):
        return None
    e = r.mapping(node, path, PER_HOST_KEYS, what="a mapping such as {max_runs: 3, within: 1h}")
    if e is None:
        return BAD
    d = PER_HOST_DEFAULT
    return PerHostLimit(max_runs=r.field(e, "max_runs", p_positive_int, d.max_runs),
                        within=r.field(e, "within", p_timeout, d.within))


__all__ = ["APPROVAL_TIMEOUT", "p_approval", "p_backoff", "p_per_host"]
