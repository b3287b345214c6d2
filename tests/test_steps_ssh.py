"""ssh steps against a real OpenSSH sshd (see sshd_fixtures)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from escalator_handlers.config import Step
from escalator_handlers.steps import StepRunner
from escalator_handlers.steps.template import one_line
from sshd_fixtures import free_port
from test_steps_shell import HOSTILE, alive, wait_for_file

pytestmark = pytest.mark.slow


def ssh_step(server, command: str, *, timeout: float = 20.0, foreach=None, concurrency=10,
             **opts) -> Step:
    return Step(kind="ssh", where="levels[3].steps[0]", command=command,
                ssh=server.options(**opts), timeout=timeout, foreach=foreach,
                concurrency=concurrency)


@pytest.fixture
def runner():
    with StepRunner(kill_grace=0.5) as r:
        yield r


def test_success_runs_the_command_remotely(sshd, runner):
    r = runner.run(ssh_step(sshd, "echo hello from $(hostname) >&2; echo {level}"),
                   {"level": "deploy now", "hosts": []})
    assert r.ok and r.exit == 0 and r.error is None, r
    assert r.output.startswith("hello from ") and r.output.endswith("deploy now\n")
    assert r.command == (f"ssh {sshd.user}@127.0.0.1:{sshd.port}: "
                         "echo hello from $(hostname) >&2; echo 'deploy now'")


def test_nonzero_exit_status_is_propagated(sshd, runner):
    r = runner.run(ssh_step(sshd, "echo failing; exit 7"), {})
    assert not r.ok and r.exit == 7 and r.error is None
    assert r.output == "failing\n"


def test_timeout_closes_the_channel_and_fails(sshd, runner):
    t0 = time.monotonic()
    # Root logins cannot be signalled (OpenSSH refuses), so keep the leftover short.
    r = runner.run(ssh_step(sshd, "sleep 4", timeout=0.5), {})
    assert r.exit is None and r.error.startswith("timed out after 0.5s"), r
    assert time.monotonic() - t0 < 3
    # The connection survives for the next step of the run.
    before = sshd.accepted()
    assert runner.run(ssh_step(sshd, "true"), {}).ok
    assert sshd.accepted() == before


def test_timeout_signals_the_remote_process_group(user_sshd, runner):
    # OpenSSH delivers the "signal" request only for non-root logins.
    pidfile = user_sshd.dir / f"sleeper-{time.monotonic_ns()}.pid"
    step = ssh_step(user_sshd, f"sh -c 'sleep 300' & echo $! > {pidfile}; wait", timeout=0.5)
    r = runner.run(step, {})
    assert r.exit is None and r.error.startswith("timed out after 0.5s")
    pid = int(wait_for_file(pidfile))
    end = time.monotonic() + 3
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(pid), "the remote background process survived the timeout"


def test_stdin_is_closed_and_no_pty(sshd, runner):
    r = runner.run(ssh_step(sshd, "cat; read x; echo read=$?; [ -t 1 ] && echo tty || echo notty",
                            timeout=5), {})
    assert r.output == "read=1\nnotty\n"


def test_unknown_host_key_is_refused(sshd, runner, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.ports[1]} {sshd.host_key_line}\n")  # other port only
    mark = tmp_path / "ran"
    r = runner.run(ssh_step(sshd, f"touch {mark}", known_hosts=str(kh)), {})
    assert not r.ok and r.exit is None
    assert r.error.startswith(f"unknown host key for 127.0.0.1:{sshd.port} (not in {kh}); "
                              "add it with ssh-keyscan after verifying it"), r.error
    assert "SHA256:" in r.error
    assert not mark.exists()
    assert kh.read_text().count("\n") == 1  # never written to


def test_changed_host_key_is_refused(sshd, runner, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"
    fake = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    kh.write_text(f"[127.0.0.1]:{sshd.port} {fake}\n")
    mark = tmp_path / "ran"
    r = runner.run(ssh_step(sshd, f"touch {mark}", known_hosts=str(kh)), {})
    assert not r.ok and r.exit is None
    assert f"host key for 127.0.0.1:{sshd.port} CHANGED" in r.error, r.error
    assert "refusing to connect" in r.error
    assert not mark.exists()


def test_missing_known_hosts_file_is_a_clear_failure(sshd, runner, tmp_path):
    r = runner.run(ssh_step(sshd, "true", known_hosts=str(tmp_path / "nope")), {})
    assert r.error == (f"known_hosts file {tmp_path / 'nope'} does not exist: cannot verify the "
                       f"host key of 127.0.0.1:{sshd.port}; nothing was run")


def test_wrong_client_key_is_refused(sshd, runner):
    r = runner.run(ssh_step(sshd, "true", key_file=sshd.wrong_key_file), {})
    assert not r.ok and r.exit is None
    assert r.error == (f"authentication failed for {sshd.user}@127.0.0.1:{sshd.port} with key "
                       f"{sshd.wrong_key_file} (is its public key in authorized_keys?)")


def test_connection_refused_names_host_and_port(sshd, runner):
    port = free_port()
    r = runner.run(ssh_step(sshd, "true", port=port), {})
    assert r.error == f"connection refused: 127.0.0.1:{port}"


def test_encrypted_key_needs_passphrase_file_and_secrets_stay_out(sshd, runner, tmp_path):
    secret = Path(sshd.passphrase_file).read_text().strip()
    r = runner.run(ssh_step(sshd, "echo in", key_file=sshd.enc_key_file,
                            passphrase_file=sshd.passphrase_file), {})
    assert r.ok and r.output == "in\n", r
    r = runner.run(ssh_step(sshd, "true", key_file=sshd.enc_key_file), {})
    assert r.error == f"key_file {sshd.enc_key_file} is encrypted: set passphrase_file"
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the passphrase\n")
    with StepRunner() as fresh:
        bad = fresh.run(ssh_step(sshd, "true", key_file=sshd.enc_key_file,
                                 passphrase_file=str(wrong)), {})
    assert bad.error.startswith(f"cannot load key_file {sshd.enc_key_file}"), bad.error
    for result in (r, bad):
        assert secret not in repr(result) and "not the passphrase" not in repr(result)
        assert "PRIVATE KEY" not in repr(result)


def test_sudo_runs_the_command_as_another_user(sshd, runner):
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed on this machine (Debian package sudo)")
    if sshd.user != "root":
        pytest.skip("the test sshd logs in as a non-root user without sudo rights")
    r = runner.run(ssh_step(sshd, "id -un; echo $ESCALATOR_LEVEL", sudo="nobody"),
                   {"level": "vm"})
    assert r.ok and r.output == "nobody\nvm\n", r
    assert "sudo -n -u nobody --" in r.command
    r = runner.run(ssh_step(sshd, "id -u", sudo=True), {})
    assert r.ok and r.output == "0\n"


def test_many_steps_share_one_connection(sshd, runner):
    before = sshd.accepted()
    t0 = time.monotonic()
    results = [runner.run(ssh_step(sshd, f"echo {i}"), {}) for i in range(20)]
    took = time.monotonic() - t0
    assert [r.output for r in results] == [f"{i}\n" for i in range(20)]
    assert sshd.accepted() - before == 1
    assert runner.pool.opened == 1
    print(f"20 ssh steps over one connection: {took:.2f}s")


def test_fan_out_over_many_targets_in_parallel(sshd, runner):
    hosts = list(sshd.addresses)  # 8 loopback addresses, each its own target
    step = ssh_step(sshd, "s=$(date +%s.%N); sleep 0.5; echo $s $(date +%s.%N)",
                    host="{host}", foreach="host", concurrency=4)
    before = sshd.accepted()
    t0 = time.monotonic()
    seen = []
    results = runner.run_foreach(step, hosts, {"hosts": hosts}, on_result=seen.append)
    took = time.monotonic() - t0
    assert [r.host for r in results] == hosts
    assert all(r.ok for r in results), [r.error for r in results]
    assert len(seen) == len(hosts)
    assert sshd.accepted() - before == len(hosts)  # one connection per target
    spans = [tuple(map(float, r.output.split())) for r in results]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 4, spans
    assert took < 0.5 * len(hosts), took
    print(f"fan-out to {len(hosts)} targets, concurrency 4: {took:.2f}s")


def test_proxy_jump_through_a_bastion(sshd, runner):
    before = sshd.accepted()
    step = ssh_step(sshd, "echo via bastion; echo $SSH_CONNECTION", host="127.0.0.2",
                    port=sshd.ports[1], proxy_jump=f"{sshd.user}@127.0.0.1:{sshd.port}")
    r = runner.run(step, {})
    assert r.ok, r
    assert r.output.startswith("via bastion\n")
    assert r.output.split()[-1] == str(sshd.ports[1])  # sshd saw the tunnelled target port
    assert sshd.accepted() - before == 2               # bastion + target
    assert runner.run(step, {}).ok and sshd.accepted() - before == 2  # both reused
    closed = free_port()
    r = runner.run(ssh_step(sshd, "true", host="127.0.0.2", port=closed,
                            proxy_jump=f"127.0.0.1:{sshd.port}"), {})
    assert r.error.startswith(f"bastion 127.0.0.1:{sshd.port} could not connect to "
                              f"127.0.0.2:{closed}"), r.error


def test_env_and_escalator_variables_reach_the_remote_command(sshd, runner, tmp_path):
    mark = tmp_path / "PWNED"
    step = ssh_step(sshd, 'printf "%s|" "$GREETING" "$ESCALATOR_HOST" "$ESCALATOR_SUMMARY"',
                    env={"GREETING": f"hi; touch {mark}"}, host="{host}", foreach="host")
    r = runner.run(step, {"host": "127.0.0.3", "summary": f"$(touch {mark})", "hosts": []})
    assert r.ok, r
    assert r.output == f"hi; touch {mark}|127.0.0.3|$(touch {mark})|"
    assert "GREETING=***" in r.command and "touch" not in r.command
    assert not mark.exists()


def test_hostile_template_values_arrive_as_literal_text(sshd, runner, tmp_path):
    mark = tmp_path / "PWNED"
    values = {"hosts": [h.format(mark=mark) for h in HOSTILE],
              "summary": HOSTILE[4].format(mark=mark), "level": HOSTILE[2].format(mark=mark),
              "checks": [HOSTILE[1].format(mark=mark), HOSTILE[3], "web01/HTTP"]}
    out = tmp_path / "out"
    r = runner.run(ssh_step(sshd, f"printf '%s\\0' {{hosts}} {{summary}} {{level}} {{checks}} "
                                  f"> {out}", sudo=shutil.which("sudo") is not None
                            and sshd.user == "root"), values)
    assert r.ok, r
    assert not mark.exists()
    words = [w.decode() for w in out.read_bytes().split(b"\0")[:-1]]
    # One line each (control characters in caret notation), literal otherwise.
    assert words == [one_line(v) for v in (*values["hosts"], values["summary"], values["level"], *values["checks"])]


def test_hostile_host_names_are_refused_before_connecting(sshd, runner, tmp_path):
    mark = tmp_path / "PWNED"
    bad = [f"x;touch {mark}", "-oProxyCommand=touch " + str(mark), "a b", "$(touch x)", ""]
    step = ssh_step(sshd, f"touch {mark}", host="{host}", foreach="host")
    before = sshd.accepted()
    results = runner.run_foreach(step, bad, {"hosts": bad})
    assert all(r.exit is None and r.error.startswith("invalid host ") for r in results), results
    assert "nothing was run" in results[0].error
    assert sshd.accepted() == before and not mark.exists()


def test_unreachable_bastion_names_both_ends(sshd, runner):
    closed = free_port()
    r = runner.run(ssh_step(sshd, "true", host="127.0.0.2", proxy_jump=f"127.0.0.1:{closed}"), {})
    assert r.error == (f"connection refused: 127.0.0.1:{closed} "
                       f"(proxy_jump bastion for 127.0.0.2:{sshd.port})")


def test_known_hosts_markers_and_junk_lines_are_skipped_like_openssh(sshd, runner, tmp_path):
    kh = tmp_path / "known_hosts"
    good = f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}"
    kh.write_text(f"# comment\n@cert-authority *.example.com {sshd.host_key_line}\n"
                  f"garbage line with !!! not-base64\n{good}\n")
    assert runner.run(ssh_step(sshd, "true", known_hosts=str(kh)), {}).ok
    revoked = tmp_path / "revoked"
    revoked.write_text(f"@revoked [127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")
    with StepRunner() as fresh:
        r = fresh.run(ssh_step(sshd, "true", known_hosts=str(revoked)), {})
    assert r.error.startswith(f"unknown host key for 127.0.0.1:{sshd.port}"), r.error


def test_hashed_known_hosts_entries_work(sshd, runner, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert kh.read_text().startswith("|1|")
    assert runner.run(ssh_step(sshd, "echo hashed", known_hosts=str(kh)), {}).output == "hashed\n"
