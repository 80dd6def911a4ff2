"""Instructors choose the notebooks (assignment.toml): the release, the solutions, the bundle, the files a
submission must hold and the grading totals follow the choice.

One real fast build of a three-notebook variant (without the surname classifier), then a grading of its blank
release through the bundle.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import copy_course

from assignkit.grading.autograde import grade_submission
from assignkit.grading.course import Course
from assignkit.masters import SETTINGS_FILE, chosen_notebooks, read_masters

pytestmark = pytest.mark.xdist_group("notebook_choice")  # one worker builds the variant once
CHOSEN = ["q_rnn_and_grad", "q_written", "q_char_lm"]
LEFT_OUT = "q_rnn_last_name"


@pytest.fixture(scope="module")
def three_notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from assignkit.build import build

    course = copy_course(tmp_path_factory.mktemp("choice") / "course")
    (course / SETTINGS_FILE).write_text("notebooks = [" + ", ".join(f'"{name}"' for name in CHOSEN) + "]\n")
    build(course, fast=True)
    return course


def test_the_setting_is_read_and_checked(tmp_path: Path) -> None:
    assert chosen_notebooks(tmp_path) is None  # no file: every master
    for text, problem in (('notebooks = ["q_nope"]', "unknown notebook"), ("notebooks = []", "non-empty list"),
                          ('notebooks = ["q_written", "q_written.ipynb"]', "listed twice"),
                          ("notebooks = [", "assignment.toml: ")):
        (tmp_path / SETTINGS_FILE).write_text(text)
        with pytest.raises(ValueError, match=problem):
            chosen_notebooks(tmp_path)
    (tmp_path / SETTINGS_FILE).write_text('notebooks = ["q_char_lm", "q_written.ipynb"]')
    assert chosen_notebooks(tmp_path) == ["q_char_lm", "q_written"]


def test_the_repository_chooses_all_four_notebooks() -> None:
    root = Path(__file__).resolve().parents[1]
    assert chosen_notebooks(root) == ["q_rnn_and_grad", "q_rnn_last_name", "q_written", "q_char_lm"]


def test_release_solutions_and_goldens_follow_the_choice(three_notebooks: Path) -> None:
    release = three_notebooks / "release" / "hw_rnn"
    assert sorted(path.stem for path in release.glob("*.ipynb")) == sorted(CHOSEN)
    solutions = three_notebooks / "solutions" / "hw_rnn"
    assert sorted(path.stem for path in solutions.glob("*.ipynb")) == sorted(CHOSEN)
    assert (solutions / "char_lm.pt").is_file() and not (solutions / "surname_model.pt").exists()
    assert not (three_notebooks / "source" / "hw_rnn" / "surname_model.pt").exists()
    masters = read_masters(three_notebooks / "source" / "hw_rnn")
    assert [master.name for master in masters] == CHOSEN
    ids = {check.grade_id for master in masters for check in master.checks if not check.hidden}
    public = json.loads((release / "public_goldens.json").read_text())
    assert set(public) == ids
    manifest = json.loads((release / "submission_manifest.json").read_text())  # what check_submission.py expects
    assert sorted(manifest["notebooks"]) == sorted(f"{name}.ipynb" for name in CHOSEN)
    assert manifest["submit"] == ["char_lm.pt"]
    readme = (release / "README.md").read_text()
    assert f"{LEFT_OUT}.ipynb" not in readme and "surname_model.pt" not in readme and "<!--" not in readme
    assert all(f"{name}.ipynb" in readme for name in CHOSEN)


def test_bundle_and_grading_follow_the_choice(three_notebooks: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    with zipfile.ZipFile(three_notebooks / "autograder" / "dist" / "autograder.zip") as archive:
        archive.extractall(bundle)
    course = Course.from_bundle(bundle)
    assert [suite.name for suite in course.suites] == CHOSEN
    assert not (bundle / "referee" / f"{LEFT_OUT}.ipynb").exists()
    assert course.extra_files == ["char_lm.pt"]
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert sorted(manifest["notebooks"]) == sorted(f"{name}.ipynb" for name in CHOSEN)

    submission = tmp_path / "submission"
    submission.mkdir()
    for name in CHOSEN:
        shutil.copyfile(three_notebooks / "release" / "hw_rnn" / f"{name}.ipynb", submission / f"{name}.ipynb")
    grading = grade_submission(course, submission, tmp_path / "results")
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    expected_total = sum(master.autograded_points for master in read_masters(three_notebooks / "source" / "hw_rnn"))
    assert grading.totals()["max_score"] == expected_total == 29 + 18 + 25
    assert sum(test["max_score"] for test in results["tests"]) == expected_total
    assert set(grading.submission.files) == {*(f"{name}.ipynb" for name in CHOSEN), "char_lm.pt"}
    assert "surname_model.pt" not in results["output"] and LEFT_OUT not in results["output"]
    assert grading.totals()["score"] == 0
