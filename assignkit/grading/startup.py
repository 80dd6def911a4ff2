"""What a sandboxed child needs to start, and a check that it can: the libraries the notebooks import.

The sandboxed child refuses new threads and processes (``child.single_threaded``) before any student code runs.
A library that starts a thread while it loads (matplotlib 3.10 builds its font list with a ``threading.Timer``
on Python 3.10) would then fail inside the student's set-up cell. So the child imports, before the filter, every
library the *master* notebooks import (:func:`library_imports`, computed on the trusted side), and
:func:`preflight` checks, with the child's real start-up (the same limits, account, Landlock rules and thread
filter, through :func:`runner.run_notebook`), that each of those imports works. ``setup.sh`` runs the preflight
once; the grader runs it again when a notebook's set-up cells fail, to tell a broken image from a student's bug.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .runner import Limits, ProbeJob, SandboxUser, for_the_installed_torch, run_notebook

LOCAL_MODULES = frozenset({"hwcheck", "safe_expr", "variants", "google", "__future__"})
"""Imports that are not libraries of the grading image: the homework's own modules and Colab's."""
PREFLIGHT_SECONDS = 120.0


def _cell_source(cell: Dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _imported_modules(source: str) -> List[str]:
    """Absolute module names imported anywhere in ``source`` (``import a.b`` and ``from a.b import c`` give
    ``a.b``); IPython's magic lines are dropped, a cell that does not parse gives nothing."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    names: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def library_imports(masters: Iterable[Path]) -> List[str]:
    """Sorted names of the modules the code cells of ``masters`` import, without the homework's own modules:
    ``["IPython.display", "math", "matplotlib.pyplot", "numpy", "torch", ...]``."""
    found = set()
    for path in masters:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                found.update(_imported_modules(_cell_source(cell)))
    return sorted(name for name in found if name.split(".")[0] not in LOCAL_MODULES)


def _preflight_cells(modules: Sequence[str]) -> List[Tuple[str, str]]:
    """``[(label, source)]``: one cell per module (so that one failure does not hide the others), then a first
    use of what the notebooks use at once: a figure drawn and saved, a progress bar."""
    cells = [(f"import {name}", f"import {name}") for name in modules]
    if any(name.startswith("matplotlib") for name in modules):
        cells.append(("a matplotlib figure drawn and saved",
                      "import io\nimport matplotlib.pyplot as plt\nfig, axis = plt.subplots()\n"
                      "axis.plot([0, 1], [1, 0], label='$x^2$')\naxis.legend()\n"
                      "fig.savefig(io.BytesIO(), format='png')\nplt.close(fig)"))
    if "tqdm.auto" in modules:
        cells.append(("a tqdm progress bar", "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass"))
    return cells


def _notebook(cells: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    return {"cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": source}
                      for _, source in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def preflight(user: Optional[SandboxUser], limits: Limits, runtime_files: Sequence[Path],
              modules: Sequence[str], python: str = sys.executable, extra_imports: Sequence[str] = ()
              ) -> Optional[str]:
    """``None`` when a sandboxed child, started exactly as for a grading (``limits``, ``user``, Landlock, no
    internet, the thread and process filter, the ``modules`` imported before it), can import each of ``modules``
    and draw a figure; otherwise a short text naming what failed and why.

    ``runtime_files`` are the child's modules (``hwcheck.py``, ...; ``child.py`` is added); ``extra_imports`` are
    imported in cells only, after the filter (the tests use it); ``user=None`` runs as the caller (still with the
    limits and filters).
    """
    from .child import __file__ as child_file

    if user is not None and os.geteuid() != 0:
        return "checking as the sandbox account needs root"
    root = Path(tempfile.mkdtemp(prefix="hwpreflight-"))
    try:
        os.chmod(root, 0o755)
        runtime, workdir = root / "runtime", root / "work"
        runtime.mkdir(mode=0o755)
        workdir.mkdir(mode=0o700)
        for source in {*map(Path, runtime_files), Path(child_file)}:
            shutil.copyfile(source, runtime / source.name)
            os.chmod(runtime / source.name, 0o644)
        notebook = workdir / "preflight.ipynb"
        cells = _preflight_cells([*modules, *extra_imports])
        notebook.write_text(json.dumps(_notebook(cells)), encoding="utf-8")
        if user is not None:
            for path in (workdir, notebook):
                os.chown(path, user.uid, user.gid)
        job = ProbeJob(notebook, [], mode="sandbox", preload=tuple(modules))
        budget = dataclasses.replace(limits, notebook_seconds=PREFLIGHT_SECONDS, max_restarts=0)
        run = run_notebook(job, workdir, runtime, limits=budget, user=user, python=python,
                           fork_server=False)  # a fresh Python: proves the imports fit the limits
    finally:
        shutil.rmtree(root, ignore_errors=True)
    failed = [f"{cells[index][0]}: {status}"
              for index, status in sorted(run.cells.items()) if status != "ok"]
    missing = len(cells) - len(run.cells)
    if not failed and not missing:
        return None
    mib = 1024**2
    who = "the sandbox account" if user is not None else "this account"
    lines = [f"a sandboxed child ({python}, as {who}, address space {limits.address_space_bytes // mib} MiB, "
             f"data {limits.data_bytes // mib} MiB, threads refused) could not start what the notebooks import:"]
    lines += failed[:8]
    if missing:
        lines.append(f"{missing} of {len(cells)} imports never ran: {'; '.join(run.events[-3:]) or 'no reason given'}")
        if run.output_head:
            lines.append(run.output_head.strip()[-600:])
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m assignkit.grading.startup --bundle DIR --user NAME``: ``setup.sh``'s smoke test. Exit 0 when
    the sandbox account's child starts and imports everything the bundle's masters import; 1 with the reason."""
    import argparse

    from .course import Course
    from .sandbox import find_user, is_root

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--bundle", type=Path, required=True, help="the unzipped autograder bundle")
    parser.add_argument("--user", default=None, help="the sandbox account (default: the bundle's)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter the children run")
    args = parser.parse_args(argv)
    course = Course.from_bundle(args.bundle)
    name = args.user or course.sandbox_user
    user = find_user(name) if is_root() else None
    if is_root() and user is None:
        print(f"the sandbox account {name!r} does not exist", file=sys.stderr)
        return 1
    try:  # HWGRADER_ALLOW_CUDA_TORCH: the emulation with a CUDA build of torch only, as in gradescope.py
        limits = for_the_installed_torch(Limits())
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    problem = preflight(user, limits, course.runtime_files, course.libraries, python=args.python)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(f"the sandboxed child starts and imports {len(course.libraries)} modules: {', '.join(course.libraries)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
