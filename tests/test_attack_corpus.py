"""Attacks on the grader's trust boundary, each written as a hostile student would submit it.

The threat model (README, "How grading works, and why it is safe"): every byte in the sandboxed child is the
student's. So each attack below starts from the blank release (or the solution, to check that honest parts keep
their points), adds cells of its own, and is graded by the real path as the sandbox account. For every one:
results.json is valid, no more points than the blank notebook plus the honest parts, no secret (hidden source,
hidden name) in anything the student sees, no process of the sandbox account alive afterwards and no file of
it left in the shared temporary folders.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import platform
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import grading_fixtures
import pytest
from grading_fixtures import (
    NEEDS_ROOT,
    account_of_this_process,
    assert_no_secrets,
    assert_valid_results,
    delete_sandbox_user,
    ensure_sandbox_user,
    insert_cell,
    read_notebook,
    replace_cell,
    shared_dir,
    write_submission,
)

from assignkit.grading import autograde
from assignkit.grading.autograde import Grading, grade_submission
from assignkit.grading.runner import Limits

pytestmark = [pytest.mark.slow, NEEDS_ROOT]
built_bundle = grading_fixtures.built_bundle
course = grading_fixtures.course

RNN_NB, NAMES_NB, WRITTEN_NB = "q_rnn_and_grad.ipynb", "q_rnn_last_name.ipynb", "q_written.ipynb"
CHAR_LM_NB = "q_char_lm.ipynb"
TEMP_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Any]:
    """An account of this worker's own: the grader sweeps (kills everything of) its account."""
    name = account_of_this_process("hwatk")
    user = ensure_sandbox_user(name, shared_dir(tmp_path_factory, worker_id))
    yield user
    delete_sandbox_user(name)


@pytest.fixture(scope="module")
def notebooks(fast_build: Path) -> Dict[str, Dict[str, Any]]:
    solutions, release = fast_build / "solutions" / "hw_rnn", fast_build / "release" / "hw_rnn"
    found = {}
    for name in (RNN_NB, NAMES_NB, WRITTEN_NB, CHAR_LM_NB):
        found[f"solution/{name}"] = read_notebook(solutions / name)
        found[f"blank/{name}"] = read_notebook(release / name)
    return found


@pytest.fixture(scope="module")
def model_bytes(fast_build: Path) -> bytes:
    return (fast_build / "solutions" / "hw_rnn" / "surname_model.pt").read_bytes()


def owned_by(uid: int) -> Tuple[List[int], List[str]]:
    """Live processes of ``uid`` and its files in the shared temporary folders (one level deep)."""
    processes = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if str(uid) in fields.get("Uid", "").split() and fields.get("State", "").split()[0] not in ("Z", "X"):
                processes.append(int(entry))
    files = []
    for folder in TEMP_FOLDERS:
        for directory, names, others in [(folder, *next(os.walk(folder))[1:])]:
            for name in names + others:
                path = os.path.join(directory, name)
                try:
                    if os.lstat(path).st_uid == uid:
                        files.append(path)
                except OSError:
                    continue
    return processes, files


def grade(tmp_path: Path, files: Dict[str, Any], user: Any, course: Any, limits: Optional[Limits] = None
          ) -> Tuple[Grading, Dict[str, Any], Dict[str, Any]]:
    """Grade ``files`` as ``user`` (sweeping it), check what every attack must satisfy, return the outcome."""
    submission = write_submission(tmp_path / "submission", files)
    grading = grade_submission(course, submission, tmp_path / "results", user=user, sweep_user=True, limits=limits)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    log = json.loads((tmp_path / "results" / "submission_log.json").read_text())
    assert_valid_results(results)
    assert_no_secrets(results, course)
    processes, leftovers = owned_by(user.uid)
    assert processes == [], "a process of the sandbox account outlived its grading"
    assert leftovers == [], f"files of the sandbox account left behind: {leftovers}"
    return grading, results, log


def hidden_points(grading: Grading) -> float:
    return round(sum(r.points for r in grading.checks.values() if r.hidden), 4)


def points_of(grading: Grading, notebook: str) -> float:
    return round(sum(r.points for r in grading.checks.values() if r.notebook == notebook.removesuffix(".ipynb")), 4)


def forging_cell(forged: Dict[str, Dict[str, Any]]) -> str:
    """A student cell that replaces hwcheck.check by one that reports ``forged[name]`` for every check."""
    return f"""
import hwcheck
FORGED = json.loads({json.dumps(json.dumps(forged))})

def forged_check(name, probe, **options):
    if hwcheck._sink is not None and name in FORGED:
        hwcheck._sink(name, FORGED[name])

hwcheck.check = forged_check
hwcheck.answer_check = lambda *args, **kwargs: None
"""


def public_golden_reports(course: Any) -> Dict[str, Dict[str, Any]]:
    """Every check of q_rnn_and_grad 'answered' with the public goldens (hidden ones with their part's)."""
    public = course.public_goldens
    forged = {}
    for suite in course.suites:
        for check in suite.checks:
            part = check.grade_id.replace("_hidden", "_public").replace("stacked_rnn", "stacked").replace(
                "stacked_lstm", "stacked")
            if part in public:
                forged[check.grade_id] = {"values": {key: as_sent(value) for key, value in
                                                     public[part]["values"].items()}, "kernels": []}
    return forged


def as_sent(record: Dict[str, Any]) -> Dict[str, Any]:
    """A recorded value as a child sends it: arrays as base64 little-endian float64 ``data``."""
    if record.get("kind") != "array":
        return record
    packed = struct.pack(f"<{len(record['values'])}d", *record["values"])
    return {"kind": "array", "shape": record["shape"], "data": base64.b64encode(packed).decode()}


# -- 1. forging reports ---------------------------------------------------------------------------------------


def test_reporting_the_public_goldens_for_every_check_earns_nothing(tmp_path, notebooks, course, account):
    cell = "import json\n" + forging_cell(public_golden_reports(course))
    files = {name: insert_cell(notebooks[f"blank/{name}"], "setup", cell)
             for name in (RNN_NB, NAMES_NB, WRITTEN_NB, CHAR_LM_NB)}
    grading, _, _ = grade(tmp_path, files, account, course)
    assert grading.totals()["score"] == 0
    public = [r for r in grading.checks.values() if not r.hidden]
    assert any(r.ok for r in public), "the forged public reports did match (and carry no points)"


FORGE_PIPE = r"""
import gc, json, os
fd = int(os.environ.get("HWGRADE_EVENTS_FD", "-1"))
names = {names}
report = {{"values": {{"x": {{"kind": "array", "shape": [1], "values": [1.0]}}}}, "kernels": []}}
lines = [{{"event": "cells_done"}}]
for name in names:
    lines += [{{"event": "check_start", "name": name}}, {{"event": "check", "name": name, "report": report}},
              {{"event": "check_end", "name": name}}]
lines.append({{"event": "done"}})
if fd >= 0:
    os.write(fd, "".join(json.dumps(line) + "\n" for line in lines).encode())
emitters = [f for f in gc.get_objects() if callable(f) and getattr(f, "__name__", "") == "emit"]
for emit in emitters:
    for line in lines[:-1]:
        emit(line)
"""


def test_writing_forged_events_to_the_grader_earns_nothing(tmp_path, notebooks, course, account):
    names = [c.grade_id for s in course.suites if s.name == "q_rnn_and_grad" for c in s.checks]
    cell = FORGE_PIPE.format(names=names)
    grading, _, _ = grade(tmp_path, {RNN_NB: insert_cell(notebooks[f"blank/{RNN_NB}"], "setup", cell)}, account,
                          course)
    assert grading.totals()["score"] == 0


def test_a_leaked_lookup_table_from_an_earlier_grading_earns_nothing(tmp_path, notebooks, course, account,
                                                                     monkeypatch):
    """Grade the solution and keep everything its hidden checks expected (a perfect leak); a second submission
    that reports exactly those values gets nothing, because its seeds differ."""
    seen: Dict[str, Dict[str, Any]] = {}
    original = Grading._referee

    def spy(self: Grading, *args: Any, **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        reports = original(self, *args, **kwargs)
        seen.update(reports)
        return reports

    monkeypatch.setattr(Grading, "_referee", spy)
    first, _, log1 = grade(tmp_path / "first", {RNN_NB: notebooks[f"solution/{RNN_NB}"]}, account, course)
    assert points_of(first, RNN_NB) == 29
    forged = {name: {"values": report["expected"], "kernels": []} for name, report in seen.items()
              if "expected" in report}
    assert len(forged) >= 7
    replay = insert_cell(notebooks[f"blank/{RNN_NB}"], "setup", "import json\n" + forging_cell(forged))
    second, _, log2 = grade(tmp_path / "second", {RNN_NB: replay}, account, course)
    assert second.totals()["score"] == 0
    assert set(log1["grader"]["seeds"].values()).isdisjoint(log2["grader"]["seeds"].values())
    _, _, log3 = grade(tmp_path / "again", {RNN_NB: notebooks[f"solution/{RNN_NB}"]}, account, course)
    assert log3["grader"]["seeds"] == log1["grader"]["seeds"], "the same notebook must get the same seeds"


# -- 2. answers, helpers and hidden data in the sandbox ---------------------------------------------------------

LOOK_AROUND = r"""
import os
import struct
found = []
for key, value in os.environ.items():
    if any(word in (key + value).lower() for word in ("hidden", "surname", "golden", "key", "referee")):
        found.append(key)
for top in ("/tmp", "/var/tmp", "/dev/shm", "/run", "/home", os.path.expanduser("~"), os.getcwd(),
            os.path.dirname(os.getcwd())):
    for directory, folders, files in os.walk(top):
        if directory.count(os.sep) > 6 or directory.startswith(("/proc", "/sys", "/usr", "/lib")):
            folders[:] = []
            continue
        for name in files:
            if any(word in name for word in ("surnames_test_hidden", "hidden_goldens", "grading_key")) or \
                    (name.startswith("q_") and name.endswith(".ipynb") and directory != os.getcwd()):
                path = os.path.join(directory, name)
                try:
                    open(path).read(10)
                    found.append(path)
                except OSError:
                    pass
helpers = [name for name in globals() if any(word in name.lower() for word in ("reference", "trusted", "truth",
                                                                              "torchrnn", "torchlstm"))]
raise RuntimeError(f"LOOKED AROUND: readable={found} helpers={helpers}")
"""


def test_the_sandbox_holds_no_answer_no_hidden_name_and_no_reference(tmp_path, notebooks, course, account,
                                                                      model_bytes):
    files = {name: insert_cell(notebooks[f"solution/{name}"], "setup", LOOK_AROUND)
             for name in (RNN_NB, NAMES_NB, WRITTEN_NB)}
    files["surname_model.pt"] = model_bytes
    grading, results, _ = grade(tmp_path, files, account, course)
    assert "LOOKED AROUND: readable=[] helpers=[]" in results["output"], results["output"][:3000]
    submitted = {name.removesuffix(".ipynb") for name in (RNN_NB, NAMES_NB, WRITTEN_NB)}
    honest = [r for r in grading.checks.values()
              if r.name != "test_accuracy_hidden" and r.notebook.removesuffix(".ipynb") in submitted]
    assert honest and all(r.passed for r in honest), {r.name: r.message for r in honest if not r.passed}


CALL_HELPERS = r"""
def _cheat(self, x, *rest):
    import gc
    for name in ("reference_rnn_layer_hidden", "TorchRNNLayer", "TorchLSTMLayer", "backprop_truth",
                 "trusted_encode_name", "TrustedSurnameClassifier", "reference_beams_on_tree"):
        if name in globals():
            raise RuntimeError(f"found {name}")
    for obj in gc.get_objects():
        if isinstance(obj, dict) and any("BEGIN " + "REFERENCE" in str(v) for v in list(obj.values())[:50]):
            raise RuntimeError("found reference code")
    raise RuntimeError("nothing to call")

RNNLayer.forward = _cheat
LSTMLayer.forward = _cheat
"""


def test_helpers_of_the_hidden_checks_give_no_expected_values(tmp_path, notebooks, course, account):
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "stacked_lstm", CALL_HELPERS)
    grading, _, _ = grade(tmp_path, {RNN_NB: notebook}, account, course)
    for name in ("test_rnn_layer_hidden", "test_lstm_layer_hidden"):
        assert grading.checks[name].points == 0
    public = grading.checks["test_rnn_layer_public"]
    assert "nothing to call" in public.message, public.message
    stacked = ("test_stacked_rnn_hidden", "test_stacked_lstm_hidden", "test_loss_fn_hidden")
    assert all(grading.checks[name].passed for name in stacked)  # parts that do not use the layers keep their points


# -- 3. delegating to torch's recurrent kernels ----------------------------------------------------------------

DELEGATING_LAYER = """{setup}
class RNNLayer(StepRecorder):
    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):
        super().__init__()
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.W_x = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(hidden_size))

    def forward(self, x):
{compute}        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, last[0]
"""


def delegating_layer(setup: str, compute: str) -> str:
    """The notebook's RNNLayer with a forward that has ``compute`` set ``all_h, last`` (and ``setup`` above the
    class): the one shape of every delegation attack below."""
    return DELEGATING_LAYER.format(setup=setup, compute=compute)


DELEGATE = delegating_layer("", r"""
        kind = "relu" if self.nonlinearity is torch.relu else "tanh"
        weights = {"weight_ih_l0": self.W_x, "weight_hh_l0": self.W_h, "bias_ih_l0": self.b,
                   "bias_hh_l0": torch.zeros_like(self.b)}
        rnn = nn.RNN(self.W_x.shape[1], self.hidden_size, nonlinearity=kind, batch_first=True).to(x.dtype)
        all_h, last = torch.func.functional_call(rnn, weights, (x,))
"""[1:])


def test_a_layer_that_delegates_to_torch_nn_rnn_is_refused(tmp_path, notebooks, course, account):
    notebook = replace_cell(notebooks[f"solution/{RNN_NB}"], "rnn_layer", DELEGATE)
    grading, _, log = grade(tmp_path, {RNN_NB: notebook}, account, course)
    for name in ("test_rnn_layer_public", "test_rnn_layer_hidden"):
        assert grading.checks[name].points == 0 and not grading.checks[name].ok
        assert "built-in recurrent kernel (" in grading.checks[name].message
        assert "rnn_tanh" in grading.checks[name].message
    assert grading.checks["test_lstm_layer_hidden"].passed
    assert any("nn.RNN" in flag for flag in log["notebooks"]["q_rnn_and_grad"]["staff_flags"])


SCRIPTED_DELEGATE = delegating_layer(r"""
_KERNEL = torch.jit.CompilationUnit(
    "def rnn(x: Tensor, h: Tensor, w: List[Tensor], relu: bool):\n"
    "    if relu:\n"
    "        return torch.rnn_" + "relu(x, h, w, True, 1, 0.0, False, False, True)\n"
    "    return torch.rnn_" + "tanh(x, h, w, True, 1, 0.0, False, False, True)\n")

""", r"""
        h = x.new_zeros(1, x.shape[0], self.hidden_size)
        weights = [self.W_x, self.W_h, self.b, torch.zeros_like(self.b)]
        all_h, last = _KERNEL.rnn(x, h, weights, self.nonlinearity is torch.relu)
"""[1:])


def test_a_layer_that_delegates_through_torchscript_is_refused_when_graded(tmp_path, notebooks, course, account):
    """TorchScript calls torch.rnn_tanh from C++, out of sight of the notebook's TorchFunctionMode trace (so the
    public check, which only gives feedback, passes); the hidden check traces at the dispatcher and refuses it."""
    notebook = replace_cell(notebooks[f"solution/{RNN_NB}"], "rnn_layer", SCRIPTED_DELEGATE)
    grading, _, log = grade(tmp_path, {RNN_NB: notebook}, account, course)
    hidden = grading.checks["test_rnn_layer_hidden"]
    assert hidden.points == 0 and "built-in recurrent kernel (" in hidden.message, hidden.message
    assert "rnn_tanh" in hidden.message
    assert grading.checks["test_lstm_layer_hidden"].passed
    assert any("torch.jit" in flag for flag in log["notebooks"]["q_rnn_and_grad"]["staff_flags"])


THREADED_DELEGATE = delegating_layer("""
from concurrent import futures

_WORKER = futures.ThreadPoolExecutor(1)

""", """
        h = x.new_zeros(1, x.shape[0], self.hidden_size)
        weights = [self.W_x, self.W_h, self.b, torch.zeros_like(self.b)]
        all_h, last = _WORKER.submit(torch.rnn_tanh, x, h, weights, True, 1, 0.0, False, False, True).result()
"""[1:])
PROCESS_DELEGATE = delegating_layer("""
import os, pickle


def _in_another_process(x, weights):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        all_h, last = torch.rnn_tanh(x, x.new_zeros(1, x.shape[0], weights[0].shape[0]), weights, True, 1, 0.0,
                                     False, False, True)
        os.write(write_end, pickle.dumps((all_h.detach(), last.detach())))
        os._exit(0)
    os.close(write_end)
    return pickle.loads(os.read(read_end, 1 << 24))

""", """
        all_h, last = _in_another_process(x, [self.W_x, self.W_h, self.b, torch.zeros_like(self.b)])
"""[1:])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is for x86-64")
@pytest.mark.parametrize("cell", ["thread", "process"])
def test_a_layer_run_on_another_thread_or_process_earns_nothing(tmp_path, notebooks, course, account, cell):
    """The kernel traces watch the grading's one thread; a worker thread or a forked process would compute the layer
    out of their sight (found by a red team), so the sandbox can start neither."""
    source = {"thread": THREADED_DELEGATE, "process": PROCESS_DELEGATE}[cell]
    notebook = replace_cell(notebooks[f"solution/{RNN_NB}"], "rnn_layer", source)
    grading, _, _ = grade(tmp_path, {RNN_NB: notebook}, account, course)
    hidden = grading.checks["test_rnn_layer_hidden"]
    assert hidden.points == 0, hidden.message
    assert grading.checks["test_lstm_layer_hidden"].passed


def test_asking_torch_for_more_threads_costs_an_honest_notebook_nothing(tmp_path, notebooks, course, account):
    """Found by a red team: with threads forbidden, OpenMP aborted the child when a cell had asked torch for more
    threads; the child's environment caps OpenMP at one thread, so such a line is harmless."""
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "setup", "torch.set_num_threads(4)\n")
    grading, _, _ = grade(tmp_path, {RNN_NB: notebook}, account, course)
    assert points_of(grading, RNN_NB) == 29, {n: r.message for n, r in grading.checks.items() if not r.passed}


def test_an_honest_notebook_that_uses_temporary_files_and_its_own_folders_loses_nothing(tmp_path, notebooks, course,
                                                                                         account):
    """Found by red-team rounds nine and ten: a child forked from the fork server kept the server's temporary
    folder (``tempfile`` caches its first answer, and so does ``dill.session``, which torch imports), so `mkdtemp()`
    or `dill.dump_session()` in a cell failed with PermissionError and cost that cell's checks. The server's
    folders are now ``/proc/self/cwd``, which is each child's own working folder, and the child forgets
    ``tempfile``'s and matplotlib's answers."""
    extra = ("import dill, tempfile, matplotlib\ndill.dump_session()\n_scratch = tempfile.mkdtemp()\n"
             "with tempfile.NamedTemporaryFile(dir=_scratch) as _handle:\n    _handle.write(b'x')\n"
             "assert matplotlib.get_cachedir().startswith(tempfile.gettempdir())\n")
    solution = notebooks[f"solution/{RNN_NB}"]
    layer = grading_fixtures.source_of(solution["cells"][grading_fixtures.cell_index(solution, "rnn_layer")])
    notebook = replace_cell(solution, "rnn_layer", extra + layer)  # first in the cell, as the red team had it
    grading, _, _ = grade(tmp_path, {RNN_NB: notebook}, account, course)
    assert points_of(grading, RNN_NB) == 29, {n: r.message for n, r in grading.checks.items() if not r.passed}


# -- 4. escaping: daemons, shared temporary space, floods -------------------------------------------------------

DAEMON = r"""
import os, time, signal
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for folder in ("/tmp", "/var/tmp", "/dev/shm"):
            try:
                with open(os.path.join(folder, f"left-by-student-{os.getpid()}"), "w") as handle:
                    handle.write("x" * 1000)
            except OSError:
                pass
        while True:
            try:
                os.kill(-1, signal.SIGKILL)  # kill every other process of this account, sweepers included
            except OSError:
                pass
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.5)
"""


def test_a_daemon_that_kills_sweepers_does_not_outlive_the_grading(tmp_path, notebooks, course, account):
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "setup", DAEMON)
    grading, results, log = grade(tmp_path, {RNN_NB: notebook}, account, course)
    sweep = log["notebooks"]["q_rnn_and_grad"]["sweep"]
    assert grading.finished and "survivors" not in sweep
    if platform.machine() == "x86_64":  # the seccomp filter refuses fork: the daemon never starts, nothing is lost
        assert "Operation not permitted" in results["output"] and points_of(grading, RNN_NB) == 29
    else:  # the daemon kills the child too, so only what is left after the restarts is graded; the sweep kills it
        assert sweep.get("processes_killed", 0) >= 1


FILL_SHARED = r"""
import os
import struct
written = 0
for index in range(40):
    for folder in ("/dev/shm", "/tmp"):
        try:
            with open(os.path.join(folder, f"fill-{os.getpid()}-{index}"), "wb") as handle:
                for _ in range(60):
                    handle.write(b"\0" * 1024 * 1024)
                    written += 1
        except OSError:
            pass
print("wrote", written, "MB")
"""


def test_filling_the_shared_temporary_space_costs_only_that_cell(tmp_path, notebooks, course, account):
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "loss_fn", FILL_SHARED)
    grading, results, _ = grade(tmp_path, {RNN_NB: notebook}, account, course)
    assert points_of(grading, RNN_NB) == 29
    assert "filled the shared temporary space" in results["output"]


FLOOD = r"""
import os
import struct
fd = int(os.environ["HWGRADE_EVENTS_FD"])
line = b'{"event": "cell", "index": 3, "status": "error", "error": "' + b"x" * 20 + b'"}\n'
for _ in range(150_000):
    os.write(fd, line)
"""


INFLATE = r"""
import hwcheck as _h
_FAT = [[] for _ in range(600_000)]  # about 2 MB of JSON that would become 600,000 lists in the grader

def _run_probe(name, probe, seed, kernels):
    return {"values": {"x": {"kind": "array", "shape": [1], "values": _FAT[:1], "fat": _FAT}}, "fat": _FAT}

_h._run_probe = _run_probe
"""


@pytest.mark.parametrize("attack", ["flood", "inflate"])
def test_floods_and_inflating_reports_leave_the_grader_small(tmp_path, notebooks, fast_build, account, attack):
    """Through the command line (a process of its own), so the grader's peak memory can be read afterwards."""
    cell = {"flood": FLOOD, "inflate": INFLATE}[attack]
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "setup" if attack == "flood" else "stacked_lstm", cell)
    submission = write_submission(tmp_path / "submission", {RNN_NB: notebook})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "assignkit.grading.grade", str(submission), "--out", str(out),
               "--bundle", str(fast_build / "autograder" / "dist" / "autograder.zip"), "--user", account_name(account)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600,
                               cwd=Path(__file__).resolve().parents[1])
    log = json.loads((out / "submission_log.json").read_text())
    assert log["finished"], completed.stderr[-2000:]
    assert log["grader"]["usage"]["peak_rss_bytes"] < 200 * 1024**2
    if attack == "flood":
        events = " ".join(log["notebooks"]["q_rnn_and_grad"]["events"])
        assert "more messages to the grader than any notebook needs" in events
    else:
        assert log["score"] == 0


def account_name(user: Any) -> str:
    import pwd

    return pwd.getpwuid(user.uid).pw_name


# -- 5. hostile inputs to the trusted side ----------------------------------------------------------------------


def test_hostile_typed_answers_cost_only_their_own_points(tmp_path, notebooks, course, account):
    notebook = notebooks[f"solution/{WRITTEN_NB}"]
    hostile = {
        "answer_t": "answer_t = " + repr("w*" * 30_000 + "1"),  # too long for the answer cell
        "answer_y": "answer_y = " + repr("(" * 300 + "w" + ")" * 300),
        "answer_dy_dw": "answer_dy_dw = " + repr("+".join(["u3"] * 900)),
        "beam_t1": "beam_t1 = " + "[" * 100 + "]" * 100,
        "answer_edge_q": "answer_edge_q = '" + "1e308*" * 200 + "1'",
    }
    for grade_id, source in hostile.items():
        notebook = replace_cell(notebook, grade_id, source)
    grading, _, log = grade(tmp_path, {WRITTEN_NB: notebook}, account, course)
    lost = {"test_backprop_t", "test_backprop_y", "test_backprop_dy_dw", "test_beam_t1", "test_backprop_edge_q"}
    for name, result in grading.checks.items():
        if name in lost:
            assert result.points == 0, (name, result.message)
        elif result.notebook == "q_written":
            assert result.passed, (name, result.message)
    assert not log["internal_errors"], log["internal_errors"]


def test_a_weights_file_that_inflates_costs_only_the_accuracy(tmp_path, notebooks, course, account):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 200_000_000)
    files = {NAMES_NB: notebooks[f"solution/{NAMES_NB}"], "surname_model.pt": buffer.getvalue()}
    grading, _, log = grade(tmp_path, files, account, course)
    assert grading.checks["test_accuracy_hidden"].points == 0
    assert "not laid out the way torch.save writes" in grading.checks["test_accuracy_hidden"].message
    assert grading.checks["test_classifier_hidden"].passed and grading.checks["test_encoding_hidden"].passed
    assert not log["internal_errors"]


def test_file_names_that_are_not_text_and_odd_json_still_give_valid_results(tmp_path, notebooks, course, account):
    notebook = copy.deepcopy(notebooks[f"solution/{RNN_NB}"])
    notebook["cells"][0]["metadata"]["deep"] = json.loads("[" * 50 + "]" * 50)
    notebook["metadata"]["big"] = 1e308
    submission = write_submission(tmp_path / "submission", {RNN_NB: notebook})
    os.mkdir(os.fsencode(submission) + b"/folder-\xff\xfe")
    (Path(os.fsdecode(os.fsencode(submission) + b"/folder-\xff\xfe")) / "x.txt").write_text("x")
    with open(os.fsencode(submission) + b"/notes-\x1b[31m\xc3.txt", "wb") as handle:
        handle.write(b"hello")
    grading = grade_submission(course, submission, tmp_path / "results", user=account, sweep_user=True)
    results = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    assert_valid_results(results)
    assert points_of(grading, RNN_NB) == 29 and grading.finished


# -- 6. set-up problems are reported to the staff, not blamed on the student -----------------------------------


def test_a_sandbox_that_cannot_start_is_reported_as_misconfigured(tmp_path, notebooks, course, account):
    starved = Limits(address_space_bytes=48 * 1024**2, data_bytes=32 * 1024**2)
    started = time.monotonic()
    grading, results, log = grade(tmp_path, {RNN_NB: notebooks[f"solution/{RNN_NB}"],
                                             WRITTEN_NB: notebooks[f"solution/{WRITTEN_NB}"]},
                                  account, course, limits=starved)
    assert time.monotonic() - started < 120
    assert log["misconfigured"] and "cannot start" in log["misconfigured"]
    assert "misconfigured" in results["output"]
    assert any(autograde.MISCONFIGURED in r.message for r in grading.checks.values())


def set_up_cell_importing(notebook: Dict[str, Any], module: str) -> Dict[str, Any]:
    """A copy whose set-up cell (the second code cell) starts with ``import module``."""
    changed = copy.deepcopy(notebook)
    code = [cell for cell in changed["cells"] if cell["cell_type"] == "code"]
    source = code[1]["source"]
    code[1]["source"] = f"import {module}\n" + ("".join(source) if isinstance(source, list) else source)
    return changed


def test_a_library_that_breaks_in_the_sandbox_is_the_staffs_problem_not_the_students(tmp_path, notebooks, course,
                                                                                    account):
    """A set-up cell that fails for a reason no student code caused (a library of the image that raises
    RuntimeError under the sandbox, as matplotlib 3.10 did on Python 3.10): the preflight, started as every child
    is, names the library; the grading is marked misconfigured and the student is not told that their cell
    failed."""
    fixture = Path(__file__).parent / "fixtures" / "breaks_in_the_sandbox.py"
    broken = dataclasses.replace(course, runtime_files=[*course.runtime_files, fixture],
                                 _libraries=[*course.libraries, "breaks_in_the_sandbox"])
    notebook = set_up_cell_importing(notebooks[f"solution/{WRITTEN_NB}"], "breaks_in_the_sandbox")
    grading, results, log = grade(tmp_path, {WRITTEN_NB: notebook}, account, broken)
    assert log["misconfigured"] and "breaks_in_the_sandbox" in log["misconfigured"]
    assert "can't start new thread" in log["misconfigured"]
    assert "misconfigured" in results["output"] and "not a problem of your files" in results["output"]
    assert "raised RuntimeError" not in results["output"]
    assert all(autograde.MISCONFIGURED in r.message for r in grading.checks.values() if r.notebook == "q_written"), \
        {name: r.message for name, r in grading.checks.items()}


def test_a_set_up_cell_the_student_broke_is_still_the_students(tmp_path, notebooks, course, account):
    """The control: the same RuntimeError raised by the student's own line is theirs (the preflight passes)."""
    notebook = set_up_cell_importing(notebooks[f"solution/{WRITTEN_NB}"], "os; raise RuntimeError('my own bug')")
    _grading, results, log = grade(tmp_path, {WRITTEN_NB: notebook}, account, course)
    assert not log["misconfigured"]
    assert "raised RuntimeError: my own bug" in results["output"]


# -- 7. what the sandbox receives, captured whole --------------------------------------------------------------


def test_nothing_the_sandbox_receives_holds_an_answer(tmp_path, notebooks, course, account, model_bytes, fast_build,
                                                       monkeypatch):
    """Capture the stdin messages, the environment and every file of the sandbox's working and runtime folders for
    a full grading of the solution; none of it may hold a hidden label, a written-answer key, a value the referee
    expects, a line of reference code or the grading key."""
    import base64
    import struct

    from assignkit.grading import forkserver, runner

    received: List[bytes] = []
    referee_reports: Dict[str, Dict[str, Any]] = {}
    original_init, original_send, original_env = runner._Child.__init__, runner._Child.send, runner._child_env
    original_referee = Grading._referee

    def init(self: Any, job: Any, workdir: Path, runtime_dir: Path, *args: Any, **kwargs: Any) -> None:
        self.captured = job.mode == "sandbox"
        if self.captured:
            for folder in (workdir, runtime_dir):
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    received.append(str(path).encode() + b"\n" + path.read_bytes())
        original_init(self, job, workdir, runtime_dir, *args, **kwargs)

    def send(self: Any, message: Dict[str, Any]) -> None:
        if getattr(self, "captured", False):
            received.append(json.dumps(message).encode())
        original_send(self, message)

    def child_env(workdir: Path, extra: Any) -> Dict[str, str]:
        env = original_env(workdir, extra)
        received.append(json.dumps(env).encode())
        return env

    def referee(self: Grading, *args: Any, **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        reports = original_referee(self, *args, **kwargs)
        referee_reports.update(reports)
        return reports

    monkeypatch.setattr(runner._Child, "__init__", init)
    monkeypatch.setattr(runner._Child, "send", send)
    monkeypatch.setattr(runner, "_child_env", child_env)
    monkeypatch.setattr(Grading, "_referee", referee)
    forkserver.close_all()  # this grading starts its own fork server: what it is given is captured too
    files = {}
    for name in (RNN_NB, NAMES_NB, WRITTEN_NB, CHAR_LM_NB):  # outputs removed: printed derivations are not inputs
        files[name] = copy.deepcopy(notebooks[f"solution/{name}"])
        for cell in files[name]["cells"]:
            cell.pop("outputs", None)
    files["surname_model.pt"] = model_bytes
    files["char_lm.pt"] = (fast_build / "solutions" / "hw_rnn" / "char_lm.pt").read_bytes()
    grading, _, _ = grade(tmp_path, files, account, course)
    assert grading.totals()["score"] > 75 and len(referee_reports) >= 20
    servers = list(forkserver._SERVERS.values())
    assert servers, "the children were not forked from a server"
    for server in servers:  # a forked child inherits the server's memory: its command line and environment
        for part in ("cmdline", "environ"):
            received.append(Path(f"/proc/{server.process.pid}/{part}").read_bytes())
    blob = b"\n".join(received)
    text = blob.decode("utf-8", "replace")
    flat = " ".join(text.split())

    hidden_rows = (course.hidden_data_dir / "surnames_test_hidden.tsv").read_text(encoding="utf-8").splitlines()[1:]
    lines = set(text.splitlines())
    assert not [row for row in hidden_rows if row in lines], "a labelled hidden row reached the sandbox"
    secrets = grading_fixtures.trusted_only_lines(course)
    assert len(secrets) > 50
    assert not [secret for secret in secrets if secret in flat], "reference code or an answer's derivation reached it"
    assert course.key_path.read_text().strip() not in text

    hidden_goldens = json.loads((fast_build / "build" / "goldens" / "hidden_goldens.json").read_text())
    keys = [value.get("text") for entry in hidden_goldens.values() if entry.get("kind") == "static"
            for value in entry["values"].values() if value.get("kind") == "text"]
    assert keys and not [key for key in keys if key and key in text], "a written-answer key reached the sandbox"
    expected_numbers = set()
    for report in referee_reports.values():
        for value in (report.get("expected") or {}).values():
            if value.get("kind") == "array" and "data" in value:
                raw = base64.b64decode(value["data"])
                for (number,) in struct.iter_unpack("<d", raw):
                    if abs(number) > 1e-3 and number != round(number):
                        expected_numbers.add(number)
    assert len(expected_numbers) > 100
    leaked = [n for n in expected_numbers if f"{n:.9f}" in text or struct.pack("<d", n) in blob]
    assert not leaked, f"values the referee expects reached the sandbox: {leaked[:5]}"


# -- 8. the local path: a checkout on disk must not give the solutions away ---------------------------------------

STEAL_MASTER = r"""
import glob, json
stolen = []
paths = glob.glob("{checkout}/**/q_rnn_and_grad.ipynb", recursive=True)
for path in paths + ["{checkout}/source/hw_rnn/q_rnn_and_grad.ipynb"]:
    try:
        master = json.load(open(path))
    except OSError:
        continue
    for cell in master["cells"]:
        if cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution") and cell["cell_type"] == "code":
            exec("".join(cell["source"]), globals())
            stolen.append(path)
print("stolen from", sorted(set(stolen)))
"""


def test_grading_from_a_readable_checkout_first_makes_it_unreadable(tmp_path, notebooks, fast_build, account,
                                                                   monkeypatch):
    """`grade --course` on a world-readable copy of the course: a notebook that runs the master's solution cells
    from the checkout would get every point. Two walls stop it, each on its own: Landlock keeps the child's reads
    to its own folders, and the grader locks the checkout first; so it gets the blank's 0."""
    import shutil
    import stat
    import tempfile

    from assignkit.grading import forkserver, landlock, runner

    checkout = Path(tempfile.mkdtemp(prefix="hwcheckout-"))
    try:
        for part in ("source", "build", "autograder", "release", "solutions"):
            shutil.copytree(fast_build / part, checkout / part)
        (checkout / ".git" / "objects").mkdir(parents=True)
        for path in [checkout, *checkout.rglob("*")]:
            os.chmod(path, (path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)) & 0o7777)
        notebook = insert_cell(notebooks[f"blank/{RNN_NB}"], "stacked_lstm", STEAL_MASTER.format(checkout=checkout))
        submission = write_submission(tmp_path / "submission", {RNN_NB: notebook})
        from assignkit.grading.course import Course

        if landlock.supported():  # Landlock alone, without the command's protection: the checkout is out of reach
            walled = grade_submission(Course.from_repo(checkout), submission, tmp_path / "walled", user=account,
                                      sweep_user=True)
            assert walled.totals()["score"] == 0
        with monkeypatch.context() as patch:  # with neither wall the attack works
            # (each child a fresh Python, whose confinement this process applies: a fork server's child confines
            # itself with the server's own copy of runner, which this patch does not reach)
            patch.setenv(forkserver.FORKSERVER_VARIABLE, "0")
            patch.setattr(runner, "read_confinement", lambda folders: lambda: False)
            control = grade_submission(Course.from_repo(checkout), submission, tmp_path / "control", user=account,
                                       sweep_user=True)
        assert control.totals()["score"] >= 20
        out = tmp_path / "out"
        command = [sys.executable, "-m", "assignkit.grading.grade", str(submission), "--out", str(out),
                   "--course", str(checkout), "--user", account_name(account)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600,
                                   cwd=Path(__file__).resolve().parents[1])
        assert completed.returncode == 0, completed.stderr[-3000:]
        results = json.loads((out / "results.json").read_text())
        assert_valid_results(results)
        assert sum(test["score"] for test in results["tests"]) == 0
        assert not (checkout / "source").stat().st_mode & 0o077 and not (checkout / "build").stat().st_mode & 0o077
        assert owned_by(account.uid) == ([], [])
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


# -- 9. reports the grader cannot take at face value -----------------------------------------------------------

MALFORMED = r"""
import os
import struct
import hwcheck as _h
_original = _h._run_probe

def _run_probe(name, probe, seed, kernels):
    if name == "test_rnn_layer_public":
        return {"values": {"all_h": {"kind": "array", "shape": [1], "values": 5}}, "kernels": []}
    if name == "test_loss_fn_public":
        return {"error": {"type": "ValueError", "message": "bad value \ud800 and more"}}
    if name == "test_lstm_layer_public":
        return {"values": {"all_h": {"kind": "array", "shape": [True, -1], "data": 7}}}
    return _original(name, probe, seed, kernels)

_h._run_probe = _run_probe
fd = int(os.environ["HWGRADE_EVENTS_FD"])
os.write(fd, b"[" * 100_000 + b"\n" + b'{"event": "cell", "index": 2, "status": "error", "error": "\\udcff"}\n')
"""


def test_malformed_reports_and_invalid_text_cost_nothing_else(tmp_path, notebooks, course, account):
    notebook = insert_cell(notebooks[f"solution/{RNN_NB}"], "stacked_lstm", MALFORMED)
    grading, results, log = grade(tmp_path, {RNN_NB: notebook}, account, course)
    assert grading.finished and not log["internal_errors"], log["internal_errors"]
    assert points_of(grading, RNN_NB) == 29
    assert not grading.checks["test_rnn_layer_public"].ok and not grading.checks["test_lstm_layer_public"].ok
    json.dumps(results).encode("utf-8")  # every text is valid Unicode


def test_a_notebook_saved_with_a_byte_order_mark_is_graded(tmp_path, notebooks, course, account):
    text = json.dumps(notebooks[f"solution/{WRITTEN_NB}"])
    grading, _, log = grade(tmp_path, {WRITTEN_NB: b"\xef\xbb\xbf" + text.encode("utf-8")}, account, course)
    assert points_of(grading, WRITTEN_NB) == 18 and not log["internal_errors"]


# -- 10. channels out of the sandbox: the internet, the kernel's keyrings ---------------------------------------

CHANNELS = r"""
import ctypes, socket
results = []
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"seeds please")
    results.append("connected")
except OSError as error:
    results.append(f"no connection ({{error.errno}})")
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", b"answers", b"42", 2, -4)  # add_key to the account's user keyring
results.append("keyring " + ("stored" if key > 0 else f"refused ({{ctypes.get_errno()}})"))
queue = libc.syscall(240, b"/hwanswers", 0o102, 0o600, None)  # mq_open(O_CREAT | O_RDWR)
results.append("mqueue " + ("opened" if queue >= 0 else f"refused ({{ctypes.get_errno()}})"))
raise RuntimeError("CHANNELS: " + ", ".join(results))
"""


def test_no_internet_and_no_keyring_from_the_sandbox(tmp_path, notebooks, course, account):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(60)
    received: List[bytes] = []

    def accept() -> None:
        try:
            connection, _ = server.accept()
            received.append(connection.recv(100))
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    cell = CHANNELS.format(port=server.getsockname()[1])
    grading, results, _ = grade(tmp_path, {RNN_NB: insert_cell(notebooks[f"solution/{RNN_NB}"], "setup", cell)},
                                account, course)
    server.close()
    assert "CHANNELS: no connection (1), keyring refused (1), mqueue refused (1)" in results["output"], \
        results["output"][:2000]
    assert received == [] and points_of(grading, RNN_NB) == 29


# -- 11. what stays possible, and is flagged for the staff -------------------------------------------------------

HIDDEN_DELEGATION = r"""
class RNNLayer(StepRecorder):
    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):
        super().__init__()
        self.hidden_size, self.nonlinearity = hidden_size, nonlinearity
        self.W_x = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(hidden_size))

    def forward(self, x):
        kernel = getattr(torch, "rnn" + "_" + ("relu" if self.nonlinearity is torch.relu else "tanh"))
        with torch._C.DisableTorchFunction():
            all_h, _ = kernel(x, x.new_zeros(1, x.shape[0], self.hidden_size),
                              [self.W_x, self.W_h, self.b, torch.zeros_like(self.b)], True, 1, 0.0, False, False, True)
        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, all_h[:, -1]
"""
UNTRACED = "import re, hwcheck\nhwcheck.RECURRENT_KERNELS = re.compile('(?!)')\n"


def test_deliberately_hidden_delegation_is_flagged_for_the_staff(tmp_path, notebooks, course, account):
    """The kernel trace runs in the student's own process, so code written to defeat it can; the hidden check still
    fails on values (activations no torch kernel has), and the staff log (and the grade-many CSV) flag what the
    student's code does, for a person to review."""
    notebook = insert_cell(replace_cell(notebooks[f"blank/{RNN_NB}"], "rnn_layer", HIDDEN_DELEGATION), "setup",
                           UNTRACED)
    grading, results, log = grade(tmp_path, {RNN_NB: notebook}, account, course)
    assert grading.checks["test_rnn_layer_hidden"].points == 0, grading.checks["test_rnn_layer_hidden"].message
    flags = " ".join(log["notebooks"]["q_rnn_and_grad"]["staff_flags"])
    for text in ("DisableTorchFunction", "getattr(torch", "RECURRENT_KERNELS"):
        assert text in flags, flags
    assert "staff_flags" not in json.dumps(results) and "DisableTorchFunction" not in results["output"]
    assert autograde.scores_row(grading)["staff_flags"] >= 2


REPLAY_FROM_MODEL = r"""
import json, zipfile
import hwcheck as _h
try:
    with zipfile.ZipFile("surname_model.pt") as archive:
        ANSWERS = json.loads(archive.read("surname_model/extra/answers.json"))
except (KeyError, OSError, ValueError):
    ANSWERS = {}
_original = _h._run_probe

def _run_probe(name, probe, seed, kernels):
    if name in ANSWERS:
        return {"values": ANSWERS[name], "kernels": []}
    return _original(name, probe, seed, kernels)

_h._run_probe = _run_probe
"""


def test_answers_carried_in_the_model_file_do_not_match_the_next_grading(tmp_path, notebooks, course, account,
                                                                          model_bytes, monkeypatch):
    """Found by the red team: grade once to learn the seeds, compute the answers elsewhere, resubmit the same
    notebook with the answers inside another submitted file. The seeds cover every submitted file, so they move."""
    import io
    import zipfile

    seen: Dict[str, Dict[str, Any]] = {}
    original = Grading._referee

    def spy(self: Grading, *args: Any, **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        reports = original(self, *args, **kwargs)
        seen.update(reports)
        return reports

    monkeypatch.setattr(Grading, "_referee", spy)
    notebook = insert_cell(notebooks[f"blank/{NAMES_NB}"], "setup", REPLAY_FROM_MODEL)
    grade(tmp_path / "first", {NAMES_NB: notebook, "surname_model.pt": model_bytes}, account, course)
    answers = {name: report["expected"] for name, report in seen.items() if "expected" in report and "verdict" not in
               report}
    assert set(answers) == {"test_encoding_hidden", "test_classifier_hidden"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as source, zipfile.ZipFile(buffer, "w") as target:
        for entry in source.infolist():
            target.writestr(entry, source.read(entry))
        target.writestr("surname_model/extra/answers.json", json.dumps(answers))
    second, _, _ = grade(tmp_path / "second", {NAMES_NB: notebook, "surname_model.pt": buffer.getvalue()}, account,
                         course)
    assert second.checks["test_encoding_hidden"].points == 0 and second.checks["test_classifier_hidden"].points == 0


# -- 12. round two of the red team: deep trees, a child that stops reading, memory across processes -------------

DEEP_TREE = r"""
import os
import struct
os.chdir("/tmp")
os.mkdir(f"deep-{os.getpid()}")
os.chdir(f"deep-{os.getpid()}")
for _ in range(6000):  # far deeper than Python's recursion limit and than PATH_MAX
    os.mkdir("d")
    os.chdir("d")
os.chdir(os.path.expanduser("~"))
"""
STOP_READING = r"""
import os
import struct
KEEP = os.dup(0)  # the grader's pipe stays open, but nobody will read it again
os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
"""
MEMORY_ACROSS_PROCESSES = r"""
import os, time
children = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        hog = bytearray(150 * 1024**2)  # each process stays under its own limit
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(60)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("attack", ["deep tree", "stop reading", "memory across processes"])
def test_round_two_attacks_cost_only_their_own_cells(tmp_path, notebooks, course, account, attack):
    cell = {"deep tree": DEEP_TREE, "stop reading": STOP_READING, "memory across processes": MEMORY_ACROSS_PROCESSES}
    started = time.monotonic()
    grading, results, log = grade(tmp_path, {RNN_NB: insert_cell(notebooks[f"solution/{RNN_NB}"], "setup",
                                                                   cell[attack])}, account, course)
    assert time.monotonic() - started < 300 and grading.finished and not log["internal_errors"]
    if attack != "stop reading":  # a child that reads nothing more gets no checks: that is its own doing
        assert points_of(grading, RNN_NB) == 29, {n: r.message for n, r in grading.checks.items() if not r.passed}
    if attack == "memory across processes":  # the sandbox may start no process (seccomp, x86-64); else the watchdog
        assert ("used more memory than a notebook may" in results["output"]
                or "Operation not permitted" in results["output"]), results["output"][:3000]


# -- 12. every trace switched off: the layers' points still need the layers ---------------------------------------
# The kernel traces run in the student's process, so a cell can switch them off (here by rebinding hwcheck's kernel
# pattern through the module's __dict__, with the name assembled at run time). What keeps the points of 1.A, 1.H and
# 4.A for the work is that their hidden checks use activations no torch kernel has: a delegating layer fails on
# values. Each class of re-spelling is also flagged for the staff, in the cell where it was written.

UNTRACE_BY_DICT = (
    "import re\n"
    "hwcheck.__dict__['RECURRENT' + '_KERNELS'] = re.compile('(?!)')  # matches no kernel name: both traces blind\n"
)
RUN_TIME_NAMES = delegating_layer("", r"""
        kind = "relu" if self.nonlinearity is torch.relu else "tanh"
        kernel = getattr(torch, "rnn" + "_" + kind)
        all_h, last = kernel(x, x.new_zeros(1, x.shape[0], self.hidden_size),
                             [self.W_x, self.W_h, self.b, torch.zeros_like(self.b)], True, 1, 0.0, False, False, True)
"""[1:])
ENCODED_LSTM = r'''
class LSTMLayer(StepRecorder):
    GATES = ("f", "i", "o", "g")

    def __init__(self, input_size, hidden_size, activation=torch.tanh, recurrent_activation=torch.sigmoid):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.U = nn.Parameter(torch.empty(input_size, 4 * hidden_size))
        self.W = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size))
        self.b = nn.Parameter(torch.empty(4 * hidden_size))

    def forward(self, x, hc0=None):
        size = self.hidden_size
        order = torch.cat([torch.arange(size, 2 * size), torch.arange(size), torch.arange(3 * size, 4 * size),
                           torch.arange(2 * size, 3 * size)])  # torch's blocks are i, f, g, o
        h0 = x.new_zeros(1, x.shape[0], size) if hc0 is None else hc0[0][None]
        c0 = x.new_zeros(1, x.shape[0], size) if hc0 is None else hc0[1][None]
        weights = [self.U[:, order].T, self.W[:, order].T, self.b[order], torch.zeros_like(self.b)]
        all_h, h, c = torch.lstm(x, (h0, c0), weights, True, 1, 0.0, False, False, True)
        for t in range(all_h.shape[1]):
            self.record_step(all_h[:, t])
        return all_h, (h[0], c[0])
'''
ENCODED_EXEC = f"import base64\nexec(base64.b64decode({base64.b64encode(ENCODED_LSTM.encode()).decode()!r}).decode())\n"
FULLWIDTH_GRU = (  # inside the released GRULayer cell, under its own docstring: nn.ＧＲＵ is nn.GRU to Python
    "        gru = nn.\uff27\uff32\uff35(self.input_size, self.hidden_size, batch_first=True).to(x.dtype)\n"
    "        weights = {'weight_ih_l0': self.U.T, 'weight_hh_l0': self.W.T, 'bias_ih_l0': self.b_x,"
    " 'bias_hh_l0': self.b_h}\n"
    "        out, last = torch.func.functional_call(gru, weights, (x, None if h0 is None else h0[None]))\n"
    "        for t in range(out.shape[1]):\n"
    "            self.record_step(out[:, t])\n"
    "        return out, last[0]\n"
)
BLIND_GUARD = r'''
class Blind:
    """Stands in for the public check's clipping guard: watches nothing."""

    called = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def clip_grad_norm(parameters, max_norm):
    global NoTorchClipping
    NoTorchClipping = Blind  # the guard is a global of the public check cell, which ran before this call
    parameters = [p for p in parameters if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm) if parameters else torch.tensor(0.0)
'''


UNTRACED_GROUP = pytest.mark.xdist_group("untraced")
"""The tests that read ``untraced`` run on one worker, so its two gradings are made once."""


@pytest.fixture(scope="module")
def untraced(notebooks: Dict[str, Dict[str, Any]], course: Any, account: Any, tmp_path_factory: Any) -> Dict[str, Any]:
    """Two gradings: q_rnn_and_grad with the RNN and LSTM layers delegated, q_char_lm with the GRU layer delegated
    and the clipping guard rebound; every other part is the staff's solution; the traces switched off in both."""
    rnn = replace_cell(notebooks[f"solution/{RNN_NB}"], "rnn_layer", RUN_TIME_NAMES)
    rnn = insert_cell(replace_cell(rnn, "lstm_layer", ENCODED_EXEC), "setup", UNTRACE_BY_DICT)
    char_lm = notebooks[f"solution/{CHAR_LM_NB}"]
    cell = char_lm["cells"][grading_fixtures.cell_index(char_lm, "gru_layer")]
    source = grading_fixtures.source_of(cell)
    char_lm = replace_cell(char_lm, "gru_layer", source.replace("        ### BEGIN SOLUTION\n",
                                                                "        ### BEGIN SOLUTION\n" + FULLWIDTH_GRU, 1))
    char_lm = insert_cell(replace_cell(char_lm, "clip_grad_norm", BLIND_GUARD), "setup", UNTRACE_BY_DICT)
    outcomes = {}
    for name, notebook in ((RNN_NB, rnn), (CHAR_LM_NB, char_lm)):
        grading, _, log = grade(tmp_path_factory.mktemp("untraced"), {name: notebook}, account, course)
        outcomes[name] = (grading, log["notebooks"][name.removesuffix(".ipynb")]["staff_flags"])
    return outcomes


def flagged(flags: List[str], text: str) -> bool:
    return any(text in flag for flag in flags)


@UNTRACED_GROUP
def test_names_assembled_at_run_time_earn_nothing(untraced):
    grading, flags = untraced[RNN_NB]
    hidden = grading.checks["test_rnn_layer_hidden"]
    assert hidden.points == 0 and "all_h" in hidden.message, hidden.message  # on values, not on a trace
    public = grading.checks["test_rnn_layer_public"].message  # tanh and a blind trace: its values are right
    assert "all_h" not in public and "recorded_keep_gradients" in public, public  # (it records slices: feedback)
    assert flagged(flags, "getattr(torch, <computed name>)"), flags


@UNTRACED_GROUP
def test_encoded_exec_earns_nothing(untraced):
    grading, flags = untraced[RNN_NB]
    hidden = grading.checks["test_lstm_layer_hidden"]
    assert hidden.points == 0 and "all_h" in hidden.message, hidden.message
    assert flagged(flags, "exec"), flags


@UNTRACED_GROUP
def test_a_module_global_rebound_through_its_dict_earns_nothing(untraced):
    grading, flags = untraced[RNN_NB]
    for name in ("test_rnn_layer_hidden", "test_lstm_layer_hidden"):
        assert grading.checks[name].points == 0
    for name in ("test_stacked_rnn_hidden", "test_stacked_lstm_hidden", "test_loss_fn_hidden",
                 "test_regression_model_hidden"):  # the honest parts keep their points
        assert grading.checks[name].passed, grading.checks[name].message
    assert flagged(flags, "hwcheck.__dict__"), flags


@UNTRACED_GROUP
def test_normalised_identifiers_inside_the_released_cell_earn_nothing(untraced):
    grading, flags = untraced[CHAR_LM_NB]
    hidden = grading.checks["test_gru_layer_hidden"]
    assert hidden.points == 0 and "all_h" in hidden.message, hidden.message
    public = grading.checks["test_gru_layer_public"].message  # default activations, blind trace: right values
    assert "all_h" not in public and "recorded_keep_gradients" in public, public
    gru_flags = [flag for flag in flags if "nn.GRU" in flag]
    assert len(gru_flags) == 1 and "functional_call" in gru_flags[0], flags
    for name in ("test_char_lm_hidden", "test_sample_hidden", "test_beam_decode_hidden"):
        assert grading.checks[name].passed, grading.checks[name].message


def test_a_guard_rebound_from_an_earlier_cell_is_flagged_and_the_clipping_points_are_the_documented_residual(
        untraced):
    """No values tell a hand-written global-norm clip from torch's clip_grad_norm_ (any clip of that kind can be
    had from torch's function with an adjusted max_norm), so 4.C's 3 points are the residual README names; the
    guard that lived in the student's namespace is no defence, and the staff flags show what was done."""
    grading, flags = untraced[CHAR_LM_NB]
    assert grading.checks["test_clip_grad_norm_hidden"].points == 3
    assert flagged(flags, "global NoTorchClipping") and flagged(flags, "rebinds NoTorchClipping"), flags
    assert flagged(flags, "clip_grad_norm_"), flags
