Feature: arithmetic with a missing step

  Scenario: multiplying
    Given the number 6
    When I multiply by 7
    Then the answer is 42
