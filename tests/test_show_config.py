"""``escalator show-config``: the drop-in files ship with the package and print as they are.

The slow test builds a regular (non-editable) wheel of this tree, installs it
into a temp dir and runs ``show-config`` from that copy: what ``pip install``
gives a user, not the checkout's nagios-conf/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from escalator_handlers.conffiles import CHECKOUT, TOPICS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
ESCALATOR = Path(sys.executable).parent / "escalator"


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(ESCALATOR), *args], capture_output=True, text=True, timeout=60, **kw)


def test_show_config_lists_every_topic_and_every_shipped_file():
    out = run("show-config")
    assert out.returncode == 0, out.stderr
    for t in TOPICS:
        assert f"  {t.name} " in out.stdout
    shipped = sorted(str(p.relative_to(CHECKOUT)) for p in CHECKOUT.rglob("*") if p.is_file())
    assert "nagios4/commands.cfg" in shipped and "systemd/escalator-collector.service" in shipped
    for name in shipped:
        assert f"\n  {name}\n" in out.stdout + "\n"


def test_show_config_prints_a_topic_or_a_listed_file_as_shipped():
    assert run("show-config", "logrotate").stdout == (CHECKOUT / "logrotate" / "escalator").read_text()
    both = run("show-config", "nagios").stdout
    assert both == (CHECKOUT / "nagios4/commands.cfg").read_text() + "\n" + (CHECKOUT / "nagios4/templates.cfg").read_text()
    assert run("show-config", "examples/tests/02-node-fails.yaml").stdout == \
        (CHECKOUT / "examples/tests/02-node-fails.yaml").read_text()


def test_show_config_refuses_an_unknown_topic_or_a_path_outside_the_files():
    for bad in ("nope", "../setup.cfg", "/etc/passwd"):
        out = run("show-config", bad)
        assert out.returncode == 2 and out.stdout == ""
        assert "Error: no drop-in file" in out.stderr and "topics are nagios" in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_regular_install_ships_the_drop_in_files(tmp_path):
    wheel_dir, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--disable-pip-version-check", "-w", str(wheel_dir), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    [wheel] = wheel_dir.glob("escalator_handlers-*.whl")
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                           "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    env = dict(os.environ, PYTHONPATH=str(target))  # the installed copy ahead of this checkout
    code = "import sys; from escalator_handlers.cli import main; sys.exit(main(sys.argv[1:]))"
    listed = subprocess.run([sys.executable, "-c", code, "show-config", "--path"], capture_output=True,
                            text=True, timeout=60, env=env, cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert Path(listed.stdout.strip()) == target / "escalator_handlers" / "dropin"
    for topic, rel in (("nagios-commands", "nagios4/commands.cfg"), ("icinga2", "icinga2/escalator.conf"),
                       ("systemd-collector", "systemd/escalator-collector.service"),
                       ("logrotate", "logrotate/escalator"), ("example-config", "examples/escalator.yaml")):
        out = subprocess.run([sys.executable, "-c", code, "show-config", topic], capture_output=True,
                             text=True, timeout=60, env=env, cwd=str(tmp_path))
        assert out.returncode == 0 and out.stdout == (CHECKOUT / rel).read_text(), (topic, out.stderr)
