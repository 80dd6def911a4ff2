"""Turn the raw values a sandboxed child reported into points, by comparing them with the goldens.

This runs in the grader process only. It uses the comparison code of the master's ``hwcheck.py`` (the
same code the students' public checks run), loaded from a trusted path — never the student's copy.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.]")
MAX_PROBLEMS_SHOWN = 3


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

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


def load_hwcheck(path: Path) -> ModuleType:
    """Import the trusted ``hwcheck.py`` at ``path`` under a private module name."""
    spec = importlib.util.spec_from_file_location("_trusted_hwcheck", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error_message(error: Mapping[str, Any], hidden: bool) -> str:
    kind = _SAFE_NAME.sub("", str(error.get("type", "Error")))[:40] or "Error"
    if kind in ("Timeout", "Crash", "NotRun"):
        return str(error.get("message", kind))[:300]
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


def _hidden_problem(problem: str) -> str:
    """A hidden check's problem reduced to the value's name and what kind of mismatch it is.

    hwcheck's messages (even with ``reveal=False``) carry numbers derived from the expected values
    (shapes of the hidden cases, largest error); students see none of them.
    """
    key, _, detail = problem.partition(":")
    for marker, kind in _PROBLEM_KINDS:
        if marker in detail:
            return f"{key}: {kind}"
    return f"{key}: values differ from the expected ones"


def _hidden_problems(problems: List[str]) -> List[str]:
    return [_hidden_problem(problem) for problem in problems]


def score(check: Any, report: Optional[Mapping[str, Any]], golden: Optional[Mapping[str, Any]],
          hwcheck: ModuleType, seconds: float = 0.0) -> CheckResult:
    """Points for one check (all-or-nothing unless its golden says otherwise).

    ``check`` has ``.grade_id``, ``.notebook``, ``.points`` and ``.hidden``.
    """
    result = CheckResult(check.grade_id, check.notebook, 0.0, check.points, check.hidden, "", seconds)
    if golden is None:
        result.message = "internal error: no expected values for this check (please tell the course staff)"
        return result
    if not report:
        result.message = "not run"
        return result
    if "error" in report:
        error = report["error"] if isinstance(report["error"], Mapping) else {}
        result.message = _error_message(error, check.hidden)
        return result
    values = report.get("values")
    if not isinstance(values, Mapping) or not all(isinstance(v, Mapping) for v in values.values()):
        result.message = "the check produced no readable values"
        return result
    fraction, problems, summary = hwcheck.evaluate(values, golden, reveal=not check.hidden)
    result.points = round(check.points * fraction, 2)
    if check.hidden and (golden.get("score") or {}).get("kind") != "accuracy":
        problems = _hidden_problems(problems)
        summary = f"all {len(golden.get('values', {}))} hidden values match"
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        result.message = "; ".join(shown) + (f"; and {more} more" if more else "")
        return result
    result.message = f"passed ({summary})"
    return result


def score_run(master: Any, run: Any, goldens: Mapping[str, Mapping[str, Any]], hwcheck: ModuleType
              ) -> Dict[str, CheckResult]:
    """Score every check of ``master`` from one :class:`~assignkit.grading.runner.NotebookRun`."""
    return {
        check.grade_id: score(check, run.reports.get(check.grade_id), goldens.get(check.grade_id), hwcheck,
                              run.durations.get(check.grade_id, 0.0))
        for check in master.checks
    }


def measured_accuracy(report: Optional[Mapping[str, Any]], golden: Mapping[str, Any], hwcheck: ModuleType
                      ) -> Optional[float]:
    """The share of correct predictions of an accuracy-scored check (``None`` when it produced none)."""
    key = str((golden.get("score") or {}).get("key", ""))
    values = (report or {}).get("values")
    if not isinstance(values, Mapping) or not isinstance(values.get(key), Mapping) or key not in golden["values"]:
        return None
    try:
        shape, got = hwcheck.decode_array(values[key])
        want_shape, want = hwcheck.decode_array(golden["values"][key])
    except (ValueError, TypeError):
        return None
    if shape != want_shape or not want:
        return None
    return sum(1 for g, w in zip(got, want, strict=True) if g == w) / len(want)
