"""Every hidden check catches at least one plausible bug, and the public checks say what it is.

Each mutation edits one solution cell the way a student might get it wrong. The unmutated solution and a wrong
loss function are graded through the real sandboxed runner; the mutants run their check's probe and reference
in one process on 24 fresh seeds (exactly as the referee pairs them, without a sandbox: speed), and the named
hidden check must give no points on any of them. The public checks' messages are checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import pytest
from notebook_grading import grade_notebook

ROOT = Path(__file__).resolve().parents[1]

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
        "lstm_layer", "f, i, o = self.recurrent_activation", "i, f, o = self.recurrent_activation", None, None,
        "test_lstm_layer_hidden"),
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
def test_hidden_check_catches(bug, masters, references):
    """On every sweep seed (probe and reference paired in one process, as the referee pairs them; the sandboxed
    path itself is graded by the tests above and the attack corpus)."""
    grade_id, old, new, old2, new2, hidden_check = MUTATIONS[bug]
    edits = [(old, new)] + ([(old2, new2)] if old2 else [])
    outcomes = sweep(masters, "q_rnn_and_grad", {grade_id: edits}, hidden_check, references["q_rnn_and_grad"])
    assert len(outcomes) >= 20
    escaped = [seed for seed, fraction, _ in outcomes if fraction > 0]
    assert escaped == [], f"{hidden_check} missed '{bug}' on seeds {escaped}"
    assert all(problem for _, _, problem in outcomes), "a failed check explains itself"


def test_a_wrong_loss_fn_costs_only_the_points_of_the_loss(fast_build, solution, tmp_path):
    """1.D (gradient_norms) calls loss_fn; its checks use a loss of their own, so a bug in 1.C stays in 1.C."""
    edits = [("return ((pred - y) ** 2).mean()", "return ((pred - y) ** 2).sum()")]
    results = grade(fast_build, mutate(json.loads(json.dumps(solution)), "loss_fn", edits), tmp_path)
    failed = {name for name, result in results.items() if not result.passed}
    assert failed == {"test_loss_fn_public", "test_loss_fn_hidden"}


# --------------------------------------------------------------------------------------------------
# Bugs that every grading must see: each mutant loses the points of its hidden check on every seed
# --------------------------------------------------------------------------------------------------
# The probes and the referee's reference run here in one process (no sandbox: speed), on the master's own code
# with one solution cell edited, exactly as the grader pairs them: the probe's values are judged against the
# reference's with the check's tolerance. A seed only decides the numbers of a case, never whether a bug shows.

SWEEP_SEEDS = tuple(range(7919, 7919 + 24))
"""Fresh seeds for the sweep (none is a record seed of the build); more than the 20 the issue asks for."""

RECORD_STEP_GONE = "            self.record_step(h)\n"
BEAM_TOP_K = ("            candidates = totals[:, :eos].reshape(-1)\n"
              "            best = torch.topk(candidates, min(k, candidates.numel())).indices\n"
              "            rows, letters = best // eos, best % eos\n")
RNN_THROUGH_TORCH = '''
        kind = "relu" if self.nonlinearity is torch.relu else "tanh"
        rnn = nn.RNN(self.input_size, self.hidden_size, nonlinearity=kind, batch_first=True).to(x.dtype)
        weights = {"weight_ih_l0": self.W_x, "weight_hh_l0": self.W_h, "bias_ih_l0": self.b,
                   "bias_hh_l0": torch.zeros_like(self.b)}
        all_h, last = torch.func.functional_call(rnn, weights, (x,))
        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, last[0]
'''
GRU_THROUGH_TORCH = '''
        gru = nn.GRU(self.input_size, self.hidden_size, batch_first=True).to(x.dtype)
        weights = {"weight_ih_l0": self.U.T, "weight_hh_l0": self.W.T, "bias_ih_l0": self.b_x, "bias_hh_l0": self.b_h}
        all_h, last = torch.func.functional_call(gru, weights, (x, None if h0 is None else h0[None]))
        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, last[0]
'''
LSTM_THROUGH_TORCH = '''
        size = self.hidden_size
        f, i, o, g = (block for block in torch.split(torch.arange(4 * size), size))
        order = torch.cat([i, f, g, o])  # torch.nn.LSTM's blocks are i, f, g, o
        lstm = nn.LSTM(self.input_size, size, batch_first=True).to(x.dtype)
        weights = {"weight_ih_l0": self.U[:, order].T, "weight_hh_l0": self.W[:, order].T,
                   "bias_ih_l0": self.b[order], "bias_hh_l0": torch.zeros_like(self.b)}
        state = None if hc0 is None else (hc0[0][None], hc0[1][None])
        all_h, (h, c) = torch.func.functional_call(lstm, weights, (x, state))
        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, (h[0], c[0])
'''

HIDDEN_PROBES = {
    "test_rnn_layer_hidden": ("probe_rnn_layer_hidden", "reference_rnn_layer_hidden"),
    "test_lstm_layer_hidden": ("probe_lstm_layer_hidden", "reference_lstm_layer_hidden"),
    "test_stacked_rnn_hidden": ("probe_stacked_rnn_hidden", "probe_stacked_rnn_hidden"),
    "test_stacked_lstm_hidden": ("probe_stacked_lstm_hidden", "probe_stacked_lstm_hidden"),
    "test_regression_model_hidden": ("probe_regression_model_hidden", "probe_regression_model_hidden"),
    "test_loss_fn_hidden": ("probe_loss_fn_hidden", "reference_loss_fn_hidden"),
    "test_gradient_norms_hidden": ("probe_gradient_norms_hidden", "probe_gradient_norms_hidden"),
    "test_gru_layer_hidden": ("probe_gru_layer_hidden", "reference_gru_layer_hidden"),
    "test_beam_decode_hidden": ("probe_beam_hidden", "reference_beam_hidden"),
    "test_clip_grad_norm_hidden": ("probe_clip_hidden", "reference_clip_hidden"),
    "test_char_lm_hidden": ("probe_char_lm_hidden", "reference_char_lm_hidden"),
    "test_sample_hidden": ("probe_sample_hidden", "reference_sample_hidden"),
}
"""The probe and the reference of each swept check, by name in the master's namespace (a check without a
reference is judged against the staff solution's own probe, as the referee does)."""

SWEPT = {  # bug: (notebook, solution cell, [(old, new)], hidden check)
    "RNN layer never calls record_step": ("q_rnn_and_grad", "rnn_layer", [(RECORD_STEP_GONE, "")],
                                          "test_rnn_layer_hidden"),
    "LSTM layer never calls record_step": ("q_rnn_and_grad", "lstm_layer", [(RECORD_STEP_GONE, "")],
                                           "test_lstm_layer_hidden"),
    "RNN layer records detached states": ("q_rnn_and_grad", "rnn_layer", [(
        "self.record_step(h)", "self.record_step(h.detach())")], "test_rnn_layer_hidden"),
    "LSTM layer records copies of its states": ("q_rnn_and_grad", "lstm_layer", [(
        "self.record_step(h)", "self.record_step(h.clone())")], "test_lstm_layer_hidden"),
    "GRU layer records detached states": ("q_char_lm", "gru_layer", [(
        "self.record_step(h)", "self.record_step(h.detach())")], "test_gru_layer_hidden"),
    "GRU layer never calls record_step": ("q_char_lm", "gru_layer", [(RECORD_STEP_GONE, "")],
                                          "test_gru_layer_hidden"),
    "RNN layer through torch.nn.RNN": ("q_rnn_and_grad", "rnn_layer", [("### BEGIN SOLUTION\n",
                                                                         "### BEGIN SOLUTION" + RNN_THROUGH_TORCH)],
                                       "test_rnn_layer_hidden"),
    "LSTM layer through torch.nn.LSTM": ("q_rnn_and_grad", "lstm_layer", [("### BEGIN SOLUTION\n",
                                                                           "### BEGIN SOLUTION" + LSTM_THROUGH_TORCH)],
                                         "test_lstm_layer_hidden"),
    "GRU layer through torch.nn.GRU": ("q_char_lm", "gru_layer", [("### BEGIN SOLUTION\n",
                                                                   "### BEGIN SOLUTION" + GRU_THROUGH_TORCH)],
                                       "test_gru_layer_hidden"),
    "RNN layer with tanh whatever its nonlinearity": ("q_rnn_and_grad", "rnn_layer",
                                                      [("h = self.nonlinearity(", "h = torch.tanh(")],
                                                      "test_rnn_layer_hidden"),
    "LSTM output through tanh whatever its activation": ("q_rnn_and_grad", "lstm_layer",
                                                         [("h = o * self.activation(c)", "h = o * torch.tanh(c)")],
                                                         "test_lstm_layer_hidden"),
    "LSTM activations swapped": ("q_rnn_and_grad", "lstm_layer", [
        ("f, i, o = self.recurrent_activation(", "f, i, o = self.activation("),
        ("c = f * c + i * self.activation(", "c = f * c + i * self.recurrent_activation(")],
        "test_lstm_layer_hidden"),
    "GRU gates through the sigmoid whatever the gate activation": ("q_char_lm", "gru_layer", [
        ("r, z = self.recurrent_activation(", "r, z = torch.sigmoid(")], "test_gru_layer_hidden"),
    "GRU candidate through tanh whatever its activation": ("q_char_lm", "gru_layer", [
        ("n = self.activation(", "n = torch.tanh(")], "test_gru_layer_hidden"),
    "stacked LSTM passes hc0 to the first layer only": ("q_rnn_and_grad", "stacked_lstm", [
        ("state = None if hc0 is None else", "state = None if hc0 is None or k > 0 else")],
        "test_stacked_lstm_hidden"),
    "stacked RNN reports the last layer's last state only": ("q_rnn_and_grad", "stacked_rnn", [
        ("return x, torch.stack(last_steps)", "return x, last_steps[-1][None]")], "test_stacked_rnn_hidden"),
    "beam: finished names keep taking beam slots": ("q_char_lm", "beam_decode", [(BEAM_TOP_K, (
        "            candidates = totals.reshape(-1)  # endings compete with the letters for the k places\n"
        "            best = torch.topk(candidates, min(k, candidates.numel())).indices\n"
        "            best = best[best % (eos + 1) != eos]\n"
        "            rows, letters = best // (eos + 1), best % (eos + 1)\n"))], "test_beam_decode_hidden"),
    "beam: extensions ranked by their last symbol only": ("q_char_lm", "beam_decode", [(BEAM_TOP_K, (
        "            candidates = totals[:, :eos].reshape(-1)\n"
        "            best = torch.topk(log_probs[:, :eos].reshape(-1), min(k, candidates.numel())).indices\n"
        "            rows, letters = best // eos, best % eos\n"))], "test_beam_decode_hidden"),
}


def master_cells(notebook: str) -> list:
    master = ROOT / "source" / "hw_rnn" / f"{notebook}.ipynb"
    return json.loads(master.read_text(encoding="utf-8"))["cells"]


@pytest.fixture(scope="module")
def masters() -> dict:
    """The master's namespace (given code and solutions) of both notebooks, with its release folder's data."""
    import matplotlib

    matplotlib.use("Agg")
    from assignkit.bench import master_namespace
    from assignkit.surnames.bench import _inside

    spaces = {}
    for notebook in ("q_rnn_and_grad", "q_char_lm"):
        with _inside(ROOT / "release" / "hw_rnn", {"HW_FAST": "1"}):
            spaces[notebook] = master_namespace(ROOT / "source" / "hw_rnn" / f"{notebook}.ipynb")
    return spaces


def swept_namespace(masters: dict, notebook: str, edits: dict) -> dict:
    """A copy of the master's namespace with the edited solution cells and then every check cell run again (so
    the probes see the edited code); hwcheck quiet, so the check calls themselves do nothing."""
    import hwcheck

    from assignkit.surnames.bench import _inside

    namespace = dict(masters[notebook])
    hwcheck.use_probe_mode(None)
    try:
        with _inside(ROOT / "release" / "hw_rnn", {"HW_FAST": "1"}):
            for cell in master_cells(notebook):
                nbgrader = cell.get("metadata", {}).get("nbgrader", {})
                source = "".join(cell["source"])
                if nbgrader.get("grade_id") in edits:
                    for old, new in edits[nbgrader["grade_id"]]:
                        assert old in source, f"mutation target not found in {nbgrader['grade_id']}: {old}"
                        source = source.replace(old, new)
                elif not (nbgrader.get("grade") and not nbgrader.get("solution")):
                    continue
                exec(compile(source, f"<{notebook}:{nbgrader.get('grade_id')}>", "exec"), namespace)
    finally:
        hwcheck.use_notebook_mode()
    namespace["probe_beam_hidden"] = lambda seed: namespace["beam_hidden_values"](seed, lambda exact: namespace[
        "beam_decode"])
    namespace["reference_beam_hidden"] = lambda seed: namespace["beam_hidden_values"](seed, lambda exact: namespace[
        "exhaustive_names" if exact else "trusted_beam"])
    if notebook == "q_char_lm":  # the checks whose probe and reference are lambdas in their hwcheck.check call
        namespace["probe_clip_hidden"] = lambda seed: namespace["clip_hidden_values"](seed, namespace["clip_grad_norm"])
        namespace["probe_char_lm_hidden"] = lambda seed: namespace["char_lm_hidden_values"](seed, namespace["CharLM"])
        namespace["reference_char_lm_hidden"] = lambda seed: namespace["char_lm_hidden_values"](
            seed, namespace["TrustedCharLMWiring"])
        namespace["probe_sample_hidden"] = lambda seed: namespace["sample_hidden_values"](seed, namespace["sample"])
        namespace["reference_sample_hidden"] = lambda seed: namespace["sample_hidden_values"](
            seed, namespace["trusted_sample"])
    return namespace


def sweep(masters: dict, notebook: str, edits: dict, check: str, reference: dict,
          namespace: dict | None = None, seeds: tuple = SWEEP_SEEDS) -> list:
    """For every sweep seed: ``(seed, fraction of the points, first problem)`` of ``check`` (in ``namespace``, the
    edited master's, when it is already made)."""
    import hwcheck

    namespace = namespace if namespace is not None else swept_namespace(masters, notebook, edits)
    probe_name, reference_name = HIDDEN_PROBES[check]
    outcomes = []
    for seed in seeds:
        report = hwcheck._run_probe(check, namespace[probe_name], seed, None)
        expected = hwcheck._encode_all(reference[reference_name](seed))
        if "error" in report:
            outcomes.append((seed, 0.0, report["error"]["message"]))
            continue
        fraction, problems, _ = hwcheck.evaluate(report["values"], {"values": expected})
        outcomes.append((seed, fraction, problems[0] if problems else ""))
    return outcomes


@pytest.fixture(scope="module")
def references(masters: dict) -> dict:
    return {notebook: swept_namespace(masters, notebook, {}) for notebook in masters}


@pytest.mark.parametrize("check", sorted(HIDDEN_PROBES))
def test_the_solution_passes_the_swept_checks_on_every_seed(masters, references, check):
    notebook = "q_char_lm" if check in CHAR_LM_HIDDEN else "q_rnn_and_grad"
    failed = [outcome for outcome in sweep(masters, notebook, {}, check, references[notebook]) if outcome[1] < 1]
    assert failed == []


@pytest.mark.parametrize("bug", sorted(SWEPT))
def test_every_grading_sees_the_bug(masters, references, bug):
    notebook, grade_id, edits, check = SWEPT[bug]
    outcomes = sweep(masters, notebook, {grade_id: edits}, check, references[notebook])
    assert len(outcomes) >= 20
    escaped = [seed for seed, fraction, _ in outcomes if fraction > 0]
    assert escaped == [], f"{check} gave points to '{bug}' on seeds {escaped}"
    assert all(problem for _, _, problem in outcomes), "a failed check explains itself"


INDEPENDENT_PARTS = {  # hidden check: (notebook, solution cell, its independent code in test_independent_solution)
    "test_rnn_layer_hidden": ("q_rnn_and_grad", "rnn_layer", "RNN_LAYER"),
    "test_lstm_layer_hidden": ("q_rnn_and_grad", "lstm_layer", "LSTM_LAYER"),
    "test_stacked_rnn_hidden": ("q_rnn_and_grad", "stacked_rnn", "STACKED_RNN"),
    "test_stacked_lstm_hidden": ("q_rnn_and_grad", "stacked_lstm", "STACKED_LSTM"),
    "test_gru_layer_hidden": ("q_char_lm", "gru_layer", "GRU_LAYER"),
    "test_beam_decode_hidden": ("q_char_lm", "beam_decode", "BEAM_DECODE"),
}
INDEPENDENT_BUGS = {  # hidden check: a plausible bug written into the independent implementation
    "test_rnn_layer_hidden": ("            self.record_step(h)\n", ""),
    "test_lstm_layer_hidden": ("            self.record_step(h)\n", ""),
    "test_gru_layer_hidden": ("            self.record_step(h)\n", ""),
    "test_stacked_lstm_hidden": ("initial = (hc0[0][k], hc0[1][k]) if hc0 is not None else None",
                                 "initial = (hc0[0][k], hc0[1][k]) if hc0 is not None and k == 0 else None"),
    "test_beam_decode_hidden": ("live = heapq.nlargest(k, pool, key=lambda item: item[0])",
                                "ended = [(s, None) for s, _ in done]\n"
                                "            live = heapq.nlargest(k, pool + ended, key=lambda item: item[0])\n"
                                "            live = [(s, p) for s, p in live if p is not None]"),
}


@pytest.mark.parametrize("check", sorted(INDEPENDENT_PARTS))
def test_an_independent_implementation_passes_on_every_seed_and_its_bug_on_none(masters, references, check):
    import test_independent_solution as independent

    notebook, grade_id, name = INDEPENDENT_PARTS[check]
    cell = next("".join(c["source"]) for c in master_cells(notebook)
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)
    code = getattr(independent, name)
    honest = sweep(masters, notebook, {grade_id: [(cell, code)]}, check, references[notebook])
    assert [outcome for outcome in honest if outcome[1] < 1] == []
    if check in INDEPENDENT_BUGS:
        old, new = INDEPENDENT_BUGS[check]
        assert old in code
        buggy = sweep(masters, notebook, {grade_id: [(cell, code.replace(old, new))]}, check, references[notebook])
        assert [seed for seed, fraction, _ in buggy if fraction > 0] == []


# --------------------------------------------------------------------------------------------------
# What a public check says about a classic mistake (run here in one process, as the notebook runs it)
# --------------------------------------------------------------------------------------------------
LSTM_GATES = ("            f, i, o = self.recurrent_activation(gates[:, : 3 * size]).chunk(3, dim=1)\n"
              "            c = f * c + i * self.activation(gates[:, 3 * size :])\n")
LSTM_IN_TORCH_ORDER = ("            i, f, g, o = gates.chunk(4, dim=1)  # torch.nn.LSTM's order\n"
                       "            i, f, o = (self.recurrent_activation(gate) for gate in (i, f, o))\n"
                       "            c = f * c + i * self.activation(g)\n")
CLIP_SCALING = "    if scale < 1:\n        for grad in grads:\n            grad.detach().mul_(scale)\n"
CLIP_SECOND_LOOP = ("    if scale < 1:\n        for parameter in parameters:  # a generator is used up by now\n"
                    "            if parameter.grad is not None:\n                parameter.grad.detach().mul_(scale)\n")
RECORD_HINT = "call self.record_step(h_t) once for every new hidden state"

PUBLIC_MESSAGES = {  # bug: (notebook, solution cell, [(old, new)], public check, words the message has, has not)
    "record_step never called": ("q_rnn_and_grad", "rnn_layer", [(RECORD_STEP_GONE, "")], "test_rnn_layer_public",
                                 ["recorded_steps: the states passed to record_step are not", RECORD_HINT], []),
    "RNN: W_h not transposed": ("q_rnn_and_grad", "rnn_layer", [("recurrent = self.W_h.T", "recurrent = self.W_h")],
                                "test_rnn_layer_public", ["all_h:", "first differing timestep t=1"],
                                ["record_step", "recorded_steps"]),
    "RNN: nonlinearity missing": ("q_rnn_and_grad", "rnn_layer", [(
        "h = self.nonlinearity(torch.addmm(inputs[t], h, recurrent))", "h = torch.addmm(inputs[t], h, recurrent)")],
        "test_rnn_layer_public", ["all_h:", "first differing timestep t=0"], ["record_step", "recorded_steps"]),
    "LSTM gate blocks in torch's order": ("q_rnn_and_grad", "lstm_layer", [(LSTM_GATES, LSTM_IN_TORCH_ORDER)],
                                          "test_lstm_layer_public",
                                          ["1 problem(s)", "torch_gate_order:", "torch.nn.LSTM's order (i, f, g, o)",
                                           "f, i, o, g"], ["record_step", "max abs error"]),
    "LSTM gates f and i swapped (not torch's order)": ("q_rnn_and_grad", "lstm_layer", [(
        "f, i, o = self.recurrent_activation", "i, f, o = self.recurrent_activation")], "test_lstm_layer_public",
        ["all_h:"], ["torch_gate_order", "record_step"]),
    "GRU: update gate on the wrong term": ("q_char_lm", "gru_layer", [("h = n + z * (h - n)", "h = h + z * (n - h)")],
                                           "test_gru_layer_public",
                                           ["1 problem(s)", "update_gate_on_the_wrong_term:",
                                            "(1 - z) * n + z * h_prev"],
                                           ["record_step", "max abs error"]),
    "GRU: gates in the order z, r": ("q_char_lm", "gru_layer", [("r, z = self.recurrent_activation",
                                                                 "z, r = self.recurrent_activation")],
                                     "test_gru_layer_public", ["all_h:"], ["update_gate", "record_step"]),
    "clipping loops over the parameters generator twice": ("q_char_lm", "clip_grad_norm",
                                                           [(CLIP_SCALING, CLIP_SECOND_LOOP)],
                                                           "test_clip_grad_norm_public",
                                                           ["1 problem(s)", "generator_used_twice:",
                                                            "parameters = list(parameters)"], ["max abs error"]),
    "recording left on": ("q_rnn_and_grad", "gradient_norms", [("        layer.recording = False\n", "        pass\n")],
                          "test_gradient_norms_public",
                          ["recording_left_on: model.rnn.recording is still True: switch recording off"], []),
    "clipping always, also below max_norm": ("q_char_lm", "clip_grad_norm", [("    if scale < 1:\n", "    if True:\n")],
                                             "test_clip_grad_norm_public", ["unchanged/p0_grad"],
                                             ["generator_used_twice"]),
}


def public_message(masters: dict, notebook: str, edits: dict, check: str, namespace: dict | None = None) -> str:
    """What the public check cell ``check`` prints when run after the edited solution cells ("" if it passes;
    in ``namespace``, the edited master's, when it is already made)."""
    import hwcheck

    namespace = namespace if namespace is not None else swept_namespace(masters, notebook, edits)
    cell = next("".join(c["source"]) for c in master_cells(notebook)
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == check)
    try:
        exec(compile(cell, f"<{notebook}:{check}>", "exec"), namespace)
    except hwcheck.CheckFailed as failure:
        return str(failure)
    return ""


@pytest.mark.parametrize("bug", sorted(PUBLIC_MESSAGES))
def test_public_checks_say_what_is_wrong_in_the_students_terms(masters, bug):
    notebook, grade_id, edits, check, present, absent = PUBLIC_MESSAGES[bug]
    message = public_message(masters, notebook, {grade_id: edits}, check)
    assert message, f"{check} passed '{bug}'"
    for words in present:
        assert words in message, (words, message)
    for words in absent:
        assert words not in message, (words, message)


def test_the_public_checks_pass_the_solution_with_its_diagnoses_silent(masters):
    for notebook, check in (("q_rnn_and_grad", "test_rnn_layer_public"), ("q_rnn_and_grad", "test_lstm_layer_public"),
                            ("q_char_lm", "test_gru_layer_public"), ("q_char_lm", "test_clip_grad_norm_public")):
        assert public_message(masters, notebook, {}, check) == ""


# --------------------------------------------------------------------------------------------------
# q_char_lm: each plausible bug loses exactly the checks of its own part
# --------------------------------------------------------------------------------------------------
# One process, as above: the public checks run as the notebook runs them (against the public goldens); the hidden
# checks pair probe and reference on the first six sweep seeds. A check of another part that fails, or a hidden
# check that passes on some seed, fails the test. (q_char_lm's delegation cases are graded through the sandbox in
# test_char_lm_notebook.py: the kernel trace needs the grader's dispatcher.)
CHAR_LM_MUTANTS: Dict[str, Dict[str, List[tuple]]] = {
    "GRU gates in the order z, r": {"gru_layer": [("r, z = self.recurrent_activation",
                                                    "z, r = self.recurrent_activation")]},
    "GRU reset gate outside the recurrent bias": {"gru_layer": [(
        "n = self.activation(inputs[t, :, 2 * size :] + r * recurrent[:, 2 * size :])",
        "n = self.activation(inputs[t, :, 2 * size :] + r * (recurrent[:, 2 * size :] - self.b_h[2 * size :])"
        " + self.b_h[2 * size :])")]},
    "GRU interpolation the wrong way round": {"gru_layer": [("h = n + z * (h - n)", "h = h + z * (n - h)")]},
    "GRU ignores h0": {"gru_layer": [("h = x.new_zeros(batch_size, size) if h0 is None else h0",
                                      "h = x.new_zeros(batch_size, size)")]},
    "clipping each parameter on its own": {"clip_grad_norm": [(
        "    if scale < 1:\n        for grad in grads:\n            grad.detach().mul_(scale)",
        "    for grad in grads:\n        own = max_norm / (grad.norm() + 1e-6)\n        if own < 1:\n"
        "            grad.detach().mul_(own)")]},
    "clipping always, also below max_norm": {"clip_grad_norm": [("    if scale < 1:\n", "    if True:\n")]},
    "clipping returns the norm after clipping": {"clip_grad_norm": [(
        "    return total_norm", "    return torch.sqrt(sum((grad ** 2).sum() for grad in grads))")]},
    "language only at the first step": {"char_lm": [(
        "language = language[:, None, :].expand(-1, tokens.shape[1], -1)",
        "language = torch.cat([language[:, None, :], language.new_zeros(language.shape[0], tokens.shape[1] - 1, "
        "language.shape[1])], dim=1)")]},
    "embeddings concatenated the other way": {"char_lm": [("torch.cat([symbols, language], dim=-1)",
                                                          "torch.cat([language, symbols], dim=-1)")]},
    "CharLM ignores h0": {"char_lm": [("dim=-1), h0)", "dim=-1), None)")]},
    "sampling without the temperature": {"sample": [("scores / temperature", "scores")]},
    "sampling one letter too many": {"sample": [("while len(letters) < max_length:",
                                                 "while len(letters) <= max_length:")]},
    "sampled names with the case of every letter flipped": {"sample": [(
        "    return decode_letters(letters)\n", "    return decode_letters(letters).swapcase()\n")]},
    "temperature 0 samples at temperature 1": {"sample": [("if temperature == 0:", "if False:"),
                                                          ("scores / temperature", "scores / (temperature or 1.0)")]},
    "beam scores without the EOS probability": {"beam_decode": [(
        "finished += [(prefix, float(total)) for prefix, total in zip(prefixes, totals[:, eos])]",
        "finished += [(prefix, float(score)) for prefix, score in zip(prefixes, scores)]")]},
    "beam forgets names finished before the last step": {"beam_decode": [(
        "finished += [(prefix, float(total))", "finished = [(prefix, float(total))")]},
    "beam allows max_length + 1 letters": {"beam_decode": [("if len(prefixes[0]) >= max_length:",
                                                            "if len(prefixes[0]) > max_length:")]},
}
CHAR_LM_MUTANT_FAILS = {
    "GRU gates in the order z, r": {"test_gru_layer_public", "test_gru_layer_hidden"},
    "GRU reset gate outside the recurrent bias": {"test_gru_layer_public", "test_gru_layer_hidden"},
    "GRU interpolation the wrong way round": {"test_gru_layer_public", "test_gru_layer_hidden"},
    "GRU ignores h0": {"test_gru_layer_public", "test_gru_layer_hidden"},
    "clipping each parameter on its own": {"test_clip_grad_norm_public", "test_clip_grad_norm_hidden"},
    "clipping always, also below max_norm": {"test_clip_grad_norm_public", "test_clip_grad_norm_hidden"},
    "clipping returns the norm after clipping": {"test_clip_grad_norm_public", "test_clip_grad_norm_hidden"},
    "language only at the first step": {"test_char_lm_public", "test_char_lm_hidden"},
    "embeddings concatenated the other way": {"test_char_lm_public", "test_char_lm_hidden"},
    "CharLM ignores h0": {"test_char_lm_public", "test_char_lm_hidden"},
    "sampling without the temperature": {"test_sample_public", "test_sample_hidden"},
    "sampling one letter too many": {"test_sample_public", "test_sample_hidden"},
    "sampled names with the case of every letter flipped": {"test_sample_public", "test_sample_hidden"},
    "temperature 0 samples at temperature 1": {"test_sample_public", "test_sample_hidden"},
    "beam scores without the EOS probability": {"test_beam_decode_public", "test_beam_decode_hidden"},
    "beam forgets names finished before the last step": {"test_beam_decode_public", "test_beam_decode_hidden"},
    "beam allows max_length + 1 letters": {"test_beam_decode_public", "test_beam_decode_hidden"},
}
CHAR_LM_PUBLIC = ("test_gru_layer_public", "test_clip_grad_norm_public", "test_char_lm_public", "test_sample_public",
                  "test_beam_decode_public")
CHAR_LM_HIDDEN = ("test_gru_layer_hidden", "test_clip_grad_norm_hidden", "test_char_lm_hidden", "test_sample_hidden",
                  "test_beam_decode_hidden")


@pytest.mark.parametrize("mutant", sorted(CHAR_LM_MUTANTS))
def test_char_lm_bugs_lose_exactly_their_checks(masters, references, mutant):
    namespace = swept_namespace(masters, "q_char_lm", CHAR_LM_MUTANTS[mutant])
    failed, partly = set(), {}
    for check in CHAR_LM_PUBLIC:
        if public_message(masters, "q_char_lm", {}, check, namespace=namespace):
            failed.add(check)
    for check in CHAR_LM_HIDDEN:
        outcomes = sweep(masters, "q_char_lm", {}, check, references["q_char_lm"], namespace=namespace,
                         seeds=SWEEP_SEEDS[:6])
        caught = [seed for seed, fraction, _ in outcomes if fraction < 1]
        if caught:
            failed.add(check)
            if len(caught) < len(outcomes):
                partly[check] = sorted(set(SWEEP_SEEDS[:6]) - set(caught))
    assert failed == CHAR_LM_MUTANT_FAILS[mutant]
    assert partly == {}, f"passed on some seeds: {partly}"
