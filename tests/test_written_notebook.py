"""q_written: the written-questions notebook grades as intended, and its beam-search data matches the course.

The grading tests edit answer cells of the fast build's solution notebook the way a student might get
them wrong, grade the result through the sandboxed runner, and expect exactly the edited parts to lose
their points. The data test replays the course's worked beam-search solution on the stored tree.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from notebook_grading import grade_notebook

from assignkit.grading.scoring import load_hwcheck

pytestmark = pytest.mark.xdist_group("q_written")  # one worker grades the variants once (module fixture `graded`)

ROOT = Path(__file__).resolve().parents[1]
TREE_FILE = ROOT / "source" / "hw_rnn" / "data" / "beam_tree.json"
NOTEBOOK = "q_written"

# The course's worked solution (REFERENCE.md §5, from the midterm-review seed): the specification the
# stored tree must reproduce. This is the only place these numbers are typed.
SEED_KEPT = {
    1: [("neural", -0.65), ("network", -0.73)],
    2: [("neural network", -1.25), ("network neural", -1.33)],
    3: [("neural network network", -1.85), ("network neural network", -1.93)],
}
SEED_BEST = ("neural neural neural", -1.46)
SEED_PRUNED_AT = 2
SEED_EDGES = {("neural", "neural"): -0.8, ("neural neural", "neural"): -0.01}

# Edited answers, each aimed at one part. Every variant is graded once; the parts whose answers are
# not wrong must keep their full points (one bad answer costs only its own part).
UNSAFE = "__import__('os').system('touch /tmp/pwned')"
ONE_BEAM = '''def beam_search(step_log_probs, k, length):
    beams = [((), 0.0)]
    for _ in range(length):
        candidates = [(prefix + (j,), total + float(lp))
                      for prefix, total in beams for j, lp in enumerate(step_log_probs(prefix))]
        candidates.sort(key=lambda item: (-item[1], item[0]))
        beams = candidates[:1]
    return beams
'''
ASCENDING = ONE_BEAM.replace("(-item[1], item[0])", "(item[1], item[0])").replace("[:1]", "[:k]")
EXHAUSTIVE = '''def beam_search(step_log_probs, k, length):
    import itertools
    vocab_size = len(step_log_probs(()))
    scored = []
    for tokens in itertools.product(range(vocab_size), repeat=length):
        total = 0.0
        for i, token in enumerate(tokens):
            total += float(step_log_probs(tokens[:i])[token])
        scored.append((tokens, total))
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:k]  # the k best sequences: no pruning
'''
# Right answers written differently from the model answers: they must keep their points.
ACCEPTED = {
    "answer_t": 'answer_t = "t = w(w u1 + u2) + u3"',
    "answer_dy_dw": 'answer_dy_dw = "dy_dw = 3w²u1 + 2·w·u2 + u3"',
    "answer_edge_q": 'answer_edge_q = "w^2 * u1"',
    "answer_edge_s": 'answer_edge_s = "w (u2 + w u1)"',
    "beam_t2": 'beam_t2 = [(("network", "neural"), -1.33), ("Neural  Network", -1.250)]',
}
# variant -> (edited answer cells, the answer cells whose checks must fail)
VARIANTS = {
    "a": ({
        "answer_t": f"answer_t = {UNSAFE!r}",
        "answer_dy_dw": 'answer_dy_dw = "u3 + 2*w*u2"',  # the w^2 path is missing
        "answer_edge_s": 'answer_edge_s = "w*u2"',  # the path through q is missing
        "beam_t2": 'beam_t2 = [("neural network", -1.25), ("neural neural", -1.45)]',
        "beam_t3": 'beam_t3 = STAFF_BEAMS[3]  # computed, not written out: not read when grading',
        "beam_search": ONE_BEAM,
    }, {"answer_t", "answer_dy_dw", "answer_edge_s", "beam_t2", "beam_t3", "beam_search"}),
    "b": ({
        "answer_y": 'answer_y = "w*u3 + w^2*u2 + w^2*u1"',
        "answer_edge_q": 'answer_edge_q = "w*u1"',  # one factor w short
        "answer_edge_y": 'answer_edge_y = "dy_dt * t"',  # the graph's names: not allowed any more
        "beam_t1": 'beam_t1 = [("neural", 0.52), ("network", 0.48)]',  # probabilities, not log-probabilities
        "beam_t3": 'beam_t3 = [("neural neural neural", -1.46), ("neural network network", -1.85)]',
        "beam_search": ASCENDING,
    }, {"answer_y", "answer_edge_q", "answer_edge_y", "beam_t1", "beam_t3", "beam_search"}),
    "c": ({**ACCEPTED, "beam_search": EXHAUSTIVE}, {"beam_search"}),
}
CHECK_OF = {
    "answer_t": ["test_backprop_t"], "answer_y": ["test_backprop_y"], "answer_dy_dw": ["test_backprop_dy_dw"],
    "answer_edge_q": ["test_backprop_edge_q"], "answer_edge_s": ["test_backprop_edge_s"],
    "answer_edge_y": ["test_backprop_edge_y"], "beam_t1": ["test_beam_t1"], "beam_t2": ["test_beam_t2"],
    "beam_t3": ["test_beam_t3"], "beam_search": ["test_beam_search_public", "test_beam_search_hidden"],
}


# --------------------------------------------------------------------------------------------------
# The stored tree reproduces the course's numbers
# --------------------------------------------------------------------------------------------------


def ranked(tree: dict, items) -> list:
    vocab = tree["vocabulary"]
    return sorted(items, key=lambda item: (-item[1], [vocab.index(token) for token in item[0]]))


def beams_after(tree: dict, k: int, steps: int) -> list:
    """Plain beam search on the stored tree: [(tokens tuple, total), ...] kept after ``steps`` steps."""
    table = tree["next_token_log_probs"]
    beams = [((), 0.0)]
    for _ in range(steps):
        beams = ranked(tree, [((*prefix, token), total + table[" ".join(prefix)][token])
                              for prefix, total in beams for token in tree["vocabulary"]])[:k]
    return beams


def sequence_total(tree: dict, sequence: tuple) -> float:
    table = tree["next_token_log_probs"]
    return sum(table[" ".join(sequence[:i])][token] for i, token in enumerate(sequence))


def as_text(beams: list) -> list:
    return [(" ".join(tokens), round(total, 2)) for tokens, total in beams]


def test_stored_tree_reproduces_the_course_solution():
    tree = json.loads(TREE_FILE.read_text(encoding="utf-8"))
    vocab, k, length, table = tree["vocabulary"], tree["beam_size"], tree["length"], tree["next_token_log_probs"]
    assert (vocab, k, length) == (["neural", "network"], 2, 3)
    for step, kept in SEED_KEPT.items():
        assert as_text(beams_after(tree, k, step)) == kept, f"step {step}"
    everything = ranked(tree, [(s, sequence_total(tree, s)) for s in itertools.product(vocab, repeat=length)])
    assert as_text(everything[:1]) == [SEED_BEST]
    best = tuple(SEED_BEST[0].split())
    kept_prefixes = {step: [tokens for tokens, _ in beams_after(tree, k, step)] for step in range(1, length + 1)}
    assert best[:SEED_PRUNED_AT - 1] in kept_prefixes[SEED_PRUNED_AT - 1]
    assert best[:SEED_PRUNED_AT] not in kept_prefixes[SEED_PRUNED_AT]
    for (prefix, token), log_prob in SEED_EDGES.items():
        assert table[prefix][token] == log_prob


def test_stored_tree_is_a_consistent_decoder():
    tree = json.loads(TREE_FILE.read_text(encoding="utf-8"))
    vocab, length, table = tree["vocabulary"], tree["length"], tree["next_token_log_probs"]
    prefixes = {" ".join(p) for depth in range(length) for p in itertools.product(vocab, repeat=depth)}
    assert set(table) == prefixes
    for prefix, row in table.items():
        assert list(row) == vocab, prefix
        assert abs(sum(math.exp(v) for v in row.values()) - 1) < 0.005, f"probabilities after {prefix!r}"
    for prefix, token in tree["completed_edges"]:
        assert token in table[prefix]
    for depth in range(1, length + 1):  # no ties, so the expected answers do not hinge on tie-breaking
        totals = sorted(round(sequence_total(tree, s), 9) for s in itertools.product(vocab, repeat=depth))
        assert len(set(totals)) == len(totals)


# --------------------------------------------------------------------------------------------------
# Grading through the sandboxed runner
# --------------------------------------------------------------------------------------------------


def set_answer(notebook: dict, grade_id: str, source: str) -> None:
    for cell in notebook["cells"]:
        if (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id") == grade_id:
            cell["source"] = source
            return
    raise AssertionError(f"no cell {grade_id}")


def grade(fast_build: Path, notebook: dict, workdir: Path) -> dict:
    return grade_notebook(fast_build, NOTEBOOK, notebook, workdir)


@pytest.fixture(scope="module")
def graded(fast_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Results of the solution, the blank release and every wrong-answer variant.

    Graded one after the other: scoring loads ``safe_expr`` lazily into ``sys.modules``, which is not
    safe to do from several threads at once.
    """
    solution = json.loads((fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text())
    notebooks = {
        "solution": solution,
        "release": json.loads((fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text()),
    }
    for name, (answers, _) in VARIANTS.items():
        notebook = json.loads(json.dumps(solution))
        for grade_id, source in answers.items():
            set_answer(notebook, grade_id, source)
        notebooks[name] = notebook
    base = tmp_path_factory.mktemp("written")
    return {name: grade(fast_build, notebook, base / name) for name, notebook in notebooks.items()}


def test_solution_gets_every_automatic_point(graded):
    results = graded["solution"]
    assert {name: r.message for name, r in results.items() if not r.passed} == {}
    assert sum(r.points for r in results.values()) == sum(r.max_points for r in results.values()) > 0


def test_blank_release_gets_nothing(graded):
    results = graded["release"]
    assert {name: r.points for name, r in results.items() if r.points} == {}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_wrong_answers_lose_exactly_their_parts(graded, variant):
    results = graded[variant]
    expected_failures = {check for grade_id in VARIANTS[variant][1] for check in CHECK_OF[grade_id]}
    failed = {name for name, r in results.items() if not r.passed}
    assert failed == expected_failures, {name: results[name].message for name in failed ^ expected_failures}
    assert all(results[name].points == 0 for name in expected_failures)


def test_unsafe_answer_gets_a_clear_message_and_nothing_runs(graded):
    result = graded["a"]["test_backprop_t"]
    assert result.points == 0
    assert "unknown name '__import__'" in result.message
    assert not Path("/tmp/pwned").exists()


def test_a_computed_answer_is_not_run_and_says_how_to_write_it(graded):
    result = graded["a"]["test_beam_t3"]
    assert result.points == 0 and "must be written out as a literal value" in result.message


def test_grader_side_comparison_explains_unreadable_answers(fast_build, all_goldens):
    """Even if a submission skips its own parse check, the trusted comparison rejects the text clearly."""
    hwcheck = load_hwcheck(fast_build / "source" / "hw_rnn" / "hwcheck.py")
    golden = all_goldens["test_backprop_t"]
    fraction, problems, _ = hwcheck.evaluate({"answer_t": hwcheck.encode(UNSAFE)}, golden, reveal=False)
    assert fraction == 0
    assert problems == ["answer_t: unknown name '__import__' (at position 1)"]
    fraction, problems, _ = hwcheck.evaluate({"answer_t": hwcheck.encode("t = w^2 u1 + u3 + u2 w")}, golden)
    assert (fraction, problems) == (1.0, [])


def test_solutions_show_the_figures_and_computed_model_answers(fast_build):
    notebook = json.loads((fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text())
    outputs = [output for cell in notebook["cells"] for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 2
    printed = "".join("".join(output.get("text", "")) for output in outputs)
    tree = json.loads(TREE_FILE.read_text(encoding="utf-8"))
    for step in SEED_KEPT:  # the model answers of 2.1-2.3 are printed from the staff beam search
        assert str(as_text(beams_after(tree, tree["beam_size"], step))) in printed
    assert f"the most likely sequence is {SEED_BEST[0]!r}" in printed
    assert (fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.html").exists()


def _helpers(fast_build: Path) -> dict:
    """The release's given helper cells of q_written, run in a namespace of their own."""
    notebook = json.loads((fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text())
    cells = {(c["metadata"].get("nbgrader") or {}).get("grade_id"): "".join(c["source"]) for c in notebook["cells"]}
    tree = json.loads(TREE_FILE.read_text(encoding="utf-8"))
    variants = __import__("variants")
    namespace = {"math": math, "BEAM_TREE": tree, "VOCAB": tree["vocabulary"], "safe_expr": __import__("safe_expr"),
                 "variants": variants, "VARIANT": variants.for_student("", tree)}
    for grade_id in ("expression_helpers", "beam_helpers"):
        exec(compile(cells[grade_id], grade_id, "exec"), namespace)
    return namespace


def test_format_checks_say_what_a_well_formed_answer_looks_like(fast_build, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(fast_build / "release" / "hw_rnn"))
    helpers = _helpers(fast_build)
    helpers["beam_t2"] = [("neural network", 1.25), ("network neural", -1.33)]
    assert not helpers["show_beam_format"]("beam_t2", 2)
    printed = capsys.readouterr().out
    assert "'neural network' has log-probability 1.25, but a log-probability is never above 0" in printed
    helpers["beam_t1"] = "neural -0.65"
    helpers["show_beam_format"]("beam_t1", 1)
    expected = 'a well-formed answer is a list of pairs, shaped like beam_t1 = [("word word", -1.5)'
    assert expected in capsys.readouterr().out
    helpers["answer_y"] = "w*u4"
    helpers["show_expression_format"]("answer_y")
    printed = capsys.readouterr().out
    assert 'shaped like answer_y = "2*w*u1 + u3^2"' in printed and "do not compute it" in printed
