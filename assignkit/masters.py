"""Read the nbgrader master notebooks: which cells are checks, which are hidden, which to skip in grading.

A check cell calls ``hwcheck.check("<its grade_id>", ...)`` or ``hwcheck.answer_check("<its grade_id>", ...)``
once. Hidden parts sit between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (nbgrader strips them
from the release). Inside a hidden part, code between ``### BEGIN REFERENCE`` and ``### END REFERENCE`` is
trusted reference code (e.g. ``torch.nn.LSTM`` behind the homework's parameter names): it runs in the staff
build and in the grader's referee, and is never sent to the sandbox that runs a student's notebook.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

import nbformat

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
REFERENCE_BEGIN = "### BEGIN REFERENCE"
REFERENCE_END = "### END REFERENCE"
SKIP_TAG = "skip-grading"
MASTER_NOTEBOOKS = ("q_rnn_and_grad.ipynb", "q_rnn_last_name.ipynb", "q_written.ipynb", "q_char_lm.ipynb")
_CHECK_CALL = re.compile(r"hwcheck\.(?:check|answer_check)\(\s*\"([A-Za-z0-9_]+)\"")
_HIDDEN_REGION = re.compile(re.escape(HIDDEN_BEGIN) + r".*?" + re.escape(HIDDEN_END) + r"\n?", re.S)
_REFERENCE_REGION = re.compile(re.escape(REFERENCE_BEGIN) + r".*?" + re.escape(REFERENCE_END) + r"\n?", re.S)


@dataclass(frozen=True)
class Check:
    """One check cell of a master: its grade_id, points, full source, and what the sandbox may see of it."""

    grade_id: str
    notebook: str
    points: float
    hidden: bool
    source: str
    probe_source: str


@dataclass
class Master:
    """What the build and the grader need to know about one master notebook."""

    name: str
    path: Path
    checks: List[Check] = field(default_factory=list)
    solution_ids: List[str] = field(default_factory=list)
    manual_points: Dict[str, float] = field(default_factory=dict)
    skip_ids: List[str] = field(default_factory=list)
    submit: List[str] = field(default_factory=list)  # files besides the notebook (notebook metadata hwgrade.submit)

    @property
    def autograded_points(self) -> float:
        return sum(check.points for check in self.checks)


def nbgrader_meta(cell: Any) -> Dict[str, Any]:
    return dict(cell.get("metadata", {}).get("nbgrader", {}) or {})


def strip_hidden(source: str) -> str:
    """Remove the hidden-test regions of a cell, as nbgrader does for the release."""
    return _HIDDEN_REGION.sub("", source)


def _defined_names(source: str) -> Set[str]:
    """Names bound at the top level of ``source`` (functions, classes, assignments, imports)."""
    names: Set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


class _DropReference(ast.NodeTransformer):
    """Removes the ``reference=`` argument of ``hwcheck.check(...)`` calls."""

    def visit_Call(self, node: ast.Call) -> Any:
        self.generic_visit(node)
        function = node.func
        if isinstance(function, ast.Attribute) and function.attr == "check":
            node.keywords = [keyword for keyword in node.keywords if keyword.arg != "reference"]
        return node


def probe_source(source: str, where: str = "check cell") -> str:
    """What the sandbox runs of a check cell: the reference regions and ``reference=`` arguments removed.

    Raises ``ValueError`` when what is left uses a name that only the reference regions define (the probe
    would then depend on trusted code the sandbox must never hold).
    """
    references = "".join(match.group(0) for match in _REFERENCE_REGION.finditer(source))
    rest = _REFERENCE_REGION.sub("", source)
    if REFERENCE_BEGIN in rest or REFERENCE_END in rest:
        raise ValueError(f"{where}: unbalanced {REFERENCE_BEGIN} / {REFERENCE_END}")
    tree = _DropReference().visit(ast.parse(rest))
    if references:
        reference_only = _defined_names(references) - _defined_names(rest)
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        leaked = sorted(reference_only & used)
        if leaked:
            raise ValueError(f"{where}: the probe uses reference-only names: {', '.join(leaked)}")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def read_master(path: Path) -> Master:
    """Parse one master notebook and validate its check cells; raises ``ValueError`` on a malformed master."""
    notebook = nbformat.read(str(path), as_version=4)
    submit = [str(name) for name in (notebook.metadata.get("hwgrade") or {}).get("submit", [])]
    master = Master(name=path.stem, path=path, submit=submit)
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
            if REFERENCE_BEGIN in strip_hidden(cell.source):
                raise ValueError(f"{path.name}: {grade_id!r} has reference code outside its hidden part")
            points = float(meta.get("points", 0))
            if points < 0 or (hidden and points <= 0):
                raise ValueError(f"{path.name}: hidden test cell {grade_id!r} carries no points")
            if points and not hidden:
                raise ValueError(f"{path.name}: public check {grade_id!r} carries points; public checks give "
                                 "feedback only (their expected values are public), so give its points to the "
                                 "hidden check of the same part")
            master.checks.append(Check(grade_id, path.stem, points, hidden, cell.source,
                                       probe_source(cell.source, f"{path.name}: {grade_id}")))
        elif meta.get("grade") and meta.get("solution"):
            master.manual_points[grade_id] = float(meta.get("points", 0))
        elif meta.get("solution"):
            master.solution_ids.append(grade_id)
    return master


SETTINGS_FILE = "assignment.toml"
"""The instructor's choice of notebooks, in the course root (``notebooks = ["q_rnn_and_grad", ...]``)."""


def chosen_notebooks(root: Path) -> Optional[List[str]]:
    """The notebook names listed in ``root/assignment.toml``; ``None`` when there is no such file (all of them).

    Raises ``ValueError`` for a malformed file, an unknown name, a repeated name or an empty list.
    """
    import tomllib

    path = root / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{SETTINGS_FILE}: {error}") from None
    names = settings.get("notebooks")
    known = [Path(name).stem for name in MASTER_NOTEBOOKS]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{SETTINGS_FILE}: `notebooks` must be a non-empty list of names, some of {known}")
    names = [name.removesuffix(".ipynb") for name in names]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{SETTINGS_FILE}: unknown notebook(s) {unknown}; choose from {known}")
    if len(set(names)) != len(names):
        raise ValueError(f"{SETTINGS_FILE}: a notebook is listed twice")
    return names


def read_masters(source_dir: Path, names: Optional[Sequence[str]] = None) -> List[Master]:
    """The master notebooks of the assignment, in the fixed order of MASTER_NOTEBOOKS.

    ``names`` (notebook names without ``.ipynb``) defaults to the instructor's choice in ``assignment.toml`` of
    the course root (``source_dir``'s grandparent) and, without that file, to every master present. A chosen
    master that is missing is an error.
    """
    if names is None:
        names = chosen_notebooks(source_dir.parent.parent)
    if names is None:
        return [read_master(source_dir / name) for name in MASTER_NOTEBOOKS if (source_dir / name).exists()]
    missing = [name for name in names if not (source_dir / f"{name}.ipynb").exists()]
    if missing:
        raise ValueError(f"{SETTINGS_FILE} chooses {missing}, but {source_dir} has no such master")
    return [read_master(source_dir / name) for name in MASTER_NOTEBOOKS if Path(name).stem in names]
