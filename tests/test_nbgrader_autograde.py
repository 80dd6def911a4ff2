"""Real `nbgrader autograde` (sqlite gradebook): the executed solution earns every autograded point,
the blank release earns none. Hidden checks run in the kernel against the hidden goldens.

Checks scored on a scale (the surname classifier's hidden accuracy, the language model's bits per character)
are all-or-nothing under nbgrader, and the fast-mode models trained by the test build are deliberately too
short-trained to reach full marks; they are graded with partial credit by our own grader
(tests/test_autograder_surnames.py, tests/test_char_lm_notebook.py), so here they only have to be present."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assignkit.grading.bench import nbgrader_autograded_points as autograded_points
from assignkit.masters import read_masters

pytestmark = pytest.mark.xdist_group("nbgrader_autograde")  # one worker runs nbgrader autograde once for both tests


@pytest.fixture(scope="module")
def autograded_course(fast_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    shutil.copytree(fast_build, course, ignore=shutil.ignore_patterns("autograded", "submitted"))
    for student, folder in (("solver", "solutions"), ("blank", "release")):
        target = course / "submitted" / student / "hw_rnn"
        target.mkdir(parents=True)
        for notebook in (course / folder / "hw_rnn").glob("*.ipynb"):
            shutil.copy(notebook, target / notebook.name)
        for extra in ("surname_model.pt", "char_lm.pt"):
            if (course / folder / "hw_rnn" / extra).exists():
                shutil.copy(course / folder / "hw_rnn" / extra, target / extra)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HWCHECK_GOLDENS"] = str(course / "build" / "goldens" / "hidden_goldens.json")
    env["HW_HIDDEN_SURNAMES"] = str(course / "autograder" / "hidden_data" / "surnames_test_hidden.tsv")
    result = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", "hw_rnn", "--force"], cwd=course,
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return course


def test_solution_gets_every_autograded_point(autograded_course):
    points = autograded_points(autograded_course, "solver")
    expected = {check.grade_id for master in read_masters(autograded_course / "source" / "hw_rnn")
                for check in master.checks}
    assert set(points) == expected
    goldens = json.loads((autograded_course / "build" / "goldens" / "hidden_goldens.json").read_text())
    scaled = {name for name, entry in goldens.items() if entry.get("score")}
    assert scaled <= expected, "every scaled check is a graded cell"
    missing = {name: score for name, score in points.items() if score[0] != score[1] and name not in scaled}
    assert missing == {}


def test_blank_release_gets_zero(autograded_course):
    points = autograded_points(autograded_course, "blank")
    assert points and all(score == 0 for score, _ in points.values())
