"""StepRunner: turn a configured Step plus template values into a StepResult.

One runner serves one run: it owns the SSH connection pool (so every step
of the run reuses one connection per target) and the run's cancel event.
``run`` never raises for a failing step -- bad templates, refused host
keys, timeouts all come back as a StepResult with ``error`` set -- so the
collector can journal every outcome the same way.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ..config import SshOptions, Step
from ..errors import StepError
from ..system import REAL, System
from . import busy, chef as chefmod
from .result import StepResult, TailBuffer
from .shell import Gate, Outcome, fmt_seconds, run_process, stop_message
from .remote import display_command, exec_command, remote_command
from .target import Target, parse_jump
from .template import (COMMAND_MAX, check_user, render_command, render_dry, render_host, size, spill_env,
                       values_env)

log = logging.getLogger("escalator_handlers.steps")

SHELL = "/bin/sh"


@dataclass(frozen=True)
class _Plan:
    """A step made concrete: either a local argv or a remote command on a target."""

    display: str
    argv: Optional[List[str]] = None
    target: Optional[Target] = None
    remote: Optional[str] = None
    env: Dict[str, str] = field(default_factory=dict)
    script: Optional[str] = None      # a command run from a file (too long for one argument)


class StepRunner:
    """Runs shell, ssh and chef steps for one run; close it (or use ``with``) afterwards.

    ``env`` is laid over ``os.environ`` for local processes; ``cancel``, when
    set, stops running steps (their process group is killed, their SSH
    channel signalled and closed) and keeps new ones from starting; ``gate``
    is asked before each process or command starts (see ``run_process``).
    """

    def __init__(self, *, env: Optional[Mapping[str, str]] = None,
                 cancel: Optional[threading.Event] = None, kill_grace: float = 2.0,
                 lock_retry_interval: float = 5.0, gate: Optional[Gate] = None,
                 system: System = REAL) -> None:
        self._env = dict(env or {})
        self._system = system
        self._gate = gate
        self._cancel = cancel if cancel is not None else threading.Event()
        self.kill_grace = kill_grace
        self.lock_retry_interval = lock_retry_interval
        self._pool: Any = None
        self._files: Optional[str] = None     # the run's private directory for spilled values
        self._files_lock = threading.Lock()
        self._written = 0

    def __enter__(self) -> "StepRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pool(self) -> Any:
        """The ssh connection pool, made (and paramiko imported) on first use."""
        if self._pool is None:
            from .ssh import SshPool

            self._pool = SshPool()
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._files is not None:
            import shutil

            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None

    def _write(self, name: str, text: str, unique: bool = False) -> str:
        """A file holding ``text`` in this runner's private directory (made on first use,
        removed by ``close``); the same text is written once per run, unless ``unique``."""
        import hashlib
        import tempfile

        data = text.encode("utf-8", "surrogateescape")
        with self._files_lock:
            if self._files is None:
                self._files = tempfile.mkdtemp(prefix="escalator-step-")  # mode 0700
            self._written += 1
            tag = str(self._written) if unique else hashlib.sha256(data).hexdigest()[:16]
            path = os.path.join(self._files, f"{name.lower()}-{tag}")
            if not os.path.exists(path):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
        return path

    # -- public -----------------------------------------------------------

    def render(self, step: Step, values: Mapping[str, Any]) -> str:
        """The would-be command line (dry runs).  Never raises: a step that
        could not run renders as ``(would fail: why)``."""
        if step.kind == "shell" and step.command is not None:
            return render_dry(step.command, values, step.raw)  # what _plan displays (DryRunner too)
        try:
            return self._plan(step, values, display_only=True).display
        except StepError as exc:
            return f"(would fail: {exc})"

    def run(self, step: Step, values: Mapping[str, Any]) -> StepResult:
        """Execute ``step`` once with ``values``."""
        host = values.get("host") if step.foreach == "host" else None
        return self._run(step, values, host)

    def run_foreach(self, step: Step, hosts: Sequence[str], values: Mapping[str, Any],
                    on_result: Optional[Callable[[StepResult], None]] = None) -> List[StepResult]:
        """Run ``step`` once per host (``values['host'] = h``), ``step.concurrency`` at a time.

        Results come back in ``hosts`` order; ``on_result`` is called in the
        caller's thread as each one finishes.  A failure on one host does not
        stop the others (they are independent targets); cancel does.
        """
        hosts = list(hosts)
        if not hosts:
            return []
        results: List[Optional[StepResult]] = [None] * len(hosts)

        def one(h: str) -> StepResult:
            if self._cancel.is_set():
                return StepResult(step.where, h, step.label, None, 0.0, "",
                                  error="cancelled before it started")
            return self._run(step, {**values, "host": h}, h)

        workers = max(1, min(step.concurrency, len(hosts)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="escalator-step") as ex:
            futures = {ex.submit(one, h): i for i, h in enumerate(hosts)}
            for fut in as_completed(futures):
                r = fut.result()
                results[futures[fut]] = r
                if on_result is not None:
                    on_result(r)
        return [r for r in results if r is not None]

    # -- internals --------------------------------------------------------

    def _run(self, step: Step, values: Mapping[str, Any], host: Optional[str]) -> StepResult:
        start = time.monotonic()
        try:
            plan = self._plan(step, values)
        except StepError as exc:
            return StepResult(step.where, host, step.label, None, time.monotonic() - start, "",
                              error=str(exc))
        tail = TailBuffer()
        if step.kind == "chef" or step.busy_check is not None:
            why = busy.wait_free(step, self._probes(step, values), tail, self._cancel.wait)
            if why:
                return StepResult(step.where, host, plan.display, None, time.monotonic() - start,
                                  tail.text(), skipped=why)
        try:
            if step.kind == "chef":
                return self._run_chef(step, plan, host, start, tail)
            out = self._execute(plan, step.timeout, tail)
        except Exception as exc:  # a bug must fail the step, not take the collector down
            log.exception("step %s crashed", step.where)
            out = Outcome(None, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if plan.script is not None:  # one per execution: a foreach of thousands keeps none
                os.unlink(plan.script)
        return StepResult(step.where, host, plan.display, out.exit, time.monotonic() - start,
                          tail.text(), error=out.error)

    def _execute(self, plan: _Plan, timeout: float, tail: TailBuffer) -> Outcome:
        if plan.argv is not None:
            env = {**os.environ, **self._env, **plan.env}
            return run_process(plan.argv, env=env, timeout=timeout, tail=tail,
                               cancel=self._cancel, kill_grace=self.kill_grace, gate=self._gate, system=self._system)
        assert plan.target is not None and plan.remote is not None
        why = self._gate() if self._gate is not None else None
        if why:
            return Outcome(None, f"not started: {why}")
        try:
            client = self.pool.client(plan.target)
        except StepError as exc:
            return Outcome(None, str(exc))
        return exec_command(client, plan.target, plan.remote, timeout=timeout, tail=tail,
                            cancel=self._cancel, kill_grace=self.kill_grace)

    def _probes(self, step: Step, values: Mapping[str, Any]) -> List[busy.Probe]:
        """What to look at before ``step`` on a host: chef-client's run lock, the level's busy_check."""
        probes: List[busy.Probe] = []
        if step.kind == "chef" and step.chef is not None:
            script = busy.lock_script(step.chef.run_lock)
            if step.ssh is not None:
                opts = step.ssh
                sudo = opts.sudo or step.chef.sudo
                target = _target(opts, values)
                lock = _Plan("", target=target, remote=remote_command([SHELL, "-c", shlex.quote(script)],
                                                                     sudo=sudo, env={}))
            else:
                argv = [SHELL, "-c", script]
                if step.chef.sudo is True:
                    argv = ["sudo", "-n", "--"] + argv
                elif step.chef.sudo:
                    argv = ["sudo", "-n", "-u", check_user(str(step.chef.sudo)), "--"] + argv
                lock = _Plan("", argv=argv)
            probes.append((f"chef-client's run lock {step.chef.run_lock} is held", (busy.LOCK_HELD,),
                           lambda: self._look(lock, step)))
        if step.busy_check is not None:
            check = step.busy_check
            try:
                plan: Optional[_Plan] = self._plan(check, values)
            except StepError:
                plan = None
            if plan is not None:
                probes.append((f"busy_check {plan.display}", None,
                               lambda: self._look(plan, check)))  # type: ignore[arg-type]
        return probes

    def _look(self, plan: _Plan, step: Step) -> Any:
        tail = TailBuffer()
        out = self._execute(plan, min(step.timeout, 60.0), tail)
        return (None if out.error or out.stopped else out.exit), tail.text()

    def _run_chef(self, step: Step, plan: _Plan, host: Optional[str], start: float,
                  total: TailBuffer) -> StepResult:
        assert step.chef is not None
        deadline = start + step.timeout
        attempts = 0
        error: Optional[str] = None
        lock_seen = False

        def lock_error() -> str:
            return (f"timed out after {fmt_seconds(step.timeout)} while another chef-client run "
                    f"held the lock ({attempts} attempt{'s' if attempts > 1 else ''})")

        while True:
            attempts += 1
            tail = TailBuffer()
            out = self._execute(plan, max(0.0, deadline - time.monotonic()), tail)
            text = tail.text()
            total.add(text.encode("utf-8"))
            if out.stopped:
                error = stop_message(out.stopped, step.timeout)
                if out.stopped == "timeout" and (lock_seen or chefmod.waiting_on_lock(text)):
                    error = lock_error()
                break
            error = out.error
            if error is None and chefmod.lock_contended(out.exit, text):
                lock_seen = True
                if deadline - time.monotonic() <= self.lock_retry_interval:
                    error = lock_error()  # no time left for another attempt
                    break
                total.note(f"[escalator] attempt {attempts}: another chef-client run holds "
                           f"the lock; retrying in {self.lock_retry_interval:g}s")
                if self._cancel.wait(self.lock_retry_interval):
                    error = "cancelled while waiting for another chef-client run's lock"
                    break
                continue
            break
        verdict = chefmod.judge(out.exit, step.chef)
        return StepResult(step.where, host, plan.display, out.exit, time.monotonic() - start,
                          total.text(), error=error or verdict.error, warning=verdict.warning,
                          ok_exits=verdict.ok_exits, attempts=attempts)

    def _plan(self, step: Step, values: Mapping[str, Any], display_only: bool = False) -> _Plan:
        # A dry run shows only the command line: the ESCALATOR_* environment
        # (which lists every failing check, once per host of a foreach) is
        # left out, and so is a remote command's copy of it -- but the step's own
        # ``env`` still goes through the same checks, so it fails alike.
        env = {} if display_only else values_env(values, step.raw)
        if step.kind == "shell":
            rendered = render_command(_need(step.command, step, "command"), values, step.raw)
            if display_only:
                return _Plan(rendered, argv=[SHELL, "-c", rendered])
            env = spill_env(env, values, step.raw, self._write)
            if size(rendered) > COMMAND_MAX:
                # Over what one argument may be: the shell reads the command from a file instead.
                script = self._write("command", rendered + "\n", unique=True)
                return _Plan(_clipped(rendered), argv=[SHELL, script], env=env, script=script)
            return _Plan(rendered, argv=[SHELL, "-c", rendered], env=env)
        if step.kind == "ssh":
            opts = _need(step.ssh, step, "ssh options")
            target = _target(opts, values)
            rendered = render_command(_need(step.command, step, "command"), values, step.raw)
            words = [SHELL, "-c", shlex.quote(rendered)]
            env = spill_env(env, values, step.raw, None)  # a file here is no file there: left empty
            remote = remote_command(words, sudo=opts.sudo, env={**env, **opts.env})
            _fits(remote, step)
            return _Plan(display_command(target, [rendered], sudo=opts.sudo, env=opts.env),
                         target=target, remote=remote)
        if step.kind == "chef":
            copts = _need(step.chef, step, "chef options")
            argv = chefmod.chef_argv(copts)
            if step.ssh is not None:
                opts = step.ssh
                sudo = opts.sudo or copts.sudo
                target = _target(opts, values)
                words = chefmod.quoted(argv)
                env = spill_env(env, values, step.raw, None)
                remote = remote_command(words, sudo=sudo, env={**env, **opts.env})
                _fits(remote, step)
                return _Plan(display_command(target, words, sudo=sudo, env=opts.env),
                             target=target, remote=remote)
            if copts.sudo is True:
                argv = ["sudo", "-n", "--"] + argv
            elif copts.sudo:
                argv = ["sudo", "-n", "-u", check_user(str(copts.sudo)), "--"] + argv
            env = spill_env(env, values, step.raw, None if display_only else self._write)
            return _Plan(" ".join(chefmod.quoted(argv)), argv=argv, env=env)
        raise StepError(f"{step.where}: unknown step kind {step.kind!r} "
                        "(expected shell, ssh or chef)")


def _clipped(command: str, keep: int = 4096) -> str:
    """What the journal shows of a command too long for one argument."""
    return f"{command[:keep]} [... {len(command) - keep} more characters, run from a file]"


def _fits(remote: str, step: Step) -> None:
    """Refuse a remote command over what sshd can hand its shell as one argument."""
    if size(remote) > COMMAND_MAX:
        raise StepError(f"{step.where}: the remote command would be {size(remote)} bytes, over the "
                        f"{COMMAND_MAX} an ssh command may be (a {{hosts}} or {{checks}} list this long "
                        "belongs in a script that reads them); nothing was run")


def _need(value: Any, step: Step, what: str) -> Any:
    if value is None:
        raise StepError(f"{step.where}: {step.kind} step has no {what}")
    return value


def _target(opts: SshOptions, values: Mapping[str, Any]) -> Target:
    host = render_host(opts.host, values)
    if opts.user:
        check_user(opts.user)
    base = Target(host=host, port=int(opts.port), user=opts.user, key_file=opts.key_file,
                  passphrase_file=opts.passphrase_file, known_hosts=opts.known_hosts,
                  connect_timeout=float(opts.connect_timeout))
    if opts.proxy_jump:
        return Target(**{**base.__dict__, "via": parse_jump(opts.proxy_jump, base)})
    return base
