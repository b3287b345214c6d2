"""chef-client steps: the argv, Chef's exit-code contract, and waiting for its run lock.

Exit codes follow Chef RFC 062 (``Chef::Application::ExitCode``): 0 success,
1 generic failure, 2 SIGINT, 3 SIGTERM, 35 reboot scheduled, 37 reboot
needed, 41 reboot failed, 42 audit mode failure, 213 Chef client upgraded.
35 and 37 count as success with a warning (unless ``reboot_is_failure``);
213 counts as success.

Only one chef-client runs at a time on a node (``Chef::RunLock``, a flock
on ``chef-client-running.pid``).  By default a second chef-client logs
``Chef Infra Client <pid> is running, will wait for it to finish and then
run.`` and blocks; with ``--run-lock-timeout`` (or ``run_lock_timeout`` in
client.rb) it gives up with ``Chef::Exceptions::RunLockTimeout: Unable to
acquire lock. Waited N seconds for <pid> to release.`` and exits non-zero.
Either way escalator keeps trying until the step's timeout: a blocked run
simply keeps running, a RunLockTimeout exit is retried after a pause.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..config import ChefOptions

SUCCESS = 0
REBOOT_SCHEDULED = 35
REBOOT_NEEDED = 37
CLIENT_UPGRADED = 213

#: What chef-client prints when another run holds the lock and it gave up.
LOCK_TIMEOUT_MARK = "Unable to acquire lock"
#: What chef-client prints while it blocks on another run's lock.
LOCK_WAIT_MARK = "will wait for it to finish and then run"


def chef_argv(opts: ChefOptions) -> List[str]:
    """chef-client's argv (unquoted): ``-o``, ``-j``, ``-E``, then extra_args."""
    argv = [opts.chef_client]
    if opts.run_list:
        argv += ["-o", ",".join(opts.run_list)]
    if opts.json_attribs:
        argv += ["-j", opts.json_attribs]
    if opts.environment:
        argv += ["-E", opts.environment]
    argv += list(opts.extra_args)
    return argv


def quoted(argv: List[str]) -> List[str]:
    return [shlex.quote(a) for a in argv]


@dataclass(frozen=True)
class Verdict:
    ok_exits: Tuple[int, ...]
    warning: Optional[str] = None
    error: Optional[str] = None


def judge(exit: Optional[int], opts: ChefOptions) -> Verdict:
    """Interpret chef-client's exit status per RFC 062."""
    ok_exits: Tuple[int, ...] = (SUCCESS, CLIENT_UPGRADED)
    if not opts.reboot_is_failure:
        ok_exits += (REBOOT_SCHEDULED, REBOOT_NEEDED)
    what = {REBOOT_SCHEDULED: "reboot scheduled", REBOOT_NEEDED: "reboot needed"}.get(exit or 0)
    if what and opts.reboot_is_failure:
        return Verdict(ok_exits, error=f"chef-client exit {exit}: {what} "
                                       "(reboot_is_failure is set)")
    if what:
        return Verdict(ok_exits, warning=f"chef-client exit {exit}: {what}")
    if exit == CLIENT_UPGRADED:
        return Verdict(ok_exits, warning="chef-client exit 213: Chef client upgraded itself")
    return Verdict(ok_exits)


def lock_contended(exit: Optional[int], output: str) -> bool:
    """True when this attempt failed only because another chef-client run held the lock."""
    return exit not in (None, SUCCESS, REBOOT_SCHEDULED, REBOOT_NEEDED, CLIENT_UPGRADED) \
        and LOCK_TIMEOUT_MARK in output


def waiting_on_lock(output: str) -> bool:
    return LOCK_WAIT_MARK in output or LOCK_TIMEOUT_MARK in output
