"""Staff flags describe what the student wrote, read as Python reads it (assignkit/grading/flags.py).

The blank release and the staff's solution have none; an independent honest implementation has none; each
re-spelling of a delegation or a tampering the text search missed is flagged, in the cell where it was written.
The notebooks are the repository's release/ and solutions/ (rebuilt by ``make release``) and the masters.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from grading_fixtures import edit_cell, insert_cell, read_notebook, replace_cell

from assignkit.grading.flags import released_lines, staff_flags

ROOT = Path(__file__).resolve().parents[1]
FLAGGED_NOTEBOOKS = ("q_rnn_and_grad", "q_char_lm")  # the notebooks whose checks refuse torch's recurrent kernels


def master(name: str) -> dict:
    return json.loads((ROOT / "source" / "hw_rnn" / f"{name}.ipynb").read_text(encoding="utf-8"))


def blank(name: str) -> dict:
    return read_notebook(ROOT / "release" / "hw_rnn" / f"{name}.ipynb")


def flags(notebook: dict, name: str) -> str:
    return " | ".join(staff_flags(notebook, master(name)))


@pytest.mark.parametrize("name", FLAGGED_NOTEBOOKS)
@pytest.mark.parametrize("folder", ["release", "solutions"])
def test_the_blank_release_and_the_solution_have_no_flags(name, folder):
    notebook = read_notebook(ROOT / folder / "hw_rnn" / f"{name}.ipynb")
    assert staff_flags(notebook, master(name)) == []


def test_without_the_master_every_line_counts():
    """The set-up cell's own `sys.modules` and `globals()` are flagged only when nothing says they are given."""
    notebook = blank("q_rnn_and_grad")
    assert staff_flags(notebook, None) and staff_flags(notebook, master("q_rnn_and_grad")) == []


def test_released_lines_are_nbgraders_stub():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    assert released_lines(source) == ["def f(x):", "    y = 1", "    # YOUR CODE HERE",
                                      "    raise NotImplementedError()"]


def test_an_independent_honest_implementation_has_no_flags():
    import test_independent_solution as independent

    rnn = blank("q_rnn_and_grad")
    for grade_id, code in (("rnn_layer", independent.RNN_LAYER), ("regression_model", independent.REGRESSION),
                           ("loss_fn", independent.LOSS), ("gradient_norms", independent.GRADIENT_NORMS),
                           ("lstm_layer", independent.LSTM_LAYER), ("stacked_rnn", independent.STACKED_RNN),
                           ("stacked_lstm", independent.STACKED_LSTM)):
        rnn = replace_cell(rnn, grade_id, code)
    assert flags(rnn, "q_rnn_and_grad") == ""
    char_lm = blank("q_char_lm")
    for grade_id, code in (("gru_layer", independent.GRU_LAYER), ("clip_grad_norm", independent.CLIP),
                           ("sample", independent.SAMPLE), ("beam_decode", independent.BEAM_DECODE)):
        char_lm = replace_cell(char_lm, grade_id, code)
    assert flags(char_lm, "q_char_lm") == ""


LAYER_HEAD = '''
class RNNLayer(StepRecorder):
    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):
        super().__init__()
        self.hidden_size, self.nonlinearity = hidden_size, nonlinearity
        self.W_x = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(hidden_size))

    def forward(self, x):
'''
ENCODED = base64.b64encode(b"import torch\nKERNEL = torch.rnn_tanh\n").decode()

ATTACKS = {  # class: (notebook, edit, flag text expected)
    "a name assembled at run time": ("q_rnn_and_grad", lambda nb: replace_cell(nb, "rnn_layer", LAYER_HEAD + (
        "        kernel = getattr(torch, 'rnn' + '_tanh')\n        return kernel(x)\n")),
        "getattr(torch, <computed name>)"),
    "a name from a variable": ("q_rnn_and_grad", lambda nb: replace_cell(nb, "rnn_layer", LAYER_HEAD + (
        "        name = ''.join(reversed('hnat_nnr'))\n        return getattr(torch, name)(x)\n")),
        "getattr(torch, <computed name>)"),
    "exec of base64-encoded text": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        f"import base64\nexec(base64.b64decode('{ENCODED}').decode())\n")), "exec"),
    "exec of hex-encoded text, reached through builtins": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "import builtins\nrun = getattr(builtins, 'ex' + 'ec')\n"
        f"run(bytes.fromhex('{b'KERNEL = 1'.hex()}').decode())\n")), "import builtins"),
    "eval of compiled text": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "code = compile('1 + 1', '<x>', 'eval')\nvalue = eval(code)\n")), "compile"),
    "an import by name": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "functional = __import__('torch.nn.functional', fromlist=['x'])\n")), "__import__"),
    "importlib": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "from importlib import import_module\nvf = import_module('torch._' + 'VF')\n")), "import importlib"),
    "fullwidth letters in an identifier (PEP 3131)": ("q_char_lm", lambda nb: edit_cell(
        nb, "gru_layer", "        ### BEGIN SOLUTION\n",
        "        ### BEGIN SOLUTION\n        gru = nn.\uff27\uff32\uff35(self.input_size, self.hidden_size)\n"),
        "nn.GRU"),
    "a fullwidth kernel name on torch": ("q_rnn_and_grad", lambda nb: replace_cell(nb, "rnn_layer", LAYER_HEAD + (
        "        return torch.\uff52\uff4e\uff4e_tanh(x)\n")), "torch.rnn_tanh"),
    "a module global rebound through __dict__": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "import re\nhwcheck.__dict__['RECURRENT' + '_KERNELS'] = re.compile('(?!)')\n")), "hwcheck.__dict__"),
    "a module global rebound through vars()": ("q_rnn_and_grad", lambda nb: insert_cell(nb, "setup", (
        "vars(hwcheck)['recurrent_kernel' + '_trace'] = None\n")), "vars"),
    "a module attribute written": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "torch.nn.utils.clip_grad_norm_ = lambda parameters, max_norm: 0\n")), "writes torch.nn.utils.clip_grad_norm_"),
    "setattr on torch": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "setattr(torch.nn.utils, 'clip_grad_norm_', print)\n")), "writes into torch"),
    "the guard of an earlier cell rebound": ("q_char_lm", lambda nb: replace_cell(nb, "clip_grad_norm", (
        "class Blind:\n    called = 0\n\n    def __enter__(self):\n        return self\n\n"
        "    def __exit__(self, *exc):\n        pass\n\n\n"
        "def clip_grad_norm(parameters, max_norm):\n    global NoTorchClipping\n    NoTorchClipping = Blind\n"
        "    parameters = [p for p in parameters if p.grad is not None]\n"
        "    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)\n")),
        "rebinds NoTorchClipping (defined by the checks)"),
    "a guard rebound through globals()": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "globals()['NoTorch' + 'Clipping'] = object\n")), "globals"),
    "delegation inside the released cell that mentions torch": ("q_char_lm", lambda nb: edit_cell(
        nb, "gru_layer", "        ### BEGIN SOLUTION\n",
        "        ### BEGIN SOLUTION\n        gru = nn.GRU(self.input_size, self.hidden_size, batch_first=True)\n"
        "        return torch.func.functional_call(gru, {'weight_ih_l0': self.U.T}, (x,))\n"), "nn.GRU"),
    # red-team round seven: what the flags did not read
    "IPython help syntax, which Python cannot parse": ("q_char_lm", lambda nb: replace_cell(nb, "clip_grad_norm", (
        "def clip_grad_norm(parameters, max_norm):\n    return _clip(parameters, max_norm)\n\n\n"
        "_clip = print\nclip_grad_norm?\n")), "IPython help syntax"),
    "code run from a string by IPython": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "get_ipython().run_cell('_c = torch.nn.utils.clip_grad_norm_')\n")), "get_ipython"),
    "a name fetched by attrgetter": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "from operator import attrgetter\n_c = attrgetter('nn.utils.' + 'clip_grad_norm')(torch)\n")), "attrgetter"),
    "torch imported under another name": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "import torch as T\nkernel = T.gru\n")), "torch.gru"),
    "torch.nn imported under another name": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "import torch.nn as tn\nlayer = tn.GRU(3, 4)\n")), "nn.GRU"),
    "a magic line that runs code": ("q_char_lm", lambda nb: insert_cell(nb, "setup", (
        "%time _c = 1\n")), "IPython line"),
}


def solution_of(name: str) -> dict:
    return read_notebook(ROOT / "solutions" / "hw_rnn" / f"{name}.ipynb")


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_respelling_is_flagged_in_the_cell_where_it_was_written(attack):
    name, edit, expected = ATTACKS[attack]
    notebook = edit(solution_of(name))
    found = staff_flags(notebook, master(name))
    assert any(expected in flag for flag in found), found
    assert len(found) == 1, found  # only the edited cell: the given code around it stays unflagged


def test_a_comment_or_a_docstring_is_not_code():
    notebook = edit_cell(solution_of("q_char_lm"), "gru_layer", "        ### BEGIN SOLUTION\n",
                         "        ### BEGIN SOLUTION\n        # as torch.nn.GRU computes it, without nn.GRU\n"
                         "        'torch.rnn_tanh is not called here'\n")
    assert staff_flags(notebook, master("q_char_lm")) == []


@pytest.mark.parametrize("source", ["x = (" * 200 + ")" * 200, "def f(:\n    pass\n", "\x00"])
def test_hostile_cells_do_not_stop_the_flags(source):
    notebook = insert_cell(solution_of("q_rnn_and_grad"), "setup", source)
    found = staff_flags(notebook, master("q_rnn_and_grad"))
    assert all(isinstance(flag, str) for flag in found)


def test_a_flood_of_code_is_read_only_up_to_a_bound():
    notebook = solution_of("q_rnn_and_grad")
    for _ in range(8):
        notebook = insert_cell(notebook, "setup", "x = 1\n" * 30000)
    found = staff_flags(notebook, master("q_rnn_and_grad"))
    assert found and "not read" in found[-1]


def test_a_cell_too_long_to_read_is_flagged_not_passed_over():
    notebook = insert_cell(solution_of("q_char_lm"), "setup", "_notes = '" + "lorem ipsum " * 20_000 + "'\n")
    found = staff_flags(notebook, master("q_char_lm"))
    assert any("read only in part" in flag for flag in found), found
