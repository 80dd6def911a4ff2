"""Per-student variants of the typed answers of q_written (backpropagation through time and beam search by hand).

Each student's numbers are drawn from their student ID, deterministically and without any secret, so the notebook
can show them and the grader can recompute them; two students with different IDs (almost always) get different
answers, so a copied answer is worth nothing. What varies:

* Part 1: the linear RNN ``h_k = w (a u_k + b h_{k-1})`` with an input gain ``a`` and a recurrent gain ``b``
  (the course's question is ``a = b = 1``, the default variant);
* Part 2: the decoder's next-token probabilities in the beam-search tree (same two words, length 3, beam 2).

Every variant keeps each question's point: the beam of size 2 misses the most likely sequence (2.4), no two
sequences of one length tie or come within 0.02 of each other (every ranking is clear after rounding to two
decimals), and every probability is a round number (two decimals of its natural log on the figure).

Standard library only (it runs in the grader on Python 3.10).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

VERSION = "hw_rnn variants 1"
"""Part of every variant's seed: changing it gives every student new numbers (do it between terms, not during)."""
MAX_ID_LENGTH = 80
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._+@-]*")
INPUT_GAINS = (2, 3, 4, 5)
RECURRENT_GAINS = (-3, -2, 2, 3)
PROBABILITIES = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
                 0.9, 0.95, 0.99)
"""The probability of the first word at a node; the second word gets the rest."""
MIN_GAP = 0.02
"""Smallest gap between the totals of two sequences of one length (natural log; the course's own tree has 0.02), so
that the ranking is clear from the two-decimal numbers on the figure."""
MAX_TRIES = 20_000


def normalise_id(raw: Any) -> str:
    """The ID as compared: Unicode-normalised (NFKC), spaces removed at both ends, lower case (e-mail addresses
    and IDs are case-insensitive here)."""
    if not isinstance(raw, str):
        return ""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def id_problem(raw: Any) -> Optional[str]:
    """What is wrong with a typed student ID, or ``None`` when it looks valid."""
    if not isinstance(raw, str):
        return f"STUDENT_ID must be a string in quotes, such as \"a1234567\", not a {type(raw).__name__}"
    text = normalise_id(raw)
    if not text:
        return "STUDENT_ID is empty: type the student ID the course uses on Gradescope (or your e-mail address)"
    if len(text) > MAX_ID_LENGTH:
        return f"STUDENT_ID is {len(text)} characters long; an ID or e-mail address has at most {MAX_ID_LENGTH}"
    if not ID_PATTERN.fullmatch(text):
        return ("STUDENT_ID may hold letters, digits and . _ + @ - only (an ID or an e-mail address), "
                f"not {raw!r:.40}")
    if "@" in text and not re.fullmatch(r"[^@]+@[^@]+\.[a-z]{2,}", text):
        return f"{raw!r:.40} is not a complete e-mail address"
    return None


@dataclass(frozen=True)
class Variant:
    """One student's numbers: the gains of Part 1 and the beam-search tree of Part 2 (as in data/beam_tree.json)."""

    student_id: str
    input_gain: int
    recurrent_gain: int
    beam_tree: Dict[str, Any]

    @property
    def is_default(self) -> bool:
        return not self.student_id


def _rng(student_id: str, part: str) -> random.Random:
    digest = hashlib.sha256(f"{VERSION}\n{part}\n{student_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def node_log_probs(p_first: float) -> Tuple[float, float]:
    """The two next-token log-probabilities of a node, rounded to two decimals as the figure shows them."""
    return round(math.log(p_first), 2), round(math.log(1 - p_first), 2)


def prefixes(vocabulary: Sequence[str], length: int) -> List[str]:
    """Every prefix of fewer than ``length`` tokens, as the tree's keys ("" is the start)."""
    return [" ".join(prefix) for depth in range(length) for prefix in itertools.product(vocabulary, repeat=depth)]


def beams(tree: Dict[str, Any]) -> List[List[Tuple[str, float]]]:
    """The beams kept after each step (best first; ties by vocabulary order), totals rounded to two decimals."""
    vocabulary, table, k = tree["vocabulary"], tree["next_token_log_probs"], tree["beam_size"]
    kept: List[Tuple[Tuple[str, ...], float]] = [((), 0.0)]
    found = []
    for _ in range(tree["length"]):
        candidates = [((*prefix, token), total + table[" ".join(prefix)][token]) for prefix, total in kept
                      for token in vocabulary]
        candidates.sort(key=lambda item: (-item[1], [vocabulary.index(token) for token in item[0]]))
        kept = candidates[:k]
        found.append([(" ".join(prefix), round(total, 2)) for prefix, total in kept])
    return found


def _hundredths(tree: Dict[str, Any], depth: int) -> Dict[Tuple[int, ...], int]:
    """Totals of every sequence of ``depth`` tokens (as token indices), in hundredths (the tree's numbers have two
    decimals, so these sums are exact)."""
    vocabulary, table = tree["vocabulary"], tree["next_token_log_probs"]
    found = {}
    for sequence in itertools.product(range(len(vocabulary)), repeat=depth):
        found[sequence] = sum(round(100 * table[" ".join(vocabulary[t] for t in sequence[:i])][vocabulary[token]])
                              for i, token in enumerate(sequence))
    return found


def tree_problems(tree: Dict[str, Any]) -> List[str]:
    """Why a tree would not keep the questions' point (empty when it does); :func:`draw_tree` draws until none."""
    gap = round(100 * MIN_GAP)
    for depth in range(1, tree["length"] + 1):
        last = _hundredths(tree, depth)
        values = sorted(last.values())
        if any(b - a < gap for a, b in itertools.pairwise(values)):
            return [f"two sequences of length {depth} are closer than {MIN_GAP}"]
    best = max(last, key=last.get)
    if beams(tree)[-1][0][0] == " ".join(tree["vocabulary"][t] for t in best):
        return ["the beam finds the most likely sequence (2.4 asks why it does not)"]
    problems = []
    for prefix in prefixes(tree["vocabulary"], tree["length"]):
        shares = sum(math.exp(value) for value in tree["next_token_log_probs"][prefix].values())
        if abs(shares - 1) > 0.01:
            problems.append(f"the probabilities after {prefix!r} add up to {shares:.3f}")
    return problems


def _passes_fast(nodes: Dict[Tuple[int, ...], Tuple[int, int]], length: int, beam_size: int) -> bool:
    """The gap rule and 2.4's rule of :func:`tree_problems`, fast: node values in hundredths (as
    :func:`_hundredths` has them), keyed by the word indices of their prefix. A draw checks this first and calls
    ``tree_problems`` (which has the last word) only on a tree that passes, so the tree drawn is the one
    ``tree_problems`` alone would give."""
    gap = round(100 * MIN_GAP)
    totals: Dict[Tuple[int, ...], int] = {(): 0}
    kept: List[Tuple[int, ...]] = [()]
    for _ in range(length):
        totals = {(*prefix, word): total + nodes[prefix][word] for prefix, total in totals.items() for word in (0, 1)}
        values = sorted(totals.values())
        if any(b - a < gap for a, b in itertools.pairwise(values)):
            return False
        kept = sorted(((*prefix, word) for prefix in kept for word in (0, 1)), key=totals.__getitem__,
                      reverse=True)[:beam_size]  # no ties: the gap rule holds
    return kept[0] != max(totals, key=totals.__getitem__)


def draw_tree(student_id: str, default_tree: Dict[str, Any]) -> Dict[str, Any]:
    """The beam-search tree of a (non-empty) student ID: the default tree's words, length and beam size, with
    probabilities drawn until every constraint holds."""
    rng = _rng(student_id, "beam tree")
    vocabulary = list(default_tree["vocabulary"])
    choices = [node_log_probs(p) for p in PROBABILITIES]
    hundredths = {choice: (round(100 * choice[0]), round(100 * choice[1])) for choice in choices}
    keys = prefixes(vocabulary, default_tree["length"])
    indices = {key: tuple(vocabulary.index(word) for word in key.split()) for key in keys}
    for _ in range(MAX_TRIES):
        table, nodes = {}, {}
        for prefix in keys:
            first, second = rng.choice(choices)
            table[prefix] = {vocabulary[0]: first, vocabulary[1]: second}
            nodes[indices[prefix]] = hundredths[(first, second)]
        if not _passes_fast(nodes, default_tree["length"], default_tree["beam_size"]):
            continue
        tree = {"description": default_tree.get("description", ""), "vocabulary": vocabulary,
                "beam_size": default_tree["beam_size"], "length": default_tree["length"],
                "next_token_log_probs": table}
        if not tree_problems(tree):
            return tree
    raise RuntimeError(f"no valid beam tree after {MAX_TRIES} tries")  # never seen; a test draws 500 IDs


def for_student(raw_id: Any, default_tree: Dict[str, Any]) -> Variant:
    """The variant of a typed student ID. Only an empty ID (or a value that is not a string) gives the default
    variant, the course's numbers, whose key the solutions print: the grader gives its typed answers nothing
    whenever it can check the ID. Any other ID draws numbers of its own, also one that :func:`id_problem` finds
    unusual (the notebook says so): an address with an apostrophe that Gradescope accepts must not select the
    published key."""
    student_id = normalise_id(raw_id)
    if not student_id:
        tree = {key: default_tree[key] for key in ("description", "vocabulary", "beam_size", "length",
                                                   "next_token_log_probs") if key in default_tree}
        return Variant("", 1, 1, tree)
    rng = _rng(student_id, "linear rnn")
    return Variant(student_id, rng.choice(INPUT_GAINS), rng.choice(RECURRENT_GAINS),
                   draw_tree(student_id, default_tree))


def describe(variant: Variant) -> str:
    """One line for the notebook: the recurrence of Part 1 with the student's gains."""
    a, b = variant.input_gain, variant.recurrent_gain
    inner = ("u_k" if a == 1 else f"{a}\\,u_k") + (" + " if b > 0 else " - ") + (
        "h_{k-1}" if abs(b) == 1 else f"{abs(b)}\\,h_{{k-1}}")
    return f"h_k = w\\,({inner})"


def _term(coefficient: int, name: str, first: bool) -> str:
    """``coefficient*name`` as a term of a sum (``u2``, ``2*u2``, `` - 3*q``, `` + q``)."""
    magnitude = abs(coefficient)
    body = name if magnitude == 1 else f"{magnitude}*{name}"
    if first:
        return body if coefficient > 0 else f"-{body}"
    return f" + {body}" if coefficient > 0 else f" - {body}"


def intermediates(variant: Variant) -> Dict[str, str]:
    """The unrolled graph of Part 1 for this variant, as formulas the typed answers may use:
    ``{"p": "2*u1", "q": "w*p", "r": "2*u2 - 3*q", "s": "w*r", "t": "2*u3 - 3*s"}`` (``y = w*t``)."""
    a, b = variant.input_gain, variant.recurrent_gain
    return {"p": _term(a, "u1", True), "q": "w*p", "r": _term(a, "u2", True) + _term(b, "q", False), "s": "w*r",
            "t": _term(a, "u3", True) + _term(b, "s", False)}
