"""Reading Nagios's EVENT HANDLER lines and matching them with recorded events (check_escalator --nagios-log)."""

from __future__ import annotations

from escalator_handlers.plugins.handler_runs import HandlerRun, check, parse_line, unrecorded


def test_service_host_and_global_handler_lines_are_read_and_others_are_not():
    assert parse_line("[100] SERVICE EVENT HANDLER: web01;app;CRITICAL;HARD;2;escalator-service-handler\n") == \
        HandlerRun(100.0, "web01", "app", "CRITICAL", "HARD", "escalator-service-handler")
    assert parse_line("[101] HOST EVENT HANDLER: web01;DOWN;SOFT;1;escalator-host-handler") == \
        HandlerRun(101.0, "web01", None, "DOWN", "SOFT", "escalator-host-handler")
    assert parse_line("[102] GLOBAL SERVICE EVENT HANDLER: a;b;OK;HARD;1;escalator-service-handler").service == "b"
    for other in ("[1] SERVICE ALERT: web01;app;CRITICAL;HARD;2;x", "[x] SERVICE EVENT HANDLER: a;b;c;d;e;f",
                  "[1] SERVICE EVENT HANDLER: a;b", "garbage", ""):
        assert parse_line(other) is None


def test_a_run_counts_as_recorded_only_with_an_event_of_its_check_state_and_type_nearby():
    run = HandlerRun(1000.0, "web01", "app", "CRITICAL", "HARD", "escalator-service-handler")
    near = {"host": "web01", "service": "app", "state": "CRITICAL", "state_type": "HARD", "time": 1001.2}
    assert unrecorded([run], [near]) == []
    assert unrecorded([run], [dict(near, state_type="SOFT")]) == [run]
    assert unrecorded([run], [dict(near, time=1200.0)]) == [run]
    assert unrecorded([run], [dict(near, time=5000.0, claimed_time=1000.5)]) == []   # clamped by the collector
    assert unrecorded([run], [{"host": "web01", "time": "nonsense"}]) == [run]


def test_only_escalator_handler_runs_in_the_window_are_judged(tmp_path):
    log = tmp_path / "nagios.log"
    log.write_text("[900] SERVICE EVENT HANDLER: w;s;CRITICAL;HARD;2;escalator-service-handler\n"
                   "[1000] SERVICE EVENT HANDLER: w;s;CRITICAL;SOFT;1;escalator-service-handler\n"
                   "[1000] SERVICE EVENT HANDLER: w;s;CRITICAL;SOFT;1;restart-httpd\n"
                   "[1090] SERVICE EVENT HANDLER: w;s;OK;HARD;1;escalator-service-handler\n")
    judged, lost = check(str(log), [], 1100.0, lookback=150, grace=30)
    assert judged == 1 and [r.state_type for r in lost] == ["SOFT"]
