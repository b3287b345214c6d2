"""Reading who acknowledged which problem, from Nagios's status.dat or the Icinga 2 API.

For ``interlocks``: a problem a person acknowledged keeps escalator off its
host.  Escalator's own acknowledgements (``nagios.acknowledge: true``, author
``escalator``) never count.

- **status.dat** (Nagios 4): a ``hoststatus``/``servicestatus`` block with
  ``problem_has_been_acknowledged=1`` is acknowledged; the author and text are
  those of its latest comment with ``entry_type=4`` (an acknowledgement's
  comment).  The flag is the truth: a persistent acknowledgement comment
  outlives the acknowledgement.
- **Icinga 2 API**: comments with ``entry_type == 4`` (Icinga deletes them
  when the acknowledgement is removed or the problem recovers).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

from ..config import Config, NagiosFeedback
from ..display import safe
from ..errors import EscalatorError
from ..event import CheckKey, check_name
from ..planning.interlocks import Ack, Acks
from .commandfile import AUTHOR
from .statusdat import parse_blocks, read_status

log = logging.getLogger("escalator")

#: Comment entry type of an acknowledgement, in Nagios and in Icinga 2.
ACK_COMMENT = 4


def configured(nagios: Optional[NagiosFeedback]) -> bool:
    """Whether acknowledgements are read at all (a source configured, interlock on)."""
    return nagios is not None and nagios.ack_interlock and bool(nagios.status_file or nagios.icinga_api)


def poll(config: Config, acks: Acks, now: float) -> List[dict]:
    """``ack`` records that bring ``acks`` in line with the monitoring system now.

    [] when not configured or unreadable (logged: a monitoring system that
    cannot be read leaves the acknowledgements as last journalled)."""
    if not configured(config.nagios):
        return []
    try:
        current = read_acks(config.nagios)  # type: ignore[arg-type]
    except EscalatorError as exc:
        log.warning("cannot read acknowledgements: %s", exc)
        return []
    changes = acks.changes(current, now)
    for rec in changes:
        log.info("%s: %s", safe(check_name((rec["host"], rec["service"]))),
                 safe(f"acknowledged by {rec['author']}" if rec["outcome"] == "set" else "acknowledgement gone", 300))
    return changes


def read_acks(nagios: NagiosFeedback) -> Dict[CheckKey, Ack]:
    """Acknowledgements by people now in force; raise EscalatorError when unreadable."""
    found: Dict[CheckKey, Ack] = {}
    if nagios.status_file:
        found.update(_status_acks(nagios.status_file))
    if nagios.icinga_api is not None:
        found.update(_icinga_acks(nagios))
    # The latest acknowledgement of a problem decides: escalator's own, re-given after a
    # person's, means escalator acknowledged it (Nagios keeps one flag per problem).
    return {k: a for k, a in found.items() if a.author != AUTHOR}


def _status_acks(path: str) -> Dict[CheckKey, Ack]:
    acked = set()
    comments: Dict[CheckKey, Tuple[float, int, str, str]] = {}
    for kind, f in parse_blocks(read_status(path)):
        host = f.get("host_name")
        if not host:
            continue
        service = f.get("service_description") if kind.startswith("service") else None
        if kind in ("hoststatus", "servicestatus") and f.get("problem_has_been_acknowledged") == "1":
            acked.add((host, service))
        elif kind in ("hostcomment", "servicecomment") and f.get("entry_type") == str(ACK_COMMENT):
            order = (_num(f.get("entry_time")), int(_num(f.get("comment_id"))),
                     f.get("author", ""), f.get("comment_data", ""))
            if order[:2] >= comments.get((host, service), (0.0, -1, "", ""))[:2]:
                comments[(host, service)] = order
    out = {}
    for key in acked:
        t, _, author, text = comments.get(key, (0.0, 0, "", ""))
        out[key] = Ack(key[0], key[1], author, text, t)
    return out


def _icinga_acks(nagios: NagiosFeedback) -> Dict[CheckKey, Ack]:
    from .icinga_api import IcingaClient

    assert nagios.icinga_api is not None
    client = IcingaClient.from_config(nagios.icinga_api)
    latest: Dict[CheckKey, Ack] = {}
    for c in client.objects("comments", f"comment.entry_type == {ACK_COMMENT}",
                            ["host_name", "service_name", "author", "text", "entry_time"]):
        key = (str(c.get("host_name") or ""), c.get("service_name") or None)
        ack = Ack(key[0], key[1], str(c.get("author") or ""), str(c.get("text") or ""),
                  _num(c.get("entry_time")))
        if key[0] and (key not in latest or ack.time >= latest[key].time):
            latest[key] = ack
    return latest


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


__all__ = ["ACK_COMMENT", "configured", "poll", "read_acks"]
