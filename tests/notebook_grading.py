"""Grade one notebook (and optionally a model file) through the real grading path: referee, sandbox, scoring.

Tests of a single notebook use this instead of a shortcut, so they exercise exactly what Gradescope runs
(only the other notebooks of the course are left out).
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional, Union

from key_text import master_cell

from assignkit.grading.autograde import Grading, grade_submission
from assignkit.grading.course import Course
from assignkit.grading.scoring import CheckResult
from assignkit.grading.submission import MODEL_FILE


@lru_cache(maxsize=4)
def course_of(root: str) -> Course:
    return Course.from_repo(Path(root))


def grade_notebook(course_root: Path, name: str, notebook: Union[Dict[str, Any], Path], workdir: Path,
                   model: Optional[bytes] = None, **options: Any) -> Dict[str, CheckResult]:
    """``{grade_id: result}`` for the checks of notebook ``name`` (e.g. ``"q_written"``)."""
    return grade_notebook_run(course_root, name, notebook, workdir, model, **options).checks


def grade_notebook_run(course_root: Path, name: str, notebook: Union[Dict[str, Any], Path], workdir: Path,
                       model: Optional[bytes] = None, files: Optional[Dict[str, bytes]] = None,
                       **options: Any) -> Grading:
    """As :func:`grade_notebook`; ``model`` is submitted as surname_model.pt, ``files`` as named."""
    course = course_of(str(course_root)).subset([name])
    submission = workdir / "submission"
    submission.mkdir(parents=True)
    if isinstance(notebook, Path):
        shutil.copyfile(notebook, submission / f"{name}.ipynb")
    else:
        (submission / f"{name}.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    if model is not None:
        (submission / MODEL_FILE).write_bytes(model)
    for file_name, content in (files or {}).items():
        (submission / file_name).write_bytes(content)
    return grade_submission(course, submission, workdir / "results", **options)


def check_cell_namespace(course_root: Path, name: str, check: str) -> Dict[str, Any]:
    """The master's given and solution code of notebook ``name`` plus the definitions (imports, functions,
    classes) of its check cell ``check``: what a restarted grading child replays of that cell, in process."""
    import os

    import torch

    from assignkit.bench import master_namespace
    from assignkit.grading.child import definitions_only

    master = course_root / "source" / "hw_rnn" / f"{name}.ipynb"
    cell = master_cell(name, check, source=master.parent)
    threads = torch.get_num_threads()
    previous = Path.cwd()
    os.chdir(master.parent)
    try:
        namespace = master_namespace(master)
        exec(compile(definitions_only(cell), f"<{name}:{check}>", "exec"), namespace)
    finally:
        os.chdir(previous)
        torch.set_num_threads(threads)
    return namespace
