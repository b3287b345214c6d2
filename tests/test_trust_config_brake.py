"""The brake with a config that does not parse, and ``validate`` on secret files others can read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from spool_fixtures import ESCALATOR, handler_env


def escalator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ESCALATOR, *args], capture_output=True, text=True, timeout=30, cwd="/",
                          env=handler_env())


def test_pause_and_status_work_when_only_the_path_lines_of_a_broken_yaml_are_intact(tmp_path: Path) -> None:
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"spool: {tmp_path}/spool   # where the handlers write\n"
                    f"journal: \"{tmp_path}/state/journal.jsonl\"\nlevels: [unclosed\n")
    r = escalator("pause", "--config", str(conf), "--reason", "3am")
    assert r.returncode == 0, r.stderr
    assert f"{conf} is not a valid config" in r.stderr and "YAML syntax error" in r.stderr
    (pause,) = [json.loads(x) for x in (tmp_path / "state/journal.jsonl").read_text().splitlines()
                if json.loads(x)["kind"] == "pause"]
    assert pause["reason"] == "3am"
    r = escalator("status", "--config", str(conf))
    assert r.returncode == 0 and "PAUSED: 3am" in r.stdout, r.stdout + r.stderr
    assert escalator("resume", "--config", str(conf)).returncode == 0


def test_a_broken_yaml_without_its_paths_names_the_options_that_reach_the_brake(tmp_path: Path) -> None:
    conf = tmp_path / "escalator.yaml"
    conf.write_text("  spool: [nested\nlevels: [unclosed\n")
    r = escalator("pause", "--config", str(conf))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "give them with --spool DIR --journal PATH" in r.stderr, r.stderr
    r = escalator("pause", "--config", str(conf), "--spool", str(tmp_path / "spool"),
                  "--journal", str(tmp_path / "journal.jsonl"))
    assert r.returncode == 0, r.stderr


def test_validate_warns_about_secret_files_every_user_may_read(tmp_path: Path) -> None:
    password, key, private = tmp_path / "api.password", tmp_path / "id_ed25519", tmp_path / "other_key"
    for p, mode in ((password, 0o644), (key, 0o604), (private, 0o640)):
        p.write_text("secret\n")
        p.chmod(mode)
    conf = tmp_path / "escalator.yaml"
    conf.write_text(
        f"spool: {tmp_path}/spool\njournal: {tmp_path}/journal.jsonl\n"
        "nagios:\n  icinga_api: {url: 'https://localhost:5665', user: escalator, "
        f"password_file: {password}}}\n"
        "levels:\n  - name: vm\n    steps:\n"
        f"      - {{ssh: {{host: '{{host}}', command: 'true', key_file: {key}}}, foreach: host}}\n"
        f"      - {{ssh: {{host: '{{host}}', command: 'true', key_file: {private}}}, foreach: host}}\n"
        "notify:\n  - shell: 'true'\n")
    r = escalator("validate", str(conf))
    assert r.returncode == 0, r.stderr
    assert f"warning: {password} (nagios: icinga_api: password_file) is readable by every user (mode 0644): " \
           f"chmod o-rwx {password}" in r.stderr, r.stderr
    assert f"warning: {key} (vm: ssh key_file) is readable by every user (mode 0604)" in r.stderr
    assert str(private) not in r.stderr


def test_validate_warns_about_a_state_directory_others_may_write(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o2770)
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"spool: {tmp_path}/spool\njournal: {state}/journal.jsonl\n"
                    "levels:\n  - name: vm\n    steps: [{shell: 'true'}]\nnotify:\n  - shell: 'true'\n")
    r = escalator("validate", str(conf))
    assert r.returncode == 0, r.stderr
    assert f"warning: state directory {state} is writable by others (mode 2770)" in r.stderr, r.stderr
    state.chmod(0o2750)
    assert "warning" not in escalator("validate", str(conf)).stderr
