"""Per-student variants of q_written's typed answers (variants.py, the referee's keys, the identity check).

500 random student IDs each get a valid variant (the constraints that keep each question's point hold) and most
pairs of students get different answers. Then the real grader, on q_written alone: a student's correct answers
for their own numbers earn every typed point; the same answers handed in under another student's ID (another
variant) earn none of the variant-dependent points; an ID that is not the submitter's earns no typed point.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import random
import string
import sys
from pathlib import Path
from typing import Any, Dict

import grading_fixtures
import pytest
from grading_fixtures import NEEDS_ROOT, read_notebook, replace_cell, write_submission

from assignkit.grading import identity

SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"
DEFAULT_TREE = json.loads((SOURCE / "data" / "beam_tree.json").read_text(encoding="utf-8"))
WRITTEN_NB = "q_written.ipynb"
TYPED_BACKPROP = ("test_backprop_t", "test_backprop_y", "test_backprop_dy_dw")
TYPED_EDGES = ("test_backprop_edge_q", "test_backprop_edge_s", "test_backprop_edge_y")
TYPED_BEAMS = ("test_beam_t1", "test_beam_t2", "test_beam_t3")
course = grading_fixtures.course
built_bundle = grading_fixtures.built_bundle
sandbox_user = grading_fixtures.sandbox_user


@pytest.fixture(scope="module")
def variants() -> Any:
    spec = importlib.util.spec_from_file_location("variants_under_test", SOURCE / "variants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def random_ids(count: int, seed: int = 7) -> list:
    rng = random.Random(seed)
    ids = []
    for _ in range(count):
        if rng.random() < 0.3:
            ids.append("".join(rng.choice(string.ascii_lowercase) for _ in range(6)) + "@uni.edu")
        else:
            ids.append(rng.choice(string.ascii_lowercase) + "".join(rng.choice(string.digits) for _ in range(7)))
    return ids


def answers_for(variants: Any, variant: Any) -> Dict[str, Any]:
    """The correct typed answers of a variant: the staff's key (``assignkit.variant_key``), whose formulas
    ``test_the_staff_key_is_the_unrolled_recurrence`` checks against sympy."""
    from assignkit.variant_key import key_of

    key = key_of(variant.student_id)
    return {name: key[name] for name in ("answer_t", "answer_y", "answer_dy_dw", "answer_edge_q", "answer_edge_s",
                                         "answer_edge_y", "beam_t1", "beam_t2", "beam_t3")}


def test_the_staff_key_is_the_unrolled_recurrence(variants):
    """``python -m assignkit.variant_key ID`` prints a student's key; its formulas are those of
    h_k = w (a u_k + b h_(k-1)) unrolled here with sympy, and its beams are an exhaustive search's."""
    import sympy

    from assignkit.variant_key import key_of, main

    w, u1, u2, u3 = sympy.symbols("w u1 u2 u3")
    for student in ["", *random_ids(12, seed=3)]:
        variant = variants.for_student(student, DEFAULT_TREE)
        a, b = variant.input_gain, variant.recurrent_gain
        h = sympy.Integer(0)
        states = []
        for u in (u1, u2, u3):
            h = sympy.expand(w * (a * u + b * h))
            states.append(h)
        key = key_of(student)
        parse = sympy.sympify
        assert sympy.expand(parse(key["answer_y"].replace("^", "**")) - states[-1]) == 0
        assert sympy.expand(parse(key["answer_t"].replace("^", "**")) - states[-1] / w) == 0
        assert sympy.expand(parse(key["answer_dy_dw"].replace("^", "**")) - sympy.diff(states[-1], w)) == 0
        w_q, w_s, w_y = sympy.symbols("w_q w_s w_y")  # one copy of w per edge: its derivative is the edge's term
        y_of_copies = w_y * (a * u3 + b * w_s * (a * u2 + b * w_q * a * u1))
        for name, edge in (("q", w_q), ("s", w_s), ("y", w_y)):
            term = sympy.diff(y_of_copies, edge).subs({w_q: w, w_s: w, w_y: w})
            assert sympy.expand(parse(key[f"answer_edge_{name}"].replace("^", "**")) - term) == 0, (student, name)
        table = variant.beam_tree["next_token_log_probs"]
        everything = {seq: sum(table[" ".join(seq[:i])][t] for i, t in enumerate(seq))
                      for seq in itertools.product(variant.beam_tree["vocabulary"], repeat=3)}
        best = max(everything, key=everything.get)
        assert key["beam_t3"][0][0] != " ".join(best)  # 2.4: the beam misses the most likely sequence
    assert main(["a1234567"]) == 0


def test_five_hundred_ids_give_valid_and_mostly_different_variants(variants):
    keys = []
    for student in random_ids(500):
        assert variants.id_problem(student) is None, student
        variant = variants.for_student(student, DEFAULT_TREE)
        assert variant.student_id == student and not variant.is_default
        assert variants.tree_problems(variant.beam_tree) == [], student  # 2.4's point holds, no close ties
        assert variant.input_gain in variants.INPUT_GAINS and variant.recurrent_gain in variants.RECURRENT_GAINS
        beams = variants.beams(variant.beam_tree)
        assert len({sequence for step in beams for sequence, _ in step}) == 6  # no two parts coincide
        keys.append(json.dumps(answers_for(variants, variant), sort_keys=True))
        assert variants.for_student(student.upper() + " ", DEFAULT_TREE) == variant  # the same ID, typed otherwise
    same = sum(first == second for first, second in itertools.combinations(keys, 2))
    assert same / (500 * 499 / 2) < 0.005, same
    assert len(set(keys)) >= 490


def test_the_default_variant_is_the_courses_question_and_the_solutions_answer_it(variants):
    default = variants.for_student("", DEFAULT_TREE)
    assert default.is_default and (default.input_gain, default.recurrent_gain) == (1, 1)
    assert default.beam_tree["next_token_log_probs"] == DEFAULT_TREE["next_token_log_probs"]
    master = json.loads((SOURCE / WRITTEN_NB).read_text(encoding="utf-8"))
    cells = {(c["metadata"].get("nbgrader") or {}).get("grade_id"): "".join(c["source"]) for c in master["cells"]}
    expected = answers_for(variants, default)
    for step in (1, 2, 3):
        solution = cells[f"beam_t{step}"].split("### BEGIN SOLUTION\n")[1].split("\n### END SOLUTION")[0]
        assert sorted(eval(solution.split("=", 1)[1])) == sorted(expected[f"beam_t{step}"])
    assert variants.intermediates(default) == {"p": "u1", "q": "w*p", "r": "u2 + q", "s": "w*r", "t": "u3 + s"}
    assert variants.intermediates(variants.Variant("x", 2, -3, {})) == {
        "p": "2*u1", "q": "w*p", "r": "2*u2 - 3*q", "s": "w*r", "t": "2*u3 - 3*s"}


@pytest.mark.parametrize(("typed", "fragment"), [
    ("", "is empty"), ("   ", "is empty"), ("a b", "letters, digits"), ("x" * 100, "at most 80"),
    ("jane@mail", "not a complete e-mail address"), (12345, "must be a string"),
])
def test_a_missing_or_malformed_id_says_what_to_fix(variants, typed, fragment):
    """Only a missing ID selects the default variant (the solutions' key): an unusual one that Gradescope may
    still hold for a student (found by a red team: "o'brien@uni.edu", a 94-character address) draws its own."""
    assert fragment in variants.id_problem(typed)
    assert variants.for_student(typed, DEFAULT_TREE).is_default == (not isinstance(typed, str) or not typed.strip())


@pytest.mark.parametrize("typed", ["o'brien@uni.edu", "mallory.the.student.with.a.rather.long.mailbox.name@students."
                                   "department.example-university.edu", "jörg@uni.de", "a b"])
def test_an_unusual_id_draws_numbers_of_its_own_not_the_published_key(variants, typed):
    assert variants.id_problem(typed) is not None
    variant = variants.for_student(typed, DEFAULT_TREE)
    default = variants.for_student("", DEFAULT_TREE)
    assert not variant.is_default and variant.student_id == variants.normalise_id(typed)
    assert variants.tree_problems(variant.beam_tree) == []
    assert (variant.input_gain, variant.recurrent_gain, variant.beam_tree) != (1, 1, default.beam_tree)


def test_the_grader_and_the_notebook_normalise_ids_alike(variants):
    for raw in ("Jane.Doe@Uni.EDU ", "Ａ１２３４５６７", "a1234567"):
        assert identity.normalise(raw) == variants.normalise_id(raw)


def test_identity_verdicts(tmp_path):
    from assignkit.grading.scoring import load_hwcheck

    hwcheck = load_hwcheck(SOURCE / "hwcheck.py")
    notebook = tmp_path / "q_written.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": 'STUDENT_ID = "A123"'}]}))
    assert identity.judge(notebook, None, hwcheck).ok  # nobody to compare with: not checked
    assert identity.judge(notebook, ["a123", "x@y.org"], hwcheck).ok
    verdict = identity.judge(notebook, ["b456"], hwcheck)
    assert not verdict.ok and "not the student ID" in verdict.message and "b456" not in verdict.message
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": "STUDENT_ID = name"}]}))
    assert "is empty or cannot be read" in identity.judge(notebook, ["a123"], hwcheck).message


def test_gradescope_metadata_and_roster(tmp_path):
    metadata = tmp_path / "submission_metadata.json"
    metadata.write_text(json.dumps({"users": [{"email": "Jane@Uni.edu", "sid": "A123", "name": "Jane"},
                                              {"email": "bob@uni.edu", "sid": None}]}))
    assert identity.gradescope_submitters(metadata) == ["a123", "jane@uni.edu", "bob@uni.edu"]
    metadata.write_text("[1, 2")
    assert identity.gradescope_submitters(metadata) is None
    assert identity.gradescope_submitters(tmp_path / "missing.json") is None
    roster = tmp_path / "roster.csv"
    roster.write_text("submission,student_id\nsub1,A123\nsub1,b@x.org\nsub2, C9 \n")
    assert identity.read_roster(roster) == {"sub1": ["a123", "b@x.org"], "sub2": ["c9"]}


# -- the real grader, on q_written alone ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def solution(fast_build: Path) -> Dict[str, Any]:
    return read_notebook(fast_build / "solutions" / "hw_rnn" / WRITTEN_NB)


def written_by(solution: Dict[str, Any], student: str, answers: Dict[str, Any]) -> Dict[str, Any]:
    notebook = replace_cell(copy.deepcopy(solution), "student_id", f"STUDENT_ID = {student!r}")
    for name, value in answers.items():
        notebook = replace_cell(notebook, name, f"{name} = {value!r}")
    return notebook


def typed_points(grading: Any, names: tuple) -> float:
    return round(sum(grading.checks[name].points for name in names), 4)


@NEEDS_ROOT
def test_own_answers_earn_everything_and_another_variants_answers_nothing(variants, solution, course, sandbox_user,
                                                                           tmp_path):
    from assignkit.grading.autograde import grade_submission

    me, friend = "a1234567", "b7654321"
    mine = answers_for(variants, variants.for_student(me, DEFAULT_TREE))
    theirs = answers_for(variants, variants.for_student(friend, DEFAULT_TREE))
    written = course.subset(["q_written"])

    def grade(name: str, notebook: Dict[str, Any], submitters: list) -> Any:
        folder = write_submission(tmp_path / name, {WRITTEN_NB: notebook})
        return grade_submission(written, folder, tmp_path / f"{name}-results", user=sandbox_user,
                                sweep_user=sandbox_user is not None, submitters=submitters)

    own = grade("own", written_by(solution, me, mine), [me])
    assert typed_points(own, TYPED_BACKPROP + TYPED_EDGES + TYPED_BEAMS) == 12, {
        name: own.checks[name].message for name in TYPED_BACKPROP + TYPED_BEAMS}
    copied = grade("copied", written_by(solution, me, theirs), [me])  # a friend's answers under my own ID
    assert typed_points(copied, TYPED_BACKPROP + TYPED_EDGES + TYPED_BEAMS) == 0
    borrowed = grade("borrowed", written_by(solution, friend, theirs), [me])  # the friend's ID typed by me
    assert typed_points(borrowed, TYPED_BACKPROP + TYPED_EDGES + TYPED_BEAMS) == 0
    assert "not the student ID" in borrowed.checks["test_beam_t1"].message
    log = json.loads((tmp_path / "borrowed-results" / "submission_log.json").read_text(encoding="utf-8"))
    assert log["identity"]["q_written"] == {"typed": friend, "checked": True, "matches": False}
    results = json.loads((tmp_path / "borrowed-results" / "results.json").read_text(encoding="utf-8"))
    assert "not the student ID" in results["output"]
    assert borrowed.checks["test_beam_search_hidden"].points == own.checks["test_beam_search_hidden"].points > 0


@NEEDS_ROOT
def test_no_published_result_ever_holds_typed_points_for_someone_elses_id(variants, solution, course, sandbox_user,
                                                                           tmp_path, monkeypatch):
    """A grading cut short (a time-out, a kill) leaves its last published results.json: the identity is judged
    before any notebook is graded, so none of them holds a friend's typed points (found by a red team: they were
    taken away only after the last notebook)."""
    from assignkit.grading import autograde

    me, friend = "m7654321", "a1234567"
    notebook = written_by(solution, friend, answers_for(variants, variants.for_student(friend, DEFAULT_TREE)))
    folder = write_submission(tmp_path / "friend", {WRITTEN_NB: notebook})
    published = []
    publish = autograde.Grading.publish

    def recording(self: Any) -> None:
        publish(self)
        published.append(typed_points(self, tuple(name for name in TYPED_BACKPROP + TYPED_EDGES + TYPED_BEAMS
                                                  if name in self.checks)))

    monkeypatch.setattr(autograde.Grading, "publish", recording)
    grading = autograde.grade_submission(course.subset(["q_written"]), folder, tmp_path / "results",
                                         user=sandbox_user, sweep_user=sandbox_user is not None, submitters=[me])
    assert len(published) > 3 and set(published) == {0}
    assert all(grading.checks[name].points == 0 and "not the student ID" in grading.checks[name].message
               for name in TYPED_BACKPROP + TYPED_EDGES + TYPED_BEAMS)
