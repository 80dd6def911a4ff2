"""Turn reports into points. Runs in the grader process only, which never runs student code.

Where the numbers come from:

* a **public** check compares the sandbox's values with the public goldens. Those values ship with the
  release, so a report of them proves nothing: public checks give feedback and no points;
* a **hidden sandbox** check compares the sandbox's values with the values the referee computed (staff
  solution or trusted reference) for this grading's secret seed; a check that refuses torch's recurrent
  kernels also needs the sandbox's kernel trace to be empty;
* a **static** or **referee** check is judged by the referee itself (it read the typed answer or evaluated
  the submitted weights without running student code); its verdict is taken as is.

The comparison code is the master's ``hwcheck.py``, loaded from a trusted path — never the student's copy.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, List, Mapping, Optional

from .runner import GRADER_ERROR_KINDS

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.]")
MAX_PROBLEMS_SHOWN = 3
INTERNAL = "internal grading error: please tell the course staff"


@dataclass
class CheckResult:
    """The outcome of one check: what Gradescope and submission_log.json show."""

    name: str
    notebook: str
    points: float
    max_points: float
    hidden: bool
    message: str
    seconds: float = 0.0
    ok: bool = False
    internal_error: str = ""

    @property
    def passed(self) -> bool:
        return self.ok and self.points >= self.max_points


def load_hwcheck(path: Path) -> ModuleType:
    """Import the trusted ``hwcheck.py`` at ``path`` under a private module name."""
    spec = importlib.util.spec_from_file_location("_trusted_hwcheck", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error_message(error: Any, hidden: bool) -> str:
    error = error if isinstance(error, Mapping) else {}
    kind = _SAFE_NAME.sub("", str(error.get("type", "Error")))[:40] or "Error"
    if kind in GRADER_ERROR_KINDS:
        return str(error.get("message", kind))[:600]
    if hidden:
        return f"your code raised {kind} (the public check of this part shows the details)"
    return str(error.get("message", kind))[:1000]


_PROBLEM_KINDS = (
    ("no value was produced", "no value was produced"),
    ("expected shape", "wrong shape"),
    ("expected numbers", "wrong kind of value (numbers expected)"),
    ("expected text", "wrong kind of value (text expected)"),
    ("expected None", "wrong kind of value (None expected)"),
    ("unreadable", "unreadable value"),
    ("NaN or inf", "contains NaN or inf"),
)


def _hidden_problem(problem: str, hints: Mapping[str, str]) -> str:
    """A hidden check's problem reduced to the value's name and what kind of mismatch it is (no numbers); a hint
    the master wrote for that value is kept as it is."""
    key, _, detail = problem.partition(":")
    if key.rsplit("/", 1)[-1] in hints and detail.strip() == hints[key.rsplit("/", 1)[-1]]:
        return problem
    for marker, kind in _PROBLEM_KINDS:
        if marker in detail:
            return f"{key}: {kind}"
    return f"{key}: values differ from the expected ones"


def _values(report: Optional[Mapping[str, Any]], key: str = "values") -> Optional[Mapping[str, Any]]:
    values = (report or {}).get(key)
    if isinstance(values, Mapping) and all(isinstance(v, Mapping) for v in values.values()):
        return values
    return None


def _finish(result: CheckResult, fraction: float, problems: List[str], summary: str, reduce: bool,
            hints: Optional[Mapping[str, str]] = None) -> CheckResult:
    if not math.isfinite(fraction):  # max(0, min(1, nan)) would be 1: a fraction that is not a number earns nothing
        fraction = 0.0
    result.points = round(result.max_points * max(0.0, min(1.0, fraction)), 2)
    result.ok = fraction >= 1.0
    if reduce:
        problems = [_hidden_problem(problem, hints or {}) for problem in problems]
    if problems and not result.ok:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        result.message = "; ".join(shown) + (f"; and {more} more" if more else "")
        if fraction > 0:
            result.message = f"{summary}: {result.message}" if summary not in result.message else result.message
    else:
        result.message = f"passed ({summary})" if result.ok else summary
    return result


def score(check: Any, report: Optional[Mapping[str, Any]], referee: Optional[Mapping[str, Any]],
          golden: Optional[Mapping[str, Any]], hwcheck: ModuleType, seconds: float = 0.0) -> CheckResult:
    """Points for one check (a :class:`~assignkit.grading.suites.SuiteCheck`).

    ``report``: what the sandbox reported (sandbox checks); ``referee``: what the referee reported (hidden,
    static and referee checks); ``golden``: the public goldens entry (public checks).
    """
    result = CheckResult(check.grade_id, check.notebook, 0.0, check.points, check.hidden, "", seconds)
    if not check.in_sandbox:
        return _score_refereed(result, referee)
    if check.hidden:
        if not referee or "internal_error" in referee or _values(referee, "expected") is None:
            result.message = INTERNAL
            result.internal_error = str((referee or {}).get("internal_error") or "the referee gave no expected values")
            return result
        entry = {**check.spec, "values": _values(referee, "expected")}
    else:
        if golden is None:
            result.message, result.internal_error = INTERNAL, "no public goldens for this check"
            return result
        entry = {**check.spec, **golden}
    if not report:
        result.message = "not run"
        return result
    if "error" in report:
        result.message = _error_message(report["error"], check.hidden)
        return result
    values = _values(report)
    if values is None:
        result.message = "the check produced no readable values"
        return result
    if check.refuses_kernels:
        kernels = report.get("kernels")
        if not isinstance(kernels, list):
            result.message = "the check's record of torch's recurrent kernels is missing (was hwcheck changed?)"
            return result
        if kernels:
            result.message = hwcheck.kernels_message([str(name)[:40] for name in kernels[:5]])
            return result
    try:
        fraction, problems, summary = hwcheck.evaluate(values, entry, reveal=not check.hidden)
    except Exception:
        result.message = "the check produced values that could not be read"
        return result
    if check.hidden:
        summary = f"all {len(entry['values'])} hidden values match" if fraction >= 1 else summary
    return _finish(result, fraction, problems, summary, reduce=check.hidden, hints=check.spec.get("hints"))


def _score_refereed(result: CheckResult, referee: Optional[Mapping[str, Any]]) -> CheckResult:
    """A static or referee check: the referee's own verdict."""
    if not referee:
        result.message = "not run"
        return result
    if "internal_error" in referee:
        result.message, result.internal_error = INTERNAL, str(referee["internal_error"])[:2000]
        return result
    if "error" in referee:
        result.message = _error_message(referee["error"], False)
        return result
    verdict = referee.get("verdict")
    if not (isinstance(verdict, list) and len(verdict) == 3):
        result.message, result.internal_error = INTERNAL, "the referee gave no verdict"
        return result
    fraction, problems, summary = verdict
    return _finish(result, float(fraction), [str(p) for p in problems], str(summary), reduce=False)


def measured_accuracy(referee: Optional[Mapping[str, Any]], spec: Mapping[str, Any], hwcheck: ModuleType
                      ) -> Optional[float]:
    """The share of correct predictions of an accuracy-scored check (``None`` when it produced none)."""
    key = str((spec.get("score") or {}).get("key", ""))
    values, expected = _values(referee), _values(referee, "expected")
    if not values or not expected or key not in values or key not in expected:
        return None
    try:
        shape, got = hwcheck.decode_array(values[key])
        want_shape, want = hwcheck.decode_array(expected[key])
    except (ValueError, TypeError):
        return None
    if shape != want_shape or not want:
        return None
    return sum(1 for g, w in zip(got, want, strict=True) if g == w) / len(want)
