"""check_cucumber and ``--compat cucumber-nagios`` on the same features.

tests/features/compat holds one feature per case where the original
cucumber-nagios formatter and check_cucumber count differently.  The
expected compat lines are what the original formatter printed for these
features (run under Debian's cucumber 2.4; README: check_cucumber), the
runtime aside; the default lines are check_cucumber's own counting.
"""

from __future__ import annotations

import os
import re

import pytest

from test_check_cucumber import CUCUMBER, FEATURES, lines, run

COMPAT = FEATURES / "compat"
LEGACY_TIME = re.compile(r"; time=\d+(\.\d+)?$")
TIME = re.compile(r" time=\d+(\.\d+)?s$")

pytestmark = pytest.mark.integration

#: feature -> (default status line, exit), (compat status line, exit); perfdata without time.
CASES = {
    "1-passing": (("OK - Critical: 0, Warning: 0, 4 okay | passed=4 failed=0 nosteps=0 total=4", 0),
                  ("OK - Critical: 0, Warning: 0, 4 okay | passed=4; failed=0; nosteps=0; total=4", 0)),
    # An undefined step, then two more: the two did not run and are not counted.
    "2-undefined": (("WARNING - Critical: 0, Warning: 1, 0 okay | passed=0 failed=0 nosteps=1 total=1", 1),
                    ("WARNING - Critical: 0, Warning: 1, 0 okay | passed=0; failed=0; nosteps=1; total=1", 1)),
    # A pending step is a warning here; cucumber-nagios did not count it (OK, 0 okay).
    "3-pending": (("WARNING - Critical: 0, Warning: 1, 0 okay | passed=0 failed=0 nosteps=1 total=1", 1),
                  ("OK - Critical: 0, Warning: 0, 0 okay | passed=0; failed=0; nosteps=0; total=0", 0)),
    # Three steps x three example rows; cucumber-nagios counted a row as one.
    "4-outline": (("OK - Critical: 0, Warning: 0, 9 okay | passed=9 failed=0 nosteps=0 total=9", 0),
                  ("OK - Critical: 0, Warning: 0, 3 okay | passed=3; failed=0; nosteps=0; total=3", 0)),
    # A one-step Background before two 2-step scenarios ran twice; cucumber-nagios counted it once.
    "5-background": (("OK - Critical: 0, Warning: 0, 6 okay | passed=6 failed=0 nosteps=0 total=6", 0),
                     ("OK - Critical: 0, Warning: 0, 5 okay | passed=5; failed=0; nosteps=0; total=5", 0)),
    "6-failing": (("CRITICAL - Critical: 1, Warning: 0, 2 okay | passed=2 failed=1 nosteps=0 total=3", 2),
                  ("CRITICAL - Critical: 1, Warning: 0, 2 okay | passed=2; failed=1; nosteps=0; total=3", 2)),
}
DEFINITION = {"cucumber": "compat/step_definitions/calculator.rb:5", "behave": "steps/arithmetic.py:16"}


def status(done, legacy: bool) -> str:
    first = lines(done)[0]
    pattern = LEGACY_TIME if legacy else TIME
    assert pattern.search(first), first
    return pattern.sub("", first).removeprefix("CUCUMBER ")


def needs(runner: str) -> None:
    if runner == "cucumber" and not os.path.exists(CUCUMBER):
        pytest.skip(f"{CUCUMBER} is not installed (Debian package cucumber; see setup.sh)")


@pytest.mark.parametrize("runner", ["cucumber", "behave"])
@pytest.mark.parametrize("feature", sorted(CASES))
def test_each_case_in_both_modes_on_the_same_feature(runner, feature):
    needs(runner)
    if runner == "behave" and feature == "3-pending":
        pytest.skip("behave has no pending status")
    path = str(COMPAT / f"{feature}.feature")
    for legacy, (line, code) in ((False, CASES[feature][0]), (True, CASES[feature][1])):
        done = run("--runner", runner, *(["--compat", "cucumber-nagios"] if legacy else []), "-f", path)
        assert (status(done, legacy), done.returncode) == (line, code), done.stdout + done.stderr
        if feature == "6-failing":
            assert lines(done)[1:] == (
                [f"Failed: Then the answer is 43 in compat/6-failing.feature:2 on {DEFINITION[runner]}"] if legacy
                else ["Failed: Then the answer is 43 in compat/6-failing.feature:5"])
        else:
            assert lines(done)[1:] == []


def test_whole_directory_compat_line_is_the_one_cucumber_nagios_printed():
    needs("cucumber")
    # The original formatter on these six features printed:
    # CUCUMBER CRITICAL - Critical: 1, Warning: 1, 14 okay | passed=14; failed=1; nosteps=1; total=16; time=0.11
    legacy = run("--runner", "cucumber", "--compat", "cucumber-nagios", str(COMPAT))
    assert status(legacy, True) == ("CRITICAL - Critical: 1, Warning: 1, 14 okay | "
                                    "passed=14; failed=1; nosteps=1; total=16")
    assert re.fullmatch(r".*; time=\d+\.\d{1,2}", lines(legacy)[0])      # a bare number, as Ruby printed it
    own = run("--runner", "cucumber", str(COMPAT))
    assert status(own, False) == "CRITICAL - Critical: 1, Warning: 2, 21 okay | passed=21 failed=1 nosteps=2 total=24"
    assert legacy.returncode == own.returncode == 2


def test_compat_never_says_ok_for_a_failed_hook_or_outline_row(tmp_path):
    # The original printed OK for a failing Before hook and crashed on a failing outline row.
    needs("cucumber")
    features = tmp_path / "features"
    (features / "step_definitions").mkdir(parents=True)
    (features / "step_definitions" / "calculator.rb").write_text(
        (COMPAT / "step_definitions" / "calculator.rb").read_text() + 'Before("@broken") { raise "hook failed" }\n')
    (features / "hook.feature").write_text(
        "Feature: hook\n  @broken\n  Scenario: a failing hook\n    Given the number 40\n    Then the answer is 40\n")
    (features / "outline.feature").write_text(
        "Feature: outline\n  Scenario Outline: adding\n    Given the number <a>\n    Then the answer is <sum>\n\n"
        "    Examples:\n      | a | sum |\n      | 1 | 1   |\n      | 2 | 3   |\n")
    done = run("--runner", "cucumber", "--compat", "cucumber-nagios", str(features))
    assert status(done, True) == "CRITICAL - Critical: 2, Warning: 0, 1 okay | passed=1; failed=2; nosteps=0; total=3"
    assert done.returncode == 2
    assert len(lines(done)) == 3 and all(line.startswith("Failed: ") for line in lines(done)[1:])
