"""The surname-classifier path of the autograder, on a small synthetic course (independent of the master).

The contract the surname master's hidden check relies on: in the sandbox, the hidden names are in
``$HWGRADE_HIDDEN_DATA/surnames_test_hidden.tsv`` with the ``name`` column only (the labels stay with the
grader, in the goldens and in the private bundle), and the student's ``surname_model.pt`` is in the working
folder, loaded with ``torch.load(weights_only=True)``. The grader scores the reported predictions with the
accuracy rule of the golden entry and cross-checks the student's submission_log.json.
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
from grading_fixtures import assert_no_secrets, assert_valid_results, write_submission

from assignkit.grading.autograde import grade_submission
from assignkit.grading.course import Course
from assignkit.grading.suites import Suite, SuiteCheck

pytestmark = pytest.mark.slow
sandbox_user = grading_fixtures.sandbox_user
SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"
NAMES = [("Abbas", "Arabic"), ("Bauer", "German"), ("Becker", "German"), ("Chen", "Chinese"),
         ("Cohen", "Hebrew"), ("Abadi", "Arabic"), ("Chang", "Chinese"), ("Braun", "German")]
LANGUAGES = ["Arabic", "Chinese", "German", "Hebrew"]
CHECK = '''# Hidden check of the classifier (synthetic stand-in for the surname master's).
### BEGIN HIDDEN TESTS
import csv, os

def probe_surnames_hidden():
    for secret in ({bundle!r},) if {sandboxed!r} else ():
        try:
            open(secret).read()
            raise RuntimeError("the sandbox could read " + secret)
        except PermissionError:
            pass
    with open(os.path.join(os.environ["HWGRADE_HIDDEN_DATA"], "surnames_test_hidden.tsv"), newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\\t"))
    assert rows and all(list(row) == ["name"] for row in rows), "labels reached the sandbox"
    table = torch.load("surname_model.pt", weights_only=True)["first_letter_class"]
    return {{"predictions": torch.tensor([int(table[ord(row["name"][0].lower()) - 97]) for row in rows])}}

hwcheck.check("test_surnames_hidden", probe_surnames_hidden)
### END HIDDEN TESTS
'''


def synthetic_course(folder: Path, sandboxed: bool) -> Course:
    hidden_dir = folder / "bundle" / "hidden_data"
    hidden_dir.mkdir(parents=True)
    tsv = hidden_dir / "surnames_test_hidden.tsv"
    tsv.write_text("name\tlanguage\n" + "".join(f"{n}\t{lang}\n" for n, lang in NAMES), encoding="utf-8")
    os.chmod(folder / "bundle", 0o700)
    labels = [LANGUAGES.index(lang) for _, lang in NAMES]
    source = CHECK.format(bundle=str(tsv), sandboxed=sandboxed)
    check = SuiteCheck("test_surnames_hidden", "q_rnn_last_name", 4.0, True, source, "2.C Classifier — hidden checks")
    suite = Suite("q_rnn_last_name", (check,), (), {"written_misuse": 2.0}, ("setup",))
    golden = {"values": {"predictions": {"kind": "array", "shape": [len(labels)], "values": labels}},
              "score": {"kind": "accuracy", "key": "predictions", "zero": 0.5, "full": 0.9}}
    return Course([suite], {}, {"test_surnames_hidden": golden},
                  [SOURCE / "hwcheck.py", SOURCE / "safe_expr.py"], [], hidden_dir)


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
    course = synthetic_course(tmp_path, sandboxed=user is not None)
    submission = write_submission(tmp_path / "submission", files)
    grading = grade_submission(course, submission, tmp_path / "results", user=user)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert_valid_results(results)
    assert_no_secrets(results, [c.source for c in course.suites[0].checks], course.hidden_goldens)
    return grading, results


def test_accuracy_is_measured_in_the_sandbox_and_scored_by_the_grader(tmp_path: Path, sandbox_user: Any) -> None:
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
