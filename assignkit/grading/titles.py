"""Readable test names for Gradescope, from a check's grade_id and the heading it sits under in the master.

    "1.A A vanilla RNN layer — public check"
    "1.K Stacking recurrent layers — hidden checks (stacked lstm)"

The nearest numbered heading above a check cell wins ("## 1.H An LSTM layer" over a later
"### The LSTM in the visualiser"); without one, the nearest heading; without any, the notebook's name.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_NUMBERED = re.compile(r"^(?:\d+(?:\.[A-Za-z0-9]+)*\.?|[A-Z]\d*(?:\.\d+)*\.|Q\d+[a-z]?\.?|Part\s+\w+)\s", re.I)
_MARKUP = re.compile(r"[*_`$]")
MAX_TITLE = 90


def cell_text(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def clean_heading(text: str) -> str:
    """A heading without markdown emphasis, code or math marks, shortened to a readable length."""
    text = " ".join(_MARKUP.sub("", text).split())
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1].rstrip() + "…"


def headings_above(notebook: Mapping[str, Any]) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """``{grade_id: (nearest numbered heading, nearest heading)}`` for every cell that has a grade_id."""
    numbered: Optional[str] = None
    nearest: Optional[str] = None
    found: Dict[str, Tuple[Optional[str], Optional[str]]] = {}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in cell_text(cell).splitlines():
                match = _HEADING.match(line)
                if match:
                    nearest = clean_heading(match.group(1))
                    if _NUMBERED.match(nearest):
                        numbered = nearest
        grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if grade_id:
            found[str(grade_id)] = (numbered, nearest)
    return found


def short_label(grade_id: str) -> str:
    """``test_stacked_lstm_hidden`` -> ``stacked lstm``."""
    label = re.sub(r"^test_", "", grade_id)
    label = re.sub(r"_(public|hidden)$", "", label)
    return label.replace("_", " ")


def check_titles(notebook: Mapping[str, Any], notebook_name: str, checks: Sequence[Any]) -> Dict[str, str]:
    """``{grade_id: test name}`` for ``checks`` (objects with ``.grade_id`` and ``.hidden``); names are unique."""
    above = headings_above(notebook)
    base: Dict[str, str] = {}
    for check in checks:
        numbered, nearest = above.get(check.grade_id, (None, None))
        section = numbered or nearest or notebook_name
        kind = "hidden checks" if check.hidden else "public check"
        base[check.grade_id] = f"{section} — {kind}"
    counts: Dict[str, int] = {}
    for title in base.values():
        counts[title] = counts.get(title, 0) + 1
    titles: Dict[str, str] = {}
    used: List[str] = []
    for check in checks:
        title = base[check.grade_id]
        if counts[title] > 1:
            title = f"{title} ({short_label(check.grade_id)})"
        if title in used:
            title = f"{title} [{check.grade_id}]"
        used.append(title)
        titles[check.grade_id] = title
    return titles
