"""Checks for the RNN homework notebooks.

Every check in the notebooks is a *probe*: a small function that runs your code on some inputs and
returns raw values (tensors, arrays, numbers or short strings) under names such as ``"all_h"``.
What happens to those values depends on where the notebook runs:

``notebook`` (default: Jupyter, Colab, ``nbgrader autograde``)
    The values are compared with the expected values recorded from the staff solution; a mismatch
    raises :class:`CheckFailed` with a message that says what is wrong (shape, largest error, first
    differing timestep).
``record`` (staff build, ``HWCHECK_RECORD=<file>``)
    The probe runs on the staff solution; when a trusted reference (``torch.nn.RNN`` ...) is given, the
    solution must agree with it on several seeds, and the expected values are recorded.
``probe`` (the grader's sandbox, which runs your notebook)
    The values are only encoded and handed to the grader, which compares them elsewhere. Hidden checks
    get their random seeds from the grader, fresh for every submission.
``referee`` (the grader's trusted process, which never runs student code)
    The same probes run on the staff solution (or the trusted reference) with the grader's seeds, to
    produce the values a submission must match; typed answers are read from the submitted notebook file.

The module imports neither torch nor numpy at import time, so the grader can use the comparison code
without loading torch.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import struct
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

Encoded = Dict[str, Any]
Values = Dict[str, Encoded]

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-6
RECORD_TOLERANCE = 1e-9
DIAGNOSE = "diagnose/"  # prefix of a probe's diagnostic values (see compare_values)
MAX_TEXT = 2000
MAX_ELEMENTS = 1_000_000

_GOLDENS_FILE = "public_goldens.json"


class CheckFailed(AssertionError):
    """Raised in notebook mode when a check does not pass; the message says why."""


# ----------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------

NOTEBOOK_SEED = 20240917
"""The seed of the hidden checks outside the grader (the staff build and ``nbgrader autograde``)."""
RECORD_SEEDS = (NOTEBOOK_SEED, 1, 977)
"""Seeds on which the build makes the staff solution agree with the trusted reference."""
GOLDENS_ENV = "HWCHECK_GOLDENS"

Sink = Callable[[str, Dict[str, Any]], None]
_mode = "notebook"
_sink: Optional[Sink] = None
_requests: Dict[str, Dict[str, Any]] = {}
_submitted: Dict[str, str] = {}


def use_probe_mode(sink: Optional[Sink], requests: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
    """Grader's sandbox: send each requested check's raw values to ``sink(name, report)``.

    ``requests`` maps a check name to ``{"seed": int}`` (hidden checks) or ``{}``; other checks are ignored.
    With ``sink=None`` every check is a no-op (while the notebook's own cells run).
    """
    global _mode, _sink, _requests
    _mode, _sink = ("probe" if sink else "quiet"), sink
    _requests = {str(k): dict(v) for k, v in (requests or {}).items()}


def use_notebook_mode() -> None:
    """Back to the default: compare in this process (Jupyter, Colab, nbgrader)."""
    global _mode, _sink, _requests, _submitted
    _mode, _sink, _requests, _submitted = "notebook", None, {}, {}


def use_referee_mode(sink: Optional[Sink], requests: Mapping[str, Mapping[str, Any]],
                     submitted: Mapping[str, str]) -> None:
    """Grader's trusted referee: compute the expected values of the requested checks (see the module doc).

    ``submitted`` maps ``"notebook"`` (and other submitted file names) to paths the referee may read.
    """
    global _mode, _sink, _requests, _submitted
    _mode, _sink = "referee", sink
    _requests = {str(k): dict(v) for k, v in requests.items()}
    _submitted = dict(submitted)


def fast_mode() -> bool:
    """True when long cells should take their short path (CI, ``nbgrader autograde``, grading)."""
    return bool(os.environ.get("HW_FAST") or os.environ.get("NBGRADER_EXECUTION"))


def short_run() -> bool:
    """True when the course's tools run the notebook only to check that every cell works: its training loops are
    then shortened (see :func:`steps`)."""
    return fast_mode()


def steps(full: int, short: int) -> int:
    """How long a training loop of the notebook runs: ``full`` when you run it; ``short`` when the course's tools
    run the whole notebook only to check that every cell works (the notebook's given code uses this)."""
    return short if fast_mode() else full


def graded_weights(path: str) -> Optional[str]:
    """``path`` when this notebook is being graded next to the weights file you submitted (the grader then uses
    your saved weights and does not train again); ``None`` when you run the notebook yourself."""
    return path if os.environ.get("NBGRADER_EXECUTION") and Path(path).exists() else None


def submitted_file(name: str) -> str:
    """Where the referee finds a submitted file (e.g. ``surname_model.pt``); elsewhere just ``name``."""
    return _submitted.get(name, name) if _mode == "referee" else name


STARTED = __import__("time").time()
"""When this module was imported: the set-up cell of the running notebook, i.e. when its current run began."""


def run_environment(notebook: str) -> Dict[str, str]:
    """The environment for ``check_submission.py`` started from a notebook's last cell: which notebook is running
    and since when, so that a notebook run but not saved since is told apart from one never run."""
    return {**os.environ, "HW_RUNNING_NOTEBOOK": notebook, "HW_RUN_STARTED": repr(STARTED)}


TESTED_TORCH = "2.13.0"
"""The torch release the homework was built and tested with (the release's requirements.txt pins it)."""


def torch_note(version: str) -> str:
    """The set-up cell's line about torch: its version, and a warning when it is not the tested one (Colab, say,
    comes with its own)."""
    if version.split("+")[0] == TESTED_TORCH:
        return f"torch {version}"
    return (f"torch {version} — note: this homework was tested with torch {TESTED_TORCH}. Everything should work, "
            "but if a check fails although you are sure of your code, say which torch you use when you ask the "
            f"course staff (pip install torch=={TESTED_TORCH} gives the tested one).")


def typed_value(variable: str, cell: Optional[str] = None, default: Any = None) -> Any:
    """The literal value the student typed for ``variable`` (e.g. ``STUDENT_ID``): in the referee, read from the
    submitted notebook file (never run; ``default`` when it cannot be read); elsewhere, the notebook's own value.
    The answer keys of per-student variants use it to know whose variant to compute."""
    if _mode == "referee":
        path = _submitted.get("notebook")
        try:
            notebook = json.loads(Path(path).read_text(encoding="utf-8-sig")) if path else None
            return read_literal_answer(notebook, variable, cell or variable) if notebook is not None else default
        except (OSError, ValueError, RecursionError):
            return default
    import __main__

    return getattr(__main__, variable, default)


# ----------------------------------------------------------------------------------------------------
# Encoding raw values (JSON only: never pickle)
# ----------------------------------------------------------------------------------------------------


def _float_to_json(x: float) -> Any:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _float_from_json(x: Any) -> float:
    if isinstance(x, str):
        if x in ("nan", "inf", "-inf"):
            return float(x)
        raise ValueError(f"not a number: {x[:20]!r}")
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError("not a number")
    return float(x)


def encode(value: Any) -> Encoded:
    """Turn a probe result into a JSON-safe record.

    Tensors, arrays, numbers and nested lists of numbers become ``{"kind": "array", "shape": [...],
    "dtype": "<source dtype>", "data": <base64 of little-endian float64>}``; strings become
    ``{"kind": "text"}``; ``None`` becomes ``{"kind": "none"}``. Anything else raises ``TypeError``.
    """
    if value is None:
        return {"kind": "none"}
    if isinstance(value, str):
        return {"kind": "text", "text": value[:MAX_TEXT]}
    dtype = type(value).__name__
    module = type(value).__module__ or ""
    if module.startswith("torch"):
        dtype = str(value.dtype).replace("torch.", "")
        value = value.detach().cpu().to(dtype=_torch().float64).numpy()
    import numpy as np

    if isinstance(value, np.ndarray):
        dtype = str(value.dtype) if module.startswith("numpy") else dtype
        if value.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers, got an array of dtype {value.dtype}")
    elif isinstance(value, (bool, int, float, np.number, list, tuple)):
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"expected numbers, got {type(value).__name__}") from exc
    else:
        raise TypeError(f"expected a tensor, array or number, got {type(value).__name__}")
    array = np.ascontiguousarray(value, dtype="<f8")
    if array.size > MAX_ELEMENTS:
        raise TypeError(f"too many values ({array.size})")
    return {
        "kind": "array",
        "shape": list(array.shape),
        "dtype": dtype,
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _torch() -> Any:
    import torch

    return torch


def decode_array(record: Encoded) -> Tuple[Tuple[int, ...], List[float]]:
    """Validate an encoded array and return ``(shape, flat values)``; raises ``ValueError`` on anything malformed."""
    if not isinstance(record, Mapping):
        raise ValueError("not an encoded value")
    shape = record.get("shape")
    if not isinstance(shape, list) or len(shape) > 16 or \
            not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise ValueError("malformed shape")
    size = 1
    for n in shape:
        size *= n
        if size > MAX_ELEMENTS:
            raise ValueError("too many values")
    if "data" in record:
        data = record["data"]
        if not isinstance(data, str) or len(data) > 12 * size + 16:
            raise ValueError("data does not match shape")
        try:
            raw = base64.b64decode(data, validate=True)
        except (ValueError, TypeError):
            raise ValueError("data is not base64") from None
        if len(raw) != 8 * size:
            raise ValueError("data does not match shape")
        flat = list(struct.unpack(f"<{size}d", raw))
    else:
        values = record.get("values", [])
        if not isinstance(values, list):
            raise ValueError("values are not a list")
        flat = [_float_from_json(x) for x in values]
        if len(flat) != size:
            raise ValueError("values do not match shape")
    return tuple(shape), flat


def digest(record: Encoded) -> str:
    """A SHA-256 of a value's canonical form: text with collapsed whitespace, numbers rounded to 1e-4."""
    import hashlib

    if record.get("kind") == "array":
        shape, flat = decode_array(record)
        canonical = json.dumps({"shape": list(shape), "values": [_float_to_json(round(x, 4) + 0.0) for x in flat]})
    else:
        canonical = " ".join(str(record.get("text", "")).split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def to_golden(record: Encoded, digits: int = 12, spec: Optional[Mapping[str, Any]] = None) -> Encoded:
    """A readable, rounded copy of an encoded value, as stored in the goldens files.

    With ``spec={"kind": "digest"}`` only a digest is stored: for public checks whose values would give
    away the answer to another question.
    """
    if spec and spec.get("kind") == "digest":
        return {"kind": "digest", "sha256": digest(record)}
    if record.get("kind") != "array":
        return dict(record)
    shape, flat = decode_array(record)
    values = [_float_to_json(float(f"{x:.{digits}g}")) if math.isfinite(x) else _float_to_json(x) for x in flat]
    return {"kind": "array", "shape": list(shape), "values": values}


# ----------------------------------------------------------------------------------------------------
# Comparison (used in the notebook and, unchanged, by the grader)
# ----------------------------------------------------------------------------------------------------


def _shape_text(shape: Sequence[int], layout: Optional[str]) -> str:
    dims = ", ".join(str(n) for n in shape)
    if layout and len(layout) == len(shape):
        return f"({', '.join(layout)}) = ({dims}{',' if len(shape) == 1 else ''})"
    return f"({dims}{',' if len(shape) == 1 else ''})"


def _unravel(index: int, shape: Sequence[int]) -> Tuple[int, ...]:
    out = []
    for n in reversed(shape):
        out.append(index % n if n else 0)
        index = index // n if n else 0
    return tuple(reversed(out))


def compare_value(
    key: str,
    actual: Encoded,
    expected: Encoded,
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    layout: Optional[str] = None,
    reveal: bool = True,
    spec: Optional[Mapping[str, Any]] = None,
) -> Optional[str]:
    """Return ``None`` when ``actual`` matches ``expected``, else a one-line explanation.

    ``layout`` names the axes (e.g. ``"BTH"``) so messages can say which timestep differs first.
    With ``reveal=False`` (hidden checks) the message never contains expected numbers.
    ``spec`` says how to compare text: ``{"kind": "expression", "symbols": [...], ...}`` compares typed
    formulas by mathematical equivalence (see ``safe_expr.equivalent``); the default is exact text.
    """
    kind = expected.get("kind")
    if kind == "digest":
        try:
            same = digest(actual) == expected.get("sha256")
        except ValueError as exc:
            return f"{key}: unreadable value ({exc})"
        return None if same else f"{key}: does not match the expected result"
    if actual.get("kind") != kind:
        return f"{key}: expected {_kind_text(kind)}, got {_kind_text(actual.get('kind'))}"
    if kind == "none":
        return None
    if kind == "text":
        return _compare_text(key, str(actual.get("text", "")), str(expected.get("text", "")), spec or {})
    try:
        shape, got = decode_array(actual)
    except ValueError as exc:
        return f"{key}: unreadable value ({exc})"
    want_shape, want = decode_array(expected)
    if shape != want_shape:
        return f"{key}: expected shape {_shape_text(want_shape, layout)}, got {_shape_text(shape, None)}"
    time_axis = layout.index("T") if layout and len(layout) == len(shape) and "T" in layout else None
    bad_index = -1
    worst = 0.0
    non_finite = False
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if math.isfinite(w):
            if not math.isfinite(g):
                non_finite = True
            elif abs(g - w) <= atol + rtol * abs(w):
                continue
            else:
                worst = max(worst, abs(g - w))
        elif g == w or (math.isnan(g) and math.isnan(w)):
            continue
        if bad_index < 0 or (
            time_axis is not None and _unravel(i, shape)[time_axis] < _unravel(bad_index, shape)[time_axis]
        ):
            bad_index = i
    if bad_index < 0:
        return None
    where = _unravel(bad_index, shape)
    parts = [f"{key}:"]
    if non_finite:
        parts.append("contains NaN or inf;")
    if worst:
        parts.append(f"max abs error {worst:.3g} (tolerance {atol:g} + {rtol:g}*|expected|);")
    if time_axis is not None:
        parts.append(f"first differing timestep t={where[time_axis]} (index {where})")
    elif shape:
        parts.append(f"first difference at index {where}")
    if reveal:
        parts.append(f"expected {want[bad_index]:.6g}, got {got[bad_index]:.6g}")
    return " ".join(parts)


_SAFE_EXPR_LOCK = threading.Lock()


def _safe_expr() -> Any:
    """The ``safe_expr`` module that sits next to this file (never one found elsewhere on sys.path)."""
    import importlib.util
    import sys

    name = "_hwcheck_safe_expr"
    with _SAFE_EXPR_LOCK:
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("safe_expr.py"))
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module  # registered only once fully loaded (graders may use threads)
    return sys.modules[name]


def _compare_text(key: str, answer: str, expected: str, spec: Mapping[str, Any]) -> Optional[str]:
    if spec.get("kind") == "expression":
        safe_expr = _safe_expr()
        if not answer.strip():
            return f"{key}: no answer given"
        try:
            same, why = safe_expr.equivalent(
                answer,
                expected,
                list(spec["symbols"]),
                definitions=spec.get("definitions"),
                target=spec.get("target"),
            )
        except safe_expr.AnswerError as error:
            return f"{key}: {error}"
        return None if same else f"{key}: {why or 'not equivalent to the expected expression'}"
    if answer == expected:  # exactly: in a name 'a' and 'A' are different symbols (typed answers that may differ
        return None  # in case or spacing are put in a canonical form by their check's transform first)
    return f"{key}: the answer is not the expected one (text is compared exactly, case and spaces included)"


def _kind_text(kind: Any) -> str:
    return {"array": "numbers", "text": "text", "none": "None"}.get(str(kind), "nothing")


def _hint_for(short: str, hints: Mapping[str, str]) -> Optional[str]:
    """The hint of a value named ``short``: the hint with that exact name, else one whose name the value's name
    starts with (``raises_ValueError`` for ``raises_ValueError('')``) or ends with after an underscore
    (``changed_in_place`` for ``p0_changed_in_place``)."""
    if short in hints:
        return hints[short]
    for name, hint in hints.items():
        if short.startswith(name) or short.endswith("_" + name):
            return hint
    return None


def compare_values(
    actual: Mapping[str, Encoded],
    expected: Mapping[str, Encoded],
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    layouts: Optional[Mapping[str, str]] = None,
    reveal: bool = True,
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
    hints: Optional[Mapping[str, str]] = None,
    follows: Optional[Mapping[str, str]] = None,
    diagnoses: Optional[Mapping[str, str]] = None,
) -> List[str]:
    """Compare every expected key; return the list of problems (empty when everything matches).

    ``layouts``, ``compare`` and ``hints`` are looked up by the last part of a key (``"case3/all_h"`` ->
    ``"all_h"``). A hint replaces the generic explanation of a mismatch of that value (e.g. "switch recording
    off before returning" instead of "max abs error 1"). When a value ``key`` comes with its length
    (``key + "/length"``) and the length is wrong too, the length's message is the one that explains it: the
    hint of ``key`` (which assumes the right length) is not shown.

    ``follows`` maps a value to the value it is made from (``{"recorded_steps": "all_h"}``: the states passed
    to ``record_step`` are the layer's own ``all_h``). When both are wrong and the actual values are identical,
    the follower's mismatch is only the consequence of the other's and is not listed (nor its hint, which
    would blame the follower).

    ``diagnoses`` maps the name of a classic mistake to what to do about it. A probe that can tell a mistake
    apart computes, under ``"diagnose/<name>/<key>"``, the values its code gives in a setting where that
    mistake would produce the expected ``<key>`` (e.g. the LSTM run on weights with the gate blocks in torch's
    order). When the check fails and every such value matches its expected one, the mistake's hint is the only
    problem listed. Diagnostic values are feedback only: they are never recorded nor required.
    """
    problems = []
    layouts = layouts or {}
    compare = compare or {}
    hints = hints or {}
    follows = follows or {}

    def problem_of(key: str) -> Optional[str]:
        short = key.rsplit("/", 1)[-1]
        return compare_value(key, actual[key], expected[key], rtol=rtol, atol=atol, layout=layouts.get(short),
                             reveal=reveal, spec=compare.get(short))

    for key in expected:
        if key.startswith(DIAGNOSE):
            continue
        if key not in actual:
            problems.append(f"{key}: no value was produced")
            continue
        prefix, _, short = key.rpartition("/")
        problem = problem_of(key)
        if problem:
            source = f"{prefix}/{follows[short]}" if prefix and short in follows else follows.get(short)
            if (source and source in expected and source in actual and actual[source] == actual[key]
                    and problem_of(source) is not None):
                continue  # wrong only because its source is, whose problem is listed
            length = f"{key}/length"
            wrong_length = length in expected and length in actual and problem_of(length) is not None
            hint = _hint_for(short, hints)
            problems.append(f"{key}: {hint}" if hint and not wrong_length else problem)
    if problems:
        diagnosis = _diagnosis(actual, expected, diagnoses or {}, rtol=rtol, atol=atol)
        if diagnosis:
            return [diagnosis]
    return problems


def _diagnosis(actual: Mapping[str, Encoded], expected: Mapping[str, Encoded], diagnoses: Mapping[str, str], *,
               rtol: float, atol: float) -> Optional[str]:
    """``"<name>: <hint>"`` for the first diagnosed mistake whose diagnostic values all match (see
    :func:`compare_values`), else ``None``."""
    for name, hint in diagnoses.items():
        marker = f"{DIAGNOSE}{name}/"
        keys = [key for key in actual if key.startswith(marker)]
        if keys and all(
            key[len(marker):] in expected
            and compare_value(key, actual[key], expected[key[len(marker):]], rtol=rtol, atol=atol) is None
            for key in keys
        ):
            return f"{name}: {hint}"
    return None


def evaluate(actual: Mapping[str, Encoded], entry: Mapping[str, Any], *, reveal: bool = True
             ) -> Tuple[float, List[str], str]:
    """Judge a probe's values against one goldens entry: ``(fraction of the points, problems, summary)``.

    Most checks are all-or-nothing. An entry with ``"score": {"kind": "accuracy", "key": ..., "zero": a,
    "full": b}`` instead scores the share of predictions equal to the expected labels, linearly from 0 at
    accuracy ``a`` to full points at ``b``. With ``"kind": "linear"`` the one number under ``key`` is scored
    linearly from 0 at ``zero`` to full points at ``full`` (``full < zero`` when lower is better, e.g. bits per
    character); the expected values are not used.
    """
    score = entry.get("score") or {}
    if score.get("kind") == "accuracy":
        return _accuracy(actual, entry, score)
    if score.get("kind") == "linear":
        return _linear(actual, score)
    problems = compare_values(
        actual,
        entry["values"],
        rtol=float(entry.get("rtol", DEFAULT_RTOL)),
        atol=float(entry.get("atol", DEFAULT_ATOL)),
        layouts=entry.get("layouts") or {},
        reveal=reveal,
        compare=entry.get("compare") or {},
        hints=entry.get("hints") or {},
        follows=entry.get("follows") or {},
        diagnoses=entry.get("diagnoses") or {},
    )
    if problems:
        return 0.0, problems, f"{len(problems)} problem(s)"
    return 1.0, [], f"all {len(entry['values'])} values match"


def _accuracy(actual: Mapping[str, Encoded], entry: Mapping[str, Any], score: Mapping[str, Any]
              ) -> Tuple[float, List[str], str]:
    key = str(score["key"])
    expected = entry["values"][key]
    if key not in actual or actual[key].get("kind") != "array":
        return 0.0, [f"{key}: no predictions were produced"], "no predictions"
    try:
        shape, got = decode_array(actual[key])
    except ValueError as exc:
        return 0.0, [f"{key}: unreadable predictions ({exc})"], "unreadable predictions"
    want_shape, want = decode_array(expected)
    if shape != want_shape:
        return 0.0, [f"{key}: expected {want_shape[0]} predictions, got shape {shape}"], "wrong number of predictions"
    accuracy = sum(1 for g, w in zip(got, want, strict=True) if g == w) / max(len(want), 1)
    zero, full = float(score["zero"]), float(score["full"])
    fraction = min(1.0, max(0.0, (accuracy - zero) / (full - zero)))
    summary = (f"accuracy {100 * accuracy:.1f}% on {len(want)} names: {100 * fraction:.0f}% of the points "
               f"(0 at {100 * zero:.0f}%, full at {100 * full:.0f}%)")
    return fraction, ([] if fraction >= 1.0 else [summary]), summary


def _linear(actual: Mapping[str, Encoded], score: Mapping[str, Any]) -> Tuple[float, List[str], str]:
    key = str(score["key"])
    if key not in actual or actual[key].get("kind") != "array":
        return 0.0, [f"{key}: no value was produced"], "no value"
    try:
        shape, got = decode_array(actual[key])
    except ValueError as exc:
        return 0.0, [f"{key}: unreadable value ({exc})"], "unreadable value"
    if len(got) != 1:
        return 0.0, [f"{key}: expected one number, got shape {shape}"], "not one number"
    value, zero, full = got[0], float(score["zero"]), float(score["full"])
    what = key.replace("_", " ")
    if not math.isfinite(value):
        summary = f"{what}: {value} (not a finite number): no points (0 at {zero:g}, full at {full:g})"
        return 0.0, [summary], summary
    fraction = min(1.0, max(0.0, (value - zero) / (full - zero)))
    summary = f"{what} {value:.3f}: {100 * fraction:.0f}% of the points (0 at {zero:g}, full at {full:g})"
    return fraction, ([] if fraction >= 1.0 else [summary]), summary


# ----------------------------------------------------------------------------------------------------
# Goldens
# ----------------------------------------------------------------------------------------------------

_goldens_cache: Optional[Dict[str, Dict[str, Any]]] = None


def _load_goldens() -> Dict[str, Dict[str, Any]]:
    """``{check name: {"values": {...}, "rtol": ..., "atol": ..., "layouts": {...}}}`` from the goldens files."""
    global _goldens_cache
    if _goldens_cache is None:
        files = [Path(__file__).with_name(_GOLDENS_FILE)]
        files += [Path(p) for p in os.environ.get(GOLDENS_ENV, "").split(os.pathsep) if p]
        merged: Dict[str, Dict[str, Any]] = {}
        for path in files:
            if path.is_file():
                merged.update(json.loads(path.read_text(encoding="utf-8")))
        _goldens_cache = merged
    return _goldens_cache


def _record(name: str, entry: Dict[str, Any]) -> None:
    path = Path(os.environ["HWCHECK_RECORD"])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"check": name, "values": entry}, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------
# Refusing torch's recurrent kernels
# ----------------------------------------------------------------------------------------------------

RECURRENT_KERNELS = re.compile(
    r"^(quantized_)?(rnn_tanh|rnn_relu|lstm|gru)(_cell)?(\.\w+)?$|^_thnn_fused_(lstm|gru)_cell|^mkldnn_rnn|"
    r"^_cudnn_rnn|^miopen_rnn"
)
"""Names of torch functions that compute a whole recurrent layer or cell (what ``torch.nn.RNN``, ``LSTM``,
``GRU`` and their ``*Cell`` versions call)."""


def recurrent_kernel_trace() -> Any:
    """A context manager that notes every torch recurrent kernel called inside it (``.seen``: a set of names)."""
    from torch.overrides import TorchFunctionMode

    class KernelTrace(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set = set()

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = getattr(func, "__name__", "")
            if isinstance(name, str) and RECURRENT_KERNELS.match(name):
                self.seen.add(name.split(".")[0])
            return func(*args, **(kwargs or {}))

    return KernelTrace()


class DispatcherKernelTrace:
    """Notes the recurrent kernels torch's dispatcher runs while it is active (``.seen`` once it has ended),
    whoever calls them: Python, TorchScript (``torch.jit``) or C++ code, which the ``TorchFunctionMode`` of
    :func:`recurrent_kernel_trace` cannot see. It reads the operator events of torch's autograd profiler, which
    costs a little time per operator, so only hidden checks use it when grading."""

    def __init__(self) -> None:
        from torch.autograd import profiler

        self.seen: set = set()
        self._profile = profiler.profile(use_kineto=False)

    def __enter__(self) -> DispatcherKernelTrace:
        self._profile.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self._profile.__exit__(*exc)
        for event in self._profile.function_events:
            name = str(event.name).rsplit("::", 1)[-1]
            if RECURRENT_KERNELS.match(name):
                self.seen.add(name.split(".")[0])
        return False


def kernels_message(seen: Sequence[str]) -> str:
    names = ", ".join(sorted(seen))
    return (f"your code calls torch's built-in recurrent kernel ({names}), e.g. through torch.nn.RNN, "
            "torch.nn.LSTM or an nn.*Cell: write the recurrence yourself with tensor operations")


# ----------------------------------------------------------------------------------------------------
# Typed answers, read from the notebook file without running it
# ----------------------------------------------------------------------------------------------------

MAX_ANSWER_CELL = 20_000
MAX_LITERAL_ITEMS = 200


class AnswerUnreadable(ValueError):
    """A typed answer that is missing or not written as a plain literal (the message says how to fix it)."""


def _cell_text(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(str(part) for part in source) if isinstance(source, list) else str(source)


def _literal_size(value: Any, depth: int = 0) -> int:
    if depth > 6:
        raise AnswerUnreadable("the answer is nested too deeply")
    if isinstance(value, (list, tuple)):
        return 1 + sum(_literal_size(item, depth + 1) for item in value)
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise AnswerUnreadable(f"the answer text is longer than {MAX_TEXT} characters")
    return 1


def read_literal_answer(notebook: Mapping[str, Any], variable: str, cell_id: Optional[str] = None) -> Any:
    """The value last assigned to ``variable`` by a literal assignment in the notebook's code cells.

    Only ``variable = <literal>`` at the top level of a cell counts (a string, a number, or lists/tuples of
    them): nothing is executed. The cell whose nbgrader ``grade_id`` is ``cell_id`` (default: ``variable``) is
    searched first; if it has no assignment, every code cell is, and the last assignment wins. Raises
    :class:`AnswerUnreadable` with a message for the student.
    """
    import ast

    cells = [c for c in notebook.get("cells", []) if isinstance(c, Mapping) and c.get("cell_type") == "code"]

    def grade_id(cell: Mapping[str, Any]) -> Any:
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), Mapping) else {}
        nbgrader = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), Mapping) else {}
        return nbgrader.get("grade_id")

    preferred = [c for c in cells if grade_id(c) == (cell_id or variable)]
    for group in (preferred, cells):
        found = None
        for cell in group:
            text = _cell_text(cell)
            if variable not in text:
                continue
            if len(text) > MAX_ANSWER_CELL:
                raise AnswerUnreadable(f"the cell that sets `{variable}` is longer than {MAX_ANSWER_CELL} characters")
            lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in text.splitlines()]
            try:
                tree = ast.parse("\n".join(lines))
            except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
                line = getattr(error, "lineno", None)
                raise AnswerUnreadable(f"the cell that sets `{variable}` cannot be read (a syntax error"
                                       f"{f' at line {line}' if line else ''}): fix it and save the notebook") from None
            for node in tree.body:
                target = None
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target = node.target
                if isinstance(target, ast.Name) and target.id == variable:
                    found = node
        if found is not None:
            try:
                value = ast.literal_eval(found.value)  # type: ignore[union-attr]
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise AnswerUnreadable(
                    f"`{variable}` (line {found.lineno} of its cell) must be written out as a literal value, such "
                    "as a string in quotes or a list of pairs: answers are read from the saved notebook without "
                    "running it, so names, function calls and arithmetic cannot be evaluated") from None
            if _literal_size(value) > MAX_LITERAL_ITEMS:
                raise AnswerUnreadable(f"`{variable}` holds more than {MAX_LITERAL_ITEMS} values")
            return value
    raise AnswerUnreadable(f"`{variable}` is not set in the saved notebook: write `{variable} = ...` in its "
                           "answer cell and save the notebook")


# ----------------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------------


def _encode_all(raw: Mapping[str, Any]) -> Values:
    if not isinstance(raw, Mapping):
        raise TypeError(f"a probe must return a dict of values, got {type(raw).__name__}")
    values = {}
    for key, value in raw.items():
        try:
            values[str(key)] = encode(value)
        except TypeError as exc:
            raise CheckFailed(f"{key}: {exc}") from None
    return values


def _raising_function(exc: BaseException) -> str:
    """``Class.method`` or ``function`` where ``exc`` was raised."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    owner = frame.f_locals.get("self")
    name = frame.f_code.co_name
    return f"{type(owner).__name__}.{name}" if owner is not None else name


def _library_folders() -> Tuple[str, ...]:
    """Folders whose frames are not the student's: Python's own library, installed packages, this module."""
    import sysconfig

    folders = {os.path.dirname(os.path.abspath(__file__))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            folders.add(os.path.abspath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        folders.add(os.path.join(os.path.abspath(prefix), "lib"))
    return tuple(sorted(folders))


def student_frames(exc: BaseException, limit: int = 3, skip: Any = None) -> List[str]:
    """Where in the student's own code ``exc`` happened, innermost last: ``["RNNLayer.forward, line 14:
    h = torch.tanh(x @ self.W_x + h @ self.W_h)"]``. Frames of this module, of torch and of Python's library are
    left out (they are where the error surfaced, not where the bug is), and so is the code object ``skip`` (the
    check's own probe)."""
    import linecache

    library = _library_folders()
    found = []
    tb = exc.__traceback__
    while tb is not None:
        frame, line = tb.tb_frame, tb.tb_lineno
        filename = os.path.abspath(frame.f_code.co_filename) if not frame.f_code.co_filename.startswith("<") \
            else frame.f_code.co_filename
        if not filename.startswith(library) and frame.f_code is not skip:
            owner = frame.f_locals.get("self")
            where = frame.f_code.co_name
            if owner is not None and where != "<module>":
                where = f"{type(owner).__name__}.{where}"
            code = linecache.getline(frame.f_code.co_filename, line).strip()
            found.append(f"{where}, line {line}" + (f": {code}" if code else ""))
        tb = tb.tb_next
    return found[-limit:]


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError):
        where = _raising_function(exc)
        return f"not implemented yet: `{where}` still raises NotImplementedError (fill in YOUR CODE HERE)"
    if isinstance(exc, AnswerUnreadable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _show_failures_briefly() -> None:
    """In Jupyter, show a failed check as its message only: the frames of this module say nothing about the
    student's bug (the message names the student's own lines). Other exceptions keep IPython's usual traceback;
    the cell still fails (nbclient and nbgrader see the error)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_hwcheck_brief_failures", False):
        return

    def show(shell: Any, kind: type, value: BaseException, tb: Any, tb_offset: Any = None) -> List[str]:
        lines = [f"\x1b[1;31m{kind.__name__}\x1b[0m: {value}"]
        shell._showtraceback(kind, value, lines)  # in Jupyter: the cell's error output, which nbclient sees
        return lines

    shell.set_custom_exc((CheckFailed,), show)
    shell._hwcheck_brief_failures = True


def _error_in_notebook(name: str, report: Mapping[str, Any]) -> CheckFailed:
    """The notebook's message for a probe that raised: what was raised and the student's lines it went through."""
    error = report["error"]
    message = f"{name}: {error['message']}"
    if error.get("where"):
        message += "\n  in your code (innermost last):\n" + "\n".join(f"    {line}" for line in error["where"])
    return CheckFailed(message)


def _error_report(exc: BaseException, probe: Any = None) -> Dict[str, Any]:
    error: Dict[str, Any] = {"type": type(exc).__name__, "message": _describe_error(exc)[:MAX_TEXT]}
    if _mode == "notebook" and not isinstance(exc, (NotImplementedError, AnswerUnreadable, CheckFailed)):
        try:
            error["where"] = [line[:MAX_TEXT] for line in student_frames(exc, skip=getattr(probe, "__code__", None))]
        except Exception:  # never let the message hide the error
            pass
    return {"error": error}


def _call(function: Callable[..., Any], seed: Optional[int]) -> Any:
    return function() if seed is None else function(seed)


def _run_probe(name: str, probe: Callable[..., Any], seed: Optional[int], kernels: Optional[str]) -> Dict[str, Any]:
    """``{"values": ...}`` (plus ``"kernels"`` when traced) or ``{"error": ...}``; never raises (but for ^C)."""
    try:
        if kernels == "refuse":
            trace = recurrent_kernel_trace()
            if _mode == "probe":  # grading: also at the dispatcher, where TorchScript's calls are seen
                deep = DispatcherKernelTrace()
                with deep, trace:
                    raw = _call(probe, seed)
                return {"values": _encode_all(raw), "kernels": sorted(trace.seen | deep.seen)}
            with trace:
                raw = _call(probe, seed)
            return {"values": _encode_all(raw), "kernels": sorted(trace.seen)}
        return {"values": _encode_all(_call(probe, seed))}
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a probe that fails is a failed check, whatever it raised
        return _error_report(exc, probe)


def _options(rtol: float, atol: float, layouts: Any, compare: Any, score: Any, hints: Any = None, follows: Any = None,
             diagnoses: Any = None) -> Dict[str, Any]:
    return {"rtol": rtol, "atol": atol, "layouts": dict(layouts or {}), "compare": dict(compare or {}),
            "score": dict(score or {}), "hints": dict(hints or {}), "follows": dict(follows or {}),
            "diagnoses": dict(diagnoses or {})}


def check(
    name: str,
    probe: Callable[..., Mapping[str, Any]],
    *,
    reference: Optional[Callable[..., Mapping[str, Any]]] = None,
    seeded: bool = False,
    kernels: Optional[str] = None,
    where: str = "sandbox",
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    layouts: Optional[Mapping[str, str]] = None,
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
    score: Optional[Mapping[str, Any]] = None,
    hints: Optional[Mapping[str, str]] = None,
    follows: Optional[Mapping[str, str]] = None,
    diagnoses: Optional[Mapping[str, str]] = None,
) -> None:
    """Run one check; its ``name`` is the grade_id of the notebook cell that calls it.

    ``probe()`` (``probe(seed)`` when ``seeded``) returns the values computed with your code.
    ``reference``, when given, computes the same values with a trusted implementation (staff only).
    ``kernels="refuse"``: the check fails when the probe calls torch's recurrent kernels.
    ``where="referee"``: the probe itself runs in the grader's trusted process (it reads submitted files,
    e.g. the saved model, and never runs student code). ``layouts`` maps a value name to its axis letters
    (``{"all_h": "BTH"}``) for clearer messages; ``compare`` says how text values are compared (see
    :func:`compare_value`); ``score`` makes the check partial-credit (see :func:`evaluate`); ``hints`` maps a
    value's name to what its mismatch means in the student's terms; ``follows`` and ``diagnoses`` keep a message
    on the mistake actually made (see :func:`compare_values`).
    """
    options = _options(rtol, atol, layouts, compare, score, hints, follows, diagnoses)
    if _mode in ("quiet", "probe"):
        if _mode == "probe" and name in _requests and where == "sandbox" and _sink is not None:
            _sink(name, _run_probe(name, probe, _requests[name].get("seed") if seeded else None, kernels))
        return
    if _mode == "referee":
        if name in _requests and _sink is not None:
            _sink(name, _referee_values(probe, reference, _requests[name].get("seed") if seeded else None, where,
                                        options))
        return
    kind = {"kind": where, "seeded": seeded, "kernels": kernels}
    if os.environ.get("HWCHECK_RECORD"):
        _record_check(name, probe, reference, seeded, kernels, {**options, **kind})
        return
    _show_failures_briefly()
    seed = NOTEBOOK_SEED if seeded else None
    report = _run_probe(name, probe, seed, kernels)
    if "error" in report:
        raise _error_in_notebook(name, report) from None
    if report.get("kernels"):
        raise CheckFailed(f"{name}: {kernels_message(report['kernels'])}")
    _judge_in_notebook(name, report["values"], options, lambda: _call(reference, seed) if reference else None)


def answer_check(
    name: str,
    variable: str,
    *,
    key: Callable[[], Any],
    transform: Optional[Callable[[Any], Mapping[str, Any]]] = None,
    cell: Optional[str] = None,
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> None:
    """A typed answer: the literal value of ``variable``, read from the saved notebook when grading.

    ``key()`` gives the correct answer (staff only); ``transform(value)`` turns an answer into the values
    that are compared (default ``{variable: value}``); ``cell`` is the grade_id of the answer cell
    (default: ``variable``).
    """
    transform = transform or (lambda value: {variable: value})
    options = _options(DEFAULT_RTOL, DEFAULT_ATOL, None, compare, None)
    if _mode in ("quiet", "probe"):
        return
    if _mode == "referee":
        if name in _requests and _sink is not None:
            _sink(name, _referee_answer(variable, cell or variable, key, transform, options))
        return
    caller = sys._getframe(1).f_globals
    if os.environ.get("HWCHECK_RECORD"):
        kind = {"kind": "static", "seeded": False, "kernels": None, "variable": variable, "cell": cell or variable}
        notebook = os.environ.get("HWCHECK_NOTEBOOK")  # the build reads the master's answer as the grader will

        def answer() -> Mapping[str, Any]:
            if notebook:
                saved = json.loads(Path(notebook).read_text(encoding="utf-8-sig"))
                return transform(read_literal_answer(saved, variable, cell or variable))
            return transform(caller.get(variable))

        _record_check(name, answer, lambda: transform(key()), False, None, {**options, **kind})
        return
    if variable not in caller:
        raise CheckFailed(f"{name}: `{variable}` is not defined: run its answer cell")
    _show_failures_briefly()
    report = _run_probe(name, lambda: transform(caller[variable]), None, None)
    if "error" in report:
        raise _error_in_notebook(name, report) from None
    _judge_in_notebook(name, report["values"], options, lambda: transform(key()))


def _verdict(report: Dict[str, Any], expected: Values, options: Mapping[str, Any]) -> Dict[str, Any]:
    """A referee-side report with its verdict: ``{"values", "expected", "verdict": [fraction, problems, summary]}``."""
    if "values" in report:
        fraction, problems, summary = evaluate(report["values"], {**options, "values": expected}, reveal=False)
        report["verdict"] = [fraction, problems, summary]
    report["expected"] = expected
    return report


def _referee_values(probe: Callable[..., Any], reference: Optional[Callable[..., Any]], seed: Optional[int],
                    where: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """Referee mode: the expected values; for checks that run here also the submission's values and the verdict."""
    try:
        expected = _encode_all(_call(reference or probe, seed))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return {"internal_error": f"the reference failed: {_describe_error(exc)}"[:MAX_TEXT]}
    if where != "referee":
        return {"expected": expected}
    return _verdict(_run_probe("", probe, seed, None), expected, options)


def _referee_answer(variable: str, cell: str, key: Callable[[], Any], transform: Callable[[Any], Mapping[str, Any]],
                    options: Mapping[str, Any]) -> Dict[str, Any]:
    """Referee mode for a typed answer: read it from the submitted notebook file (never run), then judge it."""
    try:
        expected = _encode_all(transform(key()))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return {"internal_error": f"the answer key failed: {_describe_error(exc)}"[:MAX_TEXT]}
    path = _submitted.get("notebook")
    try:
        if not path:
            raise AnswerUnreadable("the submitted notebook could not be read")
        notebook = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        value = read_literal_answer(notebook, variable, cell)
    except (OSError, ValueError, RecursionError) as exc:
        return {**_error_report(exc), "expected": expected}
    return _verdict(_run_probe("", lambda: transform(value), None, None), expected, options)


def _record_check(name: str, probe: Callable[..., Any], reference: Optional[Callable[..., Any]], seeded: bool,
                  kernels: Optional[str], options: Dict[str, Any]) -> None:
    """Record mode: the solution must agree with the reference (on every record seed); store the values."""
    golden_values: Optional[Values] = None
    for seed in (RECORD_SEEDS if seeded else (None,)):
        report = _run_probe(name, probe, seed, kernels)
        if "error" in report:
            raise CheckFailed(f"{name}: the staff solution fails its own check: {report['error']['message']}")
        if report.get("kernels"):
            raise CheckFailed(f"{name}: the staff solution calls {report['kernels']}")
        actual = report["values"]
        expected = _encode_all(_call(reference, seed)) if reference is not None else actual
        expected = {key: value for key, value in expected.items() if not key.startswith(DIAGNOSE)}
        if not options["score"]:
            strict = {**options, "values": expected, "rtol": RECORD_TOLERANCE, "atol": RECORD_TOLERANCE}
            _, problems, _ = evaluate(actual, strict)
            if problems:
                details = "\n  ".join(problems)
                raise CheckFailed(f"{name}: the staff solution disagrees with the reference "
                                  f"(seed {seed}):\n  {details}")
        if golden_values is None:
            golden_values = expected
            summary = evaluate(actual, {**options, "values": expected})[2]
    assert golden_values is not None
    specs = options["compare"]
    golden = {key: to_golden(value, spec=specs.get(key.rsplit("/", 1)[-1])) for key, value in golden_values.items()}
    _record(name, {**options, "values": golden})
    print(f"✓ {name}: {summary}")


def _judge_in_notebook(name: str, actual: Values, options: Dict[str, Any],
                       reference: Callable[[], Optional[Mapping[str, Any]]]) -> None:
    goldens = _load_goldens()
    if name in goldens:
        entry = {**options, **goldens[name]}
    else:
        expected = reference()
        if expected is None:
            raise CheckFailed(f"{name}: no expected values are recorded for this check")
        entry = {**options, "values": _encode_all(expected)}
    _, problems, summary = evaluate(actual, entry)
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        raise CheckFailed(f"{name}: {len(problems)} problem(s)\n  " + "\n  ".join(shown))
    print(f"✓ {name}: {summary}")


# ----------------------------------------------------------------------------------------------------
# Helpers for probes
# ----------------------------------------------------------------------------------------------------


def load_parameters(module: Any, weights: Mapping[str, Any]) -> None:
    """Copy known weights into ``module``'s parameters by name, with clear errors on names and shapes."""
    params = dict(module.named_parameters())
    torch = _torch()
    with torch.no_grad():
        for key, value in weights.items():
            if key not in params:
                known = ", ".join(sorted(params)) or "none"
                raise CheckFailed(f"{type(module).__name__} has no parameter `{key}` (it has: {known})")
            target = params[key]
            if tuple(target.shape) != tuple(value.shape):
                raise CheckFailed(
                    f"parameter `{key}`: expected shape {tuple(value.shape)}, got {tuple(target.shape)}"
                )
            target.copy_(value)


def parameter_gradients(module: Any, names: Sequence[str]) -> Dict[str, Any]:
    """``{"grad/<name>": gradient}`` for the named parameters (zeros when a parameter got no gradient)."""
    params = dict(module.named_parameters())
    torch = _torch()
    out = {}
    for key in names:
        grad = params[key].grad
        out[f"grad/{key}"] = grad if grad is not None else torch.zeros_like(params[key])
    return out


class float64:
    """Context manager: new tensors and parameters default to float64 inside the ``with`` block."""

    def __enter__(self) -> float64:
        torch = _torch()
        self._previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        return self

    def __exit__(self, *exc: Any) -> None:
        _torch().set_default_dtype(self._previous)


def random_weights(module: Any, generator: Any, scale: float = 0.5) -> Dict[str, Any]:
    """Seeded random float64 values for every parameter of ``module`` (by name), uniform in ±scale."""
    torch = _torch()
    return {
        name: (torch.rand(tuple(p.shape), generator=generator, dtype=torch.float64) * 2 - 1) * scale
        for name, p in sorted(module.named_parameters())
    }


def randint(generator: Any, low: int, high: int) -> int:
    """One seeded integer in ``[low, high]`` (both ends included)."""
    return int(_torch().randint(low, high + 1, (1,), generator=generator))
