"""Expected values ("goldens") recorded by running the master solutions, split into public and hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Tuple

from .masters import Master

Goldens = Dict[str, Dict[str, Any]]


def read_records(path: Path) -> Goldens:
    """Read the JSON lines written by ``hwcheck.check`` in record mode: ``{check name: {key: value}}``."""
    goldens: Goldens = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["check"] in goldens:
            raise ValueError(f"check {record['check']!r} was recorded twice in {path}")
        goldens[record["check"]] = record["values"]
    return goldens


def split(goldens: Goldens, masters: Iterable[Master]) -> Tuple[Goldens, Goldens]:
    """Split recorded values into (public, hidden) following the masters' hidden-test regions.

    Every check of every master must have been recorded exactly once.
    """
    public: Goldens = {}
    hidden: Goldens = {}
    for master in masters:
        for check in master.checks:
            if check.grade_id not in goldens:
                raise ValueError(f"{master.name}: check {check.grade_id!r} did not record any values")
            (hidden if check.hidden else public)[check.grade_id] = goldens[check.grade_id]
    return public, hidden


def write(path: Path, goldens: Goldens) -> None:
    """Write goldens deterministically (sorted keys, fixed layout, trailing newline); a file that holds them
    already is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(goldens, sort_keys=True, indent=1, allow_nan=False) + "\n"
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        path.write_text(text, encoding="utf-8")


def load(path: Path) -> Goldens:
    return json.loads(path.read_text(encoding="utf-8"))
