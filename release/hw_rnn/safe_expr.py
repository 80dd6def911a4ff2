"""Safe parsing of students' typed math answers and equivalence checking.

Students answer written questions (e.g. "backprop through a 1-D linear RNN")
by typing formulas such as ``"u3 + 2*w*u2 + 3w^2 u1"``.  This module turns
such text into a :mod:`sympy` expression **without ever evaluating Python
code**: no ``eval``, no ``sympy.sympify``/``parse_expr`` on raw text.

The pipeline is:

1. pre-processing: length limit, optional ``target =`` prefix, unicode
   operators (``·``, ``×``, ``−``, ``÷``, superscript exponents such as ``²``)
   and ``^`` for powers;
2. a small tokenizer of our own that only knows numbers, the allowed names,
   ``+ - * / ** ( ) ,`` and inserts implicit multiplication
   (``3w^2u1`` -> ``3*w**2*u1``, ``w(u1+u2)`` -> ``w*(u1+u2)``);
3. :func:`ast.parse` (``mode="eval"``, parse only, nothing is compiled to
   bytecode) followed by a whitelist walk of the syntax tree which builds the
   sympy expression node by node, with bounds on exponents, numbers, nesting
   and polynomial degree so that inputs such as ``9**9**9`` are rejected
   before anything large is computed.

Example::

    >>> ok, msg = equivalent("u3 + w u2 + w^2u1", "w**2*u1 + w*u2 + u3",
    ...                      ["w", "u1", "u2", "u3"])
    >>> ok, msg
    (True, '')
"""

from __future__ import annotations

import ast
import keyword
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import NamedTuple, Union

import mpmath
import sympy
from sympy.core.function import AppliedUndef

__all__ = [
    "COMMON_FUNCTIONS",
    "MAX_ANSWER_LENGTH",
    "AnswerError",
    "equivalent",
    "parse_answer",
]

#: Longest accepted answer, in characters (before any processing).
MAX_ANSWER_LENGTH = 500
#: Largest allowed absolute value of an exponent.
MAX_EXPONENT = 10
#: Largest allowed denominator of a rational exponent such as ``1/2``.
MAX_EXPONENT_DENOMINATOR = 10
#: Largest allowed absolute value of a number literal (the answers of a course use small numbers; huge ones only
#: make exact rational arithmetic slow).
MAX_LITERAL = 10**6
#: Largest allowed decimal exponent in scientific notation (``1e20``).
MAX_SCIENTIFIC_EXPONENT = 20
#: Largest allowed size (numerator + denominator bits) of a numeric power.
MAX_CONSTANT_BITS = 128
#: Largest allowed nesting depth of parentheses.
MAX_PAREN_DEPTH = 20
#: Largest allowed depth of the syntax tree.
MAX_TREE_DEPTH = 60
#: Largest allowed (estimated) polynomial degree of the answer.
MAX_DEGREE = 24
#: Largest allowed nesting of function calls (``exp(tanh(...))`` is 2).
MAX_CALL_NESTING = 3
#: Largest allowed number of arguments of a function call.
MAX_CALL_ARGS = 4
#: Symbolic expansion is skipped when it would produce more terms than this.
MAX_EXPAND_TERMS = 2000
#: Largest (estimated) size of a function argument put in canonical form with ``sympy.cancel`` (a gcd).
MAX_CANCEL_TERMS = 200
#: ``sympy.simplify`` is only tried on expressions with at most this many ops.
MAX_SIMPLIFY_OPS = 40

_NOT_EQUIVALENT = "not equivalent: differs at a test point"
_NOT_EQUIVALENT_SYMBOLIC = "not equivalent to the expected answer"
_NOT_CONFIRMED = "could not confirm that the answer is equivalent (try simplifying it)"

#: What ``equivalent`` accepts as the expected answer.
ExprLike = Union[str, int, sympy.Expr]
#: ``name -> callable`` whitelist of functions an answer may call.
FunctionMap = Mapping[str, Callable[..., sympy.Expr]]


class AnswerError(ValueError):
    """A student's answer could not be accepted.

    ``str(error)`` is a short, student-friendly message (it never contains the
    expected answer).  ``reason`` is the same message without the position;
    ``position`` is the 1-based character position in the original text where
    the problem was found, or ``None``.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.reason = message
        self.position = position
        if position is not None:
            message = f"{message} (at position {position})"
        super().__init__(message)


def _sigmoid(x: sympy.Expr) -> sympy.Expr:
    """Logistic sigmoid ``1 / (1 + exp(-x))`` as a sympy expression."""
    return 1 / (1 + sympy.exp(-x))


def _relu(x: sympy.Expr) -> sympy.Expr:
    """Rectified linear unit ``max(0, x)`` as a sympy expression."""
    return sympy.Max(0, x)


#: Ready-made whitelist for the ``functions`` argument (opt-in; the default is
#: that no function may be called).  ``sigma``/``sigmoid`` is the logistic
#: function, written out so that it can be checked numerically.
COMMON_FUNCTIONS: FunctionMap = MappingProxyType(
    {
        "exp": sympy.exp,
        "log": sympy.log,
        "tanh": sympy.tanh,
        "sqrt": sympy.sqrt,
        "sigma": _sigmoid,
        "sigmoid": _sigmoid,
        "relu": _relu,
    }
)


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?")
_SUPERSCRIPT_RE = re.compile("\u207b?[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+")
_SUPERSCRIPT_DIGITS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", "0123456789")
_VALID_SYMBOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Single characters with a fixed meaning: char -> (token kind, python text).
_SIMPLE_CHARS: dict[str, tuple[str, str]] = {
    "+": ("op", "+"),
    "-": ("op", "-"),
    "\u2212": ("op", "-"),  # minus sign
    "\u2013": ("op", "-"),  # en dash
    "/": ("op", "/"),
    "\u00f7": ("op", "/"),  # division sign
    "^": ("op", "**"),
    "\u00b7": ("op", "*"),  # middle dot
    "\u22c5": ("op", "*"),  # dot operator
    "\u2219": ("op", "*"),  # bullet operator
    "\u00d7": ("op", "*"),  # multiplication sign
    "\u2217": ("op", "*"),  # asterisk operator
    "(": ("lpar", "("),
    ")": ("rpar", ")"),
    ",": ("comma", ","),
}

# Token kinds after which an operand may start with an implicit '*'.
_OPERAND_END = frozenset({"num", "name", "rpar"})


class _Token(NamedTuple):
    """One token: its kind, the Python text emitted for it, its 0-based
    position in the original answer, the original text, and for numbers the
    exact value."""

    kind: str
    text: str
    pos: int
    raw: str
    value: Fraction | None = None


def _split_name_run(run: str, symbols: frozenset[str]) -> list[str] | None:
    """Split an unknown identifier run into allowed symbol names.

    Longer symbol names are preferred (``wdy_ds`` -> ``w``, ``dy_ds``);
    returns ``None`` when no split into allowed names exists.
    """
    lengths = sorted({len(s) for s in symbols}, reverse=True)
    memo: dict[int, list[str] | None] = {len(run): []}

    def split_from(i: int) -> list[str] | None:
        if i in memo:
            return memo[i]
        result: list[str] | None = None
        for n in lengths:
            piece = run[i : i + n]
            if len(piece) == n and piece in symbols:
                rest = split_from(i + n)
                if rest is not None:
                    result = [piece, *rest]
                    break
        memo[i] = result
        return result

    # Fill the memo from the right so the recursion depth stays at one level.
    for start in range(len(run) - 1, 0, -1):
        split_from(start)
    return split_from(0)


def _number_token(text: str, i: int) -> _Token:
    """Read the number literal starting at ``text[i]``."""
    match = _NUMBER_RE.match(text, i)
    assert match is not None  # the caller checked that a digit starts here
    literal = match.group(0)
    exponent = match.group(1)
    if exponent is not None and abs(int(exponent)) > MAX_SCIENTIFIC_EXPONENT:
        raise AnswerError(f"number {literal!r} is out of range", i + 1)
    value = Fraction(literal)
    if abs(value) > MAX_LITERAL:
        raise AnswerError(f"number {literal!r} is too large", i + 1)
    return _Token("num", literal, i, literal, value)


def _tokenize(text: str, start: int, symbols: frozenset[str], functions: frozenset[str]) -> list[_Token]:
    """Split ``text[start:]`` into tokens, mapping unicode operators and
    splitting runs of letters such as ``wu1`` into allowed symbol names."""
    tokens: list[_Token] = []
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif (ch.isdigit() and ch.isascii()) or (
            ch == "." and i + 1 < n and text[i + 1].isdigit() and text[i + 1].isascii()
        ):
            tok = _number_token(text, i)
            tokens.append(tok)
            i += len(tok.raw)
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            match = _NAME_RE.match(text, i)
            assert match is not None
            run = match.group(0)
            if run in functions:
                tokens.append(_Token("func", run, i, run))
            elif run in symbols:
                tokens.append(_Token("name", run, i, run))
            else:
                pieces = _split_name_run(run, symbols) if len(run) <= 100 else None
                if pieces is None:
                    shown = run if len(run) <= 30 else run[:27] + "..."
                    raise AnswerError(f"unknown name '{shown}'", i + 1)
                offset = i
                for piece in pieces:
                    tokens.append(_Token("name", piece, offset, piece))
                    offset += len(piece)
            i = match.end()
        elif ch == "*":
            if text.startswith("**", i):
                tokens.append(_Token("op", "**", i, "**"))
                i += 2
            else:
                tokens.append(_Token("op", "*", i, "*"))
                i += 1
        elif ch in _SIMPLE_CHARS:
            kind, py = _SIMPLE_CHARS[ch]
            tokens.append(_Token(kind, py, i, ch))
            i += 1
        elif _SUPERSCRIPT_RE.match(text, i):
            match = _SUPERSCRIPT_RE.match(text, i)
            assert match is not None
            raw = match.group(0)
            digits = raw.lstrip("\u207b").translate(_SUPERSCRIPT_DIGITS)
            value = Fraction(int(digits))
            tokens.append(_Token("op", "**", i, raw))
            if raw.startswith("\u207b"):
                tokens.append(_Token("lpar", "(", i, raw))
                tokens.append(_Token("op", "-", i, raw))
                tokens.append(_Token("num", str(int(digits)), i, raw, value))
                tokens.append(_Token("rpar", ")", i, raw))
            else:
                tokens.append(_Token("num", str(int(digits)), i, raw, value))
            i = match.end()
        elif ch == "=":
            raise AnswerError("'=' is not allowed: type only the expression", i + 1)
        else:
            raise AnswerError(f"unexpected character {ch!r}", i + 1)
    return tokens


def _insert_implicit_multiplication(tokens: list[_Token]) -> list[_Token]:
    """Insert ``*`` tokens where multiplication is implied, and check the
    token order (operators between operands, balanced parentheses, functions
    followed by ``(``) so that most mistakes get a precise message."""
    out: list[_Token] = []
    open_parens: list[_Token] = []
    prev: _Token | None = None
    for tok in tokens:
        expecting_operand = prev is None or prev.kind in ("op", "lpar", "comma")
        if prev is not None and prev.kind == "func" and tok.kind != "lpar":
            raise AnswerError(f"function '{prev.text}' must be followed by '('", prev.pos + 1)
        if expecting_operand:
            if tok.kind == "op" and tok.text not in ("+", "-"):
                raise AnswerError(f"unexpected '{tok.raw}'", tok.pos + 1)
            if tok.kind in ("rpar", "comma"):
                called = prev is not None and prev.kind == "lpar" and len(out) >= 2 and out[-2].kind == "func"
                if not (tok.kind == "rpar" and called):
                    raise AnswerError(f"something is missing before '{tok.raw}'", tok.pos + 1)
        elif prev is not None and prev.kind in _OPERAND_END:
            if tok.kind in ("name", "func", "lpar"):
                out.append(_Token("op", "*", tok.pos, ""))
            elif tok.kind == "num":
                raise AnswerError(f"missing operator before '{tok.raw}'", tok.pos + 1)
        if tok.kind == "lpar":
            open_parens.append(tok)
            if len(open_parens) > MAX_PAREN_DEPTH:
                raise AnswerError("too many nested parentheses", tok.pos + 1)
        elif tok.kind == "rpar":
            if not open_parens:
                raise AnswerError("unmatched ')'", tok.pos + 1)
            open_parens.pop()
        out.append(tok)
        prev = tok
    if prev is not None and prev.kind == "func":
        raise AnswerError(f"function '{prev.text}' must be followed by '('", prev.pos + 1)
    if prev is not None and prev.kind in ("op", "lpar", "comma"):
        raise AnswerError(f"the answer is incomplete after '{prev.raw}'", prev.pos + 1)
    if open_parens:
        raise AnswerError("missing ')' for this '('", open_parens[-1].pos + 1)
    return out


# --------------------------------------------------------------------------
# Syntax tree -> sympy
# --------------------------------------------------------------------------


class _Built(NamedTuple):
    """A sympy expression together with bounds used to refuse abuse."""

    expr: sympy.Expr
    degree: int  # upper bound on the polynomial degree
    calls: int  # nesting depth of function calls


_BINOP_NAMES: dict[type, str] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
}


def _describe(node: ast.AST) -> str:
    """Short description of a disallowed syntax node for error messages."""
    if isinstance(node, ast.Tuple):
        return "a ',' outside a function call"
    if isinstance(node, ast.Attribute):
        return "attribute access ('.')"
    if isinstance(node, ast.Call):
        return "this function call"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return f"'{type(node).__name__}'"


class _Builder:
    """Walk a parsed syntax tree, allowing only whitelisted nodes."""

    def __init__(
        self,
        symbols: Mapping[str, sympy.Symbol],
        functions: FunctionMap,
        numbers: Mapping[int, _Token],
        positions: Mapping[int, int],
    ) -> None:
        self.symbols = symbols
        self.functions = functions
        self.numbers = numbers  # column in rebuilt source -> number token
        self.positions = positions  # column in rebuilt source -> 1-based pos

    def fail(self, message: str, node: ast.AST) -> AnswerError:
        """Build an :class:`AnswerError` located at ``node``."""
        col = getattr(node, "col_offset", None)
        pos = self.positions.get(col) if col is not None else None
        return AnswerError(message, pos)

    def build(self, node: ast.AST, depth: int = 0) -> _Built:
        """Convert ``node`` into a :class:`_Built` or raise AnswerError."""
        if depth > MAX_TREE_DEPTH:
            raise self.fail("the expression is nested too deeply", node)
        if isinstance(node, ast.Expression):
            return self.build(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.build(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return operand._replace(expr=-operand.expr)
            if isinstance(node.op, ast.UAdd):
                return operand
            raise self.fail("this operator is not allowed", node)
        if isinstance(node, ast.BinOp):
            return self._binop(node, depth)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise self.fail(f"{_describe(node)} is not allowed in an answer", node)

    def _constant(self, node: ast.Constant) -> _Built:
        if type(node.value) not in (int, float):
            raise self.fail(f"{_describe(node)} is not allowed in an answer", node)
        tok = self.numbers.get(node.col_offset)
        if tok is None or tok.value is None:  # pragma: no cover - defensive
            raise self.fail("could not read this number", node)
        value = tok.value
        return _Built(sympy.Rational(value.numerator, value.denominator), 0, 0)

    def _name(self, node: ast.Name) -> _Built:
        if node.id in self.symbols:
            return _Built(self.symbols[node.id], 1, 0)
        if node.id in self.functions:
            raise self.fail(f"function '{node.id}' must be followed by '('", node)
        raise self.fail(f"unknown name '{node.id}'", node)  # pragma: no cover

    def _binop(self, node: ast.BinOp, depth: int) -> _Built:
        if isinstance(node.op, ast.Pow):
            return self._power(node, depth)
        # Walk a left-leaning chain such as a + b - c + ... iteratively, so
        # that long sums and products do not count as deep nesting.
        chain: list[ast.BinOp] = []
        current: ast.AST = node
        while isinstance(current, ast.BinOp) and not isinstance(current.op, ast.Pow):
            chain.append(current)
            current = current.left
        result = self.build(current, depth + 1)
        for link in reversed(chain):
            result = self._combine(link, result, self.build(link.right, depth + 1))
        return result

    def _combine(self, node: ast.BinOp, left: _Built, right: _Built) -> _Built:
        op = node.op
        calls = max(left.calls, right.calls)
        if isinstance(op, ast.Add):
            return _Built(left.expr + right.expr, max(left.degree, right.degree), calls)
        if isinstance(op, ast.Sub):
            return _Built(left.expr - right.expr, max(left.degree, right.degree), calls)
        degree = left.degree + right.degree
        if degree > MAX_DEGREE:
            raise self.fail("the expression is too complex", node)
        if isinstance(op, ast.Mult):
            return _Built(left.expr * right.expr, degree, calls)
        if isinstance(op, ast.Div):
            if right.expr == 0:
                raise self.fail("division by zero", node)
            return _Built(left.expr / right.expr, degree, calls)
        symbol = _BINOP_NAMES.get(type(op), type(op).__name__)
        raise self.fail(f"operator '{symbol}' is not allowed", node)

    def _power(self, node: ast.BinOp, depth: int) -> _Built:
        # The exponent is checked before the base is even built, so that
        # towers such as 9**9**9 are refused before anything big is computed.
        exponent = self.build(node.right, depth + 1)
        exp = exponent.expr
        if not isinstance(exp, sympy.Rational):
            raise self.fail("an exponent must be a plain number", node.right)
        if abs(exp) > MAX_EXPONENT or exp.q > MAX_EXPONENT_DENOMINATOR:
            raise self.fail(f"exponent too large (at most {MAX_EXPONENT} in size)", node.right)
        base = self.build(node.left, depth + 1)
        steps = math.ceil(abs(exp))
        if isinstance(base.expr, sympy.Rational):
            bits = abs(base.expr.p).bit_length() + base.expr.q.bit_length()
            limit = MAX_CONSTANT_BITS if exp.q == 1 else 64
            if bits * steps > limit:
                raise self.fail("number too large", node)
            if base.expr == 0 and exp < 0:
                raise self.fail("division by zero", node)
        degree = base.degree * steps
        if degree > MAX_DEGREE:
            raise self.fail("the expression is too complex (powers too high)", node)
        return _Built(sympy.Pow(base.expr, exp), degree, base.calls)

    def _call(self, node: ast.Call, depth: int) -> _Built:
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in self.functions:
            raise self.fail(f"{_describe(node)} is not allowed in an answer", node)
        name = func.id
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"'{name}' only takes plain arguments", node)
        if len(node.args) > MAX_CALL_ARGS:
            raise self.fail(f"too many arguments for '{name}'", node)
        args = [self.build(a, depth + 1) for a in node.args]
        calls = 1 + max((a.calls for a in args), default=0)
        if calls > MAX_CALL_NESTING:
            raise self.fail("too many nested function calls", node)
        try:
            result = self.functions[name](*(a.expr for a in args))
        except (TypeError, ValueError, ArithmeticError) as err:
            raise self.fail(f"could not apply '{name}' to the given argument(s)", node) from err
        if isinstance(result, int) and not isinstance(result, bool):
            result = sympy.Integer(result)
        if not isinstance(result, sympy.Expr):
            raise TypeError(f"function {name!r} must return a sympy expression, got {type(result).__name__}")
        degree = max((a.degree for a in args), default=0)
        return _Built(result, degree, calls)


# --------------------------------------------------------------------------
# Public API: parsing
# --------------------------------------------------------------------------


def _check_names(symbols: Sequence[str], functions: FunctionMap) -> tuple[str, ...]:
    """Validate the caller's symbol and function names (raises ValueError)."""
    if isinstance(symbols, str):
        raise TypeError("symbols must be a sequence of names, not a single string")
    names = tuple(symbols)
    for name in (*names, *functions):
        if not isinstance(name, str) or not _VALID_SYMBOL_RE.match(name):
            raise ValueError(f"invalid symbol or function name: {name!r}")
        if keyword.iskeyword(name):
            raise ValueError(f"a Python keyword cannot be used as a name: {name!r}")
    clash = set(names) & set(functions)
    if clash:
        raise ValueError(f"names used both as symbol and function: {sorted(clash)}")
    return names


def parse_answer(
    text: str,
    symbols: Sequence[str],
    functions: FunctionMap | None = None,
    *,
    target: str | None = None,
) -> sympy.Expr:
    """Parse a typed answer into a sympy expression without evaluating code.

    Args:
        text: the student's answer, e.g. ``"u3 + 2w u2 + 3w^2 u1"``.
        symbols: the names that may appear, e.g. ``["w", "u1", "u2", "u3"]``.
            Each becomes a plain ``sympy.Symbol`` of that name.
        functions: optional whitelist ``name -> callable`` of functions that
            may be called (each callable receives sympy arguments and returns
            a sympy expression), e.g. :data:`COMMON_FUNCTIONS`.  Default: no
            function calls at all.
        target: optional name of the quantity asked for; a leading
            ``"<target> ="`` (e.g. ``"y = ..."``) is then ignored.

    Returns:
        The sympy expression.

    Raises:
        AnswerError: with a short message (and position where possible) if
            the answer is empty, too long, malformed or not allowed.
        ValueError, TypeError: if ``symbols``/``functions`` are invalid.
    """
    functions = {} if functions is None else dict(functions)
    names = _check_names(symbols, functions)
    if text is None or text is Ellipsis:
        raise AnswerError("no answer given")
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise AnswerError('the answer must be a string, e.g. "w*u1"')
    if len(text) > MAX_ANSWER_LENGTH:
        raise AnswerError(f"answer too long (at most {MAX_ANSWER_LENGTH} characters)")
    start = 0
    if target is not None:
        prefix = re.match(rf"\s*{re.escape(target)}\s*=(?!=)", text)
        if prefix is not None:
            start = prefix.end()
    if not text[start:].strip():
        raise AnswerError("no answer given")

    tokens = _tokenize(text, start, frozenset(names), frozenset(functions))
    tokens = _insert_implicit_multiplication(tokens)

    # Rebuild the answer as Python source, one space between tokens so that
    # e.g. '* *' can never fuse into '**'.  Remember where each token went.
    pieces: list[str] = []
    numbers: dict[int, _Token] = {}
    positions: dict[int, int] = {}
    spans: list[tuple[int, int, _Token]] = []
    col = 0
    for tok in tokens:
        positions[col] = tok.pos + 1
        if tok.kind == "num":
            numbers[col] = tok
        spans.append((col, col + len(tok.text), tok))
        pieces.append(tok.text)
        col += len(tok.text) + 1
    source = " ".join(pieces)

    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise _syntax_error(err, spans) from None
    except (ValueError, RecursionError, MemoryError):
        raise AnswerError("could not understand the answer") from None

    symbol_objects = {name: sympy.Symbol(name) for name in names}
    builder = _Builder(symbol_objects, functions, numbers, positions)
    expr = builder.build(tree).expr
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise AnswerError("the answer is undefined (division by zero?)")
    return expr


def _syntax_error(err: SyntaxError, spans: Sequence[tuple[int, int, _Token]]) -> AnswerError:
    """Translate a SyntaxError in the rebuilt source into an AnswerError."""
    col = (err.offset or 1) - 1
    for _begin, end, tok in spans:
        if end > col:
            shown = tok.raw or tok.text
            return AnswerError(f"could not understand the answer near '{shown}'", tok.pos + 1)
    return AnswerError("the answer ends too early (something is missing at the end)")


# --------------------------------------------------------------------------
# Public API: equivalence
# --------------------------------------------------------------------------


def _coerce_expected(
    expected: ExprLike,
    names: Sequence[str],
    functions: FunctionMap,
) -> sympy.Expr:
    """Turn the caller's expected answer into a sympy expression over plain
    symbols named ``names`` (raises ValueError/TypeError on caller errors)."""
    if isinstance(expected, str):
        try:
            return parse_answer(expected, names, functions)
        except AnswerError as err:
            raise ValueError(f"invalid expected expression: {err}") from None
    if isinstance(expected, int) and not isinstance(expected, bool):
        return sympy.Integer(expected)
    if not isinstance(expected, sympy.Expr):
        raise TypeError("expected must be a string or a sympy expression")
    extra = sorted(s.name for s in expected.free_symbols if getattr(s, "name", None) not in names)
    if extra:
        raise ValueError(f"expected expression uses names not in symbols: {extra}")
    return expected.xreplace({s: sympy.Symbol(s.name) for s in expected.free_symbols})


def _expansion_cost(expr: sympy.Basic, cap: int) -> int:
    """Rough upper bound on the number of terms ``sympy.expand`` produces,
    saturating at ``cap + 1``."""
    if expr.is_Atom:
        return 1
    if expr.is_Add:
        return min(sum(_expansion_cost(a, cap) for a in expr.args), cap + 1)
    if expr.is_Mul:
        total = 1
        for a in expr.args:
            total = min(total * _expansion_cost(a, cap), cap + 1)
        return total
    if expr.is_Pow:
        base = _expansion_cost(expr.base, cap)
        if expr.exp.is_Integer:
            n = abs(int(expr.exp))
            if n > MAX_DEGREE:
                return cap + 1
            return min(math.comb(base + n - 1, n), cap + 1)
        return min(base + _expansion_cost(expr.exp, cap), cap + 1)
    return min(sum(_expansion_cost(a, cap) for a in expr.args) + 1, cap + 1)


def _fraction_cost(expr: sympy.Basic, cap: int) -> tuple[int, int]:
    """Rough upper bounds on the numbers of terms of the numerator and the
    denominator of ``expr`` put over a common denominator (as ``cancel``
    does), saturating at ``cap + 1``."""

    def clip(n: int) -> int:
        return min(n, cap + 1)

    if expr.is_Atom:
        return 1, 1
    if expr.is_Add:
        num, den = 0, 1
        for a in expr.args:
            n, d = _fraction_cost(a, cap)
            num, den = clip(num * d + n * den), clip(den * d)
        return num, den
    if expr.is_Mul:
        num, den = 1, 1
        for a in expr.args:
            n, d = _fraction_cost(a, cap)
            num, den = clip(num * n), clip(den * d)
        return num, den
    if expr.is_Pow and expr.exp.is_Integer:
        n, d = _fraction_cost(expr.base, cap)
        k = abs(int(expr.exp))
        if k > MAX_DEGREE:
            return cap + 1, cap + 1
        num, den = clip(math.comb(n + k - 1, k)), clip(math.comb(d + k - 1, k))
        return (num, den) if expr.exp > 0 else (den, num)
    return cap + 1, cap + 1


def _is_plain_rational(expr: sympy.Basic) -> bool:
    """True if ``expr`` is a rational function with rational coefficients,
    for which ``sympy.cancel`` yields a canonical form."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (sympy.Symbol, sympy.Rational, sympy.Add, sympy.Mul)):
            continue
        if isinstance(node, sympy.Pow) and node.exp.is_Integer:
            continue
        return False
    return True


def _has_nested_calls(expr: sympy.Basic) -> bool:
    """True if a function application occurs inside another one."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Function) and any(a.atoms(sympy.Function) for a in node.args):
            return True
    return False


def _canonical(expr: sympy.Expr) -> sympy.Expr:
    """A cheap canonical-ish form, used to compare function arguments."""
    if _is_plain_rational(expr):
        if sum(_fraction_cost(expr, MAX_CANCEL_TERMS)) > MAX_CANCEL_TERMS:
            return expr
        return sympy.cancel(expr)
    if _expansion_cost(expr, MAX_EXPAND_TERMS) > MAX_EXPAND_TERMS:
        return expr
    return sympy.expand(expr)


def _abstract_undefined(expr: sympy.Expr, table: dict[sympy.Expr, sympy.Dummy]) -> sympy.Expr:
    """Replace applications of undefined functions (``sympy.Function("f")``)
    by dummy symbols, one per distinct (canonicalised) application.

    Values of a generic function at different arguments are independent, so
    the result is an ordinary expression that can be compared exactly (or at
    random points, the dummies getting random values too)."""
    if expr.is_Atom or not expr.atoms(AppliedUndef):
        return expr
    args = [_abstract_undefined(a, table) for a in expr.args]
    if isinstance(expr, AppliedUndef):
        key = expr.func(*(_canonical(a) for a in args))
        if key not in table:
            table[key] = sympy.Dummy(f"{expr.func.__name__}_{len(table)}")
        return table[key]
    return expr.func(*args)


def _divides_by_zero(expr: sympy.Expr) -> bool:
    """True if ``expr`` divides by a part that is identically zero without being written as 0, such as
    ``1/(u1*(u1 + 1) - u1^2 - u1)`` (checked by expansion where that is cheap). Such a quotient is undefined
    everywhere, and over a common denominator it would make *any* two expressions look equal."""
    divisors = [node.base for node in sympy.preorder_traversal(expr)
                if isinstance(node, sympy.Pow) and node.exp.is_number and node.exp.is_negative]
    _, denominator = expr.as_numer_denom()  # the product of them all: two non-zero factors may multiply to zero
    for divisor in [denominator, *divisors]:
        if _expansion_cost(divisor, MAX_EXPAND_TERMS) <= MAX_EXPAND_TERMS and sympy.expand(divisor) == 0:
            return True
    return False


def _symbolic_verdict(diff: sympy.Expr) -> bool | None:
    """Decide ``diff == 0`` symbolically if cheap; ``None`` if undecided."""
    if diff == 0:
        return True
    if _is_plain_rational(diff):
        if sum(_fraction_cost(diff, MAX_EXPAND_TERMS)) > MAX_EXPAND_TERMS:
            return None
        # a rational function is zero exactly when the numerator of its common-denominator form expands to zero:
        # no polynomial gcd (which ``cancel`` computes, and which takes minutes on large coefficients)
        numerator, denominator = diff.as_numer_denom()
        if sympy.expand(denominator) == 0:
            return None  # 0/0 somewhere: not a verdict (``_divides_by_zero`` refuses such answers first)
        return sympy.expand(numerator) == 0  # exact: the verdict is final
    if _expansion_cost(diff, MAX_EXPAND_TERMS) > MAX_EXPAND_TERMS:
        return None
    if sympy.expand(diff) == 0:
        return True
    return None


class _NotNumeric(Exception):
    """The expression cannot be evaluated numerically at this point."""


_MP = mpmath.MPContext()
_MP.dps = 40
_ARG_LIMIT = 10**4  # larger arguments of exp, sin, ... are treated as overflow


def _guarded(fn: Callable[[object], object]) -> Callable[[object], object]:
    """Wrap an mpmath function so huge arguments are refused, not computed."""

    def call(x: object) -> object:
        if abs(x) > _ARG_LIMIT:  # type: ignore[arg-type]
            raise _NotNumeric
        return fn(x)

    return call


_MP_FUNCTIONS: dict[type, Callable[[object], object]] = {
    sympy.exp: _guarded(_MP.exp),
    sympy.log: _MP.log,
    sympy.sin: _guarded(_MP.sin),
    sympy.cos: _guarded(_MP.cos),
    sympy.tan: _guarded(_MP.tan),
    sympy.sinh: _guarded(_MP.sinh),
    sympy.cosh: _guarded(_MP.cosh),
    sympy.tanh: _guarded(_MP.tanh),
    sympy.Abs: abs,
}


def _mp_eval(expr: sympy.Basic, point: Mapping[sympy.Symbol, object]) -> object:
    """Evaluate ``expr`` with mpmath at 40 digits (no ``evalf``, whose
    adaptive precision can explode on inputs such as ``exp(exp(exp(10)))``)."""
    if isinstance(expr, sympy.Symbol):
        if expr not in point:
            raise _NotNumeric
        return point[expr]
    if isinstance(expr, sympy.Rational):
        return _MP.mpf(int(expr.p)) / int(expr.q)
    if isinstance(expr, sympy.Float):
        return _MP.mpf(str(expr))
    if expr is sympy.I:
        return _MP.mpc(0, 1)
    if expr is sympy.pi:
        return +_MP.pi
    if expr is sympy.E:
        return +_MP.e
    if isinstance(expr, sympy.Add):
        total = _MP.mpf(0)
        for a in expr.args:
            total += _mp_eval(a, point)
        return total
    if isinstance(expr, sympy.Mul):
        product = _MP.mpf(1)
        for a in expr.args:
            product *= _mp_eval(a, point)
        return product
    if isinstance(expr, sympy.Pow):
        base = _mp_eval(expr.base, point)
        exp = expr.exp
        if exp.is_Integer and abs(exp) <= 4 * MAX_DEGREE:
            return base ** int(exp)
        power = _mp_eval(exp, point)
        if abs(power) > 4 * MAX_DEGREE:  # type: ignore[operator]
            raise _NotNumeric
        return _MP.power(base, power)
    if isinstance(expr, (sympy.Max, sympy.Min)):
        values = [_mp_eval(a, point) for a in expr.args]
        if any(_MP.im(v) != 0 for v in values):
            raise _NotNumeric
        reals = [_MP.re(v) for v in values]
        return max(reals) if isinstance(expr, sympy.Max) else min(reals)
    fn = _MP_FUNCTIONS.get(type(expr))
    if fn is None or len(expr.args) != 1:
        raise _NotNumeric
    return fn(_mp_eval(expr.args[0], point))


def _evaluate(expr: sympy.Expr, point: Mapping[sympy.Symbol, object]) -> object | None:
    """Numeric value of ``expr`` at ``point``, or ``None`` if it is not a
    finite number there."""
    try:
        value = _mp_eval(expr, point)
    except (_NotNumeric, ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    if not _MP.isfinite(value):
        return None
    return value


SAMPLE_SCALES = ((0.05, 0.5), (0.5, 1.5), (1.5, 4.0))
"""Coordinates of the numeric test points are drawn from each of these ranges (either sign), so an answer that
agrees with the expected one only on part of the line (e.g. through an absolute value) is still told apart."""


def _numeric_verdict(
    answer: sympy.Expr,
    expected: sympy.Expr,
    symbols: Sequence[sympy.Symbol],
    trials: int,
    seed: int,
    rtol: float,
    atol: float,
) -> bool | None:
    """Compare at random points; ``None`` if too few points could be used."""
    if trials <= 0:
        return None
    rng = random.Random(seed)
    good = undefined = 0
    for _ in range(3 * trials):
        point: dict[sympy.Symbol, object] = {}
        for sym in symbols:
            low, high = SAMPLE_SCALES[rng.randrange(len(SAMPLE_SCALES))]  # small, moderate and large magnitudes
            magnitude = Fraction(round(rng.uniform(low, high) * 10**6), 10**6)
            if rng.random() < 0.5:
                magnitude = -magnitude
            point[sym] = _MP.mpf(magnitude.numerator) / magnitude.denominator
        a = _evaluate(answer, point)
        b = _evaluate(expected, point)
        if a is None and b is not None:
            undefined += 1
            if undefined > trials // 2:
                return False  # undefined where the expected answer is defined, again and again: not the same function
            continue
        if a is None or b is None:
            continue  # singular (or not numeric) here: try another point
        if abs(a - b) > rtol * max(abs(a), abs(b)) + atol:  # type: ignore[operator]
            return False
        good += 1
        if good >= trials:
            break
    return True if good >= (trials + 1) // 2 else None


def _resolve_definitions(
    definitions: Mapping[str, ExprLike],
    names: Sequence[str],
    functions: FunctionMap,
) -> dict[sympy.Symbol, sympy.Expr]:
    """Parse the caller's definitions and substitute them into each other,
    so that every value is free of defined names."""
    parsed: dict[sympy.Symbol, sympy.Expr] = {}
    for name, value in definitions.items():
        if name not in names:
            raise ValueError(f"defined name {name!r} is not in symbols")
        parsed[sympy.Symbol(name)] = _coerce_expected(value, names, functions)
    for _ in range(len(parsed) + 1):
        if not any(v.free_symbols & parsed.keys() for v in parsed.values()):
            return parsed
        parsed = {k: v.xreplace(parsed) for k, v in parsed.items()}
    raise ValueError("definitions are circular")


def equivalent(
    answer: str,
    expected: ExprLike,
    symbols: Sequence[str],
    *,
    functions: FunctionMap | None = None,
    target: str | None = None,
    definitions: Mapping[str, ExprLike] | None = None,
    numeric_trials: int = 16,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> tuple[bool, str]:
    """Decide whether a typed answer is mathematically equal to ``expected``.

    The answer is parsed with :func:`parse_answer`.  Equality is first
    decided symbolically (exactly, via ``sympy.cancel``, for rational
    functions; otherwise ``sympy.expand``), skipping expansions estimated to
    be large; if undecided, both sides are compared at ``numeric_trials``
    random points (each coordinate uniform in one of ``SAMPLE_SCALES``, either sign,
    drawn from ``random.Random(seed)``; points where a side is not finite are
    skipped).  Expressions that cannot be evaluated numerically (e.g. calls
    to ``sympy.Function("f")``-style undefined functions) are compared by
    treating each distinct application ``f(arg)`` as an independent unknown.
    ``sympy.simplify`` is a last resort for small expressions.

    Args:
        answer: the student's text.
        expected: the reference answer, as text (parsed with the same rules)
            or as a sympy expression whose symbols are matched by name.
        symbols, functions, target: as for :func:`parse_answer`.
        definitions: optional ``name -> expression`` for intermediate
            quantities (e.g. ``{"t": "u3 + s", "s": "w*r", ...}``); they are
            substituted into both sides, so an answer may use ``t`` or spell
            it out.  Each name must be in ``symbols``.
        numeric_trials: number of random test points.
        seed: seed for the test points (results are deterministic).
        rtol, atol: tolerance ``|a-b| <= rtol*max(|a|,|b|) + atol``.

    Returns:
        ``(True, "")`` if equivalent, else ``(False, message)``; the message
        never reveals the expected answer.

    Raises:
        ValueError, TypeError: if ``expected``, ``symbols`` or ``functions``
            are invalid (a problem of the caller, not of the student).
    """
    funcs = {} if functions is None else dict(functions)
    names = _check_names(symbols, funcs)
    reference = _coerce_expected(expected, names, funcs)
    defined = _resolve_definitions(definitions or {}, names, funcs)
    try:
        given = parse_answer(answer, names, funcs, target=target)
    except AnswerError as err:
        return False, str(err)
    if defined:
        given = given.xreplace(defined)
        reference = reference.xreplace(defined)
    if given.has(sympy.zoo, sympy.nan) or reference.has(sympy.zoo, sympy.nan):
        return False, "the answer is undefined (division by zero?)"
    if _divides_by_zero(given):
        return False, "the answer divides by an expression that is always zero, so it is undefined"

    table: dict[sympy.Expr, sympy.Dummy] = {}
    given = _abstract_undefined(given, table)
    reference = _abstract_undefined(reference, table)
    diff = given - reference
    verdict = _symbolic_verdict(diff)
    if verdict is True:
        return True, ""
    if verdict is False:
        return False, _NOT_EQUIVALENT_SYMBOLIC

    syms = [sympy.Symbol(name) for name in names if sympy.Symbol(name) not in defined]
    syms.extend(table.values())
    verdict = _numeric_verdict(given, reference, syms, numeric_trials, seed, rtol, atol)
    if verdict is True:
        return True, ""
    if verdict is False:
        return False, _NOT_EQUIVALENT

    if sympy.count_ops(diff) <= MAX_SIMPLIFY_OPS and not _has_nested_calls(diff) and sympy.simplify(diff) == 0:
        return True, ""
    return False, _NOT_CONFIRMED
