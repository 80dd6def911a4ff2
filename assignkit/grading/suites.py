"""The hidden suites: every master's check cells and the metadata grading needs, as plain JSON.

The bundle carries them as ``suites/suites.json`` so the Gradescope grader never has to read (or even
have) the master notebooks; locally the same structure is extracted from the masters on the fly.
Only the standard library is used here at grading time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

FORMAT = 1


@dataclass(frozen=True)
class SuiteCheck:
    """One autograded check cell: what the sandbox runs (``source``) and what Gradescope shows (``title``)."""

    grade_id: str
    notebook: str
    points: float
    hidden: bool
    source: str
    title: str


@dataclass(frozen=True)
class Suite:
    """Everything about one notebook that grading needs (duck-compatible with ``assignkit.masters.Master``)."""

    name: str
    checks: Tuple[SuiteCheck, ...]
    skip_ids: Tuple[str, ...] = ()
    manual_points: Mapping[str, float] = field(default_factory=dict)
    grade_ids: Tuple[str, ...] = ()  # every grade_id of the master: tells a right notebook from a wrong one

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"

    @property
    def autograded_points(self) -> float:
        return sum(check.points for check in self.checks)

    @property
    def manual_total(self) -> float:
        return sum(self.manual_points.values())


def from_master(master: Any) -> Suite:
    """Build a suite from an ``assignkit.masters.Master`` (build time: reads the master notebook as JSON)."""
    from .titles import check_titles

    notebook = json.loads(Path(master.path).read_text(encoding="utf-8"))
    titles = check_titles(notebook, master.path.name, master.checks)
    grade_ids = []
    for cell in notebook.get("cells", []):
        grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if grade_id:
            grade_ids.append(str(grade_id))
    checks = tuple(
        SuiteCheck(c.grade_id, master.name, float(c.points), bool(c.hidden), c.source, titles[c.grade_id])
        for c in master.checks
    )
    return Suite(master.name, checks, tuple(master.skip_ids), dict(master.manual_points), tuple(grade_ids))


def to_json(suites: Sequence[Suite]) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "suites": [
            {
                "name": suite.name,
                "skip_ids": list(suite.skip_ids),
                "manual_points": dict(sorted(suite.manual_points.items())),
                "grade_ids": list(suite.grade_ids),
                "checks": [
                    {"grade_id": c.grade_id, "points": c.points, "hidden": c.hidden, "title": c.title,
                     "source": c.source}
                    for c in suite.checks
                ],
            }
            for suite in suites
        ],
    }


def from_json(data: Mapping[str, Any]) -> List[Suite]:
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported suites format {data.get('format')!r}")
    suites = []
    for item in data["suites"]:
        checks = tuple(
            SuiteCheck(str(c["grade_id"]), str(item["name"]), float(c["points"]), bool(c["hidden"]),
                       str(c["source"]), str(c["title"]))
            for c in item["checks"]
        )
        suites.append(Suite(str(item["name"]), checks, tuple(item.get("skip_ids", [])),
                            {str(k): float(v) for k, v in item.get("manual_points", {}).items()},
                            tuple(item.get("grade_ids", []))))
    return suites


def write(path: Path, suites: Sequence[Suite]) -> None:
    """Deterministic JSON (sorted keys, fixed indentation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(suites), indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load(path: Path) -> List[Suite]:
    return from_json(json.loads(path.read_text(encoding="utf-8")))
