"""Cucumber-style JSON reports (behave or Ruby cucumber) reduced to step counts.

check_cucumber runs a Gherkin runner with a JSON formatter and hands the
parsed document to :func:`parse_report`.  This module is pure: no files, no
processes, no clock.  It knows the two dialects the runners write:

* behave (``--format json``): ``location`` is ``file:line``; durations are in
  seconds; a Background appears as its own element whose steps have no
  ``result`` (the steps are repeated, with results, inside every scenario);
  steps after a failed or undefined step have no ``result``; a failing hook
  marks the scenario ``hook_error``.
* cucumber (``--format json``): features carry ``uri``, steps a ``line``;
  durations are in nanoseconds; a Background element with results precedes
  every scenario; steps after a failure are ``skipped``; hooks appear under
  ``before``/``after`` with their own results.

Counting: steps that ran are counted, not scenarios.  A passed step is
okay; a failed (or erroring, or ambiguous) step and a failing hook are
critical; an undefined or pending step is a warning ("nosteps").  Steps
skipped after a failed, undefined or pending step did not run and are not
counted.  Every step of every scenario counts, a Background's steps once per
scenario they ran for and an outline's steps once per example row.

:meth:`Report.cucumber_nagios` counts the way the original cucumber-nagios
formatter did instead (README: check_cucumber, ``--compat``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from ..errors import EscalatorError

__all__ = ["ReportError", "StepOutcome", "ScenarioOutcome", "Report", "LegacyCounts", "parse_report",
           "DURATION_UNITS"]

#: Seconds per unit of ``result.duration`` in each runner's JSON.
DURATION_UNITS = {"behave": 1.0, "cucumber": 1e-9}

_FAILED = frozenset({"failed", "error", "ambiguous"})
_NOSTEPS = frozenset({"undefined", "pending", "pending_warn"})
_HOOK_ERRORS = frozenset({"hook_error", "cleanup_error"})


class ReportError(EscalatorError):
    """The runner's JSON does not have the shape of a cucumber/behave report."""


@dataclass(frozen=True)
class StepOutcome:
    """One executed (or skipped) step, or a failing hook, as the report says."""

    keyword: str
    name: str
    location: str
    status: str
    #: ``passed``, ``failed``, ``nosteps`` or ``skipped`` (not counted).
    category: str
    duration: float = 0.0
    message: str = ""
    #: Where the step definition is (``match.location``), when the runner says.
    definition: str = ""
    #: A Background step, repeated for each scenario.
    background: bool = False

    @property
    def text(self) -> str:
        """``When I GET "/health"``: the step as written in the feature."""
        return f"{self.keyword} {self.name}".strip()


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario (or outline example) and the steps counted for it."""

    keyword: str
    name: str
    location: str
    status: str
    steps: tuple[StepOutcome, ...]
    feature: str = ""
    #: One example row of a Scenario Outline.
    outline: bool = False

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.steps)


@dataclass(frozen=True)
class LegacyCounts:
    """Counts and failures as the cucumber-nagios formatter made them."""

    passed: int
    failed: int
    nosteps: int
    #: (step text, scenario location, step definition location) per failure.
    failures: tuple[tuple[str, str, str], ...]

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.nosteps


@dataclass(frozen=True)
class Report:
    """Step counts of one run, cucumber-nagios style."""

    scenarios: tuple[ScenarioOutcome, ...]
    hook_failures: tuple[StepOutcome, ...] = ()

    def _steps(self, category: str) -> tuple[StepOutcome, ...]:
        return tuple(s for sc in self.scenarios for s in sc.steps if s.category == category)

    @property
    def passed(self) -> int:
        return len(self._steps("passed"))

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def nosteps(self) -> int:
        return len(self._steps("nosteps"))

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.nosteps

    @property
    def failures(self) -> tuple[StepOutcome, ...]:
        """Failed steps and failing hooks, in the order they ran."""
        return self._steps("failed") + self.hook_failures

    @property
    def undefined(self) -> tuple[StepOutcome, ...]:
        """Undefined or pending steps."""
        return self._steps("nosteps")

    def cucumber_nagios(self) -> LegacyCounts:
        """Count as cucumber-nagios's formatter did (seen running it under cucumber 2.4).

        It recorded each step result it was shown: passed, failed, and
        undefined as a warning; pending and skipped not at all.  Cucumber's
        formatter API showed a Background once per feature and a Scenario
        Outline as one result per example row.  Where it did not cope --
        a failing hook was not counted (it printed OK), a failing outline row
        crashed it -- this counts a failure, so that the check never says OK
        for a failed run.
        """
        passed = failed = nosteps = 0
        failures: list[tuple[str, str, str]] = []
        backgrounds_seen: set[str] = set()
        for sc in self.scenarios:
            steps = sc.steps
            if any(s.background for s in steps):
                if sc.feature in backgrounds_seen:
                    steps = tuple(s for s in steps if not s.background)
                backgrounds_seen.add(sc.feature)
            if sc.outline:
                statuses = {s.status for s in steps}
                bad = next((s for s in steps if s.category == "failed"), None)
                if bad is not None:
                    failed += 1
                    failures.append((bad.text, sc.location, bad.definition))
                elif "undefined" in statuses:
                    nosteps += 1
                elif statuses == {"passed"}:
                    passed += 1
                continue
            for step in steps:
                if step.status == "passed":
                    passed += 1
                elif step.category == "failed":
                    failed += 1
                    failures.append((step.text, sc.location, step.definition))
                elif step.status == "undefined":
                    nosteps += 1
        for hook in self.hook_failures:
            failed += 1
            failures.append((hook.text, hook.location, hook.definition))
        return LegacyCounts(passed, failed, nosteps, tuple(failures))


def parse_report(document: Any, runner: str) -> Report:
    """Reduce a parsed JSON report of ``runner`` ('behave' or 'cucumber') to counts.

    Raises ReportError when the document is not a list of features with
    elements and steps.
    """
    if runner not in DURATION_UNITS:
        raise ReportError(f"unknown runner {runner!r}")
    if not isinstance(document, list):
        raise ReportError(f"{runner} JSON report is not a list of features")
    unit = DURATION_UNITS[runner]
    scenarios: list[ScenarioOutcome] = []
    hooks: list[StepOutcome] = []
    for feature in document:
        if not isinstance(feature, Mapping):
            raise ReportError(f"{runner} JSON report: feature is not an object")
        uri = str(feature.get("uri") or _file_of(feature.get("location")) or "?")
        hooks_before = len(hooks)
        background: list[StepOutcome] = []
        behave_background: set[str] = set()
        for element in _list(feature.get("elements"), "elements", runner):
            is_background = element.get("type") == "background"
            location = _location(element, uri)
            steps = _classify(element, uri, unit, runner)
            hooks.extend(_hook_failures(element, location))
            if is_background:
                # cucumber: a Background (with results) precedes every scenario
                # and its outcome carries into it.  behave repeats the
                # background steps inside each scenario and leaves these
                # result-less, so they count nothing here.
                background = [replace(s, background=True) for s in steps] if runner == "cucumber" else []
                behave_background = {s.location for s in steps}
                continue
            if runner == "behave" and behave_background:
                # behave repeats the Background's steps inside each scenario.
                steps = [replace(s, background=True) if s.location in behave_background else s for s in steps]
            steps = background + steps
            background = []
            status = str(element.get("status") or _worst(steps))
            keyword = str(element.get("keyword", "Scenario"))
            scenarios.append(ScenarioOutcome(
                keyword=keyword, name=str(element.get("name", "")),
                location=location, status=status, steps=tuple(steps), feature=uri,
                outline=keyword.replace(" ", "").lower() in ("scenariooutline", "scenariotemplate")))
        if feature.get("status") in _HOOK_ERRORS and len(hooks) == hooks_before:
            # behave: before_feature/after_feature failed; no scenario shows it.
            hooks.append(StepOutcome("Hook", f'for {feature.get("keyword", "Feature")} '
                                     f'"{feature.get("name", "")}"',
                                     _location(feature, uri), "hook_error", "failed"))
    return Report(scenarios=tuple(scenarios), hook_failures=tuple(hooks))


def _classify(element: Mapping[str, Any], uri: str, unit: float, runner: str) -> list[StepOutcome]:
    """Categorise the steps of one element."""
    out: list[StepOutcome] = []
    for step in _list(element.get("steps", []), "steps", runner):
        result = step.get("result")
        status = str(result.get("status", "skipped")) if isinstance(result, Mapping) \
            else "untested"
        if status == "passed":
            category = "passed"
        elif status in _FAILED:
            category = "failed"
        elif status in _NOSTEPS:
            category = "nosteps"
        else:
            # skipped/untested/no result: it did not run (after a failed,
            # undefined or pending step, or a @skip tag), so it is not counted.
            category = "skipped"
        duration = 0.0
        message = ""
        if isinstance(result, Mapping):
            try:
                duration = float(result.get("duration") or 0) * unit
            except (TypeError, ValueError):
                duration = 0.0
            message = _message(result.get("error_message"))
        match = step.get("match")
        out.append(StepOutcome(
            keyword=str(step.get("keyword", "")).strip(),
            name=str(step.get("name", "")),
            location=_location(step, uri), status=status, category=category,
            duration=duration, message=message,
            definition=str(match.get("location") or "") if isinstance(match, Mapping) else ""))
    return out


def _hook_failures(element: Mapping[str, Any], location: str) -> Iterable[StepOutcome]:
    """Failing hooks: behave marks the scenario, cucumber lists before/after hooks."""
    label = f'for {element.get("keyword", "Scenario")} "{element.get("name", "")}"'
    if element.get("status") in _HOOK_ERRORS:
        yield StepOutcome("Hook", label, location, str(element["status"]), "failed")
    for when in ("before", "after"):
        for hook in element.get(when) or []:
            result = hook.get("result") if isinstance(hook, Mapping) else None
            if isinstance(result, Mapping) and result.get("status") in _FAILED:
                where = (hook.get("match") or {}).get("location") or location
                yield StepOutcome(f"{when.capitalize()} hook", label, str(where),
                                  str(result["status"]), "failed",
                                  message=_message(result.get("error_message")))


def _location(item: Mapping[str, Any], uri: str) -> str:
    if item.get("location"):
        return str(item["location"])
    line = item.get("line")
    return f"{uri}:{line}" if line is not None else uri


def _file_of(location: Any) -> str | None:
    if not location:
        return None
    return str(location).rsplit(":", 1)[0]


def _message(text: Any) -> str:
    """First non-empty line of an error message (tracebacks follow it)."""
    if isinstance(text, list):  # behave writes a list of lines for some errors
        text = "\n".join(str(t) for t in text)
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _worst(steps: Sequence[StepOutcome]) -> str:
    for category in ("failed", "nosteps", "passed"):
        if any(s.category == category for s in steps):
            return {"nosteps": "undefined"}.get(category, category)
    return "skipped"


def _list(value: Any, what: str, runner: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ReportError(f"{runner} JSON report: {what} is not a list of objects")
    return value
