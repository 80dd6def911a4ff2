"""Reading the staff's written model answers, so that tests can check what they claim against computations.

The model answers are markdown cells of the masters (nbgrader "manually graded answer" cells). A test finds the
claims it checks by their wording (a table row, a bold label, a formula after a fixed phrase) and turns the
LaTeX of a formula into a sympy expression with :func:`latex_to_sympy`. This reads staff text only (never a
student's answer), so sympy's parser is fine here; students' typed formulas go through ``safe_expr``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_application,
    implicit_multiplication,
    parse_expr,
    split_symbols_custom,
    standard_transformations,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "hw_rnn"


def cells(notebook: Path) -> List[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def grade_id(cell: dict) -> str | None:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def master_cell(notebook: str, wanted: str, source: Path = SOURCE) -> str:
    """The source of the cell with grade_id ``wanted`` in master ``notebook`` (e.g. "q_written")."""
    for cell in cells(source / f"{notebook}.ipynb"):
        if grade_id(cell) == wanted:
            return cell_text(cell)
    raise KeyError(f"{notebook}: no cell {wanted}")


def printed(notebook: Path, wanted: str) -> str:
    """Everything the cell with grade_id ``wanted`` printed in an executed notebook (e.g. a built solution)."""
    for cell in cells(notebook):
        if grade_id(cell) == wanted:
            return "".join("".join(output.get("text", "")) for output in cell.get("outputs", [])
                           if output.get("output_type") == "stream")
    raise KeyError(f"{notebook.name}: no cell {wanted}")


def find(pattern: str, text: str, flags: int = re.S) -> Tuple[str, ...]:
    """The groups of the first match of ``pattern``; fails the test with the pattern when there is none."""
    match = re.search(pattern, text, flags)
    assert match is not None, f"the model answer no longer says /{pattern}/"
    return match.groups()


def table_rows(text: str) -> Dict[str, List[str]]:
    """Markdown table rows of ``text`` as {first cell: the other cells}, header and rule rows included."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and line.rstrip().endswith("|"):
            fields = [field.strip() for field in line.strip().strip("|").split("|")]
            rows[fields[0]] = fields[1:]
    return rows


def percent(text: str) -> Tuple[float, float]:
    """A claimed percentage such as "4.4 %" as (value in %, half of its last digit: the rounding tolerance)."""
    number = find(r"([0-9]+(?:\.[0-9]+)?)\s*%", text)[0]
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), 0.5 * 10 ** -decimals + 1e-9


def close_to_claim(claimed: str, value: float) -> bool:
    """Does a number written with some decimals (e.g. "0.31") state ``value`` correctly rounded?"""
    decimals = len(claimed.split(".")[1]) if "." in claimed else 0
    return abs(float(claimed) - value) <= 0.5 * 10 ** -decimals + 1e-9


_FRACTION = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\{([^{}]*)\}")
_SUM = re.compile(r"^\s*\\sum_\{([A-Za-z])=([^{}]+)\}\^\{([^{}]+)\}(.*)$", re.S)


def _plain(latex: str, rename: Iterable[Tuple[str, str]]) -> str:
    """LaTeX of one formula as a sympy-parsable string (sizing and spacing dropped, fractions and powers spelt out)."""
    text = latex
    for old, new in sorted(rename, key=lambda pair: -len(pair[0])):
        text = text.replace(old, f" {new} ")
    text = re.sub(r"\\(?:big|Big|bigg|Bigg)[lr]?|\\left|\\right", "", text)
    text = re.sub(r"\\[,;:! ]|\\q?quad", " ", text)
    text = text.replace(r"\cdot", "*").replace(r"\times", "*")
    text = re.sub(r"\\(?:ln|log)(?![A-Za-z])", " log", text).replace(r"\min", " min")
    while _FRACTION.search(text) or _SQRT.search(text):
        text = _FRACTION.sub(r"((\1)/(\2))", text)
        text = _SQRT.sub(r"sqrt((\1))", text)
    text = text.replace("{", "(").replace("}", ")")
    assert "\\" not in text, f"cannot read the LaTeX command in {latex!r}"
    return text.strip().rstrip(".,;").strip()


def latex_to_sympy(latex: str, symbols: Sequence[str], rename: Iterable[Tuple[str, str]] = ()) -> sympy.Expr:
    """A formula of a model answer as a sympy expression in ``symbols``.

    ``rename`` maps LaTeX spellings of indexed names to plain symbols (e.g. ``("x_1^{(s)}", "x1s")``); juxtaposed
    single-letter symbols multiply (``kT`` is k*T). A leading ``\\sum_{t=1}^{T}`` becomes a sympy Sum.
    """
    rename = list(rename)
    match = _SUM.match(latex)
    if match:
        variable, low, high, summand = match.groups()
        names = [*symbols, variable]
        return sympy.Sum(latex_to_sympy(summand, names, rename),
                         (sympy.Symbol(variable), latex_to_sympy(low, names, rename),
                          latex_to_sympy(high, names, rename)))
    local: Dict[str, object] = {name: sympy.Symbol(name) for name in symbols}
    local.update(log=sympy.log, min=sympy.Min, sqrt=sympy.sqrt)

    def splittable(name: str) -> bool:
        return name not in local and all(letter in local for letter in name)

    transformations = (*standard_transformations, convert_xor, split_symbols_custom(splittable),
                       implicit_multiplication, implicit_application)
    expression = parse_expr(_plain(latex, rename), local_dict=local, transformations=transformations)
    unknown = {str(s) for s in expression.free_symbols} - set(symbols)
    assert not unknown, f"unexpected names {sorted(unknown)} in {latex!r}"
    return expression


def value(expression: sympy.Expr, **values: float) -> float:
    """A formula's value at a point (a Sum over integer bounds is added up term by term)."""
    point = {sympy.Symbol(k): v for k, v in values.items()}
    if isinstance(expression, sympy.Sum):
        (variable, low, high), = expression.limits
        summand = sympy.lambdify(variable, expression.function.subs(point), "math")
        return float(sum(summand(i) for i in range(int(low.subs(point)), int(high.subs(point)) + 1)))
    return float(expression.subs(point).doit())
