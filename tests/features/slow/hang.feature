Feature: a smoke check that hangs (run with --builtin-steps and -t 1)

  Scenario: hang
    Given the timeout is 120 seconds
    When I run "sh -c 'echo $$ > $CHECK_CUCUMBER_PIDFILE; exec sleep 97'"
    Then the exit status is 0
