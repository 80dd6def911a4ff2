"""Turn one raw surname into a clean ASCII name over the 57-character alphabet.

Steps, in order (see :func:`normalize_name`):

1. An inverted name ``"Bourgondië, van"`` becomes ``"van Bourgondië"``.
2. Script-specific rules (:mod:`assignkit.surnames.translit`).
3. anyascii, one character at a time: transliterations of Han characters are
   lower-cased (so ``欧阳`` gives ``ouyang``, not ``OuYang``), and apostrophes
   that anyascii adds for letters of non-Latin scripts (Armenian aspiration,
   Georgian ejectives, Cyrillic soft signs) are removed.
4. Hyphens, underscores and slashes become spaces; whitespace is collapsed.
5. A name with any character outside the alphabet is rejected (``None``).
6. Capitalisation: a word written entirely in capitals (``CHEN``) is
   capitalised (``Chen``); the first letter of the name is upper-cased; other
   letters keep the source's case (``McDonald``, ``van der Berg`` -> ``Van der Berg``).
"""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii

from . import ALPHABET
from .translit import romanize_script

_ALLOWED = frozenset(ALPHABET)
_NON_LATIN_SCRIPTS = ("GREEK", "CYRILLIC", "ARMENIAN", "GEORGIAN", "CJK", "HANGUL", "HIRAGANA", "KATAKANA")
_SEPARATORS = re.compile(r"[-\u2010-\u2015_/]+")


def _script_of(char: str) -> str:
    """Return the non-Latin script prefix of ``char``'s Unicode name, or ``""``."""
    name = unicodedata.name(char, "")
    for script in _NON_LATIN_SCRIPTS:
        if name.startswith(script):
            return script
    return ""


def fold_char(char: str) -> str:
    """Fold one character to ASCII with anyascii plus the two fixes described above."""
    if char.isascii():
        return char
    folded = anyascii(char)
    script = _script_of(char)
    if script == "CJK":
        folded = folded.lower()
    if script:
        folded = folded.replace("'", "")
    return folded


def fold_to_ascii(text: str, scheme: str = "auto") -> str:
    """Romanise ``text`` (script rules, then anyascii per character); the result is ASCII."""
    return "".join(fold_char(char) for char in romanize_script(text, scheme))


def uninvert(text: str) -> str:
    """Turn a catalogue-style ``"Surname, particle"`` into ``"particle Surname"``."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) == 2 and all(parts):
        return f"{parts[1]} {parts[0]}"
    return text


def fix_case(name: str) -> str:
    """Capitalise all-capital words and the first letter; keep the rest of the source case."""
    words = [word.capitalize() if len(word) > 1 and word.isupper() else word for word in name.split(" ")]
    fixed = " ".join(words)
    return fixed[:1].upper() + fixed[1:]


def normalize_name(raw: str, scheme: str = "auto") -> str | None:
    """Return the clean form of ``raw``, or ``None`` if it cannot be expressed in the alphabet.

    The result may be the empty string when nothing is left after folding;
    callers count those separately.
    """
    text = fold_to_ascii(uninvert(raw.strip()), scheme)
    text = _SEPARATORS.sub(" ", text)
    text = " ".join(text.split())
    if any(char not in _ALLOWED for char in text):
        return None
    return fix_case(text)


def in_alphabet(name: str) -> bool:
    """True if every character of ``name`` belongs to the 57-character alphabet."""
    return all(char in _ALLOWED for char in name)
