"""Steps for check_cucumber's own test features (a tiny calculator)."""

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
