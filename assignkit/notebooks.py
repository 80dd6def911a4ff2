"""Execute notebooks in real Jupyter kernels (nbclient) and read their results."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import nbclient
import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync


@contextlib.contextmanager
def environment(overrides: Mapping[str, Optional[str]]) -> Iterator[None]:
    """Temporarily set (or, with ``None``, unset) environment variables; kernels inherit them."""
    saved = {key: os.environ.get(key) for key in overrides}
    try:
        for key, value in overrides.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


KERNEL_BASE_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"}


def kernel_environment(overrides: Mapping[str, Optional[str]] = ()) -> Dict[str, str]:
    """This process's environment with the kernels' fixed settings and ``overrides`` (``None``: unset)."""
    env = dict(os.environ)
    for key, value in {**KERNEL_BASE_ENV, **dict(overrides)}.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass(frozen=True)
class Run:
    """One notebook to execute: the file, the kernel's working folder and its environment overrides."""

    path: Path
    cwd: Path
    env: Mapping[str, Optional[str]] = field(default_factory=dict)


async def _execute(run: Run, timeout: int, slots: asyncio.Semaphore) -> Any:
    async with slots:
        notebook = nbformat.read(str(run.path), as_version=4)
        # The kernel talks over Unix sockets in a folder of its own, not TCP ports: ports chosen free can be taken by
        # another kernel starting at the same moment ("Address already in use"), as happens with parallel builds.
        sockets = tempfile.mkdtemp(prefix="hwkernel-")
        manager = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = nbclient.NotebookClient(
            notebook,
            km=manager,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            record_timing=False,  # no per-cell timestamps: rebuilt solutions only differ where outputs do
            resources={"metadata": {"path": str(run.cwd)}},
        )
        try:
            await client.async_execute(env=kernel_environment(run.env))  # the kernel's own environment, not ours
        finally:
            shutil.rmtree(sockets, ignore_errors=True)
        return notebook


def execute_many(runs: Sequence[Run], parallel: int = 1, timeout: int = 1800) -> List[Any]:
    """Execute each run's notebook in a fresh kernel of its own, at most ``parallel`` kernels at a time (one event
    loop drives them all, as nbclient supports); errors do not stop a run. Returns the executed
    ``NotebookNode``s in the order of ``runs``; the files themselves are not modified."""

    async def everything() -> List[Any]:
        slots = asyncio.Semaphore(max(1, parallel))
        return list(await asyncio.gather(*(_execute(run, timeout, slots) for run in runs)))

    return run_sync(everything)() if runs else []  # as nbclient does: a loop of this thread, running or not


def execute(path: Path, cwd: Path, env: Mapping[str, Optional[str]] = (), timeout: int = 1800) -> Any:
    """Run every cell of the notebook at ``path`` in a fresh kernel (errors do not stop the run).

    Returns the executed ``NotebookNode``; the file itself is not modified.
    """
    return execute_many([Run(path, cwd, dict(env))], timeout=timeout)[0]


def cell_errors(notebook: Any) -> Dict[str, List[str]]:
    """``{cell label: [ename: evalue, ...]}`` for every code cell that raised; the label is its grade_id if any."""
    errors: Dict[str, List[str]] = {}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        label = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index}"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.setdefault(label, []).append(f"{output.get('ename')}: {output.get('evalue')}")
    return errors
