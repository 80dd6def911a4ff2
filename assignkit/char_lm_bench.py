"""Character-level language model (q_char_lm): the staff model's training time and bits per character against
the bigram baseline, and the grading scale they give.

    python -m assignkit.char_lm_bench [--seeds 3]

Part of ``make bench``: trains the master's ``CharLM`` with its ``HPARAMS`` (seeds 0, 1, …) on one thread, as
the notebook does, and measures it on the public and hidden test names; fits the master's ``BigramLM``
baseline; reports the scale the notebook states and the one these numbers give (zero at the baseline's
hidden bits per character, full points ``FULL_MARGIN`` bits above the staff model's median).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "source" / "hw_rnn"
MASTER = SOURCE / "q_char_lm.ipynb"
HIDDEN_FILE = ROOT / "autograder" / "hidden_data" / "surnames_test_hidden.tsv"
TARGET_SECONDS = 120.0  # the goal for the staff model's training time on the 2-core course machine
FULL_MARGIN = 0.10  # full points this many bits per character above the staff model's hidden median
QUALITY_CHECK = "test_char_lm_quality_hidden"
_SCORE = re.compile(r'"zero":\s*([0-9.]+),\s*"full":\s*([0-9.]+)')


def notebook_scale(master: Path = MASTER) -> Dict[str, float]:
    """``{"zero": ..., "full": ...}`` of the quality check's score in the master."""
    notebook = json.loads(master.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", ""))
        if f'"{QUALITY_CHECK}"' in source:
            match = _SCORE.search(source)
            if match:
                return {"zero": float(match.group(1)), "full": float(match.group(2))}
    raise ValueError(f"no score for {QUALITY_CHECK} in {master.name}")


def measured_scale(baseline_hidden: float, staff_hidden: List[float]) -> Dict[str, float]:
    """The scale the measurements give, rounded to what the notebook states (2 decimals, towards leniency)."""
    return {"zero": math.ceil(100 * baseline_hidden) / 100,
            "full": math.ceil(100 * (statistics.median(staff_hidden) + FULL_MARGIN)) / 100}


def train_once(namespace: Dict[str, Any], hidden: List[List[str]], seed: int) -> Dict[str, Any]:
    hparams = {**namespace["HPARAMS"], "seed": seed}
    model = namespace["build_char_lm"](hparams)
    wall, cpu = time.perf_counter(), time.process_time()
    namespace["train_char_lm"](model, hparams)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    bits = namespace["bits_per_char"]
    return {"seed": seed, "train_seconds": round(wall, 2), "train_cpu_seconds": round(cpu, 2),
            "public_bits_per_char": bits(model, namespace["test_names"], namespace["test_languages"]),
            "hidden_bits_per_char": bits(model, [row[0] for row in hidden], [row[1] for row in hidden])}


def run(seeds: int = 3) -> Dict[str, Any]:
    """Train the staff model ``seeds`` times and fit the baseline; returns numbers and a Markdown table."""
    from .bench import master_namespace
    from .surnames.bench import _inside

    with _inside(SOURCE, {"HW_FAST": None, "NBGRADER_EXECUTION": None}):
        namespace = master_namespace(MASTER)
        namespace["tqdm"] = functools.partial(namespace["tqdm"], disable=True)  # no progress bars in the report
        import torch

        torch.set_num_threads(1)  # as the notebook's set-up cell does
        lines = HIDDEN_FILE.read_text(encoding="utf-8").splitlines()
        hidden = [line.split("\t") for line in lines[1:] if line]
        runs = [train_once(namespace, hidden, seed) for seed in range(seeds)]
        bigram = namespace["BigramLM"](namespace["train_names"], namespace["train_languages"])
        baseline = {"public": bigram.bits_per_char(namespace["test_names"], namespace["test_languages"]),
                    "hidden": bigram.bits_per_char([row[0] for row in hidden], [row[1] for row in hidden])}
    staff_hidden = [r["hidden_bits_per_char"] for r in runs]
    results: Dict[str, Any] = {
        "hyperparameters": dict(namespace["HPARAMS"]),
        "runs": runs,
        "median_train_seconds": statistics.median(r["train_seconds"] for r in runs),
        "median_train_cpu_seconds": statistics.median(r["train_cpu_seconds"] for r in runs),
        "median_public_bits_per_char": statistics.median(r["public_bits_per_char"] for r in runs),
        "median_hidden_bits_per_char": statistics.median(staff_hidden),
        "worst_hidden_bits_per_char": max(staff_hidden),
        "bigram_public_bits_per_char": baseline["public"],
        "bigram_hidden_bits_per_char": baseline["hidden"],
        "notebook_scale": notebook_scale(),
        "measured_scale": measured_scale(baseline["hidden"], staff_hidden),
        "targets": {"train_seconds": TARGET_SECONDS},
    }
    results["markdown"] = markdown(results)
    return results


def markdown(results: Dict[str, Any]) -> str:
    scale, measured = results["notebook_scale"], results["measured_scale"]
    rows = [
        "**Character-level language model** (`q_char_lm`, staff `CharLM` with the notebook's `HPARAMS`, one "
        f"thread, {len(results['runs'])} seeds; bits per character on the names, lower is better)",
        "",
        "| model | train s (median) | public bits/char | hidden bits/char (median, worst) |",
        "|---|---:|---:|---:|",
        f"| staff GRU LM | {results['median_train_seconds']:.0f} (target ≤ {results['targets']['train_seconds']:.0f}) "
        f"| {results['median_public_bits_per_char']:.3f} | {results['median_hidden_bits_per_char']:.3f}, "
        f"{results['worst_hidden_bits_per_char']:.3f} |",
        f"| bigram baseline (language-conditioned, add-0.05) | — | {results['bigram_public_bits_per_char']:.3f} "
        f"| {results['bigram_hidden_bits_per_char']:.3f} |",
        "",
        f"Grading scale in the notebook: 0 points at {scale['zero']:g}, full at {scale['full']:g} bits per character; "
        f"these measurements give {measured['zero']:g} and {measured['full']:g} (baseline; staff median + "
        f"{FULL_MARGIN:g}).",
    ]
    return "\n".join(rows)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.seeds)
    print(results["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
