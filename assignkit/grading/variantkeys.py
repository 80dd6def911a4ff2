"""Each student's variant key, for the staff's views of the written answers.

Some written questions are about the numbers of the student's own variant (``variants.py``: 2.4 asks whether the
beam search of the student's tree finds its most likely sequence). A grader of such a question needs that
student's key, not the solutions' default one. Here it is computed in the staff's process from the
``STUDENT_ID`` saved in the submitted notebook, read as a literal (never run), with the course's own
``variants.py`` and default tree. Standard library only (it ships in the bundle with the rest of the grader).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional

from .course import Course
from .identity import ID_CELL, ID_VARIABLE

TREE_FILE = "data/beam_tree.json"


def _module(path: Path, name: str) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


class VariantKeys:
    """``describe(notebook)``: the key of the variant a submitted notebook's ``STUDENT_ID`` selects, as text."""

    def __init__(self, course: Course) -> None:
        runtime = {path.name: path for path in course.runtime_files}
        data = dict(course.public_data)
        if "variants.py" not in runtime or "hwcheck.py" not in runtime or TREE_FILE not in data:
            raise FileNotFoundError("this course has no per-student variants (variants.py, hwcheck.py, "
                                    f"{TREE_FILE})")
        self.variants = _module(runtime["variants.py"], "_staff_view_variants")
        self.hwcheck = _module(runtime["hwcheck.py"], "_staff_view_hwcheck")
        self.default_tree = json.loads(Path(data[TREE_FILE]).read_text(encoding="utf-8"))

    @classmethod
    def of(cls, course: Course) -> Optional[VariantKeys]:
        """The course's keys, or ``None`` when it has no variants."""
        try:
            return cls(course)
        except (FileNotFoundError, ImportError, OSError, ValueError):
            return None

    def typed_id(self, notebook: Optional[Mapping[str, Any]]) -> Any:
        """The ``STUDENT_ID`` literal saved in the notebook (``None`` when missing or not a literal)."""
        if notebook is None:
            return None
        try:
            return self.hwcheck.read_literal_answer(notebook, ID_VARIABLE, ID_CELL)
        except Exception:  # an unreadable cell is the student's problem; the view says the ID could not be read
            return None

    def describe(self, notebook: Optional[Mapping[str, Any]]) -> str:
        """Plain text (the caller escapes it: the typed ID is the student's): whose variant, its recurrence, the
        beams after each step and the most likely complete sequence."""
        typed = self.typed_id(notebook)
        problem = self.variants.id_problem(typed)
        variant = self.variants.for_student(typed, self.default_tree)
        if variant.is_default:
            who = f"no STUDENT_ID ({problem}): the default variant, the solutions' key"
        else:
            who = f"STUDENT_ID {variant.student_id!r}" + (f" (unusual: {problem})" if problem else "")
        a, b = variant.input_gain, variant.recurrent_gain
        tree = variant.beam_tree
        table, vocabulary = tree["next_token_log_probs"], tree["vocabulary"]
        totals = {" ".join(sequence): round(sum(table[" ".join(sequence[:i])][token]
                                                for i, token in enumerate(sequence)), 2)
                  for sequence in itertools.product(vocabulary, repeat=tree["length"])}
        best = max(totals, key=lambda sequence: totals[sequence])
        steps = "\n".join(f"  beam after step {step}: " + ", ".join(f"{sequence!r} {total:.2f}"
                                                                      for sequence, total in beam)
                          for step, beam in enumerate(self.variants.beams(tree), start=1))
        found = self.variants.beams(tree)[-1][0]
        return (f"Variant of this submission: {who}\n"
                f"  Part 1: h_k = w ({a} u_k {'+' if b > 0 else '-'} {abs(b)} h_(k-1))\n{steps}\n"
                f"  most likely sequence of length {tree['length']}: {best!r} {totals[best]:.2f}; "
                f"the beam (k = {tree['beam_size']}) returns {found[0]!r} {found[1]:.2f}")
