"""Where and as whom student code runs: the unprivileged account, the scratch folders, the lock-down.

Layout of one grading's scratch folder (``0711`` when dropping privileges: others may pass, not list)::

    hwgrade-XXXX/
        runtime/           root-owned, read-only for the sandbox: child.py, hwcheck.py, safe_expr.py
        work-<notebook>/   owned by the sandbox user: the notebook, surname_model.pt, public data,
                           hidden_data/ (inputs only: never labels)

The bundle, the goldens and the results folder stay ``0700`` root, so the sandbox user cannot read them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from .runner import SandboxUser

DEFAULT_USER = "hwsandbox"
FALLBACK_USER = "nobody"
HIDDEN_INPUT_COLUMNS = ("name",)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def find_user(name: str) -> Optional[SandboxUser]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        raise ValueError(f"the sandbox user {name!r} is root")
    return SandboxUser(entry.pw_uid, entry.pw_gid, entry.pw_dir)


def resolve_user(name: str = DEFAULT_USER) -> Optional[SandboxUser]:
    """The account to drop to: ``None`` when not root (nothing to drop), else ``name`` or ``nobody``."""
    if not is_root():
        return None
    user = find_user(name) or find_user(FALLBACK_USER)
    if user is None:
        raise RuntimeError(f"running as root but neither {name!r} nor {FALLBACK_USER!r} exists")
    return user


def lock_down(paths: Iterable[Path]) -> None:
    """Make folders private to root (only when running as root; a no-op otherwise)."""
    if not is_root():
        return
    for path in paths:
        if path.exists():
            os.chown(path, 0, 0)
            os.chmod(path, 0o700)


def sweep(user: Optional[SandboxUser]) -> None:
    """Kill every process of the sandbox account (e.g. a daemon that escaped the child's process group).

    Only for a dedicated account on a dedicated machine (Gradescope's container): never for ``nobody``.
    """
    if user is None or not is_root():
        return
    code = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-I", "-c", code], user=user.uid, group=user.gid, extra_groups=[],
                   check=False, timeout=30, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _give(path: Path, user: Optional[SandboxUser]) -> None:
    """Hand ``path`` (recursively) to the sandbox user."""
    if user is None:
        return
    for directory, dirnames, filenames in os.walk(path):
        os.chown(directory, user.uid, user.gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)


def names_only(text: str, keep: Iterable[str] = HIDDEN_INPUT_COLUMNS) -> Optional[str]:
    """A TSV with only its input columns (``name``), bytes of each field unchanged; ``None`` when it has none
    (then it is not shared with the sandbox at all)."""
    lines = text.splitlines()
    if not lines:
        return None
    header = lines[0].split("\t")
    indices = [header.index(column) for column in keep if column in header]
    if not indices:
        return None
    out = []
    for line in lines:
        fields = line.split("\t")
        out.append("\t".join(fields[i] if i < len(fields) else "" for i in indices))
    return "\n".join(out) + "\n"


class Scratch:
    """One grading's scratch folder; remove it with :meth:`cleanup`."""

    def __init__(self, user: Optional[SandboxUser], base: Optional[Path] = None) -> None:
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="hwgrade-", dir=str(base) if base else None))
        os.chmod(self.root, 0o711 if user else 0o700)
        self.runtime = self.root / "runtime"
        self.runtime.mkdir(mode=0o755)
        os.chmod(self.runtime, 0o755)

    def install_runtime(self, files: Iterable[Path], written: Optional[Mapping[str, bytes]] = None) -> Path:
        """Copy the child's trusted modules (and ``written``: ``{name: bytes}``) into ``runtime/``, read-only
        for the sandbox user."""
        for source in files:
            shutil.copyfile(source, self.runtime / source.name)
        for name, content in (written or {}).items():
            (self.runtime / name).write_bytes(content)
        for path in self.runtime.iterdir():
            os.chmod(path, 0o644)
        return self.runtime

    def workdir(self, name: str, public_data: Sequence[Tuple[str, Path]], hidden_dir: Optional[Path],
                files: Mapping[str, Path]) -> Path:
        """A fresh working folder for one notebook: public data files (``[(relative path, path)]``),
        hidden inputs without labels, and ``files`` (``{name in the folder: source}``)."""
        workdir = self.root / f"work-{name}"
        workdir.mkdir(mode=0o700)
        for relative, source in public_data:
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        self._hidden_inputs(hidden_dir, workdir / "hidden_data")
        for target_name, source in files.items():
            shutil.copyfile(source, workdir / target_name)
        _give(workdir, self.user)
        return workdir

    @staticmethod
    def _hidden_inputs(hidden_dir: Optional[Path], target: Path) -> List[Path]:
        written = []
        if hidden_dir is None or not hidden_dir.is_dir():
            return written
        for source in sorted(hidden_dir.glob("*.tsv")):
            text = names_only(source.read_text(encoding="utf-8"))
            if text is None:
                continue
            target.mkdir(exist_ok=True)
            (target / source.name).write_text(text, encoding="utf-8")
            written.append(target / source.name)
        return written

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

