"""Build the surname dataset files.

Usage (from the repository root)::

    python -m assignkit.surnames.build --out-root .
    python -m assignkit.surnames.build --out-root . --check   # verify committed files are current

The output is byte-identical from run to run: every list is sorted before any
seeded random choice, and the files are written as UTF-8 with ``\\n`` newlines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import MAX_LEN, baseline
from .licenses import render_licenses
from .pins import VersionMismatchError, check_versions
from .report import BuildSettings, render_dataset
from .sources import LANGUAGES, LanguageSpec, collect_raw_names
from .split import SPLITS, CleanData, cap_classes, clean_names, stratified_split

SEED = 20240917
"""Seed of every random choice (capping and splitting)."""

CAP = 1500
"""Largest number of names kept per class."""

TEST_FRACTION = 0.15
"""Share of each class in the public test split, and again in the hidden test split."""

COMMAND = "python -m assignkit.surnames.build --out-root ."

DATA_DIR = Path("source/hw_rnn/data")
HIDDEN_DIR = Path("autograder/hidden_data")
SPLIT_FILES = {
    "train": DATA_DIR / "surnames_train.tsv",
    "test_public": DATA_DIR / "surnames_test_public.tsv",
    "test_hidden": HIDDEN_DIR / "surnames_test_hidden.tsv",
}
LANGUAGES_FILE = DATA_DIR / "languages.txt"
LICENSES_FILE = DATA_DIR / "LICENSES.md"
DATASET_FILE = DATA_DIR / "DATASET.md"
OUTPUT_FILES: tuple[Path, ...] = (*SPLIT_FILES.values(), LANGUAGES_FILE, LICENSES_FILE, DATASET_FILE)
"""Every file the builder writes, relative to the output root."""

HEADER = "name\tlanguage"


@dataclass
class Dataset:
    """Everything a build produces, before it is written."""

    specs: tuple[LanguageSpec, ...]
    data: CleanData
    splits: dict[str, list[tuple[str, str]]]
    accuracies: dict[str, float]


def make_dataset(
    specs: Sequence[LanguageSpec] = LANGUAGES, seed: int = SEED, cap: int = CAP, max_len: int = MAX_LEN
) -> Dataset:
    """Collect, clean, cap and split the names, and score the Naive Bayes baseline."""
    check_versions()
    data = clean_names(collect_raw_names(specs), specs, max_len)
    cap_classes(data, cap, seed)
    splits = stratified_split(data.names, TEST_FRACTION, seed)
    classes = [spec.language for spec in specs]
    train = splits["train"]
    model = baseline.fit([name for name, _ in train], [lang for _, lang in train], classes)
    accuracies = {
        split: baseline.accuracy(model, [name for name, _ in splits[split]], [lang for _, lang in splits[split]])
        for split in SPLITS
    }
    return Dataset(tuple(specs), data, splits, accuracies)


def tsv_text(rows: Sequence[tuple[str, str]]) -> str:
    """A split as TSV text with header; rows sorted by (language, name)."""
    lines = [HEADER, *(f"{name}\t{language}" for name, language in sorted(rows, key=lambda r: (r[1], r[0])))]
    return "\n".join(lines) + "\n"


def render_files(dataset: Dataset) -> dict[Path, str]:
    """The text of every output file, keyed by its path relative to the output root."""
    settings = BuildSettings(SEED, CAP, TEST_FRACTION, MAX_LEN, COMMAND)
    files = {path: tsv_text(dataset.splits[split]) for split, path in SPLIT_FILES.items()}
    files[LANGUAGES_FILE] = "\n".join(spec.language for spec in dataset.specs) + "\n"
    files[LICENSES_FILE] = render_licenses()
    files[DATASET_FILE] = render_dataset(dataset.data, dataset.splits, dataset.specs, dataset.accuracies, settings)
    return files


def write_files(files: dict[Path, str], out_root: Path) -> None:
    """Write UTF-8 files with ``\\n`` newlines under ``out_root``."""
    for relative, text in sorted(files.items()):
        path = out_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def build(out_root: Path) -> Dataset:
    """Build the dataset and write all output files under ``out_root``."""
    dataset = make_dataset()
    write_files(render_files(dataset), out_root)
    return dataset


def stale_files(out_root: Path) -> list[Path]:
    """Output files under ``out_root`` that differ from a fresh build (or are missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        return [
            relative
            for relative in OUTPUT_FILES
            if not (out_root / relative).is_file()
            or (out_root / relative).read_bytes() != (Path(tmp) / relative).read_bytes()
        ]


def summary(dataset: Dataset) -> str:
    """A short per-class report for the terminal."""
    lines = [f"{'language':<12}{'train':>7}{'public':>8}{'hidden':>8}{'total':>7}"]
    for spec in dataset.specs:
        counts = [sum(1 for _, lang in dataset.splits[s] if lang == spec.language) for s in SPLITS]
        lines.append(f"{spec.language:<12}{counts[0]:>7}{counts[1]:>8}{counts[2]:>8}{sum(counts):>7}")
    totals = [len(dataset.splits[s]) for s in SPLITS]
    lines.append(f"{'total':<12}{totals[0]:>7}{totals[1]:>8}{totals[2]:>8}{sum(totals):>7}")
    lines.append(
        f"Naive Bayes baseline: public {dataset.accuracies['test_public']:.4f}, "
        f"hidden {dataset.accuracies['test_hidden']:.4f}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Build the surname -> language dataset from pinned packages.")
    parser.add_argument("--out-root", type=Path, default=Path("."), help="repository root to write under")
    parser.add_argument("--check", action="store_true", help="only verify that the files under --out-root are current")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files(args.out_root)
            for relative in stale:
                print(f"out of date: {relative}", file=sys.stderr)
            if stale:
                print(f"run: {COMMAND}", file=sys.stderr)
            return 1 if stale else 0
        dataset = build(args.out_root)
    except VersionMismatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(dataset))
    for relative in OUTPUT_FILES:
        print(f"wrote {args.out_root / relative}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
