"""The Gradescope bundle: deterministic bytes, the right contents, nothing a student should have, and a grader
package that runs on Python 3.10 with the standard library only."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import grading_fixtures
import pytest

from assignkit.grading import bundle
from assignkit.masters import read_masters

PYTHON310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"
needs_python310 = pytest.mark.skipif(not PYTHON310.exists(), reason="no Python 3.10 interpreter at ~/.pyenv")
built_bundle = grading_fixtures.built_bundle


@pytest.fixture(scope="module")
def archive(fast_build: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(fast_build / "autograder" / "dist" / "autograder.zip")


def test_the_zip_is_deterministic(fast_build: Path, tmp_path: Path) -> None:
    masters = read_masters(fast_build / "source" / "hw_rnn")
    first = bundle.build_bundle(fast_build, masters, tmp_path / "a.zip")
    second = bundle.build_bundle(fast_build, masters, tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (fast_build / "autograder" / "dist" / "autograder.zip").read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in archive.infolist()} == {bundle.ZIP_TIME}


def test_contents_follow_gradescope_conventions(archive: zipfile.ZipFile, fast_build: Path) -> None:
    names = set(archive.namelist())
    assert {"setup.sh", "run_autograder", "requirements.txt", "create_sandbox_user.sh", "bundle.json",
            "suites/suites.json", "suites/public_goldens.json", "runtime/hwcheck.py", "runtime/safe_expr.py"} <= names
    for name in ("setup.sh", "run_autograder", "create_sandbox_user.sh"):
        assert (archive.getinfo(name).external_attr >> 16) & 0o777 == 0o755
    notebooks = sorted(n for n in names if n.endswith(".ipynb"))
    assert notebooks == sorted(f"referee/{m}" for m in ("q_rnn_and_grad.ipynb", "q_rnn_last_name.ipynb",
                                                       "q_written.ipynb", "q_char_lm.ipynb")), \
        "only the referee holds the masters"
    assert "suites/hidden_goldens.json" not in names and "grading_key" not in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    manifest = json.loads(archive.read("bundle.json"))
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    masters = read_masters(fast_build / "source" / "hw_rnn")
    assert set(manifest["notebooks"]) == {f"{m.name}.ipynb" for m in masters}
    hidden_data = fast_build / "autograder" / "hidden_data"
    for path in sorted(hidden_data.glob("*")) if hidden_data.is_dir() else []:
        assert f"hidden_data/{path.name}" in names


def test_setup_pins_a_cpu_torch_and_python310_packages(archive: zipfile.ZipFile) -> None:
    setup = archive.read("setup.sh").decode()
    assert 'TORCH_VERSION="2.13.0"' in setup and "whl/cpu" in setup and "create_sandbox_user.sh" in setup
    # the emulation's HWGRADER_TORCH_INDEX (make emulate-gradescope) is opt-in: unset, torch is the CPU build
    assert 'CPU_INDEX="https://download.pytorch.org/whl/cpu"' in setup
    assert 'TORCH_INDEX="${HWGRADER_TORCH_INDEX:-$CPU_INDEX}"' in setup
    requirements = [line for line in archive.read("requirements.txt").decode().splitlines()
                    if line and not line.startswith("#")]
    assert all("==" in line for line in requirements)
    pins = dict(line.split("==") for line in requirements)
    assert pins["numpy"] < "2.3" and pins["ipython"].startswith("8.")
    assert "torch" not in pins


def test_suites_hold_how_to_run_each_check_but_no_expected_value(archive: zipfile.ZipFile) -> None:
    suites = json.loads(archive.read("suites/suites.json"))["suites"]
    public = json.loads(archive.read("suites/public_goldens.json"))
    checks = [check for suite in suites for check in suite["checks"]]
    assert checks and all(check["grade_id"] in public for check in checks if not check["hidden"])
    assert all("values" not in check["spec"] for check in checks)
    sandboxed = [check for check in checks if check["kind"] == "sandbox"]
    assert sandboxed and all("REFERENCE" not in check["probe_source"] and "reference=" not in check["probe_source"]
                             for check in sandboxed)
    assert all(check["spec"].get("seeded") for check in sandboxed if check["hidden"])
    assert all(check["probe_source"] == "" for check in checks if check["kind"] != "sandbox")
    assert all(check["points"] == 0 for check in checks if not check["hidden"])
    assert len({check["title"] for check in checks}) == len(checks)


@needs_python310
def test_grader_runs_on_python310_with_the_standard_library_only(built_bundle: Path, tmp_path: Path) -> None:
    """Python 3.10 without any package grades a submission with no notebooks (no child needs torch)."""
    files = [str(p) for p in sorted((built_bundle / "grader").rglob("*.py"))]
    subprocess.run([str(PYTHON310), "-m", "py_compile", *files], check=True, capture_output=True)
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "README.txt").write_text("nothing here")
    env = {"AUTOGRADER_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin", "HWGRADER_SANDBOX_USER": "nobody"}
    completed = subprocess.run([str(PYTHON310), "-E", "-s", "-m", "assignkit.grading.gradescope", "--bundle",
                                str(built_bundle)], cwd=str(built_bundle / "grader"), env=env, capture_output=True,
                               text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["tests"] and sum(test["score"] for test in results["tests"]) == 0
    assert "is missing from the submission" in results["output"]
