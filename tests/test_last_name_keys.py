"""q_rnn_last_name 2.D and 2.E: the model answers say what the staff run and the data say.

The model answers of 2.D.1 (learning curves), 2.D.2 (easy and hard languages) and 2.E (misuse) state numbers and
comparisons about the staff run: the model trained with the default settings by the release build, committed as
``solutions/hw_rnn/surname_model.pt`` with its ``submission_log.json``. These tests read the claims from the master,
recompute each one from that model, that log and the data with code of their own, and compare. The fast build
(one epoch) checks the notebook's own machinery: the history it records and the staff cell that prints the same
facts for whatever run it is in.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from pathlib import Path

import pytest
from key_text import ROOT, close_to_claim, find, master_cell, percent, printed, table_rows

NOTEBOOK = "q_rnn_last_name"
SOURCE = ROOT / "source" / "hw_rnn"
STAFF_RUN = ROOT / "solutions" / "hw_rnn"
HIDDEN = ROOT / "autograder" / "hidden_data" / "surnames_test_hidden.tsv"
# The cues of the answer's table, as the words in its "cue" column describe them.
CUES = {
    "Russian": r"(ov|ova|ev|eva|in|ina)$",
    "Armenian": r"yan$",
    "Japanese": r"^(?:(?:[kgsztdnhbpmrw]y?|sh|ch|ts|j|f|y)?[aeiou]|n)+$",
    "Irish": r" ",
}


def key(grade_id: str) -> str:
    return master_cell(NOTEBOOK, grade_id)


def namespace_of(source_dir: Path) -> dict:
    """The master's given and solution code (no training) run inside ``source_dir``."""
    import torch

    from assignkit.bench import master_namespace

    threads, previous = torch.get_num_threads(), Path.cwd()
    os.chdir(source_dir)
    try:
        namespace = master_namespace(source_dir / f"{NOTEBOOK}.ipynb")
    finally:
        os.chdir(previous)
        torch.set_num_threads(threads)
    return namespace


def logits_of(model, names, dropout_on=False):
    """Logits of ``names`` in their order, computed one name length at a time (no padding at all), one thread;
    dropout (when on) seeded."""
    import torch

    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;'"
    logits = torch.zeros(len(names), model.n_categories)
    by_length = {}
    for row, name in enumerate(names):
        by_length.setdefault(len(name), []).append(row)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model.train(dropout_on)
            with torch.no_grad():
                for length, rows in sorted(by_length.items()):
                    tokens = torch.tensor([[alphabet.index(letter) for letter in names[row]] for row in rows])
                    logits[rows] = model(tokens, torch.full((len(rows),), length - 1))
            model.eval()
    finally:
        torch.set_num_threads(threads)
    return logits


class Run:
    """A trained model with the master's data: losses, accuracies, per-language accuracy and confusions."""

    def __init__(self, namespace: dict, weights: Path):
        import torch

        self.ns = namespace
        self.languages = namespace["LANGUAGES"]
        self.hparams = namespace["HPARAMS"]
        self.model = namespace["build_classifier"](self.hparams)  # with the default dropout, for "dropout on"
        self.model.load_state_dict(torch.load(weights, weights_only=True))
        self.model.eval()
        self.train = (namespace["train_names"], namespace["train_languages"])
        self.test = (namespace["test_names"], namespace["test_languages"])
        self._logits = {}

    def logits(self, names, dropout_on=False):
        """Logits of a list of names, computed once per list (and dropout setting)."""
        key = (tuple(names), dropout_on)
        if key not in self._logits:
            self._logits[key] = logits_of(self.model, names, dropout_on)
        return self._logits[key]

    def labels(self, split):
        import torch

        return torch.tensor([self.languages.index(language) for language in split[1]])

    def loss(self, split, smoothing=0.0, dropout_on=False):
        import torch

        return torch.nn.functional.cross_entropy(self.logits(split[0], dropout_on), self.labels(split),
                                                 label_smoothing=smoothing).item()

    def predictions(self, names):
        return self.logits(names).argmax(dim=-1)

    def accuracy(self, split):
        return (self.predictions(split[0]) == self.labels(split)).double().mean().item()

    def confusion(self):
        import torch

        matrix = torch.zeros(len(self.languages), len(self.languages))
        matrix.index_put_((self.labels(self.test), self.predictions(self.test[0])), torch.ones(len(self.test[0])),
                          accumulate=True)
        return matrix

    def per_language(self):
        matrix = self.confusion()
        return {language: float(matrix[i, i] / matrix[i].sum()) for i, language in enumerate(self.languages)}

    def errors_to(self, language):
        row = self.confusion()[self.languages.index(language)].clone()
        row[self.languages.index(language)] = 0
        return {self.languages[j]: float(row[j] / row.sum()) for j in range(len(self.languages)) if row[j] > 0}

    def share_as(self, names, language):
        return (self.predictions(names) == self.languages.index(language)).double().mean().item()


@pytest.fixture(scope="module")
def staff_run() -> tuple:
    """(Run of the committed full-build model, its submission log); the log must be the default staff run."""
    log = json.loads((STAFF_RUN / "submission_log.json").read_text(encoding="utf-8"))
    run = Run(namespace_of(SOURCE), STAFF_RUN / "surname_model.pt")
    assert log["short_run"] is False and log["hyperparameters"] == run.hparams, \
        "solutions/ is not the release build of the current master: rebuild it (make release)"
    return run, log


# --------------------------------------------------------------------------------------------------
# 2.D.1: the learning curves
# --------------------------------------------------------------------------------------------------


def test_curves_key_explains_the_gap_with_the_runs_own_numbers(staff_run):
    import torch
    from key_text import latex_to_sympy, value

    run, log = staff_run
    text = key("written_curves")
    formula, floor_claim, eps, classes = find(
        r"that minimum is the target's entropy,\s*\$(.+?)\$,\s*about \*\*([0-9.]+) nats\*\* for "
        r"\$\\varepsilon = ([0-9.]+)\$, \$C = (\d+)\$", text)
    assert float(eps) == run.hparams["label_smoothing"] and int(classes) == len(run.languages)
    floor = value(latex_to_sympy(formula, ["eps", "C"], [(r"\varepsilon", "eps")]), eps=float(eps), C=int(classes))
    target = torch.full((int(classes),), float(eps) / int(classes), dtype=torch.float64)
    target[0] += 1 - float(eps)
    assert math.isclose(floor, float(-(target * target.log()).sum()), rel_tol=1e-12)
    smoothed = torch.nn.functional.cross_entropy  # the loss the training minimises
    assert math.isclose(smoothed(target.log()[None], torch.tensor([0]), label_smoothing=float(eps)).item(), floor,
                        rel_tol=1e-12)
    random_logits = 5 * torch.randn(5000, int(classes), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert smoothed(random_logits, torch.zeros(5000, dtype=torch.long), reduction="none",
                    label_smoothing=float(eps)).min().item() >= floor
    assert close_to_claim(floor_claim, floor) and f"scores {floor_claim} on the smoothed loss" in text
    assert int(find(r"While training, (\d+) % of the features", text)[0]) == round(100 * run.hparams["dropout"])

    eps = run.hparams["label_smoothing"]
    rows = table_rows(text)
    measured = {
        "training names, evaluation mode": (run.loss(run.train), run.loss(run.train, eps)),
        "training names, dropout on": (None, run.loss(run.train, eps, dropout_on=True)),
        "public test names, evaluation mode": (run.loss(run.test), run.loss(run.test, eps)),
    }
    for label, (plain, with_smoothing) in measured.items():
        claimed_plain, claimed_smoothed = rows[label]
        assert (claimed_plain == "") == (plain is None)
        if plain is not None:
            assert close_to_claim(claimed_plain, plain), (label, plain)
        slack = 0.01 if "dropout" in label else 0.0  # the dropout stream may differ between torch versions
        assert abs(float(claimed_smoothed) - with_smoothing) <= 0.005 + slack, (label, with_smoothing)
    assert close_to_claim(rows["training names, dropout on"][1], log["training"]["epochs"][-1]["train_loss"])
    assert "0.84 is also what the last epoch logged" in text and rows["training names, dropout on"][1] == "0.84"
    # like with like, in either column, the training names score better
    assert measured["training names, evaluation mode"][0] < measured["public test names, evaluation mode"][0]
    assert measured["training names, evaluation mode"][1] < measured["public test names, evaluation mode"][1]
    # most of the difference is label smoothing, a small part dropout
    smoothing_part = measured["training names, evaluation mode"][1] - measured["training names, evaluation mode"][0]
    dropout_part = measured["training names, dropout on"][1] - measured["training names, evaluation mode"][1]
    assert smoothing_part > 3 * dropout_part > 0

    train_loss, train_accuracy, test_loss, test_accuracy = find(
        r"training names end at ([0-9.]+) nats and (\d+) % accuracy, the test names at ([0-9.]+) nats and (\d+) %",
        text)
    assert close_to_claim(train_loss, measured["training names, evaluation mode"][0])
    assert close_to_claim(test_loss, measured["public test names, evaluation mode"][0])
    assert close_to_claim(train_accuracy, 100 * run.accuracy(run.train))
    assert close_to_claim(test_accuracy, 100 * run.accuracy(run.test))
    assert math.isclose(run.accuracy(run.test), log["public_test_accuracy"], abs_tol=1e-9)

    first, change = find(r"From epoch (\d+) on, the test loss changes by less than ([0-9.]+) while both training\s+"
                         r"losses keep falling", text)
    epochs = log["training"]["epochs"]
    late = epochs[int(first) - 1:]
    assert max(r["test_loss"] for r in late) - min(r["test_loss"] for r in late) < float(change)
    falling = ["train_loss"] + (["train_eval_loss"] if "train_eval_loss" in late[0] else [])
    for name in falling:
        assert all(a[name] > b[name] for a, b in itertools.pairwise(late)), name
    assert "test loss does not turn upwards" in text
    assert epochs[-1]["test_loss"] - min(r["test_loss"] for r in epochs) < 0.005
    prompt = "".join(next(cell["source"] for cell in json.loads((SOURCE / f"{NOTEBOOK}.ipynb").read_text(
        encoding="utf-8"))["cells"] if cell["id"] == "cell-curves-question"))
    assert "the *as trained* loss stays above the public test loss for the whole run" in prompt
    assert all(r["train_loss"] > r["test_loss"] for r in epochs)


# --------------------------------------------------------------------------------------------------
# 2.D.2 and 2.E: easy and hard languages, and what that means
# --------------------------------------------------------------------------------------------------


def share(names, pattern):
    return sum(bool(re.search(pattern, name, re.IGNORECASE)) for name in names) / len(names)


def names_of(split, language):
    return [name for name, label in zip(*split, strict=True) if label == language]


def test_bias_key_matches_the_staff_run_and_the_data(staff_run):
    run, _ = staff_run
    text = key("written_dataset_bias")
    accuracy = run.per_language()
    ranked = sorted(run.languages, key=lambda language: -accuracy[language])

    *easiest, above = find(r"the four easiest languages are (\w+), (\w+), (\w+) and (\w+),\s+each recognised above "
                           r"(\d+) %", text)
    assert set(easiest) == set(ranked[:4]) and min(accuracy[x] for x in easiest) > int(above) / 100
    *hardest, below = find(r"the three hardest are (\w+), (\w+) and (\w+),\s+each below (\d+) %", text)
    assert set(hardest) == set(ranked[-3:]) and max(accuracy[x] for x in hardest) < int(below) / 100
    half, never = find(r"\((\w+) names are misclassified about half of the time, (\w+) ones almost never\)", text)
    assert 0.4 <= 1 - accuracy[half] <= 0.6 and 1 - accuracy[never] <= 0.05
    pairs = find(r"most\s+frequent confusions are (\w+) names taken for (\w+) and (\w+) names taken for (\w+)", text)
    matrix = run.confusion().fill_diagonal_(0)
    top = sorted(((float(matrix[i, j]), run.languages[i], run.languages[j]) for i in range(len(run.languages))
                  for j in range(len(run.languages))), reverse=True)[:2]
    assert [(a, b) for _, a, b in top] == [pairs[:2], pairs[2:]]

    rows = {language: cells for language, cells in table_rows(text).items() if language in run.languages}
    assert set(rows) == set(CUES), "every row of the cue table has its cue here"
    for language, (_, own, others) in rows.items():
        other_names = [name for name, label in zip(*run.train, strict=True) if label != language]
        for claimed, names in ((own, names_of(run.train, language)), (others, other_names)):
            claimed_percent, tolerance = percent(claimed)
            assert abs(claimed_percent - 100 * share(names, CUES[language])) <= tolerance, (language, claimed)

    everything = (run.train[0] + run.test[0], run.train[1] + run.test[1])
    assert "The Russian list only holds names\nwith the common -ov/-ev/-in endings" in text
    assert share(names_of(everything, "Russian"), CUES["Russian"]) == 1
    assert share(names_of(everything, "Armenian"), r"ian$") == 0  # the romanisation writes -yan, never -ian
    assert share(names_of(everything, "Irish"), r"^O'") == 0  # no anglicised O' forms in the Irish class
    labelled = dict(zip(*run.train, strict=True))
    assert labelled[find(r"Irish-language forms \(\*([^*]+)\*\)", text)[0]] == "Irish"
    for name in find(r"\(\*([^*]+)\* and \*([^*]+)\* are English training names here\)", text):
        assert labelled[name] == "English", name
    spelt, respelt = find(r"\(\*(\w+)\* → \*(\w+)\*, which this data set\s+even lists as Greek\)", text)
    assert labelled[spelt] == "Armenian" and labelled[respelt] == "Greek"
    assert run.languages[int(run.predictions([spelt])[0])] == "Armenian" != run.languages[
        int(run.predictions([respelt])[0])]
    russian, respelt_russian = find(r"written \*-off/-eff\* \(\*(\w+)\* → \*(\w+)\*\)", text)
    assert dict(zip(*run.test, strict=True))[russian] == "Russian"
    assert run.languages[int(run.predictions([russian])[0])] == "Russian" != run.languages[
        int(run.predictions([respelt_russian])[0])]
    hidden = {line.split("\t")[0] for line in HIDDEN.read_text(encoding="utf-8").splitlines()[1:]}
    assert not {spelt, respelt, russian, respelt_russian, "O'Brien", "Murphy", "Mac Aodha"} & hidden

    assert "labels every public test name ending\nin *-yan* Armenian, and almost none once *-yan* is written *-ian*" \
        in text
    for language, pattern, replacement in (("Armenian", r"yan$", "ian"), ("Russian", r"(?<=[oe])v$", "ff")):
        names = [name for name in names_of(run.test, language) if re.search(pattern, name)]
        assert len(names) > 20
        assert run.share_as(names, language) == 1.0
        assert run.share_as([re.sub(pattern, replacement, name) for name in names], language) <= 0.05

    english, *english_to = find(r"most (\w+) errors go to (\w+) and (\w+)", text)
    french, *french_to = find(r"most (\w+) errors to (\w+), (\w+), (\w+) and (\w+)\.", text)
    for language, targets in ((english, english_to), (french, french_to)):
        assert sum(run.errors_to(language).get(other, 0) for other in targets) > 0.5, language
    arabic_ou, greek_ou, greek, french_ou, french_name = find(
        r"(\d+) % of them contain \*ou\*, but so\s+do (\d+) % of the (\w+) and (\d+) % of the (\w+) names", text)
    for claimed, language in ((arabic_ou, "Arabic"), (greek_ou, greek), (french_ou, french_name)):
        assert abs(int(claimed) - 100 * share(names_of(run.train, language), "ou")) <= 0.5, language
    size = int(find(r"With (\d+) training names, the second smallest class", text)[0])
    sizes = sorted((len(names_of(run.train, language)), language) for language in run.languages)
    assert sizes[1] == (size, "Arabic")
    assert "none of which takes more than a quarter" in text and max(run.errors_to("Arabic").values()) <= 0.25


def test_misuse_key_uses_the_staff_runs_per_language_errors(staff_run):
    run, _ = staff_run
    text = key("written_misuse")
    half, none = find(r"\(2\.D\.2: about half of the (\w+) names, almost none of the (\w+) ones\)", text)
    accuracy = run.per_language()
    assert 0.4 <= 1 - accuracy[half] <= 0.6 and 1 - accuracy[none] <= 0.05
    assert f"one of {len(run.languages)} languages" in text


# --------------------------------------------------------------------------------------------------
# The fast build: the history the notebook records, the staff cell's own computation, the release
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_run(fast_build) -> tuple:
    solutions = fast_build / "solutions" / "hw_rnn"
    run = Run(namespace_of(fast_build / "source" / "hw_rnn"), solutions / "surname_model.pt")
    return run, json.loads((solutions / "submission_log.json").read_text(encoding="utf-8"))


def test_history_measures_the_training_names_like_the_test_names(fast_run):
    """train_eval_* is the final model in evaluation mode with plain cross-entropy, like test_*; the given
    evaluate() (length-sorted, trimmed batches) agrees with a plain padded evaluation."""
    import torch

    run, log = fast_run
    last = log["training"]["epochs"][-1]
    for split, prefix in ((run.train, "train_eval"), (run.test, "test")):
        loss, accuracy, predictions = run.ns["evaluate"](run.model, run.ns["encode_dataset"](*split))
        assert torch.equal(predictions, run.predictions(split[0]))
        assert math.isclose(loss, run.loss(split), rel_tol=1e-5) and math.isclose(loss, last[f"{prefix}_loss"],
                                                                                   rel_tol=1e-5)
        assert math.isclose(accuracy, last[f"{prefix}_accuracy"], abs_tol=1e-12)
    assert last["train_loss"] > last["test_loss"]  # as trained (smoothing, dropout) above the test loss


def test_staff_cell_prints_what_an_independent_computation_gives(fast_build, fast_run):
    run, log = fast_run
    output = printed(fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb", "bias_scratch")
    eps = run.hparams["label_smoothing"]
    expected_rows = {
        "training names, evaluation mode": (run.loss(run.train), run.loss(run.train, eps)),
        "public test names, evaluation mode": (run.loss(run.test), run.loss(run.test, eps)),
    }
    for label, (plain, smoothed) in expected_rows.items():
        plain_printed, smoothed_printed = find(re.escape(label) + r"\s+([0-9.]+)\s+([0-9.]+)", output)
        assert close_to_claim(plain_printed, plain) and close_to_claim(smoothed_printed, smoothed), label
    accuracy = run.per_language()
    easiest = find(r"easiest: (.+)", output, 0)[0]
    hardest = find(r"hardest: (.+)", output, 0)[0]
    ranked = sorted(run.languages, key=lambda language: (-accuracy[language], language))
    assert [item.split()[0] for item in easiest.split(", ")] == ranked[:4]
    assert [item.split()[0] for item in hardest.split(", ")] == ranked[-3:]
    for item in (easiest + ", " + hardest).split(", "):
        language, shown = item.split()
        assert close_to_claim(shown.rstrip("%"), 100 * accuracy[language]), item
    for language, pattern in CUES.items():
        own = find(re.escape(language) + r"\s+cue /.+?/: ([0-9.]+)% of its training names", output)[0]
        assert close_to_claim(own, 100 * share(names_of(run.train, language), pattern)), language
    assert f"last epoch as logged: as trained {log['training']['epochs'][-1]['train_loss']:.3f}" in output


def test_staff_cell_is_scratch_space_in_the_release_and_totals_are_kept(fast_build):
    from assignkit.masters import read_master

    release = json.loads((fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    cells = {(c["metadata"].get("nbgrader") or {}).get("grade_id"): c for c in release["cells"]}
    staff = cells["bias_scratch"]
    assert {"scratch", "skip-grading"} <= set(staff["metadata"]["tags"])
    assert "pass  # (ungraded" in "".join(staff["source"]) and "CUES" not in "".join(staff["source"])
    for grade_id in ("written_curves", "written_dataset_bias"):
        assert "".join(cells[grade_id]["source"]).strip() == "YOUR ANSWER HERE"
    master = read_master(SOURCE / f"{NOTEBOOK}.ipynb")
    assert master.autograded_points == 16
    assert master.manual_points == {"written_curves": 2, "written_dataset_bias": 3, "written_misuse": 3}
