"""Helpers for the autograder tests: the sandbox account, submissions made from the fast build, checks on results.

The corpus of bad submissions is made by mutating the executed solution notebook of the fast build:
replace one cell's source (found by grade_id), add a cell, or write raw bytes under a notebook's name.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
CREATE_USER = ROOT / "autograder" / "create_sandbox_user.sh"
TEST_USER = "hwsandbox"
NEEDS_ROOT = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="dropping privileges to the sandbox user needs root (CI runs as root)")


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ancestors(path: Path) -> List[Path]:
    path = path.resolve()
    return [path, *path.parents]


def make_interpreter_reachable(uid: int, gid: int) -> List[str]:
    """Let the sandbox account run this interpreter and import this venv's packages.

    Only search permission (o+x) is added, and only on folders above the interpreter, its standard
    library and the venv that lack it (e.g. /root when the interpreter lives under ~/.pyenv).
    Returns the folders changed.
    """
    changed = []
    places = [Path(os.path.realpath(sys.executable)), Path(sys.base_prefix), Path(sys.prefix)]
    for place in places:
        for folder in ancestors(place):
            if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
                os.chmod(folder, folder.stat().st_mode | stat.S_IXOTH)
                changed.append(str(folder))
    code = "import numpy, IPython, importlib.util as u; assert u.find_spec('torch')"  # cheaper than importing torch
    probe = subprocess.run([sys.executable, "-I", "-c", code], user=uid, group=gid,
                           extra_groups=[], capture_output=True, text=True, check=False, cwd="/")
    if probe.returncode != 0:
        raise RuntimeError(f"the sandbox account cannot run this interpreter:\n{probe.stderr[-2000:]}")
    return changed


def account_of_this_process(prefix: str, tag: str = "") -> str:
    """A sandbox account name no other test process on this machine uses at the same time: the prefix, this
    process's id and an optional tag (``hwatk-81234``, ``hwsbx-81234-00412``). Names that depended only on the
    xdist worker (``hwsandbox-gw0``) were shared by concurrent test sessions, whose sweeps then killed each
    other's gradings."""
    return f"{prefix}-{os.getpid()}{'-' + tag if tag else ''}"[:32]


def tasks_of(uid: int) -> List[int]:
    """Every process whose real uid is ``uid``, zombies included: each counts against the account's RLIMIT_NPROC
    until its parent (often init, after a sweep) has reaped it."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text(errors="replace")
            except OSError:
                continue
            line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
            if line.split()[1:2] == [str(uid)]:
                found.append(int(entry))
    return found


def settle_account(user: Any, seconds: float = 20.0) -> None:
    """Sweep ``user`` and wait until not even a zombie of its uid is left. System uids are handed out again as
    soon as an account is deleted, so an account created right after another was deleted can inherit its uid
    while the old account's killed processes still wait to be reaped, and find its process limit used up."""
    import time

    from assignkit.grading import sandbox

    sandbox.sweep(user)
    deadline = time.monotonic() + seconds
    while tasks_of(user.uid) and time.monotonic() < deadline:
        time.sleep(0.05)


def ensure_sandbox_user(name: str, lock_dir: Path) -> Any:
    """Create ``name`` with autograder/create_sandbox_user.sh (once, under a lock), settle its uid (see
    :func:`settle_account`) and make the venv usable."""
    import pwd

    from assignkit.grading.runner import SandboxUser

    with FileLock(str(lock_dir / f"user-{name}.lock")):
        subprocess.run(["bash", str(CREATE_USER), name], check=True, capture_output=True, text=True)
        entry = pwd.getpwnam(name)
        user = SandboxUser(entry.pw_uid, entry.pw_gid, "/nonexistent")
        settle_account(user)
        make_interpreter_reachable(entry.pw_uid, entry.pw_gid)
    return user


def delete_sandbox_user(name: str) -> None:
    """Sweep and settle the account (see :func:`settle_account`), then delete it; nothing if it does not exist."""
    import pwd

    from assignkit.grading.runner import SandboxUser

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    settle_account(SandboxUser(entry.pw_uid, entry.pw_gid, entry.pw_dir))
    subprocess.run(["userdel", name], check=False, capture_output=True)


def read_notebook(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def cell_index(notebook: Dict[str, Any], grade_id: str) -> int:
    for index, cell in enumerate(notebook["cells"]):
        if ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") == grade_id:
            return index
    raise KeyError(grade_id)


def source_of(cell: Dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def replace_cell(notebook: Dict[str, Any], grade_id: str, source: str) -> Dict[str, Any]:
    """A copy of ``notebook`` with the source of the cell ``grade_id`` replaced."""
    changed = copy.deepcopy(notebook)
    changed["cells"][cell_index(changed, grade_id)]["source"] = source
    return changed


def edit_cell(notebook: Dict[str, Any], grade_id: str, old: str, new: str) -> Dict[str, Any]:
    """A copy with ``old`` replaced by ``new`` in the cell ``grade_id`` (``old`` must be there)."""
    cell = notebook["cells"][cell_index(notebook, grade_id)]
    text = source_of(cell)
    assert old in text, f"{old!r} not in {grade_id}"
    return replace_cell(notebook, grade_id, text.replace(old, new, 1))


def append_to_cell(notebook: Dict[str, Any], grade_id: str, extra: str) -> Dict[str, Any]:
    text = source_of(notebook["cells"][cell_index(notebook, grade_id)])
    return replace_cell(notebook, grade_id, text.rstrip() + "\n\n" + extra.strip() + "\n")


def insert_cell(notebook: Dict[str, Any], after_grade_id: str, source: str) -> Dict[str, Any]:
    """A copy with a new (student-added) code cell after the cell ``after_grade_id``."""
    changed = copy.deepcopy(notebook)
    new = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
    changed["cells"].insert(cell_index(changed, after_grade_id) + 1, new)
    return changed


def write_submission(folder: Path, files: Dict[str, Any]) -> Path:
    """Write ``{relative name: dict (as JSON) | bytes | str}`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
    return folder


def student_texts(results: Dict[str, Any]) -> List[str]:
    from assignkit.grading.results import check_outputs

    return check_outputs(results)


def assert_valid_results(results: Dict[str, Any]) -> None:
    """The Gradescope schema as we use it: tests with scores within bounds, known visibilities, text output."""
    assert isinstance(results.get("output"), str)
    assert isinstance(results.get("execution_time"), (int, float))
    names = set()
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}, test
        assert 0 <= test["score"] <= test["max_score"], test
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "after_published", "hidden")
        if test["visibility"] == "hidden":  # the staff-only entries of the written answers carry no points
            assert test["max_score"] == 0 and "written" in test.get("tags", []), test
        assert test["name"] not in names
        names.add(test["name"])


def course_secrets(course: Any) -> List[str]:
    """Texts no student may ever see: every line of the masters' hidden parts (probe and reference code, answer
    keys' derivations) and the hidden test names that appear nowhere in the release."""
    from assignkit.grading.redact import hidden_region_lines

    lines = set()
    for suite in course.suites:
        master = json.loads(course.master_path(suite).read_text(encoding="utf-8"))
        for cell in master["cells"]:
            text = source_of(cell)
            if "### BEGIN HIDDEN TESTS" in text:
                lines.update(hidden_region_lines(text))
    names = set()
    hidden_dir = course.hidden_data_dir
    for path in sorted(hidden_dir.glob("*.tsv")) if hidden_dir is not None and hidden_dir.is_dir() else []:
        public = " ".join(p.read_text(encoding="utf-8") for _, p in course.public_data if p.suffix == ".tsv")
        for row in path.read_text(encoding="utf-8").splitlines()[1:]:
            name = row.split("\t")[0]
            if len(name) >= 8 and name not in public:
                names.add(name)
    return sorted(lines | names)


def trusted_only_lines(course: Any) -> List[str]:
    """Distinctive lines that only the referee ever gets: reference regions, and the hidden parts of the checks
    that never run in the sandbox (answer derivations, the hidden-set evaluation), minus any line that also
    occurs in what the sandbox may receive or in the public parts of the masters."""
    from assignkit.grading.redact import hidden_region_lines
    from assignkit.masters import HIDDEN_BEGIN, REFERENCE_BEGIN, REFERENCE_END, strip_hidden

    trusted, public = set(), set()
    sandbox_ids = {c.grade_id for s in course.suites for c in s.checks if c.in_sandbox}
    for suite in course.suites:
        for check in suite.checks:
            public.update(hidden_region_lines(check.probe_source))
        master = json.loads(course.master_path(suite).read_text(encoding="utf-8"))
        for cell in master["cells"]:
            text = source_of(cell)
            public.update(hidden_region_lines(strip_hidden(text)))
            if HIDDEN_BEGIN not in text:
                continue
            grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
            if grade_id in sandbox_ids:
                for region in text.split(REFERENCE_BEGIN)[1:]:
                    trusted.update(hidden_region_lines(region.split(REFERENCE_END)[0]))
            else:
                trusted.update(hidden_region_lines(text))
    return sorted(line for line in trusted - public if len(line) >= 30 and " " in line)  # code, not bare names


def assert_no_secrets(results: Dict[str, Any], course: Any) -> None:
    """No line of a hidden part of a master and no hidden test name in anything the student sees."""
    secrets = course_secrets(course)
    for text in student_texts(results):
        flat = " ".join(text.split())
        leaked = [secret for secret in secrets if secret in flat]
        assert not leaked, f"secret in student-visible text: {leaked[:3]} in {text[:300]!r}"


def score_of(results: Dict[str, Any], hidden: Optional[bool] = None) -> float:
    tests = results["tests"]
    if hidden is not None:
        tests = [t for t in tests if (t["visibility"] != "visible") == hidden]
    return round(sum(t["score"] for t in tests), 4)


def shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The folder all xdist workers of this session share (as tests/conftest.py's fast build does)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def built_bundle(fast_build: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The fast build's autograder.zip, unzipped once per session into a private (0700) folder."""
    import shutil
    import zipfile

    shared = shared_dir(tmp_path_factory, worker_id)
    target = shared / "bundle"
    with FileLock(str(shared / "bundle.lock")):
        if not (target / ".unzipped").exists():
            shutil.rmtree(target, ignore_errors=True)
            with zipfile.ZipFile(fast_build / "autograder" / "dist" / "autograder.zip") as archive:
                archive.extractall(target)
            os.chmod(target, 0o700)
            from assignkit.grading.seeds import KEY_FILE, write_key

            write_key(target / KEY_FILE)  # as setup.sh does when Gradescope builds the image
            (target / ".unzipped").touch()
    return target


@pytest.fixture(scope="session")
def course(built_bundle: Path) -> Any:
    from assignkit.grading.course import Course

    return Course.from_bundle(built_bundle)


@pytest.fixture(scope="session")
def sandbox_user(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Any]:
    """A sandbox account of this test worker's own (created by autograder/create_sandbox_user.sh) when root;
    ``None`` otherwise. Never shared between parallel gradings: a sweep kills everything of its account."""
    if not is_root():
        yield None
        return
    name = account_of_this_process(TEST_USER)
    yield ensure_sandbox_user(name, shared_dir(tmp_path_factory, worker_id))
    delete_sandbox_user(name)
