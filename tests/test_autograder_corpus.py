"""A corpus of bad, broken and hostile submissions, each graded by the real sandboxed autograder.

Every submission is made from the fast build's solution (or blank release) of q_rnn_and_grad.ipynb by
replacing, adding or corrupting cells. For each one: results.json is valid, grading ends well within
Gradescope's 10 minutes, the score is no higher than the honest parts earn (and the honest parts still
earn theirs), and nothing the student sees holds a golden value or a line of a hidden check.
As root (CI), student code runs as the sandbox account; hostile time-outs use reduced limits.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Optional

import grading_fixtures
import pytest
from grading_fixtures import (
    NEEDS_ROOT,
    assert_no_secrets,
    assert_valid_results,
    insert_cell,
    read_notebook,
    replace_cell,
    write_submission,
)

from assignkit.grading.autograde import grade_submission
from assignkit.grading.runner import Limits

pytestmark = pytest.mark.slow
built_bundle = grading_fixtures.built_bundle  # session fixtures shared by the autograder tests
course = grading_fixtures.course
sandbox_user = grading_fixtures.sandbox_user

NOTEBOOK = "q_rnn_and_grad.ipynb"
RNN = frozenset({"test_rnn_layer_public", "test_rnn_layer_hidden"})
REGRESSION = frozenset({"test_regression_model_public", "test_regression_model_hidden"})
LOSS = frozenset({"test_loss_fn_public", "test_loss_fn_hidden"})
GRADIENT = frozenset({"test_gradient_norms_public", "test_gradient_norms_hidden"})
LSTM = frozenset({"test_lstm_layer_public", "test_lstm_layer_hidden"})
STACKED_RNN = frozenset({"test_stacked_public", "test_stacked_rnn_hidden"})
STACKED_LSTM = frozenset({"test_stacked_lstm_hidden"})
ALL = RNN | REGRESSION | LOSS | GRADIENT | LSTM | STACKED_RNN | STACKED_LSTM
FAST = Limits(cell_seconds=8, check_seconds=4, notebook_seconds=90)
GRADESCOPE_SECONDS = 600


@dataclass
class Context:
    """What a case may use to build its submission."""

    solution: Dict[str, Any]
    blank: Dict[str, Any]
    bundle: Path
    results_dir: Path
    marker: Path


@dataclass(frozen=True)
class Case:
    make: Callable[[Context], Dict[str, Any]]  # -> {relative path: notebook dict | bytes | str}
    passes: FrozenSet[str] = frozenset()  # checks that must get full points
    fails: FrozenSet[str] = ALL  # checks that must get 0
    limits: Optional[Limits] = None
    output_has: tuple = ()  # texts the student-visible summary must contain
    extra: Dict[str, Any] = field(default_factory=dict)


def solution_plus(source: str, after: str = "rnn_layer") -> Callable[[Context], Dict[str, Any]]:
    """The solution with one student-added code cell after the cell ``after``."""
    return lambda ctx: {NOTEBOOK: insert_cell(ctx.solution, after, source)}


def solution_with(grade_id: str, source: str) -> Callable[[Context], Dict[str, Any]]:
    return lambda ctx: {NOTEBOOK: replace_cell(ctx.solution, grade_id, source)}


def blank_plus(source: str, after: str = "setup") -> Callable[[Context], Dict[str, Any]]:
    return lambda ctx: {NOTEBOOK: insert_cell(ctx.blank, after, source)}


LOSS_HEAD = "def loss_fn(pred, y, last_timestep_only=False):\n"
HANG = "while True:\n    pass\n"
LOSS_INTERRUPTED = LOSS_HEAD + "    raise KeyboardInterrupt\n"
LSTM_RAISES = "def _fail(self, x, hc0=None):\n    raise ValueError('nope')\n\nLSTMLayer.forward = _fail\n"
TRANSPOSED = """
_forward = RNNLayer.forward

def _transposed(self, x):
    all_h, last_h = _forward(self, x)
    return all_h.transpose(0, 1), last_h

RNNLayer.forward = _transposed
"""
FORGE_RESULTS = """
import json, os
fake = {"score": 1000, "output": "forged", "tests": [{"name": "forged", "score": 1000, "max_score": 1}]}
for path in ("../results/results.json", "{results}/results.json", "/autograder/results/results.json"):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            json.dump(fake, handle)
        print("wrote", path)
    except OSError as error:
        print("could not write", path, error)
"""
READ_SOURCE = """
import os
found = []
for path in ("{bundle}", "{bundle}/suites", "/autograder/source"):
    try:
        found.append(repr(os.listdir(path)))
    except OSError as error:
        found.append(str(error))
for path in ("{bundle}/referee/q_rnn_and_grad.ipynb", "{bundle}/suites/suites.json", "{bundle}/grading_key"):
    try:
        with open(path) as handle:
            text = handle.read()
        found.append(text[2000:3000])
    except OSError as error:
        found.append(str(error))
print(found)
raise RuntimeError(" | ".join(found))
"""
EXFILTRATE = LOSS_HEAD + """    import gc
    for obj in gc.get_objects():
        if isinstance(obj, dict) and isinstance(obj.get("source"), str) and "HIDDEN TESTS" in obj["source"]:
            hidden = obj["source"].split("### BEGIN HIDDEN TESTS", 1)[1]
            raise ValueError(hidden[:900])
    raise ValueError("no hidden source found")
"""
ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0

class EqualTensor(torch.Tensor):
    def __eq__(self, other):
        return True

def loss_fn(pred, y, last_timestep_only=False):
    return AlwaysEqual()

def _forward(self, x):
    return AlwaysEqual(), torch.zeros(1).as_subclass(EqualTensor)

RNNLayer.forward = _forward
LSTMLayer.forward = lambda self, x, hc0=None: (AlwaysEqual(), (AlwaysEqual(), AlwaysEqual()))
"""
MONKEYPATCH = """
import builtins, json, numpy
import hwcheck
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
numpy.allclose = lambda *args, **kwargs: True
numpy.testing.assert_allclose = lambda *args, **kwargs: None
builtins.abs = lambda x: 0
builtins.isinstance = lambda obj, kind: True
json.dumps = lambda *args, **kwargs: '{"event": "check", "name": "test_rnn_layer_hidden", "report": {}}'
hwcheck.evaluate = lambda *args, **kwargs: (1.0, [], "everything matches")
hwcheck.compare_values = lambda *args, **kwargs: []
"""


def _evil_pickle(ctx: Context) -> Dict[str, Any]:
    class Evil:
        def __reduce__(self) -> Any:
            import os

            return (os.system, (f"touch {ctx.marker}",))

    return {NOTEBOOK: ctx.solution, "surname_model.pt": pickle.dumps(Evil())}


CASES: Dict[str, Case] = {
    "solution": Case(lambda ctx: {NOTEBOOK: ctx.solution}, passes=ALL, fails=frozenset()),
    "blank release": Case(lambda ctx: {NOTEBOOK: ctx.blank}),
    "missing notebook": Case(lambda ctx: {"notes.txt": "I forgot the notebook"},
                             output_has=(f"{NOTEBOOK} is missing",)),
    "empty file": Case(lambda ctx: {NOTEBOOK: b""}, output_has=(f"{NOTEBOOK} is empty",)),
    "corrupted JSON": Case(lambda ctx: {NOTEBOOK: json.dumps(ctx.solution).encode()[:20000]},
                           output_has=("not valid notebook JSON",)),
    "another notebook under the right name": Case(
        lambda ctx: {NOTEBOOK: {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {}, "source": "print('my other homework')", "outputs": [],
             "execution_count": None}]}},
        output_has=("none of its cells come from the released notebook",)),
    "syntax error": Case(solution_with("rnn_layer", "class RNNLayer(StepRecorder:\n    pass\n"),
                         passes=REGRESSION | LOSS | GRADIENT | LSTM, fails=RNN, output_has=("SyntaxError",)),
    "exception, sys.exit, SystemExit and KeyboardInterrupt in cells": Case(
        lambda ctx: {NOTEBOOK: insert_cell(insert_cell(insert_cell(insert_cell(
            ctx.solution, "setup", "raise RuntimeError('student bug')"), "rnn_layer", "import sys\nsys.exit(3)"),
            "loss_fn", "raise SystemExit(1)"), "lstm_layer", "raise KeyboardInterrupt")},
        passes=ALL, fails=frozenset(), output_has=("RuntimeError: student bug", "SystemExit: 3", "SystemExit: 1",
                                                   "KeyboardInterrupt")),
    "exception and KeyboardInterrupt in functions the checks call": Case(
        lambda ctx: {NOTEBOOK: insert_cell(replace_cell(ctx.solution, "loss_fn", LOSS_INTERRUPTED), "lstm_layer",
                                           LSTM_RAISES)},
        passes=RNN | REGRESSION | GRADIENT | STACKED_RNN | STACKED_LSTM, fails=LOSS | LSTM,
        output_has=("ValueError: nope",)),
    "infinite loop in a cell": Case(solution_plus(HANG), passes=ALL, fails=frozenset(), limits=FAST,
                                    output_has=("took too long; it was skipped",)),
    "infinite loop in a function the checks call": Case(
        solution_plus("def _hang(self, x):\n" + "    while True:\n        pass\n\nRNN.forward = _hang\n",
                      after="stacked_rnn"),
        passes=RNN | REGRESSION | LOSS | GRADIENT | LSTM | STACKED_LSTM, fails=STACKED_RNN, limits=FAST),
    "memory bomb in a cell": Case(solution_plus("hog = bytearray(6 * 1024**3)"), passes=ALL, fails=frozenset(),
                                  output_has=("MemoryError",)),
    "memory bomb in a function the checks call": Case(
        solution_plus("LSTMLayer.forward = lambda self, x, hc0=None: torch.ones(2**40, dtype=torch.uint8)",
                      after="lstm_layer"),
        passes=RNN | REGRESSION | LOSS | GRADIENT | STACKED_RNN, fails=LSTM),
    "100 MB of output": Case(solution_plus("for _ in range(100):\n    print('x' * 1_000_000)"), passes=ALL,
                             fails=frozenset()),
    "os._exit": Case(solution_plus("import os\nos._exit(0)"), passes=ALL, fails=frozenset(), limits=FAST),
    "os._exit in a function the checks call": Case(
        solution_plus("import os\nLSTMLayer.forward = lambda self, x, hc0=None: os._exit(1)", after="lstm_layer"),
        passes=RNN | REGRESSION | LOSS | GRADIENT | STACKED_RNN, fails=LSTM, limits=FAST),
    "monkeypatched torch, numpy, builtins and hwcheck": Case(blank_plus(MONKEYPATCH)),
    "objects whose __eq__ is always True": Case(blank_plus(ALWAYS_EQUAL, after="stacked_lstm")),
    "wrong dtype": Case(solution_with("loss_fn", LOSS_HEAD + "    return ((pred - y) ** 2).mean().half()\n"),
                        passes=RNN | LSTM, fails=LOSS, output_has=("max abs error",)),
    "text instead of numbers": Case(solution_with("loss_fn", LOSS_HEAD + "    return 'zero'\n"),
                                    passes=RNN | LSTM, fails=LOSS),
    "wrong shape": Case(solution_plus(TRANSPOSED), passes=LOSS | LSTM, fails=RNN, output_has=("expected shape",)),
    "NaN": Case(solution_with("loss_fn", LOSS_HEAD + "    return ((pred - y) ** 2).mean() * float('nan')\n"),
                passes=RNN | LSTM, fails=LOSS, output_has=("NaN",)),
    "fake results.json": Case(lambda ctx: {NOTEBOOK: insert_cell(ctx.blank, "setup", FORGE_RESULTS.replace(
        "{results}", str(ctx.results_dir)))}),
    "reading the autograder's source folder": Case(lambda ctx: {NOTEBOOK: insert_cell(
        ctx.solution, "setup", READ_SOURCE.replace("{bundle}", str(ctx.bundle)))}, passes=ALL, fails=frozenset()),
    "smuggling a hidden check's source out in an error": Case(solution_with("loss_fn", EXFILTRATE),
                                                               passes=RNN | LSTM, fails=LOSS),
    "a pickle that is not a state_dict as surname_model.pt": Case(_evil_pickle, passes=ALL, fails=frozenset()),
    "forged submission_log.json claiming 100%, files in a subfolder": Case(
        lambda ctx: {f"hw_rnn/{NOTEBOOK}": ctx.solution, "hw_rnn/surname_model.pt": b"PK not really a model",
                     "submission_log.json": {"test_accuracy": 1.0, "public_test_accuracy": 100.0,
                                             "surname_model_sha256": "ab" * 32, "score": 1000}},
        passes=ALL, fails=frozenset(), output_has=("DISAGREES", f"as hw_rnn/{NOTEBOOK}")),
}


@pytest.fixture(scope="module")
def notebooks(fast_build: Path) -> Dict[str, Dict[str, Any]]:
    return {
        "solution": read_notebook(fast_build / "solutions" / "hw_rnn" / NOTEBOOK),
        "blank": read_notebook(fast_build / "release" / "hw_rnn" / NOTEBOOK),
    }


def check_points(log: Dict[str, Any]) -> Dict[str, tuple]:
    return {c["grade_id"]: (c["points"], c["max_points"]) for c in log["checks"] if c["notebook"] == NOTEBOOK}


@pytest.mark.parametrize("name", list(CASES))
def test_corpus(name: str, tmp_path: Path, notebooks: Dict[str, Any], course: Any, built_bundle: Path,
                sandbox_user: Any) -> None:
    case = CASES[name]
    results_dir = tmp_path / "results"
    ctx = Context(notebooks["solution"], notebooks["blank"], built_bundle, results_dir,
                  Path("/tmp") / f"hwgrade-pwned-{uuid.uuid4().hex}")
    submission = write_submission(tmp_path / "submission", case.make(ctx))
    started = time.monotonic()
    grading = grade_submission(course, submission, results_dir, limits=case.limits, user=sandbox_user)
    elapsed = time.monotonic() - started

    results = json.loads((results_dir / "results.json").read_text())
    log = json.loads((results_dir / "submission_log.json").read_text())
    assert grading.finished and log["finished"] and not log["internal_errors"], log["internal_errors"]
    assert_valid_results(results)
    assert elapsed < GRADESCOPE_SECONDS / 2
    assert_no_secrets(results, course)

    points = check_points(log)
    assert set(points) == ALL, "the corpus assumes q_rnn_and_grad's check ids"
    for grade_id in case.passes:
        assert points[grade_id][0] == points[grade_id][1], f"{grade_id} should pass: {log['checks']}"
    for grade_id in case.fails:
        assert points[grade_id][0] == 0, f"{grade_id} should fail"
    honest_max = sum(points[g][1] for g in ALL - case.fails)
    assert sum(p for p, _ in points.values()) <= honest_max
    total = sum(t["score"] for t in results["tests"])
    assert total == pytest.approx(log["score"]) and total <= log["max_score"]
    for text in case.output_has:
        assert text in results["output"] + json.dumps(results["tests"]), f"{text!r} not shown"
    assert not ctx.marker.exists(), "the pickle was unpickled by something"
    assert "forged" not in json.dumps(results)


@NEEDS_ROOT
def test_sandbox_cannot_read_the_bundle_or_write_results(tmp_path: Path, notebooks: Dict[str, Any], course: Any,
                                                         built_bundle: Path, sandbox_user: Any) -> None:
    """Run as the sandbox account, listing the bundle or the results folder fails with EACCES."""
    results_dir = tmp_path / "results"
    probe = (f"import os\nseen = [str(os.getuid())]\nfor path in ({str(built_bundle)!r}, {str(results_dir)!r}):\n"
             "    try:\n        os.listdir(path)\n        seen.append('LISTED')\n"
             "    except PermissionError:\n        seen.append('DENIED')\n"
             "raise RuntimeError(' '.join(seen))\n")
    submission = write_submission(tmp_path / "submission", {NOTEBOOK: insert_cell(notebooks["solution"], "setup",
                                                                                  probe)})
    grading = grade_submission(course, submission, results_dir, user=sandbox_user)
    results = json.loads((results_dir / "results.json").read_text())
    assert f"RuntimeError: {sandbox_user.uid} DENIED DENIED" in results["output"]
    assert (results_dir.stat().st_mode & 0o777) == 0o700
    assert grading.totals()["score"] == grading.totals()["max_score"] - sum(
        check.points for suite in course.suites if suite.filename != NOTEBOOK for check in suite.checks)
