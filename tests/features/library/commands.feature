Feature: command steps from the bundled library via a one-line steps file

  Scenario: true succeeds
    When I run "true"
    Then the exit status is 0

  Scenario: exit status and output of a command with quoted arguments
    When I run "sh -c 'echo smoke-ok; exit 3'"
    Then the exit status is 3
    And the output contains "smoke-ok"
