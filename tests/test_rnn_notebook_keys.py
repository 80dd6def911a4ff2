"""q_rnn_and_grad: the model answers of 1.E-1.J and the 1.H report agree with the notebook's own evidence.

The master's staff cells (tagged ``scratch``, solution regions) compute every number the model answers quote
(``STAFF_FACTS_*``: the exact lines or phrases the answer must contain) from the notebook's own sweep, and
assert the answers' claims. These tests run those cells on the master's code (no kernel, no build), check
that every quoted line is in its answer, re-check the claims on the sweep, and evaluate the answers'
gradient formulas against autograd with an LSTM and a linear RNN written here, independently of the
master.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import SOURCE

from assignkit.bench import master_namespace

MASTER = SOURCE / "q_rnn_and_grad.ipynb"
# staff cell -> (its facts, the answer cell that must quote them)
STAFF_CELLS = {
    "scratch_1e": ("STAFF_FACTS_1E", "written_e"),
    "scratch_1f": ("STAFF_FACTS_1F", "written_f"),
    "scratch_1g": ("STAFF_FACTS_1G", "written_g"),
    "scratch_h": ("STAFF_FACTS_H", "written_h"),
    "scratch_1i": ("STAFF_FACTS_1I", "written_i"),
    "scratch_1j": (None, "written_j"),
}


def cells_by_grade_id() -> dict:
    notebook = json.loads(MASTER.read_text(encoding="utf-8"))
    return {cell["metadata"].get("nbgrader", {}).get("grade_id"): cell for cell in notebook["cells"]}


def text_of(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.fixture(scope="module")
def master() -> dict:
    """The master's code (solutions, given code) with its staff cells run, in notebook order."""
    namespace = master_namespace(MASTER)
    cells = cells_by_grade_id()
    for grade_id in STAFF_CELLS:
        exec(compile(text_of(cells[grade_id]), f"<{grade_id}>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def answers() -> dict:
    cells = cells_by_grade_id()
    return {grade_id: text_of(cells[grade_id]) for _, grade_id in STAFF_CELLS.values()}


def display_math(answer: str) -> list:
    """The $$...$$ blocks of an answer, whitespace collapsed."""
    return [" ".join(block.split()) for block in re.findall(r"\$\$(.*?)\$\$", answer, re.S)]


# --------------------------------------------------------------------------------------------------
# Every number an answer quotes is the one the staff cell computes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("staff_cell", [cell for cell, (facts, _) in STAFF_CELLS.items() if facts])
def test_every_quoted_fact_is_in_its_answer(master, answers, staff_cell):
    facts_name, answer_id = STAFF_CELLS[staff_cell]
    facts = master[facts_name]
    assert facts, f"{staff_cell} computed no facts"
    missing = {name: line for name, line in facts.items() if line not in answers[answer_id]}
    assert not missing, f"{answer_id} does not quote what {staff_cell} computes (update the answer): {missing}"


def test_staff_cells_stay_out_of_grading_and_the_release():
    cells = cells_by_grade_id()
    for grade_id in STAFF_CELLS:
        meta = cells[grade_id]["metadata"]
        assert {"scratch", "skip-grading"} <= set(meta["tags"]), grade_id
        assert meta["nbgrader"]["solution"] and not meta["nbgrader"]["grade"], grade_id
        source = text_of(cells[grade_id])
        assert "### BEGIN SOLUTION" in source and source.rstrip().endswith("### END SOLUTION"), grade_id


def test_points_written_answers_and_autograded_total():
    from assignkit.masters import read_master

    master = read_master(MASTER)
    assert master.autograded_points == 29
    assert master.manual_points == {"written_e": 3, "written_f": 2, "written_g": 2, "written_h": 2, "written_i": 2,
                                    "written_j": 2}


# --------------------------------------------------------------------------------------------------
# The claims about the plots, re-checked on the notebook's own sweep
# --------------------------------------------------------------------------------------------------


def ratios(master, runs, key="grad_h"):
    return [master["first_over_last"](run[key]) for run in runs]


def test_linear_rnn_gradient_changes_by_exactly_the_weight_scale_per_step(master):
    """1.E: the visualiser's W_h is scale x orthogonal, so ||dL/dh_t|| / ||dL/dh_{t+1}|| = scale exactly."""
    for scale, runs in zip(master["SWEEP_SCALES"], master["sweep"](
            [dict(nonlinearity="identity", weight_scale=s) for s in master["SWEEP_SCALES"]]), strict=True):
        for run in runs:
            steps = run["grad_h"][:-1] / run["grad_h"][1:]
            assert steps == pytest.approx([scale] * len(steps), rel=1e-9)


def test_relu_vanishes_and_explodes_more_than_tanh(master):
    """1.F: ReLU vanishes faster up to weight scale 1 and explodes in every seed from 2 on; tanh's state is
    bounded by sqrt(H) = 4 and ReLU's stays below 1 up to 1.2."""
    settings = [dict(nonlinearity=n, weight_scale=w) for n in ("relu", "tanh") for w in master["SWEEP_SCALES"]]
    keys = [(s["nonlinearity"], s["weight_scale"]) for s in settings]
    runs = dict(zip(keys, master["sweep"](settings), strict=True))
    for w in master["SWEEP_SCALES"]:
        relu, tanh = ratios(master, runs["relu", w]), ratios(master, runs["tanh", w])
        if w <= 1.0:
            assert max(relu) < min(tanh), w
        if w >= 2.0:
            assert min(relu) > 1, w
        if w <= 1.2:
            assert max(run["h"][-1] for run in runs["relu", w]) < 1, w
        assert max(run["h"][-1] for run in runs["tanh", w]) < 4, w
    assert sorted(ratios(master, runs["relu", 2.5]))[2] > 10 * sorted(ratios(master, runs["tanh", 2.5]))[2]


def test_all_timestep_loss_hides_vanishing_but_far_targets_stay_weak(master):
    """1.G: with every target the gradient at t = 1 exceeds the one at t = T; targets 10+ steps away give
    little of it."""
    for runs in master["sweep"]([dict(nonlinearity="tanh", weight_scale=w) for w in (0.5, 0.8)],
                                last_timestep_only=False):
        assert min(ratios(master, runs)) > 1
    assert max(master["far_share"](0.5, seed) for seed in master["SWEEP_SEEDS"]) < 1e-3


def test_lstm_report_claims(master):
    """1.H report: the forget-gate bias decides; the cell-state gradient holds up at least as well as h's."""
    lstm = lambda scale, bias: master["sweep"]([dict(layer_type="lstm", weight_scale=scale, forget_bias=bias)])[0]  # noqa: E731
    tanh = {w: ratios(master, master["sweep"]([dict(nonlinearity="tanh", weight_scale=w)])[0]) for w in (0.5, 1.0)}
    for scale in (0.5, 1.0):
        for bias in (0.0, 1.0, 3.0):
            runs = lstm(scale, bias)
            assert all(c >= h for c, h in zip(ratios(master, runs, "grad_c"), ratios(master, runs), strict=True))
            if bias == 3.0:
                assert min(ratios(master, runs, "grad_c")) > 0.5
            if bias == 0.0:
                assert max(ratios(master, runs)) < 1e-4
    assert max(ratios(master, lstm(1.0, 1.0))) < min(tanh[1.0])
    assert min(ratios(master, lstm(0.5, 1.0))) > 1e3 * max(tanh[0.5])


# --------------------------------------------------------------------------------------------------
# The answers' formulas against autograd (an LSTM and a linear RNN written here)
# --------------------------------------------------------------------------------------------------


def lstm_run(weights: dict, x: torch.Tensor):
    """Plain LSTM (gate blocks f, i, o, g), keeping every h_t and C_t with its gradient, and the gates."""
    weights = {name: value.detach().requires_grad_(True) for name, value in weights.items()}
    hidden = weights["W"].shape[0]
    h = c = x.new_zeros(x.shape[0], hidden)
    states, cells, gates = [], [], []
    for t in range(x.shape[1]):
        pre = x[:, t] @ weights["U"] + h @ weights["W"] + weights["b"]
        f, i, o = (torch.sigmoid(block) for block in pre[:, : 3 * hidden].split(hidden, dim=1))
        c = f * c + i * torch.tanh(pre[:, 3 * hidden:])
        h = o * torch.tanh(c)
        for tensor in (h, c):
            tensor.retain_grad()
        states.append(h)
        cells.append(c)
        gates.append({"f": f.detach(), "o": o.detach()})
    return states, cells, gates


# How the terms of the 1.I answer's equation are read (the answer defines which derivatives are total,
# i.e. what autograd stores in .grad, and which are local). The old prompt's split at h_T is listed too:
# if the answer went back to it, the evaluation below would fail.
def term_values(states, cells, gates):
    T = len(cells)
    dh_T_dC_before = torch.autograd.grad(states[T - 1], cells[T - 2], grad_outputs=states[T - 1].grad,
                                         retain_graph=True)[0]
    return {
        r"\frac{\partial\mathcal L}{\partial C_T}\,\operatorname{diag}(f_T)": cells[T - 1].grad * gates[T - 1]["f"],
        r"\frac{\partial\mathcal L}{\partial h_{T-1}}\,\operatorname{diag}\big(o_{T-1}\circ(1-\tanh^2 C_{T-1})\big)":
            states[T - 2].grad * gates[T - 2]["o"] * (1 - torch.tanh(cells[T - 2].detach()) ** 2),
        r"\frac{\partial\mathcal L}{\partial h_T}\frac{\partial h_T}{\partial C_{T-1}}": dh_T_dC_before,
        r"\frac{\partial\mathcal L}{\partial C_T}\frac{\partial C_T}{\partial C_{T-1}}":
            cells[T - 1].grad * gates[T - 1]["f"],
    }


def split_terms(right_hand_side: str) -> list:
    """Top-level terms of a sum (not inside braces or \\big( ... \\big))."""
    terms, depth, current = [], 0, ""
    for char in right_hand_side:
        depth += (char in "{(") - (char in "})")
        if char == "+" and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    return [*terms, current.strip()]


def evaluate_1i(equation: str, seed: int) -> tuple:
    """(value of the right-hand side, autograd's dL/dC_{T-1}) on one random LSTM and loss."""
    left, right = equation.split("=", 1)
    assert "C_{T-1}" in left
    generator = torch.Generator().manual_seed(seed)
    batch, steps, inputs, hidden = 2, 3 + seed % 4, 3, 4
    weights = {"U": torch.randn(inputs, 4 * hidden, generator=generator, dtype=torch.float64),
               "W": torch.randn(hidden, 4 * hidden, generator=generator, dtype=torch.float64) / 2,
               "b": torch.randn(4 * hidden, generator=generator, dtype=torch.float64)}
    x = torch.randn(batch, steps, inputs, generator=generator, dtype=torch.float64)
    states, cells, gates = lstm_run(weights, x)
    upstream = torch.randn(batch, steps, hidden, generator=generator, dtype=torch.float64)
    loss = sum((h * upstream[:, t]).sum() for t, h in enumerate(states)) + cells[-1].sum() * (seed % 2)
    loss.backward(retain_graph=True)
    known = term_values(states, cells, gates)
    total = 0
    for term in split_terms(right):
        assert term in known, f"unknown term in the 1.I answer: {term!r}"
        total = total + known[term]
    return total, cells[-2].grad


def test_1i_answer_equals_autograd_on_random_lstms(answers):
    equations = [block for block in display_math(answers["written_i"]) if "C_{T-1}}" in block.split("=")[0]]
    assert len(equations) == 1, "written_i must hold one display equation for dL/dC_{T-1}"
    for seed in range(8):
        value, truth = evaluate_1i(equations[0], seed)
        assert torch.allclose(value, truth, rtol=0, atol=1e-12), seed


def test_1i_check_catches_the_old_h_T_split():
    old = (r"\frac{\partial\mathcal L}{\partial C_{T-1}} = \frac{\partial\mathcal L}{\partial C_T}\frac{\partial C_T}"
           r"{\partial C_{T-1}} + \frac{\partial\mathcal L}{\partial h_T}\frac{\partial h_T}{\partial C_{T-1}}")
    errors = []
    for seed in range(8):
        value, truth = evaluate_1i(old, seed)
        errors.append(((value - truth).norm() / truth.norm()).item())
    assert min(errors) > 1e-3


def test_1e_answer_equals_autograd_on_random_linear_rnns(answers):
    expected = r"\frac{\partial\mathcal L}{\partial h_t} = 2(\hat y_T - y_T)\, W^{f}\,(W^h)^{T-t} ."
    assert expected in display_math(answers["written_e"])
    generator = torch.Generator().manual_seed(5)
    for _ in range(4):
        steps, hidden = 6, 3
        W_x, W_h = (torch.randn(hidden, n, generator=generator, dtype=torch.float64) for n in (2, hidden))
        b = torch.randn(hidden, generator=generator, dtype=torch.float64)
        W_f = torch.randn(1, hidden, generator=generator, dtype=torch.float64)
        x, y = torch.randn(steps, 2, dtype=torch.float64, generator=generator), torch.randn((), dtype=torch.float64)
        W_h.requires_grad_(True)
        h, states = torch.zeros(hidden, dtype=torch.float64), []
        for t in range(steps):
            h = W_x @ x[t] + W_h @ h + b
            h.retain_grad()
            states.append(h)
        prediction = (W_f @ h)[0]
        ((prediction - y) ** 2).backward()
        for t, state in enumerate(states, start=1):
            formula = 2 * (prediction - y).detach() * W_f @ torch.linalg.matrix_power(W_h, steps - t)
            assert torch.allclose(state.grad, formula[0], rtol=0, atol=1e-10)


def test_cell_state_recorder_is_the_layer_and_records_dl_dc(master):
    """The visualiser's CellStateRecorder computes what one call of the layer computes, and its C_t.grad
    is autograd's dL/dC_t of the LSTM written here."""
    generator = torch.Generator().manual_seed(9)
    hidden = 4
    weights = {"U": torch.randn(2, 4 * hidden, generator=generator, dtype=torch.float64),
               "W": torch.randn(hidden, 4 * hidden, generator=generator, dtype=torch.float64) / 2,
               "b": torch.randn(4 * hidden, generator=generator, dtype=torch.float64)}
    x = torch.randn(3, 5, 2, generator=generator, dtype=torch.float64)
    layer = master["LSTMLayer"](2, hidden).double()
    with torch.no_grad():
        for name, value in weights.items():
            getattr(layer, name).copy_(value)
    recorder = master["CellStateRecorder"](layer)
    recorder.recording = True
    all_h, (_, c) = recorder(x)
    whole, (_, whole_c) = layer(x)
    assert torch.allclose(all_h, whole, atol=1e-12) and torch.allclose(c, whole_c, atol=1e-12)
    (all_h.sum() + (c ** 2).sum()).backward()
    states, cells, _ = lstm_run(weights, x)
    (torch.stack(states, 1).sum() + (cells[-1] ** 2).sum()).backward()
    for recorded, expected in zip(recorder.cell_states, cells, strict=True):
        assert torch.allclose(recorded.grad, expected.grad, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# The visualiser's figure: readable without a browser (the browser test covers the widgets live)
# --------------------------------------------------------------------------------------------------


def test_visualiser_figure_is_labelled_and_controls_fit(master):
    visualiser = master["GradientVisualizer"]("rnn")
    controls, shown = visualiser.controls, [visualiser.figure]
    first_image = bytes(visualiser.image.value)
    assert not controls["nonlinearity"].disabled and controls["forget_bias"].disabled
    controls["layer_type"].value = "lstm"
    shown.append(visualiser.figure)
    assert controls["nonlinearity"].disabled and not controls["forget_bias"].disabled
    assert first_image.startswith(b"\x89PNG") and bytes(visualiser.image.value) != first_image
    for control in controls.values():  # a fixed label width leaves every slider bar about 200 px
        width, label = (int(str(value).removesuffix("px")) for value in (control.layout.width,
                                                                        control.style.description_width))
        assert width - label >= 200 and len(control.description) * 7 <= label, control.description
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for figure in shown:
        canvas = FigureCanvasAgg(figure)  # the visualiser closed it after rendering its PNG
        canvas.draw()
        renderer = canvas.get_renderer()
        title = figure._suptitle.get_window_extent(renderer)
        for axis in figure.axes:
            assert axis.get_xlabel() and axis.get_ylabel() and axis.get_title()
            assert "backpropagation" in axis.get_xlabel()
            assert not title.overlaps(axis.title.get_window_extent(renderer)), "the figure title covers a panel title"
    lstm_labels = " ".join(axis.get_ylabel() for axis in shown[1].axes)
    assert "C_t" in lstm_labels and len(shown[1].axes[1].lines) == 2  # dL/dh_t and dL/dC_t


def test_a_norm_of_exactly_zero_is_marked_not_just_left_out(master):
    """A log scale cannot show 0: the visualiser marks such steps with an x and says so in the legend."""
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(1, 2)
    norms = {"h": np.array([0.5, 0.0, 0.2, 0.0]), "grad_h": np.array([1e-3, 0.0, 0.1, 1.0])}
    master["draw_step_norms"](axes, norms, label="relu")
    master["draw_step_norms"](axes, norms, label="relu again")
    for axis, zeros in ((axes[0], [2, 4]), (axes[1], [2])):
        marks = [line for line in axis.lines if line.get_marker() == "x"]
        assert [list(mark.get_xdata()) for mark in marks] == [zeros, zeros]
        assert [mark.get_label() for mark in marks].count("norm exactly 0") == 1
    plt.close(figure)


def test_the_table_under_the_lstm_figure_does_not_wrap(fast_build):
    """JupyterLab wraps output lines that are wider than the output area (about 100 characters at a 1300 px
    window): the table under the 1.H figure stays well under it, one row per layer and state."""
    from key_text import printed

    text = printed(fast_build / "solutions" / "hw_rnn" / "q_rnn_and_grad.ipynb", "visualiser_lstm_static")
    lines = text.splitlines()
    assert len(lines) >= 2 + 2 * 7, text
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)


def test_a_head_without_its_bias_is_named_by_the_1b_check(master):
    """1.B: a read-out built without a bias gets a message that says so (not torch's addmm TypeError)."""
    cells = cells_by_grade_id()
    source = text_of(cells["test_regression_model_public"])
    namespace = dict(master)
    exec(compile(source[:source.index("hwcheck.check(")], "<test_regression_model_public>", "exec"), namespace)
    namespace["probe_regression_model_public"]()  # the solution passes

    class NoBias(master["RecurrentRegressionModel"]):
        def __init__(self, recurrent_net, output_dim=1):
            super().__init__(recurrent_net, output_dim)
            self.head = torch.nn.Linear(recurrent_net.hidden_size, output_dim, bias=False)

    namespace["RecurrentRegressionModel"] = NoBias
    with pytest.raises(ValueError, match=r"nn.Linear\(hidden_size, output_dim\), with its bias.*'head.bias'"):
        namespace["probe_regression_model_public"]()
