"""Check this folder before you submit, and pack what Gradescope needs into hw_rnn_submission.zip.

    python check_submission.py            (from the hw_rnn folder; or run the last cell of a notebook)

It uses the autograder's own rules for finding and validating files (hwsubmit.py and hwcrosscheck.py are
copies of the grader's code; nothing hidden is needed or used) and says what is missing, empty, broken,
never run or still unfinished, and which written answers are still empty. The exit status is 0 only when the
folder is ready to submit; then hw_rnn_submission.zip holds exactly the files Gradescope expects (upload that
zip, or the files themselves). It also writes hw_rnn_written.pdf: every written question on its own page(s), in
a fixed order, with your answers (hwpdf.py, which needs the fpdf2 package of requirements.txt).
It runs none of your code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hwcheck  # noqa: E402  (next to this file)
import hwcrosscheck  # noqa: E402
import hwsubmit  # noqa: E402
import hwwritten  # noqa: E402

MANIFEST = "submission_manifest.json"
ZIP_NAME = "hw_rnn_submission.zip"
PDF_NAME = "hw_rnn_written.pdf"
NOT_DONE = "raise NotImplementedError()"


def never_run(notebook: Dict[str, Any]) -> bool:
    """True when no code cell of the saved notebook has been run (no execution count anywhere)."""
    return not any(cell.get("execution_count") for cell in notebook.get("cells", [])
                   if isinstance(cell, dict) and cell.get("cell_type") == "code")


def unsaved_since_run(name: str, path: Any) -> bool:
    """True when ``name`` is the notebook whose last cell started this check (``HW_RUNNING_NOTEBOOK``) and its
    file was last saved before that notebook's current run began (``HW_RUN_STARTED``): run, but not saved."""
    if os.environ.get("HW_RUNNING_NOTEBOOK") != name or path is None:
        return False
    try:
        started = float(os.environ.get("HW_RUN_STARTED", ""))
        return Path(path).stat().st_mtime < started
    except (OSError, ValueError):
        return False


def unfinished_cells(notebook: Dict[str, Any]) -> List[str]:
    """The graded cells that still hold the release's ``raise NotImplementedError()``."""
    found = []
    for cell in notebook.get("cells", []):
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if meta.get("solution") and cell.get("cell_type") == "code" and NOT_DONE in text and \
                "scratch" not in (cell.get("metadata") or {}).get("tags", []):
            found.append(str(meta.get("grade_id", "?")))
    return found


def answer_problems(notebook: Dict[str, Any], answers: List[str]) -> Tuple[List[str], List[str]]:
    """``(unreadable, empty)``: typed answers the grader could not read (it reads literals only: each scores 0),
    and typed answers that are still empty."""
    unreadable, empty = [], []
    for variable in answers:
        try:
            value = hwcheck.read_literal_answer(notebook, variable)
        except hwcheck.AnswerUnreadable as error:
            unreadable.append(str(error))
            continue
        if value in ("", [], ()):
            empty.append(f"`{variable}` is still empty")
    return unreadable, empty


def notebook_json(found: Any) -> Any:
    """The notebook as JSON for reading its written answers: what the grader's rules accepted or, when they refuse
    it (a malformed cell, say), the file's JSON anyway, so the PDF still shows what the student wrote; None when it
    is missing, too large or not JSON at all."""
    if found.content is not None or found.path is None:
        return found.content
    try:
        return json.loads(hwsubmit.read_limited(found.path, hwsubmit.SIZE_LIMITS[".ipynb"]).decode("utf-8-sig"))
    except (OSError, ValueError):
        return None


def written_entries(manifest: Dict[str, Any], contents: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every written question of the manifest, in its fixed order, with what the student's notebook holds for it
    (``contents``: file name -> notebook JSON, or None when the notebook is missing or unreadable)."""
    entries = []
    for question in manifest.get("written", []):
        notebook = contents.get(question["notebook"])
        answer = hwwritten.answer_of(notebook, question["grade_id"]) if notebook is not None else \
            hwwritten.Answer(hwwritten.MISSING)
        figure = hwwritten.figure_of(notebook, question["figure"]) if notebook is not None and \
            question.get("figure") else None
        entries.append({**question, "status": answer.status, "answer": answer.text, "figure": figure})
    return entries


def typed_student_id(contents: Dict[str, Any]) -> str:
    """The ``STUDENT_ID`` typed in a notebook's code (q_written's, which picks the numbers of its Parts 1 and 2), or
    '' when no notebook sets one."""
    for notebook in contents.values():
        if notebook is None:
            continue
        try:
            value = hwcheck.read_literal_answer(notebook, "STUDENT_ID", "student_id")
        except Exception:  # unreadable, or not a notebook at all ({"cells": 7}): no ID from it, and no crash
            continue
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:hwwritten.MAX_INFO_CHARS]
    return ""


def student_header(manifest: Dict[str, Any], contents: Dict[str, Any]) -> Dict[str, str]:
    """Name and student ID from the first cell of the first notebook (the next notebooks if it is left empty); the
    ID falls back on the ``STUDENT_ID`` typed in q_written."""
    header = {"name": "", "student_id": ""}
    for name in manifest["notebooks"]:
        if contents.get(name) is not None:
            info = hwwritten.student_info(contents[name])
            header = {key: header[key] or info[key] for key in header}
    header["student_id"] = header["student_id"] or typed_student_id(contents)
    return header


def id_mismatch(header: Dict[str, str], contents: Dict[str, Any]) -> str:
    """A note when the ID at the top of the notebooks and q_written's ``STUDENT_ID`` differ, or ''."""
    typed = typed_student_id(contents)
    shown = header.get("student_id", "")
    if typed and shown and typed.lower() != shown.lower():
        return (f"the Student ID at the top of your notebooks ({shown!r}) is not the STUDENT_ID in q_written "
                f"({typed!r}); the grader uses STUDENT_ID for the numbers of q_written's Parts 1 and 2: make both "
                "your own ID")
    return ""


def write_pdf(target: Path, entries: List[Dict[str, Any]], header: Dict[str, str]) -> Tuple[str, List[Any]]:
    """Write the PDF of the written answers; ``(problem or '', page ranges)``."""
    try:
        import hwpdf
    except ImportError as error:
        return (f"{PDF_NAME} could not be written: {error.name or 'a package'} is not installed "
                "(pip install -r requirements.txt, or on Colab: pip install fpdf2==2.8.9)"), []
    try:
        return "", hwpdf.write(target, entries, header)
    except Exception as error:  # report, never crash: the rest of the check still counts
        return f"{PDF_NAME} could not be written: {type(error).__name__}: {str(error)[:200]}", []


def model_problem(path: Path) -> str:
    """Why the weights file would be refused before it is even loaded (the grader's zip rules), or ''."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return "is not a file written by torch.save (save model.state_dict() with torch.save)"
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries) or \
            sum(entry.file_size for entry in entries) > path.stat().st_size:
        return "is not laid out the way torch.save writes files (save it again with torch.save)"
    try:
        import torch
    except ImportError:
        return ""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        return f"cannot be read with torch.load(weights_only=True): {type(error).__name__}: {str(error)[:120]}"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "is not a state_dict (a dict of tensors): save model.state_dict(), not the model"
    return ""


def check(folder: Path) -> Tuple[List[str], List[str], Dict[str, Path]]:
    """``(problems, notes, {file name in the zip: path})`` for the folder; ready when there is no problem."""
    problems, notes, files, _, _ = check_all(folder)
    return problems, notes, files


def check_all(folder: Path) -> Tuple[List[str], List[str], Dict[str, Path], List[Dict[str, Any]], Dict[str, str]]:
    """``check``, the written questions with the student's answers (see ``written_entries``) and the name and
    student ID typed in the notebooks."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    notebooks = {name: entry["grade_ids"] for name, entry in manifest["notebooks"].items()}
    submission = hwsubmit.inspect_submission(folder, notebooks, manifest["submit"])
    problems: List[str] = []
    notes: List[str] = []
    for name, found in submission.files.items():
        notes += [f"{name}: {note}" for note in found.notes]
        if found.problem:
            problems.append(f"{name} {found.problem}")
    for name, entry in manifest["notebooks"].items():
        found = submission.files[name]
        if found.content is None:
            continue
        if unsaved_since_run(name, found.path):
            problems.append(f"{name} was run but not saved since: its file is older than this run. Save it "
                            "(Ctrl+S, or File → Save), then run this cell again")
        elif never_run(found.content):
            problems.append(f"{name} has never been run: open it, run every cell (Run All) and save it")
        unfinished = unfinished_cells(found.content)
        if unfinished:
            notes.append(f"{name}: not done yet (still raise NotImplementedError): {', '.join(unfinished)}")
        unreadable, empty = answer_problems(found.content, entry.get("answers", []))
        problems += [f"{name}: {text} (the grader cannot read it: it would score 0)" for text in unreadable]
        notes += [f"{name}: {text}" for text in empty]
    for name in manifest["submit"]:
        found = submission.files[name]
        if found.usable and name.endswith(".pt"):
            problem = model_problem(found.path)
            if problem:
                problems.append(f"{name} {problem}")
    log = submission.files.get(hwsubmit.STUDENT_LOG)
    if log is not None and log.usable:
        for note in hwcrosscheck.cross_check(log, submission.files, None):
            (problems if "DISAGREES" in note or "records no sha256" in note else notes).append(note)
    files = {name: found.path for name, found in submission.files.items() if found.usable and found.path}
    contents = {name: notebook_json(submission.files[name]) for name in manifest["notebooks"]}
    header = student_header(manifest, contents)
    mismatch = id_mismatch(header, contents)
    if mismatch:
        notes.append(mismatch)
    return problems, notes, files, written_entries(manifest, contents), header


def write_zip(target: Path, files: Dict[str, Path]) -> None:
    """The files under the names Gradescope expects, at the top of the zip (deterministic order)."""
    temporary = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.write(files[name], arcname=name)
    os.replace(temporary, target)


def written_warning(entries: List[Dict[str, Any]]) -> List[str]:
    """The lines of the warning about written questions still without an answer (none when all are answered)."""
    empty = [entry for entry in entries if entry["status"] != hwwritten.ANSWERED]
    if not empty:
        return []
    points = sum(float(entry["points"]) for entry in empty)
    lines = ["!" * 78,
             f"WARNING: {len(empty)} of {len(entries)} written questions have no answer yet ({points:g} points, "
             "graded by the course staff):"]
    for entry in empty:
        why = "answer cell missing" if entry["status"] == hwwritten.MISSING else "still YOUR ANSWER HERE"
        lines.append(f"  - {entry['number']} {entry['title']} ({entry['notebook']}, {float(entry['points']):g} "
                     f"points): {why}")
    lines.append("!" * 78)
    return lines


def main(argv: List[str]) -> int:
    folder = Path(argv[1]).resolve() if len(argv) > 1 else HERE
    problems, notes, files, entries, header = check_all(folder)
    for note in notes:
        print(f"  note: {note}")
    for line in written_warning(entries):
        print(line)
    if entries:
        problem, ranges = write_pdf(folder / PDF_NAME, entries, header)
        if problem:
            problems.append(problem)
        else:
            print(f"wrote {PDF_NAME}: {len(ranges)} written questions, each from the page shown:")
            print("  " + "; ".join(f"{item.number} p. {item.first}" + (f"-{item.last}" if item.last > item.first
                                                                          else "") for item in ranges))
    if problems:
        print(f"NOT READY to submit ({len(problems)} problem(s)):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    target = folder / ZIP_NAME
    write_zip(target, files)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()[:12]
    print(f"READY: {target.name} holds {', '.join(sorted(files))} (sha256 {digest}…). Upload it to Gradescope.")
    if entries:
        print(f"       {PDF_NAME} holds your written answers: upload it where your course collects them "
              "(a Gradescope PDF assignment, if it has one).")
    empty = [entry for entry in entries if entry["status"] != hwwritten.ANSWERED]
    if empty:
        print(f"       BUT {len(empty)} written question(s) still have no answer: see the WARNING above.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
