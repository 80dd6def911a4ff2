"""Grade one notebook file against one master: sandboxed run, then scoring in this (trusted) process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .child import __file__ as CHILD_FILE
from .runner import Limits, NotebookRun, ProbeJob, SandboxUser, run_notebook
from .scoring import CheckResult, load_hwcheck, score_run

RUNTIME_MODULES = ("hwcheck.py", "safe_expr.py")


def prepare_runtime(runtime_dir: Path, module_dir: Path) -> Path:
    """Copy what the sandboxed child imports (child.py and the master's public helper modules)."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(CHILD_FILE, runtime_dir / "child.py")
    for name in RUNTIME_MODULES:
        if (module_dir / name).exists():
            shutil.copy2(module_dir / name, runtime_dir / name)
    return runtime_dir


def grade_notebook(notebook: Path, master: Any, goldens: Mapping[str, Any], module_dir: Path, workdir: Path,
                   *, limits: Optional[Limits] = None, user: Optional[SandboxUser] = None
                   ) -> Tuple[Dict[str, CheckResult], NotebookRun]:
    """Run ``notebook`` (a student's file) with ``master``'s checks and score it.

    ``module_dir`` holds the trusted ``hwcheck.py``/``safe_expr.py``; ``workdir`` is the child's scratch
    folder (the notebook is copied there, next to anything else the caller put in it).
    """
    runtime = prepare_runtime(workdir.parent / f"{workdir.name}-runtime", module_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    local_copy = workdir / f"{master.name}.ipynb"
    if notebook.resolve() != local_copy.resolve():
        shutil.copyfile(notebook, local_copy)
    job = ProbeJob(local_copy, master.checks, master.skip_ids)
    run = run_notebook(job, workdir, runtime, limits=limits or Limits(), user=user)
    return score_run(master, run, goldens, load_hwcheck(module_dir / "hwcheck.py")), run
