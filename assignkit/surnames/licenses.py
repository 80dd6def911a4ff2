"""Licence notices of the packages the surname data are derived from.

The notices are read from each installed distribution's metadata (its
``LICENSE``-like files and licence fields), so LICENSES.md always matches the
pinned versions that produced the data.
"""

from __future__ import annotations

from importlib import metadata

from .pins import PINNED_VERSIONS

ROLES = {
    "Faker": "surname lists of the locale providers in `faker.providers.person`",
    "anyascii": "transliteration of every non-ASCII character to ASCII",
    "japanese-personal-name-dataset": "romaji of the Japanese surnames (`get_last_names()`); the population "
    "counts, which the package bases on myoji-yurai.net, are not used",
}
"""What each package contributes to the data."""

_LICENSE_PREFIXES = ("license", "licence", "copying", "notice")


def license_name(dist: metadata.Distribution) -> str:
    """Short licence name from the metadata (License-Expression, classifier or License field)."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: OSI Approved :: "):
            return classifier.rsplit(" :: ", 1)[1]
    return str(meta.get("License") or "unknown").splitlines()[0]


def license_texts(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """(file name, text) of every licence file shipped in the distribution's metadata, sorted."""
    found = []
    for path in dist.files or []:
        if ".dist-info" not in str(path):
            continue
        if path.name.lower().startswith(_LICENSE_PREFIXES):
            text = path.read_text(encoding="utf-8")
            lines = [line.rstrip() for line in text.replace("\r\n", "\n").strip("\n").split("\n")]
            found.append((path.name, "\n".join(lines)))
    return sorted(found)


def render_licenses() -> str:
    """The text of LICENSES.md."""
    out = [
        "# Licences of the surname data",
        "",
        "The files `surnames_train.tsv`, `surnames_test_public.tsv`, `languages.txt` (and the hidden",
        "test set kept with the autograder) were derived by the course's data build from the",
        "following packages, at exactly these versions. The names were selected, transliterated to",
        "ASCII, de-duplicated and split; see DATASET.md. The licence notices below are reproduced",
        "from the packages' installed metadata.",
        "",
        "| Package | Version | Licence | Used for |",
        "|---|---|---|---|",
    ]
    for name, version in PINNED_VERSIONS:
        dist = metadata.distribution(name)
        out.append(f"| {name} | {version} | {license_name(dist)} | {ROLES[name]} |")
    for name, version in PINNED_VERSIONS:
        dist = metadata.distribution(name)
        out += ["", f"## {name} {version} ({license_name(dist)})", ""]
        home = dist.metadata.get("Home-page") or _project_url(dist)
        if home:
            out += [f"Project: {home}", ""]
        texts = license_texts(dist)
        if not texts:
            raise FileNotFoundError(f"no licence file found in the metadata of {name} {version}")
        for file_name, text in texts:
            out += [f"`{file_name}`:", "", "```text", text, "```"]
    return "\n".join(out) + "\n"


def _project_url(dist: metadata.Distribution) -> str:
    """The Homepage/Repository project URL from the metadata, if any."""
    for entry in dist.metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "repository", "source code"):
            return url.strip()
    return ""
