"""Grade submissions locally with exactly the code Gradescope runs.

    python -m assignkit.grading.grade SUBMISSION_DIR --out RESULTS_DIR
    python -m assignkit.grading.grade --many SUBMISSIONS_PARENT --csv grades.csv [-j 2] [--out RESULTS_PARENT]

The goldens and suites come from the repository after ``make release`` (``--course``, default: this
repository) or from a built bundle (``--bundle autograder/dist/autograder.zip`` or its unzipped folder).
With ``--many`` every subfolder of SUBMISSIONS_PARENT is one submission; they are graded in parallel
(``-j``, default: all cores, at most one per submission) and each gets RESULTS_PARENT/<name>/results.json and
submission_log.json; RESULTS_PARENT/written_answers/ gets one HTML page per written question (every student's
answer, the model answer, the rubric) and written_scores.csv to fill in (``byquestion.py`` merges it).

The sandbox (run as root, e.g. ``sudo .venv/bin/python -m assignkit.grading.grade ...``): student code runs as an
unprivileged account, as on Gradescope. Every parallel grading has an account of its own, so that gradings can
neither read nor kill each other: ``hwsandbox``, ``hwsandbox2`` … ``hwsandboxN`` for ``-j N`` (``--user NAME``
changes the base name; worker k always uses the k-th). Create them once with

    bash autograder/create_sandbox_user.sh --count N

(``grade`` stops before grading and prints that command when one is missing). Before grading, and after every
notebook, root kills whatever the account left running and removes its files from /tmp, /var/tmp and /dev/shm.
Before grading, the checkout this command runs from (and a ``--course`` folder elsewhere) is made unreadable for the
accounts, whatever is graded, since it holds the masters and the hidden data, in .git too (``chmod go-rwx`` on every
entry but the virtualenv the sandbox runs from; the checkout itself becomes ``0711``; the changes are printed), and
this is checked as each account; a ``--bundle`` is unpacked into a private ``0700`` folder, also checked; with
``--many``, SUBMISSIONS_PARENT is made private too, so no submission can read another.

``--no-sandbox``: as any user but root, ``grade`` refuses to run student code unless given this flag. With it,
student code runs as you, with the resource limits but without any privilege drop: it can read (and send
anywhere, change or delete) everything you can, this repository's solutions and hidden tests included. Only for
submissions you trust.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import fcntl
import multiprocessing
import os
import shutil
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .autograde import Grading, grade_submission, scores_row
from .byquestion import WRITTEN_CSV, write_views
from .course import Course
from .identity import normalise, read_roster
from .runner import SandboxUser
from .sandbox import (
    FALLBACK_USER,
    SandboxError,
    account_name,
    dedicated_users,
    is_root,
    protect_checkout,
    sweep,
    verify_unreadable,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
_COURSE: Optional[Course] = None
_OPTIONS: Dict[str, Any] = {}
LOCK_FOLDER = Path("/run/hwgrade-accounts")  # root's: one lock per sandbox account in use
_LOCKS: List[int] = []

NO_SANDBOX_REFUSED = """\
grade: not running as root, so there is no sandbox: student code would run as you, able to read, change or
delete everything you can (this repository's solutions and hidden tests included) and to send it anywhere.
Run as root to grade in the sandbox, like Gradescope:
    sudo {python} -m assignkit.grading.grade ...
(create the sandbox accounts once with `bash autograder/create_sandbox_user.sh --count N`), or pass
--no-sandbox to run student code as you anyway (only for submissions you trust)."""

NO_SANDBOX_WARNING = """\
################################################################################################################
WARNING: --no-sandbox: student code runs as YOU ({user}), with resource limits but no privilege drop. It can read,
change or delete everything you can, including this repository's solutions, hidden tests and goldens, and send
it anywhere. Only grade submissions you trust this way; run as root for the sandbox.
################################################################################################################"""


def _bundle_folder(path: Path) -> Path:
    """A bundle folder as is, or a zip unpacked into a private (0700) temporary folder removed at exit."""
    if path.is_dir():
        return path
    target = Path(tempfile.mkdtemp(prefix="hwbundle-"))
    atexit.register(shutil.rmtree, target, True)
    os.chmod(target, 0o700)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(target)
    os.chmod(target, 0o700)
    return target


def open_bundle(path: Path) -> Course:
    """A bundle folder, or a zip unpacked into a temporary folder removed at exit."""
    return Course.from_bundle(_bundle_folder(path))


def open_course(course_root: Optional[Path], bundle: Optional[Path]) -> Tuple[Course, Optional[Path], Optional[Path]]:
    """The course, the checkout it was read from (``None`` for a bundle) and the bundle folder (``None`` for a
    checkout)."""
    if bundle is not None:
        folder = _bundle_folder(bundle)
        return Course.from_bundle(folder), None, folder
    root = course_root or REPO_ROOT
    try:
        return Course.from_repo(root), root.resolve(), None
    except FileNotFoundError:
        built = root / "autograder" / "dist" / "autograder.zip"
        if course_root is None and built.is_file():
            folder = _bundle_folder(built)
            return Course.from_bundle(folder), None, folder
        raise


def load_course(course_root: Optional[Path], bundle: Optional[Path]) -> Course:
    return open_course(course_root, bundle)[0]


def _grade(submission: Path, out: Path, course: Course, options: Dict[str, Any]) -> Grading:
    return grade_submission(course, submission, out, **options)


def _worker_init(course: Course, options: Dict[str, Any], accounts: Any = None) -> None:
    """Set up one pool worker; with ``accounts`` (a queue holding one account per worker) it takes one for good."""
    global _COURSE, _OPTIONS
    _COURSE, _OPTIONS = course, dict(options)
    if accounts is not None:
        _OPTIONS.update(user=accounts.get(timeout=60), sweep_user=True)


def with_submitters(options: Dict[str, Any], submission: Path) -> Dict[str, Any]:
    """``options`` for grading ``submission``: its submitters' IDs from the roster (``options["roster"]``, by
    folder name), if a roster was given; without one the typed student ID is not checked."""
    found = dict(options)
    roster = found.pop("roster", None)
    if roster is not None:
        found["submitters"] = roster.get(submission.name, [])
    return found


def _worker(task: Tuple[str, str]) -> Tuple[str, Dict[str, Any], str]:
    assert _COURSE is not None
    submission, out = task
    grading = _grade(Path(submission), Path(out), _COURSE, with_submitters(_OPTIONS, Path(submission)))
    user = _OPTIONS.get("user")
    return Path(submission).name, scores_row(grading), account_name(user.uid) if user is not None else ""


def submission_folders(parent: Path) -> List[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def grade_many(parent: Path, out_parent: Path, course: Course, options: Dict[str, Any], jobs: int,
               csv_path: Path, users: Optional[Sequence[SandboxUser]] = None) -> List[Tuple[str, Dict[str, Any]]]:
    """Grade every subfolder of ``parent`` (``jobs`` at a time) and write one CSV row per submission.

    With ``users`` (one account per worker, e.g. from :func:`sandbox.dedicated_users`) there are ``len(users)``
    workers and each runs all its gradings as its own account, sweeping only that account.
    """
    tasks = [(str(folder), str(out_parent / folder.name)) for folder in submission_folders(parent)]
    rows: List[Tuple[str, Dict[str, Any]]] = []
    if tasks:
        context = multiprocessing.get_context()
        accounts = None
        if users:
            jobs = len(users)
            accounts = context.Queue()
            for user in users:
                accounts.put(user)
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context, initializer=_worker_init,
                                 initargs=(course, options, accounts)) as pool:
            for name, row, account in pool.map(_worker, tasks):
                as_whom = f" (as {account})" if account else ""
                print(f"{name}: {row['score']:g} / {row['max_score']:g}{as_whom}", flush=True)
                rows.append((name, row))
    write_csv(csv_path, rows, course)
    try:  # the written answers, by question, for the staff (read as JSON, never run)
        views = write_views(parent, course, out_parent / "written_answers")
        print(f"written answers by question: {views / 'index.html'} (scores go in {views / WRITTEN_CSV})")
    except (OSError, ValueError) as error:
        print(f"could not write the written answers by question: {error}", file=sys.stderr)
    return rows


def write_csv(path: Path, rows: List[Tuple[str, Dict[str, Any]]], course: Course) -> None:
    check_ids = [check.grade_id for suite in course.suites for check in suite.checks]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", "score", "max_score", "finished", "staff_flags", *check_ids])
        for name, row in rows:
            writer.writerow([name, row["score"], row["max_score"], row["finished"], row.get("staff_flags", 0),
                             *(row[c] for c in check_ids)])


def _private_submissions(parent: Path, users: Sequence[SandboxUser], log: Callable[[str], None]) -> None:
    """A folder of many submissions must be unreadable for the accounts: one notebook could copy another's code."""
    for user in users:
        if verify_unreadable(user, [parent], limit=500):
            mode = parent.stat().st_mode & 0o7777
            os.chmod(parent, mode & ~0o077)
            log(f"grade: made {parent} private ({mode:04o} -> {mode & ~0o077:04o}): "
                f"{account_name(user.uid)} could read the other submissions")
            readable = verify_unreadable(user, [parent], limit=500)
            if readable:
                raise SandboxError(f"{account_name(user.uid)} can still read {readable[0]} (ACL or group?): "
                                   f"move the submissions to a private folder")


def _claim(users: Sequence[SandboxUser], folder: Path = LOCK_FOLDER) -> None:
    """Hold an exclusive lock on each account until this process and its workers exit: two ``grade`` runs sharing
    an account would kill each other's notebooks (each sweeps its accounts)."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or folder.stat().st_uid != os.getuid():
            return
    except OSError:
        return  # no place for locks (not Linux, no /run): grading still works
    for user in users:
        name = account_name(user.uid)
        fd = os.open(folder / f"{user.uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            raise SandboxError(f"the sandbox account {name} is in use by another grade run; wait for it, or give "
                               f"this one other accounts (--user NAME, created with "
                               f"`bash autograder/create_sandbox_user.sh --count N --base NAME`)") from error
        _LOCKS.append(fd)


def prepare_sandbox(base: str, count: int, *, checkout: Optional[Path] = None, bundle: Optional[Path] = None,
                    submissions: Optional[Path] = None, log: Callable[[str], None] = print) -> List[SandboxUser]:
    """The accounts of ``count`` parallel gradings, claimed for this run (a lock each) and swept, with the course's
    secrets checked unreadable for each.

    Raises :class:`SandboxError` (or ``ValueError`` for an account that is root) with what to do.
    """
    users = dedicated_users(base, count)
    _claim(users)
    for user in users:
        report = sweep(user)
        if report.get("processes_killed") or report.get("paths_removed_count") or report.get("ipc_removed"):
            log(f"grade: leftovers of {report['user']} removed: {report['processes_killed']} process(es), "
                f"{report['paths_removed_count']} path(s), {report['ipc_removed']} IPC object(s)")
    # The checkout this grader runs from holds the masters and the hidden data (in .git too), whatever course is
    # graded; a --course folder elsewhere is protected as well.
    checkouts = [REPO_ROOT] + ([checkout] if checkout is not None and checkout.resolve() != REPO_ROOT else [])
    for folder in checkouts:
        for user in users:
            report = protect_checkout(folder, user)
            for change in report.get("changed", []):
                log(f"grade: made private for the sandbox: {change}")
            if report and not report.get("venv_readable", True):
                log(f"grade: warning: {account_name(user.uid)} cannot read the virtualenv {report['venv']}: "
                    f"the sandboxed notebooks will not start")
    if bundle is not None:
        for user in users:
            readable = verify_unreadable(user, [bundle])
            if readable:
                raise SandboxError(f"the sandbox account {account_name(user.uid)} can read the bundle {bundle} "
                                   f"({readable[0]}): make it private first (chmod -R go-rwx {bundle})")
    if submissions is not None:
        _private_submissions(submissions, users, log)
    return users


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", nargs="?", type=Path, help="one submission folder")
    parser.add_argument("--many", type=Path, help="a folder whose subfolders are submissions")
    parser.add_argument("--out", type=Path, help="results folder (default: ./results or ./results/<name>)")
    parser.add_argument("--csv", type=Path, default=Path("grades.csv"), help="with --many: the CSV to write")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel gradings")
    parser.add_argument("--course", type=Path, help="course folder after `make release` (default: this repo)")
    parser.add_argument("--bundle", type=Path, help="an autograder.zip or its unzipped folder instead")
    parser.add_argument("--user", help="base name of the sandbox accounts (as root; default: the course's, "
                                       "hwsandbox; -j N uses NAME, NAME2 ... NAMEN)")
    parser.add_argument("--roster", type=Path, help="CSV with columns submission,student_id: the typed STUDENT_ID of "
                                                    "each submission must be one of its IDs (per-student variants)")
    parser.add_argument("--student-id", action="append", default=[],
                        help="one submission: the submitter's student ID or e-mail (repeat for a group)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="not root: run student code as you anyway (it can read everything you can)")
    args = parser.parse_args(argv)
    if (args.submission is None) == (args.many is None):
        parser.error("give either one SUBMISSION_DIR or --many SUBMISSIONS_PARENT")
    if args.jobs < 1:
        parser.error("-j must be at least 1")
    root = is_root()
    if root and args.no_sandbox:
        print("grade: --no-sandbox as root would run student code as root; grade as root without it (the sandbox "
              "accounts), or as a normal user with it", file=sys.stderr)
        return 2
    if not root and not args.no_sandbox:
        print(NO_SANDBOX_REFUSED.format(python=sys.executable), file=sys.stderr)
        return 2
    if args.no_sandbox:
        print(NO_SANDBOX_WARNING.format(user=account_name(os.getuid())), file=sys.stderr, flush=True)
    jobs = 1
    if args.many is not None:
        jobs = max(1, min(args.jobs, len(submission_folders(args.many))))
    course, checkout, bundle = open_course(args.course, args.bundle)
    users: List[SandboxUser] = []
    if root:
        base = args.user or course.sandbox_user
        if base == FALLBACK_USER:
            print(f"grade: {FALLBACK_USER!r} is shared with the rest of the machine and cannot be swept; use the "
                  f"dedicated accounts (bash autograder/create_sandbox_user.sh --count {jobs})", file=sys.stderr)
            return 2
        try:
            users = prepare_sandbox(base, jobs, checkout=checkout, bundle=bundle, submissions=args.many,
                                    log=lambda message: print(message, file=sys.stderr, flush=True))
        except (SandboxError, ValueError) as error:
            print(f"grade: {error}", file=sys.stderr)
            return 2
    out = args.out or Path("results")
    identities: Dict[str, Any] = {}
    if args.roster is not None:
        identities["roster"] = read_roster(args.roster)
    if args.many is not None:
        rows = grade_many(args.many, out, course, {"user": None, **identities}, jobs, args.csv, users=users or None)
        print(f"graded {len(rows)} submission(s) into {out}; grades in {args.csv}")
        return 0 if all(row["finished"] for _, row in rows) else 1
    options: Dict[str, Any] = {"user": users[0], "sweep_user": True} if users else {"user": None}
    if args.student_id:
        identities = {"submitters": [normalise(value) for value in args.student_id]}
    grading = _grade(args.submission, out, course, with_submitters({**options, **identities, "log": print},
                                                                   args.submission))
    totals = grading.totals()
    print(f"{args.submission}: {totals['score']:g} / {totals['max_score']:g} -> {out / 'results.json'}")
    return 0 if grading.finished else 1


if __name__ == "__main__":
    sys.exit(main())
