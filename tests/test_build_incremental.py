"""`make release` is reproducible and incremental: two builds of the same inputs give the same bytes, a build
with nothing changed executes nothing and writes nothing, and an edited master changes exactly its own outputs.

The builds here start from copies of the session's fast build (its cache included), so they cost one forced
rebuild and one run of the cheapest master; the session's build itself is never touched.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Dict, List

import nbformat
import pytest
from conftest import ROOT, copy_course

from assignkit import build as build_module
from assignkit import reproducible
from assignkit.build import build, master_inputs
from assignkit.masters import Master, read_masters

OUTPUTS = ("release", "solutions", "source/hw_rnn/public_goldens.json", "build/goldens", "autograder/dist")
"""What a build writes (and what two builds must agree on, byte for byte)."""
EDITED = "q_written"
"""The master the incremental test edits: the cheapest one to run again."""


RUN_DEBRIS = ("__pycache__", ".ipynb_checkpoints")
"""What other tests leave in the shared fast build by running code there (``import hwcheck`` in the release
folder writes its bytecode): not the build's."""


def digests(course: Path, parts: tuple = OUTPUTS) -> Dict[str, str]:
    """``{path relative to course: sha256}`` of every file under ``parts``."""
    found = {}
    for part in parts:
        path = course / part
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and not set(p.relative_to(course).parts) & set(RUN_DEBRIS))
        found.update({p.relative_to(course).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    return found


def snapshot(course: Path) -> Dict[str, tuple]:
    """``{path: (sha256, mtime_ns)}`` of every file of the course outside build/ (nbgrader's gradebook aside)."""
    found = {}
    for path in sorted(course.rglob("*")):
        relative = path.relative_to(course)
        if path.is_file() and relative.parts[0] != "build" and relative.name != "gradebook.db":
            found[relative.as_posix()] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return found


def copy_of(course: Path, target: Path) -> Path:
    shutil.copytree(course, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def rebuilt(fast_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fast build built again with ``force``: every master executed anew, nbgrader run again."""
    course = copy_of(fast_build, tmp_path_factory.mktemp("rebuilt") / "course")
    build(course, fast=True, force=True)
    return course


def test_two_builds_give_the_same_bytes(fast_build: Path, rebuilt: Path) -> None:
    """Solutions (notebooks, HTML, model files, log), release, goldens and bundle: byte-identical."""
    first, second = digests(fast_build), digests(rebuilt)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    assert {"solutions/hw_rnn/surname_model.pt", "solutions/hw_rnn/char_lm.pt"} <= set(first)


@pytest.mark.parametrize("name", ["q_rnn_and_grad", "q_rnn_last_name", "q_written", "q_char_lm"])
def test_solutions_hold_no_run_specific_values(fast_build: Path, name: str) -> None:
    """No absolute path, no progress-bar timing, no wall-clock duration, no random widget id; printed text in
    one stream output per run of the same stream."""
    solutions = fast_build / "solutions" / "hw_rnn"
    for suffix in (".ipynb", ".html"):
        text = (solutions / f"{name}{suffix}").read_text(encoding="utf-8")
        assert str(fast_build) not in text and str(ROOT) not in text and str(Path.home()) + "/" not in text
        assert "it/s" not in text and "&lt;00:00" not in text and "<00:00" not in text  # tqdm's rate and times
    notebook = nbformat.read(str(solutions / f"{name}.ipynb"), as_version=4)
    for cell in notebook.cells:
        outputs = cell.get("outputs", [])
        for before, after in itertools.pairwise(outputs):
            assert not (before.output_type == after.output_type == "stream" and before.name == after.name)
        for output in outputs:
            if output.output_type == "stream":
                assert not reproducible.DURATION.search(output.text), output.text
    state = notebook.metadata.get("widgets", {}).get(reproducible.WIDGET_STATE, {}).get("state", {})
    assert sorted(state) == [f"{number:032x}" for number in range(1, len(state) + 1)]


def test_the_solution_log_carries_no_wall_clock_time(fast_build: Path) -> None:
    log = json.loads((fast_build / "solutions" / "hw_rnn" / "submission_log.json").read_text(encoding="utf-8"))
    assert log["created_utc"] == reproducible.FIXED_TIME
    assert log["training"]["seconds"] == 0 and all(epoch["seconds"] == 0 for epoch in log["training"]["epochs"])


def test_a_build_with_nothing_changed_runs_nothing_and_writes_nothing(fast_build: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    course = copy_of(fast_build, tmp_path / "course")
    before = snapshot(course)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the no-op build started {args[:1]}")

    monkeypatch.setattr(build_module, "run_masters", refuse)
    monkeypatch.setattr(build_module.subprocess, "run", refuse)  # nbgrader, nbconvert: nothing is started
    started = time.process_time()
    build(course, fast=True)
    assert time.process_time() - started < 10  # CPU seconds of this process: the work, whatever the load
    assert snapshot(course) == before


def test_an_edited_master_changes_exactly_its_own_outputs(fast_build: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    course = copy_of(fast_build, tmp_path / "course")
    master_path = course / "source" / "hw_rnn" / f"{EDITED}.ipynb"
    master = nbformat.read(str(master_path), as_version=4)
    index = next(i for i, cell in enumerate(master.cells) if cell.cell_type == "markdown")
    master.cells[index].source += "\n\nA sentence the instructor added."
    nbformat.write(master, str(master_path))
    before = snapshot(course)
    ran: List[str] = []
    real_run = build_module.run_masters

    def run_masters(root: Path, masters: List[Master], *args: object) -> object:
        ran.extend(master.name for master in masters)
        return real_run(root, masters, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "run_masters", run_masters)
    build(course, fast=True)
    after = snapshot(course)
    changed = sorted(name for name in after if after[name][0] != before.get(name, ("",))[0])
    assert ran == [EDITED]
    assert changed == ["autograder/dist/autograder.zip",  # the bundle holds the masters (the referee runs them)
                       f"release/hw_rnn/{EDITED}.ipynb", f"solutions/hw_rnn/{EDITED}.html",
                       f"solutions/hw_rnn/{EDITED}.ipynb"]
    assert sorted(after) == sorted(before)
    old = nbformat.read(str(fast_build / "solutions" / "hw_rnn" / f"{EDITED}.ipynb"), as_version=4)
    new = nbformat.read(str(course / "solutions" / "hw_rnn" / f"{EDITED}.ipynb"), as_version=4)
    differing = [i for i, (a, b) in enumerate(zip(old.cells, new.cells, strict=True)) if a != b]
    assert differing == [index]  # the run again printed and drew exactly what the first run did
    assert "A sentence the instructor added." in new.cells[index].source
    released = (course / "release" / "hw_rnn" / f"{EDITED}.ipynb").read_text(encoding="utf-8")
    assert "A sentence the instructor added." in released
    again = snapshot(course)
    build(course, fast=True)  # and now nothing is left to do
    assert ran == [EDITED] and snapshot(course) == again


def test_the_cache_key_covers_every_input(tmp_path: Path) -> None:
    """Each file a master can read changes that master's key; a master's own file changes only its key."""
    course = copy_course(tmp_path / "course")
    masters = read_masters(course / "source" / "hw_rnn")
    keys = {master.name: master_inputs(course, master, masters, fast=True) for master in masters}
    assert all(keys[master.name] != master_inputs(course, master, masters, fast=False) for master in masters)
    source = course / "source" / "hw_rnn"
    shared = [source / "hwcheck.py", source / "safe_expr.py", *sorted((source / "data").rglob("*.*")),
              course / "assignment.toml", course / "autograder" / "hidden_data" / "surnames_test_hidden.tsv"]
    for path in shared:
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        changed = [m.name for m in masters if master_inputs(course, m, masters, fast=True) != keys[m.name]]
        path.write_bytes(original)
        assert changed == [m.name for m in masters], path.relative_to(course)
    for master in masters:
        original = master.path.read_bytes()
        master.path.write_bytes(original.replace(b'"cells": [', b'"cells": [\n', 1))
        changed = [m.name for m in masters if master_inputs(course, m, masters, fast=True) != keys[m.name]]
        master.path.write_bytes(original)
        assert changed == [master.name]


# --------------------------------------------------------------------------------------------------
# The normalisation itself, on small cases
# --------------------------------------------------------------------------------------------------


def stream(name: str, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name=name, text=text)


def test_consecutive_messages_of_one_stream_are_merged_and_nothing_else_is() -> None:
    image = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})
    outputs = [stream("stdout", "a"), stream("stdout", "b\n"), stream("stderr", "w\n"), stream("stdout", "c\n"),
               image, stream("stdout", "d\n")]
    merged = reproducible.merged_streams(outputs)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "ab\n"), ("stream", "stderr", "w\n"), ("stream", "stdout", "c\n"),
        ("display_data", None, None), ("stream", "stdout", "d\n")]


def test_printed_durations_are_left_out_and_other_numbers_kept(tmp_path: Path) -> None:
    assert reproducible.without_durations("gru: 35 s, public test accuracy 0.812\n") == \
        "gru: … s, public test accuracy 0.812\n"
    assert reproducible.without_durations("1.5 s, public test: 2.640 bits per character") == \
        "… s, public test: 2.640 bits per character"
    kept = "3 samples, 12 steps, h1 s, 0.5 ms, loss 1e-3 s1"
    assert reproducible.without_durations(kept) == kept
    shown = reproducible.stable_cell_outputs([stream("stdout", f"wrote {tmp_path}/x.pt in 2 s\n")], tmp_path)
    assert shown[0].text == "wrote x.pt in … s\n"


def test_widgets_keep_what_an_output_shows_under_ids_in_the_order_reached() -> None:
    def model(name: str, **state: object) -> dict:
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    state = {"f3": model("HBoxModel", children=["IPY_MODEL_b7", "IPY_MODEL_a1"], layout="IPY_MODEL_c9"),
             "b7": model("HTMLModel", value="x"), "a1": model("ImageModel", layout="IPY_MODEL_c9"),
             "c9": model("LayoutModel"), "e5": model("HTMLModel", value="1350/1350 [00:35<00:00, 56it/s]")}
    view = nbformat.v4.new_output("display_data", data={reproducible.WIDGET_VIEW: {"model_id": "f3"}})
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("w", outputs=[view])])
    notebook.metadata["widgets"] = {reproducible.WIDGET_STATE: {"state": state, "version_major": 2}}
    reproducible.stabilise_widgets(notebook)
    kept = notebook.metadata["widgets"][reproducible.WIDGET_STATE]["state"]
    one, two, three, four = (f"{n:032x}" for n in range(1, 5))
    assert list(kept) == [one, two, three, four]  # f3, then its references in sorted JSON order: b7, a1, c9
    assert kept[one]["state"] == {"children": [f"IPY_MODEL_{two}", f"IPY_MODEL_{three}"], "layout": f"IPY_MODEL_{four}"}
    assert kept[three]["state"] == {"layout": f"IPY_MODEL_{four}"} and kept[two]["state"] == {"value": "x"}
    assert notebook.cells[0].outputs[0]["data"][reproducible.WIDGET_VIEW]["model_id"] == one
    notebook.cells[0].outputs = []
    reproducible.stabilise_widgets(notebook)
    assert "widgets" not in notebook.metadata


def test_the_solution_log_keeps_everything_but_wall_clock_values() -> None:
    log = {"schema_version": 1, "created_utc": "2026-11-30T11:58:08+00:00", "public_test_accuracy": 0.81,
           "training": {"epochs": [{"epoch": 1, "seconds": 2.06, "test_accuracy": 0.69}], "seconds": 2.2}}
    stable = json.loads(reproducible.stable_submission_log(json.dumps(log).encode()))
    assert stable == {**log, "created_utc": reproducible.FIXED_TIME,
                      "training": {"epochs": [{"epoch": 1, "seconds": 0.0, "test_accuracy": 0.69}], "seconds": 0.0}}
    assert list(stable) == list(log)
