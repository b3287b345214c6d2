"""Python steps for the cucumber-nagios comparison features (as step_definitions/calculator.rb).

behave has no "pending" status: its "a release that is not out yet" step is
left undefined on purpose, so the pending feature runs under cucumber only.
"""

from behave import given, then, when


@given("the number {n:d}")
def the_number(context, n):
    context.total = n


@when("I add {n:d}")
def add(context, n):
    context.total += n


@then("the answer is {n:d}")
def answer(context, n):
    assert context.total == n, f"expected {n}, got {context.total}"
