"""The manually graded written questions: what they are, and what a student wrote for them.

A written question is a markdown cell of a master with nbgrader metadata ``grade: true, solution: true``. Its
metadata also carries

* ``rubric``: ``[{"item": text, "points": number}, ...]``, items that add up to the cell's points (staff only:
  the build strips it from the release);
* ``report_figure`` (optional): the grade_id of the code cell whose figure the question asks the student to
  report on; the student's PDF shows that cell's last image;
* ``variant_key`` (optional, true): the question is about numbers of the student's own variant (``variants.py``),
  so the staff's views show each student's key beside the answer.

Used at build time (``questions`` on a master or a release notebook), by the student's ``check_submission.py``
(this file ships in the release as ``hwwritten.py``; there the questions come from the submission manifest)
and by the grader (``answer_of`` on a submitted notebook). Standard library only, Python 3.10.
Student text read here is hostile: it is only ever returned as text, bounded in size.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

UNANSWERED = "YOUR ANSWER HERE"
RUBRIC_KEY = "rubric"
FIGURE_KEY = "report_figure"
VARIANT_KEY = "variant_key"
STUDENT_INFO_ID = "student_info"
MAX_FIGURE_BYTES = 8 * 1024 * 1024
MAX_INFO_CHARS = 200

ANSWERED = "answered"
EMPTY = "unanswered"
MISSING = "missing"
STATUSES = (ANSWERED, EMPTY, MISSING)

_NUMBER = re.compile(r"^(\S+?)\.?\s+(.+)$")
_PROMPT_CELLS = 6


@dataclass(frozen=True)
class Question:
    """One manually graded answer cell: where it is, how it is shown, and (for staff) how it is graded."""

    notebook: str
    grade_id: str
    number: str
    title: str
    points: float
    prompt: str = ""
    rubric: Tuple[Tuple[str, float], ...] = ()
    figure: str = ""
    model_answer: str = ""
    variant: bool = False  # about the student's own variant: the staff views show each student's key

    @property
    def label(self) -> str:
        """``1.E Linear recurrence``."""
        return f"{self.number} {self.title}".strip()

    def to_json(self, staff: bool) -> Dict[str, Any]:
        """The question as JSON; without ``staff``, no rubric and no model answer (what students may see)."""
        data: Dict[str, Any] = {"notebook": self.notebook, "grade_id": self.grade_id, "number": self.number,
                                "title": self.title, "points": self.points, "prompt": self.prompt,
                                "figure": self.figure}
        if staff:
            data["rubric"] = [{"item": item, "points": points} for item, points in self.rubric]
            data["model_answer"] = self.model_answer
            data["variant"] = self.variant
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Question:
        rubric = tuple((str(entry["item"]), float(entry["points"])) for entry in data.get("rubric", []))
        return cls(str(data["notebook"]), str(data["grade_id"]), str(data["number"]), str(data["title"]),
                   float(data["points"]), str(data.get("prompt", "")), rubric, str(data.get("figure", "")),
                   str(data.get("model_answer", "")), bool(data.get("variant", False)))


@dataclass(frozen=True)
class Answer:
    """What a submitted notebook holds for one question: ``status`` is one of STATUSES; ``length`` is the length
    of the whole answer (``text`` may be cut)."""

    status: str
    text: str = ""
    length: int = 0


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def cell_text(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string, whatever the notebook stored (list of lines, string, anything else). JSON can
    hold a lone surrogate (``"\\ud800"``), which no UTF-8 file can: it becomes U+FFFD, so that every page, PDF and
    log that shows the text can be written."""
    source = cell.get("source", "") if isinstance(cell, Mapping) else ""
    if isinstance(source, list):
        text = "".join(part for part in source if isinstance(part, str))
    else:
        text = source if isinstance(source, str) else ""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _cells(notebook: Any) -> List[Mapping[str, Any]]:
    cells = notebook.get("cells", []) if isinstance(notebook, Mapping) else []
    return [cell for cell in cells if isinstance(cell, Mapping)] if isinstance(cells, list) else []


def _meta(cell: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = cell.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _nbgrader(cell: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = _meta(cell).get("nbgrader")
    return meta if isinstance(meta, Mapping) else {}


def is_written(cell: Mapping[str, Any]) -> bool:
    """True for a manually graded answer cell (markdown, nbgrader grade and solution)."""
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "markdown" and bool(meta.get("grade")) and bool(meta.get("solution"))


def _prompt(cells: Sequence[Mapping[str, Any]], index: int) -> str:
    """The markdown cells just above answer cell ``index``, up to the one with the question's heading (scratch
    code cells in between are skipped; a graded cell above ends the prompt)."""
    parts: List[str] = []
    for cell in reversed(cells[max(0, index - _PROMPT_CELLS):index]):
        if _nbgrader(cell).get("grade"):
            break
        if cell.get("cell_type") != "markdown":
            continue
        text = cell_text(cell).strip()
        parts.insert(0, text)
        if any(line.lstrip().startswith("#") for line in text.splitlines()):
            break
    return "\n\n".join(part for part in parts if part)


def questions(notebook: Mapping[str, Any], name: str) -> List[Question]:
    """The written questions of a master (or release) notebook, in cell order, numbered from their headings.

    Answers under one numbered heading are told apart as (a), (b), …; ``model_answer`` is the cell's text (the
    model answer in a master, ``YOUR ANSWER HERE`` in a release).
    """
    from .titles import headings_above  # build time only: the release's copy of this file never calls this

    cells = _cells(notebook)
    above = headings_above(notebook)
    found: List[Tuple[int, str, str, str, Mapping[str, Any]]] = []
    for index, cell in enumerate(cells):
        if not is_written(cell):
            continue
        grade_id = str(_nbgrader(cell).get("grade_id", f"cell_{index}"))
        numbered, nearest = above.get(grade_id, (None, None))
        heading = numbered or nearest or name
        match = _NUMBER.match(heading) if numbered else None
        number, title = (match.group(1), match.group(2)) if match else ("", heading)
        found.append((index, grade_id, number, title, cell))
    shared: Dict[str, int] = {}
    for _, _, number, title, _ in found:
        shared[number + title] = shared.get(number + title, 0) + 1
    seen: Dict[str, int] = {}
    result = []
    for index, grade_id, number, title, cell in found:
        key = number + title
        if shared[key] > 1:
            number = f"{number} ({chr(ord('a') + seen.get(key, 0))})"
            seen[key] = seen.get(key, 0) + 1
        rubric = tuple((str(entry.get("item", "")), float(entry.get("points", 0)))
                       for entry in _meta(cell).get(RUBRIC_KEY, []) or [] if isinstance(entry, Mapping))
        result.append(Question(name, grade_id, number, title, float(_nbgrader(cell).get("points", 0) or 0),
                               _prompt(cells, index), rubric, str(_meta(cell).get(FIGURE_KEY, "") or ""),
                               cell_text(cell).strip(), _meta(cell).get(VARIANT_KEY) is True))
    return result


def rubric_problems(question: Question) -> List[str]:
    """Why a question's rubric is not usable (none, empty items, negative points, a sum that is not its points)."""
    if not question.rubric:
        return [f"{question.notebook}: {question.grade_id} has no rubric"]
    problems = []
    if any(not item.strip() or points < 0 for item, points in question.rubric):
        problems.append(f"{question.notebook}: {question.grade_id} has an empty item or negative points")
    total = sum(points for _, points in question.rubric)
    if abs(total - question.points) > 1e-9:
        problems.append(f"{question.notebook}: the rubric of {question.grade_id} adds up to {total:g}, "
                        f"not its {question.points:g} points")
    return problems


def answer_of(notebook: Any, grade_id: str, limit: Optional[int] = None) -> Answer:
    """The student's answer to ``grade_id``: the first markdown cell with that grade_id (a student may have
    added, deleted or moved cells; a cell turned into code still counts, it is text). ``limit`` bounds the text."""
    for cell in _cells(notebook):
        if str(_nbgrader(cell).get("grade_id", "")) != grade_id:
            continue
        text = cell_text(cell)
        length = len(text)
        if limit is not None and len(text) > limit:
            text = text[:limit]
        stripped = text.strip()
        if not stripped or stripped == UNANSWERED:
            return Answer(EMPTY, "")
        return Answer(ANSWERED, text, length)
    return Answer(MISSING, "")


def figure_of(notebook: Any, grade_id: str) -> Optional[bytes]:
    """The last PNG image among the outputs of the code cell ``grade_id`` (as the student ran it), or None.

    Only decoded, never interpreted here; images larger than MAX_FIGURE_BYTES are ignored.
    """
    for cell in _cells(notebook):
        if str(_nbgrader(cell).get("grade_id", "")) != grade_id or cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs")
        found: Optional[bytes] = None
        for output in outputs if isinstance(outputs, list) else []:
            data = output.get("data") if isinstance(output, Mapping) else None
            image = data.get("image/png") if isinstance(data, Mapping) else None
            if isinstance(image, list):
                image = "".join(part for part in image if isinstance(part, str))
            if not isinstance(image, str) or len(image) > MAX_FIGURE_BYTES * 4 // 3 + 16:
                continue
            try:
                raw = base64.b64decode(image, validate=False)
            except (binascii.Error, ValueError):
                continue
            if raw.startswith(b"\x89PNG\r\n\x1a\n"):
                found = raw
        return found
    return None


def student_info(notebook: Any) -> Dict[str, str]:
    """``{"name": ..., "student_id": ...}`` as typed in the notebook's ``student_info`` cell (or its first cell):
    lines ``Name: ...`` and ``Student ID: ...`` (markdown emphasis allowed). Bounded, one line each."""
    cells = _cells(notebook)
    chosen = next((cell for cell in cells if _nbgrader(cell).get("grade_id") == STUDENT_INFO_ID),
                  cells[0] if cells else {})
    info = {"name": "", "student_id": ""}
    for line in cell_text(chosen)[:20000].splitlines():
        plain = re.sub(r"[*_`]", "", line).strip()
        match = re.match(r"(?i)^(name|student\s*id)\s*:\s*(.*)$", plain)
        if match:
            key = "name" if match.group(1).lower() == "name" else "student_id"
            value = " ".join(match.group(2).split())[:MAX_INFO_CHARS]
            if not info[key]:
                info[key] = value
    return info
