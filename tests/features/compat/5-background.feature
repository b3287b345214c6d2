Feature: background
  Background:
    Given the number 40

  Scenario: adding two
    When I add 2
    Then the answer is 42

  Scenario: adding one twice
    When I add 1
    Then the answer is 41
