"""The local command: grade one submission folder, or a folder of many into a CSV, in parallel."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grading_fixtures
import pytest

pytestmark = pytest.mark.slow
built_bundle = grading_fixtures.built_bundle


def test_grade_many_into_a_csv_and_one_folder(fast_build: Path, built_bundle: Path, tmp_path: Path) -> None:
    parent = tmp_path / "submissions"
    for name, source in (("alice", "solutions"), ("bob", "release")):
        (parent / name).mkdir(parents=True)
        shutil.copyfile(fast_build / source / "hw_rnn" / "q_rnn_and_grad.ipynb",
                        parent / name / "q_rnn_and_grad.ipynb")
    (parent / "carol").mkdir()
    grades = tmp_path / "grades.csv"
    many = subprocess.run([sys.executable, "-m", "assignkit.grading.grade", "--many", str(parent), "--csv",
                           str(grades), "-j", "2", "--out", str(tmp_path / "out"), "--bundle", str(built_bundle)],
                          capture_output=True, text=True, check=False, timeout=600)
    assert many.returncode == 0, many.stdout[-2000:] + many.stderr[-2000:]
    rows = {row["submission"]: row for row in csv.DictReader(grades.open())}
    assert set(rows) == {"alice", "bob", "carol"}
    assert float(rows["alice"]["test_rnn_layer_hidden"]) == 4 and float(rows["bob"]["score"]) == 0
    assert float(rows["alice"]["score"]) > 0 and float(rows["carol"]["score"]) == 0
    for name in rows:
        json.loads((tmp_path / "out" / name / "results.json").read_text())

    one = subprocess.run([sys.executable, "-m", "assignkit.grading.grade", str(parent / "carol"), "--out",
                          str(tmp_path / "one"), "--bundle", str(built_bundle)],
                         capture_output=True, text=True, check=False, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "0 / " in one.stdout
    assert (tmp_path / "one" / "submission_log.json").is_file()
