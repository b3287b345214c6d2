"""Config keys for many hosts at once: a level's ``rollout``, ``busy_check`` and ``busy_wait``,
and ``limits.max_targets`` that rolls out instead of refusing.

Parsers in the style of ``config.yamlnodes`` (each returns the value or BAD after
recording a problem with file, line and key); ``config.load`` calls them.  The
defaults live in ``defaults``: a canary of 1 host, waves of 25 %, no failed host
tolerated; a busy host is waited for 5 minutes.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from yaml.nodes import MappingNode, Node, ScalarNode

from .. import defaults as default
from .model import Rollout, Step
from .steps import StepDefaults, build_step
from .yamlnodes import BAD, Reader, describe, is_null, p_positive_int, switch

ROLLOUT_KEYS = ("canary", "waves", "max_failed")
MAX_TARGETS_KEYS = ("hosts", "rollout")
ROLLOUT_EXPECTED = "true or a mapping such as {canary: 1, waves: 25%, max_failed: 0}"
_STR = "tag:yaml.org,2002:str"


def p_rollout(r: Reader, node: Node, path: str, *, waves: Optional[int] = None) -> Any:
    """``true`` (the defaults), ``false`` (none) or ``{canary, waves, max_failed}`` -> Rollout.

    ``waves`` is the default wave size in hosts (``limits.max_targets``'s own
    default); without it waves default to ``ROLLOUT_WAVES_PERCENT`` %."""
    base = Rollout() if waves is None else Rollout(waves=float(waves), percent=False)
    if not isinstance(node, MappingNode):
        return switch(r, node, path, ROLLOUT_EXPECTED, base)
    e = r.mapping(node, path, ROLLOUT_KEYS, what=ROLLOUT_EXPECTED)
    if e is None:
        return BAD
    canary = r.field(e, "canary", p_positive_int, base.canary)
    size, percent = r.field(e, "waves", _p_waves, (base.waves, base.percent))
    max_failed = r.field(e, "max_failed", _p_count, base.max_failed)
    return Rollout(canary=canary, waves=size, percent=percent, max_failed=max_failed)


def _p_waves(r: Reader, node: Node, path: str) -> Any:
    """``6`` (hosts per wave) or ``"25%"`` (of the hosts the rollout began with)."""
    v = r.scalar(node, path, "a number of hosts or a percentage such as 25%")
    if v is BAD:
        return BAD
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return float(v), False
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            pct = float(v.strip()[:-1])
        except ValueError:
            pct = -1.0
        if 0 < pct <= 100:
            return pct, True
    return r.error(node, path, f"expected a number of hosts (>= 1) or a percentage from 1% to 100%, "
                   f"{describe(node)}")


def _p_count(r: Reader, node: Node, path: str) -> Any:
    return r.integer(node, path, minimum=0)


def p_max_targets(r: Reader, node: Node, path: str) -> Any:
    """``10`` (refuse more hosts) or ``{hosts: 10, rollout: true | {...}}`` -> (hosts, Rollout or None)."""
    if not isinstance(node, MappingNode):
        n = p_positive_int(r, node, path)
        return BAD if n is BAD else (n, None)
    e = r.mapping(node, path, MAX_TARGETS_KEYS,
                  what="a number of hosts, or {hosts: 10, rollout: true}")
    if e is None:
        return BAD
    hosts = r.field(e, "hosts", p_positive_int, None, required=True)
    if hosts is None:
        return BAD
    ro = r.field(e, "rollout", lambda rr, nn, pp: p_rollout(rr, nn, pp, waves=hosts), None, nullable=True)
    return hosts, ro


def busy_check(r: Reader, node: Optional[Node], path: str, d: StepDefaults) -> Optional[Step]:
    """A level's ``busy_check``: a shell or ssh step entry run once per host (``foreach: host``
    is implied); exit 0 means the host is free, anything else that a converge is in flight."""
    if node is None or is_null(node):
        return None
    if isinstance(node, MappingNode):
        if any(isinstance(k, ScalarNode) and k.value == "chef" for k, _ in node.value):
            r.error(node, path, "busy_check is a shell or ssh command, not a chef step "
                    "(chef steps check chef-client's run lock by themselves)")
            return None
        if not any(isinstance(k, ScalarNode) and k.value == "foreach" for k, _ in node.value):
            node = MappingNode(node.tag, list(node.value) + [
                (ScalarNode(_STR, "foreach", node.start_mark, node.end_mark),
                 ScalarNode(_STR, "host", node.start_mark, node.end_mark))],
                node.start_mark, node.end_mark, node.flow_style)
    return build_step(r, node, path, d)


def with_busy(steps: Tuple[Step, ...], check: Optional[Step], wait: float) -> Tuple[Step, ...]:
    """The level's steps, each with the level's ``busy_check`` and ``busy_wait``."""
    from dataclasses import replace

    if check is None and wait == default.BUSY_WAIT:
        return steps
    return tuple(replace(s, busy_check=check if s.foreach == "host" else None, busy_wait=wait)
                 for s in steps)


__all__ = ["busy_check", "p_max_targets", "p_rollout", "with_busy"]
