"""As whom student code runs, and what makes that account trustworthy (root only, Linux). The scratch folders
are :mod:`assignkit.grading.scratch`'s. The bundle, the goldens and the results folder stay ``0700`` root, so
the sandbox user cannot read them.


* :func:`sweep` — after a grading, root stops and kills every process of the sandbox account (a double-forked
  daemon included) and removes its files from the world-writable folders and its SysV IPC objects;
* :func:`verify_unreadable` / :func:`protect_checkout` — what the sandbox account can read, checked *as* that
  account, and a repository checkout locked so that it can read nothing but the virtualenv it runs from;
* :func:`make_private` — build outputs (hidden goldens, bundle) private to their owner;
* (the preflight of ``setup.sh`` is :func:`assignkit.grading.startup.preflight`);
* :func:`dedicated_users` — the accounts ``hwsandbox``, ``hwsandbox2`` … of parallel local gradings.

Everything here runs on Python 3.10 with the standard library only (it ships in the Gradescope bundle).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .runner import SandboxUser, iter_tree, remove_tree

DEFAULT_USER = "hwsandbox"
FALLBACK_USER = "nobody"
OVERFLOW_UID = 65534  # ``nobody`` under any name
CREATE_USERS = "bash autograder/create_sandbox_user.sh"

SWEPT_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
"""World-writable folders where an account can leave files behind (its home is added when it has one of its own)."""
NOT_A_HOME = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                        "/run", "/sbin", "/srv", "/sys", "/usr", "/var", *SWEPT_FOLDERS})
"""Grading scratch folders (root's, in the temp folder): their work folders are the account's while a grading runs
— the sweep between two children of one notebook must leave them — and the grader removes them itself."""
SWEEP_ROUNDS = 60  # kill rounds (a round: stop everything, rescan until nothing new, kill everything)
SWEEP_STOP_SCANS = 100  # scans of /proc per round while new processes keep appearing
SWEEP_SECONDS = 15.0  # hard bound on the process part of a sweep
SWEEP_SUBFOLDER_ENTRIES = 2000  # entries looked at inside each root-owned folder of SWEPT_FOLDERS
REPORTED = 20  # paths listed in reports
VERIFY_ENTRIES = 4000  # paths verify_unreadable tries, breadth first


class SandboxError(RuntimeError):
    """The sandbox is not set up as grading needs: a missing account, a secret the account can read."""


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


def account_name(uid: int) -> str:
    """The login name of ``uid`` (``uid <n>`` when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def account_names(base: str = DEFAULT_USER, count: int = 1) -> List[str]:
    """The accounts of ``count`` parallel gradings: ``base``, ``base2`` … ``base<count>`` (grading worker k always
    uses the k-th); exactly what ``create_sandbox_user.sh --count N [--base NAME]`` creates."""
    return [base] + [f"{base}{k}" for k in range(2, max(1, count) + 1)]


def create_users_command(base: str = DEFAULT_USER, count: int = 1) -> str:
    """The command (run as root from the repository) that creates ``account_names(base, count)``."""
    command = f"{CREATE_USERS} --count {count}"
    return command if base == DEFAULT_USER else f"{command} --base {base}"


def dedicated_users(base: str = DEFAULT_USER, count: int = 1) -> List[SandboxUser]:
    """One account of its own for each of ``count`` parallel gradings, in worker order.

    Raises :class:`SandboxError` naming the command that creates the missing accounts, and when two names are
    the same uid (gradings sharing an account could read and kill each other).
    """
    names = account_names(base, count)
    users: List[SandboxUser] = []
    missing: List[str] = []
    for name in names:
        user = find_user(name)
        if user is None:
            missing.append(name)
        else:
            users.append(user)
    if missing:
        plural = "s" if len(missing) > 1 else ""
        need = f"{count} parallel gradings need the accounts {', '.join(names)}" if count > 1 else \
            f"grading needs the account {base}"
        raise SandboxError(f"sandbox account{plural} {', '.join(missing)} missing ({need}, one each). "
                           f"Create {'them' if plural else 'it'} once, as root, from the repository:\n"
                           f"    {create_users_command(base, count)}")
    if len({user.uid for user in users}) != len(users):
        raise SandboxError(f"the accounts {', '.join(names)} do not all have uids of their own")
    return users


# -- the sweep: nothing of a student outlives their grading --------------------------------------------------

_Status = Tuple[Tuple[int, ...], str]


def _status(pid: int) -> Optional[_Status]:
    """``((real, effective, saved, filesystem uid), state letter)`` of a process; ``None`` once it has gone.

    Only ``\n`` ends a line: the kernel escapes ``\n`` in a process name (``Name:``, which the process sets
    itself) but not other separators that ``str.splitlines`` would honour, such as ``\x1c``; a process named
    ``"\x1cUid:x"`` must not hide from the sweep. When the file cannot be read as expected, the owner of
    ``/proc/<pid>`` (its effective uid) stands in for all four uids.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    uids: Tuple[int, ...] = ()
    state = "?"
    for line in text.split("\n"):
        key, _, value = line.partition(":\t")
        if key == "State":
            state = value.strip()[:1] or "?"
        elif key == "Uid":
            try:
                uids = tuple(int(field) for field in value.split())
            except ValueError:
                uids = ()
    if len(uids) != 4:
        try:
            owner = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            return None
        uids = (owner,) * 4
    return uids, state


def _is_target(pid: int, status: Optional[_Status], uid: int) -> bool:
    """A live process that is ``uid``'s by any of its four uids and whose real uid is not root.

    Root's own processes are never touched, even one that temporarily acts as the account; a set-uid program the
    account started (real uid: the account) is the account's. A zombie is skipped (it cannot run, and its parent
    or init reaps it) unless it is a thread-group leader whose other threads still run.
    """
    if status is None:
        return False
    uids, state = status
    if uid not in uids or uids[0] == 0:
        return False
    if state in ("Z", "X"):
        try:
            return len(os.listdir(f"/proc/{pid}/task")) > 1
        except OSError:
            return False
    return True


def _processes_of(uid: int, exclude: Set[int]) -> Set[int]:
    found: Set[int] = set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if name.isdigit():
            pid = int(name)
            if pid not in exclude and _is_target(pid, _status(pid), uid):
                found.add(pid)
    return found


def _signal(pid: int, sig: int, uid: int) -> bool:
    """Send ``sig`` to ``pid`` if it is (still) a process of ``uid``.

    The process is pinned with a pidfd before its uids are read, so a pid that was reused by someone else's
    process in the meantime is never signalled (``os.kill`` only where pidfds do not exist, Linux < 5.3).
    """
    try:
        fd: Optional[int] = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        fd = None
    try:
        if not _is_target(pid, _status(pid), uid):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _stop_and_kill(uid: int, deadline: float) -> Tuple[Set[int], int, Set[int]]:
    """Stop every process of ``uid`` (a stopped process can neither fork nor continue another), rescanning until a
    scan finds no new one, then kill them all; repeat until a scan finds none. Returns (killed, rounds, left)."""
    exclude = {os.getpid()}
    killed: Set[int] = set()
    rounds = 0
    while rounds < SWEEP_ROUNDS and time.monotonic() < deadline:
        seen: Set[int] = set()
        for _ in range(SWEEP_STOP_SCANS):
            found = _processes_of(uid, exclude)
            for pid in found:  # again for known ones too: one of them may have been continued by a newcomer
                _signal(pid, signal.SIGSTOP, uid)
            new = found - seen
            seen |= found
            if not new or time.monotonic() > deadline:
                break
        if not seen:
            break
        rounds += 1
        for pid in seen:
            if _signal(pid, signal.SIGKILL, uid):
                killed.add(pid)
        time.sleep(min(0.002 * 2**rounds, 0.05))  # let the killed exit before the next scan
    return killed, rounds, _processes_of(uid, exclude)


def _entries(folder: str, limit: Optional[int] = None) -> List[str]:
    try:
        with os.scandir(folder) as listing:
            names = []
            for entry in listing:
                names.append(os.path.join(folder, entry.name))
                if limit is not None and len(names) >= limit:
                    break
            return names
    except OSError:
        return []


def _tree_bytes(path: str) -> int:
    return sum(info.st_size for _, info in iter_tree(path) if stat.S_ISREG(info.st_mode))


def _remove_owned(uid: int, folders: Iterable[str], keep: Iterable[str] = ()) -> Tuple[List[str], int, List[str]]:
    """Remove what ``uid`` owns directly in ``folders``, and one level down in their root-owned subfolders
    (except ``keep``: the scratch folder of the grading under way; a scratch folder a killed grader left behind
    is cleared like any other, so nothing of a grading waits there for the next one with the same account).

    Only ``lstat`` is used and nothing is followed: a symbolic link is removed, never its target, and a folder
    is removed with ``shutil.rmtree``, which does not follow links. Entries that vanish meanwhile are fine.
    Returns (removed paths, bytes of regular files freed, errors).
    """
    removed: List[str] = []
    errors: List[str] = []
    freed = 0
    kept = {os.path.realpath(path) for path in keep}

    def remove(path: str, info: os.stat_result) -> None:
        nonlocal freed
        try:
            if stat.S_ISDIR(info.st_mode):
                size = _tree_bytes(path)
                remove_tree(path)
            else:
                size = info.st_size if stat.S_ISREG(info.st_mode) else 0
                os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as error:
            errors.append(f"{path}: {error}")
            return
        if os.path.lexists(path):
            errors.append(f"{path}: could not be removed")
            return
        removed.append(path)
        freed += size

    for folder in folders:
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                continue
        except OSError:
            continue
        for path in _entries(folder):
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_uid == uid:
                remove(path, info)
            elif info.st_uid == 0 and stat.S_ISDIR(info.st_mode) and os.path.realpath(path) not in kept:
                for inner in _entries(path, SWEEP_SUBFOLDER_ENTRIES):
                    try:
                        inner_info = os.lstat(inner)
                    except OSError:
                        continue
                    if inner_info.st_uid == uid:
                        remove(inner, inner_info)
    return removed, freed, errors


def _own_home(user: SandboxUser) -> Optional[str]:
    """The account's home when it is a real folder of its own (not ``/``, a system folder or a shared home)."""
    try:
        home = pwd.getpwuid(user.uid).pw_dir
    except KeyError:
        home = user.home
    if not home or not os.path.isabs(home):
        return None
    real = os.path.realpath(home)
    if real in NOT_A_HOME:
        return None
    try:
        info = os.lstat(home)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    for entry in pwd.getpwall():
        if entry.pw_uid != user.uid and entry.pw_dir and os.path.realpath(entry.pw_dir) == real:
            return None  # shared with another account
    return real


def _remove_ipc(uid: int) -> int:
    """Remove the System V shared-memory segments, semaphore sets and message queues ``uid`` owns or created:
    unlike files and processes they outlive everything (POSIX ones are files in /dev/shm and /dev/mqueue)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return 0
    ipc_rmid = 0
    removers: Dict[str, Tuple[str, Callable[[int], int]]] = {
        "shm": ("shmid", lambda ident: libc.shmctl(ident, ipc_rmid, None)),
        "sem": ("semid", lambda ident: libc.semctl(ident, 0, ipc_rmid)),
        "msg": ("msqid", lambda ident: libc.msgctl(ident, ipc_rmid, None)),
    }
    removed = 0
    for kind, (id_column, remove) in removers.items():
        try:
            with open(f"/proc/sysvipc/{kind}", encoding="ascii", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        if not lines:
            continue
        header = lines[0].split()
        try:
            columns = header.index(id_column), header.index("uid"), header.index("cuid")
        except ValueError:
            continue
        for line in lines[1:]:
            fields = line.split()
            try:
                ident, owner, creator = (int(fields[column]) for column in columns)
            except (IndexError, ValueError):
                continue
            if uid in (owner, creator) and remove(ident) == 0:
                removed += 1
    return removed


def sweep(user: Optional[SandboxUser], keep: Iterable[Path] = ()) -> Dict[str, Any]:
    """Make sure nothing of the sandbox account outlives a grading; runs in the (root) grader itself.

    Every process whose real, effective, saved or filesystem uid is the account's is stopped (rescanning
    /proc until no new one appears, so a fork bomb or a double-forked ``setsid`` daemon cannot outrun it), then
    killed, until a scan finds none. Root's processes and the grader's own are never signalled. Then everything
    the account owns in /tmp, /var/tmp, /dev/shm (/run/lock, /dev/mqueue, and its own home if it has one) is
    removed — also one level down in root's folders there, except ``keep`` (the scratch folder of the grading
    under way, the grader's to remove) — and its System V IPC objects.

    Returns a report: ``processes_killed``, ``rounds``, ``paths_removed`` (the first 20), ``paths_removed_count``,
    ``bytes_freed``, ``ipc_removed`` (plus ``survivors`` / ``errors`` when there are any); ``{}`` when there is
    nothing to do (no account, not root) and ``{"note": ...}`` for an account that may be shared (root,
    ``nobody``), which is never swept.
    """
    if user is None or not is_root():
        return {}
    name = account_name(user.uid)
    if user.uid == 0 or user.uid == OVERFLOW_UID or name == FALLBACK_USER:
        return {"note": f"not swept: {name} may be shared with the rest of the machine"}
    killed, rounds, left = _stop_and_kill(user.uid, time.monotonic() + SWEEP_SECONDS)
    home = _own_home(user)
    removed, freed, errors = _remove_owned(user.uid, [*SWEPT_FOLDERS, *([home] if home else [])],
                                           [str(path) for path in keep])
    report: Dict[str, Any] = {
        "user": name, "uid": user.uid, "processes_killed": len(killed), "rounds": rounds,
        "paths_removed": removed[:REPORTED], "paths_removed_count": len(removed), "bytes_freed": freed,
        "ipc_removed": _remove_ipc(user.uid),
    }
    if left:
        report["survivors"] = sorted(left)
    if errors:
        report["errors"] = errors[:REPORTED]
    return report

_OPEN_PROBE = r"""
import json, os, sys
flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
readable = []
for path in json.loads(sys.stdin.read()):
    try:
        fd = os.open(path, flags)
    except OSError:
        continue
    os.close(fd)
    readable.append(path)
sys.stdout.write(json.dumps(readable))
"""


def _candidates(paths: Iterable[Path], limit: int) -> List[str]:
    """``paths`` and everything under them as root sees it, breadth first, at most ``limit``: regular files and
    folders only (symbolic links are not followed, devices and FIFOs not touched)."""
    found: List[str] = []
    folders: List[str] = []
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            folders.append(str(path))
        if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
            found.append(str(path))
    index = 0
    while index < len(folders) and len(found) < limit:
        for path in sorted(_entries(folders[index])):
            if len(found) >= limit:
                break
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                folders.append(path)
                found.append(path)
            elif stat.S_ISREG(info.st_mode):
                found.append(path)
        index += 1
    return found


def _open_as(user: SandboxUser, paths: Sequence[str], python: str, timeout: float) -> List[str]:
    """Which of ``paths`` the account can open for reading (a folder: list), tried by a process running as it."""
    if not paths:
        return []
    try:
        done = subprocess.run([python, "-I", "-S", "-c", _OPEN_PROBE], input=json.dumps(list(paths)).encode(),
                              capture_output=True, timeout=timeout, cwd="/", check=False,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                              user=user.uid, group=user.gid, extra_groups=[])
    except (OSError, subprocess.SubprocessError) as error:
        raise SandboxError(f"could not run {python} as {account_name(user.uid)}: {error}") from error
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise SandboxError(f"could not check what {account_name(user.uid)} can read: {python} exited with "
                           f"{done.returncode}: {tail}")
    return list(json.loads(done.stdout.decode("utf-8")))


def verify_unreadable(user: SandboxUser, paths: Iterable[Path], *, python: str = sys.executable,
                      limit: int = VERIFY_ENTRIES, timeout: float = 60.0) -> List[str]:
    """The paths under ``paths`` (recursively, breadth first, at most ``limit``) that ``user`` can read.

    A process running as the account (no supplementary groups) tries to open each one, files for reading and
    folders for listing; the names come from root's listing, so a file the account could open by name inside a
    folder it may pass but not list counts too. ``[]`` means none. Needs root (it switches to the account).
    """
    if user is None:
        raise ValueError("verify_unreadable needs the sandbox account")
    return _open_as(user, _candidates([Path(p) for p in paths], limit), python, timeout)


def _mode(path: Path) -> Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except OSError:
        return None


def protect_checkout(root: Path, user: Optional[SandboxUser], venv: Optional[Path] = None, *,
                     python: str = sys.executable) -> Dict[str, Any]:
    """Make a repository checkout unreadable for the sandbox account, except the virtualenv the child runs from.

    ``venv`` defaults to ``sys.prefix``. Every entry of the checkout (and of the folders between it and the venv)
    that the account can read, or may pass into, loses its group and other permissions (``chmod go-rwx``: for a
    folder that blocks everything below); the checkout and the folders down to the venv keep only ``o+x``
    (``0711``: pass, not list). Then it is checked again as the account: anything still readable (an ACL, a group
    the account is in, a file it owns) raises :class:`SandboxError`. A no-op (``{}``) without an account or root.
    Returns ``{"root", "venv", "changed": ["path: 0755 -> 0700", ...], "checked", "venv_readable"}``.
    """
    if user is None or not is_root():
        return {}
    root = Path(root).resolve()
    venv = Path(venv if venv is not None else sys.prefix).resolve()
    if venv == root or venv in root.parents:
        raise ValueError(f"the checkout {root} is inside the virtualenv {venv}")
    needs_passage = root in venv.parents  # the sandbox must pass the checkout to reach its venv
    chain = [root]  # the checkout and the folders between it and the venv
    if needs_passage:
        for part in venv.relative_to(root).parts[:-1]:
            chain.append(chain[-1] / part)
    passage = {*chain, venv}
    entries = [Path(path) for folder in chain for path in sorted(_entries(str(folder)))
               if Path(path) not in passage]
    readable = verify_unreadable(user, entries, python=python)
    changed: List[str] = []

    def set_mode(path: Path, new: int) -> None:
        info = _mode(path)
        if info is None or stat.S_ISLNK(info.st_mode):
            return
        old = stat.S_IMODE(info.st_mode)
        if new != old:
            os.chmod(path, new)
            changed.append(f"{path}: {old:04o} -> {new:04o}")

    for entry in entries:
        info = _mode(entry)
        if info is None or stat.S_ISLNK(info.st_mode):
            continue
        prefix = str(entry) + os.sep
        exposed = any(path == str(entry) or path.startswith(prefix) for path in readable)
        others = stat.S_IMODE(info.st_mode) & 0o007
        if exposed or others & 0o004 or (stat.S_ISDIR(info.st_mode) and others & 0o001):
            set_mode(entry, stat.S_IMODE(info.st_mode) & ~0o077)
    for folder in chain:
        info = _mode(folder)
        if info is not None:
            mode = stat.S_IMODE(info.st_mode) & ~0o066
            set_mode(folder, mode | 0o001 if needs_passage else mode)
    after = _candidates(entries, VERIFY_ENTRIES)
    venv_probe = [str(venv), *(str(venv / name) for name in ("pyvenv.cfg",) if (venv / name).is_file())]
    seen = set(_open_as(user, [*after, *map(str, chain), *venv_probe], python, 60.0))
    still = [path for path in [*after, *map(str, chain)] if path in seen]
    if still:
        shown = ", ".join(still[:5]) + (f" and {len(still) - 5} more" if len(still) > 5 else "")
        raise SandboxError(
            f"the sandbox account {account_name(user.uid)} can still read {shown} after `chmod go-rwx` on the "
            f"checkout {root}: something other than the mode bits lets it (an ACL, a group it is in, a file it "
            f"owns). Fix that, or grade with --bundle.")
    return {"root": str(root), "venv": str(venv), "changed": changed, "checked": len(after),
            "venv_readable": all(path in seen for path in venv_probe)}


def make_private(paths: Iterable[Path]) -> List[str]:
    """``chmod -R go-rwx`` on each of ``paths`` that exists (root or not): the build's secrets (build/, the hidden
    data, the bundle) readable by their owner only. Symbolic links are neither changed nor followed. Returns the
    paths whose mode changed."""
    changed: List[str] = []

    def private(path: str) -> None:
        try:
            info = os.lstat(path)
        except OSError:
            return
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISLNK(info.st_mode) and mode & 0o077:
            os.chmod(path, mode & ~0o077)
            changed.append(path)

    for path in map(str, paths):
        private(path)
        if os.path.isdir(path) and not os.path.islink(path):
            for directory, folders, files in os.walk(path):
                for name in folders + files:
                    private(os.path.join(directory, name))
    return changed
