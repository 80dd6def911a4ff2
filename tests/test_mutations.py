"""Every hidden check catches at least one plausible bug.

Each mutation edits one solution cell of the executed solution notebook the way a student might get it
wrong, grades the result through the sandboxed runner, and expects the named hidden check to fail (while
the unmutated solution passes everything).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from notebook_grading import grade_notebook

MUTATIONS = {
    "second bias not folded into one": (
        "rnn_layer", "self.b = nn.Parameter(torch.empty(hidden_size))",
        "self.b = nn.Parameter(torch.empty(hidden_size))\n        self.b_h = nn.Parameter(torch.empty(hidden_size))",
        "h = self.nonlinearity(torch.addmm(inputs[t], h, recurrent))",
        "h = self.nonlinearity(torch.addmm(inputs[t], h, recurrent) + self.b_h)", "test_rnn_layer_hidden"),
    "h0 is not zero": (
        "rnn_layer", "h = x.new_zeros(batch_size, self.hidden_size)",
        "h = x.new_ones(batch_size, self.hidden_size)", None, None, "test_rnn_layer_hidden"),
    "read-out after an extra nonlinearity": (
        "regression_model", "return self.head(all_h), all_h", "return self.head(torch.tanh(all_h)), all_h",
        None, None, "test_regression_model_hidden"),
    "loss averaged over the wrong dimension": (
        "loss_fn", "return ((pred - y) ** 2).mean()", "return ((pred - y) ** 2).mean(dim=0).sum()",
        None, None, "test_loss_fn_hidden"),
    "last_timestep_only ignored": (
        "loss_fn", "if last_timestep_only:", "if False:", None, None, "test_loss_fn_hidden"),
    "gradient norm averaged over the batch": (
        "gradient_norms", "h.grad.norm() if h.grad", "h.grad.norm(dim=-1).mean() if h.grad", None, None,
        "test_gradient_norms_hidden"),
    "gates in the wrong order": (
        "lstm_layer", "f, i, o = torch.sigmoid", "i, f, o = torch.sigmoid", None, None, "test_lstm_layer_hidden"),
    "missing forget gate": (
        "lstm_layer", "c = f * c +", "c = c +", None, None, "test_lstm_layer_hidden"),
    "stacked RNN layers not fed upward": (
        "stacked_rnn", "x, last_h = layer(x)", "_, last_h = layer(x)", None, None, "test_stacked_rnn_hidden"),
    "stacked LSTM ignores the initial state": (
        "stacked_lstm", "x, (h, c) = layer(x, state)", "x, (h, c) = layer(x, None)", None, None,
        "test_stacked_lstm_hidden"),
    "stacked LSTM layers not fed upward": (
        "stacked_lstm", "x, (h, c) = layer(x, state)", "_, (h, c) = layer(x, state)", None, None,
        "test_stacked_lstm_hidden"),
}


def mutate(notebook: dict, grade_id: str, edits: list) -> dict:
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for old, new in edits:
                assert old in source, f"mutation target not found in {grade_id}: {old}"
                source = source.replace(old, new)
            cell["source"] = source
            return notebook
    raise AssertionError(f"no cell {grade_id}")


def grade(fast_build: Path, notebook: dict, tmp_path: Path) -> dict:
    return grade_notebook(fast_build, "q_rnn_and_grad", notebook, tmp_path / "work")


@pytest.fixture(scope="module")
def solution(fast_build: Path) -> dict:
    return json.loads((fast_build / "solutions" / "hw_rnn" / "q_rnn_and_grad.ipynb").read_text())


def test_unmutated_solution_passes_every_check(fast_build, solution, tmp_path):
    results = grade(fast_build, solution, tmp_path)
    assert {name: r.message for name, r in results.items() if not r.passed} == {}


@pytest.mark.parametrize("bug", sorted(MUTATIONS))
def test_hidden_check_catches(bug, fast_build, solution, tmp_path):
    grade_id, old, new, old2, new2, hidden_check = MUTATIONS[bug]
    edits = [(old, new)] + ([(old2, new2)] if old2 else [])
    results = grade(fast_build, mutate(json.loads(json.dumps(solution)), grade_id, edits), tmp_path)
    assert results[hidden_check].points == 0, f"{hidden_check} missed: {bug}"
    assert results[hidden_check].message, "a failed check explains itself"


def test_a_wrong_loss_fn_costs_only_the_points_of_the_loss(fast_build, solution, tmp_path):
    """1.D (gradient_norms) calls loss_fn; its checks use a loss of their own, so a bug in 1.C stays in 1.C."""
    edits = [("return ((pred - y) ** 2).mean()", "return ((pred - y) ** 2).sum()")]
    results = grade(fast_build, mutate(json.loads(json.dumps(solution)), "loss_fn", edits), tmp_path)
    failed = {name for name, result in results.items() if not result.passed}
    assert failed == {"test_loss_fn_public", "test_loss_fn_hidden"}


MESSAGES = {
    "record_step never called": (
        "rnn_layer", "            self.record_step(h)\n", "", "test_rnn_layer_public",
        "recorded_steps: the recorded states are not all_h: call self.record_step(h_t) once for every new hidden"),
    "recording left on": (
        "gradient_norms", "        layer.recording = False\n", "        pass\n", "test_gradient_norms_public",
        "recording_left_on: model.rnn.recording is still True: switch recording off again before gradient_norms"),
}


@pytest.mark.parametrize("bug", sorted(MESSAGES))
def test_public_checks_say_what_is_wrong_in_the_students_terms(bug, fast_build, solution, tmp_path):
    grade_id, old, new, check, text = MESSAGES[bug]
    results = grade(fast_build, mutate(json.loads(json.dumps(solution)), grade_id, [(old, new)]), tmp_path)
    assert text in results[check].message, results[check].message
