"""The kinds of journal records, one name each.

Every journal (and spool) record is a JSON object with ``time`` and ``kind``;
docs/operating.rst lists the fields of each kind.  Code compares and builds
kinds through these names, so a kind is spelt once.
"""

from typing import Any, Mapping

#: An event from Nagios or Icinga (or replayed from a log).
EVENT = "event"
#: A run is starting (journalled before its first step).
START = "start"
#: A run ended (ok, failed, dry-run or skipped): one per run.
RUN = "run"
#: One step on one host.
STEP = "step"
#: An administrator is being told something (its steps are ``step`` records).
NOTIFY = "notify"
#: The ``level`` of a notify step's ``step`` record (it belongs to no run).
NOTIFY_LEVEL = NOTIFY
#: A run judged after its quiescence: converged or not.
VERDICT = "verdict"
#: The operator's records, which travel through the spool like events.
HOLD = "hold"
RELEASE = "release"
PAUSE = "pause"
RESUME = "resume"
#: ``escalator run --level``: an operator asks for a run.
REQUEST = "request"
#: A person's answer to an approval request (``escalator approve`` / ``deny``).
APPROVE = "approve"
DENY = "deny"
#: A run waiting for a person: requested, withdrawn or replaced.
APPROVAL = "approval"
#: A person's acknowledgement in Nagios/Icinga appeared or went.
ACK = "ack"
#: ``limits.per_host``: a host left alone (on) or acted on again (off).
BRAKE = "brake"
#: ``retry_backoff``: a wait before the next attempt, or the counter reset.
BACKOFF = "backoff"
#: A spool line that could not be read, kept verbatim.
REJECTED = "rejected"
#: A config reload, accepted or rejected.
CONFIG = "config"
#: A failed write-back to Nagios or Icinga.
FEEDBACK = "feedback"
#: What ``escalator plan --json`` prints (never journalled).
PLAN = "plan"
#: Several nodes (``cluster:``): a node began leading (``node``, fencing ``token``).
LEADER = "leader"
#: A rollout (canary, then waves) began, or ended (``done`` or ``stopped``).
ROLLOUT = "rollout"
#: An interval during which escalator could not hear Icinga (``escalator listen``):
#: ``outcome`` open or closed, ``start``, ``end`` (closed), ``reason``.
GAP = "gap"
#: The head of every journal file: the state older files and the snapshot held.
CHECKPOINT = "checkpoint"
#: The wall clock stepped (``jump``: seconds, + forward, - back): later records are
#: stamped on the stepped clock, and every duration under way keeps what it had left.
CLOCK = "clock"

#: The operator's kinds: applied by the collector at a step boundary.
CONTROL_KINDS = frozenset((HOLD, RELEASE, PAUSE, RESUME, REQUEST, APPROVE, DENY))

#: Records ``escalator listen`` spools besides events: folded as they are.
LISTEN_KINDS = frozenset((GAP,))

#: The ``outcome`` of a ``run`` record for a run that did not happen (a limit,
#: a pause, a hold): it records the decision, but no step ran.
SKIPPED = "skipped"


def is_skip(rec: Mapping[str, Any]) -> bool:
    """A ``run`` record of a run that was skipped, not carried out."""
    return rec.get("kind") == RUN and rec.get("outcome") == SKIPPED

__all__ = [
    "ACK", "APPROVAL", "APPROVE", "BACKOFF", "BRAKE", "CHECKPOINT", "CLOCK", "DENY",
    "CONFIG", "CONTROL_KINDS", "EVENT", "FEEDBACK", "GAP", "HOLD", "LEADER", "LISTEN_KINDS", "NOTIFY", "NOTIFY_LEVEL", "PAUSE", "PLAN", "REJECTED", "RELEASE",
    "REQUEST", "RESUME", "ROLLOUT", "RUN", "SKIPPED", "START", "STEP", "VERDICT", "is_skip",
]
