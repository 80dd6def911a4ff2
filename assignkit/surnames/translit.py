"""Script-specific romanisation rules applied before the generic anyascii fold.

anyascii maps one code point at a time, which reads wrong for a few scripts:

* Greek digraphs: ``ου`` becomes ``oy``, ``αυ``/``ευ`` become ``ay``/``ey``,
  ``μπ``/``ντ``/``γκ``/``γγ`` become ``mp``/``nt``/``gk``/``gg``.  We rewrite them
  on the Greek text (following ELOT 743) so that the diaeresis, which blocks a
  digraph, and the position in the word are taken into account.
* Ukrainian: anyascii uses Russian values (``г`` -> g, ``и`` -> i).  Ukrainian
  names are romanised with the official Ukrainian national system (2010).
* Russian: the soft and hard signs become apostrophes; we drop them (as in
  most English spellings of Russian names).
* Armenian: ``ու`` becomes ``ow`` (we use ``u``); word-initial ``Ե``/``Ո`` are
  ``Ye``/``Vo`` in the usual spelling.
* Chinese: anyascii picks the most common reading of a character, which for a
  few characters differs from their reading as a surname (``曾`` is Zeng, not Ceng).

Every function here returns text that may still contain non-ASCII characters;
:func:`assignkit.surnames.normalize.fold_to_ascii` finishes the job.
"""

from __future__ import annotations

import re
import unicodedata

SCHEMES = ("auto", "ukrainian")
"""Accepted values of the ``scheme`` argument of :func:`romanize_script`."""

# --------------------------------------------------------------------------- Greek

_GREEK_VOICELESS = "θκξπσςτφχψ"
_GREEK_WORD_START = r"(?<!\w)"


def _match_case(source: str, latin: str) -> str:
    """Give ``latin`` the capitalisation of the Greek/Cyrillic ``source`` snippet."""
    if source.isupper() and len(source) > 1 and len(latin) > 1:
        return latin.upper()
    if source[:1].isupper():
        return latin[:1].upper() + latin[1:]
    return latin


def _strip_tonos(text: str) -> str:
    """Remove the Greek accent (tonos) but keep the diaeresis, which matters for digraphs."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = decomposed.replace("\u0301", "").replace("\u0384", "")
    return unicodedata.normalize("NFC", kept)


def _vowel_upsilon(match: re.Match[str]) -> str:
    """Romanise αυ/ευ/ηυ as av/ev/iv, or af/ef/if before a voiceless consonant or at the end."""
    pair = match.group(0)
    following = match.string[match.end() : match.end() + 1]
    voiceless = following == "" or not following.isalpha() or following.lower() in _GREEK_VOICELESS
    first = {"α": "a", "ε": "e", "η": "i"}[pair[0].lower()]
    return _match_case(pair, first + ("f" if voiceless else "v"))


_GREEK_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), latin)
    for pattern, latin in (
        (_GREEK_WORD_START + "μπ", "b"),
        ("μπ", "mb"),
        (_GREEK_WORD_START + "ντ", "d"),
        ("ντ", "nt"),
        (_GREEK_WORD_START + "γκ", "g"),
        ("γκ", "ng"),
        ("γγ", "ng"),
        ("γξ", "nx"),
        ("γχ", "nch"),
        ("ου", "ou"),
    )
)
_GREEK_VOWEL_UPSILON = re.compile("[αεη]υ", re.IGNORECASE)


def romanize_greek(text: str) -> str:
    """Rewrite the Greek digraphs of ``text`` in Latin letters (ELOT 743 values).

    Single letters are left to anyascii, whose values already follow ELOT 743.
    """
    text = _strip_tonos(text)
    text = _GREEK_VOWEL_UPSILON.sub(_vowel_upsilon, text)
    for pattern, latin in _GREEK_RULES:
        text = pattern.sub(lambda m, latin=latin: _match_case(m.group(0), latin), text)
    return text


# ----------------------------------------------------------------------- Cyrillic

_UKRAINIAN = {
    "а": "a", "б": "b", "в": "v", "г": "h", "ґ": "g", "д": "d", "е": "e", "є": "ie",
    "ж": "zh", "з": "z", "и": "y", "і": "i", "ї": "i", "й": "i", "к": "k", "л": "l",
    "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
    "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ь": "", "ю": "iu",
    "я": "ia",
}  # fmt: skip
_UKRAINIAN_INITIAL = {"є": "ye", "ї": "yi", "й": "y", "ю": "yu", "я": "ya"}
_APOSTROPHES = "'\u2019\u02bc\u02b9`"


def romanize_ukrainian(text: str) -> str:
    """Romanise Ukrainian Cyrillic with the Ukrainian national system (2010).

    Word-initial є/ї/й/ю/я take their initial values (Ye, Yi, Y, Yu, Ya), "зг" is
    written "zgh", and the soft sign and apostrophe are dropped.
    """
    out: list[str] = []
    for index, char in enumerate(text):
        lower = char.lower()
        previous = text[index - 1] if index else ""
        if char in _APOSTROPHES:
            continue
        if lower not in _UKRAINIAN:
            out.append(char)
            continue
        at_start = index == 0 or (not previous.isalpha() and previous not in _APOSTROPHES)
        latin = _UKRAINIAN_INITIAL[lower] if at_start and lower in _UKRAINIAN_INITIAL else _UKRAINIAN[lower]
        if lower == "г" and previous.lower() == "з":
            latin = "gh"
        out.append(_match_case(char, latin) if latin else "")
    return "".join(out)


def drop_cyrillic_signs(text: str) -> str:
    """Drop the Cyrillic soft and hard signs (ь, ъ), which anyascii turns into apostrophes."""
    return re.sub("[ьъЬЪ]", "", text)


# ----------------------------------------------------------------------- Armenian


def romanize_armenian(text: str) -> str:
    """Fix the Armenian letters anyascii reads wrong: ու -> u, initial Ե -> Ye, initial Ո -> Vo."""
    text = re.sub("ու", "u", text)
    text = re.sub("Ու|ՈՒ", "U", text)
    text = re.sub(r"(?<!\w)Ե", "Ye", text)
    text = re.sub(r"(?<!\w)ե", "ye", text)
    text = re.sub(r"(?<!\w)Ո", "Vo", text)
    return re.sub(r"(?<!\w)ո", "vo", text)


# ------------------------------------------------------------------------ Chinese

CHINESE_SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "單": "shan", "仇": "qiu", "解": "xie", "朴": "piao",
    "查": "zha", "区": "ou", "區": "ou", "盖": "ge", "蓋": "ge", "乐": "yue", "樂": "yue",
    "覃": "qin", "翟": "zhai", "缪": "miao", "繆": "miao",
}  # fmt: skip
"""Characters whose reading as a surname differs from anyascii's (most common) reading."""


def romanize_chinese_surname(text: str) -> str:
    """Replace characters that have a special surname reading by that reading (lower case)."""
    return "".join(CHINESE_SURNAME_READINGS.get(char, char) for char in text)


# ------------------------------------------------------------------- dispatching


def _has_script(text: str, script: str) -> bool:
    """True if any character of ``text`` has a Unicode name starting with ``script``."""
    return any(unicodedata.name(char, "").startswith(script) for char in text)


def romanize_script(text: str, scheme: str = "auto") -> str:
    """Apply the script-specific rules that fit ``text``.

    ``scheme="auto"`` detects Greek, Armenian, Han and Cyrillic (read as Russian);
    ``scheme="ukrainian"`` reads Cyrillic as Ukrainian.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown romanisation scheme {scheme!r}; expected one of {SCHEMES}")
    if _has_script(text, "GREEK"):
        text = romanize_greek(text)
    if _has_script(text, "ARMENIAN"):
        text = romanize_armenian(text)
    if _has_script(text, "CJK"):
        text = romanize_chinese_surname(text)
    if _has_script(text, "CYRILLIC"):
        text = romanize_ukrainian(text) if scheme == "ukrainian" else drop_cyrillic_signs(text)
    return text
