"""Whose variant: the student ID typed in a notebook against the account that submitted it.

The typed answers of ``q_written`` have per-student variants (``variants.py``): the numbers come from the
``STUDENT_ID`` the student types, without any secret. So the ID must be the submitter's own, or a student could
type a friend's ID and hand in the friend's answers. On Gradescope the submitters are in
``submission_metadata.json`` (``users``: ``sid`` and ``email`` of each member of the submission); locally a roster
(CSV: ``submission,student_id``) gives them. When the typed ID is none of them, the notebook's typed answers earn
nothing. Everything here reads files only (the typed ID is read as a literal, never run). Standard library only.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ID_VARIABLE = "STUDENT_ID"
ID_CELL = "student_id"
MAX_METADATA_BYTES = 1024**2
MAX_ROSTER_BYTES = 16 * 1024**2


def normalise(raw: Any) -> str:
    """As ``variants.normalise_id``: NFKC, spaces stripped, lower case ("" for anything that is not a string)."""
    return unicodedata.normalize("NFKC", raw).strip().lower() if isinstance(raw, str) else ""


def gradescope_submitters(metadata: Path) -> Optional[List[str]]:
    """The normalised ``sid`` and ``email`` of every user of a Gradescope submission, or ``None`` when the file is
    missing or unreadable (then nothing can be checked)."""
    try:
        if metadata.stat().st_size > MAX_METADATA_BYTES:
            return None
        document = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    users = document.get("users") if isinstance(document, dict) else None
    if not isinstance(users, list):
        return None
    found: List[str] = []
    for user in users:
        if isinstance(user, dict):
            found += [normalise(user.get(key)) for key in ("sid", "email") if normalise(user.get(key))]
    return found or None


def read_roster(path: Path) -> Dict[str, List[str]]:
    """``{submission folder name: [normalised IDs]}`` from a CSV with the columns ``submission`` and ``student_id``
    (one row per member; an e-mail address is accepted as the ID)."""
    if path.stat().st_size > MAX_ROSTER_BYTES:
        raise ValueError(f"{path} is larger than {MAX_ROSTER_BYTES // 1024**2} MiB")
    roster: Dict[str, List[str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"submission", "student_id"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: the roster needs the columns submission and student_id")
        for row in reader:
            name, student = (row.get("submission") or "").strip(), normalise(row.get("student_id"))
            if name and student:
                roster.setdefault(name, []).append(student)
    return roster


@dataclass(frozen=True)
class IdentityVerdict:
    """The outcome for one notebook: ``ok`` when its typed answers may earn points; ``message`` for the student."""

    ok: bool
    typed: str
    message: str


def judge(notebook_path: Optional[Path], submitters: Optional[Sequence[str]], hwcheck: Any) -> IdentityVerdict:
    """Compare the ``STUDENT_ID`` saved in the notebook with the submitters (``None``: unknown, not checked)."""
    typed_raw: Any = None
    if notebook_path is not None:
        try:
            notebook = json.loads(Path(notebook_path).read_text(encoding="utf-8-sig"))
            typed_raw = hwcheck.read_literal_answer(notebook, ID_VARIABLE, ID_CELL)
        except (OSError, ValueError, RecursionError):
            typed_raw = None
    typed = normalise(typed_raw)
    if submitters is None:
        return IdentityVerdict(True, typed, "")
    if not typed:
        return IdentityVerdict(False, typed, f"{ID_VARIABLE} is empty or cannot be read: your typed answers were "
                                              "judged for no one's numbers. Type your own student ID in the first "
                                              "cell, answer for the numbers it gives you, and resubmit.")
    if typed not in submitters:
        return IdentityVerdict(False, typed, f"{ID_VARIABLE} = {typed!r:.60} is not the student ID (or e-mail "
                                              "address) of the account that submitted: typed answers earn points "
                                              "only for your own ID's numbers. Type your own ID, answer for its "
                                              "numbers, and resubmit.")
    return IdentityVerdict(True, typed, "")
