"""chef steps, locally and over a real sshd, with tests/fake-chef-client standing in for chef-client."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import List, Optional

import pytest

from escalator_handlers.config import ChefOptions, SshOptions, Step
from escalator_handlers.steps import StepRunner

FAKE = Path(__file__).with_name("fake-chef-client")


class FakeChef:
    """A private copy of the stand-in, with its settings file next to it."""

    def __init__(self, d: Path):
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / "chef-client"
        shutil.copy(FAKE, self.path)
        self.log = d / "argv.log"
        self.conf = d / "fake-chef.env"
        self.set()

    def set(self, **settings: object) -> None:
        lines = [f"FAKE_CHEF_LOG={self.log}"] + [f"FAKE_CHEF_{k.upper()}={v}"
                                                  for k, v in settings.items()]
        self.conf.write_text("\n".join(lines) + "\n")

    def runs(self) -> List[List[str]]:
        if not self.log.exists():
            return []
        return [line.split("\0")[:-1] for line in self.log.read_text().splitlines()]


@pytest.fixture
def chef(tmp_path) -> FakeChef:
    return FakeChef(tmp_path / "chefbin")


def chef_step(fake: FakeChef, *, ssh: Optional[SshOptions] = None, timeout: float = 20,
              foreach: Optional[str] = None, **opts: object) -> Step:
    base = dict(run_list=("role[app]", "recipe[web::deploy]"), chef_client=str(fake.path))
    base.update(opts)
    return Step(kind="chef", where="levels[4].steps[0]", chef=ChefOptions(**base),  # type: ignore[arg-type]
                ssh=ssh, timeout=timeout, foreach=foreach)


@pytest.fixture
def runner():
    with StepRunner(lock_retry_interval=0.05, kill_grace=0.5) as r:
        yield r


def test_local_chef_run_passes_run_list_json_and_environment(chef, runner, tmp_path):
    attrs = tmp_path / "attrs.json"
    attrs.write_text('{"app": {"version": "1.2"}}')
    step = chef_step(chef, json_attribs=str(attrs), environment="production",
                     extra_args=("--no-color", "-l", "warn"))
    r = runner.run(step, {"level": "converge"})
    assert r.ok and r.exit == 0 and r.warning is None, r
    assert chef.runs() == [["-o", "role[app],recipe[web::deploy]", "-j", str(attrs),
                            "-E", "production", "--no-color", "-l", "warn"]]
    assert "Starting Chef Infra Client" in r.output
    assert "Chef Infra Client finished, 1/3 resources updated" in r.output
    assert r.command == (f"{chef.path} -o 'role[app],recipe[web::deploy]' -j {attrs} "
                         "-E production --no-color -l warn")


@pytest.mark.parametrize("code, ok, warning", [
    (0, True, None),
    (35, True, "chef-client exit 35: reboot scheduled"),
    (37, True, "chef-client exit 37: reboot needed"),
    (213, True, "chef-client exit 213: Chef client upgraded itself"),
    (1, False, None),
    (41, False, None),
])
def test_exit_codes_follow_rfc_062(chef, runner, code, ok, warning):
    chef.set(exit=code)
    r = runner.run(chef_step(chef), {})
    assert (r.ok, r.exit, r.warning, r.error) == (ok, code, warning, None)


@pytest.mark.parametrize("code", [35, 37])
def test_reboot_can_be_configured_as_failure(chef, runner, code):
    chef.set(exit=code)
    r = runner.run(chef_step(chef, reboot_is_failure=True), {})
    assert not r.ok and r.exit == code
    assert r.error.startswith(f"chef-client exit {code}: reboot") and "reboot_is_failure" in r.error


def test_lock_held_by_another_run_is_retried_until_free(chef, runner):
    chef.set(locked=2)
    r = runner.run(chef_step(chef), {})
    assert r.ok and r.exit == 0 and r.attempts == 3, r
    assert r.output.count("Unable to acquire lock") == 2
    assert r.output.count("[escalator] attempt") == 2
    assert "Chef Infra Client finished" in r.output
    assert len(chef.runs()) == 3


def test_lock_never_released_fails_at_the_step_timeout(chef, runner):
    chef.set(locked=100000)
    t0 = time.monotonic()
    r = runner.run(chef_step(chef, timeout=0.6), {})
    took = time.monotonic() - t0
    assert not r.ok and r.attempts > 2
    assert r.error == ("timed out after 0.6s while another chef-client run held the lock "
                       f"({r.attempts} attempts)")
    assert 0.5 < took < 2.0, took


def test_chef_blocking_on_the_lock_times_out_with_a_clear_reason(chef, runner):
    chef.set(block=30)
    r = runner.run(chef_step(chef, timeout=0.5), {})
    assert r.exit is None
    assert r.error == "timed out after 0.5s while another chef-client run held the lock (1 attempt)"


def test_other_failures_are_not_retried(chef, runner):
    chef.set(exit=1)
    r = runner.run(chef_step(chef, run_list=("bogus[x",)), {})
    assert not r.ok and r.exit == 1 and r.attempts == 1
    assert "Unable to create Chef::RunList::RunListItem" in r.output


def test_missing_chef_client_binary(runner, tmp_path):
    step = Step(kind="chef", where="w", chef=ChefOptions(chef_client=str(tmp_path / "none")))
    r = runner.run(step, {})
    assert r.exit is None and r.error.startswith(f"cannot start {tmp_path / 'none'}")


def test_local_sudo(chef, runner):
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed on this machine (Debian package sudo)")
    chef.set(exit=0)
    r = runner.run(chef_step(chef, sudo=True), {})
    assert r.ok, r
    assert r.command.startswith("sudo -n -- ")
    assert chef.runs()[0][:2] == ["-o", "role[app],recipe[web::deploy]"]


@pytest.mark.slow
def test_chef_over_ssh_with_the_stand_in(sshd, chef, runner):
    chef.set(exit=35)
    step = chef_step(chef, ssh=sshd.options(host="{host}"), foreach="host", environment="prod")
    r = runner.run(step, {"host": "127.0.0.2", "hosts": ["127.0.0.2"]})
    assert r.ok and r.exit == 35 and r.warning == "chef-client exit 35: reboot scheduled", r
    assert r.host == "127.0.0.2"
    assert chef.runs() == [["-o", "role[app],recipe[web::deploy]", "-E", "prod"]]
    assert r.command == (f"ssh {sshd.user}@127.0.0.2:{sshd.port}: {chef.path} "
                         "-o 'role[app],recipe[web::deploy]' -E prod")
    assert "Chef Infra Client finished" in r.output


@pytest.mark.slow
def test_chef_over_ssh_exit_codes_env_and_lock_retry(sshd, chef, runner):
    opts = sshd.options(env={"FAKE_CHEF_EXIT": "1"})
    r = runner.run(chef_step(chef, ssh=opts), {})
    assert not r.ok and r.exit == 1 and r.error is None
    chef.set(locked=1)
    r = runner.run(chef_step(chef, ssh=sshd.options()), {})
    assert r.ok and r.attempts == 2, r
    chef.set(exit=37)
    r = runner.run(chef_step(chef, ssh=sshd.options(), reboot_is_failure=True), {})
    assert not r.ok and r.exit == 37 and "reboot needed" in r.error


@pytest.mark.slow
def test_chef_over_ssh_with_sudo(sshd, chef, runner):
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed on this machine (Debian package sudo)")
    if sshd.user != "root":
        pytest.skip("the test sshd logs in as a non-root user without sudo rights")
    r = runner.run(chef_step(chef, ssh=sshd.options(sudo=True)), {})
    assert r.ok and "sudo -n -- " in r.command, r
    assert len(chef.runs()) == 1


def test_hostile_chef_host_is_refused(chef, runner, tmp_path):
    mark = tmp_path / "PWNED"
    step = chef_step(chef, ssh=SshOptions(host="{host}", key_file="/nonexistent"), foreach="host")
    r = runner.run(step, {"host": f"web01;touch {mark}"})
    assert r.exit is None and r.error.startswith("invalid host 'web01;touch ")
    assert chef.runs() == [] and not mark.exists()
