Feature: undefined
  Scenario: a step nobody wrote
    Given a calculator that multiplies
    When I add 1
    Then the answer is 1
