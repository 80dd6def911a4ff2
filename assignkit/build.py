"""`make release`: record goldens from the masters, generate the student release with nbgrader,
write the solutions, and build the Gradescope bundle.

    python -m assignkit.build [--root DIR] [--fast] [--force]

``--fast`` shortens the training cells (HW_FAST=1); the release notebooks do not depend on it.

The build is incremental: a master whose inputs did not change since it last ran (its own bytes, every other file
of source/hw_rnn it can read, the hidden data, assignment.toml, requirements.txt and this build code) is not
executed again; its recorded goldens, solution notebook, HTML and model files come from ``build/cache/``, and
nbgrader runs only when what it releases changed. ``--force`` executes every master and runs nbgrader again.
Outputs are written only where their bytes change, and two builds of the same inputs give the same bytes
(``assignkit.reproducible``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html as html_lib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import nbformat

from . import goldens as golden_files
from . import reproducible
from .grading.bundle import BundleError
from .grading.seeds import KEY_FILE, write_key
from .masters import MASTER_NOTEBOOKS, Master, read_masters, strip_hidden
from .notebooks import Run, cell_errors, execute_many

ASSIGNMENT = "hw_rnn"
PUBLIC_GOLDENS = "public_goldens.json"
HIDDEN_SURNAMES = Path("autograder") / "hidden_data" / "surnames_test_hidden.tsv"
STAGING = Path("build") / "nbgrader_source"
"""nbgrader's source folder for the release: source/hw_rnn with only the chosen masters and no master outputs."""


def master_outputs(masters: List[Master]) -> List[str]:
    """Files the masters write while they run (trained weights, logs: what students submit besides the notebooks).
    They are solutions, not sources."""
    names: List[str] = []
    for master in masters:
        names += [name for name in master.submit if name not in names]
    return names


class BuildError(RuntimeError):
    """The masters or the release are not in a state that can be published."""


def tool_env() -> dict:
    """The environment for nbgrader/nbconvert subprocesses: this interpreter's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


CACHE = Path("build") / "cache"
"""One folder per master and set of inputs (``<notebook>-<key>``) with what its run gave the build, and
``release.json``: the key and the files of the last nbgrader release."""
CACHE_FORMAT = "1"
BUILD_CODE = ("build.py", "goldens.py", "masters.py", "notebooks.py", "reproducible.py")
"""The modules whose code shapes what the build keeps of a master's run: part of every cache key."""
COURSE_INPUTS = (HIDDEN_SURNAMES, Path("assignment.toml"), Path("requirements.txt"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it holds exactly that already (a rebuild leaves unchanged files alone);
    return whether it wrote."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return True


def _code_digest() -> Dict[str, str]:
    package = Path(__file__).resolve().parent
    return {f"assignkit/{name}": sha256_of(package / name) for name in BUILD_CODE}


_CODE_DIGEST = _code_digest()
"""Taken when this module is imported (the others of BUILD_CODE are imported with it): the code that runs."""


def build_code_digest() -> Dict[str, str]:
    """``{module: sha256}`` of the build code this process runs."""
    return dict(_CODE_DIGEST)


def master_inputs(root: Path, master: Master, masters: List[Master], fast: bool) -> Dict[str, str]:
    """Everything the run of ``master`` can depend on, ``{what: sha256 or setting}``: the master itself, every
    file of source/hw_rnn except the other masters and what the build or the masters write there, the hidden
    surnames (read in record mode), the choice of notebooks, the pinned requirements, the build code and the
    settings of the run."""
    source = root / "source" / ASSIGNMENT
    written = {*master_outputs(masters), PUBLIC_GOLDENS}
    inputs: Dict[str, str] = {}
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if (not path.is_file() or relative.as_posix() in written
                or any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
                or (len(relative.parts) == 1 and relative.suffix == ".ipynb" and relative.stem != master.name)):
            continue
        inputs[f"source/{ASSIGNMENT}/{relative.as_posix()}"] = sha256_of(path)
    for extra in COURSE_INPUTS:
        inputs[extra.as_posix()] = sha256_of(root / extra) if (root / extra).is_file() else "absent"
    inputs.update(build_code_digest())
    inputs["settings"] = json.dumps({"fast": fast, "format": CACHE_FORMAT, "machine": platform.machine(),
                                     "python": platform.python_version()}, sort_keys=True)
    return inputs


@dataclass
class Product:
    """What one run of a master gives the build: its recorded checks (JSON lines), its solution notebook and HTML
    (as committed under solutions/), and the files it wrote (trained weights, the log) as the solutions keep them."""

    name: str
    records: bytes
    notebook: bytes
    html: bytes
    files: Dict[str, bytes] = field(default_factory=dict)

    def listing(self) -> Dict[str, bytes]:
        """The product as files of a cache entry."""
        return {"records.jsonl": self.records, f"{self.name}.ipynb": self.notebook, f"{self.name}.html": self.html,
                **{f"files/{name}": data for name, data in self.files.items()}}


def cache_entry(root: Path, master: Master, key: str) -> Path:
    return root / CACHE / f"{master.name}-{key[:24]}"


def load_cached(root: Path, master: Master, key: str) -> Optional[Product]:
    """The cached product of ``master`` for inputs ``key``; ``None`` unless the entry is complete and intact (its
    manifest names this key and the sha256 of every file, and each file still has it)."""
    entry = cache_entry(root, master, key)
    try:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            return None
        files = {name: (entry / name).read_bytes() for name in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(hashlib.sha256(data).hexdigest() != manifest["files"][name] for name, data in files.items()):
        return None
    outputs = {name.removeprefix("files/"): data for name, data in files.items() if name.startswith("files/")}
    try:
        return Product(master.name, files["records.jsonl"], files[f"{master.name}.ipynb"],
                       files[f"{master.name}.html"], outputs)
    except KeyError:
        return None


def store_cached(root: Path, master: Master, key: str, inputs: Dict[str, str], product: Product) -> None:
    """Write the cache entry atomically (a folder renamed into place) and remove the master's older entries."""
    entry = cache_entry(root, master, key)
    staging = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    listing = product.listing()
    for name, data in listing.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    (staging / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    manifest = {"key": key, "files": {name: hashlib.sha256(data).hexdigest() for name, data in listing.items()}}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(staging, entry)
    for older in (root / CACHE).glob(f"{master.name}-*"):
        if older != entry and older.name.rsplit("-", 1)[0] == master.name:
            shutil.rmtree(older, ignore_errors=True)


def run_masters(root: Path, masters: List[Master], fast: bool, jobs: int) -> List[Product]:
    """Execute ``masters`` in record mode, each in a fresh kernel, ``jobs`` at a time, and keep what the build
    needs of each run. The masters write their files under distinct names and record into files of their own."""
    source = root / "source" / ASSIGNMENT
    record_dir = root / "build" / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for master in masters:
        record_file = record_dir / f"{master.name}.jsonl"
        record_file.unlink(missing_ok=True)
        record_file.touch()
        for name in master.submit:  # nothing left over from an earlier run may pass for this run's output
            (source / name).unlink(missing_ok=True)
        runs.append(Run(master.path, source, {
            "HWCHECK_RECORD": str(record_file),
            "HWCHECK_NOTEBOOK": str(master.path),
            "HW_FAST": "1" if fast else None,
            "HWCHECK_GOLDENS": None,
            "HW_HIDDEN_SURNAMES": str(root / HIDDEN_SURNAMES),
        }))
    started = time.perf_counter()
    executed = execute_many(runs, parallel=jobs)
    names = ", ".join(master.path.name for master in masters)
    log(f"executed {names} in {time.perf_counter() - started:.1f} s ({min(jobs, len(masters))} at a time)")
    return [product_of(root, master, notebook) for master, notebook in zip(masters, executed, strict=True)]


def product_of(root: Path, master: Master, notebook: Any) -> Product:
    """What the build keeps of one executed master: its records, its solution notebook and HTML, its files."""
    errors = cell_errors(notebook)
    if errors:
        details = "\n".join(f"  {label}: {'; '.join(messages)[:400]}" for label, messages in errors.items())
        raise BuildError(f"{master.path.name} does not run cleanly:\n{details}")
    source = root / "source" / ASSIGNMENT
    files: Dict[str, bytes] = {}
    for name in master.submit:
        produced = source / name
        if produced.is_file():
            data = produced.read_bytes()
            files[name] = reproducible.stable_submission_log(data) if name == "submission_log.json" else data
            produced.unlink()
    solution = solution_notebook(notebook, root)
    records = (root / "build" / "record" / f"{master.name}.jsonl").read_bytes()
    with tempfile_dir(root) as scratch:
        path = scratch / f"{master.name}.ipynb"
        nbformat.write(solution, str(path))
        try:
            html = reproducible.html_of(path).encode("utf-8")
        except Exception as error:  # nbconvert's own errors are of many kinds; the build reports any of them
            raise BuildError(f"nbconvert failed for {master.name}: {error}") from error
        return Product(master.name, records, path.read_bytes(), html, files)


@contextlib.contextmanager
def tempfile_dir(root: Path) -> Iterator[Path]:
    """A scratch folder under build/ (removed afterwards)."""
    folder = root / "build" / f".scratch-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def solution_notebook(notebook: Any, root: Path) -> Any:
    """The executed master as the solutions show it: hidden-test regions removed, progress bars at their end as
    text, and nothing that differs between two runs of the same code (``assignkit.reproducible``)."""
    widgets = notebook.metadata.get("widgets", {}).get(reproducible.WIDGET_STATE, {})
    notebook.cells = with_rubric_cells(notebook.cells)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            cell.source = strip_hidden(cell.source).rstrip() + "\n# (hidden checks omitted)"
        if cell.cell_type == "code":
            shown = [finished_progress_bar(output, widgets.get("state", {})) for output in cell.outputs]
            cell.outputs = reproducible.stable_cell_outputs([output for output in shown if output is not None], root)
    reproducible.stabilise_widgets(notebook)
    return notebook


def default_jobs() -> int:
    """How many masters to execute at a time: one per CPU this process may use, at most four (one per master)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus))


def produce(root: Path, masters: List[Master], fast: bool, force: bool, jobs: int) -> List[Product]:
    """Each master's product: from the cache when its inputs are unchanged (unless ``force``), else from a run
    (the masters to run are executed ``jobs`` at a time)."""
    keys: Dict[str, tuple] = {}
    products: Dict[str, Product] = {}
    for master in masters:
        inputs = master_inputs(root, master, masters, fast)
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()
        keys[master.name] = (key, inputs)
        cached = None if force else load_cached(root, master, key)
        if cached is not None:
            log(f"{master.path.name} unchanged: reused its last run (build/cache)")
            products[master.name] = cached
    stale = [master for master in masters if master.name not in products]
    for master, product in zip(stale, run_masters(root, stale, fast, jobs) if stale else [], strict=True):
        store_cached(root, master, *keys[master.name], product)
        products[master.name] = product
    return [products[master.name] for master in masters]


def record_goldens(root: Path, masters: List[Master], products: List[Product]) -> None:
    """Write the public and hidden goldens the masters' runs recorded (and the grading key, once)."""
    source = root / "source" / ASSIGNMENT
    record_dir = root / "build" / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    recorded: golden_files.Goldens = {}
    for product in products:
        record_file = record_dir / f"{product.name}.jsonl"
        write_if_changed(record_file, product.records)
        recorded.update(golden_files.read_records(record_file))
    public, hidden = golden_files.split(recorded, masters)
    golden_files.write(source / PUBLIC_GOLDENS, public)
    golden_files.write(root / "build" / "goldens" / "hidden_goldens.json", hidden)
    write_key(root / "build" / KEY_FILE)
    log(f"recorded {len(public)} public and {len(hidden)} hidden checks")


def write_solutions(root: Path, masters: List[Master], products: List[Product]) -> None:
    """The solution notebooks (hidden-test regions removed), their HTML for TAs and the files the masters wrote,
    into solutions/hw_rnn/; files whose bytes are unchanged are left alone."""
    target = root / "solutions" / ASSIGNMENT
    target.mkdir(parents=True, exist_ok=True)
    chosen = {master.name for master in masters}
    outputs = master_outputs(masters)
    for stale in sorted(target.iterdir()):  # what a notebook that is no longer chosen left behind
        notebook = stale.suffix in (".ipynb", ".html") and stale.stem not in chosen
        output = (stale.suffix == ".pt" or stale.name == "submission_log.json") and stale.name not in outputs
        if notebook or output:
            stale.unlink()
    changed = []
    for product in products:
        files = {f"{product.name}.ipynb": product.notebook, f"{product.name}.html": product.html, **product.files}
        changed += [name for name, data in files.items() if write_if_changed(target / name, data)]
    log(f"solutions in {target.relative_to(root)}: " + (f"wrote {', '.join(changed)}" if changed else "unchanged"))


RUBRIC_CELL_TAG = "rubric"


def rubric_markdown(rubric: List[Dict[str, Any]], points: float) -> str:
    """A rubric as the solutions show it under the model answer."""
    lines = [f"**Rubric** ({points:g} points):", ""]
    lines += [f"* {entry['item']} — **{float(entry['points']):g}**" for entry in rubric]
    return "\n".join(lines)


def with_rubric_cells(cells: List[Any]) -> List[Any]:
    """The cells with a markdown cell (tagged ``rubric``) showing the rubric after each written answer."""
    from .grading.written import RUBRIC_KEY

    result = []
    for cell in cells:
        result.append(cell)
        rubric = cell.get("metadata", {}).get(RUBRIC_KEY)
        if cell.cell_type == "markdown" and rubric:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "answer")
            points = float(cell.metadata.get("nbgrader", {}).get("points", 0))
            added = nbformat.v4.new_markdown_cell(rubric_markdown(rubric, points), id=f"rubric-{grade_id}"[:64])
            added.metadata["tags"] = [RUBRIC_CELL_TAG]
            result.append(added)
    return result


_PROGRESS_BRACKET = re.compile(r"\s*\[([^\]]*)\]")


def _without_timing(text: str) -> str:
    """tqdm's ``[00:25<00:00, 59.02it/s, epoch=15]`` without the parts that change from run to run."""
    def keep(match: re.Match) -> str:
        items = [item.strip() for item in match.group(1).split(",")]
        kept = [item for item in items if not re.search(r"<|it/s|s/it|^\d+:\d+", item)]
        return (" " + ", ".join(kept)) if kept else ""

    return _PROGRESS_BRACKET.sub(keep, text)


def finished_progress_bar(output: Any, state: Dict[str, Any]) -> Optional[Any]:
    """A tqdm progress-bar widget as readable text at its final state (``training: 100% 1350/1350 epoch=15, ...``).

    The executed notebook keeps the widgets' final state, but viewers without widgets (GitHub, the HTML export
    opened offline) fall back to the text tqdm printed when the bar started: 0%. Timings are left out, so a
    rebuild changes the text only when the training does. A bar that tqdm hid when it finished (``leave=False``)
    is left out (``None``), as a student would no longer see it either."""
    view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json") if output.get("data") else None
    box = state.get(view.get("model_id", ""), {}) if isinstance(view, dict) else {}
    if box.get("model_name") != "HBoxModel":
        return output
    layout = state.get(str(box.get("state", {}).get("layout", "")).removeprefix("IPY_MODEL_"), {})
    if layout.get("state", {}).get("visibility") == "hidden":
        return None
    parts = []
    for child in box.get("state", {}).get("children", []):
        model = state.get(str(child).removeprefix("IPY_MODEL_"), {})
        values = model.get("state", {})
        if model.get("model_name") == "HTMLModel":
            parts.append(html_lib.unescape(str(values.get("value", ""))).replace("\u2007", " ").strip())
        elif model.get("model_name") == "FloatProgressModel" and values.get("max"):
            filled = round(10 * float(values.get("value", 0)) / float(values["max"]))
            parts.append("|" + "█" * filled + " " * (10 - filled) + "|")
    text = _without_timing(" ".join(part for part in parts if part)).strip()
    if not text:
        return output
    return nbformat.v4.new_output("stream", name="stdout", text=text + "\n")


SCRATCH_TAG = "scratch"
STUB = "raise NotImplementedError()"


def open_scratch_cells(path: Path) -> None:
    """Cells tagged ``scratch`` (staff verification in the master, free space for students) keep nbgrader's
    ``# YOUR CODE HERE`` but not its ``raise NotImplementedError()``: Run All must not stop at ungraded cells."""
    notebook = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in notebook.cells:
        if SCRATCH_TAG in cell.get("metadata", {}).get("tags", []) and STUB in cell.source:
            cell.source = cell.source.replace(STUB, "pass  # (ungraded: use this cell as you like)")
            changed = True
    if changed:
        nbformat.write(notebook, str(path))


def stage_sources(root: Path, masters: List[Master]) -> Path:
    """Copy source/hw_rnn into build/nbgrader_source/hw_rnn with only the chosen masters (nbgrader releases every
    notebook of its source folder) and without what the masters write while they run."""
    source = root / "source" / ASSIGNMENT
    staged = root / STAGING / ASSIGNMENT
    shutil.rmtree(root / STAGING, ignore_errors=True)
    chosen = {f"{master.name}.ipynb" for master in masters}
    skipped = set(master_outputs(masters)) | {"__pycache__", ".ipynb_checkpoints"}

    def ignore(directory: str, names: List[str]) -> List[str]:
        top = Path(directory) == source
        return [name for name in names if name in skipped or name.startswith(".")
                or (top and name.endswith(".ipynb") and name not in chosen)]

    shutil.copytree(source, staged, ignore=ignore)
    readme = staged / "README.md"
    if readme.is_file():
        left_out = [Path(name).stem for name in MASTER_NOTEBOOKS if Path(name).stem not in {m.name for m in masters}]
        readme.write_text(student_readme(readme.read_text(encoding="utf-8"), left_out), encoding="utf-8")
    return staged


_README_BLOCK = re.compile(r"<!-- if (\w+) -->\n(.*?)<!-- end if -->\n", re.S)


def student_readme(text: str, left_out: List[str]) -> str:
    """The students' README for the chosen notebooks: table rows and list items that name a notebook left out
    are dropped, and so are blocks between ``<!-- if NOTEBOOK -->`` and ``<!-- end if -->`` for such a
    notebook (the markers themselves never reach the release)."""
    text = _README_BLOCK.sub(lambda match: "" if match.group(1) in left_out else match.group(2), text)
    kept = [line for line in text.splitlines(keepends=True)
            if not (line.lstrip().startswith(("|", "* ")) and any(f"{name}.ipynb" in line for name in left_out))]
    return "".join(kept)


RELEASE_STAMP = CACHE / "release.json"


def release_key(root: Path, staged: Path) -> str:
    """What nbgrader's release depends on: the staged source folder, the nbgrader configuration, the pinned
    requirements and the build code."""
    inputs = {f"staged/{path.relative_to(staged).as_posix()}": sha256_of(path)
              for path in sorted(staged.rglob("*")) if path.is_file()}
    for extra in (Path("nbgrader_config.py"), Path("requirements.txt")):
        inputs[extra.as_posix()] = sha256_of(root / extra) if (root / extra).is_file() else "absent"
    inputs.update(build_code_digest())
    inputs["format"] = CACHE_FORMAT
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()


def release_listing(release: Path) -> Dict[str, str]:
    """``{file: sha256}`` of what nbgrader put in the release folder (the student tools written after it aside:
    they follow their own sources on every build)."""
    tools = {*STUDENT_TOOLS, SUBMISSION_MANIFEST}
    return {path.relative_to(release).as_posix(): sha256_of(path) for path in sorted(release.rglob("*"))
            if path.is_file() and path.relative_to(release).as_posix() not in tools}


def release_is_current(root: Path, key: str) -> bool:
    """Whether release/hw_rnn holds what nbgrader made of the staged sources with ``key`` (every file it made,
    with its bytes, and no other notebook) and the gradebook it wrote is there."""
    release = root / "release" / ASSIGNMENT
    try:
        stamp = json.loads((root / RELEASE_STAMP).read_text(encoding="utf-8"))
        files = dict(stamp["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if stamp.get("key") != key or not (root / "gradebook.db").is_file():
        return False
    notebooks = {path.name for path in release.glob("*.ipynb")}
    if notebooks != {name for name in files if name.endswith(".ipynb") and "/" not in name}:
        return False
    return all((release / name).is_file() and sha256_of(release / name) == digest for name, digest in files.items())


def generate_release(root: Path, masters: List[Master], force: bool = False) -> None:
    """Real ``nbgrader generate_assignment --force`` with the sqlite gradebook in the course root, on the chosen
    masters only; skipped (unless ``force``) when release/hw_rnn already holds its result for these sources."""
    staged = stage_sources(root, masters)
    release = root / "release" / ASSIGNMENT
    key = release_key(root, staged)
    if not force and release_is_current(root, key):
        log(f"{release.relative_to(root)} is up to date (nbgrader not run)")
        return
    (root / RELEASE_STAMP).unlink(missing_ok=True)
    chosen = {f"{master.name}.ipynb" for master in masters}
    for stale in release.glob("*.ipynb"):  # no notebook of an earlier choice stays behind
        if stale.name not in chosen:
            stale.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force", "--log-level", "WARN",
         f"--CourseDirectory.source_directory={STAGING.as_posix()}"],
        cwd=root, capture_output=True, text=True, check=False, env=tool_env(),
    )
    if result.returncode != 0:
        raise BuildError(f"nbgrader generate_assignment failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    released = sorted(path.stem for path in release.glob("*.ipynb"))
    if released != sorted(master.name for master in masters):
        raise BuildError(f"nbgrader released {released}, not the chosen {[master.name for master in masters]}")
    for notebook_path in sorted(release.glob("*.ipynb")):
        open_scratch_cells(notebook_path)
        strip_staff_metadata(notebook_path)
        text = notebook_path.read_text(encoding="utf-8")
        if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
            raise BuildError(f"{notebook_path.name}: nbgrader left a solution or hidden test in the release")
        if '"rubric"' in text:
            raise BuildError(f"{notebook_path.name}: a rubric is left in the release")
    stamp = {"key": key, "files": release_listing(release)}
    write_if_changed(root / RELEASE_STAMP, (json.dumps(stamp, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    log(f"generated {release.relative_to(root)} with nbgrader")


STUDENT_TOOLS = {"hwsubmit.py": "grading/submission.py", "hwcrosscheck.py": "grading/crosscheck.py",
                 "hwwritten.py": "grading/written.py"}
"""The grader's own file rules, copied into the release for check_submission.py (no hidden material in them)."""
SUBMISSION_MANIFEST = "submission_manifest.json"


def write_student_tools(root: Path, masters: List[Master]) -> None:
    """What check_submission.py needs in the release: the grader's modules that find and validate submitted
    files, and a manifest of the notebooks (their cells' grade_ids and typed answers) and the other files."""
    from .grading import suites as suite_files

    release = root / "release" / ASSIGNMENT
    package = Path(__file__).resolve().parent
    for target, source in STUDENT_TOOLS.items():
        write_if_changed(release / target, (package / source).read_bytes())
    recorded = {**golden_files.load(root / "source" / ASSIGNMENT / PUBLIC_GOLDENS),
                **golden_files.load(root / "build" / "goldens" / "hidden_goldens.json")}
    suites = [suite_files.from_master(master, recorded) for master in masters]
    submit: List[str] = []
    for suite in suites:
        submit += [name for name in suite.submit if name not in submit]
    manifest = {
        "notebooks": {suite.filename: {"grade_ids": list(suite.grade_ids),
                                       "answers": [str(c.spec["variable"]) for c in suite.checks if c.kind == "static"]}
                      for suite in suites},
        "submit": submit,
        "written": [question.to_json(staff=False) for question in written_questions(masters)],
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    write_if_changed(release / SUBMISSION_MANIFEST, text.encode("utf-8"))


def written_questions(masters: List[Master]) -> List[Any]:
    """The manually graded questions of the chosen masters in their fixed order (notebooks, then cells), with
    their rubrics; the build stops when a rubric is missing or does not add up to its question's points."""
    from .grading import written

    found = []
    for master in masters:
        notebook = json.loads(Path(master.path).read_text(encoding="utf-8"))
        found += written.questions(notebook, f"{master.name}.ipynb")
    problems = [problem for question in found for problem in written.rubric_problems(question)]
    if problems:
        raise BuildError("rubrics of the written questions:\n  " + "\n  ".join(problems))
    return found


def strip_staff_metadata(path: Path) -> None:
    """Remove the rubrics (they give the answers away) from a release notebook's cells."""
    from .grading.written import RUBRIC_KEY

    notebook = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in notebook.cells:
        if RUBRIC_KEY in cell.get("metadata", {}):
            del cell.metadata[RUBRIC_KEY]
            changed = True
    if changed:
        nbformat.write(notebook, str(path))


WRITTEN_TEMPLATE = "hw_rnn_written_template.pdf"
WRITTEN_OUTLINE = "hw_rnn_written_outline.md"


def load_hwpdf(root: Path) -> Any:
    """The course's hwpdf.py (source/hw_rnn), the same module the students' check_submission.py uses."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hwpdf", root / "source" / ASSIGNMENT / "hwpdf.py")
    if spec is None or spec.loader is None:
        raise BuildError("source/hw_rnn/hwpdf.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def write_written_template(root: Path, masters: List[Master]) -> None:
    """The PDF of the blank release's written questions (what an empty submission's PDF looks like) and its
    outline, question -> page range -> points, for setting up a Gradescope PDF assignment."""
    hwpdf = load_hwpdf(root)
    entries = [question.to_json(staff=False) for question in written_questions(masters)]
    target = root / "solutions" / ASSIGNMENT
    with tempfile_dir(root) as scratch:
        ranges = hwpdf.write(scratch / WRITTEN_TEMPLATE, entries, {"name": "", "student_id": ""}, template=True)
        write_if_changed(target / WRITTEN_TEMPLATE, (scratch / WRITTEN_TEMPLATE).read_bytes())
    total = sum(item.points for item in ranges)
    outline = (f"# Outline of {WRITTEN_TEMPLATE}\n\n"
               f"{len(ranges)} written questions, {total:g} points. Page 1 is the cover (name, student ID); each "
               "question starts on a new page, in this order, in the template and in every student's "
               "hw_rnn_written.pdf (a long answer takes more pages, so a student's page numbers can be later).\n\n"
               + hwpdf.outline_text(ranges))
    changed = write_if_changed(target / WRITTEN_OUTLINE, outline.encode("utf-8"))
    log(f"{WRITTEN_TEMPLATE} ({len(ranges)} questions) and {WRITTEN_OUTLINE}: {'written' if changed else 'unchanged'}")


def build(root: Path, fast: bool = False, force: bool = False, jobs: Optional[int] = None) -> None:
    """The whole build of the course in ``root`` (see the module's docstring); ``force`` ignores the cache; ``jobs``
    masters are executed at a time (default: one per CPU, at most four)."""
    try:
        masters = read_masters(root / "source" / ASSIGNMENT)  # the instructor's choice (assignment.toml)
    except ValueError as error:
        raise BuildError(str(error)) from None
    if not masters:
        raise BuildError(f"no master notebooks in {root / 'source' / ASSIGNMENT}")
    log(f"notebooks: {', '.join(master.name for master in masters)}")
    products = produce(root, masters, fast, force, jobs or default_jobs())
    record_goldens(root, masters, products)
    write_solutions(root, masters, products)
    generate_release(root, masters, force)
    write_student_tools(root, masters)
    write_written_template(root, masters)
    from .grading import bundle
    from .grading.sandbox import make_private

    bundle.build_bundle(root, masters)
    # What only the staff may read: goldens, the grading key, the hidden data (labels) and the bundle.
    changed = make_private([root / "build", root / "autograder" / "hidden_data", root / "autograder" / "dist"])
    if changed:
        log(f"made {len(changed)} staff-only paths private (go-rwx)")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="course directory (default: current)")
    parser.add_argument("--fast", action="store_true", help="shorten training cells (CI)")
    parser.add_argument("--force", action="store_true", help="execute every master and run nbgrader, cache or not")
    parser.add_argument("--jobs", type=int, default=None, help="masters executed at a time (default: CPUs, <= 4)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        build(args.root.resolve(), fast=args.fast, force=args.force, jobs=args.jobs)
    except (BuildError, BundleError) as error:
        print(f"[build] FAILED: {error}", file=sys.stderr)
        return 1
    log(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


