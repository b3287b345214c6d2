"""Noticing a downtime's end (or start) from status.dat: which depths are believed, what is journalled.

Pure parts of ``monitoring.downtimes`` and ``planning.downtime`` on a
simulated clock; the real Nagios 4 is in ``test_nagios_downtime_end.py``.
"""

from __future__ import annotations

from pathlib import Path

from escalator_handlers.monitoring.downtimes import Depths, changes, status_depths
from escalator_handlers.planning.downtime import in_downtime
from escalator_handlers.planning.state import State

from planner_fixtures import T0, make_config

STATUS = """info {{
\tcreated={created}
\tversion=4.4.6
\t}}

hoststatus {{
\thost_name=web01
\tcurrent_state=0
\tscheduled_downtime_depth={host}
\t}}

servicestatus {{
\thost_name=web01
\tservice_description=HTTP
\tcurrent_state=2
\tstate_type=1
\tscheduled_downtime_depth={service}
\t}}
"""


def state_with_http_in_downtime(config=None, host_event: bool = False) -> State:
    st = State(config or make_config())
    if host_event:
        st.apply({"kind": "event", "time": T0, "host": "web01", "service": None, "state": "UP",
                  "state_type": "HARD", "downtime": 1})
    st.apply({"kind": "event", "time": T0 + 1, "host": "web01", "service": "HTTP", "state": "CRITICAL",
              "state_type": "HARD", "attempt": 2, "downtime": 0 if host_event else 1})
    return st


def write(tmp_path: Path, created: float, host: int, service: int) -> str:
    path = tmp_path / "status.dat"
    path.write_text(STATUS.format(created=int(created), host=host, service=service))
    return str(path)


def test_a_critical_check_in_its_own_or_its_hosts_downtime_is_held_by_downtime():
    [held] = in_downtime(state_with_http_in_downtime())
    assert (held.key, held.state, held.why) == (("web01", "HTTP"), "CRITICAL", "in scheduled downtime")
    [held] = in_downtime(state_with_http_in_downtime(host_event=True))
    assert held.why == "its host web01 is in scheduled downtime"
    assert in_downtime(state_with_http_in_downtime(make_config(act_in_downtime=True))) == []


def test_status_dat_written_after_the_last_event_ends_the_downtime(tmp_path):
    st = state_with_http_in_downtime()
    src = status_depths(write(tmp_path, T0 + 10, host=0, service=0))
    [rec] = changes(st, [src], [("web01", "HTTP")], T0 + 12)
    assert rec == {"time": T0 + 12, "kind": "event", "host": "web01", "service": "HTTP", "state": None,
                   "state_type": "HARD", "attempt": 1, "downtime": 0, "output": "STOPPED",
                   "source": "status.dat", "noticed": "scheduled downtime ended (status.dat)"}
    st.apply(rec)
    assert st.failing(("web01", "HTTP"), st.checks[("web01", "HTTP")])
    assert in_downtime(st) == []
    assert changes(st, [src], [("web01", "HTTP")], T0 + 13) == []  # journalled once


def test_status_dat_older_than_the_last_event_is_not_believed(tmp_path):
    # The handler said "in downtime" at T0+1; a status.dat written before that is older news.
    st = state_with_http_in_downtime()
    assert changes(st, [status_depths(write(tmp_path, T0, host=0, service=0))], [("web01", "HTTP")], T0 + 2) == []


def test_a_host_downtime_no_event_carried_is_noticed_as_started(tmp_path):
    st = State(make_config())
    st.apply({"kind": "event", "time": T0 + 1, "host": "web01", "service": "HTTP", "state": "CRITICAL",
              "state_type": "HARD", "attempt": 2, "downtime": 0})
    assert st.failing(("web01", "HTTP"), st.checks[("web01", "HTTP")])
    [rec] = changes(st, [status_depths(write(tmp_path, T0 + 2, host=1, service=0))], [("web01", "HTTP")], T0 + 3)
    assert (rec["host"], rec["service"], rec["downtime"], rec["output"], rec["noticed"]) == (
        "web01", None, 1, "STARTED", "scheduled downtime started (status.dat)")
    st.apply(rec)
    assert not st.failing(("web01", "HTTP"), st.checks[("web01", "HTTP")])


def test_the_icinga_view_lists_only_objects_in_downtime_so_absent_means_ended():
    st = state_with_http_in_downtime()
    api = Depths("icinga api", T0 + 5, {}, complete=True)
    [rec] = changes(st, [api], [("web01", "HTTP")], T0 + 5)
    assert (rec["downtime"], rec["noticed"]) == (0, "scheduled downtime ended (icinga api)")
    # status.dat says nothing of an object it does not list
    assert changes(st, [Depths("status.dat", T0 + 5, {})], [("web01", "HTTP")], T0 + 5) == []


def test_status_lists_a_check_in_downtime_and_shows_the_end_status_dat_already_shows(tmp_path):
    import json
    import subprocess
    import sys
    import time

    bin_dir = Path(sys.executable).parent
    status_dat = tmp_path / "status.dat"
    conf = tmp_path / "escalator.yaml"
    conf.write_text(f"spool: {tmp_path / 'spool'}\njournal: {tmp_path / 'journal.jsonl'}\n"
                    "levels: [{name: fix, steps: [{shell: 'true'}]}]\n"
                    "checks: [{host: web01, service: HTTP, level: fix}]\n"
                    f"nagios: {{status_file: {status_dat}}}\n")
    status_dat.write_text(STATUS.format(created=int(time.time()) - 60, host=0, service=1))
    subprocess.run([str(bin_dir / "escalator-handler"), "--spool", str(tmp_path / "spool"), "--host", "web01",
                    "--service", "HTTP", "--state", "CRITICAL", "--state-type", "HARD", "--downtime", "1"],
                   check=True, timeout=30)

    def status() -> dict:
        out = subprocess.run([str(bin_dir / "escalator"), "-C", str(conf), "status", "--json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    r = status()
    assert [(d["check"], d["level"], d["downtime"]) for d in r["in_downtime"]] == [("web01/HTTP", "fix", 1)]
    assert r["failing"] == []
    status_dat.write_text(STATUS.format(created=int(time.time()) + 2, host=0, service=0))  # the downtime ended
    r = status()
    assert r["in_downtime"] == [] and [f["check"] for f in r["failing"]] == ["web01/HTTP"]
    assert not (tmp_path / "journal.jsonl").exists()   # a read-only view: nothing journalled
