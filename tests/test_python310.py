"""The runtime the bundle is for: Gradescope's Python 3.10 with the versions of ``autograder/requirements.txt``.

A Python 3.10 virtual environment is built once from that file (torch excepted: PyPI has no CPU build of torch for
Linux, and PyTorch's CPU index is not reachable here; see the README's "Tested on") and cached under
``~/.cache/hw_rnn/``, keyed by the file's contents. In it:

* the sandboxed child starts exactly as in a grading (limits, Landlock, no internet, threads and processes
  refused) and imports every library the master notebooks import, then draws a figure and a progress bar — the
  class of failure where a library starts a thread while it loads (matplotlib 3.10's font manager);
* every module of the grading package that ships in the bundle imports under Python 3.10.

The full emulation (``setup.sh``, ``run_autograder`` as root, solution and blank release) needs torch for 3.10 and
is ``make emulate-gradescope`` (README).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock

from assignkit.emulate import find_python310
from assignkit.grading import startup
from assignkit.grading.bundle import GRADER_MODULES, PACKAGE_INIT
from assignkit.grading.runner import Limits

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "autograder" / "requirements.txt"
SOURCE = ROOT / "source" / "hw_rnn"
RUNTIME_FILES = [SOURCE / "hwcheck.py", SOURCE / "safe_expr.py"]
MASTERS = sorted(SOURCE.glob("q_*.ipynb"))

pytestmark = pytest.mark.xdist_group("python310")  # one worker builds the environment


@pytest.fixture(scope="session")
def python310() -> str:
    """The interpreter of a cached Python 3.10 venv with ``autograder/requirements.txt`` installed."""
    base = find_python310()
    if base is None:
        if os.environ.get("CI"):
            pytest.fail("no Python 3.10 on this machine: the bundle's runtime cannot be tested")
        pytest.skip("no Python 3.10 on this machine")
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hw_rnn"
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"py310-{digest}"
    python = venv / "bin" / "python"
    with FileLock(str(cache / f"py310-{digest}.lock")):
        if not (venv / ".complete").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
            done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                   "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"installing {REQUIREMENTS} on Python 3.10 failed:\n{done.stderr[-3000:]}"
            (venv / ".complete").touch()
    return str(python)


def libraries_without_torch() -> list[str]:
    return [name for name in startup.library_imports(MASTERS) if name.split(".")[0] != "torch"]


def test_the_environment_is_python310_with_the_pinned_matplotlib(python310: str) -> None:
    code = "import sys, matplotlib; print(sys.version_info[:2], matplotlib.__version__)"
    done = subprocess.run([python310, "-c", code], capture_output=True, text=True, check=True)
    pinned = next(line.split("==")[1] for line in REQUIREMENTS.read_text().splitlines()
                  if line.startswith("matplotlib=="))
    assert done.stdout.split() == ["(3,", "10)", pinned]


def test_the_sandboxed_child_starts_and_imports_what_the_notebooks_import_on_python310(python310: str) -> None:
    modules = libraries_without_torch()
    assert {"matplotlib.pyplot", "tqdm.auto", "ipywidgets", "sympy", "IPython.display"} <= set(modules)
    problem = startup.preflight(None, Limits(), RUNTIME_FILES, modules, python=python310)
    assert problem is None, problem


def test_a_library_that_fails_under_the_thread_filter_is_named_by_the_preflight(python310: str) -> None:
    """The preflight is not a formality: a module that starts a thread while it loads, imported only after the
    filter (it is not among the modules warmed up), is reported with the reason."""
    fixture = ROOT / "tests" / "fixtures"
    problem = startup.preflight(None, Limits(), [*RUNTIME_FILES, fixture / "starts_a_thread.py"],
                                ["json", "starts_a_thread"], python=python310)
    assert problem is None  # warmed up before the filter: fine
    problem = startup.preflight(None, Limits(), [*RUNTIME_FILES, fixture / "starts_a_thread.py"], ["json"],
                                python=python310, extra_imports=["starts_a_thread"])
    assert problem is not None and "import starts_a_thread: RuntimeError: can't start new thread" in problem


def test_every_grader_module_imports_on_python310(python310: str, tmp_path: Path) -> None:
    """The grading package as the bundle ships it (``grader/assignkit/grading``) imports under Python 3.10."""
    package = tmp_path / "assignkit" / "grading"
    package.mkdir(parents=True)
    (tmp_path / "assignkit" / "__init__.py").write_bytes(PACKAGE_INIT)
    for module in GRADER_MODULES:
        shutil.copyfile(ROOT / "assignkit" / "grading" / f"{module}.py", package / f"{module}.py")
    names = [f"assignkit.grading.{module}" for module in GRADER_MODULES if module != "__init__"]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    prelude = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
    done = subprocess.run([python310, "-I", "-c", prelude + code, *names], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_children_are_forked_from_a_fork_server_on_python310(python310: str, tmp_path: Path) -> None:
    """The fork server's side (forkserver, runner's confinement, child.py) under Python 3.10: a sandboxed child is
    forked from a 3.10 server with the notebooks' libraries imported, and runs a cell that draws a figure."""
    import json

    from assignkit.grading import forkserver, runner
    from assignkit.grading.runner import ProbeJob, run_notebook

    work, runtime = tmp_path / "work", tmp_path / "runtime"
    work.mkdir()
    runtime.mkdir()
    for path in [*RUNTIME_FILES, runner.CHILD_SCRIPT]:
        shutil.copyfile(path, runtime / path.name)
    source = ("import os, sys\nimport matplotlib.pyplot as plt\nfigure, axis = plt.subplots()\naxis.plot([0, 1])\n"
              "figure.savefig('figure.png')\nprint('VERSION', sys.version_info[:2], os.getppid(), flush=True)")
    cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
    (work / "probe.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    preload = tuple(libraries_without_torch())
    run = run_notebook(ProbeJob(work / "probe.ipynb", [], preload=preload), work, runtime, python=python310)
    server = forkserver.server_for(python310, preload, runner._server_env)
    assert server is not None, forkserver.failures()
    assert run.cells == {0: "ok"}, (run.cells, run.events, run.output_head)
    assert f"VERSION (3, 10) {server.process.pid}" in run.output_head, run.output_head
    assert (work / "figure.png").stat().st_size > 1000
