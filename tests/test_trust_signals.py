"""Issue: operator trust, item 10 -- signals end a collector the way a shell user expects."""

from __future__ import annotations

import signal

from collector_fixtures import Site, stop

LEVELS = [{"name": "fix", "steps": [{"shell": "true"}]}]


def test_sigint_exits_130_and_an_idle_collector_does_not_claim_a_step(site: Site) -> None:
    site.write_config(LEVELS, [{"host": "*", "level": "fix"}])
    proc = site.start()
    site.wait_ready(proc)
    assert stop(proc, signal.SIGINT) == 130
    log = site.log(proc)
    assert "current step" not in log, log
    assert "stopping" in log


def test_sigterm_of_an_idle_daemon_still_exits_0(site: Site) -> None:
    site.write_config(LEVELS, [{"host": "*", "level": "fix"}])
    proc = site.start()
    site.wait_ready(proc)
    assert stop(proc, signal.SIGTERM) == 0
