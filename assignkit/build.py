"""`make release`: record goldens from the masters, generate the student release with nbgrader,
write the solutions, and build the Gradescope bundle.

    python -m assignkit.build [--root DIR] [--fast]

``--fast`` shortens the training cells (HW_FAST=1); the release notebooks do not depend on it.
"""

from __future__ import annotations

import argparse
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import nbformat

from . import goldens as golden_files
from .grading.bundle import BundleError
from .grading.seeds import KEY_FILE, write_key
from .masters import MASTER_NOTEBOOKS, Master, read_masters, strip_hidden
from .notebooks import cell_errors, execute

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


def record_goldens(root: Path, masters: List[Master], fast: bool) -> List[object]:
    """Execute every master in record mode; write public and hidden goldens; return executed notebooks."""
    source = root / "source" / ASSIGNMENT
    record_dir = root / "build" / "record"
    record_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    recorded: golden_files.Goldens = {}
    for master in masters:
        record_file = record_dir / f"{master.name}.jsonl"
        record_file.unlink(missing_ok=True)
        record_file.touch()
        started = time.perf_counter()
        notebook = execute(
            master.path,
            cwd=source,
            env={
                "HWCHECK_RECORD": str(record_file),
                "HWCHECK_NOTEBOOK": str(master.path),
                "HW_FAST": "1" if fast else None,
                "HWCHECK_GOLDENS": None,
                "HW_HIDDEN_SURNAMES": str(root / HIDDEN_SURNAMES),
            },
        )
        log(f"executed {master.path.name} in {time.perf_counter() - started:.1f} s")
        errors = cell_errors(notebook)
        if errors:
            details = "\n".join(f"  {label}: {'; '.join(messages)[:400]}" for label, messages in errors.items())
            raise BuildError(f"{master.path.name} does not run cleanly:\n{details}")
        recorded.update(golden_files.read_records(record_file))
        executed.append(notebook)
    public, hidden = golden_files.split(recorded, masters)
    golden_files.write(source / PUBLIC_GOLDENS, public)
    golden_files.write(root / "build" / "goldens" / "hidden_goldens.json", hidden)
    write_key(root / "build" / KEY_FILE)
    log(f"recorded {len(public)} public and {len(hidden)} hidden checks")
    return executed


def write_solutions(root: Path, masters: List[Master], executed: List[object]) -> None:
    """Executed masters, hidden-test regions removed, into solutions/hw_rnn/ (and HTML for TAs)."""
    target = root / "solutions" / ASSIGNMENT
    target.mkdir(parents=True, exist_ok=True)
    chosen = {master.name for master in masters}
    outputs = master_outputs(masters)
    for stale in sorted(target.iterdir()):  # what a notebook that is no longer chosen left behind
        notebook = stale.suffix in (".ipynb", ".html") and stale.stem not in chosen
        output = (stale.suffix == ".pt" or stale.name == "submission_log.json") and stale.name not in outputs
        if notebook or output:
            stale.unlink()
    for name in outputs:
        produced = root / "source" / ASSIGNMENT / name
        if produced.exists():
            os.replace(produced, target / name)
    for master, notebook in zip(masters, executed, strict=True):
        widgets = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        notebook.cells = with_rubric_cells(notebook.cells)
        for cell in notebook.cells:
            if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
                cell.source = strip_hidden(cell.source).rstrip() + "\n# (hidden checks omitted)"
            if cell.cell_type == "code":
                shown = [finished_progress_bar(output, widgets.get("state", {})) for output in cell.outputs]
                cell.outputs = [output for output in shown if output is not None]
        nbformat.write(notebook, str(target / f"{master.name}.ipynb"))
        html = subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--log-level", "ERROR",
             "--output-dir", str(target), str(target / f"{master.name}.ipynb")],
            capture_output=True, text=True, check=False, env=tool_env(),
        )
        if html.returncode != 0:
            raise BuildError(f"nbconvert failed for {master.name}:\n{html.stderr[-2000:]}")
    log(f"wrote solutions to {target.relative_to(root)}")


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


def generate_release(root: Path, masters: List[Master]) -> None:
    """Real ``nbgrader generate_assignment --force`` with the sqlite gradebook in the course root, on the chosen
    masters only."""
    stage_sources(root, masters)
    release = root / "release" / ASSIGNMENT
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
        (release / target).write_bytes((package / source).read_bytes())
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
    (release / SUBMISSION_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


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
    ranges = hwpdf.write(target / WRITTEN_TEMPLATE, entries, {"name": "", "student_id": ""}, template=True)
    total = sum(item.points for item in ranges)
    outline = (f"# Outline of {WRITTEN_TEMPLATE}\n\n"
               f"{len(ranges)} written questions, {total:g} points. Page 1 is the cover (name, student ID); each "
               "question starts on a new page, in this order, in the template and in every student's "
               "hw_rnn_written.pdf (a long answer takes more pages, so a student's page numbers can be later).\n\n"
               + hwpdf.outline_text(ranges))
    (target / WRITTEN_OUTLINE).write_text(outline, encoding="utf-8")
    log(f"wrote {WRITTEN_TEMPLATE} ({len(ranges)} questions) and {WRITTEN_OUTLINE}")


def build(root: Path, fast: bool = False) -> None:
    try:
        masters = read_masters(root / "source" / ASSIGNMENT)  # the instructor's choice (assignment.toml)
    except ValueError as error:
        raise BuildError(str(error)) from None
    if not masters:
        raise BuildError(f"no master notebooks in {root / 'source' / ASSIGNMENT}")
    log(f"notebooks: {', '.join(master.name for master in masters)}")
    executed = record_goldens(root, masters, fast)
    write_solutions(root, masters, executed)
    generate_release(root, masters)
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
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        build(args.root.resolve(), fast=args.fast)
    except (BuildError, BundleError) as error:
        print(f"[build] FAILED: {error}", file=sys.stderr)
        return 1
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())


