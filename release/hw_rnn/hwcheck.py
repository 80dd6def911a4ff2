"""Checks for the RNN homework notebooks.

Every check in the notebooks is a *probe*: a small function that runs your code on fixed inputs and
returns raw values (tensors, arrays, numbers or short strings) under names such as ``"all_h"``.
What happens to those values depends on where the notebook runs:

``notebook`` (default, Jupyter / Colab / ``nbgrader autograde``)
    The values are compared with the expected values recorded from the staff solution; a mismatch
    raises :class:`CheckFailed` with a message that says what is wrong (shape, largest error, first
    differing timestep).
``record`` (staff build, ``HWCHECK_RECORD=<file>``)
    The probe runs on the staff solution; when a trusted reference (``torch.nn.RNN`` ...) is given,
    the solution must agree with it, and the reference's values are recorded as the expected values.
``probe`` (Gradescope sandbox)
    The values are only encoded and handed to the grader process, which does the comparison.

The module imports neither torch nor numpy at import time, so the grader can use the comparison code
without loading torch.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

Encoded = Dict[str, Any]
Values = Dict[str, Encoded]

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-6
RECORD_TOLERANCE = 1e-9
MAX_TEXT = 2000
MAX_ELEMENTS = 1_000_000

_GOLDENS_FILE = "public_goldens.json"


class CheckFailed(AssertionError):
    """Raised in notebook mode when a check does not pass; the message says why."""


# ----------------------------------------------------------------------------------------------------
# Modes
# ----------------------------------------------------------------------------------------------------

_probe_sink: Optional[Callable[[str, Dict[str, Any]], None]] = None


def use_probe_mode(sink: Callable[[str, Dict[str, Any]], None]) -> None:
    """Send every check's raw values to ``sink(name, report)`` instead of comparing them here."""
    global _probe_sink
    _probe_sink = sink


def fast_mode() -> bool:
    """True when long cells should take their short path (CI, ``nbgrader autograde``, grading)."""
    return bool(os.environ.get("HW_FAST") or os.environ.get("NBGRADER_EXECUTION"))


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
    """Validate an encoded array and return ``(shape, flat values)``; raises ``ValueError``."""
    shape = record.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError("malformed shape")
    size = 1
    for n in shape:
        size *= n
    if size > MAX_ELEMENTS:
        raise ValueError("too many values")
    if "data" in record:
        raw = base64.b64decode(str(record["data"]), validate=True)
        if len(raw) != 8 * size:
            raise ValueError("data does not match shape")
        flat = list(struct.unpack(f"<{size}d", raw))
    else:
        flat = [_float_from_json(x) for x in record.get("values", [])]
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
    if " ".join(answer.split()).lower() == " ".join(expected.split()).lower():
        return None
    return f"{key}: the answer is not the expected one"


def _kind_text(kind: Any) -> str:
    return {"array": "numbers", "text": "text", "none": "None"}.get(str(kind), "nothing")


def compare_values(
    actual: Mapping[str, Encoded],
    expected: Mapping[str, Encoded],
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    layouts: Optional[Mapping[str, str]] = None,
    reveal: bool = True,
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> List[str]:
    """Compare every expected key; return the list of problems (empty when everything matches).

    ``layouts`` and ``compare`` are looked up by the last part of a key (``"case3/all_h"`` -> ``"all_h"``).
    """
    problems = []
    layouts = layouts or {}
    compare = compare or {}
    for key in expected:
        if key not in actual:
            problems.append(f"{key}: no value was produced")
            continue
        short = key.rsplit("/", 1)[-1]
        problem = compare_value(
            key, actual[key], expected[key], rtol=rtol, atol=atol, layout=layouts.get(short), reveal=reveal,
            spec=compare.get(short),
        )
        if problem:
            problems.append(problem)
    return problems


def evaluate(actual: Mapping[str, Encoded], entry: Mapping[str, Any], *, reveal: bool = True
             ) -> Tuple[float, List[str], str]:
    """Judge a probe's values against one goldens entry: ``(fraction of the points, problems, summary)``.

    Most checks are all-or-nothing. An entry with ``"score": {"kind": "accuracy", "key": ..., "zero": a,
    "full": b}`` instead scores the share of predictions equal to the expected labels, linearly from 0 at
    accuracy ``a`` to full points at ``b``.
    """
    score = entry.get("score") or {}
    if score.get("kind") == "accuracy":
        return _accuracy(actual, entry, score)
    problems = compare_values(
        actual,
        entry["values"],
        rtol=float(entry.get("rtol", DEFAULT_RTOL)),
        atol=float(entry.get("atol", DEFAULT_ATOL)),
        layouts=entry.get("layouts") or {},
        reveal=reveal,
        compare=entry.get("compare") or {},
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


# ----------------------------------------------------------------------------------------------------
# Goldens
# ----------------------------------------------------------------------------------------------------

_goldens_cache: Optional[Dict[str, Dict[str, Any]]] = None


def _load_goldens() -> Dict[str, Dict[str, Any]]:
    """``{check name: {"values": {...}, "rtol": ..., "atol": ..., "layouts": {...}}}`` from the goldens files."""
    global _goldens_cache
    if _goldens_cache is None:
        files = [Path(__file__).with_name(_GOLDENS_FILE)]
        files += [Path(p) for p in os.environ.get("HWCHECK_GOLDENS", "").split(os.pathsep) if p]
        merged: Dict[str, Dict[str, Any]] = {}
        for path in files:
            if path.is_file():
                merged.update(json.loads(path.read_text(encoding="utf-8")))
        _goldens_cache = merged
    return _goldens_cache


def _record(name: str, values: Values) -> None:
    path = Path(os.environ["HWCHECK_RECORD"])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"check": name, "values": values}, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------
# The check itself
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


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError):
        where = _raising_function(exc)
        return f"not implemented yet: `{where}` still raises NotImplementedError (fill in YOUR CODE HERE)"
    return f"{type(exc).__name__}: {exc}"


def check(
    name: str,
    probe: Callable[[], Mapping[str, Any]],
    *,
    reference: Optional[Callable[[], Mapping[str, Any]]] = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    layouts: Optional[Mapping[str, str]] = None,
    compare: Optional[Mapping[str, Mapping[str, Any]]] = None,
    score: Optional[Mapping[str, Any]] = None,
) -> None:
    """Run one check; its ``name`` is the grade_id of the notebook cell that calls it.

    ``probe()`` returns the values computed with your code. ``reference()``, when given, computes the
    same values with a trusted implementation (e.g. ``torch.nn.LSTM``); it is only used by the staff build.
    ``layouts`` maps a value name to its axis letters (``{"all_h": "BTH"}``) for clearer messages.
    ``compare`` maps a text value's name to how it is compared (see :func:`compare_value`); ``score``
    makes the check partial-credit (see :func:`evaluate`).
    """
    if _probe_sink is not None:
        _run_probe_mode(name, probe)
        return
    try:
        raw = probe()
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(f"{name}: {_describe_error(exc)}") from exc
    actual = _encode_all(raw)
    options = {"rtol": rtol, "atol": atol, "layouts": dict(layouts or {}), "compare": dict(compare or {}),
               "score": dict(score or {})}
    if os.environ.get("HWCHECK_RECORD"):
        expected = _encode_all(reference()) if reference is not None else actual
        entry = {"values": expected, **options}
        if not score:
            strict = {**entry, "rtol": RECORD_TOLERANCE, "atol": RECORD_TOLERANCE}
            _, problems, _ = evaluate(actual, strict)
            if problems:
                details = "\n  ".join(problems)
                raise CheckFailed(f"{name}: the staff solution disagrees with the reference:\n  {details}")
        summary = evaluate(actual, entry)[2]
        specs = dict(compare or {})
        golden = {key: to_golden(value, spec=specs.get(key.rsplit("/", 1)[-1])) for key, value in expected.items()}
        _record(name, {**entry, "values": golden})
        print(f"recorded {name}: {summary}")
        return
    goldens = _load_goldens()
    if name in goldens:
        entry = {**goldens[name], **{k: v for k, v in options.items() if k not in goldens[name]}}
    elif reference is not None:
        entry = {"values": _encode_all(reference()), **options}
    else:
        raise CheckFailed(f"{name}: no expected values are recorded for this check (staff: run `make release`)")
    _, problems, summary = evaluate(actual, entry)
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        raise CheckFailed(f"{name}: {len(problems)} problem(s)\n  " + "\n  ".join(shown))
    print(f"✓ {name}: {summary}")


def _run_probe_mode(name: str, probe: Callable[[], Mapping[str, Any]]) -> None:
    assert _probe_sink is not None
    try:
        report: Dict[str, Any] = {"values": _encode_all(probe())}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        report = {"error": {"type": type(exc).__name__, "message": _describe_error(exc)[:MAX_TEXT]}}
    _probe_sink(name, report)


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


# ----------------------------------------------------------------------------------------------------
# Reference layers: torch.nn's own kernels behind this homework's parameter names
# ----------------------------------------------------------------------------------------------------

LSTM_GATES = ("f", "i", "o", "g")
"""Order of the gate blocks in ``LSTMLayer.U``, ``.W`` and ``.b`` (torch.nn.LSTM uses i, f, g, o)."""


def lstm_blocks_to_torch(tensor: Any, hidden_size: int) -> Any:
    """Reorder the last axis of a ``(..., 4H)`` tensor from this homework's (f, i, o, g) to torch's (i, f, g, o)."""
    torch = _torch()
    blocks = dict(zip(LSTM_GATES, torch.split(tensor, hidden_size, dim=-1), strict=True))
    return torch.cat([blocks["i"], blocks["f"], blocks["g"], blocks["o"]], dim=-1)


def rnn_layer_weights_for_torch(weights: Mapping[str, Any], layer: int = 0) -> Dict[str, Any]:
    """Map ``{"W_x", "W_h", "b"}`` of one ``RNNLayer`` to the parameters of ``torch.nn.RNN`` layer ``layer``."""
    torch = _torch()
    return {
        f"weight_ih_l{layer}": weights["W_x"],
        f"weight_hh_l{layer}": weights["W_h"],
        f"bias_ih_l{layer}": weights["b"],
        f"bias_hh_l{layer}": torch.zeros_like(weights["b"]),
    }


def lstm_layer_weights_for_torch(weights: Mapping[str, Any], layer: int = 0) -> Dict[str, Any]:
    """Map ``{"U" (D, 4H), "W" (H, 4H), "b" (4H,)}`` of one ``LSTMLayer`` to ``torch.nn.LSTM`` layer ``layer``."""
    torch = _torch()
    hidden = weights["W"].shape[0]
    return {
        f"weight_ih_l{layer}": lstm_blocks_to_torch(weights["U"], hidden).T,
        f"weight_hh_l{layer}": lstm_blocks_to_torch(weights["W"], hidden).T,
        f"bias_ih_l{layer}": lstm_blocks_to_torch(weights["b"], hidden),
        f"bias_hh_l{layer}": torch.zeros_like(weights["b"]),
    }


def reference_rnn_layer(input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> Any:
    """A layer with ``RNNLayer``'s parameter names and interface, computed by ``torch.nn.RNN``.

    ``forward(x (B, T, D)) -> (all_h (B, T, H), last_h (B, H))``.
    """
    torch = _torch()
    nn = torch.nn

    class ReferenceRNNLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_size, self.hidden_size = input_size, hidden_size
            self.W_x = nn.Parameter(torch.randn(hidden_size, input_size) / hidden_size**0.5)
            self.W_h = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size**0.5)
            self.b = nn.Parameter(torch.zeros(hidden_size))
            self._torch_rnn = [nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)]

        def forward(self, x: Any) -> Any:
            weights = rnn_layer_weights_for_torch({"W_x": self.W_x, "W_h": self.W_h, "b": self.b})
            all_h, last = torch.func.functional_call(self._torch_rnn[0].to(x.dtype), weights, (x,))
            return all_h, last[0]

    return ReferenceRNNLayer()


def reference_lstm_layer(input_size: int, hidden_size: int) -> Any:
    """A layer with ``LSTMLayer``'s parameter names and interface, computed by ``torch.nn.LSTM``.

    ``forward(x (B, T, D), hc0=None | (h0 (B, H), c0 (B, H))) -> (all_h (B, T, H), (h_T (B, H), c_T (B, H)))``.
    """
    torch = _torch()
    nn = torch.nn

    class ReferenceLSTMLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_size, self.hidden_size = input_size, hidden_size
            self.U = nn.Parameter(torch.randn(input_size, 4 * hidden_size) / hidden_size**0.5)
            self.W = nn.Parameter(torch.randn(hidden_size, 4 * hidden_size) / hidden_size**0.5)
            self.b = nn.Parameter(torch.zeros(4 * hidden_size))
            self._torch_lstm = [nn.LSTM(input_size, hidden_size, batch_first=True)]

        def forward(self, x: Any, hc0: Any = None) -> Any:
            weights = lstm_layer_weights_for_torch({"U": self.U, "W": self.W, "b": self.b})
            state = None if hc0 is None else (hc0[0].unsqueeze(0), hc0[1].unsqueeze(0))
            all_h, (h, c) = torch.func.functional_call(self._torch_lstm[0].to(x.dtype), weights, (x, state))
            return all_h, (h[0], c[0])

    return ReferenceLSTMLayer()


def random_weights(module: Any, generator: Any, scale: float = 0.5) -> Dict[str, Any]:
    """Seeded random float64 values for every parameter of ``module`` (by name), uniform in ±scale."""
    torch = _torch()
    return {
        name: (torch.rand(tuple(p.shape), generator=generator, dtype=torch.float64) * 2 - 1) * scale
        for name, p in sorted(module.named_parameters())
    }
