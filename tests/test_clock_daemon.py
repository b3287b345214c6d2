"""A real ``escalator collect --daemon`` whose wall clock steps (libfaketime, Debian's ``libfaketime``).

Every process of the test -- the collector, ``escalator-handler``, ``escalator
hold`` -- runs with libfaketime preloaded, reading the wall clock's offset
from a file the test rewrites: the machine's clock stepping, as ``date -s``
would, while the monotonic clock runs on (``FAKETIME_DONT_FAKE_MONOTONIC``).
A ``hold --for 6s`` must last 6 s when the clock steps back 1 h (it did not
end until the wall clock caught up) and when it steps forward 3 h and back
(it ended at the first event after the step), and the journal says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest

from collector_fixtures import Site

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
HOUR = 3600


def stepping_clock(site: Site, monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Preload libfaketime in every process the site starts; a function that steps their wall clock."""
    assert os.path.exists(LIBFAKETIME), "libfaketime is missing: run ./setup.sh (Debian package libfaketime)"
    offset = site.root / "faketime"
    offset.write_text("+0\n")
    for name, value in (("LD_PRELOAD", LIBFAKETIME), ("FAKETIME_TIMESTAMP_FILE", str(offset)),
                        ("FAKETIME_NO_CACHE", "1"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")):
        monkeypatch.setenv(name, value)
    total = [0.0]

    def step(seconds: float) -> None:
        total[0] += seconds
        tmp = site.root / "faketime.tmp"
        tmp.write_text(f"{total[0]:+.0f}\n")
        os.replace(tmp, offset)   # libfaketime rereads the file at every clock read: never half of it

    return step


@pytest.mark.parametrize("steps", [(-HOUR,), (3 * HOUR, -3 * HOUR)], ids=["back-1h", "forward-3h-corrected"])
def test_a_hold_lasts_its_time_in_a_daemon_whose_wall_clock_steps(site: Site, monkeypatch, steps) -> None:
    step = stepping_clock(site, monkeypatch)
    site.write_config([{"name": "vm", "quiescence": "1s", "steps": [{"shell": f"echo {{host}} >> {site.out}/vm",
                                                                     "foreach": "host"}]}],
                      [{"host": "*", "level": "vm"}])
    proc = site.start()
    site.wait_ready(proc)
    r = site.cli("hold", "--config", str(site.config), "--host", "web*", "--for", "6s", "--reason", "disk swap")
    assert r.returncode == 0, r.stderr
    held = time.monotonic()
    site.wait_records("hold")
    site.event("web0", "DOWN")
    for n, size in enumerate(steps, 1):
        step(size)
        site.event(f"web{n}", "DOWN")    # wakes the collector on the stepped clock
        site.wait_records("clock", n)
        assert not site.records("release"), "the hold ended early"
    (release,) = site.wait_records("release", timeout=15)
    assert 5.5 < time.monotonic() - held < 8.5
    (start,) = site.wait_records("start")
    assert start["targets"]["vm"] == [f"web{n}" for n in range(len(steps) + 1)]
    assert [r["jump"] for r in site.records("clock")] == pytest.approx(list(steps), abs=2)
    assert "the wall clock stepped" in site.log(proc)
    assert proc.poll() is None
