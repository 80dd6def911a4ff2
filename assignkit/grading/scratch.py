"""The folders one grading works in, and who may read them.

Layout of one grading's scratch folder (``0711`` when dropping privileges: others may pass, not list)::

    hwgrade-XXXX/
        runtime/           read-only for everyone: child.py, hwcheck.py, safe_expr.py (public modules only)
        referee-<nb>/      0700, the grader's: a copy of the master notebook, public data, the labelled hidden
                           data and copies of the submitted files; removed before the sandbox starts
        work-<nb>/         the sandbox account's: the student's notebook, surname_model.pt, public data

The sandbox account never gets a file of the referee's folder: no master, no hidden label, no key.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

from .runner import SandboxUser, remove_tree


def _give(path: Path, user: Optional[SandboxUser]) -> None:
    """Hand ``path`` (recursively) to the sandbox user."""
    if user is None:
        return
    for directory, dirnames, filenames in os.walk(path):
        os.chown(directory, user.uid, user.gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)


def _copy_data(target: Path, files: Sequence[Tuple[str, Path]]) -> None:
    for relative, source in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


class Scratch:
    """One grading's scratch folder; remove it with :meth:`cleanup`."""

    def __init__(self, user: Optional[SandboxUser], base: Optional[Path] = None) -> None:
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="hwgrade-", dir=str(base) if base else None))
        os.chmod(self.root, 0o711 if user else 0o700)
        self.runtime = self.root / "runtime"
        self.runtime.mkdir(mode=0o755)
        os.chmod(self.runtime, 0o755)

    def install_runtime(self, files: Iterable[Path]) -> Path:
        """Copy the child's modules into ``runtime/``, read-only for the sandbox user."""
        for source in files:
            shutil.copyfile(source, self.runtime / source.name)
        for path in self.runtime.iterdir():
            os.chmod(path, 0o644)
        return self.runtime

    def workdir(self, name: str, public_data: Sequence[Tuple[str, Path]], files: Mapping[str, Path]) -> Path:
        """A fresh working folder for the sandbox: public data files (``[(relative path, path)]``) and ``files``
        (``{name in the folder: source}``), owned by the sandbox account."""
        workdir = self.root / f"work-{name}"
        workdir.mkdir(mode=0o700)
        _copy_data(workdir, public_data)
        for target_name, source in files.items():
            shutil.copyfile(source, workdir / target_name)
        _give(workdir, self.user)
        return workdir

    def referee_dir(self, name: str, master: Path, public_data: Sequence[Tuple[str, Path]],
                    hidden_dir: Optional[Path], submitted: Mapping[str, Path]) -> Tuple[Path, Dict[str, Path]]:
        """A private folder for the referee: the master, public and hidden data, and copies of ``submitted``
        (``{file name: path}``) under ``submitted/``. Returns the folder and ``{file name: copy}``."""
        folder = self.root / f"referee-{name}"
        folder.mkdir(mode=0o700)
        shutil.copyfile(master, folder / master.name)
        _copy_data(folder, public_data)
        if hidden_dir is not None and hidden_dir.is_dir():
            hidden = sorted(p for p in hidden_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
            _copy_data(folder / "hidden_data", [(p.relative_to(hidden_dir).as_posix(), p) for p in hidden])
        copies: Dict[str, Path] = {}
        if submitted:
            (folder / "submitted").mkdir(mode=0o700)
        for file_name, source in submitted.items():
            copies[file_name] = folder / "submitted" / file_name
            shutil.copyfile(source, copies[file_name])
        return folder, copies

    @staticmethod
    def remove(path: Path) -> None:
        remove_tree(str(path))

    def cleanup(self) -> None:
        remove_tree(str(self.root))
