"""One run of a notebook for the grader: its code cells, then check cells, reporting raw values only.

Started by :mod:`assignkit.grading.runner` as ``python child.py`` with the working directory set to a scratch
folder, in one of two modes:

``sandbox``  runs a *student's* notebook as the unprivileged account. It receives the probe part of each
             check (never reference code, expected values or hidden labels) and the seed of each hidden
             check, and reports what the student's code returns. Nothing it reports is believed as a verdict.
``referee``  runs a *master* notebook (the staff solution) in the grader's trusted process, which never runs
             student code. With the same seeds it computes the values a submission must match; it also
             reads typed answers from the submitted notebook file and evaluates the submitted weights.

Protocol
    stdin, line 1: ``{"mode": ..., "notebook": path, "runtime_dir": dir, "skip_ids": [...], "skip_cells": [...],
                      "skip_tag": tag, "submitted": {name: path}, "preload": [module, ...]}``
        ``preload``: the libraries the master notebooks import (from the trusted side). In sandbox mode they are
        imported before the thread and process filter is installed, so that a library that starts a thread
        while it loads (matplotlib 3.10's font manager, on Python 3.10) is ready before threads are refused.
    stdin, line 2 (sent after the cells have run): ``{"checks": [{"name", "source", "seed", "requested"}],
                      "replay": [{"name": ..., "source": ..., "defs_only": bool}, ...]}``
        ``replay``: checks an earlier child already ran. They run again silently, before the others, so that
        helpers they define exist for later checks; for a check that hung or crashed (``defs_only``) only its
        top-level imports, functions and classes are run.
    events, one JSON object per line, on the file descriptor named by ``HWGRADE_EVENTS_FD``:
        {"event": "cell_start", "index": i}            before each code cell that runs
        {"event": "cell", "index": i, "status": "ok" | "error", "error": "..."}
        {"event": "cells_done"}
        {"event": "replay", "name": ...}                before each replayed check
        {"event": "check_start", "name": ...}
        {"event": "check", "name": ..., "report": {...}}   only for requested checks
        {"event": "check_end", "name": ...}
        {"event": "done"}

This file runs on Python 3.10 and imports only the standard library at start-up (plus IPython, to run
cells with magics, and the master's ``hwcheck`` module).
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any, Dict, List

_EVENTS: Any = None
MAX_ERROR = 500
_dumps = json.dumps  # bound before any student code runs, so monkeypatching `json` cannot garble events


def emit(event: Dict[str, Any]) -> None:
    """Write one event line to the grader (flushed at once, so a crash later loses nothing)."""
    _EVENTS.write(_dumps(event) + "\n")
    _EVENTS.flush()


def warm_up(modules: List[str]) -> None:
    """Import the notebooks' libraries while threads are still allowed, and finish what they would otherwise
    do on first use with a thread of their own. A module that fails to import is left for the cell that
    imports it to report. Runs before any student code."""
    import importlib

    for name in modules:
        if not isinstance(name, str):
            continue
        try:
            importlib.import_module(name)
        except BaseException:
            pass
    if "matplotlib" in sys.modules:
        try:  # builds the font list (and its cache): matplotlib 3.10 starts a threading.Timer while it does
            from matplotlib import font_manager

            font_manager.findfont("DejaVu Sans")
        except Exception:
            pass
    if "tqdm" in sys.modules:
        try:  # tqdm's monitor is a thread: without it progress bars work the same, without a warning
            from tqdm import std

            std.tqdm.monitor_interval = 0
        except Exception:
            pass


def single_threaded() -> bool:
    """Sandbox mode, before any student code: start what needs a thread of its own (torch's autograd profiler,
    which the hidden checks use to see the operators torch's dispatcher runs), then forbid new threads and
    processes for good with a seccomp filter (``clone``, ``fork``, ``vfork``: EPERM; ``clone3``: ENOSYS, so the C
    library falls back to ``clone``). The kernel traces and the clipping guard watch the grading's one thread;
    work on another thread or in another process would be out of their sight. Returns whether the filter was
    installed (Linux x86-64 only)."""
    import ctypes
    import platform
    import struct

    try:
        import torch
        from torch.autograd import profiler

        with profiler.profile(use_kineto=False):
            torch.zeros(1).add(1)
    except Exception:  # a broken torch is the set-up cell's to report
        pass
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    load, jeq, ret = 0x20, 0x15, 0x06
    allow, deny, no_such_call = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    program = [(load, 0, 0, 4), (jeq, 0, 6, 0xC000003E),  # not x86-64: deny (the grader's filter does too)
               (load, 0, 0, 0), (jeq, 4, 0, 56), (jeq, 3, 0, 57), (jeq, 2, 0, 58),  # clone, fork, vfork
               (jeq, 2, 0, 435), (ret, 0, 0, allow), (ret, 0, 0, deny), (ret, 0, 0, no_such_call)]  # clone3
    code = b"".join(struct.pack("<HBBI", *instruction) for instruction in program)
    filters = ctypes.create_string_buffer(code, len(code))
    fprog = ctypes.create_string_buffer(struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(filters)), 16)
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    # seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC): on every thread, the profiler's included
    program_address = ctypes.c_void_p(ctypes.addressof(fprog))
    if libc.syscall(ctypes.c_long(317), ctypes.c_ulong(1), ctypes.c_ulong(1), program_address) == 0:
        return True
    return prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER: this thread


def code_cells(notebook: Dict[str, Any]) -> List[Dict[str, Any]]:
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise ValueError("the notebook has no list of cells")
    return [cell for cell in cells if isinstance(cell, dict) and cell.get("cell_type") == "code"]


def cell_source(cell: Dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(str(part) for part in source)
    return str(source)


def should_skip(cell: Dict[str, Any], job: Dict[str, Any]) -> bool:
    """Skip test cells (the grader runs the master's versions) and cells the master marks as not graded."""
    metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbgrader = metadata.get("nbgrader") if isinstance(metadata.get("nbgrader"), dict) else {}
    if nbgrader.get("grade") and not nbgrader.get("solution"):
        return True
    if nbgrader.get("grade_id") in job.get("skip_ids", []):
        return True
    tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
    return job.get("skip_tag") in tags


def make_shell() -> Any:
    """An IPython shell (so `%magics` and `!commands` parse); shell commands are not executed."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.system = lambda command: print("(shell command skipped during grading)")  # type: ignore[method-assign]
    shell.getoutput = lambda command, split=True: []  # type: ignore[method-assign]
    shell.enable_gui = lambda gui=None: None  # type: ignore[method-assign]  # `%matplotlib inline`: no event loop
    return shell


def run_cells(shell: Any, job: Dict[str, Any]) -> None:
    with open(job["notebook"], encoding="utf-8-sig") as handle:  # a byte-order mark is still a valid notebook
        notebook = json.load(handle)
    skip_indices = set(job.get("skip_cells", []))
    for index, cell in enumerate(code_cells(notebook)):
        if index in skip_indices or should_skip(cell, job):
            continue
        emit({"event": "cell_start", "index": index})
        result = shell.run_cell(cell_source(cell), store_history=False, silent=False)
        error = result.error_before_exec or result.error_in_exec
        if error is None:
            emit({"event": "cell", "index": index, "status": "ok"})
        else:
            emit({"event": "cell", "index": index, "status": "error", "error": describe(error)})


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR]


def definitions_only(source: str) -> str:
    """The top-level imports, functions and classes of a check cell (nothing that calls student code)."""
    import ast

    try:
        tree = ast.parse(shell_free(source))
    except SyntaxError:
        return ""
    kept = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    tree.body = [node for node in tree.body if isinstance(node, kept)]
    return ast.unparse(tree)


def shell_free(source: str) -> str:
    """Check cells are plain Python; drop IPython magic lines should one appear."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def use_mode(job: Dict[str, Any], sink: Any, requests: Dict[str, Any]) -> None:
    """Point hwcheck at ``sink`` for the requested checks (again before every check: student code may have
    changed hwcheck's state)."""
    import hwcheck

    if job.get("mode") == "referee":
        hwcheck.use_referee_mode(sink, requests, job.get("submitted") or {})
    else:
        hwcheck.use_probe_mode(sink, requests)


def replay_checks(shell: Any, job: Dict[str, Any], checks: List[Dict[str, Any]]) -> None:
    for check in checks:
        use_mode(job, None, {})
        emit({"event": "replay", "name": check["name"]})
        source = definitions_only(check["source"]) if check.get("defs_only") else check["source"]
        shell.run_cell(source, store_history=False, silent=True)


def run_checks(shell: Any, job: Dict[str, Any], checks: List[Dict[str, Any]]) -> None:
    def sink(name: str, report: Dict[str, Any]) -> None:
        emit({"event": "check", "name": name, "report": report})

    for check in checks:
        name = check["name"]
        requested = {name: {"seed": check.get("seed")}} if check.get("requested", True) else {}
        use_mode(job, sink, requested)
        emit({"event": "check_start", "name": name})
        result = shell.run_cell(check["source"], store_history=False, silent=True)
        error = result.error_before_exec or result.error_in_exec
        if error is not None and requested:
            sink(name, {"error": {"type": type(error).__name__, "message": describe(error)}})
        emit({"event": "check_end", "name": name})


def main() -> int:
    global _EVENTS
    _EVENTS = os.fdopen(int(os.environ["HWGRADE_EVENTS_FD"]), "w", encoding="utf-8", closefd=False)
    job = json.loads(sys.stdin.readline())
    sys.path.insert(0, job["runtime_dir"])
    shell = make_shell()
    if job.get("mode") == "sandbox":
        warm_up(list(job.get("preload") or []))
        single_threaded()
    use_mode(job, None, {})  # while the notebook's own cells run, every check is a no-op
    try:
        run_cells(shell, job)
    except (OSError, ValueError) as error:
        emit({"event": "notebook_error", "error": describe(error)})
    emit({"event": "cells_done"})
    line = sys.stdin.readline()
    message = json.loads(line) if line else {}
    replay_checks(shell, job, message.get("replay", []))
    run_checks(shell, job, message.get("checks", []))
    for stream in (sys.stdout, sys.stderr):  # before "done": the grader stops the child when it reads it
        try:
            stream.flush()
        except Exception:
            pass
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    sys.exit(main())
