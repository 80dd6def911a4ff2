"""q_rnn_last_name: the surname-classifier master runs in fast mode, grades as intended, rejects broken
weight files with clear messages, writes a log that follows its schema, and leaks no hidden test name.

Everything uses the session's fast build (``fast_build``): the master ran in record mode with one training
epoch and the build moved its ``surname_model.pt`` and ``submission_log.json`` to ``solutions/hw_rnn/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import generated_names
from notebook_grading import check_cell_namespace, grade_notebook

from assignkit.masters import read_master
from assignkit.notebooks import cell_errors

pytestmark = pytest.mark.xdist_group("q_rnn_last_name")  # one worker grades the mutants once (module fixture `graded`)

NOTEBOOK = "q_rnn_last_name"
MODEL_FILE = "surname_model.pt"
LOG_FILE = "submission_log.json"
HIDDEN_FILE = Path("autograder") / "hidden_data" / "surnames_test_hidden.tsv"
ACCURACY_CHECK = "test_accuracy_hidden"
MODEL_FILE_CHECK = "test_model_file_public"
NOT_IMPLEMENTED_CHECKS = ("test_letter_to_index_public", "test_encode_name_public", "test_classifier_shape_public",
                          "test_classifier_gather_public")
LAYOUT_LOADER_CELL = MODEL_FILE_CHECK  # the public check cell that defines the grader's loader


def source_dir(course: Path) -> Path:
    return course / "source" / "hw_rnn"


def master_cell(course: Path, grade_id: str) -> str:
    notebook = json.loads((source_dir(course) / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise KeyError(grade_id)


def hidden_rows(course: Path) -> list:
    lines = (course / HIDDEN_FILE).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


# --------------------------------------------------------------------------------------------------
# The build: clean run, outputs in solutions/, a log that follows the schema
# --------------------------------------------------------------------------------------------------


def test_master_runs_clean_and_its_outputs_go_to_solutions(fast_build):
    solutions = fast_build / "solutions" / "hw_rnn"
    notebook = json.loads((solutions / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    assert cell_errors(_node(notebook)) == {}
    for name in (MODEL_FILE, LOG_FILE):
        assert (solutions / name).is_file(), f"{name} is not in solutions/hw_rnn"
        assert not (source_dir(fast_build) / name).exists(), f"{name} was left in source/hw_rnn"
        assert not (fast_build / "release" / "hw_rnn" / name).exists(), f"{name} was released"
    printed = "".join("".join(o.get("text", "")) for c in notebook["cells"] for o in c.get("outputs", []))
    assert "recorded test_accuracy_hidden" not in printed  # hidden-check outputs are stripped from solutions
    assert "public test: accuracy" in printed and "saved surname_model.pt" in printed


def _node(notebook: dict):
    import nbformat

    return nbformat.from_dict(notebook)


def test_submission_log_follows_the_schema_and_describes_the_weights(fast_build):
    import jsonschema
    import torch

    solutions = fast_build / "solutions" / "hw_rnn"
    schema = json.loads((source_dir(fast_build) / "submission_log.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    log = json.loads((solutions / LOG_FILE).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(log)

    weights = (solutions / MODEL_FILE).read_bytes()
    assert log["weights"] == {"file": MODEL_FILE, "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    state = torch.load(solutions / MODEL_FILE, weights_only=True)
    assert log["model"]["parameter_shapes"] == {name: list(t.shape) for name, t in state.items()}
    assert log["model"]["parameter_count"] == sum(t.numel() for t in state.values())
    hparams = log["hyperparameters"]
    assert log["model"]["config"] == {"vocab_size": 58, "rnn_size": hparams["rnn_size"], "n_categories": 18,
                                      "num_layers": hparams["num_layers"], "model_type": hparams["model_type"]}
    assert log["short_run"] is True and hparams["epochs"] == len(log["training"]["epochs"]) == 1
    assert log["public_test_accuracy"] == log["training"]["epochs"][-1]["test_accuracy"]
    for grade_id in ("letter_to_index", "encode_name"):  # the hash of the graded cell's source, as submitted
        expected = hashlib.sha256((master_cell(fast_build, grade_id) + "\n").encode("utf-8")).hexdigest()
        assert log["source_sha256"][grade_id] == expected
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in log["source_sha256"].values())


def test_schema_rejects_a_log_that_does_not_describe_a_model(fast_build):
    import jsonschema

    schema = json.loads((source_dir(fast_build) / "submission_log.schema.json").read_text(encoding="utf-8"))
    log = json.loads((fast_build / "solutions" / "hw_rnn" / LOG_FILE).read_text(encoding="utf-8"))
    broken = [
        {**log, "weights": {**log["weights"], "sha256": "not-a-digest"}},
        {**log, "public_test_accuracy": 1.5},
        {**log, "hyperparameters": {**log["hyperparameters"], "model_type": "transformer"}},
        {key: value for key, value in log.items() if key != "training"},
    ]
    validator = jsonschema.Draft202012Validator(schema)
    assert [validator.is_valid(candidate) for candidate in broken] == [False] * len(broken)


def test_accuracy_golden_holds_the_hidden_labels_and_the_notebooks_scale(fast_build, all_goldens):
    from assignkit.surnames.bench import notebook_scale

    golden = all_goldens[ACCURACY_CHECK]
    languages = (source_dir(fast_build) / "data" / "languages.txt").read_text(encoding="utf-8").split()
    labels = [float(languages.index(row[1])) for row in hidden_rows(fast_build)]
    assert golden["values"]["predictions"]["values"] == labels
    zero, full = notebook_scale(source_dir(fast_build) / f"{NOTEBOOK}.ipynb")
    assert golden["score"] == {"kind": "accuracy", "key": "predictions", "zero": zero, "full": full}
    assert 0 < zero < full < 1


# --------------------------------------------------------------------------------------------------
# The blank release in a real kernel
# --------------------------------------------------------------------------------------------------


def test_blank_release_public_checks_fail_with_clear_messages(fast_build, blank_run):
    release = fast_build / "release" / "hw_rnn"
    master = read_master(source_dir(fast_build) / f"{NOTEBOOK}.ipynb")
    errors = cell_errors(blank_run(f"{NOTEBOOK}.ipynb"))
    for grade_id in NOT_IMPLEMENTED_CHECKS:
        assert grade_id in errors, f"{grade_id} did not fail on the blank release"
        assert "not implemented yet" in errors[grade_id][0] and "NotImplementedError" in errors[grade_id][0]
    assert f"{MODEL_FILE} was not found" in errors[MODEL_FILE_CHECK][0]
    public = {check.grade_id for check in master.checks if not check.hidden}
    assert public == {*NOT_IMPLEMENTED_CHECKS, MODEL_FILE_CHECK}
    unexpected = set(errors) - public - set(master.skip_ids)
    assert not unexpected, {label: errors[label] for label in unexpected}
    assert not any((release / name).exists() for name in (MODEL_FILE, LOG_FILE))


# --------------------------------------------------------------------------------------------------
# Grading through the sandboxed runner
# --------------------------------------------------------------------------------------------------


def grade(course: Path, notebook: Path, model: bytes | None, workdir: Path) -> dict:
    """Grade ``notebook`` (and ``model`` as surname_model.pt) as the autograder does."""
    return grade_notebook(course, NOTEBOOK, notebook, workdir, model=model)


# Plausible bugs, each variant aimed at some checks; the checks it does not touch must keep their points.
MUTANTS = {
    "reads T-1, maps unknown letters to the pad": {
        "recurrent_classifier": [("last_states = states.gather(1, index).squeeze(1)", "last_states = states[:, -1]")],
        "letter_to_index": [("index = ALPHABET.find(letter)",
                             "index = ALPHABET.find(letter) if letter in ALPHABET else PAD_INDEX")],
    },
    "pads with 0, dropout ignores eval mode": {
        "encode_name": [("torch.full((max_length,), PAD_INDEX", "torch.full((max_length,), 0")],
        "recurrent_classifier": [("return self.output(self.dropout(last_states))",
                                  "return self.output(nn.functional.dropout(last_states, 0.3, training=True))")],
    },
}
MUTANT_FAILS = {
    "reads T-1, maps unknown letters to the pad": {"test_classifier_gather_public", "test_classifier_hidden",
                                                   "test_letter_to_index_public", "test_encode_name_public",
                                                   "test_encoding_hidden"},
    "pads with 0, dropout ignores eval mode": {"test_encode_name_public", "test_encoding_hidden",
                                               "test_classifier_hidden"},
}


def mutated(notebook: dict, edits: dict) -> dict:
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        grade_id = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        for old, new in edits.get(grade_id, []):
            source = "".join(cell["source"])
            assert old in source, f"mutation target not found in {grade_id}: {old}"
            cell["source"] = source.replace(old, new)
    return notebook


@pytest.fixture(scope="module")
def graded(fast_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Results of the solution with its weights, the blank release without weights, the solution with a pickled
    module instead of a state_dict, and the mutants (with the solution's weights)."""
    import torch

    base = tmp_path_factory.mktemp("last_name")
    solution = fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb"
    release = fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb"
    weights = (fast_build / "solutions" / "hw_rnn" / MODEL_FILE).read_bytes()
    torch.save(torch.nn.Linear(2, 2), base / "module.pt")  # the whole module pickled, not its state_dict
    runs = {"solution": (solution, weights), "release": (release, None),
            "pickled_module": (solution, (base / "module.pt").read_bytes())}
    for index, (name, edits) in enumerate(MUTANTS.items()):
        path = base / f"mutant{index}.ipynb"
        path.write_text(json.dumps(mutated(json.loads(solution.read_text(encoding="utf-8")), edits)), encoding="utf-8")
        runs[name] = (path, weights)
    return {name: grade(fast_build, notebook, model, base / f"run{index}")
            for index, (name, (notebook, model)) in enumerate(runs.items())}


def test_solution_gets_full_forward_points_and_a_positive_accuracy_score(graded):
    results = graded["solution"]
    assert {name: r.message for name, r in results.items() if name != ACCURACY_CHECK and not r.passed} == {}
    accuracy = results[ACCURACY_CHECK]
    assert 0 < accuracy.points <= accuracy.max_points, accuracy.message
    assert re.search(r"accuracy \d+\.\d% on 2463 names", accuracy.message)


def test_blank_release_gets_nothing(graded):
    results = graded["release"]
    assert results and {name: r.points for name, r in results.items() if r.points} == {}
    assert f"{MODEL_FILE} was not found" in results[MODEL_FILE_CHECK].message


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_plausible_bugs_lose_exactly_their_checks(graded, mutant):
    results = graded[mutant]
    failed = {name for name, r in results.items() if name != ACCURACY_CHECK and not r.passed}
    assert failed == MUTANT_FAILS[mutant], {name: results[name].message for name in failed ^ MUTANT_FAILS[mutant]}
    assert all(results[name].points == 0 for name in failed)


def test_accuracy_is_measured_by_the_staff_classifier_not_the_students_forward(graded):
    """The grader evaluates the submitted weights in the staff's RecurrentClassifier (no student code runs with
    the hidden names); a broken forward loses the points of its differential check instead."""
    mutant = graded["reads T-1, maps unknown letters to the pad"]
    assert mutant[ACCURACY_CHECK].message == graded["solution"][ACCURACY_CHECK].message
    assert mutant["test_classifier_hidden"].points == 0


def test_a_pickled_model_is_rejected_with_a_clear_message(graded):
    results = graded["pickled_module"]
    assert results[MODEL_FILE_CHECK].points == results[ACCURACY_CHECK].points == 0
    assert "could not be read with torch.load(weights_only=True)" in results[MODEL_FILE_CHECK].message
    assert "torch.save(model.state_dict()" in results[MODEL_FILE_CHECK].message
    assert results["test_classifier_hidden"].passed  # only the parts that need the weights lose points


# --------------------------------------------------------------------------------------------------
# The grader's loader, in process: what it accepts and how it rejects broken files
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loader(fast_build: Path):
    """The master's given and solution code plus the definitions of its model-file check cell (the grader's loader)."""
    return check_cell_namespace(fast_build, NOTEBOOK, LAYOUT_LOADER_CELL)


def state_dict(model_type="gru", rnn_size=8, num_layers=2, vocab_size=58, n_categories=18):
    import torch

    torch.manual_seed(0)
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model_type](rnn_size, rnn_size, num_layers)
    state = {"embedding.weight": torch.randn(vocab_size, rnn_size)}
    state.update({f"rnn.{name}": tensor for name, tensor in rnn.state_dict().items()})
    state.update({"output.weight": torch.randn(n_categories, rnn_size), "output.bias": torch.randn(n_categories)})
    return state


@pytest.mark.parametrize("model_type", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_loader_rebuilds_every_cell_type_and_agrees_with_the_given_config(loader, tmp_path, model_type, num_layers):
    import torch

    state = state_dict(model_type, rnn_size=6, num_layers=num_layers)
    torch.save(state, tmp_path / MODEL_FILE)
    model, config = loader["load_submitted_model"](tmp_path / MODEL_FILE)
    expected = {"vocab_size": 58, "rnn_size": 6, "n_categories": 18, "num_layers": num_layers,
                "model_type": model_type}
    assert config == expected == loader["classifier_config"](state)
    assert not model.training and isinstance(model, loader["RecurrentClassifier"])
    assert model(*loader["grader_encode"](["Ng", "Kowalski"])).shape == (2, 18)


def _bad_files():
    import torch

    good = state_dict()
    return {
        "list": ([t for t in good.values()], "holds a list, not a state_dict"),
        "string value": ({**good, "embedding.weight": "abc"}, "entry 'embedding.weight' holds a str"),
        "nested": ({"model": good}, "entry 'model' holds a dict"),
        "integer weights": ({**good, "output.bias": torch.zeros(18, dtype=torch.long)}, "dtype torch.int64"),
        "vocabulary": (state_dict(vocab_size=60), r"embedding.weight has shape \(60, 8\); expected \(58, rnn_size\)"),
        "gate blocks": ({**good, "rnn.weight_hh_l0": torch.zeros(16, 8)}, "has 16 rows; expected 1, 3 or 4 times"),
        "languages": (state_dict(n_categories=5), r"output.weight has shape \(5, 8\); expected \(18, 8\)"),
        "layer shape": ({**good, "rnn.weight_ih_l1": torch.zeros(24, 7)}, r"rnn.weight_ih_l1 has shape \(24, 7\)"),
        "missing": ({k: v for k, v in good.items() if k != "output.bias"}, "has no output.bias"),
        "extra": ({**good, "norm.weight": torch.ones(8)}, "unexpected entries: norm.weight"),
    }


@pytest.mark.parametrize("case", sorted(_bad_files()))
def test_loader_rejects_broken_state_dicts_with_a_clear_message(loader, tmp_path, case):
    import torch

    content, message = _bad_files()[case]
    torch.save(content, tmp_path / MODEL_FILE)
    with pytest.raises(ValueError, match=message):
        loader["load_submitted_model"](tmp_path / MODEL_FILE)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loader_rejects_files_that_are_not_tensors_only(loader, tmp_path):
    import torch

    torch.save(torch.nn.GRU(2, 2), tmp_path / "module.pt")
    with pytest.raises(ValueError, match=r"could not be read with torch.load\(weights_only=True\)"):
        loader["load_submitted_model"](tmp_path / "module.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x80\x04not a torch file")
    with pytest.raises(ValueError, match=r"is not a file written by torch\.save"):
        loader["load_submitted_model"](tmp_path / "garbage.pt")
    with pytest.raises(FileNotFoundError, match="was not found"):
        loader["load_submitted_model"](tmp_path / MODEL_FILE)


def test_loader_refuses_zips_that_torch_would_inflate(loader, tmp_path):
    """torch.load trusts the sizes a zip declares: a compressed entry or one declaring more bytes than the file
    holds is refused before torch reads anything."""
    import zipfile

    import torch

    torch.save(state_dict(), tmp_path / "good.pt")
    with zipfile.ZipFile(tmp_path / "good.pt") as source, \
            zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    loader["load_submitted_model"](tmp_path / "good.pt")
    with pytest.raises(ValueError, match=r"not laid out the way torch\.save writes"):
        loader["load_submitted_model"](tmp_path / "deflated.pt")
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr("archive/data/0", b"\0" * 50_000_000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"not laid out the way torch\.save writes"):
        loader["load_submitted_model"](bomb)


def test_loader_refuses_sizes_beyond_what_the_grader_accepts(loader, tmp_path):
    import torch

    torch.save(state_dict(rnn_size=1100, num_layers=1), tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="rnn_size 1100 is above"):
        loader["load_submitted_model"](tmp_path / "wide.pt")
    torch.save(state_dict(num_layers=5), tmp_path / "deep.pt")
    with pytest.raises(ValueError, match="5 recurrent layers"):
        loader["load_submitted_model"](tmp_path / "deep.pt")


# --------------------------------------------------------------------------------------------------
# The "try your own surname" cell
# --------------------------------------------------------------------------------------------------

LATIN_NAMES = ["Pérez", "Müller", "Ó Briain", "Hämäläinen", "Żółć", "St-Onge", "  van  der   Linden ", "Groß",
               "Łukasiewicz", "Dvořák", "Ørsted", "Þórsson", "Çelik", "Ðorđević", "Æbelø", "CHEN"]


def test_typed_latin_names_are_folded_as_the_data_set_was(loader):
    from assignkit.surnames.normalize import normalize_name

    assert [loader["fold_name"](name) for name in LATIN_NAMES] == [normalize_name(name) for name in LATIN_NAMES]
    assert loader["fold_name"]("o'neill") == "O'Neill"  # typed in lower case: capital initials


def test_top3_prediction_and_clear_messages_for_bad_input(loader):
    model = loader["RecurrentClassifier"](58, 4, 18, model_type="gru").eval()
    name, top = loader["predict_languages"](model, "fitzgerald-smith")
    assert name == "Fitzgerald Smith" and len(top) == 3
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    assert {language for language, _ in top} <= set(loader["LANGUAGES"])
    bad = {"": "Type a surname first", "   ": "Type a surname first", "1234": "contains no letters",
           "Иванов": "Latin letters", "Smith2": "cannot read: 2", "Wolfeschlegelsteinhausen": "at most 20"}
    for text, message in bad.items():
        with pytest.raises(ValueError, match=message):
            loader["predict_languages"](model, text)
        assert message in loader["describe_prediction"](model, text)


# --------------------------------------------------------------------------------------------------
# No hidden test name in anything students or TAs get
# --------------------------------------------------------------------------------------------------


def _fields(text: str) -> set:
    """Every line, and every tab/comma/semicolon/pipe-separated field, and every quoted string of ``text``."""
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    out = set(re.findall(r"'([^'\n]{1,40})'", text)) | set(re.findall(r'"([^"\n]{1,40})"', text))
    for line in text.split("\n"):
        out.add(line.strip().strip("\"'"))
        out.update(field.strip().strip("\"'") for field in re.split(r"[\t,;|]", line))
    return out


def test_no_hidden_name_in_the_built_release_or_solutions(fast_build):
    """Extends the dataset test (which scans the repository's trees) to what a build produces: the release
    with its public goldens and data, and the executed solutions with their outputs, log and HTML."""
    hidden = {row[0] for row in hidden_rows(fast_build)} - generated_names(fast_build)
    leaks = []
    for tree in ("release", "solutions"):
        for path in sorted((fast_build / tree).rglob("*")):
            if path.is_file() and path.suffix in {".ipynb", ".json", ".html", ".tsv", ".txt", ".md", ".py"}:
                found = hidden & _fields(path.read_text(encoding="utf-8", errors="replace"))
                leaks += [f"{path.relative_to(fast_build)}: {name}" for name in sorted(found)[:5]]
    assert not leaks, "hidden test names in built files:\n" + "\n".join(leaks)
    public = set()
    for name in ("surnames_train.tsv", "surnames_test_public.tsv"):
        public |= {line.split("\t")[0] for line in
                   (fast_build / "release" / "hw_rnn" / "data" / name).read_text(encoding="utf-8").splitlines()[1:]}
    assert not {name.lower() for name in hidden} & {name.lower() for name in public}
