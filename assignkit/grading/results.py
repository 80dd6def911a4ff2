"""Write results.json (Gradescope's schema) and submission_log.json, atomically, as often as needed.

Each write goes to a temporary file in the same folder and is moved over the old one with
``os.replace``, so whoever reads the folder — Gradescope after a time-out, or a kill at any moment —
always finds a complete, valid JSON file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping

RESULTS_FILE = "results.json"
LOG_FILE = "submission_log.json"
MAX_OUTPUT = 8000


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON in one step (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        try:
            text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
        except UnicodeEncodeError:  # text that is not valid Unicode somewhere: escape everything instead
            text = json.dumps(data, indent=1, ensure_ascii=True, allow_nan=False)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def placeholder(message: str = "Grading did not finish: please resubmit, or tell the course staff.") -> Dict[str, Any]:
    """The results.json written before anything runs: valid, zero points, says grading did not finish."""
    return {
        "score": 0,
        "execution_time": 0,
        "output": message,
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def clip(text: str, limit: int = MAX_OUTPUT) -> str:
    return text if len(text) <= limit else text[: limit - 20].rstrip() + "\n… (shortened)"


def gradescope_test(name: str, score: float, max_score: float, output: str, hidden: bool, tags: List[str],
                    redact: Callable[[str], str], passed: bool) -> Dict[str, Any]:
    """One entry of ``tests``: public checks are visible at once, hidden ones after grades are published."""
    return {
        "name": name,
        "score": round(score, 4),
        "max_score": round(max_score, 4),
        "status": "passed" if passed else "failed",
        "output": clip(redact(output)),
        "output_format": "text",
        "tags": tags,
        "visibility": "after_published" if hidden else "visible",
    }


def staff_only_test(name: str, output: str, tags: List[str]) -> Dict[str, Any]:
    """A 0-point entry for the staff only (Gradescope's ``hidden`` visibility: students never see it): used to
    show a written answer next to its model answer and rubric while the staff grade it by hand. Plain text, so
    nothing in a student's answer is rendered."""
    return {
        "name": name,
        "score": 0,
        "max_score": 0,
        "status": "passed",
        "output": clip(output),
        "output_format": "text",
        "tags": tags,
        "visibility": "hidden",
    }


def gradescope_results(tests: List[Dict[str, Any]], output: str, execution_time: float,
                       redact: Callable[[str], str]) -> Dict[str, Any]:
    """The whole results.json; the total is left to Gradescope (the sum of the tests)."""
    return {
        "execution_time": round(execution_time),
        "output": clip(redact(output), 4 * MAX_OUTPUT),
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def check_outputs(results: Mapping[str, Any]) -> List[str]:
    """Every text of a results.json that a student can see (for tests and audits)."""
    texts = [str(results.get("output", ""))]
    for test in results.get("tests", []):
        if test.get("visibility") == "hidden":  # staff only: never shown to the student
            continue
        texts.extend([str(test.get("name", "")), str(test.get("output", ""))])
    return texts
