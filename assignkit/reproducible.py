"""What makes two builds of the same masters give the same bytes: executed notebooks, their HTML, the files the
masters write.

An executed notebook holds more than its code computed: how the kernel happened to split printed text into
stream messages, random widget model ids, progress-bar timings in the widget state, wall-clock durations the
training cells print, and nbconvert's random ``<div>`` ids. The functions here remove exactly those, so that the
committed solutions change only when what the code computes changes. Training itself is deterministic already
(the masters seed every generator and run torch on one thread), and so is ``torch.save``'s archive: its
``serialization_id`` is derived from the content.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MODEL_REFERENCE = "IPY_MODEL_"
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)? s\b")
"""A duration in seconds as the masters print one (``gru: 35 s, public test accuracy 0.812``)."""
DURATION_SHOWN = "… s"
FIXED_TIME = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc).isoformat(timespec="seconds")
"""The time the solutions' ``submission_log.json`` says it was written: any fixed instant would do."""


def merged_streams(outputs: List[Any]) -> List[Any]:
    """``outputs`` with each run of consecutive stream outputs of the same name (stdout, stderr) merged into one.

    The kernel sends printed text in messages whose boundaries depend on timing (a flush every few hundred
    milliseconds), and nbclient keeps one output per message; merged, the text is the same on every run."""
    merged: List[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = _text(previous.get("text", "")) + _text(output.get("text", ""))
        else:
            merged.append(output)
    return merged


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def without_durations(text: str) -> str:
    """Printed text with every wall-clock duration (``35 s``) shown as ``… s``: the time a cell took is not
    something it computed, and it differs on every run."""
    return DURATION.sub(DURATION_SHOWN, text)


def stable_cell_outputs(outputs: List[Any], root: Path) -> List[Any]:
    """A code cell's outputs as the solutions show them: streams merged, durations and the course's absolute path
    left out of printed text."""
    shown = merged_streams(outputs)
    prefix = str(root.resolve()) + "/"
    for output in shown:
        if output.get("output_type") == "stream":
            output["text"] = without_durations(_text(output.get("text", ""))).replace(prefix, "")
    return shown


def _walk(value: Any, visit: Callable[[str], str]) -> Any:
    """``value`` with every string replaced by ``visit(string)`` (dict keys included), recursively."""
    if isinstance(value, dict):
        return {visit(key): _walk(item, visit) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, visit) for item in value]
    return visit(value) if isinstance(value, str) else value


def _views(cells: List[Any]) -> Iterator[str]:
    """The model ids of the widget views shown in the cells' outputs, in order."""
    for cell in cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            view = (output.get("data") or {}).get(WIDGET_VIEW)
            if isinstance(view, dict) and isinstance(view.get("model_id"), str):
                yield view["model_id"]


def stabilise_widgets(notebook: Any) -> None:
    """Keep only the widget models that an output still shows (directly or as a child, layout or style of one),
    and rename them ``0000…0001``, ``0000…0002``, … in the order they are reached from the outputs.

    Widget model ids are random, and the saved state also holds every progress bar that ran (with its timings),
    though the build shows those bars as text. Without any widget left, the notebook keeps no widget state."""
    metadata = notebook.get("metadata", {})
    state = (metadata.get("widgets") or {}).get(WIDGET_STATE, {})
    models: Dict[str, Any] = dict(state.get("state") or {})
    order: List[str] = []
    pending = [model_id for model_id in _views(notebook.get("cells", [])) if model_id in models]
    while pending:  # breadth-first from the views; references are read in the model's (sorted) JSON order
        model_id = pending.pop(0)
        if model_id in order:
            continue
        order.append(model_id)
        found = re.findall(re.escape(MODEL_REFERENCE) + r"([0-9a-f]+)", json.dumps(models[model_id], sort_keys=True))
        pending += [reference for reference in found if reference in models and reference not in order]
    if not order:
        metadata.pop("widgets", None)
        return
    renamed = {old: f"{number:032x}" for number, old in zip(itertools.count(1), order)}

    def rename(text: str) -> str:
        if text in renamed:
            return renamed[text]
        if text.startswith(MODEL_REFERENCE) and text[len(MODEL_REFERENCE):] in renamed:
            return MODEL_REFERENCE + renamed[text[len(MODEL_REFERENCE):]]
        return text

    state["state"] = {renamed[model_id]: _walk(models[model_id], rename) for model_id in order}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            for output in cell.get("outputs", []):
                view = (output.get("data") or {}).get(WIDGET_VIEW)
                if isinstance(view, dict) and view.get("model_id") in renamed:
                    view["model_id"] = renamed[view["model_id"]]


def stable_submission_log(data: bytes) -> bytes:
    """The solutions' ``submission_log.json`` without wall-clock values: ``created_utc`` is a fixed instant and
    every ``seconds`` (training time, per epoch and in total) is 0. The log keeps its schema, its layout and
    everything that describes the model (hyperparameters, losses, accuracies, the weights' sha256)."""
    log = json.loads(data.decode("utf-8"))

    def clear(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: (0.0 if key == "seconds" and isinstance(item, (int, float)) else clear(item))
                    for key, item in value.items()}
        if isinstance(value, list):
            return [clear(item) for item in value]
        return value

    log = clear(log)
    if "created_utc" in log:
        log["created_utc"] = FIXED_TIME
    return (json.dumps(log, indent=1) + "\n").encode("utf-8")


def html_of(notebook_path: Path) -> str:
    """nbconvert's HTML of a notebook (the lab template, as ``jupyter nbconvert --to html`` writes it), with the
    ``<div>`` ids of widget views and JavaScript outputs numbered (``output-1``, …) instead of random."""
    from nbconvert import HTMLExporter

    class NumberedIds(HTMLExporter):
        """An HTML exporter whose template's ``uuid4()`` counts."""

        def _create_environment(self) -> Any:
            environment = super()._create_environment()
            counter = itertools.count(1)
            environment.globals["uuid4"] = lambda: f"output-{next(counter)}"
            return environment

    body, _ = NumberedIds().from_filename(str(notebook_path))
    return body
