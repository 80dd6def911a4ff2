"""`make bench` part for the surname classifier (q_rnn_last_name): training time and accuracy of the
staff solution with the notebook's default hyper-parameters, next to the Naive Bayes baselines.

    python -m assignkit.surnames.bench [--seeds 3]

The model, the data handling and the training loop are the master notebook's own code (its given and
solution cells, run by :func:`assignkit.bench.master_namespace`); nothing is re-implemented here. The
Naive Bayes baselines are :mod:`assignkit.surnames.baseline`: letter 1-3-grams (the data set's reference
baseline) and letter 1-grams only (a bag of letters that ignores their order).

The grading scale of the hidden accuracy check is read back from the master and compared with what is
measured here: 0 points at the bag-of-letters baseline, full points 3 percentage points below the staff
solution's median hidden accuracy (both rounded down to 0.1 %).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from . import baseline

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "source" / "hw_rnn"
MASTER = SOURCE / "q_rnn_last_name.ipynb"
HIDDEN_FILE = ROOT / "autograder" / "hidden_data" / "surnames_test_hidden.tsv"
TARGET_ACCURACY = 0.85  # the goal set for the staff solution on the hidden test set
TARGET_SECONDS = 120.0  # the goal for its training time on the 2-core course machine
FULL_MARGIN = 0.03  # full points this far below the staff solution's hidden accuracy
_SCORE = re.compile(r'"zero":\s*([0-9.]+),\s*"full":\s*([0-9.]+)')


@contextlib.contextmanager
def _inside(folder: Path, env: Dict[str, str | None]) -> Iterator[None]:
    """Run with ``folder`` as the working directory and ``env`` applied (``None`` unsets a variable)."""
    from ..notebooks import environment

    previous_dir = Path.cwd()
    os.chdir(folder)
    try:
        with environment(env):
            yield
    finally:
        os.chdir(previous_dir)


def read_tsv(path: Path) -> Tuple[List[str], List[str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line]
    return [row[0] for row in rows], [row[1] for row in rows]


def naive_bayes(train: Tuple[List[str], List[str]], tests: Sequence[Tuple[List[str], List[str]]],
                classes: List[str], sizes: Tuple[int, ...]) -> List[float]:
    """Accuracy of the Naive Bayes baseline with letter n-grams of ``sizes`` on each test set."""
    model = baseline.fit(*train, classes, sizes=sizes)
    return [baseline.accuracy(model, *test) for test in tests]


def notebook_scale(master: Path = MASTER) -> Tuple[float, float]:
    """(zero, full) of the accuracy check's score in the master."""
    notebook = json.loads(master.read_text(encoding="utf-8"))
    sources = "\n".join("".join(cell.get("source", "")) for cell in notebook.get("cells", []))
    match = _SCORE.search(sources)
    if match is None:
        raise ValueError(f"no accuracy score found in {master.name}")
    return float(match.group(1)), float(match.group(2))


def train_once(namespace: Dict[str, Any], data: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """Train the master's classifier with its HPARAMS (seed replaced); time it and measure its accuracy."""
    hparams = {**namespace["HPARAMS"], "seed": seed}
    model = namespace["build_classifier"](hparams)
    wall, cpu = time.perf_counter(), time.process_time()
    history = namespace["train_classifier"](model, data["train"], data["public"], hparams)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _, public, _ = namespace["evaluate"](model, data["public"])
    _, hidden, _ = namespace["evaluate"](model, data["hidden"])
    return {"seed": seed, "train_seconds": wall, "train_cpu_seconds": cpu, "public_accuracy": public,
            "hidden_accuracy": hidden, "final_train_accuracy": history["epochs"][-1]["train_accuracy"]}


def run(seeds: int = 3) -> Dict[str, Any]:
    """Train the staff solution ``seeds`` times and measure the baselines; returns numbers and a Markdown table."""
    from ..bench import master_namespace

    with _inside(SOURCE, {"HW_FAST": None, "NBGRADER_EXECUTION": None}):
        namespace = master_namespace(MASTER)
        namespace["tqdm"] = functools.partial(namespace["tqdm"], disable=True)  # no progress bars in the report
        import torch

        torch.set_num_threads(1)  # as the notebook's set-up cell does
        hidden_names, hidden_languages = read_tsv(HIDDEN_FILE)
        data = {
            "train": namespace["encode_dataset"](namespace["train_names"], namespace["train_languages"]),
            "public": namespace["encode_dataset"](namespace["test_names"], namespace["test_languages"]),
            "hidden": namespace["encode_dataset"](hidden_names, hidden_languages),
        }
        runs = [train_once(namespace, data, seed) for seed in range(seeds)]
    classes = namespace["LANGUAGES"]
    train = (namespace["train_names"], namespace["train_languages"])
    tests = [(namespace["test_names"], namespace["test_languages"]), (hidden_names, hidden_languages)]
    nb_public, nb_hidden = naive_bayes(train, tests, classes, baseline.NGRAM_SIZES)
    bag_public, bag_hidden = naive_bayes(train, tests, classes, (1,))
    hidden = [r["hidden_accuracy"] for r in runs]
    zero, full = notebook_scale()
    results: Dict[str, Any] = {
        "hyperparameters": dict(namespace["HPARAMS"]),
        "runs": runs,
        "median_train_seconds": statistics.median(r["train_seconds"] for r in runs),
        "median_train_cpu_seconds": statistics.median(r["train_cpu_seconds"] for r in runs),
        "median_public_accuracy": statistics.median(r["public_accuracy"] for r in runs),
        "median_hidden_accuracy": statistics.median(hidden),
        "worst_hidden_accuracy": min(hidden),
        "naive_bayes_public_accuracy": nb_public,
        "naive_bayes_hidden_accuracy": nb_hidden,
        "bag_of_letters_public_accuracy": bag_public,
        "bag_of_letters_hidden_accuracy": bag_hidden,
        "notebook_scale": {"zero": zero, "full": full},
        "measured_scale": {"zero": math.floor(1000 * bag_hidden) / 1000,
                           "full": math.floor(1000 * (statistics.median(hidden) - FULL_MARGIN)) / 1000},
        "targets": {"hidden_accuracy": TARGET_ACCURACY, "train_seconds": TARGET_SECONDS},
    }
    results["markdown"] = markdown(results)
    return results


def markdown(results: Dict[str, Any]) -> str:
    h = results["hyperparameters"]
    setting = (f"{h['model_type'].upper()} {h['rnn_size']}×{h['num_layers']}, dropout {h['dropout']}, "
               f"{h['optimizer']} lr {h['learning_rate']:g}, batch {h['batch_size']}, {h['epochs']} epochs")
    lines = [
        f"Surname classifier (`q_rnn_last_name` defaults: {setting}; 1 thread):",
        "",
        "| model | train s (wall / CPU) | public test | hidden test |",
        "|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines.append(f"| staff solution, seed {r['seed']} | {r['train_seconds']:.0f} / {r['train_cpu_seconds']:.0f} | "
                     f"{r['public_accuracy']:.1%} | {r['hidden_accuracy']:.1%} |")
    lines += [
        f"| Naive Bayes, letter 1-3-grams | — | {results['naive_bayes_public_accuracy']:.1%} | "
        f"{results['naive_bayes_hidden_accuracy']:.1%} |",
        f"| Naive Bayes, letters only (bag of letters) | — | {results['bag_of_letters_public_accuracy']:.1%} | "
        f"{results['bag_of_letters_hidden_accuracy']:.1%} |",
        "",
    ]
    t, ns, ms = results["targets"], results["notebook_scale"], results["measured_scale"]
    lines.append(
        f"Targets: hidden accuracy ≥ {t['hidden_accuracy']:.0%} (median {results['median_hidden_accuracy']:.1%}: "
        f"{'met' if results['median_hidden_accuracy'] >= t['hidden_accuracy'] else 'NOT met'}), training ≤ "
        f"{t['train_seconds']:.0f} s (median {results['median_train_seconds']:.0f} s wall: "
        f"{'met' if results['median_train_seconds'] <= t['train_seconds'] else 'NOT met'}). Grading scale in the "
        f"notebook: 0 at {ns['zero']:.1%}, full at {ns['full']:.1%}; from this run: 0 at {ms['zero']:.1%}, "
        f"full at {ms['full']:.1%}."
    )
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    results = run(args.seeds)
    print(results["markdown"])
    print(json.dumps({k: v for k, v in results.items() if k != "markdown"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
