"""Several escalator nodes on one real etcd: each node a ``Site`` of its own.

A node has its own config (with ``cluster:``), spool and step output
directory; the nodes share the etcd cluster and the key prefix.  Helpers read
the journal straight from etcd, which is what every node's ``status`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import pytest

from collector_fixtures import QUIET, Site
from escalator_handlers.cluster.etcd import Etcd, EtcdUnavailable

PREFIX = "/esc"


def cluster_site(root: Path, name: str, urls: Sequence[str], levels: Sequence[dict], checks: Sequence[dict],
                 ttl: float = 2.0, prefix: str = PREFIX, **top: Any) -> Site:
    """A node named ``name`` under ``root/name`` with a cluster config."""
    d = root / name
    d.mkdir(parents=True)
    s = Site(d)
    s.write_config(levels, checks, cluster={"etcd": list(urls), "prefix": prefix, "node": name,
                                            "lease_ttl": f"{ttl:g}s"}, **top)
    return s


def journal(urls: Sequence[str], prefix: str = PREFIX) -> List[Tuple[int, dict]]:
    """Every journal record in etcd as (batch seq, record), in journal order."""
    e = Etcd(urls)
    out: List[Tuple[int, dict]] = []
    try:
        start = None
        while True:
            kvs, more, _ = e.get_prefix(prefix + "/journal/", limit=500, start=start)
            for kv in kvs:
                seq = int(kv.key.rsplit("/", 1)[1])
                out.extend((seq, rec) for rec in json.loads(kv.value))
            if not more or not kvs:
                return out
            start = f"{prefix}/journal/{seq + 1:012d}"
    finally:
        e.close()


def records(urls: Sequence[str], kind: str, prefix: str = PREFIX) -> List[dict]:
    return [r for _, r in journal(urls, prefix) if r.get("kind") == kind]


def leader(urls: Sequence[str], prefix: str = PREFIX) -> Dict[str, Any]:
    """The leader key's value with its token (create_revision), or {} when nobody leads."""
    e = Etcd(urls)
    try:
        kv = e.get(prefix + "/leader")
        return dict(kv.json(), token=kv.create_revision) if kv is not None else {}
    except EtcdUnavailable:
        return {}  # mid-election after a member was killed: ask again
    finally:
        e.close()


def terms(urls: Sequence[str], prefix: str = PREFIX) -> List[Tuple[float, int, str]]:
    """Every leadership on record: (time its campaign was sent, token, node), oldest first."""
    e = Etcd(urls)
    try:
        kvs, _, _ = e.get_prefix(prefix + "/terms/")
        return sorted((kv.json()["since"], kv.create_revision, kv.json()["node"]) for kv in kvs)
    finally:
        e.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[List[Site]]:
    """Sites the test appends to; all their processes are reaped afterwards."""
    made: List[Site] = []
    try:
        yield made
    finally:
        for s in made:
            s.reap()


__all__ = ["PREFIX", "QUIET", "cluster_site", "journal", "leader", "nodes", "records", "terms"]
