"""The datasheet (DATASET.md) of the surname dataset.

Only training names are quoted as examples: DATASET.md lives under
``source/`` and must never reveal a hidden-test name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from .pins import PINNED_VERSIONS
from .sources import UNUSED, LanguageSpec
from .split import SPLITS, ClassStats, CleanData


@dataclass(frozen=True)
class BuildSettings:
    """The parameters a build used, quoted in the datasheet."""

    seed: int
    cap: int
    test_fraction: float
    max_len: int
    command: str


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; numeric columns are right-aligned."""
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def _sources(specs: Sequence[LanguageSpec]) -> list[str]:
    """Source table: class, package lists, note."""
    rows = []
    for spec in specs:
        parts = [f"{fl.locale}: " + ", ".join(f"`{a}`" for a in fl.attributes) for fl in spec.faker]
        if spec.japanese_dataset:
            parts.append("japanese-personal-name-dataset `get_last_names()` romaji")
        rows.append((spec.language, "; ".join(parts), spec.note or "-"))
    return _table(("Class", "Source lists (Faker locale: attributes)", "Notes"), rows)


def _drops(data: CleanData, specs: Sequence[LanguageSpec]) -> list[str]:
    """Per-class table of kept and dropped names, with a total row."""
    names = [f.name for f in fields(ClassStats)]
    rows: list[list[object]] = [
        [spec.language, *(getattr(data.stats[spec.language], n) for n in names)] for spec in specs
    ]
    rows.append(["**total**", *(sum(getattr(data.stats[s.language], n) for s in specs) for n in names)])
    header = (
        "Class",
        "distinct raw",
        "outside alphabet",
        "empty",
        "case/fold duplicates",
        "too long",
        "cross-class",
        "capped",
        "kept",
    )
    return _table(header, rows)


def _split_counts(splits: dict[str, list[tuple[str, str]]], specs: Sequence[LanguageSpec]) -> list[str]:
    """Per-class count table over the three splits."""
    rows: list[list[object]] = []
    for spec in specs:
        counts = [sum(1 for _, lang in splits[split] if lang == spec.language) for split in SPLITS]
        rows.append([spec.language, *counts, sum(counts)])
    totals = [len(splits[split]) for split in SPLITS]
    rows.append(["**total**", *totals, sum(totals)])
    return _table(("Class", "train", "public test", "hidden test", "total"), rows)


def _collision_pairs(data: CleanData, limit: int = 12) -> str:
    """The class groups that share the most names, as a sentence."""
    counts: dict[tuple[str, ...], int] = {}
    for _, owners in data.collisions:
        counts[owners] = counts.get(owners, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return ", ".join(f"{' / '.join(group)} {count}" for group, count in ranked)


def _examples(data: CleanData, train_names: set[str], specs: Sequence[LanguageSpec], per_class: int = 3) -> list[str]:
    """Transliteration examples (raw -> clean) for classes whose raw names are not ASCII, training names only."""
    out = []
    for spec in specs:
        shown = [
            f"{raw} -> {clean}"
            for raw, clean in data.examples[spec.language]
            if clean in train_names and not raw.isascii()
        ][:per_class]
        if shown:
            out.append(f"- {spec.language}: " + "; ".join(shown))
    return out


def render_dataset(
    data: CleanData,
    splits: dict[str, list[tuple[str, str]]],
    specs: Sequence[LanguageSpec],
    accuracies: dict[str, float],
    settings: BuildSettings,
) -> str:
    """The text of DATASET.md."""
    total = sum(len(rows) for rows in splits.values())
    train_names = {name for name, _ in splits["train"]}
    versions = ", ".join(f"{name} {version}" for name, version in PINNED_VERSIONS)
    pct = round(settings.test_fraction * 100)
    out = [
        "# Surnames dataset: datasheet",
        "",
        f"{total:,} distinct surnames, each labelled with one of {len(specs)} languages of origin, built offline",
        f"from pinned PyPI packages ({versions}) by the course's data build, which is deterministic",
        "(byte-identical output) and refuses to run with other package versions.",
        "",
        "## Files",
        "",
        "- `surnames_train.tsv`, `surnames_test_public.tsv`: UTF-8, header `name<TAB>language`, one name per line,",
        "  sorted by language, then name.",
        "- `languages.txt`: the class names, one per line, in class-index order.",
        "- The hidden test set (same format) is kept with the autograder and is not distributed.",
        "",
        "## Sources",
        "",
        *_sources(specs),
        "",
        "Not used:",
        "",
        *(f"- {source}: {reason}." for source, reason in UNUSED),
        "",
        "## Normalisation",
        "",
        "1. A catalogue-style name `Surname, particle` (Dutch `Bourgondië, van`) is turned around (`van Bourgondië`).",
        "2. Script rules before folding: Greek digraphs per ELOT 743 (ου -> ou, αυ/ευ -> av/ev or af/ef before a",
        "   voiceless consonant, initial μπ/ντ/γκ -> b/d/g, medial -> mb/nt/ng, γγ -> ng; a diaeresis blocks a",
        "   digraph); Ukrainian by the national system of 2010 (г -> h, и -> y, є/ї/ю/я -> ye/yi/yu/ya initially,",
        "   ie/i/iu/ia elsewhere); Russian soft and hard signs dropped; Armenian ու -> u and initial Ե/Ո -> Ye/Vo;",
        "   polyphonic Chinese characters read as surnames (曾 -> Zeng, 单 -> Shan, 朴 -> Piao, ...).",
        "3. Everything else is folded by anyascii one character at a time: accents stripped (é -> e, ä -> a),",
        "   ß -> ss, ł -> l, Greek/Cyrillic/Armenian/Georgian/Han transliterated. Apostrophes that anyascii adds for",
        "   letters of non-Latin scripts (aspiration and ejective marks, soft signs) are removed; Han syllables",
        "   are joined in lower case (欧阳 -> Ouyang).",
        "4. Hyphens, underscores and slashes become spaces; runs of spaces collapse; leading/trailing space is",
        "   stripped.",
        '5. A name with any character outside the 57-character alphabet (`string.ascii_letters + " .,;\'"`) is',
        "   dropped (counted as *outside alphabet*); a name left empty is dropped (*empty*).",
        "6. Case: a word in all capitals (Wade-Giles `CHEN`) is capitalised (`Chen`); the first letter of the name",
        "   is upper-cased; all other letters keep the source's case (`McDonald`, `Van der Linden`, `A tSithigh`).",
        "7. Within a class, spellings that differ only in case (or fold to the same ASCII) are merged, keeping",
        "   the smallest spelling in code-point order (`MacDonald` before `Macdonald`).",
        f"8. Names longer than {settings.max_len} characters are dropped (*too long*).",
        "9. Names (compared case-insensitively) that occur in two or more classes are dropped from all of them",
        "   (*cross-class*): the label of such a name is ambiguous.",
        f"10. Classes with more than {settings.cap:,} names keep a seeded random sample of {settings.cap:,}",
        "    (*capped*), to limit the class imbalance.",
        "",
        "Examples (training names only):",
        "",
        *_examples(data, train_names, specs),
        "",
        "## Dropped names",
        "",
        *_drops(data, specs),
        "",
        f"{len(data.collisions)} distinct names were shared between classes and removed from all of them. "
        f"Most frequent groups: {_collision_pairs(data)}.",
        "",
        "## Split",
        "",
        f"Each class is split separately (stratified): its names are sorted, shuffled with a generator seeded from"
        f" seed {settings.seed} and the class name, and cut into {100 - 2 * pct}% train, {pct}% public test and"
        f" {pct}% hidden test (each test share is rounded to the nearest whole name). No name occurs in two splits"
        " or two classes.",
        "",
        *_split_counts(splits, specs),
        "",
        "## Baseline",
        "",
        "Multinomial Naive Bayes over lower-cased letter 1-, 2- and 3-grams (name padded with start and end marks),",
        "add-one smoothing, trained on the training split:",
        "",
        f"- public test accuracy: {accuracies['test_public']:.4f}",
        f"- hidden test accuracy: {accuracies['test_hidden']:.4f}",
        "",
        "## Known limitations",
        "",
        "- The labels come from the locale of a name list, not from etymology: a list of common surnames of a",
        "  country also contains names of other origins (e.g. `Rahman` in the British list, Catalan names in the",
        "  Spanish list, Swedish-Finnish names in the Finnish list). Shared names are removed, others remain.",
        "- Transliteration is mechanical; some names have other usual English spellings (`Satou` for Sato).",
        "- Neighbouring languages share many name shapes (Spanish/Italian/French, German/Dutch/English,",
        "  Polish/Croatian/Ukrainian); expect most classification errors there.",
        "- Chinese surnames are mostly one syllable, so many pinyin/Wade-Giles spellings coincide; the class",
        "  is small after de-duplication.",
    ]
    return "\n".join(out) + "\n"
