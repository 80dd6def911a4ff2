"""Find and validate the files of one submission before anything runs.

A submission folder may hold the files at its top level or in subfolders (a student who uploaded a
folder); names are matched exactly, then case-insensitively, then with a browser's duplicate suffix
(``q_written (1).ipynb``). Symbolic links are never followed and never used, so a crafted upload cannot
make the grader copy its own files into the sandbox. Notebooks are checked with ``json`` and a few
structural rules only (``nbformat`` costs ~2 s to import and would add nothing the child needs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

MODEL_FILE = "surname_model.pt"
STUDENT_LOG = "submission_log.json"
MB = 1024 * 1024
SIZE_LIMITS = {".ipynb": 20 * MB, ".pt": 64 * MB, ".json": 5 * MB}
MAX_JSON_VALUES = {".ipynb": 400_000, ".json": 100_000}
"""Most JSON values (counted as the bytes ``{``, ``[`` and ``,``, an upper bound) a notebook or the log may hold:
every value becomes a Python object in the root grader, and 20 MB of ``[{},{},...]`` would otherwise take a
gigabyte there. A notebook of a few hundred cells with its outputs holds a few thousand."""
MAX_ENTRIES = 5000
MAX_DEPTH = 8
IGNORED_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git"}
CELL_TYPES = {"code", "markdown", "raw"}


@dataclass
class SubmittedFile:
    """One expected file: where it was found, its size and sha256, and what is wrong with it (if anything)."""

    name: str
    path: Optional[Path] = None
    relative: str = ""
    size: int = 0
    sha256: str = ""
    problem: str = ""
    notes: List[str] = field(default_factory=list)
    content: Any = None  # parsed JSON of notebooks and of the student's log

    @property
    def usable(self) -> bool:
        return self.path is not None and not self.problem


@dataclass
class Submission:
    """What the folder holds: the expected files (found or not) and the names of anything else."""

    folder: Path
    files: Dict[str, SubmittedFile]
    other_files: List[str] = field(default_factory=list)
    skipped_links: List[str] = field(default_factory=list)

    def file(self, name: str) -> SubmittedFile:
        return self.files[name]

    @property
    def digest(self) -> str:
        """sha256 over every expected file's name and sha256 (absent ones count as absent): the seeds of the
        hidden checks derive from it, so changing any file a notebook's code can read changes every input."""
        listing = "\n".join(f"{name}\t{found.sha256 or '-'}" for name, found in sorted(self.files.items()))
        return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def walk(folder: Path) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """``([(relative path, path)], [relative paths of symlinks])`` of regular files, bounded in count and depth."""
    found: List[Tuple[str, Path]] = []
    links: List[str] = []
    stack: List[Tuple[Path, int]] = [(folder, 0)]
    seen = 0
    while stack:
        directory, depth = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                return found, links
            relative = printable(os.path.relpath(entry.path, folder))
            if entry.is_symlink():
                links.append(relative)
            elif entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and entry.name not in IGNORED_DIRS and not entry.name.startswith("."):
                    stack.append((Path(entry.path), depth + 1))
            elif entry.is_file(follow_symlinks=False) and not entry.name.startswith("._"):
                found.append((relative, Path(entry.path)))
    return found, links


def printable(name: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD, control
    characters become "?", and very long names are cut (names are shown to students and written to JSON)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join("?" if ord(char) < 32 or ord(char) == 127 else char for char in text)
    return text if len(text) <= 200 else text[:197] + "..."


def _match_rank(filename: str, expected: str) -> Optional[int]:
    """0 for the exact name, 1 for another case, 2 for a duplicate suffix like ``name (1).ext``; else None."""
    if filename == expected:
        return 0
    if filename.lower() == expected.lower():
        return 1
    stem, ext = os.path.splitext(expected)
    pattern = re.escape(stem) + r"(?:\s*\(\d+\)|[-_ ]\d+|[-_ ]copy)" + re.escape(ext)
    return 2 if re.fullmatch(pattern, filename, re.I) else None


def choose(candidates: Sequence[Tuple[str, Path]], expected: str) -> Tuple[Optional[Tuple[str, Path]], List[str]]:
    """The best candidate for ``expected`` (best name match, then shallowest, then alphabetical) and notes."""
    ranked = []
    for relative, path in candidates:
        rank = _match_rank(os.path.basename(relative), expected)
        if rank is not None:
            ranked.append((rank, relative.count(os.sep), relative, path))
    if not ranked:
        return None, []
    ranked.sort()
    best = ranked[0]
    notes = []
    if os.path.basename(best[2]) != expected:
        notes.append(f"used {best[2]!r} as {expected}")
    if len(ranked) > 1:
        others = ", ".join(repr(r[2]) for r in ranked[1:4])
        notes.append(f"{len(ranked) - 1} other file(s) could also be {expected} and were ignored: {others}")
    return (best[2], best[3]), notes


def read_limited(path: Path, limit: int) -> bytes:
    """The file's bytes (never following a symlink); raises ``ValueError`` above ``limit`` bytes."""
    descriptor = os.open(str(path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"is larger than the {limit // MB} MB limit")
    return data


def too_many_values(data: bytes, ext: str) -> str:
    """A problem when ``data`` may hold more JSON values than a file of type ``ext`` should, else ``""``."""
    count = data.count(b"{") + data.count(b"[") + data.count(b",")
    limit = MAX_JSON_VALUES[ext]
    if count > limit:
        return (f"holds too many JSON values ({count:,} brackets and commas; at most {limit:,}): "
                "clear the outputs of very long cells and save it again")
    return ""


def notebook_problem(data: bytes) -> Tuple[str, Any]:
    """``("", notebook)`` for a readable nbformat-4 notebook, else ``(reason, None)``."""
    if not data.strip():
        return "is empty", None
    crowded = too_many_values(data, ".ipynb")
    if crowded:
        return crowded, None
    try:
        notebook = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "is not a text file (not UTF-8)", None
    except RecursionError:
        return "is not a notebook (its JSON is nested too deeply)", None
    except ValueError as error:
        line = getattr(error, "lineno", "?")
        return f"is not valid notebook JSON (broken at line {line}); re-download it from Jupyter", None
    if not isinstance(notebook, dict):
        return "is JSON but not a notebook", None
    if notebook.get("nbformat") != 4:
        version = notebook.get("nbformat")
        if isinstance(version, int) and version < 4:
            return f"is in the old notebook format {version}; open and save it in a current Jupyter", None
        return "is JSON but not a Jupyter notebook (no nbformat 4 marker)", None
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        return "is a notebook without a list of cells", None
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in CELL_TYPES:
            return f"has a malformed cell (cell {index})", None
        source = cell.get("source", "")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            return f"has a malformed cell source (cell {index})", None
        if cell.get("metadata") is not None and not isinstance(cell.get("metadata"), dict):
            return f"has malformed cell metadata (cell {index})", None
    return "", notebook


def grade_ids(notebook: Any) -> List[str]:
    ids = []
    for cell in notebook.get("cells", []):
        nbgrader = (cell.get("metadata") or {}).get("nbgrader")
        if isinstance(nbgrader, dict) and isinstance(nbgrader.get("grade_id"), str):
            ids.append(nbgrader["grade_id"])
    return ids


def inspect_file(found: SubmittedFile, expected_ids: Sequence[str] = ()) -> SubmittedFile:
    """Read ``found.path``: size limit, sha256, and (for notebooks and the log) a JSON check."""
    ext = os.path.splitext(found.name)[1]
    try:
        data = read_limited(found.path, SIZE_LIMITS.get(ext, 5 * MB))  # type: ignore[arg-type]
    except (OSError, ValueError) as error:
        found.problem = str(error) if isinstance(error, ValueError) else "could not be read"
        return found
    found.size = len(data)
    found.sha256 = hashlib.sha256(data).hexdigest()
    if ext == ".ipynb":
        found.problem, found.content = notebook_problem(data)
        if found.content is not None and expected_ids and not set(grade_ids(found.content)) & set(expected_ids):
            found.notes.append("none of its cells come from the released notebook of this name "
                               "(was another notebook uploaded under this name?); it is graded anyway")
    elif ext == ".json":
        found.problem = too_many_values(data, ".json")
        if found.problem:
            return found
        try:
            found.content = json.loads(data.decode("utf-8-sig")) if data.strip() else None
            if found.content is None:
                found.problem = "is empty"
        except (ValueError, RecursionError):
            found.problem = "is not valid JSON"
    elif not data:
        found.problem = "is empty"
    return found


def inspect_submission(folder: Path, notebooks: Dict[str, Sequence[str]],
                       extra: Sequence[str] = (MODEL_FILE, STUDENT_LOG)) -> Submission:
    """Locate and check every expected file. ``notebooks`` maps each notebook's file name to its grade_ids."""
    candidates, links = walk(folder) if folder.is_dir() else ([], [])
    files: Dict[str, SubmittedFile] = {}
    used = set()
    for name in [*notebooks, *extra]:
        best, notes = choose(candidates, name)
        found = SubmittedFile(name, notes=notes)
        if best is None:
            found.problem = "is missing from the submission"
        else:
            found.relative, found.path = best
            used.add(best[0])
            inspect_file(found, notebooks.get(name, ()))
        files[name] = found
    others = [relative for relative, _ in candidates if relative not in used]
    return Submission(folder, files, others[:50], links[:50])
