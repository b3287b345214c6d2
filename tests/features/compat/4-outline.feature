Feature: outline
  Scenario Outline: adding
    Given the number <a>
    When I add <b>
    Then the answer is <sum>

    Examples:
      | a | b | sum |
      | 1 | 2 | 3   |
      | 2 | 2 | 4   |
      | 3 | 2 | 5   |
