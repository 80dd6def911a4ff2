"""`make bench`: measure what the README promises, as medians and ratios.

    python -m assignkit.bench [--seeds 5] [--repeats 20] [--skip training,notebook,layers,grading,surnames,char_lm]

Writes ``bench/results.json`` (a run with ``--skip`` keeps the earlier numbers of the skipped parts) and
prints Markdown tables (pasted into the README). Timings on a shared
machine are noisy: every number is a median over repeats, and speed is reported as a ratio to the
alternative measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "hw_rnn"
TARGETS = {1: 0.01, 2: 0.001}


def master_namespace(notebook: Path, skip_tags: tuple = ("skip-grading",)) -> Dict[str, Any]:
    """Execute the master's code cells (solutions included, checks and long cells excluded) in a namespace."""
    import nbformat

    sys.path.insert(0, str(notebook.parent))
    namespace: Dict[str, Any] = {"__name__": "master"}
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        meta = cell.get("metadata", {})
        nbgrader = meta.get("nbgrader", {})
        if cell.cell_type != "code" or (nbgrader.get("grade") and not nbgrader.get("solution")):
            continue
        if set(meta.get("tags", [])) & set(skip_tags) or cell.source.lstrip().startswith(("%", "!")):
            continue
        exec(compile(cell.source, f"<{notebook.stem}:{nbgrader.get('grade_id', 'cell')}>", "exec"), namespace)
    return namespace


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_layers(repeats: int) -> List[Dict[str, Any]]:
    """Forward + backward of the reference RNNLayer/LSTMLayer against torch.nn.RNN/LSTM."""
    import torch

    namespace = master_namespace(SOURCE / "q_rnn_and_grad.ipynb")
    torch.set_num_threads(1)
    batch, steps, inputs, hidden = 64, 50, 32, 128
    x = torch.randn(batch, steps, inputs)
    rows = []
    for name, ours, theirs in (
        ("RNN", namespace["RNNLayer"](inputs, hidden), torch.nn.RNN(inputs, hidden, batch_first=True)),
        ("LSTM", namespace["LSTMLayer"](inputs, hidden), torch.nn.LSTM(inputs, hidden, batch_first=True)),
    ):
        def step(module: Any) -> Callable[[], None]:
            def run() -> None:
                module.zero_grad()
                module(x)[0].sum().backward()
            return run

        ours_s = median_seconds(step(ours), repeats)
        theirs_s = median_seconds(step(theirs), repeats)
        # On CPU, torch.nn.LSTM/RNN may dispatch to oneDNN's fused RNN kernel; also time its plain ATen path
        with torch.backends.mkldnn.flags(enabled=False):
            plain_s = median_seconds(step(theirs), repeats)
        rows.append({"layer": name, "ours_ms": 1000 * ours_s, "torch_ms": 1000 * theirs_s,
                     "ratio": ours_s / theirs_s, "torch_plain_ms": 1000 * plain_s, "ratio_plain": ours_s / plain_s})
    return rows


def bench_training(seeds: int) -> List[Dict[str, Any]]:
    """Train the four stacked models with the notebook's settings; time to reach the target, final loss."""
    import torch

    namespace = master_namespace(SOURCE / "q_rnn_and_grad.ipynb")
    torch.set_num_threads(1)
    rows = []
    for kind in ("rnn", "lstm"):
        for layers in (1, 2):
            reached, seconds, finals, totals = 0, [], [], []
            for seed in range(seeds):
                model = namespace["build_stacked_model"](kind, layers, seed=seed)
                started = time.perf_counter()
                stamps: List[float] = []
                losses = namespace["train_recurrent_model"](
                    _Timed(model, stamps), seed=seed, description=f"{kind}-{layers} seed {seed}")
                totals.append(time.perf_counter() - started)
                final = float(np.mean(losses[-10:]))
                finals.append(final)
                running = np.convolve(losses, np.ones(10) / 10, mode="valid")
                below = np.nonzero(running < TARGETS[layers])[0]
                if final < TARGETS[layers]:
                    reached += 1
                    seconds.append(stamps[below[0] + 9] - started if len(below) else totals[-1])
            rows.append({
                "model": f"{kind.upper()} {layers}-layer", "target": TARGETS[layers], "reached": reached,
                "seeds": seeds, "median_seconds_to_target": statistics.median(seconds) if seconds else None,
                "median_total_seconds": statistics.median(totals), "worst_final_loss": max(finals),
                "median_final_loss": statistics.median(finals),
            })
    return rows


class _Timed:
    """Wraps a model so each forward call records a timestamp (the training loop is the notebook's own)."""

    def __init__(self, model: Any, stamps: List[float]) -> None:
        self.model, self.stamps = model, stamps

    def __call__(self, x: Any) -> Any:
        self.stamps.append(time.perf_counter())
        return self.model(x)

    def parameters(self) -> Any:
        return self.model.parameters()


def bench_notebook() -> Dict[str, Any]:
    """Full (not fast) run of the solution notebook q_rnn_and_grad in a real kernel."""
    from .notebooks import cell_errors, execute

    goldens = ROOT / "build" / "goldens" / "hidden_goldens.json"
    started = time.perf_counter()
    notebook = execute(SOURCE / "q_rnn_and_grad.ipynb", cwd=SOURCE,
                       env={"HW_FAST": None, "HWCHECK_GOLDENS": str(goldens) if goldens.exists() else None})
    return {"notebook": "q_rnn_and_grad", "seconds": time.perf_counter() - started,
            "errors": sorted(cell_errors(notebook))}


def markdown(results: Dict[str, Any]) -> str:
    lines = []
    if "notebook" in results:
        n = results["notebook"]
        lines += [f"Full run of the solution notebook `{n['notebook']}` (real kernel, full training): "
                  f"{n['seconds']:.0f} s, cells with errors: {n['errors'] or 'none'}.", ""]
    if "training" in results:
        lines += ["| model | target | seeds reaching it | median s to target | median s total | median / worst "
                  "final loss |", "|---|---|---|---|---|---|"]
        for r in results["training"]:
            to_target = f"{r['median_seconds_to_target']:.1f}" if r["median_seconds_to_target"] else "—"
            lines.append(f"| {r['model']} | < {r['target']} | {r['reached']}/{r['seeds']} | {to_target} | "
                         f"{r['median_total_seconds']:.1f} | {r['median_final_loss']:.5f} / "
                         f"{r['worst_final_loss']:.5f} |")
        lines.append("")
    if "layers" in results:
        lines += ["| layer (B=64, T=50, D=32, H=128, fwd+bwd, 1 thread) | ours ms | torch.nn ms | ratio "
                  "| torch.nn without oneDNN ms | ratio |",
                  "|---|---|---|---|---|---|"]
        for r in results["layers"]:
            plain = (f"{r['torch_plain_ms']:.2f} | {r['ratio_plain']:.2f}×" if "torch_plain_ms" in r else "— | —")
            lines.append(f"| {r['layer']} | {r['ours_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f}× | {plain} |")
        lines.append("")
    for key in ("grading", "surnames", "char_lm"):
        if key in results and isinstance(results[key], dict) and results[key].get("markdown"):
            lines += [results[key]["markdown"], ""]
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("MPLBACKEND", "Agg")
    results: Dict[str, Any] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    if "layers" not in skip:
        results["layers"] = bench_layers(args.repeats)
    if "training" not in skip:
        results["training"] = bench_training(args.seeds)
    if "notebook" not in skip:
        results["notebook"] = bench_notebook()
    if "grading" not in skip:
        results["grading"] = _optional("assignkit.grading.bench")
    if "surnames" not in skip:
        results["surnames"] = _optional("assignkit.surnames.bench")
    if "char_lm" not in skip:
        results["char_lm"] = _optional("assignkit.char_lm_bench")
    out = ROOT / "bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    if skip and out.is_file():  # a partial run keeps the earlier numbers of the parts it skipped
        earlier = json.loads(out.read_text())
        results = {**{key: earlier[key] for key in earlier if key in skip}, **results}
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(markdown(results))
    return 0


def _optional(module_name: str) -> Dict[str, Any]:
    """Run ``module_name.run()`` when that part of the project provides a benchmark."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return {"skipped": f"{module_name} not available"}
    return module.run()


if __name__ == "__main__":
    sys.exit(main())
