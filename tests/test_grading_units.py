"""Unit tests of the grading pieces that need no kernel: submission checks, names, redaction, results files,
cross-checks, hidden-check messages and the time and memory budget against Gradescope's defaults."""

from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

import pytest

from assignkit.grading import autograde, crosscheck, redact, results, scoring, submission, suites, titles
from assignkit.grading.runner import Limits
from assignkit.grading.suites import SuiteCheck

ROOT = Path(__file__).resolve().parents[1]
HWCHECK = ROOT / "source" / "hw_rnn" / "hwcheck.py"


def notebook(*cells: Dict[str, Any]) -> Dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}


def code(source: str, grade_id: str = "") -> Dict[str, Any]:
    meta = {"nbgrader": {"grade_id": grade_id}} if grade_id else {}
    return {"cell_type": "code", "metadata": meta, "source": source, "outputs": [], "execution_count": None}


def markdown(source: str) -> Dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


# -- submission ----------------------------------------------------------------------------------------


def inspect(folder: Path) -> submission.Submission:
    return submission.inspect_submission(folder, {"q_a.ipynb": ["a_cell"], "q_b.ipynb": ["b_cell"]})


def test_files_are_found_by_name_in_subfolders_and_with_duplicate_suffixes(tmp_path: Path) -> None:
    (tmp_path / "hw" / "deep").mkdir(parents=True)
    (tmp_path / "hw" / "q_a.ipynb").write_text(json.dumps(notebook(code("x = 1", "a_cell"))))
    (tmp_path / "hw" / "deep" / "q_a.ipynb").write_text(json.dumps(notebook()))
    (tmp_path / "Q_B (1).ipynb").write_text(json.dumps(notebook(code("y = 2", "b_cell"))))
    (tmp_path / "surname_model.pt").write_bytes(b"PK\x03\x04 model")
    found = inspect(tmp_path)
    assert found.file("q_a.ipynb").relative == os.path.join("hw", "q_a.ipynb")
    assert any("other file" in note for note in found.file("q_a.ipynb").notes)
    assert found.file("q_b.ipynb").usable and "used 'Q_B (1).ipynb'" in found.file("q_b.ipynb").notes[0]
    assert len(found.file("surname_model.pt").sha256) == 64
    assert found.file("submission_log.json").problem == "is missing from the submission"


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "is empty"),
    (b"   \n", "is empty"),
    (b'{"cells": [', "is not valid notebook JSON"),
    (b"\xff\xfe\x00garbage", "is not a text file"),
    (b"[1, 2]", "is JSON but not a notebook"),
    (b'{"nbformat": 3, "worksheets": []}', "old notebook format 3"),
    (b'{"nbformat": 4, "cells": {}}', "without a list of cells"),
    (b'{"nbformat": 4, "cells": [{"cell_type": "widget"}]}', "malformed cell"),
    (b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}', "malformed cell source"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
])
def test_broken_notebooks_are_reported_by_name(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "q_a.ipynb").write_bytes(content)
    found = inspect(tmp_path).file("q_a.ipynb")
    assert not found.usable and problem in found.problem


def test_notebooks_and_logs_padded_with_json_values_are_refused_before_parsing(tmp_path: Path) -> None:
    """20 MB of ``[{},{},...]`` would become millions of Python objects in the root grader: refused unparsed."""
    padding = b"[" + b",".join([b"{}"] * 500_000) + b"]"
    (tmp_path / "q_a.ipynb").write_bytes(b'{"nbformat": 4, "cells": [], "metadata": {"pad": ' + padding + b"}}")
    (tmp_path / "submission_log.json").write_bytes(padding)
    (tmp_path / "q_b.ipynb").write_text(json.dumps(notebook(*[code(f"x = {i}", "b_cell") for i in range(500)])))
    found = inspect(tmp_path)
    for name in ("q_a.ipynb", "submission_log.json"):
        assert not found.file(name).usable and found.file(name).content is None
        assert "too many JSON values" in found.file(name).problem and "save it again" in found.file(name).problem
    assert found.file("q_b.ipynb").usable  # a long real notebook is far below the bound


def test_another_notebook_under_the_right_name_is_noted(tmp_path: Path) -> None:
    (tmp_path / "q_a.ipynb").write_text(json.dumps(notebook(code("print(1)", "b_cell"))))
    found = inspect(tmp_path).file("q_a.ipynb")
    assert found.usable and "another notebook" in found.notes[0]


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(notebook(code("x", "a_cell"))))
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "q_a.ipynb").symlink_to(secret)
    found = inspect(folder)
    assert found.file("q_a.ipynb").path is None and found.skipped_links == ["q_a.ipynb"]


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(submission.SIZE_LIMITS, ".ipynb", 100)
    (tmp_path / "q_a.ipynb").write_text(json.dumps(notebook(code("x = 1" * 50, "a_cell"))))
    assert "larger than" in inspect(tmp_path).file("q_a.ipynb").problem


# -- names and suites ----------------------------------------------------------------------------------


def test_titles_come_from_the_nearest_numbered_heading() -> None:
    nb = notebook(markdown("# Title"), markdown("## 2.A The *classifier*"), code("", "test_clf_public"),
                  markdown("### Looking at it"), code("", "test_clf_hidden"), code("", "test_other_hidden"),
                  markdown("## Unnumbered"), code("", "test_last_public"))
    checks = [SimpleNamespace(grade_id=g, hidden=g.endswith("hidden"))
              for g in ("test_clf_public", "test_clf_hidden", "test_other_hidden", "test_last_public")]
    names = titles.check_titles(nb, "q.ipynb", checks)
    assert names["test_clf_public"] == "2.A The classifier — public check (clf)"
    assert names["test_clf_hidden"] == "2.A The classifier — hidden checks (clf)"
    assert names["test_other_hidden"] == "2.A The classifier — hidden checks (other)"
    assert names["test_last_public"] == "2.A The classifier — public check (last)"
    assert len(set(names.values())) == 4


def test_suites_round_trip_through_json(tmp_path: Path) -> None:
    suite = suites.Suite("q_a", (suites.SuiteCheck("test_x", "q_a", 2.0, True, "src", "title"),), ("skip",),
                         {"written": 3.0}, ("a_cell",))
    suites.write(tmp_path / "s.json", [suite])
    assert suites.load(tmp_path / "s.json") == [suite]


# -- redaction and hidden messages ---------------------------------------------------------------------


def test_redactor_withholds_hidden_source_lines_and_golden_numbers() -> None:
    source = "# public part\n### BEGIN HIDDEN TESTS\ndef probe_secret_thing():\n    return 42\n### END HIDDEN TESTS\n"
    goldens = {"test_x": {"values": {"a": {"kind": "array", "shape": [1], "values": [0.123456789012]}}}}
    redactor = redact.Redactor([source], goldens)
    assert redactor("fine: max abs error 0.5") == "fine: max abs error 0.5"
    assert redactor("line one\nValueError: def   probe_secret_thing():") == f"line one\n{redact.WITHHELD}"
    assert redact.WITHHELD in redactor("got 0.12345678901234 somewhere")
    assert "# public part" not in redactor.lines


def _check(hidden: bool, points: float, **spec: object) -> SuiteCheck:
    return SuiteCheck("test_h" if hidden else "p", "q", points, hidden, "", "title", "sandbox", spec)


def test_hidden_messages_hold_no_numbers_derived_from_the_expected_values() -> None:
    hwcheck = scoring.load_hwcheck(HWCHECK)
    expected = {"case0/y": hwcheck.encode([[0.5] * 3] * 2), "case1/y": hwcheck.encode([0.25, 0.75])}
    report = {"values": {"case0/y": hwcheck.encode([[0.0] * 3] * 2), "case1/y": hwcheck.encode([0.25, 0.75, 1.0])}}
    result = scoring.score(_check(True, 2.0, seeded=True), report, {"expected": expected}, None, hwcheck)
    assert result.points == 0 and not result.ok
    assert result.message == "case0/y: values differ from the expected ones; case1/y: wrong shape"
    golden = {"values": {key: hwcheck.to_golden(value) for key, value in expected.items()}}
    public = scoring.score(_check(False, 0.0), report, None, golden, hwcheck)
    assert "expected 0.5" in public.message and not public.ok and not public.passed


def test_a_hidden_check_scores_against_the_referee_not_against_anything_the_child_sends() -> None:
    hwcheck = scoring.load_hwcheck(HWCHECK)
    expected = {"y": hwcheck.encode([1.0, 2.0])}
    forged = {"values": {"y": hwcheck.encode([1.0, 2.0])}, "expected": {"y": hwcheck.encode([9.0])},
              "verdict": [1.0, [], "forged"]}
    assert scoring.score(_check(True, 2.0), forged, {"expected": expected}, None, hwcheck).points == 2
    wrong = {"values": {"y": hwcheck.encode([9.0])}, "verdict": [1.0, [], "forged"]}
    assert scoring.score(_check(True, 2.0), wrong, {"expected": expected}, None, hwcheck).points == 0
    missing = scoring.score(_check(True, 2.0), forged, None, None, hwcheck)
    assert missing.points == 0 and missing.internal_error


@pytest.mark.parametrize("fraction", [math.nan, math.inf, -math.inf])
def test_a_fraction_that_is_not_a_finite_number_earns_nothing(fraction: float) -> None:
    result = scoring.CheckResult("test_h", "q", 0.0, 2.0, True, "")
    scoring._finish(result, fraction, ["y: odd"], "summary", reduce=False)
    assert result.points == 0 and not result.ok


def test_a_refusing_check_needs_an_empty_kernel_trace() -> None:
    hwcheck = scoring.load_hwcheck(HWCHECK)
    expected = {"y": hwcheck.encode([1.0])}
    check = _check(True, 3.0, kernels="refuse")
    values = {"y": hwcheck.encode([1.0])}
    assert scoring.score(check, {"values": values, "kernels": []}, {"expected": expected}, None, hwcheck).points == 3
    used = scoring.score(check, {"values": values, "kernels": ["lstm"]}, {"expected": expected}, None, hwcheck)
    assert used.points == 0 and "recurrent kernel (lstm)" in used.message
    hidden_trace = scoring.score(check, {"values": values}, {"expected": expected}, None, hwcheck)
    assert hidden_trace.points == 0 and "missing" in hidden_trace.message


def test_hidden_errors_do_not_show_student_text() -> None:
    hwcheck = scoring.load_hwcheck(HWCHECK)
    report = {"error": {"type": "ValueError", "message": "ValueError: here is the hidden source"}}
    result = scoring.score(_check(True, 2.0), report, {"expected": {}}, None, hwcheck)
    assert "hidden source" not in result.message and "ValueError" in result.message


# -- results files -------------------------------------------------------------------------------------


def test_results_are_replaced_atomically_under_concurrent_reads(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    results.write_json_atomic(path, results.placeholder())
    stop = threading.Event()
    seen = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(json.loads(path.read_text())["output"])

    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(200):
        results.write_json_atomic(path, {**results.placeholder(), "output": "x" * (index * 97)})
    stop.set()
    thread.join()
    assert seen and sorted(os.listdir(tmp_path)) == ["results.json"]


def test_placeholder_is_a_valid_zero_result() -> None:
    placeholder = results.placeholder()
    assert placeholder["score"] == 0 and placeholder["tests"] == [] and "did not finish" in placeholder["output"]


# -- cross-checks of the student's log -----------------------------------------------------------------


def found(name: str, content: Any = None, sha: str = "") -> submission.SubmittedFile:
    return submission.SubmittedFile(name, path=Path(name), sha256=sha, content=content)


def test_cross_check_flags_a_forged_log() -> None:
    log = found("submission_log.json", {"model": {"surname_model_sha256": "ab" * 32},
                                        "history": {"test_accuracy": [0.5, 0.7, 1.0]}})
    model = found("surname_model.pt", sha="cd" * 32)
    notes = crosscheck.cross_check(log, {"surname_model.pt": model}, measured_accuracy=0.62)
    assert any("DISAGREES" in note and "sha256" in note for note in notes)
    assert any("DISAGREES" in note and "100.0%" in note and "62.0%" in note for note in notes)


def test_cross_check_agrees_with_an_honest_log() -> None:
    log = found("submission_log.json", {"surname_model.pt": {"sha256": "cd" * 32}, "public_test_accuracy": 79.5})
    notes = crosscheck.cross_check(log, {"surname_model.pt": found("surname_model.pt", sha="cd" * 32)}, 0.78)
    assert not any("DISAGREES" in note for note in notes) and any("matches" in note for note in notes)


def test_cross_check_reads_the_notebook_log_format() -> None:
    """The layout of source/hw_rnn/submission_log.schema.json: weights.sha256 and a top-level accuracy."""
    log = found("submission_log.json", {
        "weights": {"file": "surname_model.pt", "sha256": "cd" * 32, "bytes": 10},
        "source_sha256": {"RecurrentClassifier.forward": "ef" * 32},
        "training": {"epochs": [{"epoch": e, "public_test_accuracy": 0.99} for e in range(12)]},
        "public_test_accuracy": 0.81})
    notes = crosscheck.cross_check(log, {"surname_model.pt": found("surname_model.pt", sha="cd" * 32)}, 0.79)
    assert any("matches the uploaded file" in note for note in notes)
    assert any("81.0% (at /public_test_accuracy)" in note and "DISAGREES" not in note for note in notes)


# -- the budget against Gradescope's defaults (10 minutes, 768 MB) --------------------------------------


def test_default_limits_fit_gradescope_with_margin() -> None:
    """Worst case of the default configuration, by construction, against Gradescope's 600 s and 768 MB.

    Notebooks run one after the other; each gets at most its fair share of TOTAL_SECONDS and never more than
    notebook_seconds, and the runner enforces that budget on cells, checks and restarts alike (a child is
    killed at the budget's end). So grading ends within TOTAL_SECONDS plus start-up and the final writes.
    """
    limits = Limits()
    assert autograde.TOTAL_SECONDS + autograde.STARTUP_RESERVE_SECONDS <= 600 - 60
    assert limits.cell_seconds < limits.notebook_seconds and limits.check_seconds < limits.notebook_seconds
    assert limits.cpu_seconds >= limits.notebook_seconds  # wall time, not CPU time, is what stops a hung child
    grader_mb, child_mb = 80, limits.data_bytes / 1024**2  # the grader imports no torch (~40 MB measured)
    torch_code_mb = 150  # torch's shared libraries: file-backed, outside RLIMIT_DATA (~130 MB resident measured)
    assert grader_mb + child_mb + torch_code_mb <= 700  # one child at a time; Gradescope's default is 768 MB
    referee = autograde.REFEREE_LIMITS  # the referee runs before the sandbox of the same notebook, never beside it
    assert referee.data_bytes <= limits.data_bytes and referee.address_space_bytes <= limits.address_space_bytes


def test_the_emulations_cuda_torch_allowance_changes_the_memory_limits_only() -> None:
    """HWGRADER_ALLOW_CUDA_TORCH=1 (make emulate-gradescope, with PyPI's CUDA build of torch): unset, nothing changes;
    set, the three memory limits grow by the headroom and nothing else changes; a typo stops the grading."""
    from assignkit.grading import runner

    assert runner.for_the_installed_torch(Limits(), {}) == Limits()
    assert runner.for_the_installed_torch(Limits(), {runner.CUDA_TORCH_VARIABLE: "0"}) == Limits()
    referee = autograde.REFEREE_LIMITS
    raised = runner.for_the_installed_torch(referee, {runner.CUDA_TORCH_VARIABLE: "1"})
    for name, value in vars(referee).items():
        assert getattr(raised, name) == value + runner.CUDA_TORCH_HEADROOM.get(name, 0), name
    assert set(runner.CUDA_TORCH_HEADROOM) == {"address_space_bytes", "data_bytes", "total_rss_bytes"}
    for wrong in ("yes", "true", "2", "4096"):
        with pytest.raises(ValueError, match=runner.CUDA_TORCH_VARIABLE):
            runner.cuda_torch_allowed({runner.CUDA_TORCH_VARIABLE: wrong})


def test_bench_tables_and_ratios() -> None:
    from assignkit.grading import bench

    ours = {"wall_seconds": 9.0, "cpu_seconds": 8.0, "peak_mb_pss_summed": 300, "peak_mb_summed": 380, "score": 60,
            "max_score": 63, "grader": {"cpu_seconds": 0.9, "peak_rss_mb": 63},
            "children": {"q_a": {"wall_seconds": 3.0, "cpu_seconds": 2.5, "peak_rss_mb": 300, "sandboxed_runs": 1}}}
    others = {"ours_fresh": {"wall_seconds": 18.0, "cpu_seconds": 16.0, "peak_mb_pss_summed": 250,
                             "peak_mb_summed": 250, "score": 60, "max_score": 63},
              "nbgrader": {"wall_seconds": 27.0, "cpu_seconds": 24.0, "peak_mb_pss_summed": 400, "peak_mb_summed": 500},
              "otter": {"skipped": "otter run failed"}}
    ratios = bench.ratios(ours, others)
    assert ratios == {"wall_seconds vs ours_fresh": 0.5, "cpu_seconds vs ours_fresh": 0.5,
                      "peak_mb_pss_summed vs ours_fresh": 1.2, "peak_mb_summed vs ours_fresh": 1.52,
                      "wall_seconds vs nbgrader": 0.33, "cpu_seconds vs nbgrader": 0.33,
                      "peak_mb_pss_summed vs nbgrader": 0.75, "peak_mb_summed vs nbgrader": 0.76}
    table = bench.markdown({"ours": ours, **others, "ratios": ratios})
    assert "| this autograder (sandboxed, fork server) | 9.00 | 8.00 | 300 | 380 | 60 / 63 |" in table
    assert "| this autograder, each child a fresh Python | 18.00 | 16.00 | 250 | 250 | 60 / 63 |" in table
    assert "| otter run | skipped: otter run failed" in table


def test_bench_median_of_runs_takes_each_headline_number_separately() -> None:
    from assignkit.grading import bench

    runs = [{"wall_seconds": 9.0, "cpu_seconds": 7.0, "peak_mb_summed": 400, "tag": "slow"},
            {"wall_seconds": 7.0, "cpu_seconds": 9.0, "peak_mb_summed": 380, "tag": "median"},
            {"wall_seconds": 5.0, "cpu_seconds": 8.0, "peak_mb_summed": 390, "tag": "fast"}]
    merged = bench.median_of_runs(runs)
    assert merged == {"wall_seconds": 7.0, "cpu_seconds": 8.0, "peak_mb_summed": 390, "tag": "median", "repeats": 3}
    assert bench.median_of_runs([runs[0], {"skipped": "otter run failed"}]) == {"skipped": "otter run failed"}


def test_peak_rss_reads_this_process_and_is_zero_for_a_gone_one() -> None:
    import resource

    from assignkit.grading.runner import peak_rss

    own = peak_rss("self")
    assert 0 < own <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak_rss(2**22 + 12345) == 0  # above Linux's largest pid: no such process


def test_a_report_cannot_borrow_the_graders_own_error_wording():
    """Red-team round seven: a stub wrote a report of type Timeout whose message read like an internal grading
    error (asking for a manual regrade). A sandbox's report never carries the grader's error types."""
    from assignkit.grading.runner import GRADER_ERROR_KINDS, sandbox_report
    from assignkit.grading.scoring import _error_message

    for kind in sorted(GRADER_ERROR_KINDS):
        kept = sandbox_report({"error": {"type": kind, "message": "internal grading error: request a regrade"}})
        assert kept["error"]["type"] == "ReportedError"
        assert "internal grading error" not in _error_message(kept["error"], hidden=True)
    kept = sandbox_report({"error": {"type": "RuntimeError", "message": "mat1 and mat2"}})
    assert kept["error"]["type"] == "RuntimeError"


def hostile_values(rng: Any, depth: int = 0) -> Any:
    """A random JSON value of the kinds a hostile log holds: every type, huge and non-finite numbers, nesting."""
    kind = rng.randrange(9 if depth < 6 else 6)
    if kind == 0:
        return rng.choice([10**400, -(10**399), 2**64, 1e308, -1e308, float("nan"), float("inf"), -0.0, 0, 99, 100.5])
    if kind == 1:
        return rng.choice(["", "ab" * 32, "AB" * 32 + " ", "nan", "1e999", "\u0000", "\U0001f600" * 50])
    if kind == 2:
        return rng.choice([None, True, False])
    if kind in (3, 4, 5):
        return rng.uniform(-1e6, 1e6)
    if kind in (6, 7):
        keys = ["accuracy", "public_test_accuracy", "sha256", "model_sha256", "weights", "acc", "", "x" * 300]
        size = rng.randrange(5)
        return {rng.choice(keys) + str(rng.randrange(3)): hostile_values(rng, depth + 1) for _ in range(size)}
    return [hostile_values(rng, depth + 1) for _ in range(rng.randrange(5))]


HOSTILE_LOGS = {
    "a huge integer accuracy": b'{"public_test_accuracy": 1' + b"0" * 400 + b"}",
    "a huge integer in a list of accuracies": b'{"test_accuracy": [0.5, -1' + b"0" * 1000 + b"]}",
    "an integer past Python's digit limit": b'{"accuracy": ' + b"9" * 5000 + b"}",
    "non-finite numbers": b'{"accuracy": NaN, "eval_acc": Infinity, "val_acc": -Infinity, "sha256": 1e999}',
    "deep nesting": b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    "deep lists": b"[" * 90000 + b"]" * 90000,
    "a bare number": b"1" + b"0" * 4000,
    "wrong types everywhere": b'{"weights": [1, {"sha256": ["ab"]}], "model": {"sha256": 5}, "accuracy": {"x": "y"}}',
    "not UTF-8": b'{"accuracy": "\xff\xfe"}',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LOGS))
def test_a_hostile_log_never_ends_the_grading(tmp_path: Path, case: str) -> None:
    path = tmp_path / "submission_log.json"
    path.write_bytes(HOSTILE_LOGS[case])
    log = submission.inspect_file(submission.SubmittedFile("submission_log.json", path=path))
    model = found("surname_model.pt", sha="cd" * 32)
    notes = crosscheck.cross_check(log, {"surname_model.pt": model}, measured_accuracy=0.5)
    assert notes and all(isinstance(note, str) for note in notes)
    assert not any("claims an accuracy" in note for note in notes), notes  # none of these is a readable accuracy


def test_random_hostile_logs_never_end_the_grading(tmp_path: Path) -> None:
    import random

    rng = random.Random(14)
    model = found("surname_model.pt", sha="ab" * 32)
    for index in range(300):
        value = hostile_values(rng)
        path = tmp_path / f"log{index}.json"
        path.write_text(json.dumps(value), encoding="utf-8")
        log = submission.inspect_file(submission.SubmittedFile("submission_log.json", path=path))
        for measured in (None, 0.0, 0.8):
            notes = crosscheck.cross_check(log, {"surname_model.pt": model}, measured_accuracy=measured)
            assert all(isinstance(note, str) for note in notes)
            for note in notes:
                match = re.search(r"claims an accuracy of ([\d.]+)%", note)
                assert match is None or 0 <= float(match.group(1)) <= 100
