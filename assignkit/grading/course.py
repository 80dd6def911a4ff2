"""What grading needs to know about the course: the suites, the public goldens, the masters the referee
runs, the modules, the data and the grading key.

Two sources, one structure:

* an unzipped Gradescope bundle (``Course.from_bundle``; stdlib only, this is what runs on Gradescope);
* the repository after ``make release`` (``Course.from_repo``; reads the masters, for local grading).

Of all this, only the runtime modules (public), the public data and the probe part of each check ever
reach the sandbox; the masters (solutions and reference code), the hidden data (labels) and the grading
key stay with the grader and its referee.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import suites as suite_files
from .redact import Redactor
from .sandbox import DEFAULT_USER
from .seeds import KEY_FILE
from .suites import Suite

ASSIGNMENT = "hw_rnn"
RUNTIME_MODULES = ("hwcheck.py", "safe_expr.py", "variants.py")
PUBLIC_GOLDENS = "public_goldens.json"
HIDDEN_GOLDENS = "hidden_goldens.json"
STUDENT_ONLY = {"check_submission.py", "hwsubmit.py", "hwcrosscheck.py", "submission_manifest.json", "README.md",
                "requirements.txt", "hwwritten.py", "hwpdf.py", "hw_rnn_written.pdf", "hw_rnn_submission.zip"}
"""Release files for the student's own use, not data a notebook reads: the grader does not copy them anywhere."""
NOT_PUBLIC_DATA = {*RUNTIME_MODULES, PUBLIC_GOLDENS, *STUDENT_ONLY}
SKIPPED_DIRS = {".ipynb_checkpoints", "__pycache__"}

# Layout of the bundle (relative to its root).
MANIFEST = "bundle.json"
SUITES = "suites/suites.json"
BUNDLE_PUBLIC_GOLDENS = f"suites/{PUBLIC_GOLDENS}"
RUNTIME_DIR = "runtime"
REFEREE_DIR = "referee"
PUBLIC_DIR = "public"
HIDDEN_DATA_DIR = "hidden_data"
GRADER_DIR = "grader"


def public_files(release_dir: Path) -> List[Tuple[str, Path]]:
    """``[(relative path, path)]`` of the files students get next to their notebooks (data), sorted.

    Notebooks, the check modules and the public goldens are not data: the sandbox gets the trusted
    modules separately and the student's notebooks from the submission.
    """
    found = []
    if not release_dir.is_dir():
        return found
    for directory, dirnames, filenames in os.walk(release_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(directory) / name
            relative = path.relative_to(release_dir).as_posix()
            if name.endswith(".ipynb") or relative in NOT_PUBLIC_DATA or name.startswith("."):
                continue
            found.append((relative, path))
    return sorted(found)


def _load_json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass
class Course:
    """The suites and everything around them, wherever they were read from."""

    suites: List[Suite]
    public_goldens: Dict[str, Any]
    runtime_files: List[Path]
    referee_dir: Path  # the master notebooks (solutions, hidden checks, reference code): never in the sandbox
    public_data: List[Tuple[str, Path]] = field(default_factory=list)
    hidden_data_dir: Optional[Path] = None
    key_path: Optional[Path] = None
    sandbox_user: str = DEFAULT_USER
    origin: str = ""
    _redactor: Optional[Redactor] = field(default=None, repr=False)
    _libraries: Optional[List[str]] = field(default=None, repr=False)

    @property
    def hwcheck_path(self) -> Path:
        return next(path for path in self.runtime_files if path.name == "hwcheck.py")

    @property
    def extra_files(self) -> List[str]:
        """The files students submit besides the notebooks, in the order the masters name them."""
        names: List[str] = []
        for suite in self.suites:
            names += [name for name in suite.submit if name not in names]
        return names

    @property
    def libraries(self) -> List[str]:
        """The modules the master notebooks import (``startup.library_imports``): a sandboxed child imports them
        before it refuses threads, and the preflight checks that each one works under the sandbox."""
        if self._libraries is None:
            from .startup import library_imports

            self._libraries = library_imports(self.master_path(suite) for suite in self.suites)
        return self._libraries

    def master_path(self, suite: Suite) -> Path:
        return self.referee_dir / suite.filename

    def check_sources(self, suite: Suite) -> List[Tuple[Any, str]]:
        """``[(check, full cell source)]`` of the master's check cells in notebook order (trusted side only: the
        sources hold hidden parts and reference code)."""
        notebook = json.loads(self.master_path(suite).read_text(encoding="utf-8"))
        by_id = {check.grade_id: check for check in suite.checks}
        found = []
        for cell in notebook.get("cells", []):
            grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
            if grade_id in by_id:
                source = cell.get("source", "")
                found.append((by_id[grade_id], "".join(source) if isinstance(source, list) else source))
        return found

    def subset(self, names: Sequence[str]) -> Course:
        """The same course with only the notebooks named (``q_written`` ...), e.g. to grade one notebook."""
        unknown = sorted(set(names) - {suite.name for suite in self.suites})
        if unknown:
            raise ValueError(f"no such notebook in this course: {', '.join(unknown)}")
        return dataclasses.replace(self, suites=[suite for suite in self.suites if suite.name in names],
                                   _redactor=None, _libraries=None)

    @property
    def redactor(self) -> Redactor:
        """Defence in depth only: hidden probes hold no answers, and their inputs change with every grading."""
        if self._redactor is None:
            hidden = [check.probe_source for suite in self.suites for check in suite.checks if check.hidden]
            self._redactor = Redactor(hidden, {})
        return self._redactor

    def suite(self, name: str) -> Suite:
        return next(suite for suite in self.suites if suite.name == name)

    @classmethod
    def from_bundle(cls, bundle: Path) -> Course:
        """Read an unzipped bundle (see :mod:`assignkit.grading.bundle` for its layout)."""
        manifest = _load_json(bundle / MANIFEST)
        if not manifest:
            raise FileNotFoundError(f"{bundle} is not an autograder bundle (no {MANIFEST})")
        public_dir = bundle / PUBLIC_DIR
        return cls(
            suites=suite_files.load(bundle / SUITES),
            public_goldens=_load_json(bundle / BUNDLE_PUBLIC_GOLDENS),
            runtime_files=[bundle / RUNTIME_DIR / name for name in RUNTIME_MODULES
                           if (bundle / RUNTIME_DIR / name).is_file()],
            referee_dir=bundle / REFEREE_DIR,
            public_data=[(p.relative_to(public_dir).as_posix(), p) for p in sorted(public_dir.rglob("*"))
                         if p.is_file()] if public_dir.is_dir() else [],
            hidden_data_dir=bundle / HIDDEN_DATA_DIR,
            key_path=bundle / KEY_FILE,
            sandbox_user=str(manifest.get("sandbox_user", DEFAULT_USER)),
            origin=f"bundle {bundle}",
        )

    @classmethod
    def from_repo(cls, root: Path) -> Course:
        """The repository (or a built course folder) after ``make release``."""
        from ..masters import read_masters

        source = root / "source" / ASSIGNMENT
        hidden_path = root / "build" / "goldens" / HIDDEN_GOLDENS
        if not (source / PUBLIC_GOLDENS).is_file() or not hidden_path.is_file():
            raise FileNotFoundError(f"no goldens in {root}: run `make release` first")
        public = _load_json(source / PUBLIC_GOLDENS)
        recorded = {**public, **_load_json(hidden_path)}
        return cls(
            suites=[suite_files.from_master(master, recorded) for master in read_masters(source)],
            public_goldens=public,
            runtime_files=[source / name for name in RUNTIME_MODULES if (source / name).is_file()],
            referee_dir=source,
            public_data=public_files(root / "release" / ASSIGNMENT),
            hidden_data_dir=root / "autograder" / HIDDEN_DATA_DIR,
            key_path=root / "build" / KEY_FILE,
            origin=f"repository {root}",
        )


def notebook_ids(suites: Sequence[Suite]) -> Mapping[str, Sequence[str]]:
    """``{notebook file name: its grade_ids}``: what the submission check looks for."""
    return {suite.filename: suite.grade_ids for suite in suites}
