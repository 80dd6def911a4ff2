"""End-to-end: the built autograder.zip in Gradescope's folder layout, run as root by run_autograder.

A temporary root stands in for /autograder: the zip is unpacked into source/, run_autograder is copied
next to it, the sandbox account is created by the same create_sandbox_user.sh that setup.sh runs (the
pip part of setup.sh is skipped: the test uses this venv, made usable by the sandbox account), and a
submission goes into submission/. The solution scores full marks, the blank release 0; a grader killed
at any moment leaves a valid results.json and no student process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, Optional

import grading_fixtures
import pytest
from grading_fixtures import (
    NEEDS_ROOT,
    account_of_this_process,
    assert_no_secrets,
    assert_valid_results,
    delete_sandbox_user,
    ensure_sandbox_user,
    shared_dir,
)

from assignkit.emulate import processes_of

pytestmark = [pytest.mark.slow, NEEDS_ROOT]
course = grading_fixtures.course
built_bundle = grading_fixtures.built_bundle


@pytest.fixture
def e2e_user(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
             ) -> Iterator[Any]:
    """An account of the test's own: tests run in parallel, and run_autograder kills its account's leftovers."""
    import zlib

    name = account_of_this_process("hwsbx", f"{zlib.crc32(request.node.name.encode()) % 100000:05d}")
    user = ensure_sandbox_user(name, shared_dir(tmp_path_factory, worker_id))
    yield SimpleNamespace(name=name, uid=user.uid, gid=user.gid)
    delete_sandbox_user(name)


def notebooks_of(folder: Path) -> Dict[str, Path]:
    return {path.name: path for path in sorted(folder.glob("q_*.ipynb"))}


def solution_files(build: Path) -> Dict[str, Path]:
    """The solution notebooks, plus the surname_model.pt, submission_log.json and char_lm.pt the build's run wrote."""
    files = notebooks_of(build / "solutions" / "hw_rnn")
    for name in ("surname_model.pt", "submission_log.json", "char_lm.pt"):
        for place in ("solutions", "source"):
            if (build / place / "hw_rnn" / name).is_file():
                files[name] = build / place / "hw_rnn" / name
                break
    return files


def gradescope_root(tmp_path: Path, bundle_zip: Path, files: Dict[str, Path]) -> Path:
    root = tmp_path / "autograder"
    for part in ("source", "submission", "results"):
        (root / part).mkdir(parents=True)
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(root / "source")
    for name in ("run_autograder", "setup.sh", "create_sandbox_user.sh"):
        os.chmod(root / "source" / name, 0o755)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    for name, path in files.items():
        shutil.copyfile(path, root / "submission" / name)
    return root


def run_autograder(root: Path, user: str, kill_after: Optional[float] = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AUTOGRADER_ROOT": str(root),
           "HWGRADER_PYTHON": sys.executable, "HWGRADER_SANDBOX_USER": user}
    process = subprocess.Popen(["bash", str(root / "run_autograder")], cwd=str(root), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if kill_after is not None:
        time.sleep(kill_after)
        process.send_signal(signal.SIGKILL)
    out, _ = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def read_results(root: Path) -> Dict[str, Any]:
    return json.loads((root / "results" / "results.json").read_text())




def test_solution_scores_full_marks(fast_build: Path, tmp_path: Path, e2e_user: Any, course: Any) -> None:
    root = gradescope_root(tmp_path, fast_build / "autograder" / "dist" / "autograder.zip", solution_files(fast_build))
    started = time.monotonic()
    completed = run_autograder(root, e2e_user.name)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert time.monotonic() - started < 600
    results = read_results(root)
    log = json.loads((root / "results" / "submission_log.json").read_text())
    assert_valid_results(results)
    assert log["finished"] and not log["internal_errors"]
    scaled_checks = {check.grade_id for suite in course.suites for check in suite.checks if check.spec.get("score")}
    for check in log["checks"]:  # the fast build trains its models briefly: scaled checks earn part of their points
        if check["grade_id"] not in scaled_checks:
            assert check["points"] == check["max_points"], check
    assert results["execution_time"] < 600
    assert "Written answers" in results["output"]
    assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published", "hidden"}
    assert (root / "source").stat().st_mode & 0o777 == 0o700
    assert (root / "results").stat().st_mode & 0o777 == 0o700
    assert_no_secrets(results, course)
    assert log["grader"]["sandbox_uid"] == e2e_user.uid
    assert processes_of(e2e_user.uid) == []


def test_blank_release_scores_zero(fast_build: Path, tmp_path: Path, e2e_user: Any) -> None:
    root = gradescope_root(tmp_path, fast_build / "autograder" / "dist" / "autograder.zip",
                           notebooks_of(fast_build / "release" / "hw_rnn"))
    completed = run_autograder(root, e2e_user.name)
    assert completed.returncode == 0, completed.stdout[-3000:]
    results = read_results(root)
    assert_valid_results(results)
    assert sum(test["score"] for test in results["tests"]) == 0
    staff_only = [test for test in results["tests"] if test["visibility"] == "hidden"]
    assert len(staff_only) == 28 and all("still YOUR ANSWER HERE" in test["output"] for test in staff_only)
    beam_exact = next(test["output"] for test in staff_only if test["name"].startswith("2.4 "))  # the bundle's keys
    assert "=== THIS STUDENT'S VARIANT" in beam_exact and "no STUDENT_ID (STUDENT_ID is empty" in beam_exact
    assert len(results["tests"]) - len(staff_only) == sum(len(s.checks) for s in grading_fixtures_course(root).suites)


def grading_fixtures_course(root: Path) -> Any:
    from assignkit.grading.course import Course

    return Course.from_bundle(root / "source")


@pytest.mark.parametrize("kill_after", [0.3, 1.5, 4.0])
def test_a_killed_grader_leaves_valid_results_and_no_process(fast_build: Path, tmp_path: Path, e2e_user: Any,
                                                             kill_after: float) -> None:
    root = gradescope_root(tmp_path, fast_build / "autograder" / "dist" / "autograder.zip", solution_files(fast_build))
    run_autograder(root, e2e_user.name, kill_after=kill_after)
    results = read_results(root)  # always parses: written atomically, placeholder first
    assert isinstance(results["tests"], list) and "output" in results
    deadline = time.monotonic() + 10
    while processes_of(e2e_user.uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(e2e_user.uid) == [], "a student process outlived the killed grader"
