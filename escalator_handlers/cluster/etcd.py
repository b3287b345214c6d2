"""A small etcd v3 client over etcd's JSON gateway, with fail-over between members.

Built on ``etcd3gw`` (OpenStack's maintained client of the gateway that
Debian's etcd 3.4 serves): it finds the API path, maps HTTP errors to
exceptions and keeps one ``requests`` session per member.  What it lacks for
escalator -- fail-over across several client URLs, transactions written as
plain tuples, a result type with revisions -- is here.  Imported only by the
cluster commands (``forward``, ``collect`` with ``cluster:``, ``status``...),
never by the handler: etcd3gw pulls in requests (~115 ms).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import EscalatorError
from ..storage.seam import StorageUnavailable

try:
    import etcd3gw
    from etcd3gw import exceptions as etcd_exc
except ImportError:  # an optional dependency: only cluster mode needs it
    raise EscalatorError("cluster: needs the etcd3gw package: pip install 'escalator-handlers[cluster]'") from None

log = logging.getLogger("escalator")


class EtcdUnavailable(StorageUnavailable):
    """No member of the etcd cluster answered (the message names each URL and why)."""


def why(exc: BaseException) -> str:
    """What went wrong talking to a member, in words (never a bare exception class name)."""
    text = str(getattr(exc, "detail_text", None) or exc)
    low = text.lower()
    for needle, words in (("connection refused", "connection refused: nothing listens there"),
                          ("name or service not known", "unknown host name"),
                          ("failed to resolve", "unknown host name"),
                          ("temporary failure in name resolution", "the host name cannot be resolved now"),
                          ("no route to host", "no route to the host"),
                          ("network is unreachable", "network unreachable"),
                          ("timed out", "no answer in time"),
                          ("timeout", "no answer in time"),
                          ("no leader", "the member has no raft leader (no quorum?)"),
                          ("unhealthy", "the member says it is unhealthy"),
                          ("connection reset", "the connection was reset"),
                          ("connection aborted", "the connection was dropped"),
                          ("remotedisconnected", "the connection was dropped")):
        if needle in low:
            return words
    first = text.splitlines()[0][:200] if text.strip() else ""
    return first or "no usable answer"


def unavailable(failures: Sequence[Tuple[str, str]], source: str = "the config") -> EtcdUnavailable:
    """The error for "no member answered", naming each URL tried and what to check."""
    tried = "; ".join(f"{url} ({reason})" for url, reason in failures)
    return EtcdUnavailable(f"cannot reach etcd at {tried}: check that etcd runs and listens there and "
                           f"that cluster.etcd in {source} lists its client URLs")


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0

    def json(self) -> Any:
        return json.loads(self.value)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def range_end(prefix: str) -> str:
    """The end of the key range holding every key that starts with ``prefix``."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes end in "/", never in 0xff
    return b64(bytes(raw))


# -- operations of a transaction (the gateway's JSON shapes) -------------------

def put_op(key: str, value: Any, lease: int = 0) -> dict:
    data = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=True,
                                                              separators=(",", ":")).encode()
    op: Dict[str, Any] = {"key": b64(key), "value": b64(data)}
    if lease:
        op["lease"] = str(lease)
    return {"request_put": op}


def delete_op(key: str, prefix: bool = False, end: Optional[str] = None) -> dict:
    op = {"key": b64(key)}
    if prefix:
        op["range_end"] = range_end(key)
    elif end is not None:
        op["range_end"] = b64(end)
    return {"request_delete_range": op}


def range_op(key: str) -> dict:
    return {"request_range": {"key": b64(key)}}


def same_create_revision(key: str, revision: int) -> dict:
    """Compare: ``key`` was created at ``revision`` (0: the key does not exist)."""
    return {"target": "CREATE", "key": b64(key), "result": "EQUAL", "create_revision": str(revision)}


def _kv(raw: dict) -> KV:
    return KV(base64.b64decode(raw["key"]).decode(), base64.b64decode(raw.get("value", "")),
              int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)), int(raw.get("lease", 0)))


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: Tuple[dict, ...]

    def ranges(self) -> List[List[KV]]:
        """The key-values of each range operation, in order."""
        return [[_kv(kv) for kv in r["response_range"].get("kvs", ())]
                for r in self.responses if "response_range" in r]


class Etcd:
    """Talks to the first member of ``urls`` that answers; moves on when one fails."""

    def __init__(self, urls: Sequence[str], timeout: float = 2.0, source: str = "the config") -> None:
        from urllib.parse import urlsplit

        self.urls = list(urls)
        self.source = source          # the config file, for messages
        self.timeout = timeout
        self._clients = []
        for url in self.urls:
            u = urlsplit(url)
            self._clients.append(etcd3gw.Etcd3Client(host=u.hostname or "127.0.0.1", port=u.port or 2379,
                                                     protocol=u.scheme or "http", timeout=timeout,
                                                     api_path="/v3/"))
        self._current = 0

    def close(self) -> None:
        for c in self._clients:
            c.session.close()

    def call(self, path: str, body: dict) -> dict:
        """POST ``body`` to the gateway; fail over to the next member on a connection error."""
        failures: List[Tuple[str, str]] = []
        for i in range(len(self._clients)):
            n = (self._current + i) % len(self._clients)
            client = self._clients[n]
            try:
                result = client.post(client.get_url(path), json=body)
            except (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError) as exc:
                failures.append((self.urls[n], why(exc)))
                continue
            except etcd_exc.Etcd3Exception as exc:
                detail = str(getattr(exc, "detail_text", None) or exc)
                if not detail.lstrip().startswith("{"):
                    # Not etcd's JSON: a web server, a proxy, an etcd without the v3 gateway.
                    reason = (exc.args[0] if exc.args else "") or "an error"
                    failures.append((self.urls[n], f"answers {str(reason)[:60]!r}, not as etcd's v3 JSON "
                                                   "gateway: is this etcd's client URL?"))
                    continue
                if "leader" in detail or "timed out" in detail or "unhealthy" in detail:
                    # A member without quorum or mid-election: another member may answer.
                    failures.append((self.urls[n], why(exc)))
                    continue
                raise EscalatorError(f"etcd at {self.urls[n]} refused {path}: {detail[:500]}") from None
            except ValueError:  # not JSON: something else listens there
                failures.append((self.urls[n], "the answer is not etcd's JSON: is this etcd's client URL?"))
                continue
            self._current = n
            return result
        raise unavailable(failures, self.source)

    # -- key-value -----------------------------------------------------------

    def txn(self, compare: Iterable[dict], success: Iterable[dict], failure: Iterable[dict] = ()) -> TxnResult:
        r = self.call("kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)})
        return TxnResult(bool(r.get("succeeded")), int(r["header"]["revision"]), tuple(r.get("responses", ())))

    def get(self, key: str) -> Optional[KV]:
        kvs = self.call("kv/range", {"key": b64(key)}).get("kvs", ())
        return _kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str, limit: int = 0, descending: bool = False, start: Optional[str] = None,
                   keys_only: bool = False) -> Tuple[List[KV], bool, int]:
        """Keys under ``prefix`` in key order (from ``start``): (kvs, more, revision)."""
        body: Dict[str, Any] = {"key": b64(start or prefix), "range_end": range_end(prefix), "limit": limit}
        if descending:
            body.update(sort_order="DESCEND", sort_target="KEY")
        if keys_only:
            body["keys_only"] = True
        r = self.call("kv/range", body)
        return [_kv(kv) for kv in r.get("kvs", ())], bool(r.get("more")), int(r["header"]["revision"])

    def count_prefix(self, prefix: str) -> int:
        r = self.call("kv/range", {"key": b64(prefix), "range_end": range_end(prefix), "count_only": True})
        return int(r.get("count", 0))

    def put(self, key: str, value: Any, lease: int = 0) -> int:
        op = put_op(key, value, lease)["request_put"]
        return int(self.call("kv/put", op)["header"]["revision"])

    def compact(self, revision: int) -> None:
        try:
            self.call("kv/compaction", {"revision": str(revision)})
        except EscalatorError as exc:
            if "compacted" not in str(exc):  # someone compacted further already: fine
                raise

    # -- leases ----------------------------------------------------------------

    def grant(self, ttl: int) -> Tuple[int, int]:
        """A new lease: (id, granted ttl)."""
        r = self.call("lease/grant", {"TTL": ttl, "ID": 0})
        return int(r["ID"]), int(r["TTL"])

    def keepalive(self, lease: int) -> int:
        """Renew; the remaining TTL (0: the lease has expired)."""
        r = self.call("lease/keepalive", {"ID": str(lease)})
        return int(r.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self.call("kv/lease/revoke", {"ID": str(lease)})

    # -- cluster -----------------------------------------------------------------

    def members(self) -> List[dict]:
        return list(self.call("cluster/member/list", {}).get("members", ()))


__all__ = ["KV", "Etcd", "EtcdUnavailable", "unavailable", "why", "TxnResult", "b64", "delete_op", "put_op", "range_op",
           "same_create_revision"]
