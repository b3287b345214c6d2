"""A person's acknowledgement keeps escalator off the host: a real Nagios 4 (status.dat) and Icinga 2 (API).

Nagios runs the shipped event handler (spooling only); the acknowledgement
and its removal go through Nagios's command file as an operator's tools
send them; a real ``escalator collect --daemon`` reads status.dat.
"""

from __future__ import annotations

import json

import pytest

from collector_fixtures import Site
from escalator_handlers.monitoring.commandfile import CommandFile
from nagios_fixtures import HOST, SERVICE, service_status, start_nagios

pytestmark = pytest.mark.slow


def configure(site: Site, ng, interlock: bool = True) -> str:
    return str(site.write_config(
        [{"name": "vm", "quiescence": 1, "steps": [{"shell": f"echo vm {{host}} >> {site.out}/vm.txt",
                                                   "foreach": "host"}]}],
        [{"host": HOST, "service": SERVICE, "level": "vm"}],
        notify=[{"shell": f"printf '%s\\n' {{summary}} >> {site.out}/notify.txt"}],
        quiescence=1,
        nagios={"command_file": str(ng.command_file), "status_file": str(ng.status_file),
                "acknowledge": True, "host": "monitor", "ack_interlock": interlock}))


def acked_by_alice(ng) -> None:
    """web01/HTTP CRITICAL HARD, then acknowledged by alice, as status.dat shows it."""
    ng.flip("CRITICAL", output="disk gone")
    ng.wait_for(lambda: (s := service_status(ng.status_file, HOST, SERVICE)) and s["state_type"] == "1"
                and s["current_state"] == "2", timeout=15, what="HARD CRITICAL in status.dat")
    CommandFile(str(ng.command_file), author="alice").acknowledge(HOST, SERVICE, "replacing the disk")
    ng.wait_for(lambda: service_status(ng.status_file, HOST, SERVICE)["problem_has_been_acknowledged"] == "1",
                timeout=10, what="acknowledgement in status.dat")


def test_persons_acknowledgement_leaves_the_host_alone_until_removed(tmp_path, site: Site):
    with start_nagios(tmp_path, spool=site.spool) as ng:
        cfg = configure(site, ng)
        acked_by_alice(ng)
        collector = site.start()
        [ack] = site.wait_records("ack")
        assert (ack["host"], ack["service"], ack["outcome"]) == (HOST, SERVICE, "set")
        assert (ack["author"], ack["comment"]) == ("alice", "replacing the disk")
        skipped = site.wait_records("run", where=lambda r: r.get("outcome") == "skipped")[0]
        assert skipped["reason"] == f"hands off {HOST}: acknowledged by alice: replacing the disk"
        assert not site.lines("vm.txt") and not site.lines("notify.txt")   # no action, no page

        status = site.cli("status", "--config", cfg)
        assert f"hands off:   {HOST}: acknowledged by alice: replacing the disk" in status.stdout
        assert f"(acknowledged by alice)" in status.stdout
        r = json.loads(site.cli("status", "--json", "--config", cfg).stdout)
        assert r["acknowledged"] == {HOST: {"by": "alice", "comment": "replacing the disk",
                                            "check": f"{HOST}/{SERVICE}"}}
        plan = site.cli("plan", "--explain", "--config", cfg)
        assert f"acknowledged  asks for level vm (1), but host {HOST} is acknowledged by alice: " \
               "replacing the disk" in plan.stdout

        # Alice is done: she removes the acknowledgement; escalator acts within its poll.
        CommandFile(str(ng.command_file), author="alice").command("REMOVE_SVC_ACKNOWLEDGEMENT", HOST, SERVICE)
        gone = site.wait_records("ack", 2, timeout=20)[1]
        assert gone["outcome"] == "removed" and gone["author"] == "alice"
        site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=15)
        assert site.lines("vm.txt")[0] == f"vm {HOST}"
        # Escalator acknowledges the problem itself at the start of its run; its own
        # acknowledgement never stops its next attempt (the step fixed nothing).
        ng.wait_for(lambda: f"ACKNOWLEDGE_SVC_PROBLEM;{HOST};{SERVICE};0;0;0;escalator;" in ng.log_text(),
                    what="escalator's own acknowledgement")
        site.wait_records("run", 2, where=lambda r: r.get("outcome") == "ok", timeout=20)
        assert [r["outcome"] for r in site.records("ack")] == ["set", "removed"]
        assert collector.poll() is None


def test_interlock_can_be_turned_off(tmp_path, site: Site):
    with start_nagios(tmp_path, spool=site.spool) as ng:
        configure(site, ng, interlock=False)
        acked_by_alice(ng)
        site.start()
        site.wait_records("run", where=lambda r: r.get("outcome") == "ok", timeout=15)
        assert site.lines("vm.txt")[0] == f"vm {HOST}" and site.records("ack") == []


def test_icinga_acknowledgements_by_people_are_read_from_the_api(tmp_path):
    """The Icinga 2 side: comments of entry_type 4, escalator's own left out, gone when removed."""
    from escalator_handlers.config import NagiosFeedback
    from escalator_handlers.monitoring.acks import read_acks
    from escalator_handlers.monitoring.icinga_api import IcingaClient
    from icinga_fixtures import API_USER, critical_via_api, start_icinga

    with start_icinga(tmp_path, api=True) as ic:
        api = critical_via_api(ic, tmp_path)
        nagios = NagiosFeedback(icinga_api=api)
        assert read_acks(nagios) == {}
        ours = IcingaClient.from_config(api)                          # author "escalator"
        ours.acknowledge(HOST, SERVICE, "escalator: running levels vm")
        assert read_acks(nagios) == {}                                # its own never counts
        ours.action("remove-acknowledgement", HOST, SERVICE)
        alice = IcingaClient(api.url, API_USER, ic.api_password, api.ca_file, author="alice")
        alice.acknowledge(HOST, SERVICE, "replacing the disk")
        [(key, ack)] = read_acks(nagios).items()
        assert key == (HOST, SERVICE) and (ack.author, ack.comment) == ("alice", "replacing the disk")
        alice.action("remove-acknowledgement", HOST, SERVICE)
        assert read_acks(nagios) == {}
