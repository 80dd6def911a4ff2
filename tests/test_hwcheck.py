"""Unit tests of the check runtime: encoding raw values, comparison messages, goldens handling."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SOURCE


@pytest.fixture(scope="module")
def hwcheck():
    spec = importlib.util.spec_from_file_location("hwcheck_under_test", SOURCE / "hwcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_encode_roundtrip_keeps_float64_exactly(hwcheck):
    tensor = torch.randn(2, 3, dtype=torch.float64)
    record = hwcheck.encode(tensor)
    shape, flat = hwcheck.decode_array(json.loads(json.dumps(record)))
    assert shape == (2, 3)
    assert flat == tensor.flatten().tolist()
    assert record["dtype"] == "float64"


def test_encode_rejects_objects_that_are_not_numbers(hwcheck):
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(TypeError):
        hwcheck.encode(AlwaysEqual())
    with pytest.raises(TypeError):
        hwcheck.encode(np.array(["a", "b"]))


def test_shape_message_names_the_axes(hwcheck):
    expected = hwcheck.encode(torch.zeros(2, 4, 3))
    actual = hwcheck.encode(torch.zeros(4, 2, 3))
    message = hwcheck.compare_value("all_h", actual, expected, layout="BTH")
    assert message == "all_h: expected shape (B, T, H) = (2, 4, 3), got (4, 2, 3)"


def test_value_message_gives_the_first_differing_timestep(hwcheck):
    want = torch.zeros(2, 5, 3)
    got = want.clone()
    got[1, 2, 0] = 0.5
    got[0, 4, 1] = 0.25
    message = hwcheck.compare_value("all_h", hwcheck.encode(got), hwcheck.encode(want), layout="BTH")
    assert "first differing timestep t=2 (index (1, 2, 0))" in message
    assert "max abs error 0.5" in message and "expected 0, got 0.5" in message
    hidden = hwcheck.compare_value("all_h", hwcheck.encode(got), hwcheck.encode(want), layout="BTH", reveal=False)
    assert "got" not in hidden and "first differing timestep t=2" in hidden


def test_nan_is_reported_and_tolerance_respected(hwcheck):
    want = hwcheck.encode(torch.ones(3, dtype=torch.float64))
    assert hwcheck.compare_value("v", hwcheck.encode(torch.ones(3) + 1e-7), want) is None
    assert "NaN" in hwcheck.compare_value("v", hwcheck.encode(torch.tensor([1.0, math.nan, 1.0])), want)


def test_text_is_compared_exactly(hwcheck):
    """A name with its letters' case flipped, or with an extra space, is another name."""
    want = hwcheck.encode("Kowalski")
    assert hwcheck.compare_value("name", hwcheck.encode("Kowalski"), want) is None
    for wrong in ("kOWALSKI", "kowalski", "Kowalski ", "Kowal ski"):
        assert "compared exactly" in hwcheck.compare_value("name", hwcheck.encode(wrong), want), wrong


def test_record_then_compare_in_notebook_mode(hwcheck, tmp_path, monkeypatch, capsys):
    record = tmp_path / "rec.jsonl"
    monkeypatch.setenv("HWCHECK_RECORD", str(record))
    hwcheck.check("demo", lambda: {"y": torch.arange(3.0)}, layouts={"y": "T"})
    entry = json.loads(record.read_text())
    assert entry["check"] == "demo" and entry["values"]["layouts"] == {"y": "T"}
    goldens = tmp_path / "goldens.json"
    goldens.write_text(json.dumps({"demo": entry["values"]}))
    monkeypatch.delenv("HWCHECK_RECORD")
    monkeypatch.setenv("HWCHECK_GOLDENS", str(goldens))
    monkeypatch.setattr(hwcheck, "_goldens_cache", None)
    hwcheck.check("demo", lambda: {"y": torch.arange(3.0)})
    with pytest.raises(hwcheck.CheckFailed, match="first differing timestep t=1"):
        hwcheck.check("demo", lambda: {"y": torch.tensor([0.0, 2.0, 2.0])})


def test_a_value_made_from_a_wrong_one_is_not_blamed_for_it(hwcheck):
    """follows: recorded states identical to the layer's own (wrong) all_h are not reported, nor their hint; states
    that differ from the layer's own all_h are, with the hint."""
    enc = hwcheck._encode_all
    expected = enc({"case0/all_h": torch.zeros(2, 3), "case0/recorded": torch.zeros(2, 3)})
    hints = {"recorded": "call record_step for every state"}
    follows = {"recorded": "all_h"}
    wrong = torch.ones(2, 3)
    same = hwcheck.compare_values(enc({"case0/all_h": wrong, "case0/recorded": wrong}), expected, hints=hints,
                                  follows=follows)
    assert len(same) == 1 and same[0].startswith("case0/all_h:")
    unfollowed = hwcheck.compare_values(enc({"case0/all_h": wrong, "case0/recorded": wrong}), expected, hints=hints)
    assert len(unfollowed) == 2 and "call record_step" in unfollowed[1]  # without follows: blamed as before
    own = hwcheck.compare_values(enc({"case0/all_h": torch.zeros(2, 3), "case0/recorded": wrong}), expected,
                                 hints=hints, follows=follows)
    assert own == ["case0/recorded: call record_step for every state"]
    both = hwcheck.compare_values(enc({"case0/all_h": wrong, "case0/recorded": 2 * wrong}), expected, hints=hints,
                                  follows=follows)
    assert len(both) == 2 and "call record_step" in both[1]


def test_a_diagnosed_mistake_replaces_the_numbers_only_when_every_diagnostic_value_fits(hwcheck):
    enc = hwcheck._encode_all
    expected = enc({"a": torch.arange(3.0), "b": torch.ones(2)})
    diagnoses = {"swapped": "you swapped the blocks"}
    fits = enc({"a": torch.arange(3.0).flip(0), "b": torch.zeros(2), "diagnose/swapped/a": torch.arange(3.0),
                "diagnose/swapped/b": torch.ones(2)})
    assert hwcheck.compare_values(fits, expected, diagnoses=diagnoses) == ["swapped: you swapped the blocks"]
    partly = {**fits, **enc({"diagnose/swapped/b": torch.zeros(2)})}
    assert len(hwcheck.compare_values(partly, expected, diagnoses=diagnoses)) == 2  # not that mistake: the numbers
    passing = enc({"a": torch.arange(3.0), "b": torch.ones(2), "diagnose/swapped/a": torch.arange(3.0)})
    assert hwcheck.compare_values(passing, expected, diagnoses=diagnoses) == []  # a diagnosis never fails a check
    assert len(hwcheck.compare_values(fits, expected)) == 2  # no diagnoses declared: the numbers


def test_diagnostic_values_are_never_recorded(hwcheck, tmp_path, monkeypatch):
    record = tmp_path / "rec.jsonl"
    monkeypatch.setenv("HWCHECK_RECORD", str(record))
    hwcheck.check("demo", lambda: {"y": torch.arange(3.0), "diagnose/flip/y": torch.arange(3.0).flip(0)},
                  diagnoses={"flip": "flipped"}, follows={"y": "x"})
    entry = json.loads(record.read_text())["values"]
    assert list(entry["values"]) == ["y"] and entry["diagnoses"] == {"flip": "flipped"}
    assert entry["follows"] == {"y": "x"}


def test_record_mode_fails_when_the_solution_disagrees_with_the_reference(hwcheck, tmp_path, monkeypatch):
    monkeypatch.setenv("HWCHECK_RECORD", str(tmp_path / "rec.jsonl"))
    with pytest.raises(hwcheck.CheckFailed, match="disagrees with the reference"):
        hwcheck.check("demo", lambda: {"y": torch.zeros(2)}, reference=lambda: {"y": torch.ones(2)})


def test_not_implemented_names_the_method(hwcheck, monkeypatch):
    monkeypatch.setattr(hwcheck, "_goldens_cache", {"demo": {"values": {}}})

    class Layer:
        def forward(self):
            raise NotImplementedError()

    with pytest.raises(hwcheck.CheckFailed, match=r"`Layer.forward` still raises NotImplementedError"):
        hwcheck.check("demo", lambda: {"y": Layer().forward()})


def test_probe_mode_reports_only_requested_checks_with_their_seeds(hwcheck):
    reports = {}
    hwcheck.use_probe_mode(lambda name, report: reports.__setitem__(name, report),
                           {"ok": {}, "boom": {}, "seeded": {"seed": 7}})
    try:
        hwcheck.check("ok", lambda: {"y": torch.ones(2)})
        hwcheck.check("boom", lambda: 1 / 0)
        hwcheck.check("seeded", lambda seed: {"seed": seed}, seeded=True)
        hwcheck.check("not_requested", lambda: {"y": torch.ones(2)})
        hwcheck.check("elsewhere", lambda: {"y": torch.ones(2)}, where="referee")
        hwcheck.answer_check("typed", "answer", key=lambda: "1")
    finally:
        hwcheck.use_notebook_mode()
    assert reports["ok"]["values"]["y"]["shape"] == [2]
    assert reports["boom"]["error"]["type"] == "ZeroDivisionError"
    assert hwcheck.decode_array(reports["seeded"]["values"]["seed"])[1] == [7.0]
    assert set(reports) == {"ok", "boom", "seeded"}


def test_probe_mode_never_runs_a_reference(hwcheck):
    called = []
    hwcheck.use_probe_mode(lambda name, report: None, {"c": {"seed": 1}})
    try:
        hwcheck.check("c", lambda seed: {"y": 1.0}, reference=lambda seed: called.append(seed), seeded=True)
    finally:
        hwcheck.use_notebook_mode()
    assert called == []


def test_referee_mode_gives_the_reference_values_for_the_seed(hwcheck):
    reports = {}
    hwcheck.use_referee_mode(lambda name, report: reports.__setitem__(name, report), {"c": {"seed": 11}}, {})
    try:
        hwcheck.check("c", lambda seed: {"y": -1.0}, reference=lambda seed: {"y": float(seed)}, seeded=True)
        hwcheck.check("public", lambda: {"y": 1.0})
    finally:
        hwcheck.use_notebook_mode()
    assert set(reports) == {"c"} and set(reports["c"]) == {"expected"}
    assert hwcheck.decode_array(reports["c"]["expected"]["y"])[1] == [11.0]


def _notebook(*cells):
    return {"cells": [{"cell_type": "code", "source": source, "metadata": {"nbgrader": {"grade_id": grade_id}}}
                      for grade_id, source in cells]}


def test_typed_answers_are_read_as_literals_without_running_anything(hwcheck):
    notebook = _notebook(("answer_t", 'answer_t = ""\nanswer_t = "w*u1 + u2"  # mine\nprint(answer_t)'),
                         ("other", 'answer_t = "ignored: the answer cell has one"'))
    assert hwcheck.read_literal_answer(notebook, "answer_t") == "w*u1 + u2"
    beams = _notebook(("beam_t1", '%matplotlib inline\nbeam_t1 = [("neural", -0.65), ("network", -0.73)]'))
    assert hwcheck.read_literal_answer(beams, "beam_t1") == [("neural", -0.65), ("network", -0.73)]
    moved = _notebook(("something_else", 'beam_t1 = [("a", -1.0)]'))
    assert hwcheck.read_literal_answer(moved, "beam_t1") == [("a", -1.0)]


@pytest.mark.parametrize("source, message", [
    ('answer_t = "w" + "*u1"', "must be written out as a literal"),
    ("answer_t = __import__('os').getcwd()", "must be written out as a literal"),
    ("answer_t = STAFF_BEAMS[1]", "must be written out as a literal"),
    ('answer_t = "w*u1', "syntax error at line 1"),
    ("x = 1", "is not set in the saved notebook"),
    ("answer_t = [[[[[[[[1]]]]]]]]", "nested too deeply"),
    ("answer_t = '" + "x" * 3000 + "'", "longer than"),
    ("answer_t = " + "-" * 100_000 + "1", "longer than 20000 characters"),
])
def test_unreadable_typed_answers_say_how_to_fix_them(hwcheck, source, message):
    with pytest.raises(hwcheck.AnswerUnreadable, match=message):
        hwcheck.read_literal_answer(_notebook(("answer_t", source)), "answer_t")


def test_referee_reads_the_submitted_file_and_gives_a_verdict(hwcheck, tmp_path):
    path = tmp_path / "submitted.ipynb"
    path.write_text(json.dumps(_notebook(("answer_y", 'answer_y = "6"'))))
    reports = {}
    hwcheck.use_referee_mode(lambda name, report: reports.__setitem__(name, report), {"y": {}, "z": {}},
                             {"notebook": str(path)})
    try:
        hwcheck.answer_check("y", "answer_y", key=lambda: "6")
        hwcheck.answer_check("z", "answer_z", key=lambda: "7")
    finally:
        hwcheck.use_notebook_mode()
    assert reports["y"]["verdict"][0] == 1.0
    assert reports["z"]["error"]["type"] == "AnswerUnreadable" and "verdict" not in reports["z"]


def test_record_mode_reads_the_masters_answer_from_the_file(hwcheck, tmp_path, monkeypatch):
    master = tmp_path / "master.ipynb"
    master.write_text(json.dumps(_notebook(("answer_y", 'answer_y = "5"'))))
    monkeypatch.setenv("HWCHECK_RECORD", str(tmp_path / "rec.jsonl"))
    monkeypatch.setenv("HWCHECK_NOTEBOOK", str(master))
    answer_y = "6"  # what the kernel holds does not count: the file does  # noqa: F841
    with pytest.raises(hwcheck.CheckFailed, match="disagrees"):
        hwcheck.answer_check("y", "answer_y", key=lambda: "6")
    hwcheck.answer_check("y", "answer_y", key=lambda: "5")
    entry = json.loads((tmp_path / "rec.jsonl").read_text())["values"]
    assert entry["kind"] == "static" and entry["variable"] == "answer_y"


class HandWrittenRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.float64))

    def forward(self, x):
        h = x.new_zeros(x.shape[0], 3)
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ self.W + h @ self.W)
        return h


@pytest.mark.parametrize("delegate", [
    lambda x: torch.nn.RNN(3, 3, batch_first=True).double()(x),
    lambda x: torch.nn.LSTM(3, 3, batch_first=True).double()(x),
    lambda x: torch.nn.GRU(3, 3, batch_first=True).double()(x),
    lambda x: torch.nn.RNNCell(3, 3).double()(x[:, 0]),
    lambda x: torch.nn.LSTMCell(3, 3).double()(x[:, 0]),
    lambda x: torch.nn.GRUCell(3, 3).double()(x[:, 0]),
    lambda x: torch._VF.rnn_tanh(x, torch.zeros(1, 2, 3, dtype=torch.float64), [torch.eye(3, dtype=torch.float64)] * 2,
                                 False, 1, 0.0, False, False, True),
    lambda x: torch.ops.aten.rnn_relu_cell(x[:, 0], torch.zeros(2, 3, dtype=torch.float64),
                                           torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)),
])
def test_recurrent_kernels_are_noticed(hwcheck, delegate):
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    trace = hwcheck.recurrent_kernel_trace()
    with trace:
        delegate(x)
    assert trace.seen
    trace = hwcheck.recurrent_kernel_trace()
    with trace:
        HandWrittenRNN()(x).sum().backward()
    assert not trace.seen


def test_a_refusing_check_fails_on_delegation_in_every_mode(hwcheck, monkeypatch, tmp_path):
    def delegating(seed=None):
        return {"h": torch.nn.RNN(2, 2, batch_first=True).double()(torch.ones(1, 2, 2, dtype=torch.float64))[0]}

    reports = {}
    hwcheck.use_probe_mode(lambda name, report: reports.__setitem__(name, report), {"c": {"seed": 3}})
    try:
        hwcheck.check("c", delegating, seeded=True, kernels="refuse")
    finally:
        hwcheck.use_notebook_mode()
    assert reports["c"]["kernels"] == ["rnn_tanh"]
    monkeypatch.setattr(hwcheck, "_goldens_cache", {"c": {"values": {}}})
    with pytest.raises(hwcheck.CheckFailed, match="built-in recurrent kernel"):
        hwcheck.check("c", delegating, kernels="refuse")


def test_the_student_runtime_offers_no_drop_in_torch_layers(hwcheck):
    for name in ("reference_rnn_layer", "reference_lstm_layer", "lstm_layer_weights_for_torch",
                 "rnn_layer_weights_for_torch"):
        assert not hasattr(hwcheck, name)


def test_accuracy_scoring_is_linear_between_the_bounds(hwcheck):
    labels = hwcheck.encode(torch.tensor([0, 1, 2, 3] * 25))
    entry = {"values": {"predictions": labels}, "score": {"kind": "accuracy", "key": "predictions",
                                                          "zero": 0.5, "full": 0.9}}
    predictions = torch.tensor([0, 1, 2, 3] * 25)
    predictions[:30] = 9  # 70 % right
    fraction, problems, summary = hwcheck.evaluate({"predictions": hwcheck.encode(predictions)}, entry)
    assert fraction == pytest.approx(0.5)
    assert "accuracy 70.0%" in summary and problems


def test_linear_scoring_of_one_number_lower_is_better(hwcheck):
    entry = {"values": {}, "score": {"kind": "linear", "key": "bits_per_char", "zero": 3.0, "full": 2.5}}

    def score(value):
        return hwcheck.evaluate({"bits_per_char": hwcheck.encode(value)}, entry)

    assert score(2.75)[0] == pytest.approx(0.5) and "bits per char 2.750: 50% of the points" in score(2.75)[2]
    assert score(2.4)[:2] == (1.0, []) and score(3.2)[0] == 0.0
    for bad in (float("nan"), float("inf")):
        fraction, problems, summary = score(bad)
        assert fraction == 0.0 and "not a finite number" in summary and problems
    assert hwcheck.evaluate({}, entry)[1] == ["bits_per_char: no value was produced"]
    assert "expected one number" in hwcheck.evaluate({"bits_per_char": hwcheck.encode([1.0, 2.0])}, entry)[1][0]


def test_digest_goldens_hide_the_values_but_still_compare(hwcheck):
    answer = hwcheck.encode(torch.tensor([-1.85, -1.93], dtype=torch.float64))
    golden = hwcheck.to_golden(answer, spec={"kind": "digest"})
    assert set(golden) == {"kind", "sha256"} and "1.85" not in json.dumps(golden)
    assert hwcheck.compare_value("log_probs", hwcheck.encode(torch.tensor([-1.85 + 1e-12, -1.93])), golden) is None
    message = hwcheck.compare_value("log_probs", hwcheck.encode(torch.tensor([-1.85, -1.94])), golden)
    assert message == "log_probs: does not match the expected result"


PYTHON310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"
HOSTILE_ANSWER_CELLS = [
    "answer_t = " + "-" * 19_000 + "1",
    "answer_t = " + "not " * 4_000 + "1",
    "answer_t = (" * 190 + "1" + ")" * 190,
    "answer_t = " + "[" * 190 + "]" * 190,
    "answer_t = " + "1+" * 9_000 + "1",
    "answer_t = x" + ".a" * 9_000,
    "answer_t = " + "lambda:" * 2_500 + "1",
    "answer_t = '" + "\\N{LATIN SMALL LETTER A}" * 600 + "'",
    "answer_t = " + "(" * 1_000,
    "answer_t = " + "1 if 1 else " * 1_500 + "1",
    "answer_t = \"" + "\\x00" * 4_000 + "\"",
]


@pytest.mark.skipif(not PYTHON310.is_file(), reason="needs Python 3.10 (Gradescope's) at " + str(PYTHON310))
def test_reading_hostile_answers_never_crashes_python310(tmp_path):
    """The referee reads typed answers on Python 3.10, whose parser can be crashed by deep expressions: every
    hostile cell here either gives a value or an AnswerUnreadable, and the interpreter survives them all."""
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(HOSTILE_ANSWER_CELLS))
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('h', {str(SOURCE / 'hwcheck.py')!r})\n"
        "h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)\n"
        f"for source in json.load(open({str(cases)!r})):\n"
        "    notebook = {'cells': [{'cell_type': 'code', 'source': source, 'metadata': {}}]}\n"
        "    try:\n"
        "        h.read_literal_answer(notebook, 'answer_t')\n"
        "        print('value')\n"
        "    except h.AnswerUnreadable as error:\n"
        "        print('unreadable:', str(error)[:60])\n"
    )
    completed = subprocess.run([str(PYTHON310), "-I", "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert len(completed.stdout.splitlines()) == len(HOSTILE_ANSWER_CELLS), completed.stdout


def test_a_hint_explains_a_mismatch_in_the_students_terms(hwcheck):
    expected = {"recording_left_on": hwcheck.encode(0.0), "y": hwcheck.encode([1.0])}
    actual = {"recording_left_on": hwcheck.encode(1.0), "y": hwcheck.encode([2.0])}
    hint = "gradient_norms must switch recording off again before it returns"
    problems = hwcheck.compare_values(actual, expected, hints={"recording_left_on": hint})
    assert problems[0] == f"recording_left_on: {hint}" and "max abs error 1" in problems[1]


def test_an_error_in_the_students_code_shows_their_line_and_hides_the_checkers_frames(tmp_path):
    """In Jupyter, a check whose probe raises inside the student's ``forward`` names the student's failing line;
    IPython's traceback shows the check cell, not hwcheck.py's frames."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.run_cell(f"import sys; sys.path.insert(0, {str(SOURCE)!r}); import hwcheck, torch", store_history=True)
    student = (
        "class Layer:\n"
        "    def __init__(self):\n"
        "        self.W_h = torch.zeros(5, 3)\n"
        "    def forward(self, x):\n"
        "        return x @ self.W_h  # the student's wrong transpose\n"
    )
    shell.run_cell(student, store_history=True)
    with capture_output() as captured:
        result = shell.run_cell("hwcheck.check('demo_check', lambda: {'y': Layer().forward(torch.ones(8, 3))})",
                                store_history=True)
    assert isinstance(result.error_in_exec, AssertionError)
    message = str(result.error_in_exec)
    assert "mat1 and mat2 shapes cannot be multiplied" in message
    assert "Layer.forward, line 5: return x @ self.W_h  # the student's wrong transpose" in message
    assert "<lambda>" not in message  # the check's own probe is not the student's code
    shown = captured.stdout + captured.stderr
    assert "Layer.forward, line 5" in shown
    assert "hwcheck.py" not in shown, shown
    InteractiveShell.clear_instance()


def test_a_hint_that_assumes_the_right_length_gives_way_to_the_length(hwcheck):
    """4.F: a name one letter too long at temperature 0 is a length bug, not a greedy-decoding bug."""
    expected = {"seed0/T=0": hwcheck.encode("abc"), "seed0/T=0/length": hwcheck.encode(3)}
    hints = {"T=0": "take the argmax", "length": "the name has the wrong number of letters"}
    too_long = {"seed0/T=0": hwcheck.encode("abcd"), "seed0/T=0/length": hwcheck.encode(4)}
    problems = hwcheck.compare_values(too_long, expected, hints=hints)
    assert len(problems) == 2 and "argmax" not in " ".join(problems)
    assert problems[1] == "seed0/T=0/length: the name has the wrong number of letters"
    not_greedy = {"seed0/T=0": hwcheck.encode("abd"), "seed0/T=0/length": hwcheck.encode(3)}
    assert hwcheck.compare_values(not_greedy, expected, hints=hints) == ["seed0/T=0: take the argmax"]


def test_the_set_up_warns_when_torch_is_not_the_tested_release(hwcheck):
    pinned = next(line.split("==")[1] for line in (SOURCE / "requirements.txt").read_text().splitlines()
                  if line.startswith("torch=="))
    assert hwcheck.TESTED_TORCH == pinned
    assert hwcheck.torch_note(f"{pinned}+cpu") == f"torch {pinned}+cpu"
    note = hwcheck.torch_note("2.5.1+cu121")
    assert note.startswith("torch 2.5.1+cu121 — note: this homework was tested with torch") and pinned in note


def test_hints_find_their_values_by_prefix_or_suffix(hwcheck):
    """4.C's hint "changed_in_place" explains p0_changed_in_place; 2.A's "raises_ValueError" explains
    raises_ValueError(''): a yes/no value reads as what should happen, not as "expected 1, got 0"."""
    expected = {"clipped/p0_changed_in_place": hwcheck.encode(1), "raises_ValueError('')": hwcheck.encode(1),
                "index('a')": hwcheck.encode(0)}
    actual = {"clipped/p0_changed_in_place": hwcheck.encode(0), "raises_ValueError('')": hwcheck.encode(0),
              "index('a')": hwcheck.encode(1)}
    hints = {"changed_in_place": "scale each .grad in place", "raises_ValueError": "should raise ValueError here"}
    problems = hwcheck.compare_values(actual, expected, hints=hints)
    assert problems[0] == "clipped/p0_changed_in_place: scale each .grad in place"
    assert problems[1] == "raises_ValueError(''): should raise ValueError here"
    assert "should" not in problems[2]
