"""The build: masters run clean, the release is nbgrader's, holds no solutions, runs, and is reproducible."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, SOURCE

from assignkit.masters import HIDDEN_BEGIN, read_master, read_masters
from assignkit.notebooks import cell_errors

RELEASE = ROOT / "release" / "hw_rnn"
CONTRACT_IDS = {
    "q_rnn_and_grad": ["rnn_layer", "regression_model", "loss_fn", "gradient_norms", "lstm_layer", "stacked_rnn",
                       "stacked_lstm"],
    "q_rnn_last_name": ["letter_to_index", "recurrent_classifier"],
    "q_written": ["beam_search"],
    "q_char_lm": ["gru_layer", "clip_grad_norm", "char_lm", "sample", "beam_decode"],
}


def solution_lines(master_path: Path) -> set:
    """Distinctive lines inside the master's solution regions (not those that given code has as well: a staff
    cell may well reuse a line of the notebook's own helpers)."""
    lines, given = set(), set()
    for cell in nbformat.read(str(master_path), as_version=4).cells:
        regions = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S)
        for region in regions:
            lines.update(line.strip() for line in region.splitlines() if len(line.strip()) > 25)
        outside = re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "", cell.source, flags=re.S)
        given.update(line.strip() for line in outside.splitlines())
    return lines - given


def test_masters_declare_the_contract_grade_ids():
    for master in read_masters(SOURCE):
        assert set(CONTRACT_IDS[master.name]) <= set(master.solution_ids), master.name
        assert master.checks, f"{master.name} has no checks"
        assert any(check.hidden for check in master.checks), f"{master.name} has no hidden checks"


def test_masters_run_clean_and_solutions_are_written(fast_build):
    for master in read_masters(fast_build / "source" / "hw_rnn"):
        solution = nbformat.read(str(fast_build / "solutions" / "hw_rnn" / f"{master.name}.ipynb"), as_version=4)
        assert cell_errors(solution) == {}
        assert HIDDEN_BEGIN not in json.dumps(solution.dict())
        assert (fast_build / "solutions" / "hw_rnn" / f"{master.name}.html").stat().st_size > 10_000


def test_committed_release_is_byte_identical_to_a_fresh_build(fast_build):
    """Two builds (the committed `make release` and this fast build) give the same bytes."""
    fresh = fast_build / "release" / "hw_rnn"
    names = [*sorted(p.name for p in fresh.glob("*.ipynb")), "public_goldens.json", "hwcheck.py"]
    assert names and sorted(p.name for p in RELEASE.glob("*.ipynb")) == sorted(p.name for p in fresh.glob("*.ipynb"))
    for name in names:
        assert (RELEASE / name).read_bytes() == (fresh / name).read_bytes(), f"{name} differs: run `make release`"


@pytest.mark.parametrize("master_path", sorted(SOURCE.glob("q_*.ipynb")), ids=lambda p: p.stem)
def test_release_holds_no_solution_no_hidden_check_and_no_output(master_path):
    released = RELEASE / master_path.name
    text = released.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    leaked = [line for line in solution_lines(master_path) if line in text]
    assert leaked == []
    notebook = nbformat.read(str(released), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    master = read_master(master_path)
    hidden_only = {check.grade_id for check in master.checks if check.hidden}
    for cell in notebook.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in hidden_only:
            assert "hwcheck.check(" not in cell.source


def test_release_runs_top_to_bottom_and_every_part_reports_itself(fast_build, blank_run):
    """In a real kernel, each unfinished part fails its own public check with a clear message; nothing else
    (set-up, given code) fails, and later cells still run."""
    master = read_master(fast_build / "source" / "hw_rnn" / "q_rnn_and_grad.ipynb")
    notebook = blank_run("q_rnn_and_grad.ipynb")
    errors = cell_errors(notebook)
    public = [check.grade_id for check in master.checks if not check.hidden]
    for grade_id in public:
        assert grade_id in errors, f"{grade_id} did not fail on the blank release"
        assert "not implemented yet" in errors[grade_id][0] and "NotImplementedError" in errors[grade_id][0]
    allowed = set(public) | set(master.skip_ids)
    assert set(errors) <= allowed, f"unexpected failures: {set(errors) - allowed}"
    assert "setup" not in errors


def printed_text(cell: nbformat.NotebookNode, name: str | None = None) -> str:
    """Everything a code cell printed (on stream ``name``, or on any stream), joined: how the kernel split it into
    stream messages depends on timing, so no assertion may read one message on its own."""
    return "".join("".join(output.get("text", "")) for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and name in (None, output.get("name")))


def shown_text(cell: nbformat.NotebookNode) -> str:
    """A code cell's printed text followed by the plain-text form of its rich outputs."""
    rich = "".join(str(output.get("data", {}).get("text/plain", "")) for output in cell.get("outputs", []))
    return printed_text(cell) + rich


def test_solutions_read_like_a_finished_notebook(fast_build):
    """What TAs read: progress bars at their end (not stuck at 0%), no warnings, checks showing their ✓ lines."""
    solutions = fast_build / "solutions" / "hw_rnn"
    for path in sorted(solutions.glob("q_*.ipynb")):
        notebook = nbformat.read(str(path), as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        texts = [shown_text(cell) for cell in code]
        assert not [text for text in texts if "0%|" in text and "100%" not in text], path.name
        assert not [cell.source[:80] for cell in code if "Warning" in printed_text(cell, "stderr")], path.name
        assert not [line for text in texts for line in text.splitlines() if line.startswith("recorded ")]
        checks = [cell for cell in code if (cell.metadata.get("nbgrader") or {}).get("grade") and cell.outputs]
        assert checks, path.name
        for cell in checks:  # what the check printed, however it was split into messages, shows its ✓
            assert "✓" in printed_text(cell), (path.name, cell.source[:80], printed_text(cell)[:300])
    trained = nbformat.read(str(solutions / "q_rnn_last_name.ipynb"), as_version=4)
    assert any("100%" in printed_text(cell) for cell in trained.cells if cell.cell_type == "code")


@pytest.mark.parametrize("name", ["q_rnn_last_name.ipynb", "q_written.ipynb", "q_char_lm.ipynb"])
def test_run_all_on_the_blank_release_first_stops_at_unfinished_work(blank_run, name):
    """Run All stops at the first error: on the blank release that must be a part the student fills in (or its
    check), never the set-up, given code or an ungraded scratch cell (q_rnn_and_grad: the test above)."""
    notebook = blank_run(name)
    failing = [cell for cell in notebook.cells if cell.cell_type == "code"
               and any(output.get("output_type") == "error" for output in cell.outputs)]
    assert failing, f"{name}: nothing failed on the blank release"
    first = failing[0]
    meta = first.metadata.get("nbgrader") or {}
    assert meta.get("solution") or (meta.get("grade") and not meta.get("solution")), first.source[:200]
    error = next(output for output in first.outputs if output.get("output_type") == "error")
    assert "NotImplementedError" in error.get("ename", "") + error.get("evalue", ""), error.get("evalue")
