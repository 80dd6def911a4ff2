"""q_written: every model answer that states a number, a formula, a count or a comparison says what a computation says.

Each test reads a model answer from the master (its wording, a bold label, a formula after a fixed phrase; see
``key_text``), computes the same quantity independently (sympy, torch autograd, an instrumented beam search,
torch.nn.MultiheadAttention) and compares. Where an answer rests on a staff check in the master, the fast build's
solution must show that check's output. A test fails when the answer and the computation disagree, or when the
answer no longer says what the test looks for.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import math
import random
import re
from pathlib import Path

import pytest
import sympy
from key_text import ROOT, find, latex_to_sympy, master_cell, printed, value

NOTEBOOK = "q_written"
TREE = json.loads((ROOT / "source" / "hw_rnn" / "data" / "beam_tree.json").read_text(encoding="utf-8"))


def key(grade_id: str) -> str:
    return master_cell(NOTEBOOK, grade_id)


def display_math(text: str) -> list:
    return [block.strip() for block in re.findall(r"\$\$(.+?)\$\$", text, re.S)]


# --------------------------------------------------------------------------------------------------
# 1: the prompts give no graded answer away
# --------------------------------------------------------------------------------------------------

W, U1, U2, U3 = sympy.symbols("w u1 u2 u3")


def backprop_keys() -> dict:
    """t, y, dy/dw and the three edge terms of y = w (u3 + w (u2 + w u1)), derived with one copy of w per edge."""
    w_q, w_s, w_y = sympy.symbols("w_q w_s w_y")
    y_of_copies = w_y * (U3 + w_s * (U2 + w_q * U1))
    same = {w_q: W, w_s: W, w_y: W}
    y = sympy.expand(y_of_copies.subs(same))
    keys = {"t": U3 + W * U2 + W**2 * U1, "y": y, "dy_dw": sympy.diff(y, W)}
    keys.update({f"edge_{name}": sympy.expand(sympy.diff(y_of_copies, copy).subs(same))
                 for name, copy in (("q", w_q), ("s", w_s), ("y", w_y))})
    assert sympy.expand(keys["edge_q"] + keys["edge_s"] + keys["edge_y"] - keys["dy_dw"]) == 0
    return keys


def edge_keys() -> dict:
    """The answers of 1.3 (a prompt may define t and y, but must not give an edge's term)."""
    return {name: answer for name, answer in backprop_keys().items() if name.startswith("edge_")}


# the graph's names in terms of w, u1, u2, u3 (the partials of y by hand: y = w t, t = u3 + s, s = w r, ...)
GRAPH = {"p": U1, "q": W * U1, "r": U2 + W * U1, "s": W * (U2 + W * U1), "t": U3 + W * (U2 + W * U1),
         "dy_dt": W, "dy_ds": W, "dy_dr": W**2, "dy_dq": W**2, "dy_dp": W**3}
PROMPT_RENAMES = [("u_1", "u1"), ("u_2", "u2"), ("u_3", "u3"), (r"\partial y/\partial q", "dy_dq"),
                  (r"\partial y/\partial s", "dy_ds"), (r"\partial y/\partial t", "dy_dt")]


def snippets(text: str) -> list:
    """Inline math and code of a text, each side of an '=' separately."""
    found = re.findall(r"\$\$(.+?)\$\$|\$([^$]+)\$|`([^`]+)`", text, re.S)
    return [side.strip() for groups in found for snippet in groups if snippet for side in snippet.split("=")]


def giveaways(text: str, keys: dict) -> list:
    names = ["w", "u1", "u2", "u3", *GRAPH]
    found = []
    for snippet in snippets(text):
        try:
            expression = latex_to_sympy(snippet.strip('"'), names, PROMPT_RENAMES)
        except Exception:  # not a formula in these names (a word, a tuple, other symbols): nothing to give away
            continue
        if not isinstance(expression, sympy.Expr) or expression.is_number:
            continue
        expression = sympy.expand(expression.subs({sympy.Symbol(k): v for k, v in GRAPH.items()}))
        found += [f"{snippet!r} is the answer {name}" for name, answer in keys.items()
                  if sympy.expand(expression - answer) == 0]
    return found


def test_the_giveaway_scan_catches_the_old_prompt():
    old = ("For the edge into $y$ (where $y = w\\,t$) the answer is simply $t$. Give the term for each edge, "
           "written with $p, q, r, s, t$ and the partial derivatives.")
    assert giveaways(old, edge_keys()) == ["'t' is the answer edge_y"]


def test_the_edge_prompt_and_its_answer_cells_give_no_answer_away(fast_build):
    """The 1.3 prompt of the release (and the comments of its answer cells) state none of 1.1-1.3's answers."""
    release = json.loads((fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    texts, inside = [], False
    for cell in release["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and source.startswith("### 1.3"):
            inside = True
        elif cell["cell_type"] == "markdown" and source.startswith(("### 2", "## 2")):
            inside = False
        if inside and (cell["cell_type"] == "markdown" or source.lstrip().startswith("# 1.3")):
            texts.append(source)
    assert len(texts) >= 4, "the 1.3 prompt and its three answer cells were not found"
    keys = edge_keys()
    assert [found for text in texts for found in giveaways(text, keys)] == []
    worked = [line for text in texts for line in re.findall(r"answer_\w+\s*=\s*\"[^\"]+\"", text)]
    assert worked == [], f"worked answers in the 1.3 prompt: {worked}"


# --------------------------------------------------------------------------------------------------
# 2.4 and 2.5: beam search
# --------------------------------------------------------------------------------------------------


def ranked(items: list) -> list:
    return sorted(items, key=lambda item: (-item[1], item[0]))


def beam(step_log_probs, vocab_size: int, k: int, length: int) -> list:
    beams = [((), 0.0)]
    for _ in range(length):
        beams = ranked([((*prefix, j), total + step_log_probs(prefix)[j])
                        for prefix, total in beams for j in range(vocab_size)])[:k]
    return beams


def exhaustive(step_log_probs, vocab_size: int, length: int) -> list:
    return ranked([(tokens, sum(step_log_probs(tokens[:i])[token] for i, token in enumerate(tokens)))
                   for tokens in itertools.product(range(vocab_size), repeat=length)])


def tree_decoder():
    vocab, table = TREE["vocabulary"], TREE["next_token_log_probs"]
    return lambda prefix: [table[" ".join(vocab[i] for i in prefix)][word] for word in vocab]


def random_decoder(vocab_size: int, seed: int):
    @functools.cache
    def step_log_probs(prefix):
        generator = random.Random(f"{seed}/{prefix}")
        logits = [2 * generator.gauss(0, 1) for _ in range(vocab_size)]
        top = max(logits)
        normaliser = top + math.log(sum(math.exp(x - top) for x in logits))
        return tuple(x - normaliser for x in logits)

    return step_log_probs


def test_beam_exactness_key_matches_the_tree_and_the_exactness_condition():
    text = key("written_beam_exact")
    vocab, k, length = TREE["vocabulary"], TREE["beam_size"], TREE["length"]
    decoder = tree_decoder()

    def words(tokens):
        return " ".join(vocab[i] for i in tokens)

    returned = find(r"the sequence beam search returns, `([a-z ]+)`", text)[0]
    best = find(r"`([a-z ]+)`\s+is\.", text)[0]
    pruned = find(r"and `([a-z ]+)` is not among them", text)[0]
    assert returned == words(beam(decoder, len(vocab), k, length)[0][0])
    assert best == words(exhaustive(decoder, len(vocab), length)[0][0]) != returned
    assert pruned == words(exhaustive(decoder, len(vocab), length)[0][0][:2])
    assert pruned not in [words(tokens) for tokens, _ in beam(decoder, len(vocab), k, 2)]
    # "after `neural neural`, the third word `neural` is almost certain", "the less likely second word"
    assert math.exp(decoder(tuple(vocab.index(w) for w in pruned.split()))[vocab.index("neural")]) > 0.95
    assert decoder((0,))[0] < decoder((0,))[1]

    # exact whenever k >= M^(T-1) (random decoders); for k = M^(T-1) - 1 a decoder built to defeat it does
    condition = latex_to_sympy(find(r"\(\$k \\ge (M\^\{T-1\})\$", text)[0], ["M", "T"])
    for vocab_size, length in ((2, 2), (2, 3), (3, 2), (3, 3), (2, 4), (4, 3)):
        exact_k = int(value(condition, M=vocab_size, T=length))
        for seed in range(30):
            decoder = random_decoder(vocab_size, seed)
            assert beam(decoder, vocab_size, exact_k, length)[0][0] == exhaustive(decoder, vocab_size, length)[0][0]
        decoder = adversarial_decoder(vocab_size, length)
        best = exhaustive(decoder, vocab_size, length)[0][0]
        assert best == (0,) * length and beam(decoder, vocab_size, exact_k, length)[0][0] == best
        assert beam(decoder, vocab_size, exact_k - 1, length)[0][0] != best, (vocab_size, length)


def adversarial_decoder(vocab_size: int, length: int):
    """A decoder whose best sequence (all zeros) has the worst prefix of length T - 1 and a certain last token."""
    uniform = [math.log(1 / vocab_size)] * vocab_size
    first = 0.9 / vocab_size  # the zero prefix's last token: a little less likely than the others

    def step_log_probs(prefix):
        if prefix == (0,) * (length - 2):
            return [math.log(first)] + [math.log((1 - first) / (vocab_size - 1))] * (vocab_size - 1)
        if prefix == (0,) * (length - 1):
            return [math.log(0.99)] + [math.log(0.01 / (vocab_size - 1))] * (vocab_size - 1)
        return uniform

    return step_log_probs


class Ranked:
    """A candidate whose comparisons are counted."""

    count = 0

    def __init__(self, tokens, total):
        self.tokens, self.total = tokens, total

    def __lt__(self, other):
        Ranked.count += 1
        return (self.total, [-t for t in self.tokens]) < (other.total, [-t for t in other.tokens])


def counted_search(vocab_size: int, k: int, length: int, store_states: bool) -> dict:
    """Beam search on a random decoder, counting RNN steps (1 per hypothesis and step with stored states, the
    prefix length + 1 without), output-layer calls, candidates, and comparisons of sorting and of a heap."""
    decoder = random_decoder(vocab_size, seed=length * 100 + k)
    counts = {"rnn": 0, "output": 0, "candidates": [], "sort": 0, "heap": 0, "course": 0}
    beams = [Ranked((), 0.0)]
    for _ in range(length):
        candidates = []
        for hypothesis in beams:
            counts["rnn"] += 1 if store_states else len(hypothesis.tokens) + 1
            counts["output"] += 1
            candidates += [Ranked((*hypothesis.tokens, j), hypothesis.total + lp)
                           for j, lp in enumerate(decoder(hypothesis.tokens))]
        counts["candidates"].append(len(candidates))
        Ranked.count = 0
        beams = sorted(candidates, reverse=True)[:k]
        counts["sort"] += Ranked.count
        Ranked.count = 0
        assert [c.tokens for c in heapq.nlargest(k, candidates)] == [c.tokens for c in beams]
        counts["heap"] += Ranked.count
        # the course's pseudo-code: the k best tokens of each hypothesis first, then the best k of the survivors
        Ranked.count = 0
        survivors = [c for i in range(0, len(candidates), vocab_size)
                     for c in sorted(candidates[i:i + vocab_size], reverse=True)[:k]]
        assert [c.tokens for c in sorted(survivors, reverse=True)[:k]] == [c.tokens for c in beams]
        counts["course"] += Ranked.count
    return counts


GRID = [(vocab_size, k, length) for vocab_size in (2, 3, 5, 8) for k in (1, 2, 3, 5, 8) for length in range(1, 9)]


def test_beam_cost_key_counts_and_bounds():
    """2.5: the exact counts, the bounds with and without stored states, and which bound is tight."""
    text = key("written_beam_cost")
    names = ["k", "M", "T"]
    stored_exact, stored_bound = find(r"RNN steps with stored states: \$(.+?) \\le (.+?)\$", text)
    rerun_exact, rerun_bound = find(r"RNN steps without stored states: \$(.+?) \\le (.+?)\$", text)
    per_step = find(r"candidates per step: at most \$(.+?)\$", text)[0]
    outputs = find(r"calls of the output layer: \$(.+?)\$", text)[0]
    with_states = find(r"Over the whole sequence:\s*\$\$O\\big\((.+?)\\big\)", text)[0]
    tight = find(r"The total is\s*\$\$O\\big\((.+?)\\big\)\.?\$\$", text)[0]
    loose = find(r"The bound \$O\((.+?)\)\$ is also true but not tight", text)[0]
    formulas = {name: latex_to_sympy(latex, names) for name, latex in (
        ("stored_exact", stored_exact), ("stored_bound", stored_bound), ("rerun_exact", rerun_exact),
        ("rerun_bound", rerun_bound), ("per_step", per_step), ("outputs", outputs), ("with_states", with_states),
        ("tight", tight), ("loose", loose))}
    graded = find(r"\*Grading:\*.+?the tight one,\s*\$O\((.+?)\)\$, is the better answer", text)[0]
    assert sympy.simplify(latex_to_sympy(graded, names) - formulas["tight"]) == 0  # the rubric accepts the tight bound

    ratios = {"with": [], "tight": [], "course": []}
    course = latex_to_sympy(find(r"as in the course's pseudo-code, gives \$O\((.+?)\)\$", text)[0], names)
    for vocab_size, k, length in GRID:
        point = {"k": k, "M": vocab_size, "T": length}
        stored = counted_search(vocab_size, k, length, store_states=True)
        rerun = counted_search(vocab_size, k, length, store_states=False)
        assert stored["rnn"] == value(formulas["stored_exact"], **point) <= value(formulas["stored_bound"], **point)
        assert rerun["rnn"] == value(formulas["rerun_exact"], **point) <= value(formulas["rerun_bound"], **point)
        assert stored["output"] == rerun["output"] == value(formulas["outputs"], **point)
        assert max(stored["candidates"]) <= value(formulas["per_step"], **point)
        assert stored["sort"] <= sum(n * math.ceil(math.log2(n)) for n in stored["candidates"] if n > 1)
        assert stored["heap"] <= sum(n * (1 + 2 * math.ceil(math.log2(k + 1))) for n in stored["candidates"])
        scoring = sum(stored["candidates"])  # one log-probability per candidate
        ratios["with"].append((stored["rnn"] + scoring + stored["sort"]) / value(formulas["with_states"], **point))
        ratios["tight"].append((rerun["rnn"] + scoring + rerun["sort"]) / value(formulas["tight"], **point))
        if k <= vocab_size:  # the usual case, beam smaller than the vocabulary
            ratios["course"].append((stored["rnn"] + scoring + stored["course"]) / value(course, **point))
    # the work is within a small constant factor of each bound over the whole grid (T up to 8, k and M up to 8) ...
    assert max(max(r) for r in ratios.values()) < 6, {n: max(r) for n, r in ratios.items()}
    # ... and the loose bound is not tight: its ratio to the tight one grows without limit (here along T = M)
    growth = [value(formulas["loose"], k=4, M=size, T=size) / value(formulas["tight"], k=4, M=size, T=size)
              for size in (4, 16, 64, 256)]
    assert growth == sorted(growth) and growth[-1] > 10 * growth[0]


# --------------------------------------------------------------------------------------------------
# 4.4: the gradient by hand, and the SGD updates of w1
# --------------------------------------------------------------------------------------------------

RNN_NAMES = ["w1", "w2", "u", "v", "b_h", "b_y", "h0"]


def small_rnn(values: dict, x1: list, x2: list, w1_uses: list | None = None):
    """y^(1..t) of the RNN of 4.4 (torch, float64); w1_uses[s] replaces w1 at step s + 1 when given."""
    import torch

    h, outputs = values["h0"], []
    for s in range(len(x1)):
        w1 = values["w1"] if w1_uses is None else w1_uses[s]
        a = w1 * x1[s] + values["w2"] * x2[s] + values["u"] * h + values["b_h"]
        assert a > 0
        h = torch.relu(a)
        outputs.append(torch.sigmoid(values["v"] * h + values["b_y"]))
    return outputs


def positive_point(seed: int, steps: int):
    import torch

    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return 0.2 + 0.8 * torch.rand(*shape, generator=generator, dtype=torch.float64)

    values = {name: draw(()) for name in RNN_NAMES}
    return values, list(draw(steps)), list(draw(steps))


def test_gradient_keys_match_autograd():
    """4.4 (a) and (b): the closed forms, and the two path terms of (b), against torch autograd."""
    import torch

    renames = [("y^{(1)}", "y1"), ("y^{(2)}", "y2"), ("x_1^{(1)}", "x11"), ("x_1^{(2)}", "x12")]
    names = ["y1", "y2", "x11", "x12", "v", "u"]
    step1 = latex_to_sympy(find(r"\\frac\{\\partial L\(y\^\{\(1\)\}\)\}\{\\partial w_1\} = ([^=$]+?)\$\$",
                                key("written_grad_step1"))[0], names, renames)
    text = key("written_grad_step2")
    assert find(r"\*\*(\w+) paths\*\*", text)[0] == "Two"
    direct, through = (latex_to_sympy(block, names, renames) for block in display_math(text)[:2])
    total = latex_to_sympy(find(r"Total: \$\\dfrac\{.+?\}\{\\partial w_1\} = (.+?)\$", text)[0], names, renames)
    for seed in range(5):
        values, x1, x2 = positive_point(seed, 2)
        values = {name: tensor.clone().requires_grad_(name == "w1") for name, tensor in values.items()}
        y1, y2 = small_rnn(values, x1, x2)
        point = {"y1": y1.item(), "y2": y2.item(), "x11": float(x1[0]), "x12": float(x1[1]),
                 "v": float(values["v"]), "u": float(values["u"])}
        (grad1,) = torch.autograd.grad(-torch.log(y1), values["w1"], retain_graph=True)
        assert math.isclose(value(step1, **point), float(grad1), rel_tol=1e-10)
        uses = [values["w1"].detach().clone().requires_grad_(True) for _ in range(2)]
        terms = torch.autograd.grad(-torch.log(small_rnn(values, x1, x2, uses)[1]), uses)
        assert math.isclose(value(through, **point), float(terms[0]), rel_tol=1e-10)  # the use at step 1
        assert math.isclose(value(direct, **point), float(terms[1]), rel_tol=1e-10)  # the use at step 2
        (grad2,) = torch.autograd.grad(-torch.log(y2), values["w1"])
        assert math.isclose(value(total, **point), float(grad2), rel_tol=1e-10)


def test_sgd_updates_key_matches_an_instrumented_training_loop():
    """4.4 (c): count the changes of w1 and the path terms in online SGD over three steps; check each term."""
    import torch

    text = key("written_grad_sgd")
    changes_claimed = int(find(r"is changed (\d+) times", text)[0])
    per_loss_claimed = [int(n) for n in find(r"hold (\d+), (\d+) and (\d+) such terms", text)]
    total_claimed = int(find(r"\*\*(\d+) path terms\*\*", text)[0])
    term = latex_to_sympy(display_math(text)[0], ["yt", "v", "u", "t", "s", "x1s"],
                          [("y^{(t)}", "yt"), ("x_1^{(s)}", "x1s")])

    values, x1, x2 = positive_point(seed=21, steps=3)
    parameters = {name: tensor.clone().requires_grad_(name != "h0") for name, tensor in values.items()}
    optimizer = torch.optim.SGD([p for name, p in parameters.items() if name != "h0"], lr=0.05)
    changes, per_loss = 0, []
    for t in range(1, 4):
        uses = [parameters["w1"].detach().clone().requires_grad_(True) for _ in range(t)]
        y = small_rnn(parameters, x1[:t], x2[:t], uses)[-1]
        terms = torch.autograd.grad(-torch.log(y), uses)
        per_loss.append(sum(1 for path_term in terms if float(path_term) != 0))
        for s, path_term in enumerate(terms, 1):
            point = {"yt": y.item(), "v": parameters["v"].item(), "u": parameters["u"].item(), "t": t, "s": s,
                     "x1s": float(x1[s - 1])}
            assert math.isclose(value(term, **point), float(path_term), rel_tol=1e-10)
        optimizer.zero_grad()
        (-torch.log(small_rnn(parameters, x1[:t], x2[:t])[-1])).backward()
        assert math.isclose(parameters["w1"].grad.item(), float(sum(terms)), rel_tol=1e-10)
        before = parameters["w1"].item()
        optimizer.step()
        changes += parameters["w1"].item() != before
    assert (changes, per_loss, sum(per_loss)) == (changes_claimed, per_loss_claimed, total_claimed)


# --------------------------------------------------------------------------------------------------
# 5: attention
# --------------------------------------------------------------------------------------------------


def test_self_attention_key_attends_to_earlier_decoder_states_only():
    """5.1: the equations' structure (the staff check of the same equations is in the solution, see below)."""
    text = "".join(display_math(key("written_self_attention")))
    assert r"\mathbf V_{\text{dec},1}\mathbf d^{(i)} + \mathbf V_{\text{dec},2}\mathbf d^{(j-1)}" in text
    assert r"i = 0, \dots, j-1" in text and r"\sum_{i=0}^{j-1} a_{\text{dec}}^{(ij)}\,\mathbf d^{(i)}" in text
    assert r"\mathbf V_d \mathbf c_{\text{enc}}^{(j)}" in text
    assert r"\mathbf V_{dd}\, \mathbf c_{\text{dec}}^{(j)}" in text
    assert r"\mathbf h^{(i)}" not in text.split(r"e_{\text{dec}}")[1]  # the decoder's scores use decoder states


def test_multihead_key_matches_torch_multihead_attention():
    """5.2: parameters, the cost of the scores, the rank of a head's scores and the scaling, for every divisor."""
    import torch

    text = key("written_multihead")
    parameters = latex_to_sympy(find(r"the layer has \$(.+?)\$ parameters \(the weights and biases of the four "
                                     r"projections\) whatever \$h\$ is", text)[0], ["n"])
    score_cost = latex_to_sympy(find(r"computing the attention scores costs \$(.+?)\$ multiply", text)[0], ["T", "n"])
    rank = latex_to_sympy(find(r"has rank at most \$(.+?)\$", text)[0], ["n", "h"])
    scale = latex_to_sympy(find(r"Scores are divided by \$(.+?)\$, the square root of a head's size", text)[0],
                           ["n", "h"])
    generator = torch.Generator().manual_seed(0)
    length = 30
    for width in (12, 24):
        x = torch.randn(1, length, width, generator=generator, dtype=torch.float64)
        for heads in [h for h in range(1, width + 1) if width % h == 0]:
            attention = torch.nn.MultiheadAttention(width, heads, batch_first=True, dtype=torch.float64)
            assert sum(p.numel() for p in attention.parameters()) == value(parameters, n=width)
            head = width // heads
            weights = attention.in_proj_weight.detach().chunk(3)
            biases = attention.in_proj_bias.detach().chunk(3)
            q, k, v = ((x[0] @ w.T + b).reshape(length, heads, head).transpose(0, 1)
                       for w, b in zip(weights, biases, strict=True))
            assert q.shape[0] * length * length * q.shape[2] == value(score_cost, T=length, n=width)
            assert max(int(torch.linalg.matrix_rank(q[i] @ k[i].T)) for i in range(heads)) == value(rank, n=width,
                                                                                                    h=heads)
            mixed = torch.softmax(q @ k.transpose(1, 2) / value(scale, n=width, h=heads), dim=-1) @ v
            ours = mixed.transpose(0, 1).reshape(length, width) @ attention.out_proj.weight.detach().T
            expected = attention(x, x, x, need_weights=False)[0][0].detach() - attention.out_proj.bias.detach()
            assert torch.allclose(ours, expected, rtol=0, atol=1e-10)


def test_encoder_decoder_key_states_the_copy_mixture_and_the_cost_of_generating():
    """5.3: the mixture and the training loss as stated; a Transformer decoder layer that generates token by token
    needs exactly the keys and values of the earlier tokens (2t vectors after t tokens) to match its masked pass."""
    import torch
    from key_text import latex_to_sympy, value

    text = key("written_encoder_decoder")
    mixture = find(r"\$\$P\(\\text\{word \} w\) = (.+?)\$\$", text)[0]
    assert r"p^{(j)}\,P_{\text{vocab}}(w)" in mixture
    assert r"\big(1 - p^{(j)}\big)\sum_{i:\ x_i = w} a_i^{(j)}" in mixture
    assert "teacher forcing" in text and r"-\sum_j \log P\big(y^{(j)} \mid y^{(<j)}, x\big)" in text
    kept = latex_to_sympy(find(r"keeps their keys and values \(\$(.+?)\$ vectors per layer\)", text)[0], ["t"])

    generator = torch.Generator().manual_seed(1)
    width, steps = 8, 6
    attention = torch.nn.MultiheadAttention(width, 2, batch_first=True, dtype=torch.float64)
    x = torch.randn(1, steps, width, generator=generator, dtype=torch.float64)
    causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1)
    masked = attention(x, x, x, attn_mask=causal, need_weights=False)[0]
    cache = []  # what a generating decoder keeps: the key and the value of every earlier token
    for t in range(1, steps + 1):
        cache += [("key", x[:, t - 1]), ("value", x[:, t - 1])]
        keys = torch.stack([vector for kind, vector in cache if kind == "key"], dim=1)
        values = torch.stack([vector for kind, vector in cache if kind == "value"], dim=1)
        step = attention(x[:, t - 1:t], keys, values, need_weights=False)[0]
        assert torch.allclose(step[:, 0], masked[:, t - 1], rtol=0, atol=1e-12)
        assert len(cache) == value(kept, t=t)


# --------------------------------------------------------------------------------------------------
# The staff checks behind the answers ran in the build and said so
# --------------------------------------------------------------------------------------------------

STAFF_CHECKS = {
    "backprop_scratch": ["1.3 prompt example: edge into z gives b, edge into b gives a, dz/da = 2a + c"],
    "beam_cost_scratch": ["2.5: 72 searches", "RNN steps without stored states = sum_t t min(k, M^(t-1))"],
    "padding_scratch": ["gathered outputs == unpadded outputs", "masked per-step loss == loss of the unpadded"],
    "deep_bidirectional_scratch": ["4.2: the two-layer equations match", "4.3: the forward/backward equations match"],
    "grad_scratch": ["(a) autograd", "(b) autograd"],
    "sgd_scratch": ["4.4 (c): w1 was changed 3 times; its gradients held 1 + 2 + 3 = 6 path terms"],
    "self_attention_scratch": ["5.1: loops == masked matrix form; V_dd = 0 gives the original model"],
    "multihead_scratch": ["5.2: nn.MultiheadAttention with n = 64", "h = 64: head size  1, 16640 parameters"],
    "encoder_decoder_scratch": ["5.3: the copy mixture sums to 1", "(encoder included) get a gradient"],
}


@pytest.mark.parametrize("grade_id", sorted(STAFF_CHECKS))
def test_staff_checks_ran_in_the_build(fast_build, grade_id):
    output = printed(fast_build / "solutions" / "hw_rnn" / f"{NOTEBOOK}.ipynb", grade_id)
    missing = [line for line in STAFF_CHECKS[grade_id] if line not in output]
    assert not missing, f"{grade_id} printed:\n{output}"


def test_every_staff_cell_is_scratch_space_in_the_release(fast_build):
    """The staff checks are solution regions of cells tagged scratch: the release holds an empty cell instead."""
    release = json.loads((fast_build / "release" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    cells = {(c["metadata"].get("nbgrader") or {}).get("grade_id"): c for c in release["cells"]}
    for grade_id in STAFF_CHECKS:
        source = "".join(cells[grade_id]["source"])
        assert "scratch" in cells[grade_id]["metadata"]["tags"] and "Staff" not in source, grade_id
        assert "pass  # (ungraded" in source


def test_process_questions_are_ungraded_and_the_autograded_total_is_unchanged():
    """HW6 7(a)-(c): sources, collaborators and hours are collected (0 points each) and asked in the prompt."""
    from assignkit.masters import read_master

    master = read_master(Path(ROOT / "source" / "hw_rnn" / f"{NOTEBOOK}.ipynb"))
    assert master.autograded_points == 18
    for grade_id in ("sources_used", "collaborators", "hours_spent"):
        assert master.manual_points[grade_id] == 0
        assert "Not graded" in master_cell(NOTEBOOK, grade_id)
    notebook = json.loads((ROOT / "source" / "hw_rnn" / f"{NOTEBOOK}.ipynb").read_text(encoding="utf-8"))
    prompt = " ".join("".join(cell["source"]) for cell in notebook["cells"]
                      if cell.get("id") in ("cell-process", "process-b", "process-c"))
    assert "Which sources" in prompt and "who?" in prompt and "how many hours" in prompt
    assert "self-assessment" not in prompt
