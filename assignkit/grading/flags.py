"""Staff flags: what a submission's *own* code does that a notebook written by hand has no need for.

A hint for people, never a verdict (no point depends on it). Two things make it describe the student's work:

* only the code the student added or changed counts: each submitted code cell is compared, line by line, with
  the released version of the same cell (derived from the master: the solution regions become nbgrader's
  ``# YOUR CODE HERE`` stub), so the blank release and an honest solution have no flags, and a delegation
  written inside a released cell that mentions torch is still seen;
* the code is read as Python reads it: parsed, so identifiers are NFKC-normalised (PEP 3131: ``ｌｓｔｍ`` is
  ``lstm``), and what is flagged are constructs, not spellings: ``exec``/``eval``/``compile``/``__import__``/
  ``importlib``, ``getattr``/``setattr`` with a computed name, writes into the namespaces of ``hwcheck``,
  ``torch`` or the builtins (also through ``__dict__``, ``vars`` or ``globals``), rebinding a name the checks
  define, and the recurrent kernels and tracing internals the old text search knew (:data:`SUSPICIOUS`).

Standard library only (the grader's import rule); runs on Python 3.10.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

SUSPICIOUS = re.compile(
    r"\bnn\.(?:RNN|LSTM|GRU)(?:Cell)?\b|\b_VF\b|\brnn_(?:tanh|relu)\b|\b(?:lstm|gru)_cell\b|TorchFunctionMode|"
    r"TorchDispatchMode|_python_dispatch|torch_function_stack|DisableTorchFunction|_disabled_torch_function|"
    r"RECURRENT_KERNELS|recurrent_kernel_trace|_run_probe|use_probe_mode|HWGRADE_EVENTS_FD|gc\.get_objects|"
    r"/proc/self|\b_sink\b|sys\.stdin|sys\.modules|\bthreading\b|concurrent\.futures|torch\.__dict__|"
    r"_VariableFunctions|importlib|functional_call|\bThread\b|\b_thread\b|multiprocessing|torch\.jit|"
    r"CompilationUnit|torch\.compile|torch\.ops\b|\btorch\.(?:gru|lstm|rnn_tanh|rnn_relu)\b|profiler|setprofile|"
    r"settrace|clip_grad_norm_|_get_total_norm|get_total_norm|clip_grads_with_norm_|\bfutures\b|"
    r"ThreadPoolExecutor|to_thread|__getattribute__|os\.fork|nn\.modules\.rnn|redispatch|_DispatchOperatorHandle|"
    r"co_filename|\.replace\(co_|__wrapped__|FunctionType|CodeType|torch\.library|\btorch\._C\b")
"""Names (dotted, as Python reads them) that a notebook which writes its own layers has no need for."""

DYNAMIC_NAMES = {"exec", "eval", "compile", "__import__", "import_module", "importlib", "execfile", "run_path",
                 "run_module", "__builtins__", "builtins", "globals", "vars", "locals", "get_ipython", "run_cell",
                 "run_line_magic", "run_cell_magic", "ast_transformers", "attrgetter", "methodcaller"}
"""Names that run text as code, or reach a namespace by a side door."""
DYNAMIC_ATTRIBUTES = {"__dict__", "__globals__", "__code__", "__closure__", "__subclasses__", "__getattribute__",
                      "__builtins__", "f_globals", "f_locals", "f_back", "f_builtins", "__bases__", "__mro__",
                      "__loader__", "__spec__", "__reduce__", "__reduce_ex__"}
"""Attributes that reach a module's, a function's or a frame's namespace (``model.eval`` is not one of them)."""
DYNAMIC_CODE = DYNAMIC_NAMES | DYNAMIC_ATTRIBUTES
NAME_ARGUMENT_CALLS = {"getattr", "setattr", "delattr", "hasattr"}
PROTECTED = {"hwcheck", "torch", "nn", "F", "builtins", "__builtins__", "sys", "np", "numpy", "math", "os", "gc"}
"""Modules whose namespaces a student's code has no business writing into (nor rebinding)."""
FLAGGED_IMPORTS = {"importlib", "builtins", "ctypes", "gc", "marshal", "types", "inspect", "threading", "_thread",
                   "multiprocessing", "concurrent", "codecs", "pickle", "dis", "sys", "hwcheck"}
MAGIC_LINE = re.compile(r"^\s*[%!]")
HELP_LINE = re.compile(r"^\s*(?:\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")
"""IPython's help syntax (``name?``, ``?name``): Python cannot parse the cell, IPython runs it."""
HARMLESS_MAGICS = re.compile(r"^\s*%(?:matplotlib|config|load_ext|autoreload|pip|conda)\b")
STRING_TEXTS = re.compile(r"HWGRADE_EVENTS_FD|get_ipython|run_cell|\b_VF\b|\bnn\.(?:RNN|LSTM|GRU)\b|"
                          r"\btorch\.(?:gru|lstm|rnn_tanh|rnn_relu)\b|clip_grad_norm_|setprofile|settrace")
"""Texts flagged even inside string constants (code to be run later through exec or IPython)."""
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MAX_CELL_CHARS = 200_000
MAX_NOTEBOOK_CHARS = 600_000
"""Code read per notebook (the released notebooks hold about 100,000 characters): parsing is not free, and the
grader's time belongs to the grading."""
MAX_NOTES_PER_CELL = 6


def _text(source: Any) -> str:
    return "".join(str(part) for part in source) if isinstance(source, list) else str(source)


def _nbgrader(cell: Dict[str, Any]) -> Dict[str, Any]:
    metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbgrader = metadata.get("nbgrader")
    return nbgrader if isinstance(nbgrader, dict) else {}


def _is_check(cell: Dict[str, Any]) -> bool:
    nbgrader = _nbgrader(cell)
    return bool(nbgrader.get("grade")) and not nbgrader.get("solution")


def _code_cells(notebook: Any) -> List[Dict[str, Any]]:
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"] if isinstance(cells, list) else []


def released_lines(master_source: str) -> List[str]:
    """The lines of a master code cell as the release has them: each solution region becomes nbgrader's stub."""
    lines, inside = [], False
    for line in master_source.splitlines():
        stripped = line.strip()
        if stripped.startswith(SOLUTION_BEGIN):
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + STUB[0], indent + STUB[1]]
        elif stripped.startswith(SOLUTION_END):
            inside = False
        elif not inside:
            lines.append(line)
    return lines


class Release:
    """What the grader knows of the released notebook (derived from its master): the given lines of each cell,
    by grade_id, and the names the checks define."""

    def __init__(self, master: Any) -> None:
        self.cells: Dict[str, List[str]] = {}
        self.loose: Set[str] = set()  # lines of the given cells that carry no grade_id
        self.check_names: Set[str] = set()
        for cell in _code_cells(master):
            grade_id = _nbgrader(cell).get("grade_id")
            source = _text(cell.get("source", ""))
            if _is_check(cell):
                self.check_names |= _defined_names(source)
            elif isinstance(grade_id, str):
                self.cells[grade_id] = released_lines(source)
            else:
                self.loose |= {line.rstrip() for line in released_lines(source)}
        self.check_names -= PROTECTED

    def changed_lines(self, cell: Dict[str, Any], lines: Sequence[str]) -> Set[int]:
        """1-based numbers of the lines of a submitted cell that are not the released cell's."""
        grade_id = _nbgrader(cell).get("grade_id")
        given = self.cells.get(grade_id) if isinstance(grade_id, str) else None
        if given is None:
            return {number for number, line in enumerate(lines, 1) if line.rstrip() not in self.loose}
        matcher = difflib.SequenceMatcher(None, [line.rstrip() for line in given], [line.rstrip() for line in lines],
                                          autojunk=False)
        same = {j + k + 1 for _, j, size in matcher.get_matching_blocks() for k in range(size)}
        return set(range(1, len(lines) + 1)) - same


def _defined_names(source: str) -> Set[str]:
    """Top-level names a check cell defines (functions, classes, assignments)."""
    try:
        tree = ast.parse(_without_magics(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: Set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _without_magics(source: str) -> str:
    """IPython's ``%magic`` and ``!shell`` lines blanked out (line numbers kept)."""
    return "\n".join("" if MAGIC_LINE.match(line) else line for line in source.splitlines())


def _root(node: ast.AST) -> Optional[ast.AST]:
    """The innermost value of ``a.b[c].d``: the Name ``a``, or a Call (``vars(x)``) for a computed root."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)[:200]
    except (ValueError, RecursionError):  # pragma: no cover - a parsed tree always unparses
        return "?"


def _store_targets(node: ast.AST) -> Iterable[ast.AST]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield from _unpack(target)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        yield from _unpack(node.target)
    elif isinstance(node, ast.Delete):
        for target in node.targets:
            yield from _unpack(target)
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        yield from _unpack(node.target)
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        yield from _unpack(node.optional_vars)
    elif isinstance(node, ast.NamedExpr):
        yield node.target


def _unpack(target: ast.AST) -> Iterable[ast.AST]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _unpack(element)
    elif isinstance(target, ast.Starred):
        yield from _unpack(target.value)
    else:
        yield target


def _findings(node: ast.AST, check_names: Set[str]) -> List[str]:
    """What one node does that is flagged (several notes for one node are possible)."""
    found: List[str] = []
    if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
        found.append(node.id)
    elif isinstance(node, ast.Attribute):
        root = _root(node)
        if node.attr in DYNAMIC_ATTRIBUTES or (node.attr in DYNAMIC_NAMES and isinstance(root, ast.Name)
                                               and root.id in PROTECTED | DYNAMIC_NAMES):
            found.append(f"{_dotted(node.value)[:60]}.{node.attr}")
        found += SUSPICIOUS.findall(_dotted(node))
    elif isinstance(node, ast.Name):
        found += SUSPICIOUS.findall(node.id)
    if isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else (
            node.func.attr if isinstance(node.func, ast.Attribute) else "")
        if function in NAME_ARGUMENT_CALLS and len(node.args) >= 2:
            owner = _dotted(node.args[0])[:40]
            name = node.args[1]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                found.append(f"{function}({owner}, <computed name>)")
            elif function != "hasattr" and (SUSPICIOUS.search(f"{owner}.{name.value}") or name.value in DYNAMIC_CODE):
                found.append(f"{function}({owner}, {name.value[:40]!r})")
            root = _root(node.args[0])
            if function in ("setattr", "delattr") and isinstance(root, ast.Name) and root.id in PROTECTED:
                found.append(f"{function}({owner}, ...): writes into {root.id}")
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        names = [alias.name for alias in node.names]
        for module in modules:
            if module.split(".")[0] in FLAGGED_IMPORTS:
                found.append(f"import {module}")
        found += SUSPICIOUS.findall(" ".join(f"{m}.{n}" for m in modules for n in names))
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        found.append(f"{'global' if isinstance(node, ast.Global) else 'nonlocal'} {', '.join(node.names)[:60]}")
    for target in _store_targets(node):
        if isinstance(target, ast.Name):
            if target.id in PROTECTED:
                found.append(f"rebinds {target.id}")
            elif target.id in check_names:
                found.append(f"rebinds {target.id} (defined by the checks)")
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root(target)
            if isinstance(root, ast.Name) and root.id in PROTECTED:
                found.append(f"writes {_dotted(target)[:60]}")
            elif isinstance(root, ast.Call) or "__dict__" in _dotted(target):
                found.append(f"writes {_dotted(target)[:60]}")
    return found


def cell_findings(source: str, changed: Set[int], check_names: Set[str]) -> List[str]:
    """The flagged constructs of a cell that touch one of its ``changed`` lines (sorted, without repeats)."""
    if not changed:
        return []
    lines = source.splitlines()
    found: Set[str] = set()
    for number in changed:
        line = lines[number - 1] if 0 < number <= len(lines) else ""
        if MAGIC_LINE.match(line) and not HARMLESS_MAGICS.match(line):
            found.add(f"IPython line {line.strip()[:40]!r} (IPython runs what follows a magic)")
        if HELP_LINE.match(line):
            found.add("IPython help syntax (?): the cell runs in IPython, but Python cannot read it here")
    try:
        tree = ast.parse(_without_magics("\n".join("" if HELP_LINE.match(line) else line for line in lines)))
    except SyntaxError:
        return sorted(found | {"an added or changed cell that Python cannot parse (IPython may still run it)"})
    except (ValueError, RecursionError, MemoryError):
        return ["code Python cannot parse (nesting too deep or null bytes)"]
    aliases = _torch_aliases(tree)
    notes = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}  # docstrings, bare strings
    for node in ast.walk(tree):
        first = getattr(node, "lineno", None)
        if first is None:
            if isinstance(node, ast.withitem):
                first = getattr(node.context_expr, "lineno", None)
            if first is None:
                continue
        last = getattr(node, "end_lineno", None) or first
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.AsyncWith,
                             ast.For, ast.AsyncFor, ast.While, ast.If, ast.Try)):
            last = first  # a compound statement counts by its header; its body by its own nodes
        if changed.isdisjoint(range(first, last + 1)):
            continue
        found.update(note.strip() for note in _findings(node, check_names))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in notes:
            found.update(f"{text} (in a string)" for text in STRING_TEXTS.findall(node.value[:20_000]))
        if isinstance(node, ast.Attribute) and aliases:
            found.update(SUSPICIOUS.findall(_resolved(_dotted(node), aliases)))
    return sorted(found)


def _torch_aliases(tree: ast.AST) -> Dict[str, str]:
    """``{alias: what it stands for}`` for imports of torch and its modules under other names (``import torch as
    T``, ``import torch.nn as tn``, ``from torch import nn as mm``), so that ``T.gru`` reads as ``torch.gru``."""
    aliases: Dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "torch" and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            for alias in node.names:
                if alias.name == "*":
                    aliases["*"] = node.module or "torch"
                else:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _resolved(dotted: str, aliases: Dict[str, str]) -> str:
    """``dotted`` with its first name replaced by what an alias stands for (``tn.GRU`` -> ``torch.nn.GRU``, read
    by the name patterns as ``nn.GRU``)."""
    first, _, rest = dotted.partition(".")
    if first in aliases:
        return aliases[first] + (f".{rest}" if rest else "")
    return dotted


def staff_flags(notebook: Any, master: Any = None, limit: int = 10) -> List[str]:
    """``code cell 9: exec, getattr(torch, <computed name>)`` for each code cell whose added or changed code is
    flagged; ``master`` is the master notebook (parsed JSON) the release was built from (None: all code counts)."""
    release = Release(master or {})
    flags: List[str] = []
    budget = MAX_NOTEBOOK_CHARS
    for index, cell in enumerate(_code_cells(notebook)):
        if _is_check(cell):
            continue  # the master's own check cells (the grader runs its copies, not these)
        whole = _text(cell.get("source", ""))
        source = whole[:MAX_CELL_CHARS]
        budget -= len(source)
        if len(whole) > MAX_CELL_CHARS:
            flags.append(f"code cell {index + 1}: longer than {MAX_CELL_CHARS:,} characters, read only in part (a "
                         "cell that long hides what it does)")
        if budget < 0:
            flags.append(f"code cell {index + 1} and after: not read (more than {MAX_NOTEBOOK_CHARS:,} characters "
                         "of code in the notebook)")
            break
        lines = source.splitlines()
        changed = release.changed_lines(cell, lines) if master else set(range(1, len(lines) + 1))
        found = cell_findings(source, changed, release.check_names)
        if found:
            flags.append(f"code cell {index + 1}: {', '.join(found[:MAX_NOTES_PER_CELL])}"
                         + (f" (+{len(found) - MAX_NOTES_PER_CELL} more)" if len(found) > MAX_NOTES_PER_CELL else ""))
        if len(flags) >= limit:
            break
    return flags


def read_master(path: Optional[Path]) -> Any:
    """The master notebook at ``path`` (trusted: the referee's copy), or None when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None
