Feature: failing
  Scenario: wrong answer
    Given the number 40
    When I add 2
    Then the answer is 43
    And the answer is 42
