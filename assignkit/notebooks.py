"""Execute notebooks in real Jupyter kernels (nbclient) and read their results."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import nbclient
import nbformat


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


def execute(path: Path, cwd: Path, env: Mapping[str, Optional[str]] = (), timeout: int = 1800) -> Any:
    """Run every cell of the notebook at ``path`` in a fresh kernel (errors do not stop the run).

    Returns the executed ``NotebookNode``; the file itself is not modified.
    """
    notebook = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        record_timing=False,  # no per-cell timestamps: rebuilt solutions only differ where outputs do
        resources={"metadata": {"path": str(cwd)}},
    )
    base = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"}
    with environment({**base, **dict(env)}):
        client.execute()
    return notebook


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
