Feature: arithmetic that works

  Scenario: adding
    Given the number 40
    When I add 2
    Then the answer is 42

  Scenario: nothing to add
    Given the number 7
