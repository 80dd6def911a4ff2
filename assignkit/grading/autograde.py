"""Grade one submission folder: validate it, referee and sandbox each notebook, score, write the results.

This is the one code path behind Gradescope's ``run_autograder`` and the local ``grade`` command. For each
notebook:

1. the **referee** (a trusted child that runs the master notebook, never student code) computes the values
   the hidden checks must match for this grading's secret seeds, judges the typed answers it reads from the
   submitted notebook file, and evaluates the submitted weights on the hidden data;
2. the **sandbox** (a child running as the unprivileged account) runs the student's notebook and the probe
   part of each check with the same seeds, and reports raw values;
3. the grader (this process, which never runs student code) compares them
   (:mod:`assignkit.grading.scoring`) and sweeps the sandbox account.

results.json and submission_log.json are rewritten atomically after every check, so an interrupted grading
still leaves valid files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import crosscheck, identity, results, written
from .child import __file__ as CHILD_FILE
from .course import Course, notebook_ids
from .flags import read_master, staff_flags
from .runner import CheckRun, Limits, NotebookRun, ProbeJob, SandboxUser, peak_rss, run_notebook
from .sandbox import lock_down, sweep
from .scoring import CheckResult, load_hwcheck, measured_accuracy, score
from .scratch import Scratch
from .seeds import check_seed, read_key
from .startup import preflight
from .submission import STUDENT_LOG, Submission, inspect_submission
from .suites import Suite, SuiteCheck
from .variantkeys import VariantKeys

TOTAL_SECONDS = 480.0
"""Wall-clock budget for all notebooks together: Gradescope's default time-out is 600 s."""
STARTUP_RESERVE_SECONDS = 30.0
MIN_NOTEBOOK_SECONDS = 5.0
MAX_CELL_NOTES = 8
HIDDEN_SURNAMES = "surnames_test_hidden.tsv"
LIBRARIES = ("torch", "numpy", "ipython", "matplotlib", "otter-grader", "nbgrader")
REFEREE_LIMITS = Limits(cell_seconds=120.0, check_seconds=10.0, notebook_seconds=240.0, max_restarts=12)
"""The referee runs staff code on hostile *data* (typed answers, weights files): the sandbox's memory limits, and
a check may take 10 s (the whole hidden test set takes about 2 s; a typed answer made to keep sympy busy is
stopped there and costs only itself). It runs alone, never beside a sandbox."""
MAX_SUMMARY_NOTES = 12
SWEEP_COUNTERS = ("processes_killed", "rounds", "paths_removed_count", "bytes_freed", "ipc_removed")
SETUP_CELLS = 3
"""How many of a notebook's first code cells count as its set-up (the folder cell, the imports, the helpers)."""
MISCONFIGURED = "not graded: the autograder is misconfigured (the course staff need to fix it; please tell them)"
MAX_INTERNAL_ERRORS = 50


@dataclass
class NotebookOutcome:
    """How one notebook's run went (for the summary and the staff log)."""

    name: str
    status: str = "pending"  # pending | graded | not graded
    reason: str = ""
    cells: List[str] = field(default_factory=list)  # student-facing notes on cells that failed
    events: List[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_bytes: int = 0
    children: int = 0
    output_bytes: int = 0
    referee_seconds: float = 0.0
    referee_cpu_seconds: float = 0.0
    referee_peak_rss_bytes: int = 0
    referee_events: List[str] = field(default_factory=list)
    sweep: Dict[str, Any] = field(default_factory=dict)
    staff_flags: List[str] = field(default_factory=list)


def library_versions() -> Dict[str, Optional[str]]:
    """Installed versions, read from package metadata (nothing is imported)."""
    from importlib import metadata

    versions: Dict[str, Optional[str]] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def process_usage() -> Dict[str, float]:
    """CPU seconds and peak RSS of this (grader) process, and CPU seconds of its finished children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = peak_rss("self") or own.ru_maxrss * 1024
    return {"cpu_seconds": round(own.ru_utime + own.ru_stime, 3), "peak_rss_bytes": peak,
            "children_cpu_seconds": round(children.ru_utime + children.ru_stime, 3)}


MAX_STAFF_ANSWER = 5000
"""Characters of a written answer shown in its staff-only Gradescope entry (the entry holds at most
``results.MAX_OUTPUT``, with the model answer and the rubric)."""


STUDENT_LINE = "| "
"""Every line of the student's answer in a staff-only entry starts with this, so that nothing a student types can
pass for a heading of the entry (a forged variant key or rubric)."""


def written_staff_text(question: written.Question, answer: written.Answer, variant_key: str = "") -> str:
    """What the staff-only entry of a written question says: the key of the student's own variant when the question
    is about it, the student's answer (as plain text, bounded, every line marked as the student's), the rubric and
    the model answer."""
    if answer.status == written.ANSWERED:
        text = answer.text.strip()
        shown = text if len(text) <= MAX_STAFF_ANSWER else \
            text[:MAX_STAFF_ANSWER] + f"\n… (shortened: {max(answer.length, len(text)):,} characters in the notebook)"
        shown = "\n".join(STUDENT_LINE + line for line in shown.split("\n"))
    elif answer.status == written.MISSING:
        shown = f"(no answer: the answer cell {question.grade_id} is not in the submitted {question.notebook})"
    else:
        shown = "(no answer: still YOUR ANSWER HERE)"
    rubric = [f"  [{points:g}] {item}" for item, points in question.rubric]
    key = ["=== THIS STUDENT'S VARIANT (from the STUDENT_ID saved in the notebook; the model answer below is the "
           "default variant's) ===", variant_key, ""] if variant_key else []
    budget = results.MAX_OUTPUT - len(shown) - sum(len(line) + 1 for line in rubric + key) - 400
    model = question.model_answer.strip()
    if len(model) > max(500, budget):
        model = model[:max(500, budget)].rstrip() + "\n… (the rest is in the solutions)"
    return "\n".join([f"STAFF ONLY, 0 points: grade {question.label} ({question.points:g} points) by hand.", "",
                      *key, f"=== STUDENT'S ANSWER (plain text, as submitted; every line starts with "
                      f"{STUDENT_LINE.strip()!r}) ===", shown, "",
                      f"=== RUBRIC ({question.points:g} points) ===", *rubric, "",
                      "=== MODEL ANSWER ===", model])


def cell_label(notebook: Any, index: int) -> str:
    """``code cell 6 ("class RNNLayer(...")``: 1-based among code cells, with its first line."""
    code = [c for c in notebook.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    first = ""
    if 0 <= index < len(code):
        source = code[index].get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first if len(first) <= 50 else first[:47] + "..."
    return f'code cell {index + 1} ("{first}")' if first else f"code cell {index + 1}"


class Grading:
    """One grading of one submission: the state, the scoring as checks finish, and the writes."""

    def __init__(self, course: Course, submission_dir: Path, results_dir: Path, *, limits: Optional[Limits] = None,
                 referee_limits: Limits = REFEREE_LIMITS, user: Optional[SandboxUser] = None,
                 sweep_user: bool = False, total_seconds: float = TOTAL_SECONDS, scratch_base: Optional[Path] = None,
                 log: Callable[[str], None] = lambda message: None,
                 submitters: Optional[Sequence[str]] = None) -> None:
        self.course = course
        self.submitters = submitters  # the IDs of whoever submitted (Gradescope's metadata, a roster), if known
        self.identity: Dict[str, Dict[str, Any]] = {}
        self.identity_refusals: Dict[str, str] = {}  # notebook name -> why its typed answers earn nothing
        self.key, self.key_origin = read_key(course.key_path)
        self.submission_dir = submission_dir
        self.results_dir = results_dir
        self.limits = limits or Limits()
        self.referee_limits = referee_limits
        self.user = user
        self.sweep_user = sweep_user
        self.total_seconds = total_seconds
        self.scratch_base = scratch_base
        self.log = log
        self.started = time.monotonic()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.checks: Dict[str, CheckResult] = {}
        self.check_status: Dict[str, str] = {}
        self.outcomes: Dict[str, NotebookOutcome] = {s.name: NotebookOutcome(s.name) for s in course.suites}
        self.submission: Optional[Submission] = None
        self.cross_checks: List[str] = []
        self.internal_errors: List[str] = []
        self.finished = False
        self.hwcheck: Any = None
        self.accuracy: Optional[float] = None
        self.seeds: Dict[str, int] = {}
        self.write_failures = 0
        self.misconfigured = ""  # set when the sandbox or the referee cannot even start: a staff problem
        self.preflight_problem: Optional[str] = None  # None: not checked yet; "": the sandbox starts fine
        self.scratch: Optional[Scratch] = None
        self._written: Dict[str, List[written.Question]] = {}
        for suite in course.suites:
            for check in suite.checks:
                self.checks[check.grade_id] = CheckResult(check.grade_id, suite.name, 0.0, check.points, check.hidden,
                                                          "not graded yet (grading did not finish)")
                self.check_status[check.grade_id] = "pending"

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> Grading:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:  # the sandbox account must not write (or read) the results, nor read the
            lock_down([self.results_dir])  # submission folder: its code gets copies of the files its seeds cover
            if self.submission_dir.is_dir() and self.submission_dir.stat().st_uid != self.user.uid:
                os.chmod(self.submission_dir, self.submission_dir.stat().st_mode & 0o700)
        results.write_json_atomic(self.results_dir / results.RESULTS_FILE, results.placeholder())
        try:
            self.hwcheck = load_hwcheck(self.course.hwcheck_path)
            self.submission = inspect_submission(self.submission_dir, dict(notebook_ids(self.course.suites)),
                                                 self.course.extra_files)
            self._judge_identity()
            self.publish()
            self._grade_notebooks()
            self._cross_check()
            self.finished = True
        except Exception:  # a bug of the grader must still leave valid results that say so
            self.internal_errors.append(traceback.format_exc(limit=8))
            self.log(self.internal_errors[-1])
        finally:
            failures = self.write_failures
            self.publish()
            if self.write_failures > failures:
                self._sweep()
                self.publish()
        return self

    def _grade_notebooks(self) -> None:
        assert self.submission is not None
        scratch = self.scratch = Scratch(self.user, self.scratch_base)
        try:
            runtime = scratch.install_runtime([*self.course.runtime_files, Path(CHILD_FILE)])
            pending = list(self.course.suites)
            while pending:
                suite = pending.pop(0)
                if self.misconfigured:
                    self._fail_suite(suite, MISCONFIGURED)
                    continue
                try:
                    self._grade_notebook(suite, scratch, runtime, len(pending) + 1)
                except Exception:
                    self.internal_errors.append(traceback.format_exc(limit=8))
                    self.log(self.internal_errors[-1])
                    self._fail_suite(suite, "internal grading error (please tell the course staff)")
                finally:
                    self._sweep(suite.name)
        finally:
            scratch.cleanup()
            self.scratch = None

    def _sweep(self, notebook: Optional[str] = None) -> None:
        """Kill whatever the sandbox account left running and remove its files in the shared temp folders."""
        if not self.sweep_user:
            return
        report = sweep(self.user, keep=[self.scratch.root] if self.scratch is not None else [])
        if notebook is not None and report:
            outcome = self.outcomes[notebook]
            for key, value in report.items():
                if key in SWEEP_COUNTERS and isinstance(value, (int, float)):
                    outcome.sweep[key] = outcome.sweep.get(key, 0) + value  # summed over the notebook's sweeps
                else:
                    outcome.sweep.setdefault(key, value)

    def _time_left(self) -> float:
        return self.total_seconds - (time.monotonic() - self.started)

    def _grade_notebook(self, suite: Suite, scratch: Scratch, runtime: Path, notebooks_left: int) -> None:
        assert self.submission is not None
        outcome = self.outcomes[suite.name]
        notebook = self.submission.file(suite.filename)
        if not notebook.usable:
            self._fail_suite(suite, f"{suite.filename} {notebook.problem}, so this check could not run")
            return
        budget = min(self.limits.notebook_seconds, self._time_left() / notebooks_left)
        if budget < MIN_NOTEBOOK_SECONDS:
            self._fail_suite(suite, "not run: the autograder ran out of time before this notebook")
            return
        seeds = {check.grade_id: check_seed(self.key, self.submission.digest, suite.filename, check.grade_id)
                 for check in suite.checks if check.in_sandbox and check.hidden}
        if any(check.refuses_kernels for check in suite.checks):
            outcome.staff_flags = staff_flags(notebook.content, read_master(self.course.master_path(suite)))
        self.seeds.update(seeds)
        started = time.monotonic()
        refereed = self._referee(suite, seeds, scratch, runtime, budget / 2)
        outcome.referee_seconds = round(time.monotonic() - started, 3)
        for check in suite.checks:  # static and referee checks are decided now; hidden sandbox checks wait
            if not check.in_sandbox:
                self._store(check, score(check, None, refereed.get(check.grade_id), None, self.hwcheck))
                if (check.spec.get("score") or {}).get("kind") == "accuracy":
                    self.accuracy = measured_accuracy(refereed.get(check.grade_id), check.spec, self.hwcheck)
        sandboxed = suite.sandbox_checks
        if not sandboxed:
            outcome.status = "graded"
            self.publish()
            return
        files = {suite.filename: notebook.path, **self._submitted_files(suite)}
        workdir = scratch.workdir(suite.name, self.course.public_data, files)
        code_cells = sum(1 for cell in notebook.content.get("cells", []) if isinstance(cell, dict)
                         and cell.get("cell_type") == "code")
        job = ProbeJob(workdir / suite.filename, [CheckRun(c.grade_id, c.probe_source, seeds.get(c.grade_id))
                                                  for c in sandboxed],
                       suite.skip_ids, code_cells=code_cells, preload=self.course.libraries)
        by_name = {check.grade_id: check for check in sandboxed}

        def listener(name: str, report: Dict[str, Any], seconds: float) -> None:
            check = by_name.get(name)
            if check is not None:
                self._store(check, score(check, report, refereed.get(name), self.course.public_goldens.get(name),
                                         self.hwcheck, seconds))

        budget = max(MIN_NOTEBOOK_SECONDS, min(self.limits.notebook_seconds, self._time_left() / notebooks_left))
        self.log(f"grading {suite.filename} (budget {budget:.0f} s)")
        run = run_notebook(job, workdir, runtime, limits=dataclasses.replace(self.limits, notebook_seconds=budget),
                           user=self.user, listener=listener,
                           between_children=lambda: self._sweep(suite.name))
        scratch.remove(workdir)
        self._record_outcome(outcome, run, notebook.content)
        self._check_sandbox_starts(run, suite.name)
        for check in sandboxed:
            if self.check_status[check.grade_id] == "pending":
                listener(check.grade_id, run.reports.get(check.grade_id, {}), 0.0)

    def _submitted_files(self, suite: Suite) -> Dict[str, Path]:
        """``{name: path}`` of the usable files the student submitted for ``suite`` besides its notebook."""
        assert self.submission is not None
        found = {name: self.submission.file(name) for name in suite.submit if name in self.submission.files}
        return {name: file.path for name, file in found.items() if file.usable and file.path is not None}

    def _check_sandbox_starts(self, run: NotebookRun, notebook: str) -> None:
        """A notebook whose first cells (the folder and the set-up: imports) failed, or whose children died before
        any cell ran, may mean a broken image rather than a student's bug (a torch build that cannot be imported
        under the sandbox's limits, a library that starts a thread while it loads): then a fresh sandboxed child,
        started exactly as for grading, imports what the masters import (:func:`startup.preflight`, once per
        grading). If it cannot, the notebook is not graded and the grading is marked as misconfigured."""
        first = [run.cells[index] for index in sorted(run.cells)[:SETUP_CELLS]]
        if first and all(status == "ok" for status in first):
            return
        if self.preflight_problem is None:
            self._sweep(notebook)  # nothing the student left running may take part in the test
            self.preflight_problem = preflight(self.user, self.limits, self.course.runtime_files,
                                               self.course.libraries) or ""
        if not self.preflight_problem:
            return
        self.misconfigured = f"the sandbox cannot start what the notebooks import: {self.preflight_problem}"
        self.internal_errors.append(self.misconfigured[:2000])
        outcome = self.outcomes[notebook]
        self.internal_errors.append(f"{notebook}: cells that failed (not the student's doing): {outcome.cells[:4]}")
        outcome.cells = []
        suite = self.course.suite(notebook)
        for check in suite.checks:
            self.check_status[check.grade_id] = "pending"
        self._fail_suite(suite, MISCONFIGURED)

    def _referee(self, suite: Suite, seeds: Dict[str, int], scratch: Scratch, runtime: Path, budget: float
                 ) -> Dict[str, Dict[str, Any]]:
        """Run the master notebook in a trusted child: ``{check: report}`` for every check that needs it."""
        assert self.submission is not None
        wanted = {check.grade_id for check in suite.referee_checks}
        if not wanted:
            return {}
        outcome = self.outcomes[suite.name]
        master = self.course.master_path(suite)
        by_id = {check.grade_id: check for check in suite.checks}
        submitted = {suite.filename: self.submission.file(suite.filename).path, **self._submitted_files(suite)}
        workdir, copies = scratch.referee_dir(suite.name, master, self.course.public_data, self.course.hidden_data_dir,
                                              submitted)
        try:
            copies = {("notebook" if name == suite.filename else name): path for name, path in copies.items()}
            # the expected values first (staff code on the grader's seeds), the checks that read the student's
            # files last: a typed answer or weights file that uses up the referee's time then costs only itself
            checks = sorted((CheckRun(check.grade_id, check_source, seeds.get(check.grade_id), check.grade_id in wanted)
                             for check, check_source in self.course.check_sources(suite)),
                            key=lambda run: not by_id[run.grade_id].in_sandbox)
            env = {}
            if self.course.hidden_data_dir is not None and (workdir / "hidden_data" / HIDDEN_SURNAMES).is_file():
                env["HW_HIDDEN_SURNAMES"] = str(workdir / "hidden_data" / HIDDEN_SURNAMES)
            notebook = json.loads(master.read_text(encoding="utf-8"))
            code_cells = sum(1 for cell in notebook.get("cells", []) if cell.get("cell_type") == "code")
            job = ProbeJob(workdir / master.name, checks, suite.skip_ids, env=env, mode="referee",
                           submitted={k: str(v) for k, v in copies.items()}, code_cells=code_cells,
                           preload=self.course.libraries)  # what the fork server imports
            limits = dataclasses.replace(self.referee_limits, notebook_seconds=max(MIN_NOTEBOOK_SECONDS, budget))
            run = run_notebook(job, workdir, runtime, limits=limits, user=None)
        finally:
            scratch.remove(workdir)
        outcome.referee_cpu_seconds = round(run.child_cpu_seconds, 3)
        outcome.referee_peak_rss_bytes = run.child_peak_rss_bytes
        outcome.referee_events = list(run.events)
        failed_cells = {index: status for index, status in run.cells.items() if status != "ok"}
        if failed_cells or not run.cells:
            self.misconfigured = f"{suite.filename}: the referee could not run the master: {failed_cells or run.events}"
            self.internal_errors.append(self.misconfigured[:2000])
        reports: Dict[str, Dict[str, Any]] = {}
        for check in suite.referee_checks:
            report = run.reports.get(check.grade_id) or {}
            if check.in_sandbox and "error" in report:  # staff code failed on this seed: not the student's fault
                report = {"internal_error": f"the referee failed: {report['error']}"}
            reports[check.grade_id] = report
        return reports

    def _store(self, check: SuiteCheck, result: CheckResult) -> None:
        refused = self.identity_refusals.get(check.notebook)
        if refused and check.kind == "static" and result.points:  # typed answers for someone else's numbers
            result = dataclasses.replace(result, points=0.0, ok=False, message=refused)
        self.checks[check.grade_id] = result
        self.check_status[check.grade_id] = "graded"
        if result.internal_error:
            self.internal_errors.append(f"{check.grade_id}: {result.internal_error}"[:2000])
        self.publish()

    def _record_outcome(self, outcome: NotebookOutcome, run: NotebookRun, notebook: Any) -> None:
        outcome.status = "graded"
        outcome.wall_seconds = run.wall_seconds
        outcome.cpu_seconds = run.child_cpu_seconds
        outcome.peak_rss_bytes = run.child_peak_rss_bytes
        outcome.children = run.children
        outcome.output_bytes = run.output_bytes
        outcome.events = list(run.events)
        for index, status in sorted(run.cells.items()):
            if status != "ok":
                text = status if "it was skipped" in status else f"raised {status}"
                outcome.cells.append(f"{cell_label(notebook, index)}: {' '.join(text.split())[:240]}")
        self.log(f"  {outcome.name}: {run.wall_seconds:.1f} s wall, {run.child_cpu_seconds:.1f} s CPU in "
                 f"{run.children} sandboxed run(s)")

    def _fail_suite(self, suite: Suite, message: str) -> None:
        outcome = self.outcomes[suite.name]
        outcome.status, outcome.reason = "not graded", message
        for check in suite.checks:
            if self.check_status[check.grade_id] == "pending":
                self.checks[check.grade_id] = CheckResult(check.grade_id, suite.name, 0.0, check.points,
                                                          check.hidden, message)
                self.check_status[check.grade_id] = "not run"
        self.publish()

    def _judge_identity(self) -> None:
        """Notebooks with per-student variants (their master asks for ``STUDENT_ID``): when the typed ID is not one
        of the submitters', the notebook's typed answers (checks judged from the saved file) earn nothing. Judged
        before any notebook is graded, so that no results.json written on the way (a grading cut short is still
        published) ever holds typed points the identity check would take away."""
        assert self.submission is not None
        for suite in self.course.suites:
            master = json.loads(self.course.master_path(suite).read_text(encoding="utf-8"))
            if not any(((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id") == identity.ID_CELL
                       for cell in master.get("cells", [])):
                continue
            found = self.submission.file(suite.filename)
            path = found.path if found.usable else None
            verdict = identity.judge(path, self.submitters, self.hwcheck)
            self.identity[suite.name] = {"typed": verdict.typed, "checked": self.submitters is not None,
                                         "matches": verdict.ok}
            if verdict.ok:
                continue
            self.log(f"{suite.filename}: {verdict.message}")
            self.identity_refusals[suite.name] = verdict.message
            self.outcomes[suite.name].cells.insert(0, verdict.message)

    def _cross_check(self) -> None:
        assert self.submission is not None
        if STUDENT_LOG in self.submission.files:  # only courses whose masters ask for the log
            try:
                self.cross_checks = crosscheck.cross_check(self.submission.file(STUDENT_LOG), self.submission.files,
                                                           self.accuracy)
            except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as error:
                # every value in the log is the student's: a log the reader cannot digest costs nothing
                self.cross_checks = [f"{STUDENT_LOG} could not be read for the cross-checks "
                                     f"({type(error).__name__}); it was not used."]

    # -- the outputs --------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def totals(self, hidden: Optional[bool] = None) -> Dict[str, float]:
        chosen = [r for r in self.checks.values() if hidden is None or r.hidden == hidden]
        return {"score": round(sum(r.points for r in chosen), 4),
                "max_score": round(sum(r.max_points for r in chosen), 4)}

    def summary(self) -> str:
        """The top-level text students see (no hidden results before publication: only their points possible)."""
        lines = []
        if not self.finished:
            lines.append("Grading did not finish; the results below are partial." if self.submission
                         else "Grading did not finish: please resubmit, or tell the course staff.")
        if self.misconfigured:
            lines.append("The autograder is misconfigured and could not grade this submission: please tell the "
                         "course staff (it is not a problem of your files).")
        elif self.internal_errors:
            lines.append("The autograder hit an internal error: please tell the course staff.")
        if self.submission is not None:
            lines += ["", "Files:"]
            for name, found in self.submission.files.items():
                where = f" (as {found.relative})" if found.relative and found.relative != name else ""
                state = f"PROBLEM: {name} {found.problem}" if found.problem else f"{name}: found{where}"
                lines.append(f"  {state}")
                lines += [f"    note: {note}" for note in found.notes]
            if self.submission.skipped_links:
                lines.append(f"  ignored symbolic links: {', '.join(self.submission.skipped_links[:5])}")
        public = [r for r in self.checks.values() if not r.hidden]
        hidden = self.totals(hidden=True)
        lines += ["", f"Public checks: {sum(r.ok for r in public)} of {len(public)} pass (listed below). They give "
                  "feedback only: their expected values are public, so they carry no points.",
                  f"Hidden checks: {hidden['max_score']:g} points; their results appear here when grades are "
                  "published."]
        for suite in self.course.suites:
            outcome = self.outcomes[suite.name]
            notes = ([outcome.reason] if outcome.reason else []) + outcome.cells[:MAX_CELL_NOTES]
            if len(outcome.cells) > MAX_CELL_NOTES:
                notes.append(f"... and {len(outcome.cells) - MAX_CELL_NOTES} more cells")
            notes += [event for event in outcome.events if not event.startswith("cell ")]
            if len(notes) > MAX_SUMMARY_NOTES:
                notes = [*notes[:MAX_SUMMARY_NOTES], f"... and {len(notes) - MAX_SUMMARY_NOTES} more notes"]
            if notes:
                lines += ["", f"{suite.filename}:"] + [f"  {note}" for note in notes]
        visible = [note for note in self.cross_checks if "measured" not in note]  # the accuracy is a hidden result
        if visible:
            lines += ["", "Cross-checks of your submission_log.json (no points depend on it):"]
            lines += [f"  {note}" for note in visible]
        manual = [f"{suite.filename}: {suite.manual_total:g} points" for suite in self.course.suites
                  if suite.manual_total]
        if manual:
            lines += ["", "Written answers (" + "; ".join(manual) + ") are graded by the course staff in "
                      "Gradescope's manually graded questions: they are not part of this autograder score."]
        return "\n".join(lines).strip()

    def gradescope(self) -> Dict[str, Any]:
        redact = self.course.redactor
        tests = []
        for suite in self.course.suites:
            for check in suite.checks:
                result = self.checks[check.grade_id]
                tests.append(results.gradescope_test(check.title, result.points, result.max_points, result.message,
                                                     check.hidden, [suite.filename], redact, result.passed))
        tests += self.written_tests()
        return results.gradescope_results(tests, self.summary(), self.elapsed(), redact)

    def written_questions(self, suite: Suite) -> List[written.Question]:
        """The written questions of a suite, read from its master (trusted, in the bundle); none if unreadable."""
        if suite.name not in self._written:
            try:
                master = json.loads(self.course.master_path(suite).read_text(encoding="utf-8"))
                self._written[suite.name] = written.questions(master, suite.filename)
            except (OSError, ValueError):
                self._written[suite.name] = []
        return self._written[suite.name]

    def written_tests(self) -> List[Dict[str, Any]]:
        """One staff-only 0-point entry per written question: the student's answer, the model answer, the rubric."""
        tests = []
        keys: Any = None
        for suite in self.course.suites:
            found = self.submission.files.get(suite.filename) if self.submission is not None else None
            notebook = found.content if found is not None else None
            for question in self.written_questions(suite):
                answer = written.answer_of(notebook, question.grade_id, limit=4 * MAX_STAFF_ANSWER) \
                    if notebook is not None else written.Answer(written.MISSING)
                variant_key = ""
                if question.variant:
                    keys = keys or VariantKeys.of(self.course)
                    variant_key = keys.describe(notebook) if keys else "(the course's variants could not be loaded)"
                tests.append(results.staff_only_test(f"{question.label} — written answer (staff only, graded by "
                                                     "hand)", written_staff_text(question, answer, variant_key),
                                                     [suite.filename, "written"]))
        return tests

    def staff_log(self) -> Dict[str, Any]:
        """submission_log.json: every check with points, status, message and duration, and the context."""
        submission = self.submission
        return {
            "assignment": "hw_rnn",
            "finished": self.finished,
            "started_at": self.started_at,
            "execution_seconds": round(self.elapsed(), 3),
            **self.totals(),
            "public": self.totals(hidden=False),
            "hidden": self.totals(hidden=True),
            "environment": {"python": platform.python_version(), "platform": platform.platform(),
                            "executable": sys.executable, "libraries": library_versions()},
            "grader": {"course": self.course.origin, "sandbox_uid": self.user.uid if self.user else None,
                       "pid": os.getpid(), "limits": dataclasses.asdict(self.limits),
                       "total_seconds": self.total_seconds, "usage": process_usage(),
                       "grading_key": self.key_origin, "seeds": dict(sorted(self.seeds.items()))},
            "files": {} if submission is None else {
                name: {"found_as": found.relative or None, "bytes": found.size, "sha256": found.sha256 or None,
                       "problem": found.problem or None, "notes": found.notes}
                for name, found in submission.files.items()
            },
            "other_files": submission.other_files if submission else [],
            "notebooks": {name: dataclasses.asdict(outcome) for name, outcome in self.outcomes.items()},
            "checks": [
                {"grade_id": check.grade_id, "title": check.title, "notebook": suite.filename,
                 "hidden": check.hidden, "points": self.checks[check.grade_id].points,
                 "max_points": check.points, "status": self._status(check.grade_id),
                 "message": self.checks[check.grade_id].message,
                 "seconds": round(self.checks[check.grade_id].seconds, 3)}
                for suite in self.course.suites for check in suite.checks
            ],
            "cross_checks": self.cross_checks,
            "manual_points": {suite.filename: dict(suite.manual_points) for suite in self.course.suites},
            "identity": self.identity,
            "misconfigured": self.misconfigured or None,
            "internal_errors": self.internal_errors[:MAX_INTERNAL_ERRORS],
        }

    def _status(self, grade_id: str) -> str:
        state = self.check_status[grade_id]
        if state != "graded":
            return state
        result = self.checks[grade_id]
        return "passed" if result.passed else ("partial" if result.points > 0 else "failed")

    def publish(self) -> None:
        """Rewrite both result files (atomically). A failed write (a full disk) is retried at the end, after the
        sweep has removed the sandbox account's files; the previous complete file stays in place meanwhile."""
        for name, make in ((results.LOG_FILE, self.staff_log), (results.RESULTS_FILE, self.gradescope)):
            try:
                results.write_json_atomic(self.results_dir / name, make())
            except (OSError, ValueError) as error:
                self.write_failures += 1
                self.log(f"could not write {name}: {error}")


def grade_submission(course: Course, submission_dir: Path, results_dir: Path, **options: Any) -> Grading:
    """Grade ``submission_dir`` into ``results_dir`` (results.json + submission_log.json); see :class:`Grading`."""
    return Grading(course, submission_dir, results_dir, **options).run()


def scores_row(grading: Grading) -> Dict[str, Any]:
    """One CSV row: totals and every check's points."""
    flags = sum(len(outcome.staff_flags) for outcome in grading.outcomes.values())
    row: Dict[str, Any] = {"finished": grading.finished, **grading.totals(), "staff_flags": flags}
    for name, result in grading.checks.items():
        row[name] = result.points
    return row

