Feature: passing
  Scenario: adding
    Given the number 40
    When I add 1
    And I add 1
    Then the answer is 42
