"""The configuration model: frozen dataclasses for every key docs/configuration.rst names.

Loading and validating YAML lives in :mod:`escalator_handlers.config.load`; this module holds only
the values the rest of the program consumes, plus the lookups (which level a
check maps to) that every consumer needs.  Durations are float seconds.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from .. import defaults as default  # the module; `defaults` is a config key here
from ..event import CheckKey

DEFAULT_CONFIG_PATH = default.CONFIG_PATH


@dataclass(frozen=True)
class SshOptions:
    """Connection settings of an ssh step (and of a chef step run remotely)."""

    host: str                      # template, e.g. "{host}"
    port: int = default.SSH_PORT
    user: Optional[str] = None
    key_file: Optional[str] = None
    passphrase_file: Optional[str] = None
    known_hosts: Optional[str] = None
    connect_timeout: float = default.SSH_CONNECT_TIMEOUT
    sudo: Union[bool, str] = False  # True = root, or a user name
    env: Mapping[str, str] = field(default_factory=dict)
    proxy_jump: Optional[str] = None  # "[user@]host[:port]", one bastion


@dataclass(frozen=True)
class ChefOptions:
    """What a chef step asks chef-client to do."""

    run_list: Tuple[str, ...] = ()          # -o
    json_attribs: Optional[str] = None      # -j
    environment: Optional[str] = None       # -E
    chef_client: str = default.CHEF_CLIENT
    extra_args: Tuple[str, ...] = ()
    reboot_is_failure: bool = False         # exit 35/37 fail the step when true
    sudo: Union[bool, str] = False          # local runs; remote runs use ssh.sudo
    # chef-client's run lock (``Chef::RunLock``: a flock on this file) checked before
    # each run; None: ``file_cache_path``/chef-client-running.pid, as chef-client has it.
    lockfile: Optional[str] = None
    file_cache_path: str = default.CHEF_FILE_CACHE_PATH

    @property
    def run_lock(self) -> str:
        return self.lockfile or os.path.join(self.file_cache_path, default.CHEF_LOCK_NAME)


@dataclass(frozen=True)
class Step:
    """One step of a level (or a notify step).

    ``kind`` is ``shell``, ``ssh`` or ``chef``.  ``command`` is the template
    for shell and ssh steps.  ``ssh`` is set for ssh steps and for chef steps
    with a ``host``; ``chef`` for chef steps.  ``where`` names the step in
    messages and journal records, e.g. ``levels[2].steps[0]``.
    """

    kind: str
    where: str
    command: Optional[str] = None
    ssh: Optional[SshOptions] = None
    chef: Optional[ChefOptions] = None
    foreach: Optional[str] = None           # "host" or None
    concurrency: int = default.CONCURRENCY
    timeout: float = default.STEP_TIMEOUT
    line: Optional[int] = None
    # Config management in flight: asked per host before the step runs (a chef step always
    # checks chef-client's run lock too); busy -> wait up to busy_wait, then skip the host.
    busy_check: Optional["Step"] = None
    busy_wait: float = default.BUSY_WAIT
    #: ``raw: true``: template values and ESCALATOR_* as monitoring gave them, not made one line.
    raw: bool = False

    @property
    def label(self) -> str:
        if self.kind == "chef":
            return "chef-client " + " ".join(self.chef.run_list if self.chef else ())
        return self.command or self.kind


@dataclass(frozen=True)
class Backoff:
    """``retry_backoff``: wait between unconverged attempts of a level."""

    initial: float = default.BACKOFF_INITIAL
    factor: float = default.BACKOFF_FACTOR
    max: float = default.BACKOFF_MAX

    def delay(self, attempts: int) -> float:
        """The wait before the next attempt after ``attempts`` unconverged ones (>= 1)."""
        return min(self.max, self.initial * self.factor ** max(0, attempts - 1))


@dataclass(frozen=True)
class Rollout:
    """``rollout``: a ``foreach: host`` level run on a canary, then in waves (docs/planning.rst).

    ``waves`` is hosts per wave, or with ``percent`` a percentage of the hosts
    the rollout began with.  More than ``max_failed`` hosts not converged (or a
    canary not converged) stops the rollout.
    """

    canary: int = default.ROLLOUT_CANARY
    waves: float = default.ROLLOUT_WAVES_PERCENT
    percent: bool = True
    max_failed: int = default.ROLLOUT_MAX_FAILED

    def wave_size(self, total: int) -> int:
        """Hosts per wave after the canary, for a rollout of ``total`` hosts."""
        if self.percent:
            return max(1, -(-int(total * self.waves) // 100)) if total else 1
        return max(1, int(self.waves))

    def describe(self) -> str:
        waves = f"{self.waves:g}%" if self.percent else f"{int(self.waves)}"
        return f"canary {self.canary}, waves {waves}, max_failed {self.max_failed}"


@dataclass(frozen=True)
class Level:
    """An escalation level; ``index`` is 1-based, 1 = most drastic."""

    index: int
    name: str
    steps: Tuple[Step, ...]
    quiescence: float = default.QUIESCENCE
    max_attempts: int = default.MAX_ATTEMPTS
    on_exhausted: str = default.ON_EXHAUSTED   # or "escalate"
    approval: Optional[float] = None         # seconds to wait for `escalator approve`; None = no gate
    retry_backoff: Optional[Backoff] = None
    rollout: Optional[Rollout] = None        # canary and waves for its foreach: host steps


@dataclass(frozen=True)
class CheckRule:
    """Maps checks to a level.  ``service`` None matches host checks only."""

    level: int
    host: str = "*"
    service: Optional[str] = None
    states: Tuple[str, ...] = ()  # empty = any problem state
    line: Optional[int] = None
    # False: the check asks for its level but its host is no target (e.g. an
    # IaaS API check: its "host" is a service endpoint, not a machine to rebuild).
    target: bool = True

    def matches(self, key: CheckKey, state: Optional[str]) -> bool:
        return self.matches_service(key[1], state) and self.matches_host(key[0])

    def matches_service(self, service: Optional[str], state: Optional[str]) -> bool:
        """The half of ``matches`` that is the same for every host (a check's state included)."""
        if self.service is None:
            if service is not None:
                return False
        elif service is None or not fnmatch.fnmatchcase(service, self.service):
            return False
        return not self.states or state in self.states

    def matches_host(self, host: str) -> bool:
        return self.host == "*" or fnmatch.fnmatchcase(host, self.host)


@dataclass(frozen=True)
class PerHostLimit:
    """``limits.per_host``: a host that was a target of ``max_runs`` runs within ``within`` seconds."""

    max_runs: int = default.PER_HOST_MAX_RUNS
    within: float = default.PER_HOST_WITHIN


@dataclass(frozen=True)
class Limits:
    max_runs_per_hour: Optional[int] = None
    max_targets: Optional[int] = None
    per_host: Optional[PerHostLimit] = None
    # ``max_targets: {hosts: N, rollout: ...}``: more hosts than N are rolled out, not refused.
    max_targets_rollout: Optional[Rollout] = None


@dataclass(frozen=True)
class IcingaApi:
    url: str
    user: str
    password_file: str
    ca_file: Optional[str] = None
    #: The name the API's certificate must carry (its node's CN) when the URL's host is
    #: not that name (``https://127.0.0.1:5665``); default: the URL's host.
    server_name: Optional[str] = None


@dataclass(frozen=True)
class NagiosFeedback:
    """Optional feedback into Nagios (command file) or Icinga 2 (REST API)."""

    command_file: Optional[str] = None
    icinga_api: Optional[IcingaApi] = None
    acknowledge: bool = False
    service: str = default.FEEDBACK_SERVICE      # passive service that carries run outcomes
    host: Optional[str] = None      # host of that service; default: this machine's name
    status_file: Optional[str] = None
    ack_interlock: bool = True      # a person's acknowledgement keeps escalator off the host


@dataclass(frozen=True)
class ClusterConfig:
    """Several nodes, one logical escalator: state and leadership in etcd."""

    etcd: Tuple[str, ...]            # client URLs of the etcd cluster
    prefix: str = default.CLUSTER_PREFIX  # every key under it; one prefix = one logical escalator
    node: str = "localhost"          # this node's name (the loader defaults it to the host name)
    lease_ttl: float = default.LEASE_TTL  # whole seconds, >= 2: a dead leader is replaced within about this


@dataclass(frozen=True)
class Config:
    """A loaded, validated configuration."""

    source: str
    levels: Tuple[Level, ...]
    checks: Tuple[CheckRule, ...] = ()
    spool: str = default.SPOOL
    journal: str = default.JOURNAL
    state_file: Optional[str] = None   # default: state.json beside the journal
    quiescence: float = default.QUIESCENCE
    max_delay: float = default.MAX_DELAY
    state_types: Tuple[str, ...] = default.STATE_TYPES
    act_in_downtime: bool = default.ACT_IN_DOWNTIME
    notify: Tuple[Step, ...] = ()
    limits: Limits = Limits()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    nagios: Optional[NagiosFeedback] = None
    spool_mode: int = default.SPOOL_MODE
    # UNREACHABLE means a parent is down: the parent is what is broken.  "ignore":
    # such a host and its services neither ask for a level nor become targets.
    unreachable: str = default.UNREACHABLE
    cluster: Optional[ClusterConfig] = None

    @property
    def state_path(self) -> str:
        if self.state_file:
            return self.state_file
        return os.path.join(os.path.dirname(os.path.abspath(self.journal)), default.STATE_FILE_NAME)

    def level(self, ref: Union[int, str]) -> Level:
        """The level named ``ref`` or at 1-based position ``ref``."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.levels[int(ref) - 1]
        for lv in self.levels:
            if lv.name == ref:
                return lv
        raise KeyError(ref)

    def level_for(self, key: CheckKey, state: Optional[str]) -> Optional[int]:
        """Index of the level a check in ``state`` maps to (first matching rule), or None."""
        rule = self.rule_for(key, state)
        return rule.level if rule is not None else None

    def rule_for(self, key: CheckKey, state: Optional[str]) -> Optional[CheckRule]:
        """The first rule matching a check in ``state``, or None."""
        for rule in self.checks:
            if rule.matches(key, state):
                return rule
        return None


def config_path(path: Optional[str] = None) -> str:
    """``--config``, else ``$ESCALATOR_CONFIG``, else the system default."""
    return path or os.environ.get("ESCALATOR_CONFIG") or DEFAULT_CONFIG_PATH


__all__: Sequence[str] = [
    "Backoff", "ChefOptions", "CheckRule", "ClusterConfig", "Config", "IcingaApi", "Level", "Limits",
    "NagiosFeedback", "PerHostLimit", "Rollout", "SshOptions", "Step", "config_path",
]
