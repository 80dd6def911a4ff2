"""The written answers that people grade: rubrics in the masters, the student's PDF, the template and outline, the
staff-only Gradescope entries.

The PDF tests run check_submission.py as a student would, on a copy of the fast build's release folder, for a
blank, a full and a hostile notebook set, and read the PDF back with pypdf: its outline (one entry per written
question, in the manifest's order) gives each question's page range, and the extracted text of that range must
hold the question's heading, its footer on every page and the student's answer.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from pypdf import PdfReader
from student_folders import NOTEBOOKS, release_check_submission, run_check, student_folder

ROOT = Path(__file__).resolve().parents[1]
PDF = "hw_rnn_written.pdf"


def masters() -> Dict[str, Any]:
    return {name: json.loads((ROOT / "source" / "hw_rnn" / name).read_text(encoding="utf-8")) for name in NOTEBOOKS}


def flat(text: str) -> str:
    """Text without any whitespace (PDF text extraction puts spaces and line breaks where it likes)."""
    return re.sub(r"\s+", "", text)


# -- rubrics ----------------------------------------------------------------------------------------------------------

def test_every_manually_graded_cell_has_a_rubric_that_adds_up_to_its_points() -> None:
    from assignkit.grading.written import questions, rubric_problems
    from assignkit.masters import read_masters

    found = [question for name, notebook in masters().items() for question in questions(notebook, name)]
    assert len(found) == 28 and sum(question.points for question in found) == 59
    for master in read_masters(ROOT / "source" / "hw_rnn"):
        mine = {q.grade_id: q.points for q in found if q.notebook == f"{master.name}.ipynb"}
        assert mine == master.manual_points  # the same cells and points as the grader's manual points
    problems = [problem for question in found for problem in rubric_problems(question)]
    assert problems == []
    for question in found:
        assert all(len(item) > 20 for item, _ in question.rubric), question.grade_id  # real items, not placeholders
        assert question.prompt and question.number and question.title, question.grade_id
    labels = [question.label for question in found]
    assert len(set(labels)) == len(labels)
    assert {"1.E Linear recurrence", "4.4 (b) A gradient by hand", "4.B Written: what gating solves"} <= set(labels)


def test_a_rubric_that_does_not_add_up_is_reported() -> None:
    from assignkit.grading.written import Question, rubric_problems

    question = Question("n.ipynb", "written_x", "9.Z", "Made up", 3.0, rubric=(("one thing right", 1.0),
                                                                             ("another thing right", 1.0)))
    assert any("adds up to 2, not its 3 points" in problem for problem in rubric_problems(question))
    assert rubric_problems(Question("n.ipynb", "written_y", "9.Y", "No rubric", 2.0)) == \
        ["n.ipynb: written_y has no rubric"]


def test_the_release_carries_no_rubric_and_the_solutions_show_every_rubric(fast_build: Path) -> None:
    from assignkit.grading.written import questions

    for name, master in masters().items():
        release = json.loads((fast_build / "release" / "hw_rnn" / name).read_text(encoding="utf-8"))
        assert not any("rubric" in cell.get("metadata", {}) for cell in release["cells"]), name
        assert '"rubric"' not in (fast_build / "release" / "hw_rnn" / name).read_text(encoding="utf-8")
        solution = json.loads((fast_build / "solutions" / "hw_rnn" / name).read_text(encoding="utf-8"))
        shown = "\n".join("".join(cell["source"]) for cell in solution["cells"]
                          if "rubric" in cell.get("metadata", {}).get("tags", []))
        for question in questions(master, name):
            for item, _ in question.rubric:
                assert item in shown, (name, item)
    release = fast_build / "release" / "hw_rnn"
    assert (release / "hwwritten.py").read_bytes() == (ROOT / "assignkit" / "grading" / "written.py").read_bytes()
    assert "fpdf2==2.8.9" in (release / "requirements.txt").read_text().splitlines()
    manifest = json.loads((release / "submission_manifest.json").read_text())
    assert len(manifest["written"]) == 28
    assert not any("rubric" in entry or "model_answer" in entry for entry in manifest["written"])


# -- the student's PDF ------------------------------------------------------------------------------------------------

def answer_cell(notebook: Dict[str, Any], grade_id: str) -> Dict[str, Any]:
    return next(cell for cell in notebook["cells"]
                if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == grade_id)


def marker(grade_id: str) -> str:
    return f"Answer-of-{grade_id}-ends"


def fill_answers(folder: Path, manifest: Dict[str, Any]) -> Dict[str, str]:
    """Every written answer replaced by markdown prose with a sentence only it holds; ``{grade_id: sentence}``."""
    sentences = {}
    for name in NOTEBOOKS:
        notebook = json.loads((folder / name).read_text(encoding="utf-8"))
        for entry in manifest["written"]:
            if entry["notebook"] == name:
                sentence = f"{marker(entry['grade_id'])} reads: the gradient shrinks by a factor of 0.5 per step."
                answer_cell(notebook, entry["grade_id"])["source"] = (
                    f"**Short answer.** {sentence}\n\nWith $h_t = W h_{{t-1}}$ the norm falls as $0.5^{{T-t}}$:\n\n"
                    "$$\\frac{\\partial L}{\\partial h_t} = 2\\,(W^h)^{T-t}$$\n\n* first point\n* second point\n")
                sentences[entry["grade_id"]] = sentence
        first = notebook["cells"][0]
        first["source"] = "**Name:** Ada Lovelace\n\n**Student ID:** 1815-12\n"
        (folder / name).write_text(json.dumps(notebook), encoding="utf-8")
    return sentences


def page_ranges(path: Path) -> Tuple[List[str], List[Tuple[int, int]], List[str]]:
    """``(outline titles, (first, last) page index of each, text of every page)`` of the PDF."""
    reader = PdfReader(str(path))
    outline = [item for item in reader.outline if not isinstance(item, list)]
    titles = [str(item.title) for item in outline]
    starts = [reader.get_destination_page_number(item) for item in outline]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    ends = [start - 1 for start in starts[1:]] + [len(reader.pages) - 1]
    return titles, list(zip(starts, ends, strict=True)), [page.extract_text() for page in reader.pages]


def check_pdf(folder: Path, manifest: Dict[str, Any]) -> Dict[str, str]:
    """The PDF has one page range per written question, in the manifest's order, each page footed with its
    question; returns ``{grade_id: flat text of its range}``."""
    titles, ranges, pages = page_ranges(folder / PDF)
    expected = [f"Question {entry['number']} {entry['title']}" for entry in manifest["written"]]
    assert titles == expected
    assert ranges[0][0] == 1  # page 1 is the cover
    texts = {}
    for entry, (first, last) in zip(manifest["written"], ranges, strict=True):
        label = flat(f"Question {entry['number']} {entry['title']}")
        for page in pages[first:last + 1]:
            assert label in flat(page), (label, page[:200])
        texts[entry["grade_id"]] = flat("".join(pages[first:last + 1]))
        assert flat(f"{entry['points']:g} point") in texts[entry["grade_id"]]
    return texts


def test_the_blank_release_gets_one_page_per_question_each_saying_unanswered(fast_build: Path,
                                                                            tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=False)
    manifest = json.loads((folder / "submission_manifest.json").read_text())
    code, output = run_check(folder)
    assert code == 1 and "NOT READY" in output
    assert "WARNING: 28 of 28 written questions have no answer yet (59 points" in output
    assert "1.E Linear recurrence (q_rnn_and_grad.ipynb, 3 points): still YOUR ANSWER HERE" in output
    texts = check_pdf(folder, manifest)
    for text in texts.values():
        assert flat("No answer: this question is still at YOUR ANSWER HERE") in text
    _, ranges, pages = page_ranges(folder / PDF)
    assert all(first == last for first, last in ranges)  # an empty answer takes one page
    assert "(noname" in flat(pages[0])


def test_a_full_set_puts_each_answer_in_its_own_page_range(fast_build: Path, tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    manifest = json.loads((folder / "submission_manifest.json").read_text())
    sentences = fill_answers(folder, manifest)
    code, output = run_check(folder)
    assert code == 0 and "READY" in output and "WARNING" not in output, output
    assert f"wrote {PDF}: 28 written questions" in output
    texts = check_pdf(folder, manifest)
    for grade_id, sentence in sentences.items():
        assert flat(sentence) in texts[grade_id], grade_id
        elsewhere = [other for other in texts if other != grade_id and marker(grade_id) in texts[other]]
        assert not elsewhere, (grade_id, elsewhere)
    cover = flat(PdfReader(str(folder / PDF)).pages[0].extract_text())
    assert "Name:AdaLovelace" in cover and "StudentID:1815-12" in cover
    first = (folder / PDF).read_bytes()
    assert run_check(folder)[0] == 0
    assert (folder / PDF).read_bytes() == first  # the same answers give the same bytes


def test_the_model_answers_typeset_with_their_math_and_figures(fast_build: Path, tmp_path: Path) -> None:
    """The solutions as a submission: every model answer (tables, display math, lists) and the figures of the
    report questions fit in the PDF without a fallback to plain text."""
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    manifest = json.loads((folder / "submission_manifest.json").read_text())
    code, output = run_check(folder)
    assert code == 0, output
    texts = check_pdf(folder, manifest)
    figures = [entry["grade_id"] for entry in manifest["written"] if entry["figure"]]
    assert len(figures) >= 5
    for grade_id in figures:
        assert flat("The figure this question reports on") in texts[grade_id]
        assert flat("could not be read") not in texts[grade_id]
    assert not any(flat("could not be typeset") in text for text in texts.values())
    assert flat("neural network network") in texts["written_beam_exact"]
    reader = PdfReader(str(folder / PDF))
    images = sum(len(page.images) for page in reader.pages)
    assert images > 100  # formulas and figures are drawn as images


def hostile(folder: Path, manifest: Dict[str, Any]) -> Dict[str, str]:
    """The full set, attacked: extra and deleted cells, a 1 MB answer, broken LaTeX, raw HTML and script, a cell
    source that is not text, a figure that is not an image, a deleted notebook. Returns the expected texts."""
    sentences = fill_answers(folder, manifest)
    path = folder / "q_rnn_and_grad.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    notebook["cells"][0]["source"] = "**Name:** <script>alert('name')</script>\n\n**Student ID:** 42\n"
    extra = [{"cell_type": "markdown", "metadata": {}, "source": "### 1.E A heading the student added\n\nnotes"},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "x = 1"}]
    index = notebook["cells"].index(answer_cell(notebook, "written_e"))
    notebook["cells"][index:index] = extra
    notebook["cells"].remove(answer_cell(notebook, "written_g"))
    huge = "".join(f"line {number:06d} of a very long answer. " for number in range(30_000))
    assert len(huge) > 1_000_000
    answer_cell(notebook, "written_f")["source"] = huge
    answer_cell(notebook, "written_h")["source"] = (
        "Broken formulas: $\\frac{a}{$ and $\\undefinedmacro{x}^{$ then\n\n$$\\begin{aligned} x &= \\nosuch{y} "
        "\\\\ z &= \\frac{1}{2}\n$$\n\nand the end of the broken answer.")
    answer_cell(notebook, "written_i")["source"] = (
        "<script>alert('pwned')</script><img src=x onerror=alert(1)>\n\n<div style=\"display:none\">hidden div"
        "</div>\n\n[a link](javascript:alert(2)) and ![img](http://example.invalid/x.png) end of html answer.")
    answer_cell(notebook, "written_j")["source"] = 12345
    figure = answer_cell(notebook, "visualiser_static")
    figure["outputs"] = [{"output_type": "display_data", "metadata": {},
                          "data": {"image/png": base64.b64encode(b"\x89PNG\r\n\x1a\nnot really a png").decode()}}]
    path.write_text(json.dumps(notebook), encoding="utf-8")
    (folder / "q_char_lm.ipynb").unlink()
    return {"written_e": sentences["written_e"], "written_f": huge[:3000],
            "written_h": "Broken formulas: $\\frac{a}{$", "written_i": "<script>alert('pwned')</script>"}


def test_a_hostile_set_still_gets_exactly_one_page_range_per_question(fast_build: Path, tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    manifest = json.loads((folder / "submission_manifest.json").read_text())
    expected = hostile(folder, manifest)
    code, output = run_check(folder)
    assert code == 1 and "q_char_lm.ipynb is missing" in output
    assert "1.G All timesteps versus the last one (q_rnn_and_grad.ipynb, 2 points): answer cell missing" in output
    assert "1.J Skip connections and the cell state (q_rnn_and_grad.ipynb, 2 points): still YOUR ANSWER HERE" \
        in output
    texts = check_pdf(folder, manifest)
    for grade_id, text in expected.items():
        assert flat(text) in texts[grade_id], grade_id
    assert flat("Answer shortened: the notebook holds") in texts["written_f"]
    assert flat("and the end of the broken answer.") in texts["written_h"]
    assert flat("end of html answer.") in texts["written_i"]
    assert flat("answer cell of this question is not in q_rnn_and_grad.ipynb") in texts["written_g"]
    assert flat("still at YOUR ANSWER HERE") in texts["written_j"]
    assert flat("The figure could not be read") in texts["written_e"]
    for entry in manifest["written"]:
        if entry["notebook"] == "q_char_lm.ipynb":
            assert flat("the answer cell of this question is not in q_char_lm.ipynb") in texts[entry["grade_id"]]
    cover = flat(PdfReader(str(folder / PDF)).pages[0].extract_text())
    assert flat("Name: <script>alert('name')</script>") in cover


def test_the_cover_falls_back_on_the_typed_student_id_and_a_second_id_is_pointed_out(fast_build: Path,
                                                                                    monkeypatch) -> None:
    """The PDF cover reads the ID from the notebooks' first cell; left empty, it takes q_written's STUDENT_ID; two
    different IDs get a note that the grader uses STUDENT_ID."""
    release = fast_build / "release" / "hw_rnn"
    check_submission = release_check_submission(release, monkeypatch)
    manifest = json.loads((release / "submission_manifest.json").read_text(encoding="utf-8"))
    written = json.loads((release / "q_written.ipynb").read_text(encoding="utf-8"))
    answer_cell(written, "student_id")["source"] = 'STUDENT_ID = "a1234567"\n'
    contents = {name: None for name in manifest["notebooks"]}
    contents["q_written.ipynb"] = written
    header = check_submission.student_header(manifest, contents)
    assert header["student_id"] == "a1234567" and check_submission.id_mismatch(header, contents) == ""
    answer_cell(written, "student_info")["source"] = "**Name:** Ada\n\n**Student ID:** b7654321\n"
    header = check_submission.student_header(manifest, contents)
    assert header == {"name": "Ada", "student_id": "b7654321"}
    note = check_submission.id_mismatch(header, contents)
    assert "'b7654321'" in note and "'a1234567'" in note and "the grader uses STUDENT_ID" in note


def test_an_unreadable_typed_answer_is_not_ready_and_empty_written_answers_are_a_warning(fast_build: Path,
                                                                                       tmp_path: Path) -> None:
    folder = student_folder(fast_build, tmp_path / "hw_rnn", solution=True)
    notebook = json.loads((folder / "q_written.ipynb").read_text(encoding="utf-8"))
    answer_cell(notebook, "written_padding")["source"] = "YOUR ANSWER HERE"
    (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    code, output = run_check(folder)
    assert code == 0 and "READY" in output
    assert "WARNING: 1 of 28 written questions have no answer yet (3 points" in output
    assert "4.1 Mini-batches of sequences with different lengths (q_written.ipynb, 3 points)" in output
    assert "BUT 1 written question(s) still have no answer" in output
    answer_cell(notebook, "beam_t1")["source"] = "beam_t1 = list(reversed([('network', -0.73), ('neural', -0.65)]))"
    (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    (folder / "hw_rnn_submission.zip").unlink()
    code, output = run_check(folder)
    assert code == 1 and "NOT READY" in output and "must be written out as a literal value" in output
    assert "the grader cannot read it: it would score 0" in output
    assert not (folder / "hw_rnn_submission.zip").exists()


# -- the template and its outline -------------------------------------------------------------------------------------

def test_the_build_writes_the_template_and_its_outline_and_the_readme_quotes_it(fast_build: Path) -> None:
    solutions = fast_build / "solutions" / "hw_rnn"
    manifest = json.loads((fast_build / "release" / "hw_rnn" / "submission_manifest.json").read_text())
    titles, ranges, _ = page_ranges(solutions / "hw_rnn_written_template.pdf")
    assert titles == [f"Question {entry['number']} {entry['title']}" for entry in manifest["written"]]
    outline = (solutions / "hw_rnn_written_outline.md").read_text(encoding="utf-8")
    rows = [line for line in outline.splitlines() if line.startswith("| ") and not line.startswith("| question")]
    assert len(rows) == 28
    for entry, (first, last), row in zip(manifest["written"], ranges, rows, strict=True):
        pages_text = str(first + 1) if first == last else f"{first + 1}–{last + 1}"
        assert row == f"| {entry['number']} {entry['title']} | {pages_text} | {entry['points']:g} |"
    assert "59 points" in outline
    committed = (ROOT / "solutions" / "hw_rnn" / "hw_rnn_written_outline.md").read_text(encoding="utf-8")
    assert committed == outline  # make release was run after the last change of the masters
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for row in rows:
        assert row in readme, row
    assert (ROOT / "solutions" / "hw_rnn" / "hw_rnn_written_template.pdf").read_bytes() == \
        (solutions / "hw_rnn_written_template.pdf").read_bytes()  # deterministic: two builds, the same bytes


# -- Gradescope: staff-only entries -----------------------------------------------------------------------------------

def test_gradescope_output_has_a_hidden_zero_point_entry_per_written_question(fast_build: Path,
                                                                            tmp_path: Path) -> None:
    from assignkit.grading.autograde import Grading
    from assignkit.grading.course import Course, notebook_ids
    from assignkit.grading.results import check_outputs
    from assignkit.grading.submission import inspect_submission

    folder = student_folder(fast_build, tmp_path / "submission", solution=True)
    notebook = json.loads((folder / "q_written.ipynb").read_text(encoding="utf-8"))
    attack = "<script>alert('staff')</script> {{7*7}} ```\n# heading\n" + "x" * 30_000
    answer_cell(notebook, "written_padding")["source"] = attack
    notebook["cells"].remove(answer_cell(notebook, "written_multihead"))
    (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    course = Course.from_repo(fast_build)
    grading = Grading(course, folder, tmp_path / "results")
    grading.submission = inspect_submission(folder, dict(notebook_ids(course.suites)), course.extra_files)
    results = grading.gradescope()
    staff = [test for test in results["tests"] if test["visibility"] == "hidden"]
    assert len(staff) == 28
    assert all(test["score"] == 0 and test["max_score"] == 0 and test["output_format"] == "text" for test in staff)
    by_name = {test["name"]: test["output"] for test in staff}
    padding = by_name["4.1 Mini-batches of sequences with different lengths — written answer (staff only, graded by "
                      "hand)"]
    assert "\n".join("| " + line for line in attack[:200].split("\n")) in padding  # each line marked as the student's
    assert f"shortened: {len(attack):,} characters" in padding
    assert "=== RUBRIC (3 points) ===" in padding and "[1] Shape (b, L, m)" in padding
    assert "=== MODEL ANSWER ===" in padding and "**Shape.** One tensor $X$ of shape $(b, L, m)$" in padding
    assert len(padding) <= 8000
    multihead = next(output for name, output in by_name.items() if name.startswith("5.2 "))
    assert "the answer cell written_multihead is not in the submitted q_written.ipynb" in multihead
    gating = next(output for name, output in by_name.items() if name.startswith("4.B "))
    assert "(a) **Vanishing (and exploding) gradients over long spans.**" in gating  # the student's (the solution)
    students_see = "\n".join(check_outputs(results))
    assert "MODEL ANSWER" not in students_see and "alert('staff')" not in students_see


# -- without Gradescope: the grade-by-question pages, the CSV to fill in, the merge -----------------------------------

SCRIPT_ATTACK = ("<script>window.__pwned = 1; alert('pwned')</script><img src=x onerror=\"window.__pwned = 2\">"
                 "<style>body { display: none }</style><link rel=stylesheet href=\"http://127.0.0.1:9/x.css\">"
                 "<meta http-equiv=\"refresh\" content=\"0; url=http://127.0.0.1:9/\"><iframe src=\"http://127.0.0.1:9/\">"
                 "</iframe><svg onload=\"window.__pwned = 3\"></svg> the rest of the hostile answer")


def submissions(fast_build: Path, parent: Path) -> Path:
    """alice: the solutions, one answer hostile; bob: the blank release; carol: an empty folder."""
    alice = student_folder(fast_build, parent / "alice", solution=True)
    notebook = json.loads((alice / "q_rnn_and_grad.ipynb").read_text(encoding="utf-8"))
    answer_cell(notebook, "written_e")["source"] = SCRIPT_ATTACK
    (alice / "q_rnn_and_grad.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    student_folder(fast_build, parent / "bob", solution=False)
    (parent / "carol").mkdir()
    return parent


def test_the_grade_by_question_pages_escape_every_answer_and_the_merge_adds_up(fast_build: Path,
                                                                             tmp_path: Path) -> None:
    import csv

    from assignkit.grading.byquestion import MAX_ROW, MergeError, merge, write_views
    from assignkit.grading.course import Course
    from assignkit.grading.grade import write_csv

    course = Course.from_repo(fast_build)
    parent = submissions(fast_build, tmp_path / "submissions")
    out = write_views(parent, course, tmp_path / "out" / "written_answers")
    pages = sorted(out.glob("*.html"))
    assert len(pages) == 29  # 28 questions and the index
    for path in pages:
        text = path.read_text(encoding="utf-8")
        assert "Content-Security-Policy" in text and "default-src 'none'" in text and "script-src 'none'" in text
        assert "<script" not in text.lower() and "<iframe" not in text.lower() and "onerror=\"" not in text
    e = (out / "written_e.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned = 1; alert(&#x27;pwned&#x27;)&lt;/script&gt;" in e
    assert "[1] Writes out ∂L/∂h_t" in e and "(W^h)^{T-t}" in e  # the rubric and the model answer
    assert e.count("no answer (still YOUR ANSWER HERE)") == 1 and e.count("the notebook is missing") == 1
    with (out / "written_scores.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "submission" and len(rows[0]) == 29 and rows[1][0] == MAX_ROW
    assert sum(float(value) for value in rows[1][1:]) == 59
    assert [row[0] for row in rows[2:]] == ["alice", "bob", "carol"]

    check_ids = [check.grade_id for suite in course.suites for check in suite.checks]
    graded = {"alice": 80.5, "bob": 0.0, "carol": 0.0}
    write_csv(tmp_path / "grades.csv", [(name, {"score": score, "max_score": 88.0, "finished": True,
                                                 **{c: 0.0 for c in check_ids}}) for name, score in graded.items()],
              course)
    rows[2][1:] = rows[1][1:]  # alice: full marks on every written question
    rows[3][1:3] = ["1.5", "0"]  # bob: two questions graded, the rest left empty
    with (out / "written_scores.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    final = merge(tmp_path / "grades.csv", out / "written_scores.csv", tmp_path / "final.csv")
    by_name = {row["submission"]: row for row in final}
    assert by_name["alice"]["total"] == "139.5" and by_name["alice"]["written"] == "59"
    assert by_name["bob"]["total"] == "1.5" and by_name["bob"]["written_ungraded"] == "26"
    assert all(row["max_total"] == "147" for row in final)
    for row in final:
        written_sum = sum(float(row[q]) for q in rows[0][1:] if row[q])
        assert float(row["total"]) == float(row["autograded"]) + written_sum
    with (tmp_path / "final.csv").open(newline="") as handle:
        assert next(csv.DictReader(handle))["total"] == "139.5"
    rows[3][1] = "4"  # more than 1.E's 3 points
    with (out / "written_scores.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(MergeError, match=r"outside 0\.\.3"):
        merge(tmp_path / "grades.csv", out / "written_scores.csv", tmp_path / "final.csv")


def test_the_question_about_the_students_tree_shows_each_students_own_key(fast_build: Path, tmp_path: Path) -> None:
    """2.4 is about the student's own beam-search tree: its page (and its staff-only Gradescope entry) shows, beside
    each answer, the key of the variant the submitted STUDENT_ID selects; an unusual ID (here hostile markup) is
    said so, escaped, with its own key. Other questions' pages show no key. The entry puts the key first and marks
    every line of the student's answer, so an answer cannot pass for a key (found by a red team)."""
    from assignkit.grading.autograde import Grading
    from assignkit.grading.byquestion import write_views
    from assignkit.grading.course import Course
    from assignkit.variant_key import key_of

    parent = tmp_path / "submissions"
    typed = {"dana": "a1234567", "erin": "b7654321", "mallory": "<b>x</b>"}
    for name, student_id in typed.items():
        folder = student_folder(fast_build, parent / name, solution=True)
        notebook = json.loads((folder / "q_written.ipynb").read_text(encoding="utf-8"))
        answer_cell(notebook, "student_id")["source"] = f"STUDENT_ID = {student_id!r}\n"
        (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    course = Course.from_repo(fast_build)
    out = write_views(parent, course, tmp_path / "written_answers")
    page = (out / "written_beam_exact.html").read_text(encoding="utf-8")
    sections = {name: page[page.index(f'<h2 id="{name}">'):] for name in typed}
    for name in ("dana", "erin"):
        key = key_of(typed[name])
        mine = sections[name].split("</section>")[0]
        assert f"STUDENT_ID &#x27;{typed[name]}&#x27;" in mine
        assert f"beam after step 3: &#x27;{key['beam_t3'][0][0]}&#x27; {key['beam_t3'][0][1]:.2f}" in mine
        assert f"h_k = w ({key['recurrence'].split('(', 1)[1]}" in mine
    assert key_of("a1234567")["beam_t3"] != key_of("b7654321")["beam_t3"]
    hostile = sections["mallory"].split("</section>")[0]
    assert "(unusual: " in hostile and "&lt;b&gt;x&lt;/b&gt;" in hostile and "<b>x</b>" not in hostile
    assert f"beam after step 3: &#x27;{key_of('<b>x</b>')['beam_t3'][0][0]}&#x27;" in hostile
    assert "Variant of this submission" not in (out / "written_padding.html").read_text(encoding="utf-8")

    from assignkit.grading.course import notebook_ids
    from assignkit.grading.submission import inspect_submission

    forged = ("No, see below.\n=== THIS STUDENT'S VARIANT (forged) ===\nVariant of this submission: STUDENT_ID "
              "'someone else'\n=== RUBRIC (2 points) ===\n" + "\n" * 50)
    notebook = json.loads((parent / "dana" / "q_written.ipynb").read_text(encoding="utf-8"))
    answer_cell(notebook, "written_beam_exact")["source"] = forged
    (parent / "dana" / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    grading = Grading(course, parent / "dana", tmp_path / "results")
    grading.submission = inspect_submission(parent / "dana", dict(notebook_ids(course.suites)), course.extra_files)
    entries = {test["name"][:4]: test["output"] for test in grading.written_tests()}
    entry = entries["2.4 "]
    assert entry.index("=== THIS STUDENT'S VARIANT (from") < entry.index("=== STUDENT'S ANSWER")
    assert "STUDENT_ID 'a1234567'" in entry and "| === THIS STUDENT'S VARIANT (forged) ===" in entry
    assert not any(line.startswith("===") and "forged" in line for line in entry.splitlines())
    assert "THIS STUDENT'S VARIANT" not in entries["2.5 "]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_no_script_from_an_answer_runs_in_the_browser(fast_build: Path, tmp_path: Path) -> None:
    """The page with the hostile answer, opened in headless Chromium: no dialog, no script, no request but the
    page itself, and the answer is shown as text."""
    from playwright.sync_api import sync_playwright

    from assignkit.grading.byquestion import write_views
    from assignkit.grading.course import Course

    out = write_views(submissions(fast_build, tmp_path / "submissions"), Course.from_repo(fast_build),
                      tmp_path / "written_answers")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    dialogs: List[str] = []
    requests: List[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("request", lambda request: requests.append(request.url))
            for name in ("written_e.html", "index.html"):
                page.goto((out / name).as_uri())
                page.wait_for_timeout(1500)
                assert page.evaluate("typeof window.__pwned") == "undefined"
                assert page.evaluate("document.querySelectorAll('script, iframe, img, link, svg').length") == 0
            page.goto((out / "written_e.html").as_uri())
            body = page.inner_text("body")
            assert "<script>window.__pwned = 1; alert('pwned')</script>" in body
            assert "the rest of the hostile answer" in body
            assert page.is_visible("text=the rest of the hostile answer")  # the answer's <style> did not apply
        finally:
            browser.close()
    assert dialogs == []
    assert all(url.startswith("file://") for url in requests), requests


def test_a_lone_surrogate_in_an_answer_costs_no_page_and_no_zip(fast_build: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    """JSON can hold "\\ud800", which UTF-8 cannot: it stopped every later page of the views (a red team); a
    notebook that is not one ({"cells": 7}) crashed the student's check_submission."""
    from assignkit.grading.byquestion import write_views
    from assignkit.grading.course import Course

    folder = student_folder(fast_build, tmp_path / "submissions" / "zoe", solution=True)
    notebook = json.loads((folder / "q_written.ipynb").read_text(encoding="utf-8"))
    answer_cell(notebook, "written_padding")["source"] = "my answer \ud800 end"
    (folder / "q_written.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    out = write_views(tmp_path / "submissions", Course.from_repo(fast_build), tmp_path / "views")
    assert len(list(out.glob("*.html"))) == 29 and (out / "written_scores.csv").is_file()
    assert "my answer \ufffd end" in (out / "written_padding.html").read_text(encoding="utf-8")

    check_submission = release_check_submission(fast_build / "release" / "hw_rnn", monkeypatch)
    odd = {"q_written.ipynb": {"nbformat": 4, "cells": 7}, "q_char_lm.ipynb": [], "q_rnn_and_grad.ipynb": None}
    assert check_submission.typed_student_id(odd) == ""
    manifest = json.loads((fast_build / "release" / "hw_rnn" / "submission_manifest.json").read_text(encoding="utf-8"))
    assert check_submission.student_header(manifest, odd) == {"name": "", "student_id": ""}
