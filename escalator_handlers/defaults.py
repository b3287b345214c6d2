"""Every default escalator applies, in one place.

Config keys left out of ``escalator.yaml``, command-line options left off, and
the paths of a standard install all take their value from here, so the
loader, the config model, the handler, the CLI and the plugins cannot
disagree.  The spool's two defaults are defined in :mod:`escalator_handlers.spool`
and re-exported here: the handler's hot path imports that module and no other.
"""

from .spool import DEFAULT_MODE as SPOOL_MODE
from .spool import DEFAULT_SPOOL as SPOOL

# -- where things live ------------------------------------------------------

#: The config file when neither ``--config`` nor ``$ESCALATOR_CONFIG`` names one.
CONFIG_PATH = "/etc/escalator/escalator.yaml"
#: ``journal:``.
JOURNAL = "/var/lib/escalator/journal.jsonl"
#: The snapshot's file name beside the journal when ``state_file:`` is not set.
STATE_FILE_NAME = "state.json"
#: The operators' control directory, beside ``state.json`` (only root and escalator's user write it).
CONTROL_DIR_NAME = "control"
#: The modes of the state directory and its ``control/`` when escalator creates them
#: (the ``escalator`` group may read and list them; only their owner writes).
STATE_DIR_MODE = 0o750
CONTROL_DIR_MODE = STATE_DIR_MODE

# -- planning ---------------------------------------------------------------

#: ``quiescence:`` (seconds of quiet before acting; also each level's default).
QUIESCENCE = 30.0
#: ``max_delay:`` (act at the latest this long after a burst's first event).
MAX_DELAY = 300.0
#: ``state_types:`` that count as failing.
STATE_TYPES = ("HARD",)
#: ``act_in_downtime:``.
ACT_IN_DOWNTIME = False
#: ``unreachable:`` (``ignore``: an UNREACHABLE host asks for nothing).
UNREACHABLE = "ignore"
#: A level's ``max_attempts:``.
MAX_ATTEMPTS = 3
#: A level's ``on_exhausted:``.
ON_EXHAUSTED = "notify"

#: The collector's clock and the wall clock may part by this many seconds before
#: the collector takes it for a step of the wall clock (a ``clock`` record).
CLOCK_TOLERANCE = 2.0

# -- steps ------------------------------------------------------------------

#: A step's ``timeout:`` in seconds (also ``defaults: timeout:``).
STEP_TIMEOUT = 600.0
#: A ``foreach: host`` step's ``concurrency:``.
CONCURRENCY = 10
#: ssh steps' ``port:`` and ``connect_timeout:``.
SSH_PORT = 22
SSH_CONNECT_TIMEOUT = 10.0
#: chef steps' ``chef_client:``.
CHEF_CLIENT = "chef-client"
#: chef steps' ``file_cache_path:`` (chef-client's own default on Linux) and the run
#: lock chef-client keeps there (``Chef::Config[:lockfile]``'s default).
CHEF_FILE_CACHE_PATH = "/var/chef/cache"
CHEF_LOCK_NAME = "chef-client-running.pid"
#: A level's ``busy_wait:``: how long a host whose converge is in flight is waited for
#: before it is skipped; ``BUSY_POLL`` the longest pause between two looks.
BUSY_WAIT = 300.0
BUSY_POLL = 5.0

# -- rollouts ---------------------------------------------------------------

#: A level's ``rollout:`` keys left out (and ``limits.max_targets: {rollout: true}``,
#: whose waves default to the ``hosts`` limit instead).
ROLLOUT_CANARY = 1
ROLLOUT_WAVES_PERCENT = 25.0
ROLLOUT_MAX_FAILED = 0

# -- feedback into Nagios / Icinga --------------------------------------------

#: ``nagios: service:``, the passive service that carries run outcomes.
FEEDBACK_SERVICE = "escalator"
#: The author of escalator's comments and acknowledgements.
FEEDBACK_AUTHOR = "escalator"

# -- people in the loop ----------------------------------------------------------

#: ``approval: true``: how long a run waits for ``escalator approve`` before it is denied.
APPROVAL_TIMEOUT = 1800.0
#: ``retry_backoff`` keys left out: the first wait, its growth, its cap.
BACKOFF_INITIAL = 120.0
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 1800.0
#: ``limits.per_host`` keys left out.
PER_HOST_MAX_RUNS = 3
PER_HOST_WITHIN = 3600.0
#: While a person's acknowledgement holds a failing host, the collector reads
#: status.dat / the Icinga API this often (no event handler runs when it goes).
ACK_POLL = 5.0
#: While a failing check is held back by scheduled downtime, the collector reads
#: status.dat / the Icinga API this often (no event handler runs when a downtime ends).
DOWNTIME_POLL = 5.0

# -- escalator listen (Icinga 2's event stream) -------------------------------

#: Its state and heartbeat file, beside the journal.
LISTEN_STATE_NAME = "listen.json"
#: ``--watchdog``: a stream silent this long is a gap (Icinga sends no keepalive).
LISTEN_WATCHDOG = 60.0
#: How often listen rewrites its heartbeat.
LISTEN_HEARTBEAT = 5.0
#: A heartbeat older than this: listen is not running (an open gap).
LISTEN_STALE = 30.0
#: Longest wait between reconnects (it doubles from 1 s).
LISTEN_RETRY_MAX = 30.0
#: ``--capture``: rotate the raw stream file at this size, keep this many old ones.
LISTEN_CAPTURE_SIZE = 64 * 1024 * 1024
LISTEN_CAPTURE_KEEP = 5

# -- plugins ----------------------------------------------------------------

#: ``check_escalator -t``: seconds before it gives up with UNKNOWN.
CHECK_ESCALATOR_TIMEOUT = 10
#: ``check_escalator --dead-after``: ``DEAD_AFTER_QUIESCENCES`` x quiescence + ``DEAD_AFTER_EXTRA``.
DEAD_AFTER_QUIESCENCES = 2
DEAD_AFTER_EXTRA = 60.0
#: ``check_escalator --handler-command``, ``--handler-grace`` and ``--handler-lookback``
#: (with ``--nagios-log``): the shipped handler commands, seconds.
HANDLER_COMMAND = "escalator*"
HANDLER_GRACE = 30.0
HANDLER_LOOKBACK = 3600.0
#: ``check_cucumber -t``.
CHECK_CUCUMBER_TIMEOUT = 50
#: The smoke steps' network and command timeout.
SMOKE_TIMEOUT = 10.0

# -- several nodes (cluster:) -------------------------------------------------

#: ``cluster.prefix``: every key of one logical escalator under it.
CLUSTER_PREFIX = "/escalator"
#: ``cluster.lease_ttl`` (whole seconds; etcd's smallest lease is 2 s).
LEASE_TTL = 10.0
MIN_LEASE_TTL = 2.0

__all__ = [
    "ACK_POLL", "DOWNTIME_POLL", "BUSY_POLL", "BUSY_WAIT", "CHEF_FILE_CACHE_PATH", "CHEF_LOCK_NAME",
    "ROLLOUT_CANARY", "ROLLOUT_MAX_FAILED", "ROLLOUT_WAVES_PERCENT", "APPROVAL_TIMEOUT", "BACKOFF_FACTOR", "BACKOFF_INITIAL", "BACKOFF_MAX",
    "PER_HOST_MAX_RUNS", "PER_HOST_WITHIN",
    "ACT_IN_DOWNTIME", "CHECK_CUCUMBER_TIMEOUT", "CLOCK_TOLERANCE", "CLUSTER_PREFIX", "LEASE_TTL", "MIN_LEASE_TTL", "CHECK_ESCALATOR_TIMEOUT", "CHEF_CLIENT", "CONCURRENCY",
    "CONFIG_PATH", "DEAD_AFTER_EXTRA", "HANDLER_COMMAND", "HANDLER_GRACE", "HANDLER_LOOKBACK", "DEAD_AFTER_QUIESCENCES", "FEEDBACK_AUTHOR", "FEEDBACK_SERVICE", "JOURNAL",
    "MAX_ATTEMPTS", "MAX_DELAY", "ON_EXHAUSTED", "QUIESCENCE", "SMOKE_TIMEOUT", "SPOOL", "SPOOL_MODE",
    "SSH_CONNECT_TIMEOUT", "SSH_PORT", "STATE_FILE_NAME", "STATE_TYPES", "STEP_TIMEOUT", "UNREACHABLE",
]
