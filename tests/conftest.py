"""Shared fixtures and the suite's markers.

The fixtures that start something real live in their own modules and are
registered here once, so a test asks for them by name without importing them:

``site``                    an escalator installation in tmp_path (collector_fixtures)
``nagios``                  a real Nagios 4 on 127.0.0.1 (nagios_fixtures)
``icinga``                  a real Icinga 2 (icinga_fixtures)
``sshd``, ``user_sshd``     a real OpenSSH sshd, as root / as the test user (sshd_fixtures)
``ssh_keys``                the key pair those daemons trust (sshd_fixtures)
``etcd``, ``etcd3``         one real etcd / a three-member etcd cluster (etcd_fixtures)
``nodes``                   cluster sites, reaped afterwards (cluster_fixtures)

Markers (declared in setup.cfg), applied here by rule so that they stay
consistent, and by hand where a test starts something without a fixture:

``slow``         starts a real daemon (Nagios 4, Icinga 2, sshd, etcd): every
                 test that uses one of the daemon fixtures above
``integration``  runs the real console scripts or daemons as subprocesses:
                 every ``slow`` test and every test that uses ``site`` or ``nodes``
``faults``       attacks a guarantee (kills, races, hostile input, storms):
                 every test in a ``test_faults_*.py`` module

``pytest -m "not slow"`` is the quick round; ``pytest -m faults`` the fault suite.
"""

import pytest

pytest_plugins = ("collector_fixtures", "nagios_fixtures", "icinga_fixtures", "sshd_fixtures", "etcd_fixtures",
                  "cluster_fixtures")

DAEMON_FIXTURES = frozenset(("nagios", "icinga", "sshd", "user_sshd", "etcd", "etcd3"))


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & DAEMON_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") or fixtures & {"site", "nodes"}:
            item.add_marker(pytest.mark.integration)
        if item.path.name.startswith("test_faults_"):
            item.add_marker(pytest.mark.faults)
