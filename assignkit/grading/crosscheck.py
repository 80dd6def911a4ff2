"""Compare what the student's own submission_log.json claims with what was submitted and measured.

The log is written by the student's notebook and nothing in it is trusted: its numbers never count.
It is only read to point out disagreements (a model file that is not the one the log describes, an
accuracy far above the one the grader measured). The reader is generic: it looks for sha256 digests
and accuracies anywhere in the JSON, whatever the exact layout the notebook writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

try:
    from .submission import MODEL_FILE, STUDENT_LOG, SubmittedFile
except ImportError:  # the release ships this file as hwcrosscheck.py beside hwsubmit.py (check_submission.py)
    from hwsubmit import MODEL_FILE, STUDENT_LOG, SubmittedFile  # type: ignore[no-redef]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NODES = 20000
ACCURACY_SLACK = 0.10
_ACCURACY_PREFERENCE = ("public", "test", "eval", "val")


@dataclass
class Claims:
    """What the log says: sha256 digests and accuracies, each with the key path it was found under."""

    digests: List[Tuple[str, str]] = field(default_factory=list)
    accuracies: List[Tuple[str, float]] = field(default_factory=list)


def _number(value: Any) -> Optional[float]:
    """An accuracy in [0, 1] (a percentage above 1 is divided by 100), or None for anything else: JSON integers
    of any size (``10**400`` has no float), infinities and NaN included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not -1000 <= value <= 1000:
        return None
    value = float(value)
    if not 0.0 <= value <= 100.0:  # also false for NaN
        return None
    return value / 100.0 if value > 1.0 else value


def find_claims(log: Any) -> Claims:
    """Walk the JSON (bounded) and collect sha256 strings and accuracy numbers (a list counts as its last value)."""
    claims = Claims()
    stack: List[Tuple[str, Any]] = [("", log)]
    visited = 0
    while stack and visited < MAX_NODES:
        path, node = stack.pop()
        visited += 1
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((f"{path}/{key}"[:200], value))
            continue
        leaf = path.rsplit("/", 1)[-1].lower()
        if isinstance(node, str) and "sha" in path.lower() and _SHA256.match(node.strip().lower()):
            claims.digests.append((path, node.strip().lower()))
        elif "acc" in leaf:
            if isinstance(node, list) and node:
                node = node[-1]
            number = _number(node)
            if number is not None:
                claims.accuracies.append((path, number))
        elif isinstance(node, list) and len(node) <= 1000:
            stack.extend((f"{path}/{index}", item) for index, item in enumerate(node))
    claims.digests.sort()
    claims.accuracies.sort()
    return claims


def claimed_accuracy(claims: Claims) -> Optional[Tuple[str, float]]:
    """The accuracy that best looks like the final test-set accuracy: public > test > eval > val, and the
    least nested one (a top-level ``public_test_accuracy`` over the per-epoch history)."""
    for word in _ACCURACY_PREFERENCE:
        matching = [claim for claim in claims.accuracies if word in claim[0].lower()]
        if matching:
            return min(matching, key=lambda claim: (claim[0].count("/"), claim[0]))
    return None


def model_digests(claims: Claims) -> List[Tuple[str, str]]:
    """The digests that describe the weights file (``/weights/sha256``, ``/model_sha256`` ...), not the code."""
    return [(path, digest) for path, digest in claims.digests
            if ("model" in path.lower() or "weights" in path.lower()) and "source" not in path.lower()]


def cross_check(log: SubmittedFile, files: Dict[str, SubmittedFile], measured_accuracy: Optional[float]
                ) -> List[str]:
    """Human-readable findings; none of them changes the score."""
    if log.path is None:
        return [f"{STUDENT_LOG} was not submitted (it is only used for cross-checks; no points depend on it)."]
    if log.problem:
        return [f"{STUDENT_LOG} {log.problem}; it was not used."]
    claims = find_claims(log.content)
    notes = []
    model = files.get(MODEL_FILE)
    model_claims = model_digests(claims)
    if model is not None and model.sha256 and model_claims:
        path, digest = model_claims[0]
        if digest == model.sha256:
            notes.append(f"{STUDENT_LOG}: the sha256 of {MODEL_FILE} matches the uploaded file.")
        else:
            notes.append(f"{STUDENT_LOG} DISAGREES: it records sha256 {digest[:12]}… for {MODEL_FILE} "
                         f"(at {path}), the uploaded file has {model.sha256[:12]}…: the model you uploaded is "
                         "not the one your log describes.")
    elif model is not None and model.sha256:
        notes.append(f"{STUDENT_LOG} records no sha256 for {MODEL_FILE}.")
    claim = claimed_accuracy(claims)
    if claim is not None and measured_accuracy is not None:
        path, value = claim
        text = (f"{STUDENT_LOG} claims an accuracy of {100 * value:.1f}% (at {path}); the grader measured "
                f"{100 * measured_accuracy:.1f}% on the hidden test names")
        if value > measured_accuracy + ACCURACY_SLACK:
            notes.append(f"{text}: DISAGREES (far higher than measured). Only the measured accuracy counts.")
        else:
            notes.append(f"{text}. Only the measured accuracy counts.")
    return notes
