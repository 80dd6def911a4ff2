"""The local command: grade one submission folder, or a folder of many into a CSV, in parallel."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import grading_fixtures
import pytest

from assignkit.grading.course import Course

pytestmark = pytest.mark.slow
built_bundle = grading_fixtures.built_bundle


@pytest.fixture
def sandbox_args(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[List[str]]:
    """As root: two accounts of this test's own (``-j 2`` grades as NAME and NAME2, and sweeps them); otherwise
    ``--no-sandbox`` (grade refuses to run student code as you without it)."""
    if not grading_fixtures.is_root():
        yield ["--no-sandbox"]
        return
    base = f"hwcli{os.getpid() % 100000}"
    names = [base, f"{base}2"]
    for name in names:
        grading_fixtures.ensure_sandbox_user(name, grading_fixtures.shared_dir(tmp_path_factory, worker_id))
    yield ["--user", base]
    for name in names:
        grading_fixtures.delete_sandbox_user(name)


def test_grade_many_into_a_csv_and_one_folder(fast_build: Path, built_bundle: Path, tmp_path: Path,
                                              sandbox_args: List[str]) -> None:
    parent = tmp_path / "submissions"
    for name, source in (("alice", "solutions"), ("bob", "release")):
        (parent / name).mkdir(parents=True)
        shutil.copyfile(fast_build / source / "hw_rnn" / "q_rnn_and_grad.ipynb",
                        parent / name / "q_rnn_and_grad.ipynb")
    (parent / "carol").mkdir()
    grades = tmp_path / "grades.csv"
    many = subprocess.run([sys.executable, "-m", "assignkit.grading.grade", "--many", str(parent), "--csv",
                           str(grades), "-j", "2", "--out", str(tmp_path / "out"), "--bundle", str(built_bundle),
                           *sandbox_args], capture_output=True, text=True, check=False, timeout=600)
    assert many.returncode == 0, many.stdout[-2000:] + many.stderr[-2000:]
    if sandbox_args[0] == "--user":  # each of the two workers graded as its own account
        assert f"(as {sandbox_args[1]})" in many.stdout and f"(as {sandbox_args[1]}2)" in many.stdout, many.stdout
    rows = {row["submission"]: row for row in csv.DictReader(grades.open())}
    assert set(rows) == {"alice", "bob", "carol"}
    suites = Course.from_bundle(built_bundle).suites
    points = {check.grade_id: check.points for suite in suites for check in suite.checks}
    assert float(rows["alice"]["test_rnn_layer_hidden"]) == points["test_rnn_layer_hidden"]
    assert float(rows["bob"]["score"]) == 0
    assert float(rows["alice"]["score"]) > 0 and float(rows["carol"]["score"]) == 0
    for name in rows:
        json.loads((tmp_path / "out" / name / "results.json").read_text())
    views = tmp_path / "out" / "written_answers"  # the written answers by question, and the CSV to fill in
    assert "written answers by question" in many.stdout and (views / "written_e.html").is_file()
    assert [row[0] for row in csv.reader((views / "written_scores.csv").open())][2:] == ["alice", "bob", "carol"]

    one = subprocess.run([sys.executable, "-m", "assignkit.grading.grade", str(parent / "carol"), "--out",
                          str(tmp_path / "one"), "--bundle", str(built_bundle), *sandbox_args],
                         capture_output=True, text=True, check=False, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "0 / " in one.stdout
    assert (tmp_path / "one" / "submission_log.json").is_file()
