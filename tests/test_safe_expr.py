"""Tests for ``source/hw_rnn/safe_expr.py`` (safe parsing of typed answers)."""

from __future__ import annotations

import ast
import builtins
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sympy

_HW_DIR = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"
if str(_HW_DIR) not in sys.path:
    sys.path.insert(0, str(_HW_DIR))

import safe_expr  # noqa: E402
from safe_expr import COMMON_FUNCTIONS, AnswerError, equivalent, parse_answer  # noqa: E402

SYMBOLS = ["w", "u1", "u2", "u3", "p", "q", "r", "s", "t", "y", "dy_ds"]
w, u1, u2, u3, r, dy_ds = sympy.symbols("w u1 u2 u3 r dy_ds")

# y = w*t with t = u3 + w*(u2 + w*u1): the 3-step linear RNN.
DY_DW = "u3 + 2*w*u2 + 3*w**2*u1"
DEFINITIONS = {"p": "u1", "q": "w*p", "r": "u2 + q", "s": "w*r", "t": "u3 + s", "y": "w*t"}


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Exact equality of two rational expressions."""
    return sympy.cancel(a - b) == 0


# --------------------------------------------------------------------------
# Accepted forms
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("w*u3 + w**2*u2 + w^3*u1", w * u3 + w**2 * u2 + w**3 * u1),
        ("u3 + 2*w*u2 + 3w^2 u1", u3 + 2 * w * u2 + 3 * w**2 * u1),
        ("3w^2u1", 3 * w**2 * u1),
        ("3w^2 u1", 3 * w**2 * u1),
        ("2 w u2", 2 * w * u2),
        ("2w u2", 2 * w * u2),
        ("w(u1+u2)", w * (u1 + u2)),
        ("(u1)(u2)", u1 * u2),
        ("(u1+u2)w", (u1 + u2) * w),
        ("2(u1 + u2)", 2 * (u1 + u2)),
        ("wu1", w * u1),
        ("u1u2w", u1 * u2 * w),
        ("w dy_ds", w * dy_ds),
        ("wdy_ds", w * dy_ds),
        ("w^2^1", w**2),
        ("2^-1 w", w / 2),
        ("-w**2", -(w**2)),
        ("w/2/4", w / 8),
        ("0.5w + .25 w + 1e1", sympy.Rational(3, 4) * w + 10),
        ("  w  ", w),
    ],
)
def test_accepted_forms(text: str, expected: sympy.Expr) -> None:
    assert same(parse_answer(text, SYMBOLS), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("w²u1 + w³", w**2 * u1 + w**3),
        ("w⁻¹u1", u1 / w),
        ("3·w × u1 − 2", 3 * w * u1 - 2),
        ("w ⋅ u1 ÷ 2", w * u1 / 2),
        ("(u1+u2)²", (u1 + u2) ** 2),
    ],
)
def test_unicode_operators(text: str, expected: sympy.Expr) -> None:
    assert same(parse_answer(text, SYMBOLS), expected)


def test_numbers_are_exact() -> None:
    assert parse_answer("0.1", SYMBOLS) == sympy.Rational(1, 10)
    assert parse_answer("1.5e-3 w", SYMBOLS) == sympy.Rational(3, 2000) * w


def test_target_prefix_is_optional() -> None:
    assert parse_answer("y = w*t", SYMBOLS, target="y") == w * sympy.Symbol("t")
    assert parse_answer("dy_ds=w", SYMBOLS, target="dy_ds") == w
    with pytest.raises(AnswerError, match="'='"):
        parse_answer("y = w*t", SYMBOLS)  # no target given: '=' is not allowed
    with pytest.raises(AnswerError, match="no answer given"):
        parse_answer("y = ", SYMBOLS, target="y")


def test_functions_are_opt_in() -> None:
    with pytest.raises(AnswerError, match="unknown name 'tanh'"):
        parse_answer("tanh(r)", SYMBOLS)
    expr = parse_answer("2tanh(r)^2", SYMBOLS, COMMON_FUNCTIONS)
    assert expr == 2 * sympy.tanh(r) ** 2
    assert parse_answer("w sigma(r)", SYMBOLS, COMMON_FUNCTIONS) == w / (1 + sympy.exp(-r))
    with pytest.raises(AnswerError, match="'exp' must be followed by"):
        parse_answer("exp w", SYMBOLS, COMMON_FUNCTIONS)
    with pytest.raises(AnswerError, match="could not apply 'exp'"):
        parse_answer("exp(w, u1)", SYMBOLS, COMMON_FUNCTIONS)


# --------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_answer(text: str | None) -> None:
    with pytest.raises(AnswerError, match=r"^no answer given$"):
        parse_answer(text, SYMBOLS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("w + * u1", "unexpected '*'", 5),
        ("w +", "incomplete", 3),
        ("w 2", "missing operator before '2'", 3),
        ("(w + u1", "missing ')'", 1),
        ("w + u1)", "unmatched ')'", 7),
        ("w + foo", "unknown name 'foo'", 5),
        ("w + x", "unknown name 'x'", 5),
        ("w % 2", "unexpected character '%'", 3),
    ],
)
def test_error_messages_name_the_problem(text: str, message: str, position: int) -> None:
    with pytest.raises(AnswerError, match=re.escape(message)) as info:
        parse_answer(text, SYMBOLS)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def test_caller_errors_are_not_answer_errors() -> None:
    with pytest.raises(ValueError, match="keyword"):
        parse_answer("w", ["w", "lambda"])
    with pytest.raises(ValueError, match="invalid symbol"):
        parse_answer("w", ["w", "__class__"])
    with pytest.raises(ValueError, match="both"):
        parse_answer("w", ["w", "exp"], COMMON_FUNCTIONS)
    with pytest.raises(TypeError):
        parse_answer("w", "w")
    for bad_expected in ("w +", sympy.Symbol("z")):
        with pytest.raises(ValueError) as info:
            equivalent("w", bad_expected, ["w"])
        assert not isinstance(info.value, AnswerError)


# --------------------------------------------------------------------------
# Rejection of code and resource abuse, with nothing executed
# --------------------------------------------------------------------------

_DANGEROUS_MODULES = {"os", "subprocess", "shutil", "socket", "ctypes", "importlib", "pty"}


@pytest.fixture
def no_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[object]]]:
    """Record anything that would indicate code execution while parsing."""
    calls: dict[str, list[object]] = {"system": [], "popen": [], "eval": [], "exec": [], "open": [], "import": []}
    real_import = builtins.__import__
    real_open = builtins.open
    real_compile = builtins.compile

    def spy_import(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in _DANGEROUS_MODULES:
            calls["import"].append(name)
        return real_import(name, *args, **kwargs)

    def spy_open(file: object, *args: object, **kwargs: object) -> object:
        calls["open"].append(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def spy_compile(source: object, filename: object, mode: str, flags: int = 0, *args: object, **kw: object) -> object:
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse only builds a tree
            calls["exec"].append(("compile", source))
        return real_compile(source, filename, mode, flags, *args, **kw)  # type: ignore[call-overload]

    def spy_exec(kind: str, real: Callable[..., object]) -> Callable[..., object]:
        # Importing (sympy imports some modules lazily) runs module code
        # objects through exec(); only source text counts as an attempt.
        def record(code: object, *args: object, **kwargs: object) -> object:
            if isinstance(code, (str, bytes)):
                calls[kind].append(code)
                raise AssertionError(f"{kind} called on text during parsing")
            return real(code, *args, **kwargs)

        return record

    def forbidden(kind: str) -> Callable[..., object]:
        def record(*args: object, **kwargs: object) -> None:
            calls[kind].append(args)
            raise AssertionError(f"{kind} called during parsing")

        return record

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "system", forbidden("system"))
    monkeypatch.setattr(subprocess, "Popen", forbidden("popen"))
    monkeypatch.setattr(builtins, "eval", spy_exec("eval", builtins.eval))
    monkeypatch.setattr(builtins, "exec", spy_exec("exec", builtins.exec))
    monkeypatch.setattr(builtins, "compile", spy_compile)
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(builtins, "__import__", spy_import)
    yield calls


SENTINEL = "HACKED_SENTINEL"

MALICIOUS = [
    f"__import__('os').system('touch {SENTINEL}')",
    "__import__('os')",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    f"open('{SENTINEL}', 'w')",
    "lambda: 1",
    "[x for x in ()]",
    "w.__class__",
    "w.real",
    "'abc'",
    "b'abc'",
    "f'{w}'",
    "getattr(w, 'real')",
    "eval('1')",
    "exec('1')",
    "__builtins__",
    "import os",
    "w; import os",
    "w if w else u1",
    "w[0]",
    "{w}",
    "w < u1",
    "w and u1",
    "not w",
    "~w",
    "w // 2",
    "w @ u1",
    "1j",
    "True",
    "None",
    "w, u1",
    "9**9**9",
    "9^9^9",
    "w**1000000",
    "w^(10^10)",
    "((9**9)**9)**9",
    "(w**10)**10",
    "w**w",
    "w**0.5**-100",
    "1e400",
    "1e-400",
    "99999999999999999999999999",
    "w" * 10_000,
    "w+" * 5_000 + "w",
    "(" * 300 + "w" + ")" * 300,
    "-" * 400 + "w",
    "x",
    "foo",
    "exp(w)",
    "1/0",
    "w/(w-w)",
    "w = 3",
]


@pytest.mark.parametrize("text", MALICIOUS)
def test_rejects_code_and_abuse(text: str, no_side_effects: dict[str, list[object]], tmp_path: Path) -> None:
    start = time.thread_time()  # CPU time: the bound is on the work done, not on how busy the machine is
    with pytest.raises(AnswerError) as info:
        parse_answer(text, SYMBOLS)
    assert time.thread_time() - start < 1.0
    message = str(info.value)
    assert 0 < len(message) < 120
    assert all(not calls for calls in no_side_effects.values()), no_side_effects
    assert not (tmp_path / SENTINEL).exists()
    # equivalent() reports the same problem instead of raising.
    ok, why = equivalent(text, "w", SYMBOLS)
    assert (ok, why) == (False, message)


@pytest.mark.parametrize(
    "text",
    ["exp(x=1)", "exp(*w)", "exp(**w)", "exp(w, u1)", "exp()", "tanh(tanh(tanh(tanh(w))))", "log(0)", "open(w)"],
)
def test_rejects_bad_function_calls(text: str, no_side_effects: dict[str, list[object]]) -> None:
    with pytest.raises(AnswerError):
        parse_answer(text, SYMBOLS, COMMON_FUNCTIONS)
    assert all(not calls for calls in no_side_effects.values()), no_side_effects


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "w.__class__",
        "w[0]",
        "lambda: w",
        "[w for w in u1]",
        "'abc'",
        "f(w)",
        "w % 2",
        "(w, u1)",
        "w if u1 else u2",
    ],
)
def test_tree_whitelist_without_tokenizer(source: str) -> None:
    """Defence in depth: even trees the tokenizer never lets through are
    refused by the syntax-tree walker."""
    symbols = {name: sympy.Symbol(name) for name in ("w", "u1", "u2")}
    builder = safe_expr._Builder(symbols, {}, {}, {})
    with pytest.raises(AnswerError):
        builder.build(ast.parse(source, mode="eval"))


# --------------------------------------------------------------------------
# Equivalence
# --------------------------------------------------------------------------


def test_equivalent_expanded_and_nested_forms() -> None:
    assert equivalent("w*u3 + w**2*u2 + w**3*u1", "w*(u3 + w*(u2 + w*u1))", SYMBOLS) == (True, "")
    assert equivalent("w(u3 + w(u2 + w u1))", w * u3 + w**2 * u2 + w**3 * u1, SYMBOLS) == (True, "")
    assert equivalent("u3 + 2w u2 + 3w^2 u1", DY_DW, SYMBOLS) == (True, "")
    assert equivalent("w/(1+w) + 1/(1+w)", "1", SYMBOLS) == (True, "")


def test_missing_path_term_is_not_equivalent() -> None:
    ok, message = equivalent("u3 + 2*w*u2", DY_DW, SYMBOLS)
    assert not ok
    assert message.startswith("not equivalent")
    for secret in ("u1", "3", "w**2", "w^2"):
        assert secret not in message


def test_unknown_symbol_is_reported() -> None:
    ok, message = equivalent("w*x", "w", ["w"])
    assert not ok
    assert "unknown name 'x'" in message


def test_expected_symbols_matched_by_name() -> None:
    positive_w = sympy.Symbol("w", positive=True)
    assert equivalent("w^2", positive_w**2, ["w"]) == (True, "")


def test_definitions_of_intermediates() -> None:
    expected = "u3 + w*(u2 + w*u1)"
    for answer in ("t", "u3 + s", "u3 + w*r", "u3 + w u2 + w^2 u1", "y/w"):
        assert equivalent(answer, expected, SYMBOLS, definitions=DEFINITIONS) == (True, ""), answer
    assert not equivalent("u3 + w u2", expected, SYMBOLS, definitions=DEFINITIONS)[0]
    with pytest.raises(ValueError, match="circular"):
        equivalent("w", "w", ["w", "a", "b"], definitions={"a": "b", "b": "a"})


def test_numeric_comparison_with_functions() -> None:
    cosh_r = 1 / sympy.cosh(r) ** 2
    assert equivalent("1 - tanh(r)^2", cosh_r, SYMBOLS, functions=COMMON_FUNCTIONS) == (True, "")
    deriv = sympy.exp(-r) / (1 + sympy.exp(-r)) ** 2
    assert equivalent("sigma(r)(1 - sigma(r))", deriv, SYMBOLS, functions=COMMON_FUNCTIONS) == (True, "")
    ok, message = equivalent("sigma(r)", deriv, SYMBOLS, functions=COMMON_FUNCTIONS)
    assert (ok, message) == (False, "not equivalent: differs at a test point")
    # sqrt(w^2) is |w|, not w: the negative test points catch it.
    assert not equivalent("sqrt(w^2)", "w", SYMBOLS, functions=COMMON_FUNCTIONS)[0]


def test_undefined_functions_are_generic() -> None:
    sig = {"sigma": sympy.Function("sigma")}
    assert equivalent("sigma(r)(1-sigma(r))", "sigma(r) - sigma(r)^2", SYMBOLS, functions=sig) == (True, "")
    assert equivalent("sigma(w(1+u1))", "sigma(w + w u1)", SYMBOLS, functions=sig) == (True, "")
    assert not equivalent("sigma(w)sigma(u1)", "sigma(w u1)", SYMBOLS, functions=sig)[0]
    assert not equivalent("3sigma(r)", "2sigma(r)", SYMBOLS, functions=sig)[0]


def test_numeric_check_is_deterministic() -> None:
    args = ("sigma(r) (1 + 1e-6)", "sigma(r)", SYMBOLS)
    results = {equivalent(*args, functions=COMMON_FUNCTIONS, seed=3) for _ in range(3)}
    assert results == {(False, "not equivalent: differs at a test point")}
    assert equivalent(*args, functions=COMMON_FUNCTIONS, rtol=1e-3)[0]


@pytest.mark.parametrize(
    "answer",
    [
        "(w+u1+u2+u3+p)^10 (q+r+s+t+y)^10 (w+q+r)^10 (u1+p+s+y)^10 (w+u1+q+t)^10",
        "1/(w+u1)^10 + 1/(u2+u3)^10 + 1/(p+q)^10 + 1/(r+s)^10 + 1/(t+y)^10",
        "exp(exp(exp(10)))",
        "exp(1e15 w)",
        "tanh(1e15 w) w",
        "(999^10*997^10w+999^10*997^10u1+999^10*997^10u2+u3)^10/(999^10*997^10w-999^10*997^10u1+u2+3u3)^10",
        "(7^10*9^10w+7^10*9^10u1+7^10*9^10u2+u3)^10/(7^10*9^10w-7^10*9^10u1+u2+3u3)^10",
        "999999999999999 w",
    ],
)
def test_expensive_answers_stay_cheap(answer: str) -> None:
    start = time.thread_time()  # CPU time of this thread: a loaded machine stretches wall time, not work
    ok, message = equivalent(answer, "w", SYMBOLS, functions=COMMON_FUNCTIONS)
    assert time.thread_time() - start < 2.0
    assert not ok and message


def test_an_answer_equal_only_on_part_of_the_line_is_told_apart():
    """Found by the red team: ((w^2 - 1/4)^2)^(1/2) - (w^2 - 1/4) is 0 for |w| >= 1/2 but not below."""
    from safe_expr import equivalent

    tricky = "u3 + 2*w*u2 + 3*w^2*u1 + ((w^2 - 1/4)^2)^(1/2) - (w^2 - 1/4)"
    same, _ = equivalent(tricky, "u3 + 2*w*u2 + 3*w^2*u1", ["w", "u1", "u2", "u3"])
    assert not same
    assert equivalent("((w^2 + 1/4)^2)^(1/2) - (w^2 + 1/4) + u3", "u3", ["w", "u3"])[0]


@pytest.mark.parametrize("answer", [
    "(w*(w+1) - w^2 - w)/(u1*(u1+1) - u1^2 - u1)",
    "1/((w+u1)^2 - w^2 - 2 w u1 - u1^2)",
    "((u2^2)^(1/2)-u2)*((u2^2)^(1/2)+u2)/(((w^2)^(1/2)-w)*((w^2)^(1/2)+w))",  # two factors, each not zero
    "((u2^2)^(1/2)-u2)/((w^2)^(1/2)-w)",  # zero at every test point where w > 0, not identically
])
def test_a_divisor_that_is_always_zero_makes_the_answer_undefined(answer: str) -> None:
    """Over a common denominator 0/0 equals anything: such an answer must match no expected answer at all."""
    for expected in ("w", "u1*w + u3", "2*u1"):
        ok, message = equivalent(answer, expected, SYMBOLS, functions=COMMON_FUNCTIONS)
        assert not ok and message, (expected, message)

