"""What students read: no staff-only wording in any release notebook.

The text a student reads in a release notebook is its markdown, and the comments and string literals of its code
cells (printed messages, error messages, docstrings). None of it may talk about the staff's tooling: the build
package, the Makefile's staff targets, nbgrader, the README of the staff repository, or the short "fast mode" the
build and the grader use. Code itself (an environment variable a cell reads, a function name) is not text and is
not scanned. Every release notebook the fast build produced is scanned, whichever masters exist.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"

STAFF_WORDS = {
    "make bench": re.compile(r"\bmake\s+(?:bench|release|grade|lint)\b", re.I),
    "see the README": re.compile(r"\bsee\s+(?:the\s+)?readme\b", re.I),
    "assignkit": re.compile(r"\bassignkit\b", re.I),
    "nbgrader": re.compile(r"\bnbgrader\b", re.I),
    "fast mode": re.compile(r"\bfast[\s-]+mode\b", re.I),
    "how the staff run it": re.compile(r"\b(?:course\s+)?staff\s+run\b", re.I),
    "the original version": re.compile(r"\boriginal\s+version\s+of\s+this\s+homework\b", re.I),
    "python -m (a staff module)": re.compile(r"\bpython\s+-m\s+(?!venv\b|pip\b)\w", re.I),
}
STAFF_CODE = re.compile(r"\b(?:fast_mode|NBGRADER_EXECUTION|HW_FAST|HWCHECK_\w+|GRADING_RUN)\b")
"""Names of the staff's switches: a student reading the code of a given cell should not meet them either."""
RELEASED = sorted(path.name for path in SOURCE.glob("q_*.ipynb"))  # masters present now; the build releases each


def code_text(source: str) -> Iterator[str]:
    """The comments and string literals of a code cell (the whole source if it does not tokenize)."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.COMMENT, tokenize.STRING):
                yield token.string
            elif token.type == getattr(tokenize, "FSTRING_MIDDLE", None):  # Python 3.12+ splits f-strings
                yield token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        yield source


def readable_text(notebook: Path) -> Iterator[Tuple[str, str]]:
    """(where, text) for every piece of text a student reads in ``notebook``."""
    for index, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        where = f"cell {index} ({cell['cell_type']}, id {cell.get('id')})"
        if cell["cell_type"] == "markdown":
            yield where, source
        elif cell["cell_type"] == "code":
            for text in code_text(source):
                yield where, text


def staff_code(notebook: Path) -> List[str]:
    """Staff switches named anywhere in a code cell (the words of :data:`STAFF_CODE`)."""
    found = []
    for index, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code":
            found += [f"{notebook.name} cell {index}: {match.group(0)}" for match in STAFF_CODE.finditer(source)]
    return found


def staff_wording(notebook: Path) -> List[str]:
    found = []
    for where, text in readable_text(notebook):
        for label, pattern in STAFF_WORDS.items():
            for match in pattern.finditer(text):
                context = text[max(0, match.start() - 50):match.end() + 50].replace("\n", " ")
                found.append(f"{notebook.name} {where}: {label!r} in …{context}…")
    return found


def test_the_scan_sees_markdown_comments_and_printed_strings_but_not_code(tmp_path):
    notebook = tmp_path / "q_example.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": "Train it (in Fast mode it runs one epoch; see the README)."},
        {"cell_type": "code", "source": ['# graded by nbgrader\n', 'x = os.environ.get("NBGRADER_EXECUTION")\n',
                                         'print(f"{hwcheck.fast_mode()}: run `make bench`")\n', 'import assignkit\n']},
    ]}), encoding="utf-8")
    labels = sorted(line.split("'")[1] for line in staff_wording(notebook))
    assert labels == ["fast mode", "make bench", "nbgrader", "see the README"]  # not the import, nor the variable


@pytest.mark.parametrize("name", RELEASED)
def test_release_notebook_has_no_staff_wording(fast_build, name):
    notebook = fast_build / "release" / "hw_rnn" / name
    assert notebook.is_file(), f"{name} was not released"
    found = staff_wording(notebook) + staff_code(notebook)
    assert not found, "staff-only wording in the student release:\n" + "\n".join(found)


def test_the_code_scan_finds_the_staff_switches(tmp_path):
    notebook = tmp_path / "q_example.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "source": "n = 40 if hwcheck.fast_mode() else 150\nx = os.environ['NBGRADER_EXECUTION']"},
        {"cell_type": "code", "source": "steps = hwcheck.steps(150, short=40)  # fast_modes is another word"},
    ]}), encoding="utf-8")
    assert staff_code(notebook) == ["q_example.ipynb cell 0: fast_mode", "q_example.ipynb cell 0: NBGRADER_EXECUTION"]


def test_the_release_text_files_have_no_staff_wording(fast_build):
    """The student README, the datasheet and the licences of the data: what a student reads beside the notebooks."""
    release = fast_build / "release" / "hw_rnn"
    texts = sorted(release.glob("*.md")) + sorted((release / "data").glob("*.md"))
    assert any(path.name == "DATASET.md" for path in texts)
    found = []
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for label, pattern in STAFF_WORDS.items():
            found += [f"{path.name}: {label!r} in …{text[max(0, m.start() - 50):m.end() + 50]}…"
                      for m in pattern.finditer(text)]
    assert not found, "\n".join(found)


def test_every_release_notebook_is_scanned(fast_build):
    released = {path.name for path in (fast_build / "release" / "hw_rnn").glob("*.ipynb")}
    assert released and released <= set(RELEASED), f"not scanned: {sorted(released - set(RELEASED))}"


def value_returning_functions(cells: List[dict]) -> set:
    """Names of the functions a notebook defines that return a value (a bare call of one shows that value)."""
    import ast

    names = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(inner, ast.Return) and inner.value is not None
                    and not (isinstance(inner.value, ast.Constant) and inner.value.value is None)
                    for inner in ast.walk(node)):
                names.add(node.name)
    return names


def stray_values(notebook: Path) -> List[str]:
    """Check cells whose last line is a bare call of a value-returning function: Jupyter would print the value (a
    stray ``True`` under every format check)."""
    import ast

    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    returning = value_returning_functions(cells)
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not (cell.get("metadata", {}).get("nbgrader") or {}).get("grade"):
            continue
        try:
            body = ast.parse("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]).body
        except SyntaxError:
            continue
        if body and isinstance(body[-1], ast.Expr) and isinstance(body[-1].value, ast.Call):
            function = body[-1].value.func
            if isinstance(function, ast.Name) and function.id in returning:
                found.append(f"{notebook.name} cell {index}: ends with {function.id}(...), whose value is shown")
    return found


def test_the_stray_value_scan_finds_a_bare_call_of_a_value_returning_function(tmp_path):
    notebook = tmp_path / "q_example.ipynb"
    check = {"nbgrader": {"grade": True}}
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "metadata": {}, "source": "def show(name):\n    print(name)\n    return True\n"},
        {"cell_type": "code", "metadata": check, "source": "show('a')\n"},
        {"cell_type": "code", "metadata": check, "source": "ok = show('b')\n"},
    ]}), encoding="utf-8")
    assert stray_values(notebook) == ["q_example.ipynb cell 1: ends with show(...), whose value is shown"]


@pytest.mark.parametrize("name", RELEASED)
def test_no_check_cell_of_the_release_prints_a_stray_value(fast_build, name):
    found = stray_values(fast_build / "release" / "hw_rnn" / name)
    assert not found, "\n".join(found)


def bench_median(key: str) -> float:
    results = json.loads((SOURCE.parents[1] / "bench" / "results.json").read_text(encoding="utf-8"))
    return float(results[key]["median_train_seconds"])


@pytest.mark.parametrize(("notebook", "bench_key", "times"), [("q_char_lm", "char_lm", 3),
                                                             ("q_rnn_last_name", "surnames", 2)])
def test_training_time_claims_quote_the_measured_median(notebook, bench_key, times):
    """Every sentence on how long the default training takes quotes one figure: the benchmark's median, rounded
    to 10 s (make bench writes bench/results.json)."""
    text = "\n".join(text for _, text in readable_text(SOURCE / f"{notebook}.ipynb"))
    figure = int(round(bench_median(bench_key) / 10) * 10)
    assert text.count(f"about {figure} seconds") >= times, (notebook, figure)
    for vague in ("under a minute", "most of a minute", "about 40 seconds", "about 25 s"):
        assert vague not in text, (notebook, vague)
