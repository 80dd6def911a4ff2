"""What a student gets next to the notebooks: README, requirements, and the pre-submission check.

check_submission.py is run as a student would (a subprocess in a copy of the release folder): on the solution
it says READY and writes a zip with exactly the files Gradescope expects; on the blank release and on broken
folders it says what is missing or wrong and exits 1. A fresh virtual environment made from the release's
requirements.txt runs every notebook's set-up cells.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict

import pytest
from grading_fixtures import read_notebook
from student_folders import NOTEBOOKS, SUBMITTED, run_check, student_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_release_holds_the_students_readme_requirements_and_check(fast_build: Path) -> None:
    release = fast_build / "release" / "hw_rnn"
    for name in ("README.md", "requirements.txt", "check_submission.py", "hwsubmit.py", "hwcrosscheck.py",
                 "submission_manifest.json"):
        assert (release / name).is_file(), name
    assert (release / "hwsubmit.py").read_bytes() == (ROOT / "assignkit" / "grading" / "submission.py").read_bytes()
    assert (release / "hwcrosscheck.py").read_bytes() == (ROOT / "assignkit" / "grading" / "crosscheck.py").read_bytes()
    manifest = json.loads((release / "submission_manifest.json").read_text())
    assert sorted(manifest["notebooks"]) == sorted(NOTEBOOKS) and manifest["submit"] == list(SUBMITTED)
    assert "answer_t" in manifest["notebooks"]["q_written.ipynb"]["answers"]
    readme = (release / "README.md").read_text()
    for name in (*NOTEBOOKS, *SUBMITTED, "check_submission.py", "pip install -r requirements.txt", "Colab"):
        assert name in readme
    pins = [line for line in (release / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pins and all("==" in line for line in pins) and "torch==2.13.0" in pins


def test_the_solution_is_ready_and_zipped_with_exactly_the_expected_files(fast_build: Path, tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    code, output = run_check(folder, timeout=120)
    assert code == 0, output
    assert "READY" in output
    with zipfile.ZipFile(folder / "hw_rnn_submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted((*NOTEBOOKS, *SUBMITTED))
        assert archive.read("surname_model.pt") == (folder / "surname_model.pt").read_bytes()


def test_the_blank_release_is_not_ready_and_says_why(fast_build: Path, tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=False)
    code, output = run_check(folder, timeout=120)
    assert code == 1 and "NOT READY" in output
    for text in ("surname_model.pt is missing", "submission_log.json is missing", "char_lm.pt is missing",
                 "q_rnn_and_grad.ipynb has never been run", "`answer_t` is still empty",
                 "not done yet (still raise NotImplementedError): rnn_layer"):
        assert text in output, text
    assert not (folder / "hw_rnn_submission.zip").exists()


def broken(folder: Path, what: str) -> str:
    """Break the solution folder one way; return the text the check must print."""
    if what == "corrupted notebook":
        (folder / "q_written.ipynb").write_text('{"cells": [', encoding="utf-8")
        return "q_written.ipynb is not valid notebook JSON"
    if what == "model that is not torch.save output":
        (folder / "surname_model.pt").write_bytes(b"not a zip at all")
        return "surname_model.pt is not a file written by torch.save"
    if what == "log of another model":
        log = json.loads((folder / "submission_log.json").read_text())
        log["weights"]["sha256"] = hashlib.sha256(b"another model").hexdigest()
        (folder / "submission_log.json").write_text(json.dumps(log), encoding="utf-8")
        return "DISAGREES"
    if what == "computed typed answer":
        notebook = read_notebook(folder / "q_written.ipynb")
        for cell in notebook["cells"]:
            if (cell["metadata"].get("nbgrader") or {}).get("grade_id") == "beam_t1":
                cell["source"] = "beam_t1 = list(reversed([('network', -0.73), ('neural', -0.65)]))"
        (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
        return "must be written out as a literal value"
    raise KeyError(what)


@pytest.mark.parametrize("what", ["corrupted notebook", "model that is not torch.save output", "log of another model",
                                  "computed typed answer"])
def test_broken_folders_are_explained(fast_build: Path, tmp_path: Path, what: str) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    expected = broken(folder, what)
    code, output = run_check(folder, timeout=120)
    assert expected in output, output
    assert code == 1 and not (folder / "hw_rnn_submission.zip").exists()  # an unreadable typed answer too: it scores 0


def setup_cells(notebook: Dict) -> str:
    cells = [cell for cell in notebook["cells"] if (cell["metadata"].get("nbgrader") or {}).get("grade_id")
             in ("hw_folder", "setup")]
    return "\n".join("".join(cell["source"]) for cell in cells)


@pytest.mark.slow
def test_a_fresh_environment_from_the_students_requirements_runs_every_set_up_cell(fast_build: Path,
                                                                                    tmp_path: Path) -> None:
    """pip takes torch 2.13.0 from the machine's local wheel (no multi-GB download); the rest comes from PyPI.
    (``--no-compile``: byte-compiling every installed module took half the install; the set-up cells compile
    what they import.)"""
    release = fast_build / "release" / "hw_rnn"
    venv = tmp_path / "student-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-compile", "-r", str(release / "requirements.txt")], capture_output=True, text=True,
                             timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]
    for name in NOTEBOOKS:
        code = setup_cells(read_notebook(release / name)) + "\nprint('set-up done')\n"
        env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HOME": str(tmp_path)}
        completed = subprocess.run([str(python), "-c", code], cwd=release, capture_output=True, text=True,
                                   timeout=300, env=env)
        assert completed.returncode == 0 and "set-up done" in completed.stdout, (name, completed.stderr[-2000:])


def test_a_notebook_run_but_not_saved_is_told_apart_from_one_never_run(fast_build: Path, tmp_path: Path) -> None:
    """Right after Run All the file on disk is older than the run: the last cell says to save and run it again
    (not that the notebook was never run); a check run from outside, or for another notebook, is unchanged."""
    import os
    import time

    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=False)
    started = time.time()
    os.utime(folder / "q_written.ipynb", (started - 60, started - 60))  # saved before this run began
    environment = {**os.environ, "HW_RUNNING_NOTEBOOK": "q_written.ipynb", "HW_RUN_STARTED": repr(started)}
    completed = subprocess.run([sys.executable, "check_submission.py"], cwd=folder, capture_output=True,
                               text=True, timeout=120, env=environment)
    output = completed.stdout + completed.stderr
    assert "q_written.ipynb was run but not saved since" in output and "then run this cell again" in output
    assert "q_written.ipynb has never been run" not in output
    assert "q_rnn_and_grad.ipynb has never been run" in output  # another notebook: as before
    os.utime(folder / "q_written.ipynb", (started + 5, started + 5))  # saved after the run began
    completed = subprocess.run([sys.executable, "check_submission.py"], cwd=folder, capture_output=True,
                               text=True, timeout=120, env=environment)
    assert "was run but not saved" not in completed.stdout + completed.stderr


def test_the_last_cell_of_a_fresh_run_says_save_then_run_again(blank_run) -> None:
    """The blank release run in a real kernel (its file untouched since before the kernel started)."""
    notebook = blank_run("q_written.ipynb")
    last = next(cell for cell in notebook.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                == "check_submission")
    printed = "".join("".join(output.get("text", "")) for output in last.outputs)
    assert "q_written.ipynb was run but not saved since" in printed, printed[:2000]
