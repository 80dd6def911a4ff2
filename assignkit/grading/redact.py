"""Keep secrets out of everything a student sees.

Student code runs in the same process as the hidden checks it is tested by, so a hostile notebook can
get hold of a hidden check's source and try to smuggle it out in an exception message. Every text that
goes into results.json passes through :class:`Redactor`, which withholds any line that contains a line
of a hidden check's source or one of the long numbers of the hidden goldens.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, List, Mapping

MIN_SECRET_LINE = 12
NUMBER_DECIMALS = 7
_LONG_NUMBER = re.compile(r"\d+\.\d{" + str(NUMBER_DECIMALS) + ",}")
WITHHELD = "[withheld: this text contains part of the hidden tests]"
_HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def hidden_region_lines(source: str) -> List[str]:
    """Distinctive lines of a check cell's hidden part (the whole cell when it has no hidden markers)."""
    if _HIDDEN_MARKERS[0] in source:
        source = source.split(_HIDDEN_MARKERS[0], 1)[1].split(_HIDDEN_MARKERS[1], 1)[0]
    lines = []
    for line in source.splitlines():
        text = " ".join(line.split())
        if len(text) >= MIN_SECRET_LINE:
            lines.append(text)
    return lines


def number_keys(text: str) -> List[str]:
    """Long decimal numbers in ``text``, cut to a fixed number of decimals (so extra printed digits still match)."""
    keys = []
    for number in _LONG_NUMBER.findall(text):
        whole, decimals = number.split(".")
        keys.append(f"{whole}.{decimals[:NUMBER_DECIMALS]}")
    return keys


def golden_numbers(goldens: Mapping[str, Any]) -> List[str]:
    """The long numbers of the goldens, as :func:`number_keys` writes them."""
    return sorted(set(number_keys(json.dumps(goldens))))


class Redactor:
    """Replaces lines that contain any secret with :data:`WITHHELD`."""

    def __init__(self, hidden_sources: Iterable[str], hidden_goldens: Mapping[str, Any]) -> None:
        lines = {line for source in hidden_sources for line in hidden_region_lines(source)}
        self.lines = sorted(lines, key=len, reverse=True)
        self.numbers = frozenset(golden_numbers(hidden_goldens))

    def leaks(self, text: str) -> bool:
        flat = " ".join(text.split())
        if any(line in flat for line in self.lines):
            return True
        return any(number in self.numbers for number in number_keys(text))

    def __call__(self, text: str) -> str:
        if not text or not self.leaks(text):
            return text
        kept = [WITHHELD if self.leaks(line) else line for line in text.splitlines()]
        result = "\n".join(kept)
        return WITHHELD if self.leaks(result) else result
