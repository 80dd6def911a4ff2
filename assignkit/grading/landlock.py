"""Confine what a sandboxed child can *read* to the folders it needs, with Linux Landlock.

File permissions already keep the course's secrets (goldens, hidden data, the grading key) from the sandbox
account. Landlock adds a second wall that does not depend on how a machine's other folders are set: once
installed, the child and everything it starts can read, list and execute only beneath

* the interpreter's own folders (prefixes, standard library, site-packages; never an editable checkout),
* the system's (``/usr``, ``/lib*``, ``/bin``, ``/sbin``, ``/etc``) and ``/proc``, ``/sys``, ``/dev``,
* the grading's work and runtime folders.

So a world-readable copy of the course elsewhere on a shared machine (a TA's checkout in ``/tmp``, a sibling
clone in ``/home``) is out of reach even when its permissions would allow it. Writing is left to the file
permissions (the sweep removes what the account leaves behind). Landlock needs Linux 5.13+ and no privilege;
where the kernel or a container's seccomp profile refuses it, nothing is installed and the grading goes on
(the report says so). Runs on Python 3.10.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import platform
import stat
import struct
import subprocess
from pathlib import Path
from typing import Callable, Iterable, List, Sequence, Tuple

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
RULE_PATH_BENEATH = 1
EXECUTE, READ_FILE, READ_DIR = 1 << 0, 1 << 2, 1 << 3
READ_ACCESS = EXECUTE | READ_FILE | READ_DIR
FILE_ACCESS = EXECUTE | READ_FILE  # the rights a rule on a single file may carry
SYSTEM_FOLDERS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev")
PACKAGE_FOLDERS = ("site-packages", "dist-packages")


def supported() -> bool:
    """Whether this kernel offers Landlock (its ABI version is at least 1)."""
    if platform.system() != "Linux":
        return False
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return False
    syscall.restype = ctypes.c_long
    return syscall(CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)) >= 1  # LANDLOCK_CREATE_RULESET_VERSION


@functools.lru_cache(maxsize=4)
def interpreter_folders(python: str) -> Tuple[str, ...]:
    """The folders ``python -I`` loads code from: its prefixes and the standard-library and package folders of
    its ``sys.path`` (entries outside the prefixes count only when they are package folders, so an editable
    install that puts a course checkout on ``sys.path`` does not open that checkout)."""
    probe = ("import json, sys; "
             "print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, sys.path]))")
    try:
        found = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
        *prefixes, path = json.loads(found.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return ()
    folders = {os.path.realpath(prefix) for prefix in prefixes}
    folders.add(os.path.dirname(os.path.realpath(python)))
    for entry in path:
        real = os.path.realpath(entry) if entry else ""
        if not real or not os.path.exists(real):
            continue
        inside = any(real == prefix or real.startswith(prefix + os.sep) for prefix in folders)
        if inside or any(part in PACKAGE_FOLDERS for part in Path(real).parts):
            folders.add(real if os.path.isdir(real) else os.path.dirname(real))
    return tuple(sorted(folders))


def readable_folders(python: str, extra: Iterable[Path]) -> List[str]:
    """Everything a sandboxed child may read: the system's folders, the interpreter's and ``extra``."""
    wanted = [*SYSTEM_FOLDERS, *interpreter_folders(python), *(str(path) for path in extra)]
    return [path for path in dict.fromkeys(wanted) if os.path.exists(path)]


def read_confinement(folders: Sequence[str]) -> Callable[[], bool]:
    """A function for the forked child (after it dropped privileges) that lets it read only beneath ``folders``.
    It sets ``PR_SET_NO_NEW_PRIVS`` (which Landlock needs). Returns whether Landlock was installed."""
    if platform.system() != "Linux":
        return lambda: False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return lambda: False
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    ruleset = ctypes.create_string_buffer(struct.pack("<Q", READ_ACCESS), 8)
    flags = os.O_PATH | os.O_CLOEXEC
    encoded = [os.fsencode(folder) for folder in folders]

    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def install() -> bool:
        if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: required unless privileged; idempotent
            return False
        descriptor = syscall(CREATE_RULESET, ruleset, ctypes.c_size_t(8), ctypes.c_uint32(0))
        if descriptor < 0:
            return False
        try:
            for folder in encoded:
                try:
                    parent = os.open(folder, flags)
                except OSError:
                    continue
                try:
                    access = READ_ACCESS if stat.S_ISDIR(os.fstat(parent).st_mode) else FILE_ACCESS
                    rule = ctypes.create_string_buffer(struct.pack("<Qi", access, parent), 12)
                    syscall(ADD_RULE, ctypes.c_int(descriptor), ctypes.c_int(RULE_PATH_BENEATH), rule,
                            ctypes.c_uint32(0))
                finally:
                    os.close(parent)
            return syscall(RESTRICT_SELF, ctypes.c_int(descriptor), ctypes.c_uint32(0)) == 0
        finally:
            os.close(descriptor)

    return install
