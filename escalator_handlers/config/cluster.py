"""The ``cluster:`` section of the config: several nodes on one etcd.

Absent, escalator runs on one node with its local files, as always.  Given,
``collect`` campaigns for leadership in etcd and ``forward`` ships the local
spool there (see :mod:`escalator_handlers.cluster`).
"""

from __future__ import annotations

import math
import re
from typing import Any, List, Optional

from yaml.nodes import Node, SequenceNode

from .. import defaults as default
from .model import ClusterConfig
from .yamlnodes import BAD, Entries, Reader, describe, join, p_string

CLUSTER_KEYS = ("etcd", "prefix", "node", "lease_ttl")
# Patterns, not compiled ones: re compiles (and caches) them on first use, so a
# config without cluster: costs nothing at import.
_NODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
_PREFIX_RE = r"^(/[A-Za-z0-9._-]+)+$"


def parse_cluster(r: Reader, top: Entries) -> Optional[ClusterConfig]:
    if not top.given("cluster"):
        return None
    e = r.mapping(top.value("cluster"), "cluster", CLUSTER_KEYS)
    if e is None:
        return None
    urls = r.field(e, "etcd", _p_urls, None, required=True)
    prefix = r.field(e, "prefix", _p_prefix, default.CLUSTER_PREFIX)
    node = r.field(e, "node", _p_node, None, nullable=True) or default_node()
    ttl = r.field(e, "lease_ttl", _p_ttl, default.LEASE_TTL)
    if urls is None:
        return None
    return ClusterConfig(etcd=tuple(urls), prefix=prefix, node=node, lease_ttl=ttl)


def default_node() -> str:
    import socket  # only a cluster: without node: needs it

    return socket.gethostname() or "localhost"


def _p_urls(r: Reader, node: Node, path: str) -> Any:
    items = [(join(path, i), n) for i, n in enumerate(node.value)] \
        if isinstance(node, SequenceNode) else [(path, node)]
    if not items:
        return r.error(node, path, "expected a non-empty list of etcd client URLs, got an empty list")
    out: List[str] = []
    for ipath, n in items:
        v = r.string(n, ipath, "an etcd client URL such as http://127.0.0.1:2379")
        if v is BAD:
            continue
        if not re.match(r"^https?://[^/\s:]+(:\d{1,5})?/?$", v):
            r.error(n, ipath, f"expected an etcd client URL such as http://etcd1:2379, {describe(n)}")
            continue
        out.append(v.rstrip("/"))
    return out if len(out) == len(items) else BAD


def _p_prefix(r: Reader, node: Node, path: str) -> Any:
    v = r.string(node, path, "a key prefix such as /escalator")
    if v is BAD:
        return BAD
    v = v.rstrip("/") if v != "/" else v
    if not re.match(_PREFIX_RE, v):
        return r.error(node, path, "expected a key prefix such as /escalator or /site/escalator "
                       f"(starts with '/', letters, digits, '.', '_', '-'), {describe(node)}")
    return v


def _p_node(r: Reader, node: Node, path: str) -> Any:
    v = p_string(r, node, path)
    if v is BAD:
        return BAD
    v = str(v)
    if len(v) > 200 or not re.match(_NODE_RE, v):
        return r.error(node, path, "expected a node name (letters, digits, '.', '_', ':', '@', '-'; "
                       f"no '/' or spaces), {describe(node)}")
    return v


def _p_ttl(r: Reader, node: Node, path: str) -> Any:
    v = r.duration(node, path, positive=True)
    if v is BAD:
        return BAD
    if v < default.MIN_LEASE_TTL:
        return r.error(node, path, f"expected at least {default.MIN_LEASE_TTL:.0f}s (etcd's smallest lease), "
                       f"{describe(node)}")
    return float(math.ceil(v))  # etcd leases are whole seconds
