"""Every notebook opens with a table of its parts and their points; the points are the masters' own.

The table of each master's first cell lists, per part (``1.A``, ``1.E–G``, ``2.1–2.3`` ...), the points of the
graded cells under that part's headings, as a sum (``3 + 2 + 2``). This test recomputes them from the nbgrader
metadata, so a change of points that forgets the table fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from conftest import SOURCE

MASTERS = sorted(path.name for path in SOURCE.glob("q_*.ipynb"))
HEADING = re.compile(r"^#{2,3}\s+(\d+)\.(?:(\d+|[A-Z])\b)?")


def expand(label: str) -> Set[str]:
    """``"1.E–G"`` -> {"1.E", "1.F", "1.G"}; ``"2.1–2.3"`` -> {"2.1", "2.2", "2.3"}; ``"3"`` -> {"3"}."""
    match = re.fullmatch(r"(\d+)(?:\.(\w+))?(?:\s*[–-]\s*(?:\d+\.)?(\w+))?", label.strip())
    assert match, f"unreadable part label {label!r}"
    number, first, last = match.groups()
    if first is None:
        return {number}
    if last is None:
        return {f"{number}.{first}"}
    if first.isdigit():
        return {f"{number}.{n}" for n in range(int(first), int(last) + 1)}
    return {f"{number}.{chr(c)}" for c in range(ord(first), ord(last) + 1)}


def table(notebook: Dict) -> Dict[frozenset, float]:
    """``{parts: points}`` of the parts table (the first markdown cell that has one; rows whose points are "not
    graded" are 0)."""
    text = next(text for text in ("".join(cell["source"]) for cell in notebook["cells"]) if "| Part |" in text)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    column = header.index("Points")
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        points = cells[column]
        value = 0.0 if not re.search(r"\d", points) else sum(float(term) for term in points.split("+"))
        rows[frozenset(expand(cells[0]))] = value
    return rows


def part_of(heading: str, known: Set[str]) -> Optional[str]:
    match = HEADING.match(heading)
    if not match:
        return None
    number, sub = match.groups()
    if sub is None:  # "## 4. Designing ..." opens part 4.1 where the table has no row "4"
        return number if number in known else f"{number}.1"
    return f"{number}.{sub}"


def points_by_part(notebook: Dict, known: Set[str]) -> Dict[str, float]:
    found: Dict[str, float] = {}
    part = None
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("#"):
            part = part_of(source.splitlines()[0], known) or part
        points = (cell.get("metadata", {}).get("nbgrader") or {}).get("points") or 0
        if points:
            assert part is not None, "a graded cell before the first part heading"
            found[part] = found.get(part, 0.0) + float(points)
    return found


def test_labels_expand_as_the_tables_write_them():
    assert expand("1.E–G") == {"1.E", "1.F", "1.G"}
    assert expand("2.1–2.3") == {"2.1", "2.2", "2.3"}
    assert expand("3") == {"3"} and expand("2.D") == {"2.D"}


@pytest.mark.parametrize("name", MASTERS)
def test_every_notebook_lists_its_parts_with_the_points_of_its_graded_cells(name):
    notebook = json.loads((SOURCE / name).read_text(encoding="utf-8"))
    rows = table(notebook)
    known = set().union(*rows)
    found = points_by_part(notebook, known)
    assert set(found) <= known, f"{name}: parts with points but no row: {sorted(set(found) - known)}"
    mismatched: List[str] = []
    for parts, listed in rows.items():
        actual = sum(found.get(part, 0.0) for part in parts)
        if actual != listed:
            mismatched.append(f"{'/'.join(sorted(parts))}: table {listed:g}, cells {actual:g}")
    assert not mismatched, f"{name}: " + "; ".join(mismatched)
    total = sum(float((c.get("metadata", {}).get("nbgrader") or {}).get("points") or 0) for c in notebook["cells"])
    assert sum(rows.values()) == total


def test_a_changed_point_value_is_noticed(tmp_path: Path):
    notebook = json.loads((SOURCE / "q_rnn_last_name.ipynb").read_text(encoding="utf-8"))
    rows = table(notebook)
    cell = next(c for c in notebook["cells"] if (c["metadata"].get("nbgrader") or {}).get("grade_id")
                == "test_encoding_hidden")
    cell["metadata"]["nbgrader"]["points"] = 4
    found = points_by_part(notebook, set().union(*rows))
    assert found["2.A"] == 4 != rows[frozenset({"2.A"})]
