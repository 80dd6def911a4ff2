"""Build the Gradescope autograder zip (the last step of ``make release``).

    autograder/dist/autograder.zip
        setup.sh, run_autograder, create_sandbox_user.sh, requirements.txt     (from autograder/)
        bundle.json                      manifest: notebooks, points, sandbox account, sha256 of every file
        suites/suites.json               per check: kind, points, comparison options, and the probe source the
                                         sandbox may run (no reference code, no expected value)
        suites/public_goldens.json       the public checks' expected values (the same as in the release)
        runtime/hwcheck.py, safe_expr.py the modules the children import (public: they ship in the release too)
        referee/*.ipynb                  the master notebooks (solutions, hidden checks, reference code): run
                                         by the trusted referee only, never copied into the sandbox
        public/...                       the release's data files (what students have next to their notebooks)
        hidden_data/...                  hidden test data with labels (read by the referee only)
        grader/assignkit/grading/*.py    the grading package (standard library only)

``setup.sh`` adds ``grading_key`` (random, root-only) when Gradescope builds the image: the seeds of the hidden
checks derive from it, so it is not in the zip.

The zip is deterministic: entries sorted, fixed timestamps and permissions, fixed compression level.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Dict, List, Sequence

from . import suites as suite_files
from .course import (
    ASSIGNMENT,
    BUNDLE_PUBLIC_GOLDENS,
    GRADER_DIR,
    HIDDEN_DATA_DIR,
    HIDDEN_GOLDENS,
    MANIFEST,
    PUBLIC_DIR,
    PUBLIC_GOLDENS,
    REFEREE_DIR,
    RUNTIME_DIR,
    RUNTIME_MODULES,
    SUITES,
    public_files,
)
from .sandbox import DEFAULT_USER

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_AUTOGRADER = PACKAGE_DIR.parents[1] / "autograder"
SCRIPTS = ("setup.sh", "run_autograder", "create_sandbox_user.sh", "requirements.txt")
EXECUTABLE = {"setup.sh", "run_autograder", "create_sandbox_user.sh"}
GRADER_MODULES = ("__init__", "autograde", "byquestion", "child", "course", "crosscheck", "flags", "forkserver",
                  "grade", "gradescope", "identity", "landlock", "redact", "results", "runner", "sandbox", "scoring",
                  "scratch", "seeds", "startup", "submission", "suites", "titles", "variantkeys", "written")
PACKAGE_INIT = b'"""The grading runtime of the RNN homework (shipped inside the Gradescope bundle)."""\n'
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
OUTPUT = Path("autograder") / "dist" / "autograder.zip"


class BundleError(RuntimeError):
    """Something the bundle needs is missing or inconsistent."""


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise BundleError(f"missing {path}")
    return path.read_bytes()


def collect(root: Path, masters: Sequence[object]) -> Dict[str, bytes]:
    """``{path in the zip: bytes}`` for everything the bundle holds."""
    source = root / "source" / ASSIGNMENT
    public = json.loads(_read(source / PUBLIC_GOLDENS))
    hidden = json.loads(_read(root / "build" / "goldens" / HIDDEN_GOLDENS))
    try:
        suites = [suite_files.from_master(master, {**public, **hidden}) for master in masters]
    except ValueError as error:
        raise BundleError(str(error)) from None
    files: Dict[str, bytes] = {}
    scripts = root / "autograder" if (root / "autograder" / "run_autograder").is_file() else REPO_AUTOGRADER
    for name in SCRIPTS:
        files[name] = _read(scripts / name)
    files[SUITES] = (json.dumps(suite_files.to_json(suites), indent=1, sort_keys=True) + "\n").encode()
    files[BUNDLE_PUBLIC_GOLDENS] = _read(source / PUBLIC_GOLDENS)
    for master in masters:
        files[f"{REFEREE_DIR}/{Path(master.path).name}"] = _read(Path(master.path))  # type: ignore[attr-defined]
    for name in RUNTIME_MODULES:
        files[f"{RUNTIME_DIR}/{name}"] = _read(source / name)
    for relative, path in public_files(root / "release" / ASSIGNMENT):
        files[f"{PUBLIC_DIR}/{relative}"] = path.read_bytes()
    hidden_data = root / "autograder" / HIDDEN_DATA_DIR
    if hidden_data.is_dir():
        for path in sorted(p for p in hidden_data.rglob("*") if p.is_file() and not p.name.startswith(".")):
            files[f"{HIDDEN_DATA_DIR}/{path.relative_to(hidden_data).as_posix()}"] = path.read_bytes()
    files[f"{GRADER_DIR}/assignkit/__init__.py"] = PACKAGE_INIT
    for module in GRADER_MODULES:
        files[f"{GRADER_DIR}/assignkit/grading/{module}.py"] = _read(PACKAGE_DIR / f"{module}.py")
    files[MANIFEST] = manifest(suites, files)
    return files


def manifest(suites: Sequence[suite_files.Suite], files: Dict[str, bytes]) -> bytes:
    data = {
        "assignment": ASSIGNMENT,
        "format": suite_files.FORMAT,
        "sandbox_user": DEFAULT_USER,
        "notebooks": {
            suite.filename: {"autograded_points": suite.autograded_points, "manual_points": suite.manual_total,
                             "checks": len(suite.checks), "hidden_checks": sum(c.hidden for c in suite.checks)}
            for suite in suites
        },
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())},
    }
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def zip_bytes(files: Dict[str, bytes]) -> bytes:
    """A deterministic zip of ``files``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3  # unix, so the permission bits below are honoured by unzip
            mode = 0o755 if name in EXECUTABLE else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def build_bundle(root: Path, masters: Sequence[object], output: Path = OUTPUT) -> Path:
    """Write ``root/autograder/dist/autograder.zip`` (atomically) and return its path."""
    target = output if output.is_absolute() else root / output
    data = zip_bytes(collect(root, masters))
    shown = target.relative_to(root) if target.is_relative_to(root) else target
    if target.is_file() and target.read_bytes() == data:  # a rebuild of the same inputs leaves the zip alone
        print(f"[build] {shown} is up to date", flush=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    print(f"[build] wrote {shown} ({len(data) // 1024} kB)", flush=True)
    return target


def listing(path: Path) -> List[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()
