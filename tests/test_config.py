"""Config loading and validation: the good example, defaults, lookups, and a
corpus of broken configs whose every error must be reported with its line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

from escalator_handlers.config import ChefOptions, Config, SshOptions
from escalator_handlers.config.load import (format_problems, load_config, load_config_text,
                                           parse_duration, validate)
from escalator_handlers.errors import ConfigError, ConfigProblem

CONFIGS = Path(__file__).parent / "configs"
BROKEN = sorted((CONFIGS / "broken").glob("*.yaml"))
_EXPECT = re.compile(rb"^# expect: (-|\d+): ([^:]*): (.+)$")


def expectations(path: Path) -> List[Tuple[Optional[int], str, str]]:
    """The ``# expect: LINE: KEY: fragment[ ... fragment]`` lines at the top of a corpus
    file, one per problem; ``-`` is "no line"; every fragment must be in the message."""
    out = []
    for raw in path.read_bytes().splitlines():
        m = _EXPECT.match(raw)
        if m:
            line = None if m.group(1) == b"-" else int(m.group(1))
            out.append((line, m.group(2).decode(), m.group(3).decode().strip()))
    return out


def write(tmp_path: Path, text: str, name: str = "escalator.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# -- the good example -----------------------------------------------------------

def test_design_example_loads_with_every_value():
    c = load_config(str(CONFIGS / "good" / "full.yaml"))
    assert isinstance(c, Config)
    assert c.source == str(CONFIGS / "good" / "full.yaml")
    assert (c.spool, c.journal) == ("/var/spool/escalator", "/var/lib/escalator/journal.jsonl")
    assert c.state_path == "/var/lib/escalator/state.json"
    assert (c.quiescence, c.max_delay) == (30.0, 300.0)
    assert c.state_types == ("HARD",) and c.act_in_downtime is False
    assert c.spool_mode == 0o750
    assert [lv.name for lv in c.levels] == ["vm", "converge", "deploy"]
    assert [lv.index for lv in c.levels] == [1, 2, 3]
    vm, converge, deploy = c.levels
    assert (vm.quiescence, vm.max_attempts, vm.on_exhausted) == (600.0, 3, "notify")
    assert converge.quiescence == 30.0           # the top-level quiescence
    assert deploy.quiescence == 120.0
    (create,) = vm.steps
    assert (create.kind, create.command, create.foreach) == ("shell", "iaas-create-vm {host}", "host")
    assert (create.where, create.line, create.timeout, create.concurrency) == \
        ("levels[0].steps[0]", 17, 600.0, 10)
    (chef,) = converge.steps
    assert chef.kind == "chef" and chef.command is None
    assert chef.chef == ChefOptions(run_list=("role[app]",))
    assert chef.ssh == SshOptions(host="{host}", user="deploy", key_file="/etc/escalator/id_ed25519",
                                  known_hosts="/etc/escalator/known_hosts")
    (cap,) = deploy.steps
    assert (cap.kind, cap.command, cap.foreach) == ("ssh", "cap production deploy", None)
    assert cap.ssh.host == "deploy.example.com" and cap.ssh.user == "deploy"
    assert [(r.level, r.host, r.service, r.line) for r in c.checks] == [
        (1, "*", None, 28), (1, "web-*", "PING", 29), (3, "*", "Smoke*", 30)]
    (mail,) = c.notify
    assert mail.where == "notify[0]" and mail.command == 'mail -s "escalator: {summary}" ops@example.com'
    assert (c.limits.max_runs_per_hour, c.limits.max_targets) == (6, 10)
    assert c.defaults == {"ssh": {"user": "deploy", "key_file": "/etc/escalator/id_ed25519",
                                  "known_hosts": "/etc/escalator/known_hosts"}, "timeout": 600.0}
    assert c.nagios is None
    assert validate(str(CONFIGS / "good" / "full.yaml")) == []


def test_level_for_uses_first_matching_rule_with_globs_and_states():
    c = load_config(str(CONFIGS / "good" / "full.yaml"))
    assert c.level_for(("web-3", None), "DOWN") == 1          # host check
    assert c.level_for(("web-3", "PING"), "CRITICAL") == 1
    assert c.level_for(("db-1", "PING"), "CRITICAL") is None  # PING rule is for web-* only
    assert c.level_for(("app", "Smoke test"), "WARNING") == 3
    assert c.level_for(("app", "HTTP"), "CRITICAL") is None
    narrowed = load_config_text("""
levels: [{name: tier, steps: [{shell: t}]}, {name: app, steps: [{shell: a}]}]
checks:
  - {service: "HTTP*", state: CRITICAL, level: tier}
  - {service: "HTTP*", state: [warning, unknown], level: 2}
  - {host: "db-?", service: "*", level: "1"}
""")
    assert narrowed.level_for(("web", "HTTPS"), "CRITICAL") == 1
    assert narrowed.level_for(("web", "HTTPS"), "WARNING") == 2
    assert narrowed.level_for(("db-1", "HTTPS"), "UNKNOWN") == 2   # first match wins
    assert narrowed.level_for(("db-1", "disk"), "CRITICAL") == 1
    assert narrowed.level_for(("db-12", "disk"), "CRITICAL") is None
    assert narrowed.checks[1].states == ("WARNING", "UNKNOWN")


def test_levels_are_found_by_name_and_position_and_unnamed_levels_get_their_position():
    c = load_config_text("""
quiescence: 45s
levels:
  - {name: account, steps: [{shell: a}]}
  - steps: [{shell: b}]
  - {name: "3", steps: [{shell: c}], max_attempts: 5, on_exhausted: escalate}
checks:
  - {service: A, level: account}
  - {service: B, level: 2}
  - {service: C, level: "3"}
""")
    assert [lv.name for lv in c.levels] == ["account", "2", "3"]
    assert c.level("account").index == 1 and c.level(2).name == "2" and c.level("3").index == 3
    assert c.levels[1].quiescence == 45.0
    assert (c.levels[2].max_attempts, c.levels[2].on_exhausted) == (5, "escalate")
    assert [r.level for r in c.checks] == [1, 2, 3]


# -- defaults ----------------------------------------------------------------

MERGE = """
defaults:
  timeout: 15m
  concurrency: 4
  ssh:
    user: deploy
    port: 2222
    key_file: /k
    sudo: true
    env: {A: "1", B: 2}
    timeout: 20m
  chef:
    chef_client: /opt/chef/bin/chef-client
    environment: production
    extra_args: [--no-fork]
    timeout: 45m
levels:
  - name: all
    steps:
      - shell: local-thing
      - shell: per-host {host}
        foreach: host
        concurrency: 2
        timeout: 90s
      - ssh: {host: "{host}", command: restart, user: root, env: {B: "3", C: x}, sudo: app}
        foreach: host
      - ssh: {host: db, command: backup, sudo: false, timeout: 1h, proxy_jump: "ops@bastion:2022"}
      - chef: {host: "{host}", run_list: "role[base], recipe[app::deploy]", user: admin,
               sudo: true, reboot_is_failure: yes}
        foreach: host
      - chef: {run_list: ["role[local]"], environment: staging, json_attribs: /etc/chef/first-boot.json}
"""


def test_defaults_merge_into_every_step_of_the_same_kind_and_step_keys_win():
    c = load_config_text(MERGE)
    local, per_host, ssh_a, ssh_b, chef_remote, chef_local = c.levels[0].steps
    assert (local.timeout, local.concurrency) == (900.0, 4)
    assert (per_host.timeout, per_host.concurrency) == (90.0, 2)
    assert ssh_a.ssh == SshOptions(host="{host}", port=2222, user="root", key_file="/k", sudo="app",
                                   env={"A": "1", "B": "3", "C": "x"})
    assert ssh_a.timeout == 1200.0                      # defaults.ssh.timeout beats defaults.timeout
    assert ssh_b.ssh.sudo is False and ssh_b.ssh.user == "deploy" and ssh_b.timeout == 3600.0
    assert ssh_b.ssh.proxy_jump == "ops@bastion:2022"
    assert chef_remote.chef == ChefOptions(
        run_list=("role[base]", "recipe[app::deploy]"), environment="production",
        chef_client="/opt/chef/bin/chef-client", extra_args=("--no-fork",),
        reboot_is_failure=True, sudo=True)
    assert chef_remote.ssh == SshOptions(host="{host}", port=2222, user="admin", key_file="/k",
                                         sudo=True, env={"A": "1", "B": "2"})
    assert chef_remote.timeout == 2700.0
    assert chef_local.ssh is None
    assert chef_local.chef.environment == "staging"
    assert chef_local.chef.json_attribs == "/etc/chef/first-boot.json"
    assert chef_local.chef.run_list == ("role[local]",)
    assert c.defaults["ssh"]["port"] == 2222 and c.defaults["timeout"] == 900.0


def test_yaml_anchors_and_merge_keys_are_honoured():
    c = load_config_text("""
levels:
  - &vm
    name: vm
    quiescence: 10m
    max_attempts: 1
    steps: [{shell: a}]
  - <<: *vm
    name: app
    max_attempts: 2
""")
    vm, app = c.levels
    assert (app.name, app.quiescence, app.max_attempts) == ("app", 600.0, 2)
    assert app.steps[0].command == "a" and vm.max_attempts == 1


def test_everything_optional_is_read():
    c = load_config_text("""
spool: /s
journal: /j/journal.jsonl
state_file: /st/state.json
spool_mode: "0770"
state_types: [SOFT, hard]
act_in_downtime: true
levels: [{steps: [{shell: deploy}]}]
nagios:
  command_file: /var/lib/nagios4/rw/nagios.cmd
  icinga_api: {url: "https://127.0.0.1:5665", user: esc, password_file: /p, ca_file: /ca.crt}
  acknowledge: true
  service: escalator-runs
  host: monitor1
  status_file: /var/lib/nagios4/status.dat
""", source="inline.yaml")
    assert (c.spool, c.journal, c.state_path, c.spool_mode) == ("/s", "/j/journal.jsonl",
                                                                 "/st/state.json", 0o770)
    assert c.state_types == ("SOFT", "HARD") and c.act_in_downtime is True
    n = c.nagios
    assert n.command_file == "/var/lib/nagios4/rw/nagios.cmd" and n.acknowledge is True
    assert (n.icinga_api.url, n.icinga_api.user, n.icinga_api.password_file, n.icinga_api.ca_file) \
        == ("https://127.0.0.1:5665", "esc", "/p", "/ca.crt")
    assert (n.service, n.host, n.status_file) == ("escalator-runs", "monitor1",
                                                  "/var/lib/nagios4/status.dat")
    only_status = load_config_text("levels: [{steps: [{shell: d}]}]\nnagios: {status_file: /s.dat}\n")
    assert only_status.nagios.command_file is None and only_status.nagios.icinga_api is None
    assert only_status.nagios.service == "escalator"


def test_literal_braces_and_every_placeholder_are_accepted():
    c = load_config_text("""
levels:
  - steps:
      - shell: "awk '{{print $1}}' {hosts} {level} {checks} {summary}"
      - shell: "awk '{print $2}' | sed 's/}//' ${HOME:-/}"
      - shell: "ssh {host} true"
        foreach: host
notify:
  - ssh: {host: pager, command: "page {level} {hosts} {checks} {summary}"}
""")
    assert c.levels[0].steps[0].command == "awk '{{print $1}}' {hosts} {level} {checks} {summary}"


# -- durations ---------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [
    ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0), ("500ms", 0.5),
    ("2d", 172800.0), ("1m30s", 90.0), ("1.5h", 5400.0), (" 10s ", 10.0), ("1h 5m", 3900.0),
    ("45", 45.0), (0, 0.0), (90, 90.0), (2.5, 2.5), ("0s", 0.0)])
def test_parse_duration_accepts_units_and_plain_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10x", "5 minutes", "m", "30m1h", "1h1h", "-5s", -1, True,
                                 None, [1], float("inf"), float("nan"), "1.s"])
def test_parse_duration_rejects_other_values_saying_what_was_expected(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_durations_in_config_accept_numbers_and_units():
    c = load_config_text("quiescence: 15\nmax_delay: 1h30m\n"
                         "levels: [{quiescence: 500ms, steps: [{shell: d, timeout: 2.5}]}]\n")
    assert (c.quiescence, c.max_delay, c.levels[0].quiescence) == (15.0, 5400.0, 0.5)
    assert c.levels[0].steps[0].timeout == 2.5


# -- the broken corpus -----------------------------------------------------------

def test_corpus_has_at_least_35_broken_configs_each_with_expectations():
    assert len(BROKEN) >= 35
    for path in BROKEN:
        assert re.match(r"\d\d-[a-z0-9-]+\.yaml$", path.name), path.name
        assert expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_config_reports_every_error_with_file_line_and_key(path: Path):
    expected = expectations(path)
    problems = validate(str(path))
    shown = format_problems(problems)
    assert len(problems) == len(expected), f"expected {len(expected)} problems, got:\n{shown}"
    unmatched = list(problems)
    for line, key, fragment in expected:
        hit = [p for p in unmatched if p.line == line and p.key == key
               and all(part in p.message for part in fragment.split(" ... "))]
        assert hit, f"no problem {line}: {key}: ...{fragment}... in:\n{shown}"
        unmatched.remove(hit[0])
    assert all(p.file == str(path) for p in problems)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == problems
    assert info.value.exit_code == 2


def test_three_independent_errors_are_all_reported_at_once(tmp_path):
    path = write(tmp_path, """\
max_delay: 5 minutes
levels:
  - name: vm
    steps:
      - shell: iaas-create-vm {host}
checks:
  - {service: PING, level: nope}
""")
    problems = validate(path)
    assert [(p.line, p.key) for p in problems] == [
        (1, "max_delay"), (5, "levels[0].steps[0].shell"), (7, "checks[0].level")]
    assert "'5 minutes'" in problems[0].message
    assert "{host} needs foreach: host" in problems[1].message
    assert "unknown level 'nope': expected one of vm" in problems[2].message


def test_format_problems_writes_file_line_key_message_one_per_line(tmp_path):
    path = write(tmp_path, "levels:\n  - steps: [{shell: d}]\n    quiescence: 5x\nspool_mode: 9\n")
    text = format_problems(validate(path))
    assert text.splitlines() == [
        f"{path}:3: levels[0].quiescence: expected a duration such as 30s, 5m, 1h30m, 500ms "
        "or a number of seconds, got '5x'",
        f'{path}:4: spool_mode: expected an octal mode such as "0750", got 9 '
        "(write it with a leading 0, or quoted)",
    ]
    assert format_problems([ConfigProblem("f.yaml", None, "", "empty")]) == "f.yaml: empty"


# -- files that cannot be read ---------------------------------------------------

def test_missing_file_is_one_clear_problem(tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert format_problems(validate(path)) == f"{path}: cannot read config file: No such file or directory"


def test_directory_instead_of_file_is_one_clear_problem(tmp_path):
    (problem,) = validate(str(tmp_path))
    assert problem.line is None and "cannot read config file: Is a directory" in problem.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_one_clear_problem(tmp_path):
    path = write(tmp_path, "levels: []\n")
    os.chmod(path, 0)
    (problem,) = validate(path)
    assert "Permission denied" in problem.message


def test_default_path_comes_from_environment(tmp_path, monkeypatch):
    path = write(tmp_path, "levels: [{steps: [{shell: d}]}]\n")
    monkeypatch.setenv("ESCALATOR_CONFIG", path)
    assert load_config(None).source == path
    assert validate(None) == []


def test_control_characters_are_reported_with_their_line(tmp_path):
    path = write(tmp_path, "levels:\n  - steps: [{shell: \"a\x07b\"}]\n")
    (problem,) = validate(path)
    assert problem.line == 2 and "YAML cannot read this file" in problem.message


def test_validation_never_raises_on_hostile_yaml(tmp_path):
    cases = [
        "levels: &a [*a]\n",                           # recursive alias
        "levels:\n  - &s {steps: [*s]}\n",            # a step that is its own level
        "? [a, b]\n: c\nlevels: [{steps: [{shell: d}]}]\n",   # complex key
        "levels: [{steps: [{shell: !!binary aGVsbG8=}]}]\n",
        "levels: [{steps: [{ssh: !!set {a, b}}]}]\n",
        "levels: !!omap [{a: 1}]\n",
        "levels: [{steps: [{shell: d}]}]\nquiescence: !!float nope\n",
        "levels: [{steps: [{shell: d}]}]\nquiescence: 2001-12-14\n",
        "\ufefflevels: [{steps: [{shell: d}]}]\nspool_mode: 0o750\n",
        "<<: {levels: 5}\n",
        "levels: [{steps: [{shell: d}]}]\nchecks: [{level: 99999999999999999999999}]\n",
    ]
    for i, text in enumerate(cases):
        path = write(tmp_path, text, f"h{i}.yaml")
        problems = validate(path)
        for p in problems:
            assert isinstance(p, ConfigProblem) and p.file == path and p.message
        if problems:
            with pytest.raises(ConfigError):
                load_config(path)


def test_wrong_shapes_in_list_or_string_fields_are_problems_not_crashes(tmp_path):
    path = write(tmp_path, """\
state_types: {HARD: 1}
levels: [{name: vm, steps: [{chef: }]}]
checks:
  - {service: X, state: {CRITICAL: 1}, level: vm}
""")
    problems = validate(path)
    assert [(p.line, p.key) for p in problems] == [(1, "state_types"), (4, "checks[0].state")]
    assert all("got a mapping" in p.message for p in problems)


def test_bare_chef_key_runs_chef_client_here_with_defaults():
    c = load_config_text("defaults: {chef: {run_list: ['role[base]']}}\nlevels: [{steps: [{chef: }]}]\n")
    (step,) = c.levels[0].steps
    assert step.ssh is None and step.chef == ChefOptions(run_list=("role[base]",))


def test_deeply_nested_yaml_is_one_problem(tmp_path):
    path = write(tmp_path, "levels: " + "[" * 600 + "]" * 600 + "\n")
    (problem,) = validate(path)
    assert problem.file == path and "nested too deeply" in problem.message


# -- agreement with the runner ---------------------------------------------------
# Config validation mirrors steps/template.py and steps/ssh.py without importing
# them (they pull in paramiko); these tests keep the two in step.

TEMPLATES = ["deploy", "x {host} y", "{{host}}", "{{{host}}}", "awk '{print $1}'", "${HOME}",
             "${HOME:-/}", "{hots}", "{ host }", "{host!r}", "}{", "{level}{summary}{checks}{hosts}",
             "{_x}", "{9}", "{Host}", "{{", "}}}"]


@pytest.mark.parametrize("text", TEMPLATES)
def test_template_grammar_agrees_with_the_runner(text):
    from escalator_handlers.config.steps import scan_template
    from escalator_handlers.errors import StepError
    from escalator_handlers.steps import template

    names, errors = scan_template(text)
    try:  # the runner, given every placeholder, renders exactly the templates validation accepts
        template.render_command(text, {p: "x" for p in template.PLACEHOLDERS})
        runner_ok = True
    except StepError:
        runner_ok = False
    assert (not errors) == runner_ok
    assert names == [n for n in template.placeholders(text) if n in template.PLACEHOLDERS]


@pytest.mark.parametrize("host", ["web1", "{host}", "{host}.internal", "10.0.0.1", "::1", "a_b-c",
                                  "-oProxyCommand=x", "deploy@{host}", "two words", "h/x", "",
                                  "x" * 256])
def test_host_check_agrees_with_the_runner(host):
    from escalator_handlers.config.steps import host_problem
    from escalator_handlers.errors import StepError
    from escalator_handlers.steps import template

    try:
        template.render_host(host, {"host": "h", "hosts": "h", "level": "h", "summary": "h",
                                    "checks": "h"})
        runner_ok = True
    except StepError:
        runner_ok = False
    assert (host_problem(host) is None) == runner_ok


@pytest.mark.parametrize("spec", ["bastion", "ops@bastion", "ops@bastion:2022", "[::1]:22", "[::1]",
                                  "bastion:0", "bastion:99999", "a@b@c", "ops@-x", "b:x",
                                  "bad user@b", "ops@bastion1,ops@bastion2", "fe80::1"])
def test_proxy_jump_check_agrees_with_the_runner(spec):
    from escalator_handlers.errors import StepError
    from escalator_handlers.steps.target import Target, parse_jump

    try:
        parse_jump(spec, Target(host="h"))
        runner_ok = True
    except StepError:
        runner_ok = False
    text = f"levels: [{{steps: [{{ssh: {{host: h, command: c, proxy_jump: '{spec}'}}}}]}}]\n"
    try:
        load_config_text(text)
        ok = True
    except ConfigError:
        ok = False
    assert ok == runner_ok
