"""The surname-classifier path of the autograder, on a small synthetic course (independent of the master).

The contract the surname master's accuracy check relies on: it is a *referee* check. The referee (a trusted
process that runs the master, never student code) finds the labelled hidden names through
``$HW_HIDDEN_SURNAMES`` and the submitted weights through ``hwcheck.submitted_file``, loads them with
``torch.load(weights_only=True)``, and judges the predictions itself. The sandbox never gets a hidden name.
The grader cross-checks the student's submission_log.json against the measured accuracy.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Dict

import grading_fixtures
import pytest
from grading_fixtures import assert_valid_results, write_submission

from assignkit.grading.autograde import grade_submission
from assignkit.grading.course import Course
from assignkit.grading.suites import Suite, SuiteCheck

pytestmark = pytest.mark.slow
sandbox_user = grading_fixtures.sandbox_user
SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"
NAMES = [("Abbas", "Arabic"), ("Bauer", "German"), ("Becker", "German"), ("Chen", "Chinese"),
         ("Cohen", "Hebrew"), ("Abadi", "Arabic"), ("Chang", "Chinese"), ("Braun", "German")]
LANGUAGES = ["Arabic", "Chinese", "German", "Hebrew"]
SCORE = {"kind": "accuracy", "key": "predictions", "zero": 0.5, "full": 0.9}
CHECK = """# Hidden check of the classifier (synthetic stand-in for the surname master's).
### BEGIN HIDDEN TESTS
def hidden_rows():
    lines = open(os.environ["HW_HIDDEN_SURNAMES"], encoding="utf-8").read().splitlines()
    return [line.split("\\t") for line in lines[1:] if line]


def probe_surnames_hidden():
    table = torch.load(hwcheck.submitted_file("surname_model.pt"), weights_only=True)["first_letter_class"]
    return {"predictions": torch.tensor([int(table[ord(row[0][0].lower()) - 97]) for row in hidden_rows()])}


hwcheck.check("test_surnames_hidden", probe_surnames_hidden, where="referee", score=SCORE,
              reference=lambda: {"predictions": torch.tensor([LANGUAGES.index(row[1]) for row in hidden_rows()])})
### END HIDDEN TESTS
"""


def cell(source: str, grade_id: str, **nbgrader: Any) -> Dict[str, Any]:
    return {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": grade_id, **nbgrader}}, "outputs": [],
            "execution_count": None, "source": source}


def synthetic_course(folder: Path) -> Course:
    hidden_dir = folder / "bundle" / "hidden_data"
    hidden_dir.mkdir(parents=True)
    tsv = hidden_dir / "surnames_test_hidden.tsv"
    tsv.write_text("name\tlanguage\n" + "".join(f"{n}\t{lang}\n" for n, lang in NAMES), encoding="utf-8")
    referee = folder / "bundle" / "referee"
    referee.mkdir()
    setup = f"import os\nimport torch\nimport hwcheck\nLANGUAGES = {LANGUAGES!r}\nSCORE = {SCORE!r}\n"
    master = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
              "cells": [cell(setup, "setup"), cell(CHECK, "test_surnames_hidden", grade=True, points=4.0)]}
    (referee / "q_rnn_last_name.ipynb").write_text(json.dumps(master), encoding="utf-8")
    os.chmod(folder / "bundle", 0o700)
    check = SuiteCheck("test_surnames_hidden", "q_rnn_last_name", 4.0, True, "", "2.C Classifier — hidden checks",
                       "referee", {"score": SCORE})
    suite = Suite("q_rnn_last_name", (check,), (), {"written_misuse": 2.0}, ("setup",),
                  ("surname_model.pt", "submission_log.json"))
    return Course([suite], {}, [SOURCE / "hwcheck.py", SOURCE / "safe_expr.py"], referee, [], hidden_dir)


def notebook() -> Dict[str, Any]:
    setup = {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "setup"}}, "outputs": [],
             "execution_count": None, "source": "import torch\nimport hwcheck\n"}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [setup]}


def model_bytes(first_letter_class: Dict[str, int]) -> bytes:
    import torch

    table = torch.zeros(26, dtype=torch.int64)
    for letter, label in first_letter_class.items():
        table[ord(letter) - 97] = label
    buffer = io.BytesIO()
    torch.save({"first_letter_class": table}, buffer)
    return buffer.getvalue()


def grade(tmp_path: Path, files: Dict[str, Any], user: Any) -> tuple:
    course = synthetic_course(tmp_path)
    submission = write_submission(tmp_path / "submission", files)
    grading = grade_submission(course, submission, tmp_path / "results", user=user)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert_valid_results(results)
    for name, _ in NAMES:
        assert name not in json.dumps(results)
    return grading, results


def test_accuracy_is_measured_by_the_referee_and_scored_by_the_grader(tmp_path: Path, sandbox_user: Any) -> None:
    # first letter a -> Arabic, b -> German, c -> Chinese: right for 7 of the 8 names (not Cohen, Hebrew)
    model = model_bytes({"a": 0, "b": 2, "c": 1})
    log = {"weights": {"file": "surname_model.pt", "sha256": "0" * 64, "bytes": 1}, "public_test_accuracy": 0.99}
    grading, results = grade(tmp_path, {"q_rnn_last_name.ipynb": notebook(), "surname_model.pt": model,
                                        "submission_log.json": log}, sandbox_user)
    result = grading.checks["test_surnames_hidden"]
    assert result.points == pytest.approx(4.0 * (7 / 8 - 0.5) / 0.4, abs=0.01), result.message
    assert "accuracy 87.5% on 8 names" in results["tests"][0]["output"]
    assert results["tests"][0]["visibility"] == "after_published"
    assert "German" not in json.dumps(results)
    assert grading.accuracy == pytest.approx(7 / 8)
    notes = " ".join(grading.cross_checks)
    assert "DISAGREES" in notes and "sha256" in notes and "99.0%" in notes
    assert "99.0%" not in results["output"] and "87.5%" not in results["output"], "the measured accuracy is hidden"
    assert "q_rnn_last_name.ipynb: 2 points" in results["output"]


def test_a_pickle_that_is_not_a_state_dict_earns_nothing(tmp_path: Path, sandbox_user: Any) -> None:
    marker = Path("/tmp") / f"hwgrade-pwned-{uuid.uuid4().hex}"

    class Evil:
        def __reduce__(self) -> Any:
            return (os.system, (f"touch {marker}",))

    grading, _ = grade(tmp_path, {"q_rnn_last_name.ipynb": notebook(), "surname_model.pt": pickle.dumps(Evil())},
                       sandbox_user)
    assert grading.checks["test_surnames_hidden"].points == 0
    assert "UnpicklingError" in grading.checks["test_surnames_hidden"].message
    assert not marker.exists()
    assert grading.internal_errors == []  # the student's file failed, not the grader
