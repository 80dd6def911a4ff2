"""Read the nbgrader master notebooks: which cells are checks, which are hidden, which to skip in grading."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

import nbformat

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
SKIP_TAG = "skip-grading"
MASTER_NOTEBOOKS = ("q_rnn_and_grad.ipynb", "q_rnn_last_name.ipynb", "q_written.ipynb")
_CHECK_CALL = re.compile(r"hwcheck\.check\(\s*\"([A-Za-z0-9_]+)\"")
_HIDDEN_REGION = re.compile(re.escape(HIDDEN_BEGIN) + r".*?" + re.escape(HIDDEN_END) + r"\n?", re.S)


@dataclass(frozen=True)
class Check:
    """One autograded test cell of a master: its grade_id, points and full source (hidden part included)."""

    grade_id: str
    notebook: str
    points: float
    hidden: bool
    source: str


@dataclass
class Master:
    """What the build and the grader need to know about one master notebook."""

    name: str
    path: Path
    checks: List[Check] = field(default_factory=list)
    solution_ids: List[str] = field(default_factory=list)
    manual_points: Dict[str, float] = field(default_factory=dict)
    skip_ids: List[str] = field(default_factory=list)

    @property
    def autograded_points(self) -> float:
        return sum(check.points for check in self.checks)


def nbgrader_meta(cell: Any) -> Dict[str, Any]:
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def strip_hidden(source: str) -> str:
    """Remove the hidden-test regions of a cell, as nbgrader does for the release."""
    return _HIDDEN_REGION.sub("", source)


def read_master(path: Path) -> Master:
    """Parse one master notebook and validate its check cells; raises ``ValueError`` on a malformed master."""
    notebook = nbformat.read(str(path), as_version=4)
    master = Master(name=path.stem, path=path)
    seen: set = set()
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        if grade_id in seen:
            raise ValueError(f"{path.name}: grade_id {grade_id!r} is used twice")
        seen.add(grade_id)
        if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            master.skip_ids.append(grade_id)
        if meta.get("grade") and not meta.get("solution"):
            names = _CHECK_CALL.findall(cell.source)
            if names != [grade_id]:
                raise ValueError(f"{path.name}: test cell {grade_id!r} must call hwcheck.check({grade_id!r}, ...) once")
            hidden = HIDDEN_BEGIN in cell.source
            if hidden and _CHECK_CALL.search(strip_hidden(cell.source)):
                raise ValueError(f"{path.name}: hidden test cell {grade_id!r} calls its check outside its hidden part")
            points = float(meta.get("points", 0))
            if points <= 0:
                raise ValueError(f"{path.name}: test cell {grade_id!r} carries no points")
            master.checks.append(Check(grade_id, path.stem, points, hidden, cell.source))
        elif meta.get("grade") and meta.get("solution"):
            master.manual_points[grade_id] = float(meta.get("points", 0))
        elif meta.get("solution"):
            master.solution_ids.append(grade_id)
    return master


def read_masters(source_dir: Path) -> List[Master]:
    """All master notebooks present in ``source_dir``, in the fixed order of MASTER_NOTEBOOKS."""
    return [read_master(source_dir / name) for name in MASTER_NOTEBOOKS if (source_dir / name).exists()]
