"""q_char_lm: the language-model master runs in fast mode, grades as intended through the real path (referee and
sandbox), delegation to torch is refused, broken weight files are rejected with clear messages, and the model
answers agree with what the notebook computes. (That every hidden check catches a plausible bug and only its own is
in test_mutations.py.)

Everything uses the session's fast build (``fast_build``): the master ran in record mode with a short training
and the build moved its ``char_lm.pt`` to ``solutions/hw_rnn/``.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest
from notebook_grading import check_cell_namespace, grade_notebook

from assignkit.char_lm_bench import notebook_scale
from assignkit.masters import read_master
from assignkit.notebooks import cell_errors

NOTEBOOK = "q_char_lm"
MODEL_FILE = "char_lm.pt"
QUALITY_CHECK = "test_char_lm_quality_hidden"
MODEL_FILE_CHECK = "test_char_lm_file_public"
HIDDEN_FILE = Path("autograder") / "hidden_data" / "surnames_test_hidden.tsv"
pytestmark = pytest.mark.xdist_group("q_char_lm")  # one worker grades the mutants once
PUBLIC_CODE_CHECKS = ("test_gru_layer_public", "test_clip_grad_norm_public", "test_char_lm_public",
                      "test_sample_public", "test_beam_decode_public")


def source_dir(course: Path) -> Path:
    return course / "source" / "hw_rnn"


def solution_path(course: Path) -> Path:
    return course / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb"


def outputs_of(notebook: dict, grade_id: str) -> str:
    for cell in notebook["cells"]:
        if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == grade_id:
            return "".join("".join(output.get("text", "")) for output in cell.get("outputs", []))
    raise KeyError(grade_id)


def markdown_of(notebook: dict, grade_id: str) -> str:
    for cell in notebook["cells"]:
        if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise KeyError(grade_id)


# --------------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------------


def test_master_runs_clean_and_its_weights_go_to_solutions(fast_build):
    import nbformat

    notebook = json.loads(solution_path(fast_build).read_text(encoding="utf-8"))
    assert cell_errors(nbformat.from_dict(notebook)) == {}
    assert (fast_build / "solutions" / "hw_rnn" / MODEL_FILE).is_file()
    assert not (source_dir(fast_build) / MODEL_FILE).exists(), "char_lm.pt was left in source/hw_rnn"
    assert not (fast_build / "release" / "hw_rnn" / MODEL_FILE).exists(), "char_lm.pt was released"
    assert "saved char_lm.pt" in outputs_of(notebook, "save_model")
    master = read_master(source_dir(fast_build) / f"{NOTEBOOK}.ipynb")
    assert master.submit == [MODEL_FILE]
    assert master.autograded_points == 25 and sum(master.manual_points.values()) == 9


def test_quality_scale_is_the_one_the_notebook_states(fast_build, all_goldens):
    scale = notebook_scale(source_dir(fast_build) / f"{NOTEBOOK}.ipynb")
    assert all_goldens[QUALITY_CHECK]["score"] == {"kind": "linear", "key": "bits_per_char", **scale}
    assert all_goldens[QUALITY_CHECK]["kind"] == "referee"
    text = json.dumps(json.loads((source_dir(fast_build) / f"{NOTEBOOK}.ipynb").read_text()))
    assert f"0 at {scale['zero']:.2f} bits" in text and f"full points at {scale['full']:.2f} bits" in text
    assert scale["full"] < scale["zero"] < math.log2(58)


# --------------------------------------------------------------------------------------------------
# Model answers agree with the notebook's own computations (the executed solution)
# --------------------------------------------------------------------------------------------------


def test_parameter_counts_in_the_model_answer_are_the_computed_ones(fast_build):
    notebook = json.loads(solution_path(fast_build).read_text(encoding="utf-8"))
    printed = outputs_of(notebook, "parameter_counts")
    counts = {line.split("  ")[0].strip(): int(re.search(r"\s([\d,]+)\s", line).group(1).replace(",", ""))
              for line in printed.splitlines() if " x the RNN" in line}
    answer = markdown_of(notebook, "written_gating")
    gru, lstm = counts["GRU (3 blocks: r, z, n)"], counts["LSTM as in torch (two biases)"]
    for number in (gru, lstm, counts["vanilla RNN (1 block)"]):
        assert f"{number:,}" in answer, number
    assert f"ratio {gru / lstm:.2f}" in answer


def test_gradient_claims_of_the_gating_answer_hold_for_the_figure(fast_build):
    """The answer quotes how far the gradient falls over 40 steps in each setting of the figure."""
    notebook = json.loads(solution_path(fast_build).read_text(encoding="utf-8"))
    ratios = {line.split("||")[0].strip(): float(line.rsplit("=", 1)[1])
              for line in outputs_of(notebook, "gru_gradients_figure").splitlines() if "=" in line}
    vanilla, bias0 = ratios["vanilla tanh RNN (z = 0, r = 1)"], ratios["GRU, update-gate bias 0"]
    bias2, bias4 = ratios["GRU, update-gate bias 2"], ratios["GRU, update-gate bias 4"]
    assert 1e-5 <= vanilla <= 1e-4  # "falls by a factor of about 10^4-10^5"
    assert 1e-7 <= bias0 <= 1e-6 and bias0 < vanilla  # "even faster (about 10^6-10^7)"
    assert 1 / 100 <= bias2 <= 1 / 25  # "only by a factor of about 50"
    assert 1 / 3 <= bias4 <= 2 / 3  # "by about 2"


COMMITTED_SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb"
TEMPERATURE_LINE = re.compile(r"temperature ([\d.]+): mean length ([\d.]+) letters, training names (\d+)%, "
                              r"distinct (\d+)%")


def temperature_facts(notebook: dict) -> Dict[float, Dict[str, float]]:
    """What the staff cell of 4.F printed: per temperature, mean name length and % of training names."""
    facts = {}
    for line in outputs_of(notebook, "scratch_4f").splitlines():
        match = TEMPERATURE_LINE.match(line)
        if match:
            facts[float(match.group(1))] = {"length": float(match.group(2)), "training": int(match.group(3))}
    return facts


def test_temperature_answer_quotes_the_staff_run_and_its_trends_hold():
    """The committed solution (`make release`, full training): the numbers the 4.F answer quotes are the ones its
    staff cell printed, and the trends it describes (longer names and fewer training names as the temperature
    rises, greedy names about as long as at 0.5) hold for them."""
    notebook = json.loads(COMMITTED_SOLUTION.read_text(encoding="utf-8"))
    facts = temperature_facts(notebook)
    assert set(facts) == {0.0, 0.5, 1.0, 1.5}, facts
    answer = " ".join(markdown_of(notebook, "written_temperature").split())
    lengths = [facts[t]["length"] for t in (0.5, 1.0, 1.5)]
    shares = [facts[t]["training"] for t in (0.5, 1.0, 1.5)]
    assert lengths[0] < lengths[1] < lengths[2]  # "the shortest", "names get longer"
    assert shares[0] > shares[1] >= shares[2]  # "more of them are names of the training set"
    assert f"average {lengths[0]:.1f}, {lengths[1]:.1f} and {lengths[2]:.1f} letters" in answer
    assert f"{shares[0]} %, {shares[1]} % and {shares[2]} % of them are training names" in answer
    greedy = facts[0.0]["length"]
    assert f"({greedy:.1f} letters on average in the staff run)" in answer and abs(greedy - lengths[0]) <= 0.5


def test_clipping_answer_describes_the_experiment(fast_build):
    """Fast mode runs 40 steps: without clipping the loss stays far above uniform guessing, with clipping below it
    is far lower (the answer describes the full 150-step run)."""
    notebook = json.loads(solution_path(fast_build).read_text(encoding="utf-8"))
    lines = outputs_of(notebook, "clip_experiment").splitlines()
    last = {line.split("  ")[0].strip(): float(re.search(r"last 20 steps\s+([\d.]+)", line).group(1)) for line in lines}
    highest = {line.split("  ")[0].strip(): float(re.search(r"highest loss\s+([\d.]+)", line).group(1))
               for line in lines}
    assert last["without clipping"] > 5 * math.log2(58)
    assert last["with clipping (max_norm = 1)"] < last["without clipping"] / 3
    assert highest["without clipping"] > 100 and highest["with clipping (max_norm = 1)"] < 100


def test_clipping_claims_hold_for_other_seeds_and_torchs_clip(monkeypatch):
    """The 4.E answer claims only what does not change: its staff cell's claims hold, over the full 150 steps, for
    two more seeds with the master's clip_grad_norm and with torch's clip_grad_norm_ (which rounds differently)."""
    import torch

    from assignkit.bench import master_namespace

    master = Path(__file__).resolve().parents[1] / "source" / "hw_rnn" / "q_char_lm.ipynb"
    monkeypatch.chdir(master.parent)
    namespace = master_namespace(master)
    notebook = json.loads(master.read_text(encoding="utf-8"))
    staff = next("".join(cell["source"]) for cell in notebook["cells"]
                 if (cell["metadata"].get("nbgrader") or {}).get("grade_id") == "scratch_4e")
    exec(compile(staff[:staff.index("if not hwcheck.short_run()")], "<scratch_4e>", "exec"), namespace)
    answer = " ".join(markdown_of(notebook, "written_clipping").split())
    assert "over a hundred bits" in answer and "within a factor of two of uniform guessing" in answer

    def torch_clip(parameters, max_norm):
        return float(torch.nn.utils.clip_grad_norm_(list(parameters), max_norm))

    for seed, clip_function in ((2, namespace["clip_grad_norm"]), (3, torch_clip)):
        runs = namespace["run_clip_experiment"](seed, 150, clip_function)
        namespace["clipping_claims"](runs["without"], runs["with"])


# --------------------------------------------------------------------------------------------------
# The blank release in a real kernel
# --------------------------------------------------------------------------------------------------


def test_blank_release_public_checks_fail_with_clear_messages(blank_run):
    errors = cell_errors(blank_run(f"{NOTEBOOK}.ipynb"))
    for grade_id in PUBLIC_CODE_CHECKS:
        assert grade_id in errors, f"{grade_id} did not fail on the blank release"
        assert "not implemented yet" in errors[grade_id][0], errors[grade_id]
    assert f"{MODEL_FILE} was not found" in errors[MODEL_FILE_CHECK][0]


# --------------------------------------------------------------------------------------------------
# Grading through the real path: solution, blank release, mutants, delegation, broken weight files
# --------------------------------------------------------------------------------------------------

DELEGATING = {
    "GRULayer through torch.nn.GRU": {"gru_layer": [(
        "        batch_size, seq_len, _ = x.shape\n",
        "        gru = nn.GRU(self.input_size, self.hidden_size, batch_first=True).to(x.dtype)\n"
        "        weights = {'weight_ih_l0': self.U.T, 'weight_hh_l0': self.W.T, 'bias_ih_l0': self.b_x,"
        " 'bias_hh_l0': self.b_h}\n"
        "        out, last = torch.func.functional_call(gru, weights, (x, None if h0 is None else h0[None]))\n"
        "        return out, last[0]\n"
        "        batch_size, seq_len, _ = x.shape\n")]},
    "clip_grad_norm through torch": {"clip_grad_norm": [(
        "    grads = [p.grad for p in parameters if p.grad is not None]\n",
        "    parameters = [p for p in parameters if p.grad is not None]\n"
        "    return torch.nn.utils.clip_grad_norm_(parameters, max_norm) if parameters else torch.tensor(0.0)\n"
        "    grads = [p.grad for p in parameters if p.grad is not None]\n")]},
    # found by a red team: TorchScript runs torch.gru in C++, where a TorchFunctionMode sees nothing
    "GRULayer through TorchScript": {"gru_layer": [(
        "        batch_size, seq_len, _ = x.shape\n",
        "        unit = torch.jit.CompilationUnit('def gru(x: Tensor, h: Tensor, w: List[Tensor]):\\n'\n"
        "                                     '    return torch.gru(x, h, w, True, 1, 0.0, False, False, True)\\n')\n"
        "        h = x.new_zeros(1, x.shape[0], self.hidden_size) if h0 is None else h0[None]\n"
        "        out, last = unit.gru(x, h, [self.U.T, self.W.T, self.b_x, self.b_h])\n"
        "        return out, last[0]\n"
        "        batch_size, seq_len, _ = x.shape\n")]},
    # a copy of torch's function taken before the check's guard replaces the public names
    "clip_grad_norm through a copy of torch's function": {"clip_grad_norm": [(
        "def clip_grad_norm(parameters, max_norm):\n",
        "_saved_clipping = torch.nn.utils.clip_grad_norm_\n\n\ndef clip_grad_norm(parameters, max_norm):\n"), (
        "    grads = [p.grad for p in parameters if p.grad is not None]\n",
        "    parameters = [p for p in parameters if p.grad is not None]\n"
        "    return _saved_clipping(parameters, max_norm) if parameters else torch.tensor(0.0)\n"
        "    grads = [p.grad for p in parameters if p.grad is not None]\n")]},
}
DELEGATING_FAILS = {"GRULayer through torch.nn.GRU": ("test_gru_layer_hidden", "recurrent kernel"),
                    "clip_grad_norm through torch": ("test_clip_grad_norm_hidden", "raised RuntimeError"),
                    "GRULayer through TorchScript": ("test_gru_layer_hidden", "recurrent kernel"),
                    "clip_grad_norm through a copy of torch's function": ("test_clip_grad_norm_hidden",
                                                                           "calls_torch_clipping")}


def mutated(notebook: dict, edits: Dict[str, List[tuple]]) -> dict:
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        grade_id = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        for old, new in edits.get(grade_id, []):
            source = "".join(cell["source"])
            assert old in source, f"mutation target not found in {grade_id}: {old}"
            cell["source"] = source.replace(old, new)
    return notebook


def grade(course: Path, notebook: Path, model: bytes | None, workdir: Path) -> dict:
    files = {} if model is None else {MODEL_FILE: model}
    return grade_notebook(course, NOTEBOOK, notebook, workdir, files=files)


@pytest.fixture(scope="module")
def weights(fast_build: Path) -> bytes:
    return (fast_build / "solutions" / "hw_rnn" / MODEL_FILE).read_bytes()


@pytest.fixture(scope="module")
def graded(fast_build: Path, weights: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("char_lm")
    solution = solution_path(fast_build)
    runs = {"solution": (solution, weights), "release": (fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb", None)}
    for index, (name, edits) in enumerate(DELEGATING.items()):
        path = base / f"mutant{index}.ipynb"
        path.write_text(json.dumps(mutated(json.loads(solution.read_text(encoding="utf-8")), edits)), encoding="utf-8")
        runs[name] = (path, weights)
    return {name: grade(fast_build, notebook, model, base / f"run{index}")
            for index, (name, (notebook, model)) in enumerate(runs.items())}


def staff_bits_per_char(course: Path, weights: bytes, tmp_path: Path) -> float:
    """The master's own CharLM and bits_per_char (not the grader's code) on the hidden names."""
    import torch

    from assignkit.bench import master_namespace
    from assignkit.surnames.bench import _inside

    with _inside(source_dir(course), {"HW_FAST": "1"}):
        namespace = master_namespace(source_dir(course) / f"{NOTEBOOK}.ipynb")
    state = torch.load(io.BytesIO(weights), weights_only=True)
    model = namespace["CharLM"](18, state["embedding.weight"].shape[1], state["language_embedding.weight"].shape[1],
                                state["gru.W"].shape[0])
    model.load_state_dict(state)
    rows = [line.split("\t") for line in (course / HIDDEN_FILE).read_text(encoding="utf-8").splitlines()[1:] if line]
    return namespace["bits_per_char"](model, [row[0] for row in rows], [row[1] for row in rows])


def test_solution_gets_every_point_but_the_scaled_one(graded, fast_build, weights, tmp_path):
    results = graded["solution"]
    assert {name: r.message for name, r in results.items() if name != QUALITY_CHECK and not r.passed} == {}
    quality = results[QUALITY_CHECK]
    match = re.search(r"bits per char ([\d.]+): (\d+)% of the points \(0 at ([\d.]+), full at ([\d.]+)\)",
                      quality.message)
    assert match, quality.message
    measured = float(match.group(1))
    assert abs(measured - staff_bits_per_char(fast_build, weights, tmp_path)) < 2e-3  # the trusted GRU agrees
    zero, full = float(match.group(3)), float(match.group(4))
    expected = min(1.0, max(0.0, (measured - zero) / (full - zero))) * quality.max_points
    assert abs(quality.points - expected) < 0.02


def test_blank_release_gets_nothing(graded):
    results = graded["release"]
    assert results and {name: r.points for name, r in results.items() if r.points} == {}
    assert f"{MODEL_FILE} was not found" in results[QUALITY_CHECK].message


@pytest.mark.parametrize("case", sorted(DELEGATING))
def test_delegation_to_torch_is_refused(graded, case):
    check, message = DELEGATING_FAILS[case]
    result = graded[case][check]
    assert result.points == 0 and message in result.message, result.message
    assert graded[case][QUALITY_CHECK].message == graded["solution"][QUALITY_CHECK].message  # trusted code measures


# --------------------------------------------------------------------------------------------------
# Weight files: the grader's loader rejects what it cannot or must not read
# --------------------------------------------------------------------------------------------------


def broken_files(weights: bytes) -> Dict[str, bytes]:
    import pickle

    import torch

    state = torch.load(io.BytesIO(weights), weights_only=True)
    files = {}

    def saved(value) -> bytes:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()

    files["a whole pickled module"] = saved(torch.nn.Linear(2, 2))
    files["a missing key"] = saved({k: v for k, v in state.items() if k != "gru.b_h"})
    files["an extra key"] = saved({**state, "extra.weight": torch.zeros(2)})
    files["a wrong shape"] = saved({**state, "output.bias": torch.zeros(57)})
    files["integer weights"] = saved({**state, "output.bias": torch.zeros(58, dtype=torch.long)})
    files["not a zip"] = pickle.dumps(state)
    compressed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights)) as source, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry.filename))
    files["a compressed zip"] = compressed.getvalue()
    return files


EXPECTED_MESSAGES = {
    "a whole pickled module": "could not be read with torch.load(weights_only=True)",
    "a missing key": "has no gru.b_h",
    "an extra key": "unexpected entries: extra.weight",
    "a wrong shape": "output.bias has shape (57,)",
    "integer weights": "weights must be floating point",
    "not a zip": "is not a file written by torch.save",
    "a compressed zip": "is not laid out the way torch.save writes files",
}


@pytest.fixture(scope="module")
def file_check(fast_build: Path) -> Dict[str, object]:
    """The loader of 4.D's model-file check cell (``checked_lm_state_dict``, ``lm_config``), which both the public
    check and the hidden quality check call."""
    return check_cell_namespace(fast_build, NOTEBOOK, MODEL_FILE_CHECK)


@pytest.mark.parametrize("case", sorted(EXPECTED_MESSAGES))
def test_the_loader_of_both_checks_rejects_broken_weight_files_and_says_why(file_check, weights, tmp_path, case):
    path = tmp_path / MODEL_FILE
    path.write_bytes(broken_files(weights)[case])
    with pytest.raises(ValueError) as raised:
        file_check["lm_config"](file_check["checked_lm_state_dict"](path))
    assert EXPECTED_MESSAGES[case] in str(raised.value)
    path.write_bytes(weights)
    assert file_check["lm_config"](file_check["checked_lm_state_dict"](path))  # the solution's file passes


@pytest.mark.parametrize("case", ["not a zip", "a wrong shape"])  # one refused by each of the loader's two stages
def test_broken_weight_files_earn_nothing_and_say_why(fast_build, weights, tmp_path, case):
    """Graded for real: the public check and the referee's quality check both refuse the file with the loader's
    message, and no other check of the notebook loses anything."""
    results = grade(fast_build, solution_path(fast_build), broken_files(weights)[case], tmp_path / "run")
    quality, public = results[QUALITY_CHECK], results[MODEL_FILE_CHECK]
    assert quality.points == 0, case
    assert EXPECTED_MESSAGES[case] in quality.message, (case, quality.message)
    assert EXPECTED_MESSAGES[case] in public.message, (case, public.message)
    others = {name for name, r in results.items() if not r.passed} - {QUALITY_CHECK, MODEL_FILE_CHECK}
    assert others == set(), (case, others)
