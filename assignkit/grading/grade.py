"""Grade submissions locally with exactly the code Gradescope runs.

    python -m assignkit.grading.grade SUBMISSION_DIR --out RESULTS_DIR
    python -m assignkit.grading.grade --many SUBMISSIONS_PARENT --csv grades.csv [-j 2] [--out RESULTS_PARENT]

The goldens and suites come from the repository after ``make release`` (``--course``, default: this
repository) or from a built bundle (``--bundle autograder/dist/autograder.zip`` or its unzipped folder).
With ``--many`` every subfolder of SUBMISSIONS_PARENT is one submission; they are graded in parallel
(``-j``, default: all cores) and each gets RESULTS_PARENT/<name>/results.json and submission_log.json.
Run as root to run student code as an unprivileged user (``--user``, default ``hwsandbox``, else ``nobody``).
"""

from __future__ import annotations

import argparse
import atexit
import csv
import os
import shutil
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .autograde import Grading, grade_submission, scores_row
from .course import Course
from .sandbox import resolve_user

REPO_ROOT = Path(__file__).resolve().parents[2]
_COURSE: Optional[Course] = None
_OPTIONS: Dict[str, Any] = {}


def open_bundle(path: Path) -> Course:
    """A bundle folder, or a zip unpacked into a temporary folder removed at exit."""
    if path.is_dir():
        return Course.from_bundle(path)
    target = Path(tempfile.mkdtemp(prefix="hwbundle-"))
    atexit.register(shutil.rmtree, target, True)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(target)
    os.chmod(target, 0o700)
    return Course.from_bundle(target)


def load_course(course_root: Optional[Path], bundle: Optional[Path]) -> Course:
    if bundle is not None:
        return open_bundle(bundle)
    root = course_root or REPO_ROOT
    try:
        return Course.from_repo(root)
    except FileNotFoundError:
        built = root / "autograder" / "dist" / "autograder.zip"
        if course_root is None and built.is_file():
            return open_bundle(built)
        raise


def _grade(submission: Path, out: Path, course: Course, options: Dict[str, Any]) -> Grading:
    return grade_submission(course, submission, out, **options)


def _worker_init(course: Course, options: Dict[str, Any]) -> None:
    global _COURSE, _OPTIONS
    _COURSE, _OPTIONS = course, options


def _worker(task: Tuple[str, str]) -> Tuple[str, Dict[str, Any]]:
    assert _COURSE is not None
    submission, out = task
    grading = _grade(Path(submission), Path(out), _COURSE, _OPTIONS)
    return Path(submission).name, scores_row(grading)


def grade_many(parent: Path, out_parent: Path, course: Course, options: Dict[str, Any], jobs: int,
               csv_path: Path) -> List[Tuple[str, Dict[str, Any]]]:
    """Grade every subfolder of ``parent`` (``jobs`` at a time) and write one CSV row per submission."""
    folders = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    tasks = [(str(folder), str(out_parent / folder.name)) for folder in folders]
    rows: List[Tuple[str, Dict[str, Any]]] = []
    if tasks:
        with ProcessPoolExecutor(max_workers=max(1, jobs), initializer=_worker_init,
                                 initargs=(course, options)) as pool:
            for name, row in pool.map(_worker, tasks):
                print(f"{name}: {row['score']:g} / {row['max_score']:g}", flush=True)
                rows.append((name, row))
    write_csv(csv_path, rows, course)
    return rows


def write_csv(path: Path, rows: List[Tuple[str, Dict[str, Any]]], course: Course) -> None:
    check_ids = [check.grade_id for suite in course.suites for check in suite.checks]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", "score", "max_score", "finished", *check_ids])
        for name, row in rows:
            writer.writerow([name, row["score"], row["max_score"], row["finished"], *(row[c] for c in check_ids)])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", nargs="?", type=Path, help="one submission folder")
    parser.add_argument("--many", type=Path, help="a folder whose subfolders are submissions")
    parser.add_argument("--out", type=Path, help="results folder (default: ./results or ./results/<name>)")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"), help="with --many: the CSV to write")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel gradings")
    parser.add_argument("--course", type=Path, help="course folder after `make release` (default: this repo)")
    parser.add_argument("--bundle", type=Path, help="an autograder.zip or its unzipped folder instead")
    parser.add_argument("--user", help="the unprivileged account for student code (when run as root)")
    args = parser.parse_args(argv)
    if (args.submission is None) == (args.many is None):
        parser.error("give either one SUBMISSION_DIR or --many SUBMISSIONS_PARENT")
    course = load_course(args.course, args.bundle)
    user = resolve_user(args.user or course.sandbox_user)
    if user is None:
        print("note: not running as root, so student code runs as you (fine for trusted local runs; "
              "Gradescope runs it as an unprivileged user)", file=sys.stderr)
    options: Dict[str, Any] = {"user": user}
    out = args.out or Path("results")
    if args.many is not None:
        rows = grade_many(args.many, out, course, options, args.jobs, args.csv)
        print(f"graded {len(rows)} submission(s) into {out}; grades in {args.csv}")
        return 0 if all(row["finished"] for _, row in rows) else 1
    grading = _grade(args.submission, out, course, {**options, "log": print})
    totals = grading.totals()
    print(f"{args.submission}: {totals['score']:g} / {totals['max_score']:g} -> {out / 'results.json'}")
    return 0 if grading.finished else 1


if __name__ == "__main__":
    sys.exit(main())
