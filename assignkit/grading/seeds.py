"""Seeds of the hidden checks: secret, different for every submission, the same on a regrade.

``seed = HMAC-SHA256(grading key, submission digest + ":" + notebook + ":" + check name)``, where the digest
covers every file of the submission that student code can read (the notebooks and the other submitted files).
The grading key is made once per course build (``make release`` writes ``build/grading_key``) or per Gradescope
image (``setup.sh`` writes ``grading_key`` into the bundle folder, which only root can read); it never enters the
sandbox.
So a hidden check's inputs cannot be known before a submission is graded, a leaked check source or an
earlier result gives no lookup table for the next submission (any change to any submitted file changes every
seed, so answers computed for one grading's seeds cannot be carried into the next in a file), and grading the
same submission twice gives the same inputs and so the same score.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Optional, Tuple

KEY_FILE = "grading_key"
KEY_BYTES = 32


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def write_key(path: Path) -> Path:
    """Create ``path`` with a fresh key (readable by its owner only) unless it exists; return it."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(new_key().hex().encode("ascii") + b"\n")
    return path


def read_key(path: Optional[Path]) -> Tuple[bytes, str]:
    """``(key, where it came from)``; a random key for this grading only when ``path`` holds none."""
    if path is not None and path.is_file():
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            key = b""
        if len(key) >= 16:
            return key, str(path)
    return new_key(), "random (no grading key was found: a regrade draws other hidden inputs)"


def check_seed(key: bytes, submission_digest: str, notebook: str, grade_id: str) -> int:
    """The seed of one hidden check of one notebook of one submission (0 <= seed < 2**62)."""
    message = f"{submission_digest}:{notebook}:{grade_id}".encode()
    return int.from_bytes(hmac.new(key, message, hashlib.sha256).digest()[:8], "big") >> 2
