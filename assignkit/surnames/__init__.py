"""Offline, deterministic builder of a surname -> language-of-origin dataset.

The data come only from pinned, permissively licensed PyPI packages (Faker,
japanese-personal-name-dataset) and are folded to ASCII with anyascii.
Run ``python -m assignkit.surnames.build --out-root .`` to (re)generate the files.

Modules:
    pins       pinned package versions and the check that enforces them
    sources    which package lists feed which language class
    translit   script-specific romanisation rules (Greek, Ukrainian, Armenian, Chinese)
    normalize  ASCII folding, alphabet filter and capitalisation of one name
    split      de-duplication, collision removal, capping and the stratified split
    baseline   a letter 1-3-gram multinomial Naive Bayes baseline
    report     DATASET.md and LICENSES.md text
    build      command-line entry point writing all output files
"""

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;'"
"""The 57 characters a surname may contain (``string.ascii_letters + " .,;'"``)."""

MAX_LEN = 20
"""Names longer than this many characters are dropped."""

__all__ = ["ALPHABET", "MAX_LEN"]
