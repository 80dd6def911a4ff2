"""From raw names to the three splits: clean, de-duplicate, filter, cap and split.

Everything is deterministic: inputs are sorted before any random choice, and
the random choices use :class:`random.Random` seeded from a SHA-256 digest of
the seed and a label, drawing only ``random()`` (whose sequence Python keeps
stable across versions) in a hand-written Fisher-Yates shuffle.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .normalize import normalize_name
from .sources import LanguageSpec, RawName

SPLITS = ("train", "test_public", "test_hidden")
"""Split names, in file order."""


@dataclass
class ClassStats:
    """How many names of one class were kept or dropped at each step."""

    raw: int = 0
    unsupported: int = 0
    empty: int = 0
    merged_duplicates: int = 0
    too_long: int = 0
    collisions: int = 0
    capped: int = 0
    kept: int = 0


@dataclass
class CleanData:
    """The cleaned names per class plus the bookkeeping for the datasheet."""

    names: dict[str, list[str]]
    stats: dict[str, ClassStats]
    collisions: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def seeded_rng(seed: int, *labels: str) -> random.Random:
    """A generator seeded from ``seed`` and ``labels`` through SHA-256 (no hash randomisation)."""
    digest = hashlib.sha256("\x1f".join([str(seed), *labels]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shuffled(items: Sequence[str], rng: random.Random) -> list[str]:
    """Fisher-Yates shuffle of a copy of ``items`` using only ``rng.random()``."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out


def dedupe_casefold(names: Iterable[str]) -> list[str]:
    """Keep one spelling per case-insensitive name: the smallest in code-point order.

    The smallest spelling prefers inner capitals (``MacDonald`` over ``Macdonald``).
    The result is sorted.
    """
    best: dict[str, str] = {}
    for name in sorted(names):
        best.setdefault(name.lower(), name)
    return sorted(best.values())


def clean_names(raws: Sequence[RawName], specs: Sequence[LanguageSpec], max_len: int) -> CleanData:
    """Normalise, de-duplicate, drop over-long names and names shared by two or more classes."""
    schemes = {spec.language: spec.scheme for spec in specs}
    stats = {spec.language: ClassStats() for spec in specs}
    folded: dict[str, list[str]] = {spec.language: [] for spec in specs}
    examples: dict[str, list[tuple[str, str]]] = {spec.language: [] for spec in specs}
    for language in folded:
        texts = sorted({raw.text for raw in raws if raw.language == language})
        stats[language].raw = len(texts)
        for text in texts:
            name = normalize_name(text, schemes[language])
            if name is None:
                stats[language].unsupported += 1
            elif not name:
                stats[language].empty += 1
            else:
                folded[language].append(name)
                if name != text:
                    examples[language].append((text, name))
    names: dict[str, list[str]] = {}
    for language, found in folded.items():
        unique = dedupe_casefold(found)
        stats[language].merged_duplicates = len(found) - len(unique)
        short = [name for name in unique if len(name) <= max_len]
        stats[language].too_long = len(unique) - len(short)
        names[language] = short
    owners: dict[str, list[str]] = {}
    for language in sorted(names):
        for name in names[language]:
            owners.setdefault(name.lower(), []).append(language)
    shared = {key for key, langs in owners.items() if len(langs) > 1}
    collisions = sorted((key, tuple(owners[key])) for key in shared)
    for language in names:
        kept = [name for name in names[language] if name.lower() not in shared]
        stats[language].collisions = len(names[language]) - len(kept)
        names[language] = kept
        stats[language].kept = len(kept)
    return CleanData(names=names, stats=stats, collisions=collisions, examples=examples)


def cap_classes(data: CleanData, cap: int, seed: int) -> None:
    """Keep at most ``cap`` names per class, chosen by a seeded shuffle of the sorted names."""
    for language, names in data.names.items():
        if len(names) > cap:
            chosen = sorted(shuffled(sorted(names), seeded_rng(seed, "cap", language))[:cap])
            data.stats[language].capped = len(names) - cap
            data.stats[language].kept = cap
            data.names[language] = chosen


def split_counts(total: int, test_fraction: float) -> tuple[int, int, int]:
    """Sizes of (train, public test, hidden test) for a class of ``total`` names.

    Each test split gets ``round(total * test_fraction)`` names, at least one.
    """
    if total < 3:
        raise ValueError(f"a class needs at least 3 names to be split, got {total}")
    n_test = max(1, round(total * test_fraction))
    return total - 2 * n_test, n_test, n_test


def stratified_split(names: dict[str, list[str]], test_fraction: float, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Split every class separately into train / public test / hidden test.

    Returns ``{split: [(name, language), ...]}`` with each list sorted by (language, name).
    """
    out: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for language in sorted(names):
        order = shuffled(sorted(names[language]), seeded_rng(seed, "split", language))
        n_train, n_public, _ = split_counts(len(order), test_fraction)
        parts = (order[:n_train], order[n_train : n_train + n_public], order[n_train + n_public :])
        for split, part in zip(SPLITS, parts, strict=True):
            out[split].extend((name, language) for name in part)
    return {split: sorted(rows, key=lambda row: (row[1], row[0])) for split, rows in out.items()}
