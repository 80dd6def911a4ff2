"""Shared fixtures: one fast build of the whole course in a temporary course directory.

The build (masters executed in record mode with short training, nbgrader release, solutions, bundle)
runs once per test session, shared by all pytest-xdist workers through a file lock.
"""

from __future__ import annotations

import json
import re
import shutil
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "hw_rnn"
COURSE_PARTS = ("source", "autograder", "nbgrader_config.py", "assignment.toml")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Make ``--dist loadgroup`` keep each ``xdist_group`` on one worker, as it promises.

    pytest-xdist marks a grouped test by appending ``@<group>`` to its node id in the worker; xdist 3.8 writes that
    to ``Item._nodeid``, which pytest 9 no longer reads (the id lives in ``Item._id``), so every group was split
    across the workers and each worker computed the group's module fixtures (a variant build, nbgrader autograde,
    graded mutants) again. Here the suffix is written where pytest 9 reads it; nothing changes where xdist's own
    suffix took effect, or without ``--dist loadgroup``."""
    if not getattr(config.option, "loadgroup", False):  # set in the workers of a loadgroup session only
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            item._id = coerce_node_id(item.nodeid + suffix)


def copy_course(target: Path) -> Path:
    """Copy what a build reads (masters, data, autograder sources, nbgrader config) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "dist")
    for part in COURSE_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=ignore, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, target / part)
    return target


@pytest.fixture(scope="session")
def fast_build(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """Path of a course directory built with ``python -m assignkit.build --fast``."""
    from assignkit.build import build

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # one build per session, across xdist workers
    course = shared / "course"
    with FileLock(str(shared / "course.lock")):
        failed = shared / "course.failed"
        if failed.exists():
            pytest.fail(f"the fast build failed:\n{failed.read_text()}")
        if not (course / ".built").exists():
            shutil.rmtree(course, ignore_errors=True)
            copy_course(course)
            try:
                build(course, fast=True)
            except Exception:
                failed.write_text(traceback.format_exc())
                raise
            (course / ".built").touch()
    return course


@pytest.fixture(scope="session")
def blank_run(fast_build: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Callable[[str], Any]:
    """``blank_run("q_written.ipynb")``: that notebook of the fast build's blank release executed top to bottom in
    a real kernel (``HW_FAST=1``, in the release folder, errors do not stop it), once per session however many
    tests and workers read it (they get their own copy of the executed notebook)."""
    import nbformat

    from assignkit.notebooks import execute

    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "blank_runs"
    shared.mkdir(exist_ok=True)
    built = fast_build / "release" / "hw_rnn"

    def run(name: str) -> Any:
        saved = shared / name
        with FileLock(str(shared / f"{name}.lock")):
            if not saved.is_file():
                # in a copy of the release folder of its own: the last cell's check writes a PDF and maybe a zip,
                # which must not end up in the shared build (nor one run's files in another's folder)
                release = shared / f"folder-{Path(name).stem}"
                shutil.rmtree(release, ignore_errors=True)
                shutil.copytree(built, release)
                notebook = execute(release / name, cwd=release, env={"HW_FAST": "1"})
                nbformat.write(notebook, str(shared / f".{name}.tmp"))
                (shared / f".{name}.tmp").replace(saved)
        return nbformat.read(str(saved), as_version=4)

    return run


@pytest.fixture(scope="session")
def all_goldens(fast_build: Path) -> dict:
    """Public and hidden goldens of the fast build, merged."""
    public = json.loads((fast_build / "source" / "hw_rnn" / "public_goldens.json").read_text())
    hidden = json.loads((fast_build / "build" / "goldens" / "hidden_goldens.json").read_text())
    return {**public, **hidden}


def generated_names(course: Path) -> set:
    """The names q_char_lm's language model invented in the executed solution (its tables of samples and beam
    search results). The model never reads the hidden names, but by chance it can invent one of them."""
    path = course / "solutions" / "hw_rnn" / "q_char_lm.ipynb"
    if not path.is_file():
        return set()
    names = set()
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") in ("sample_table", "beam_table"):
            for output in cell.get("outputs", []):
                text = "".join(output.get("data", {}).get("text/markdown", ""))
                names |= {re.sub(r"\s*\([\d.]+%\)$", "", field.strip()) for field in re.split(r"[|,]", text)}
    return names
