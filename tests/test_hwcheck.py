"""Unit tests of the check runtime: encoding raw values, comparison messages, goldens handling."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from conftest import SOURCE


@pytest.fixture(scope="module")
def hwcheck():
    spec = importlib.util.spec_from_file_location("hwcheck_under_test", SOURCE / "hwcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_encode_roundtrip_keeps_float64_exactly(hwcheck):
    tensor = torch.randn(2, 3, dtype=torch.float64)
    record = hwcheck.encode(tensor)
    shape, flat = hwcheck.decode_array(json.loads(json.dumps(record)))
    assert shape == (2, 3)
    assert flat == tensor.flatten().tolist()
    assert record["dtype"] == "float64"


def test_encode_rejects_objects_that_are_not_numbers(hwcheck):
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    with pytest.raises(TypeError):
        hwcheck.encode(AlwaysEqual())
    with pytest.raises(TypeError):
        hwcheck.encode(np.array(["a", "b"]))


def test_shape_message_names_the_axes(hwcheck):
    expected = hwcheck.encode(torch.zeros(2, 4, 3))
    actual = hwcheck.encode(torch.zeros(4, 2, 3))
    message = hwcheck.compare_value("all_h", actual, expected, layout="BTH")
    assert message == "all_h: expected shape (B, T, H) = (2, 4, 3), got (4, 2, 3)"


def test_value_message_gives_the_first_differing_timestep(hwcheck):
    want = torch.zeros(2, 5, 3)
    got = want.clone()
    got[1, 2, 0] = 0.5
    got[0, 4, 1] = 0.25
    message = hwcheck.compare_value("all_h", hwcheck.encode(got), hwcheck.encode(want), layout="BTH")
    assert "first differing timestep t=2 (index (1, 2, 0))" in message
    assert "max abs error 0.5" in message and "expected 0, got 0.5" in message
    hidden = hwcheck.compare_value("all_h", hwcheck.encode(got), hwcheck.encode(want), layout="BTH", reveal=False)
    assert "got" not in hidden and "first differing timestep t=2" in hidden


def test_nan_is_reported_and_tolerance_respected(hwcheck):
    want = hwcheck.encode(torch.ones(3, dtype=torch.float64))
    assert hwcheck.compare_value("v", hwcheck.encode(torch.ones(3) + 1e-7), want) is None
    assert "NaN" in hwcheck.compare_value("v", hwcheck.encode(torch.tensor([1.0, math.nan, 1.0])), want)


def test_record_then_compare_in_notebook_mode(hwcheck, tmp_path, monkeypatch, capsys):
    record = tmp_path / "rec.jsonl"
    monkeypatch.setenv("HWCHECK_RECORD", str(record))
    hwcheck.check("demo", lambda: {"y": torch.arange(3.0)}, layouts={"y": "T"})
    entry = json.loads(record.read_text())
    assert entry["check"] == "demo" and entry["values"]["layouts"] == {"y": "T"}
    goldens = tmp_path / "goldens.json"
    goldens.write_text(json.dumps({"demo": entry["values"]}))
    monkeypatch.delenv("HWCHECK_RECORD")
    monkeypatch.setenv("HWCHECK_GOLDENS", str(goldens))
    monkeypatch.setattr(hwcheck, "_goldens_cache", None)
    hwcheck.check("demo", lambda: {"y": torch.arange(3.0)})
    with pytest.raises(hwcheck.CheckFailed, match="first differing timestep t=1"):
        hwcheck.check("demo", lambda: {"y": torch.tensor([0.0, 2.0, 2.0])})


def test_record_mode_fails_when_the_solution_disagrees_with_the_reference(hwcheck, tmp_path, monkeypatch):
    monkeypatch.setenv("HWCHECK_RECORD", str(tmp_path / "rec.jsonl"))
    with pytest.raises(hwcheck.CheckFailed, match="disagrees with the reference"):
        hwcheck.check("demo", lambda: {"y": torch.zeros(2)}, reference=lambda: {"y": torch.ones(2)})


def test_not_implemented_names_the_method(hwcheck, monkeypatch):
    monkeypatch.setattr(hwcheck, "_goldens_cache", {"demo": {"values": {}}})

    class Layer:
        def forward(self):
            raise NotImplementedError()

    with pytest.raises(hwcheck.CheckFailed, match=r"`Layer.forward` still raises NotImplementedError"):
        hwcheck.check("demo", lambda: {"y": Layer().forward()})


def test_probe_mode_reports_values_and_errors_without_comparing(hwcheck):
    reports = {}
    hwcheck.use_probe_mode(lambda name, report: reports.__setitem__(name, report))
    try:
        hwcheck.check("ok", lambda: {"y": torch.ones(2)})
        hwcheck.check("boom", lambda: 1 / 0)
    finally:
        hwcheck.use_probe_mode(None)
    assert reports["ok"]["values"]["y"]["shape"] == [2]
    assert reports["boom"]["error"]["type"] == "ZeroDivisionError"


def test_accuracy_scoring_is_linear_between_the_bounds(hwcheck):
    labels = hwcheck.encode(torch.tensor([0, 1, 2, 3] * 25))
    entry = {"values": {"predictions": labels}, "score": {"kind": "accuracy", "key": "predictions",
                                                          "zero": 0.5, "full": 0.9}}
    predictions = torch.tensor([0, 1, 2, 3] * 25)
    predictions[:30] = 9  # 70 % right
    fraction, problems, summary = hwcheck.evaluate({"predictions": hwcheck.encode(predictions)}, entry)
    assert fraction == pytest.approx(0.5)
    assert "accuracy 70.0%" in summary and problems


def test_reference_layers_match_torch_modules(hwcheck):
    torch.manual_seed(0)
    with hwcheck.float64():
        layer = hwcheck.reference_lstm_layer(3, 2)
        torch_lstm = torch.nn.LSTM(3, 2, batch_first=True)
    weights = hwcheck.lstm_layer_weights_for_torch(dict(layer.named_parameters()))
    with torch.no_grad():
        for name, value in weights.items():
            getattr(torch_lstm, name).copy_(value)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    assert torch.allclose(layer(x)[0], torch_lstm(x)[0])


def test_digest_goldens_hide_the_values_but_still_compare(hwcheck):
    answer = hwcheck.encode(torch.tensor([-1.85, -1.93], dtype=torch.float64))
    golden = hwcheck.to_golden(answer, spec={"kind": "digest"})
    assert set(golden) == {"kind", "sha256"} and "1.85" not in json.dumps(golden)
    assert hwcheck.compare_value("log_probs", hwcheck.encode(torch.tensor([-1.85 + 1e-12, -1.93])), golden) is None
    message = hwcheck.compare_value("log_probs", hwcheck.encode(torch.tensor([-1.85, -1.94])), golden)
    assert message == "log_probs: does not match the expected result"
