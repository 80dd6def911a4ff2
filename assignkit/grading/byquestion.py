"""Grading the written answers without Gradescope: one static HTML page per written question, a CSV to fill in,
and the merge of that CSV with the autograded scores.

    python -m assignkit.grading.byquestion views SUBMISSIONS_PARENT --out results/written_answers
    python -m assignkit.grading.byquestion merge --grades grades.csv \
        --written results/written_answers/written_scores.csv --out final_grades.csv

``grade --many`` writes the views itself (into ``OUT/written_answers/``). Each page shows, for one question, its
prompt, the model answer and the rubric, then every student's answer; a question about the student's own
variant (``variant_key`` in its metadata, e.g. 2.4's beam search) also shows that student's key. Student text
is hostile: it is only ever HTML-escaped text inside ``<pre>``, and every page carries a Content-Security-Policy
that allows no script, no request and no style but the page's own (by its hash), so nothing from an answer can
run or load anything in the staff's browser. Standard library only (it ships in the bundle with the rest of the
grader).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import written
from .course import Course, notebook_ids
from .submission import inspect_submission
from .variantkeys import VariantKeys

MAX_SHOWN = 50_000
VARIANT = "variant key"  # answers[submission][(VARIANT, notebook)]: that submission's variant key, as text
WRITTEN_CSV = "written_scores.csv"
MAX_ROW = "(max points)"
STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
         "pre{white-space:pre-wrap;word-wrap:break-word;background:#f6f6f6;border:1px solid #ddd;padding:.6em;"
         "font-size:.9em}section{border-top:2px solid #888;margin-top:1.5em}.empty{color:#a00;font-style:italic}"
         "nav a{margin-right:1em}.key{background:#eef6ee}")


def csp() -> str:
    """The pages' Content-Security-Policy: nothing may run or load; only the page's own style (by its hash)."""
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'sha256-{digest}'; img-src 'none'; script-src 'none'; "
            "object-src 'none'; frame-src 'none'; base-uri 'none'; form-action 'none'")


def page(title: str, body: str) -> str:
    """A complete static HTML page (``title`` is escaped here, ``body`` must already be safe HTML)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp()}\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def pre(text: str, css: str = "", length: int = 0) -> str:
    """Untrusted text as escaped, preformatted text (bounded; ``length``: the whole text's length, if cut before)."""
    shown = text if len(text) <= MAX_SHOWN else \
        text[:MAX_SHOWN] + f"\n… (shortened: {max(length, len(text)):,} characters)"
    klass = f' class="{css}"' if css else ""
    return f"<pre{klass}>{html.escape(shown, quote=True)}</pre>"


def slug(question: written.Question) -> str:
    """A file name for a question's page (its grade_id, only safe characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{question.grade_id}") + ".html"


def collect(parent: Path, course: Course) -> Tuple[List[written.Question], List[str], Dict[str, Dict[str, Any]]]:
    """``(questions in order, submission names, {submission: {grade_id: Answer}})`` for every subfolder of
    ``parent``; a submission's entry ``(VARIANT, notebook)`` holds its variant key (text) of that notebook when
    a question of it is about the student's variant. Notebooks are only read as JSON (never run), with the
    grader's own file rules."""
    questions: List[written.Question] = []
    for suite in course.suites:
        master = json.loads(course.master_path(suite).read_text(encoding="utf-8"))
        questions += written.questions(master, suite.filename)
    names = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    with_variants = {question.notebook for question in questions if question.variant}
    keys = VariantKeys.of(course) if with_variants else None
    answers: Dict[str, Dict[str, Any]] = {}
    for name in names:
        submission = inspect_submission(parent / name, dict(notebook_ids(course.suites)), course.extra_files)
        mine: Dict[str, Any] = {}
        for question in questions:
            found = submission.files.get(question.notebook)
            notebook = found.content if found is not None else None
            mine[question.grade_id] = written.answer_of(notebook, question.grade_id, limit=4 * MAX_SHOWN) \
                if notebook is not None else written.Answer(written.MISSING)
        for filename in with_variants:
            found = submission.files.get(filename)
            mine[(VARIANT, filename)] = keys.describe(found.content if found is not None else None) if keys else \
                "(this course's variants could not be loaded: no key to show)"
        answers[name] = mine
    return questions, names, answers


def question_page(question: written.Question, names: Sequence[str], answers: Mapping[str, Mapping[str, Any]],
                  index: str) -> str:
    """The page of one question: prompt, model answer, rubric, then every student's answer."""
    rubric = "".join(f"<li>[{points:g}] {html.escape(item)}</li>" for item, points in question.rubric)
    parts = [f'<nav><a href="{index}">all questions</a></nav>',
             f"<h1>{html.escape(question.label)} ({question.points:g} points)</h1>",
             f"<p>{html.escape(question.notebook)}, cell <code>{html.escape(question.grade_id)}</code>; "
             f"{len(names)} submissions. Scores go in column <code>{html.escape(question.grade_id)}</code> of "
             f"{WRITTEN_CSV}.</p>",
             "<h2>Prompt</h2>", pre(question.prompt),
             f"<h2>Rubric ({question.points:g} points)</h2><ul>{rubric}</ul>",
             "<h2>Model answer</h2>", pre(question.model_answer, "key")]
    for name in names:
        answer = answers[name][question.grade_id]
        parts.append(f'<section><h2 id="{html.escape(re.sub(r"[^A-Za-z0-9_-]", "_", name))}">'
                     f"{html.escape(name)}</h2>")
        if question.variant:
            parts.append(pre(str(answers[name].get((VARIANT, question.notebook), "")), "key"))
        if answer.status == written.ANSWERED:
            parts.append(pre(answer.text, length=answer.length))
        elif answer.status == written.MISSING:
            parts.append('<p class="empty">no answer: the answer cell or the notebook is missing</p>')
        else:
            parts.append('<p class="empty">no answer (still YOUR ANSWER HERE)</p>')
        parts.append("</section>")
    return page(f"{question.label}: written answers", "\n".join(parts))


def write_views(parent: Path, course: Course, out: Path) -> Path:
    """Write ``out/index.html``, one page per written question and ``out/written_scores.csv`` (one row per
    submission, one empty column per question, a first row with each question's maximum); returns ``out``."""
    questions, names, answers = collect(parent, course)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for question in questions:
        (out / slug(question)).write_text(question_page(question, names, answers, "index.html"), encoding="utf-8",
                                          errors="replace")
        empty = sum(answers[name][question.grade_id].status != written.ANSWERED for name in names)
        items.append(f'<li><a href="{slug(question)}">{html.escape(question.label)}</a> '
                     f"({question.points:g} points; {len(names) - empty} of {len(names)} answered)</li>")
    total = sum(question.points for question in questions)
    index = (f"<h1>Written answers, by question</h1><p>{len(questions)} questions, {total:g} points, "
             f"{len(names)} submissions. Enter the scores in {WRITTEN_CSV}, then merge it with the autograded "
             f"grades (<code>python -m assignkit.grading.byquestion merge</code>).</p><ol>{''.join(items)}</ol>")
    (out / "index.html").write_text(page("Written answers, by question", index), encoding="utf-8")
    target = out / WRITTEN_CSV
    if not target.exists():  # never overwrite scores the staff have already entered
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["submission", *(question.grade_id for question in questions)])
            writer.writerow([MAX_ROW, *(f"{question.points:g}" for question in questions)])
            for name in names:
                writer.writerow([name, *([""] * len(questions))])
    return out


class MergeError(ValueError):
    """The filled-in CSV does not fit the grades (unknown submission, a score that is not a number or too big)."""


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MergeError(f"{where}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise MergeError(f"{where}: {text!r} is not a number")
    return value


def merge(grades: Path, written_csv: Path, out: Path) -> List[Dict[str, str]]:
    """The final table: per submission every autograded check, every written question, and the totals
    (``autograded``, ``written``, ``total``, ``max_total``; ``written_ungraded`` counts empty written cells)."""
    with grades.open(newline="", encoding="utf-8") as handle:
        auto = list(csv.DictReader(handle))
    with written_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows = list(reader)
    if not header or header[0] != "submission":
        raise MergeError(f"{written_csv}: the first column must be 'submission'")
    questions = header[1:]
    maxima: Dict[str, float] = {}
    scores: Dict[str, Dict[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        cells = dict(zip(header, row + [""] * (len(header) - len(row)), strict=False))
        if cells["submission"] == MAX_ROW:
            maxima = {q: _number(cells[q], f"{written_csv}:{number} {q}") for q in questions}
            continue
        scores[cells["submission"]] = cells
    if not maxima:
        raise MergeError(f"{written_csv}: the row {MAX_ROW!r} is missing")
    known = {row["submission"] for row in auto}
    unknown = sorted(set(scores) - known)
    if unknown:
        raise MergeError(f"{written_csv}: submissions not in {grades.name}: {', '.join(unknown[:5])}")
    merged: List[Dict[str, str]] = []
    check_columns = [c for c in (auto[0].keys() if auto else []) if c not in
                     ("submission", "score", "max_score", "finished", "staff_flags")]
    for row in auto:
        name = row["submission"]
        mine = scores.get(name, {})
        total_written, ungraded = 0.0, 0
        entry = {"submission": name, **{c: row[c] for c in check_columns}}
        for question in questions:
            text = mine.get(question, "").strip()
            if not text:
                ungraded += 1
                entry[question] = ""
                continue
            value = _number(text, f"{written_csv}: {name} {question}")
            if not 0 <= value <= maxima[question]:
                raise MergeError(f"{written_csv}: {name} {question} = {value:g} is outside 0..{maxima[question]:g}")
            total_written += value
            entry[question] = f"{value:g}"
        autograded = _number(row["score"], f"{grades.name}: {name} score")
        max_total = _number(row["max_score"], f"{grades.name}: {name} max_score") + sum(maxima.values())
        entry.update({"autograded": f"{autograded:g}", "written": f"{total_written:g}",
                      "total": f"{autograded + total_written:g}", "max_total": f"{max_total:g}",
                      "written_ungraded": str(ungraded)})
        merged.append(entry)
    columns = ["submission", *check_columns, *questions, "autograded", "written", "total", "max_total",
               "written_ungraded"]
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(merged)
    os.replace(temporary, out)
    return merged


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    views = commands.add_parser("views", help="write the grade-by-question pages and the CSV to fill in")
    views.add_argument("submissions", type=Path, help="a folder whose subfolders are submissions")
    views.add_argument("--out", type=Path, default=Path("results") / "written_answers")
    views.add_argument("--course", type=Path, help="course folder after `make release` (default: this repo)")
    views.add_argument("--bundle", type=Path, help="an autograder.zip or its unzipped folder instead")
    joined = commands.add_parser("merge", help="merge the filled-in CSV with grade-many's grades")
    joined.add_argument("--grades", type=Path, default=Path("grades.csv"))
    joined.add_argument("--written", type=Path, default=Path("results") / "written_answers" / WRITTEN_CSV)
    joined.add_argument("--out", type=Path, default=Path("final_grades.csv"))
    args = parser.parse_args(argv)
    if args.command == "views":
        from .grade import load_course

        out = write_views(args.submissions, load_course(args.course, args.bundle), args.out)
        print(f"wrote the written answers by question to {out / 'index.html'}; scores go in {out / WRITTEN_CSV}")
        return 0
    try:
        rows = merge(args.grades, args.written, args.out)
    except (MergeError, OSError, KeyError) as error:
        print(f"merge: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(rows)} submissions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
