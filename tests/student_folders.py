"""A student's folder made from the fast build, check_submission.py run in it, and the release's own modules imported
in a test (shared by the tests of the student's side)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Tuple

NOTEBOOKS = ("q_rnn_and_grad.ipynb", "q_rnn_last_name.ipynb", "q_written.ipynb", "q_char_lm.ipynb")
SUBMITTED = ("surname_model.pt", "submission_log.json", "char_lm.pt")
RELEASE_MODULES = ("check_submission", "hwcheck", "hwcrosscheck", "hwsubmit", "hwwritten")


def student_folder(fast_build: Path, target: Path, solution: bool) -> Path:
    """A copy of the release folder, with the solution's notebooks and files when ``solution``."""
    shutil.copytree(fast_build / "release" / "hw_rnn", target)
    if solution:
        for name in (*NOTEBOOKS, *SUBMITTED):
            shutil.copyfile(fast_build / "solutions" / "hw_rnn" / name, target / name)
    return target


def run_check(folder: Path, timeout: float = 600) -> Tuple[int, str]:
    """``(exit code, output)`` of ``python check_submission.py`` run in ``folder``."""
    completed = subprocess.run([sys.executable, "check_submission.py"], cwd=folder, capture_output=True, text=True,
                               timeout=timeout)
    return completed.returncode, completed.stdout + completed.stderr


def release_check_submission(release: Path, monkeypatch: Any) -> Any:
    """The release's ``check_submission`` module, imported with the release's own helpers (``hwcheck`` ...) for
    this test only: ``monkeypatch`` puts back whatever those names meant before."""
    monkeypatch.syspath_prepend(str(release))
    for name in RELEASE_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # remembered now, restored (or removed) afterwards
        del sys.modules[name]
    import check_submission

    return check_submission
