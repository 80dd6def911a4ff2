"""An independently written correct solution keeps every autograded point.

The staff solution must not be the only code that passes: the checks may be no stricter than the notebooks'
text. These implementations follow the same API but are written differently (explicit gate matrices and
per-step loops instead of one fused projection, hooks instead of retain_grad, torch.nn.functional.mse_loss,
a dict for the alphabet, plain indexing instead of gather, a heap in beam search, answers in other forms; for
q_char_lm split gate matrices, a norm of norms, sampling and beam search that rerun the whole prefix),
pasted into the blank release notebooks and graded through the real path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grading_fixtures import read_notebook, replace_cell
from notebook_grading import grade_notebook_run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("independent_solution")]  # `graded` once

RNN_LAYER = '''
class RNNLayer(StepRecorder):
    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):
        super().__init__()
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        self.W_x = nn.Parameter(torch.randn(hidden_size, input_size) * 0.1)
        self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) * 0.1)
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x):
        hs = []
        h = torch.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        for x_t in x.unbind(dim=1):
            h = self.nonlinearity(torch.einsum("hd,bd->bh", self.W_x, x_t) + torch.einsum("hk,bk->bh", self.W_h, h)
                                  + self.b)
            self.record_step(h)
            hs.append(h)
        return torch.stack(hs, 1), hs[-1]
'''
REGRESSION = '''
class RecurrentRegressionModel(nn.Module):
    def __init__(self, recurrent_net, output_dim=1):
        super().__init__()
        self.rnn = recurrent_net
        self.head = nn.Linear(in_features=recurrent_net.hidden_size, out_features=output_dim)

    def forward(self, x):
        states = self.rnn(x)[0]
        return torch.matmul(states, self.head.weight.t()) + self.head.bias, states
'''
LOSS = '''
def loss_fn(pred, y, last_timestep_only=False):
    if last_timestep_only:
        return nn.functional.mse_loss(pred[:, pred.shape[1] - 1, :], y[:, y.shape[1] - 1, :])
    return nn.functional.mse_loss(pred, y, reduction="sum") / pred.numel()
'''
GRADIENT_NORMS = '''
def gradient_norms(model, x, y, last_timestep_only=False):
    for parameter in model.parameters():
        parameter.grad = None
    model.rnn.recording = True
    pred, _ = model(x)
    model.rnn.recording = False
    grads = {}
    for t, h in enumerate(model.rnn.step_states):
        if h.requires_grad:
            h.register_hook(lambda g, t=t: grads.__setitem__(t, g))
    loss_fn(pred, y, last_timestep_only).backward()
    states = model.rnn.step_states
    hidden = torch.tensor([float(torch.sqrt((h.detach() ** 2).sum())) for h in states])
    grad = torch.tensor([float(torch.sqrt((grads[t] ** 2).sum())) if t in grads else 0.0 for t in range(len(states))])
    return hidden, grad
'''
LSTM_LAYER = '''
class LSTMLayer(StepRecorder):
    GATES = ("f", "i", "o", "g")

    def __init__(self, input_size, hidden_size, activation=torch.tanh, recurrent_activation=torch.sigmoid):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.squash, self.gate_squash = activation, recurrent_activation
        self.U = nn.Parameter(torch.randn(input_size, 4 * hidden_size) * 0.1)
        self.W = nn.Parameter(torch.randn(hidden_size, 4 * hidden_size) * 0.1)
        self.b = nn.Parameter(torch.zeros(4 * hidden_size))

    def gate(self, name, x_t, h):
        k = self.GATES.index(name)
        cols = slice(k * self.hidden_size, (k + 1) * self.hidden_size)
        return x_t @ self.U[:, cols] + h @ self.W[:, cols] + self.b[cols]

    def forward(self, x, hc0=None):
        batch = x.shape[0]
        h, c = hc0 if hc0 is not None else (x.new_zeros(batch, self.hidden_size), x.new_zeros(batch, self.hidden_size))
        outputs = []
        for t in range(x.shape[1]):
            x_t = x[:, t, :]
            f = self.gate_squash(self.gate("f", x_t, h))
            i = self.gate_squash(self.gate("i", x_t, h))
            o = self.gate_squash(self.gate("o", x_t, h))
            g = self.squash(self.gate("g", x_t, h))
            c = c * f + g * i
            h = self.squash(c) * o
            self.record_step(h)
            outputs.append(h.unsqueeze(1))
        return torch.cat(outputs, dim=1), (h, c)
'''
STACKED_RNN = '''
class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity=torch.tanh):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.layers = nn.ModuleList(
            RNNLayer(input_size if k == 0 else hidden_size, hidden_size, nonlinearity) for k in range(num_layers)
        )

    def forward(self, x):
        finals = torch.empty(0)
        sequence = x
        for layer in self.layers:
            sequence, final = layer(sequence)
            finals = torch.cat([finals.to(final.dtype), final.unsqueeze(0)]) if finals.numel() else final.unsqueeze(0)
        return sequence, finals
'''
STACKED_LSTM = '''
class LSTM(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.layers = nn.ModuleList(
            LSTMLayer(input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers)
        )

    def forward(self, x, hc0=None):
        hs, cs = [], []
        for k in range(len(self.layers)):
            initial = (hc0[0][k], hc0[1][k]) if hc0 is not None else None
            x, (h, c) = self.layers[k](x, initial)
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs, dim=0), torch.stack(cs, dim=0))
'''
LETTER = '''
LOOKUP = {letter: position for position, letter in enumerate(ALPHABET)}


def letter_to_index(letter):
    if isinstance(letter, str) and letter in LOOKUP and len(letter) == 1:
        return LOOKUP[letter]
    raise ValueError("not a letter of the alphabet: " + repr(letter))
'''
ENCODE = '''
def encode_name(name, max_length=MAX_LENGTH):
    if len(name) == 0 or len(name) > max_length:
        raise ValueError("bad length")
    indices = [letter_to_index(letter) for letter in name]
    return torch.tensor(indices + [PAD_INDEX] * (max_length - len(indices))), len(indices) - 1
'''
CLASSIFIER_FORWARD = (
    "        states, _ = self.rnn(self.embedding(x))\n"
    "        rows = torch.arange(x.shape[0])\n"
    "        return self.output(self.dropout(states[rows, last_pos]))\n"
)
BEAM = '''
import heapq


def beam_search(step_log_probs, k, length):
    beams = [(0.0, ())]
    for _ in range(length):
        pool = []
        for score, prefix in beams:
            for token, log_prob in enumerate(step_log_probs(prefix).tolist()):
                pool.append((score + log_prob, prefix + (token,)))
        beams = heapq.nsmallest(k, pool, key=lambda item: (-item[0], item[1]))
    return [(prefix, score) for score, prefix in beams]
'''
ANSWERS = {
    "answer_t": 'answer_t = "w*(w*u1 + u2) + u3"',
    "answer_y": 'answer_y = "w*(u3 + w*(u2 + w*u1))"',
    "answer_dy_dw": 'answer_dy_dw = "3*u1*w^2 + 2*u2*w + u3"',
    "answer_edge_q": 'answer_edge_q = "u1 * w * w"',
    "answer_edge_s": 'answer_edge_s = "w*(u2 + w*u1)"',
    "answer_edge_y": 'answer_edge_y = "u3 + w*(u2 + w*u1)"',
    "beam_t1": 'beam_t1 = [("network", -0.73), ("neural", -0.65)]',
    "beam_t2": 'beam_t2 = [("network neural", -1.33), ("neural network", -1.25)]',
    "beam_t3": 'beam_t3 = ((("network", "neural", "network"), -1.93), ("neural network network", -1.850))',
}


GRU_LAYER = '''
class GRULayer(StepRecorder):
    GATES = ("r", "z", "n")

    def __init__(self, input_size, hidden_size, activation=torch.tanh, recurrent_activation=torch.sigmoid):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.candidate_fn, self.gate_fn = activation, recurrent_activation
        self.U = nn.Parameter(torch.randn(input_size, 3 * hidden_size) * 0.1)
        self.W = nn.Parameter(torch.randn(hidden_size, 3 * hidden_size) * 0.1)
        self.b_x = nn.Parameter(torch.zeros(3 * hidden_size))
        self.b_h = nn.Parameter(torch.zeros(3 * hidden_size))

    def forward(self, x, h0=None):
        size = self.hidden_size
        U_r, U_z, U_n = self.U.split(size, dim=1)
        W_r, W_z, W_n = self.W.split(size, dim=1)
        bx_r, bx_z, bx_n = self.b_x.split(size)
        bh_r, bh_z, bh_n = self.b_h.split(size)
        h = torch.zeros(x.shape[0], size, dtype=x.dtype) if h0 is None else h0
        outputs = []
        for x_t in x.unbind(dim=1):
            r = self.gate_fn(x_t @ U_r + bx_r + h @ W_r + bh_r)
            z = self.gate_fn(x_t @ U_z + bx_z + h @ W_z + bh_z)
            n = self.candidate_fn(x_t @ U_n + bx_n + r * (h @ W_n + bh_n))
            h = (1 - z) * n + z * h
            self.record_step(h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h
'''
CLIP = '''
def clip_grad_norm(parameters, max_norm):
    with_grad = [p for p in parameters if p.grad is not None]
    if len(with_grad) == 0:
        return torch.zeros(())
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in with_grad]))
    if norm > max_norm:
        factor = max_norm / (norm + 1e-6)
        for p in with_grad:
            p.grad.mul_(factor)
    return norm
'''
CHAR_LM_FORWARD = (
    "        emb = self.embedding(tokens)\n"
    "        lang = self.language_embedding(languages).unsqueeze(1).repeat(1, tokens.shape[1], 1)\n"
    "        out, h = self.gru(torch.cat((emb, lang), 2), h0)\n"
    "        return self.output(out), h\n"
)
SAMPLE = '''
def sample(model, language, generator, temperature=1.0, max_length=MAX_LENGTH):
    model.eval()
    sequence, name = [BOS], ""
    with torch.no_grad():
        for _ in range(max_length):  # the whole prefix every time: no state carried along
            last = model(torch.tensor([sequence]), torch.tensor([language]))[0][0, -1]
            if temperature == 0:
                following = last.argmax().item()
            else:
                p = nn.functional.softmax(last / temperature, dim=-1)
                following = torch.multinomial(p, num_samples=1, generator=generator).item()
            if following == model.n_letters:
                break
            sequence.append(following)
            name += ALPHABET[following]
    return name
'''
BEAM_DECODE = '''
import heapq


def beam_decode(model, language, k=5, max_length=MAX_LENGTH):
    model.eval()
    eos = model.n_letters
    live, done = [(0.0, ())], []
    with torch.no_grad():
        while live:
            pool = []
            for score, prefix in live:
                logits = model(torch.tensor([[BOS, *prefix]]), torch.tensor([language]))[0]
                log_p = torch.log_softmax(logits[0, -1].double(), dim=-1).tolist()
                done.append((score + log_p[eos], prefix))
                if len(prefix) < max_length:
                    pool += [(score + log_p[i], prefix + (i,)) for i in range(eos)]
            live = heapq.nlargest(k, pool, key=lambda item: item[0])
    return [("".join(ALPHABET[i] for i in prefix), score)
            for score, prefix in heapq.nlargest(k, done, key=lambda item: item[0])]
'''


def char_lm_cell(blank: dict) -> str:
    cell = next(c for c in blank["cells"] if (c["metadata"].get("nbgrader") or {}).get("grade_id") == "char_lm")
    source = "".join(cell["source"])
    return source[: source.index("        # YOUR CODE HERE")] + CHAR_LM_FORWARD


def classifier_cell(blank: dict) -> str:
    cell = next(c for c in blank["cells"] if (c["metadata"].get("nbgrader") or {}).get("grade_id")
                == "recurrent_classifier")
    source = "".join(cell["source"])
    head = source[: source.index("        # YOUR CODE HERE")]
    return head + CLASSIFIER_FORWARD


@pytest.fixture(scope="module")
def graded(fast_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    release = fast_build / "release" / "hw_rnn"
    base = tmp_path_factory.mktemp("independent")
    rnn = read_notebook(release / "q_rnn_and_grad.ipynb")
    for grade_id, source in (("rnn_layer", RNN_LAYER), ("regression_model", REGRESSION), ("loss_fn", LOSS),
                             ("gradient_norms", GRADIENT_NORMS), ("lstm_layer", LSTM_LAYER),
                             ("stacked_rnn", STACKED_RNN), ("stacked_lstm", STACKED_LSTM)):
        rnn = replace_cell(rnn, grade_id, source)
    names = read_notebook(release / "q_rnn_last_name.ipynb")
    names = replace_cell(replace_cell(names, "letter_to_index", LETTER), "encode_name", ENCODE)
    names = replace_cell(names, "recurrent_classifier", classifier_cell(names))
    written = replace_cell(read_notebook(release / "q_written.ipynb"), "beam_search", BEAM)
    for grade_id, source in ANSWERS.items():
        written = replace_cell(written, grade_id, source)
    char_lm = read_notebook(release / "q_char_lm.ipynb")
    for grade_id, source in (("gru_layer", GRU_LAYER), ("clip_grad_norm", CLIP), ("char_lm", char_lm_cell(char_lm)),
                             ("sample", SAMPLE), ("beam_decode", BEAM_DECODE)):
        char_lm = replace_cell(char_lm, grade_id, source)
    solutions = fast_build / "solutions" / "hw_rnn"
    model = (solutions / "surname_model.pt").read_bytes()
    files = {"char_lm.pt": (solutions / "char_lm.pt").read_bytes()}
    return {name: grade_notebook_run(fast_build, name, notebook, base / name, model=model, files=files)
            for name, notebook in (("q_rnn_and_grad", rnn), ("q_rnn_last_name", names), ("q_written", written),
                                   ("q_char_lm", char_lm))}


@pytest.mark.parametrize("notebook", ["q_rnn_and_grad", "q_rnn_last_name", "q_written", "q_char_lm"])
def test_an_independent_correct_solution_keeps_every_point(graded, notebook):
    grading = graded[notebook]
    failed = {name: result.message for name, result in grading.checks.items()
              if not result.passed and name not in ("test_accuracy_hidden", "test_char_lm_quality_hidden")}
    assert failed == {}
    assert grading.finished and not grading.internal_errors
    if notebook == "q_rnn_last_name":  # the staff's weights, read by the staff's classifier: same as the solution
        assert grading.checks["test_accuracy_hidden"].points > 0
    print(json.dumps({name: r.points for name, r in grading.checks.items()}))
