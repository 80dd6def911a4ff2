"""Tests of the surname dataset builder (assignkit.surnames) and of the committed data files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import generated_names

from assignkit.surnames import ALPHABET, MAX_LEN
from assignkit.surnames.build import (
    HEADER,
    LANGUAGES_FILE,
    OUTPUT_FILES,
    SPLIT_FILES,
    build,
)
from assignkit.surnames.normalize import fix_case, fold_to_ascii, normalize_name, uninvert
from assignkit.surnames.pins import PINNED_VERSIONS, VersionMismatchError, check_versions
from assignkit.surnames.split import dedupe_casefold, seeded_rng, shuffled, split_counts

REPO = Path(__file__).resolve().parents[1]
PUBLIC_TREES = ("source", "release", "solutions")
TEXT_SUFFIXES = {".tsv", ".csv", ".txt", ".md", ".py", ".ipynb", ".json", ".yaml", ".yml", ".html", ".toml", ".cfg"}


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two independent builds into fresh directories: one in-process, one through the CLI.

    The CLI build runs in a fresh interpreter with another string-hash seed, so any
    dependence on set or dict iteration order would show up as a difference.
    """
    first = tmp_path_factory.mktemp("build1")
    second = tmp_path_factory.mktemp("build2")
    build(first)
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "assignkit.surnames.build", "--out-root", str(second)]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return first, second


def read_split(root: Path, split: str) -> list[tuple[str, str]]:
    """Rows of a split file (header checked and removed)."""
    text = (root / SPLIT_FILES[split]).read_bytes().decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == HEADER
    assert lines[-1] == "", "file must end with a newline"
    rows = []
    for line in lines[1:-1]:
        name, language = line.split("\t")
        rows.append((name, language))
    return rows


@pytest.fixture(scope="module")
def splits(built_twice: tuple[Path, Path]) -> dict[str, list[tuple[str, str]]]:
    """The rows of every split of the first build."""
    root = built_twice[0]
    return {split: read_split(root, split) for split in SPLIT_FILES}


@pytest.fixture(scope="module")
def languages(built_twice: tuple[Path, Path]) -> list[str]:
    """The class list of the first build."""
    return (built_twice[0] / LANGUAGES_FILE).read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------- reproducibility


def test_two_builds_are_byte_identical(built_twice: tuple[Path, Path]) -> None:
    first, second = built_twice
    for relative in OUTPUT_FILES:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_committed_files_equal_a_fresh_build(built_twice: tuple[Path, Path]) -> None:
    fresh = built_twice[0]
    stale = [str(rel) for rel in OUTPUT_FILES if (REPO / rel).read_bytes() != (fresh / rel).read_bytes()]
    assert not stale, f"committed files are out of date, rerun the builder: {stale}"


def test_files_use_unix_newlines_and_utf8(built_twice: tuple[Path, Path]) -> None:
    for relative in OUTPUT_FILES:
        data = (built_twice[0] / relative).read_bytes()
        assert b"\r" not in data, relative
        data.decode("utf-8")


def test_split_files_are_sorted(splits: dict[str, list[tuple[str, str]]]) -> None:
    for rows in splits.values():
        assert rows == sorted(rows, key=lambda row: (row[1], row[0]))


# -------------------------------------------------------------- data content


def test_at_least_16_classes_in_sorted_order(languages: list[str]) -> None:
    assert len(languages) >= 16
    assert len(set(languages)) == len(languages)
    assert languages == sorted(languages)


def test_every_label_is_a_listed_class(splits: dict[str, list[tuple[str, str]]], languages: list[str]) -> None:
    for rows in splits.values():
        assert {language for _, language in rows} <= set(languages)


def test_every_class_is_in_every_split(splits: dict[str, list[tuple[str, str]]], languages: list[str]) -> None:
    for split, rows in splits.items():
        present = {language for _, language in rows}
        assert present == set(languages), f"{split} lacks {sorted(set(languages) - present)}"


def test_split_is_stratified(splits: dict[str, list[tuple[str, str]]], languages: list[str]) -> None:
    for language in languages:
        counts = [sum(1 for _, lang in splits[split] if lang == language) for split in SPLIT_FILES]
        assert tuple(counts) == split_counts(sum(counts), 0.15)


def test_no_name_in_two_splits_or_two_classes(splits: dict[str, list[tuple[str, str]]]) -> None:
    seen: dict[str, str] = {}
    for split, rows in splits.items():
        for name, _ in rows:
            key = name.lower()
            assert key not in seen, f"{name!r} is in {seen[key]} and {split}"
            seen[key] = split


def test_names_use_the_alphabet_and_fit_the_max_length(splits: dict[str, list[tuple[str, str]]]) -> None:
    assert len(ALPHABET) == 57
    allowed = set(ALPHABET)
    for rows in splits.values():
        for name, _ in rows:
            assert 0 < len(name) <= MAX_LEN, name
            assert set(name) <= allowed, name
            assert name == name.strip() and "  " not in name, name
            assert name[0].isupper() or name[0] == "'", name


def _delimited_fields(text: str) -> set[str]:
    """Every line and every tab/comma/semicolon/pipe-separated field of ``text``, stripped of quotes."""
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    out = set()
    for line in text.split("\n"):
        out.add(line.strip().strip("\"'"))
        for field in re.split(r"[\t,;|]", line):
            out.add(field.strip().strip("\"'"))
    return out


def test_hidden_names_never_appear_in_public_trees(splits: dict[str, list[tuple[str, str]]]) -> None:
    hidden = {name for name, _ in splits["test_hidden"]} - generated_names(REPO)  # q_char_lm's model invents names
    hidden_rows = {f"{name}\t{language}" for name, language in splits["test_hidden"]}
    leaks = []
    for tree in PUBLIC_TREES:
        root = REPO / tree
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            fields = _delimited_fields(text)
            found = (hidden | hidden_rows) & fields
            leaks += [f"{path.relative_to(REPO)}: {name}" for name in sorted(found)[:5]]
    assert not leaks, "hidden test names found in public files:\n" + "\n".join(leaks)


def test_hidden_file_lives_outside_public_trees() -> None:
    hidden = SPLIT_FILES["test_hidden"]
    assert hidden.parts[0] not in PUBLIC_TREES


# ------------------------------------------------------------ normalisation


def test_fold_german_and_polish_letters() -> None:
    assert normalize_name("Groß") == "Gross"
    assert normalize_name("Łukasiewicz") == "Lukasiewicz"
    assert normalize_name("Żółć") == "Zolc"


def test_fold_strips_accents() -> None:
    assert normalize_name("Pérez") == "Perez"
    assert normalize_name("Müller") == "Muller"
    assert normalize_name("Ó Briain") == "O Briain"
    assert normalize_name("Hämäläinen") == "Hamalainen"


def test_greek_digraphs() -> None:
    assert normalize_name("Γιαννούκος") == "Giannoukos"  # ου -> ou (anyascii alone gives oy)
    assert normalize_name("Μπλανάς") == "Blanas"  # initial μπ -> b
    assert normalize_name("Λαμπράκης") == "Lambrakis"  # medial μπ -> mb
    assert normalize_name("Ευαγγέλου") == "Evangelou"  # ευ -> ev before a voiced sound, γγ -> ng
    assert normalize_name("Ευθυμίου") == "Efthymiou"  # ευ -> ef before a voiceless consonant
    assert normalize_name("Μαυρίδης") == "Mavridis"  # αυ -> av
    assert normalize_name("Ντόκος") == "Dokos"  # initial ντ -> d
    assert normalize_name("Προϊστάμενος") == "Proistamenos"  # diaeresis: no digraph


def test_cyrillic() -> None:
    assert normalize_name("Смирнов") == "Smirnov"
    assert normalize_name("Хохлов") == "Khokhlov"
    assert normalize_name("Карась") == "Karas"  # soft sign dropped, no apostrophe
    assert normalize_name("Гаврилишина", "ukrainian") == "Havrylyshyna"  # г -> h, и -> y
    assert normalize_name("Ющенко", "ukrainian") == "Yushchenko"
    assert normalize_name("Пʼятаченко", "ukrainian") == "Piatachenko"


def test_other_scripts() -> None:
    assert normalize_name("Արզումանյան") == "Arzumanyan"  # ու -> u
    assert normalize_name("Ոսկանյան") == "Voskanyan"
    assert normalize_name("კაციტაძე") == "Katsitadze"  # no ejective apostrophes
    assert normalize_name("欧阳") == "Ouyang"
    assert normalize_name("曾") == "Zeng"  # surname reading


def test_separators_case_and_inversion() -> None:
    assert normalize_name("St-Onge") == "St Onge"
    assert normalize_name("  van  der   Linden ") == "Van der Linden"
    assert normalize_name("Bourgondië, van") == "Van Bourgondie"
    assert uninvert("Gogh, van") == "van Gogh"
    assert normalize_name("CHEN") == "Chen"
    assert fix_case("mcDonald") == "McDonald"
    assert normalize_name("O'Brien") == "O'Brien"
    assert normalize_name("Smith2") is None
    assert normalize_name("---") == ""


def test_fold_output_is_ascii() -> None:
    for text in ("Dvořák", "Σπηλιάδου", "Щукин", "Աբազյան", "ჯიშკარიანი", "張簡", "Ğ", "Þór"):
        assert fold_to_ascii(text).isascii()


# ------------------------------------------------------------- helpers


def test_dedupe_keeps_one_spelling_per_casefolded_name() -> None:
    assert dedupe_casefold(["Macdonald", "MacDonald", "Smith", "smith"]) == ["MacDonald", "Smith"]


def test_shuffle_is_seeded_and_a_permutation() -> None:
    items = [f"n{i}" for i in range(50)]
    one = shuffled(items, seeded_rng(1, "x"))
    assert one == shuffled(items, seeded_rng(1, "x"))
    assert one != shuffled(items, seeded_rng(2, "x"))
    assert sorted(one) == sorted(items)


def test_version_check_passes_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    check_versions()
    from assignkit.surnames import pins

    name, _ = PINNED_VERSIONS[0]
    monkeypatch.setattr(
        pins, "installed_version", lambda dist: "0.0.1" if dist == name else dict(PINNED_VERSIONS)[dist]
    )
    with pytest.raises(VersionMismatchError, match=name):
        check_versions()
