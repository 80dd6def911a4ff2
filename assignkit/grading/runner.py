"""The grader's side of running a notebook: spawn the sandboxed child, feed it, watch it, collect raw values.

The child (:mod:`assignkit.grading.child`) runs with resource limits, in its own process group, and — when
the grader runs as root — as an unprivileged user. When a cell or a check crashes the child, hangs or
exceeds a limit, the child is killed and started again without that cell, so only the points that depend
on it are lost. Nothing here executes student code in the grader's own process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import forkserver
from .forkserver import ForkedChild, ForkServerError
from .landlock import read_confinement, readable_folders

CHILD_SCRIPT = Path(__file__).with_name("child.py")
ReportListener = Callable[[str, Dict[str, Any], float], None]
MAX_EVENT_BYTES = 2 * 1024**2
"""Longest event line believed (the largest real report is under 0.1 MB); a longer one ends the child."""
MAX_CHILD_BYTES = 32 * 1024**2
"""Most bytes of events one child may send; more ends it. With MAX_EVENTS, this bounds the grader's memory."""
MAX_EVENTS = 20_000
"""Most events one child may send (a notebook of a few hundred cells and twenty checks sends a few hundred)."""
MAX_INCIDENTS = 40
"""Most incident notes kept per notebook (crashes, time-outs, restarts)."""
TEMP_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")
MAX_TEMP_GROWTH_BYTES = 128 * 1024**2
MAX_TEMP_GROWTH_INODES = 20_000
MIN_FREE_BYTES = 16 * 1024**2
"""A sandboxed child is stopped when it has used more than the growth limits of a shared temporary folder
(/dev/shm is memory), or when the folder is nearly full."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one notebook's sandboxed runs (wall-clock limits are enforced by the grader)."""

    cell_seconds: float = 60.0
    check_seconds: float = 20.0
    notebook_seconds: float = 240.0
    cpu_seconds: int = 300
    data_bytes: int = 448 * 1024**2  # the solutions need < 320 MB; with torch's code and the grader < 700 MB
    address_space_bytes: int = 2048 * 1024**2
    file_bytes: int = 64 * 1024**2
    processes: int = 64
    output_bytes_kept: int = 64 * 1024
    max_restarts: int = 6
    total_rss_bytes: int = 560 * 1024**2  # all processes of a sandboxed run together (the per-process limits
    # above do not add up: 64 processes could each hold their data limit); with the grader, under 700 MB


CUDA_TORCH_VARIABLE = "HWGRADER_ALLOW_CUDA_TORCH"
"""Set to ``1`` only to emulate Gradescope where torch's CPU build cannot be installed (``make emulate-gradescope``
installs PyPI's torch, the CUDA build); never set on Gradescope, whose ``setup.sh`` installs the CPU build."""
CUDA_TORCH_HEADROOM = {"address_space_bytes": 2048 * 1024**2, "data_bytes": 640 * 1024**2,
                       "total_rss_bytes": 640 * 1024**2}
"""What the CUDA build of torch 2.13 takes beyond the CPU build once the notebooks' libraries are imported (measured
on Python 3.10: 3.3 GB against 0.7 GB of address space, 0.85 GB against 0.28 GB of data segment, 0.77 GB against
0.29 GB resident), rounded up: added to those limits, a student's code has at least the room it has on Gradescope."""


def cuda_torch_allowed(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether ``HWGRADER_ALLOW_CUDA_TORCH`` is ``1``. Any other value but unset or empty raises ``ValueError``, so
    that a typo stops the grading rather than changing a limit."""
    text = (os.environ if environ is None else environ).get(CUDA_TORCH_VARIABLE, "").strip()
    if text not in ("", "0", "1"):
        raise ValueError(f"{CUDA_TORCH_VARIABLE} must be 1 (the emulation with a CUDA build of torch) or unset, "
                         f"not {text!r}")
    return text == "1"


def for_the_installed_torch(limits: Limits, environ: Optional[Mapping[str, str]] = None) -> Limits:
    """``limits``, or, when :func:`cuda_torch_allowed`, ``limits`` with :data:`CUDA_TORCH_HEADROOM` added to its
    memory limits (every other limit unchanged)."""
    if not cuda_torch_allowed(environ):
        return limits
    return replace(limits, **{name: getattr(limits, name) + extra for name, extra in CUDA_TORCH_HEADROOM.items()})


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account student code runs as (only used when the grader runs as root)."""

    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class CheckRun:
    """One check cell to run after the notebook's cells: its source, the seed of a hidden check, and whether
    its report is wanted (a cell that is not requested still runs, for the helpers it defines)."""

    grade_id: str
    source: str
    seed: Optional[int] = None
    requested: bool = True


@dataclass(frozen=True)
class ProbeJob:
    """What to run: a notebook file, the cells to skip, and the check cells to run after them.

    ``mode`` is ``"sandbox"`` (a student's notebook, as the sandbox account) or ``"referee"`` (a master
    notebook in a trusted process; ``submitted`` maps submitted file names to paths it may read).
    """

    notebook: Path
    checks: Sequence[CheckRun]
    skip_ids: Sequence[str] = ()
    skip_tag: str = "skip-grading"
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment variables for the child
    mode: str = "sandbox"
    submitted: Mapping[str, str] = field(default_factory=dict)
    code_cells: int = 10_000  # how many code cells the notebook has (cell events beyond are not believed)
    preload: Sequence[str] = ()  # libraries a sandboxed child imports before threads are refused (child.warm_up)


@dataclass
class NotebookRun:
    """Everything the child reported, plus what the grader observed (timeouts, crashes, restarts)."""

    cells: Dict[int, str] = field(default_factory=dict)  # cell index -> "ok" or an error message
    reports: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # check name -> {"values"} | {"error"}
    durations: Dict[str, float] = field(default_factory=dict)  # check name -> seconds
    events: List[str] = field(default_factory=list)  # human-readable log of incidents
    output_head: str = ""
    output_bytes: int = 0
    wall_seconds: float = 0.0
    child_cpu_seconds: float = 0.0
    child_peak_rss_bytes: int = 0
    children: int = 0
    listener: Optional[ReportListener] = field(default=None, repr=False)

    def report(self, name: str, report: Dict[str, Any], seconds: float) -> None:
        """Hand one check's report to the listener (the grader scores and saves it at once, and only the verdict
        is kept), or store it when nobody listens (the referee's reports, which are trusted)."""
        self.durations[name] = seconds
        if self.listener is not None:
            self.reports[name] = {"heard": True}
            self.listener(name, report, seconds)
        else:
            self.reports[name] = report

    def incident(self, text: str) -> None:
        """Note something that went wrong (bounded: a hostile notebook cannot grow this list without end)."""
        if len(self.events) < MAX_INCIDENTS:
            self.events.append(text[:300])
        elif len(self.events) == MAX_INCIDENTS:
            self.events.append("... (more incidents not listed)")


PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None]:
    """A function for the forked child that asks Linux to SIGKILL it when the grader dies (no-op elsewhere).

    So a grader killed by a time-out (Gradescope's, or a test's) never leaves a student process running.
    libc is looked up here, in the grader, so the forked child only makes the call.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _bpf_program(blocks: Sequence[Tuple[str, List[Tuple[int, Any, Any, int]]]]) -> List[Tuple[int, int, int, int]]:
    """Classic BPF from labelled blocks whose jump targets are labels (or 0: the next instruction)."""
    starts, position = {}, 0
    for label, instructions in blocks:
        starts[label] = position
        position += len(instructions)
    program, position = [], 0
    for _, instructions in blocks:
        for code, true, false, k in instructions:
            offsets = [starts[target] - position - 1 if isinstance(target, str) else target for target in (true, false)]
            program.append((code, offsets[0], offsets[1], k))
            position += 1
    return program


def _no_internet() -> Callable[[], bool]:
    """A function for the forked sandbox child that forbids it (and everything it starts) to open internet
    sockets and to use the kernel's keyrings, POSIX message queues, io_uring or ptrace: a seccomp filter that makes
    ``socket(AF_INET | AF_INET6, ...)``, ``io_uring_setup``, ``add_key``, ``request_key``, ``keyctl``, ``mq_open``
    and ``ptrace`` fail with EPERM, and any system call of another ABI too. It needs no privilege
    (``PR_SET_NO_NEW_PRIVS``). So student code can neither send a hidden check's inputs out to be answered nor
    fetch anything, nor leave data for a later grading. (The child adds a second filter against new threads and
    processes itself, once torch's profiler has started its thread: ``child.single_threaded``.) Returns whether
    the filter was installed (Linux x86-64 only; elsewhere it does nothing)."""
    import platform
    import struct

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return lambda: False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return lambda: False
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    # io_uring_setup could open sockets behind the filter's back; add_key, request_key and keyctl reach the
    # kernel's keyrings and mq_open POSIX message queues, which outlive every process of the account (a channel
    # from one grading to the next)
    denied = (425, 248, 249, 250, 240, 101)  # ... and ptrace: PTRACE_TRACEME would make the grader or the fork
    # server its tracer, whose wait then sees the child's stops
    socket = 41
    program = _bpf_program([
        ("start", [(load, 0, 0, 4), (jeq, 0, "deny", 0xC000003E),  # arch must be x86-64
                   (load, 0, 0, 0), (jge, "deny", 0, 0x40000000),  # no x32 system calls
                   *[(jeq, "deny", 0, number) for number in denied],
                   (jeq, "socket", 0, socket),
                   (ret, 0, 0, allow)]),
        ("socket", [(load, 0, 0, 16), (jeq, "deny", 0, 2), (jeq, "deny", "allow", 10)]),  # AF_INET, AF_INET6
        ("allow", [(ret, 0, 0, allow)]),
        ("deny", [(ret, 0, 0, deny)]),
    ])
    code = b"".join(struct.pack("<HBBI", *instruction) for instruction in program)
    filters = ctypes.create_string_buffer(code, len(code))
    fprog = ctypes.create_string_buffer(struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(filters)), 16)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def install() -> bool:
        _ = filters  # keep the filter's memory alive in the forked child
        if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            return False
        return prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER

    return install


def _limit_child(limits: Limits, user: Optional[SandboxUser], offline: bool = False,
                 readable: Optional[Sequence[str]] = None, parent: Optional[int] = None) -> Callable[[], None]:
    """The ``preexec_fn`` of a child: its own session, resource limits, the sandbox account, and when ``offline``
    no internet; when ``readable`` is given, it may read only beneath those folders (:mod:`.landlock`). The child
    dies with ``parent`` (default: this process, which forks it; a fork server's child names the server)."""
    die_with_parent = _parent_death_signal()
    grader = os.getpid() if parent is None else parent
    no_internet = _no_internet() if offline else (lambda: False)
    confine = read_confinement(readable) if readable is not None else (lambda: False)

    def apply() -> None:
        import resource

        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_DATA, (limits.data_bytes, limits.data_bytes))
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes, limits.address_space_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if user is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
        no_internet()
        confine()
        die_with_parent()  # after the uid change, which would clear it
        if os.getppid() != grader:  # the grader died before the signal was armed
            os._exit(1)

    return apply


def _child_env(workdir: Path, extra: Mapping[str, str]) -> Dict[str, str]:
    """A small, fixed environment: nothing of the grader's (paths, tokens) leaks into the sandbox."""
    return {
        **extra,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),  # the only folder the sandbox may both write and read back
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "OMP_NUM_THREADS": "1",
        "OMP_THREAD_LIMIT": "1",  # torch.set_num_threads(4) in a cell must not make OpenMP start threads
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HW_FAST": "1",
        "HWGRADE": "1",
    }


class _OutputDrain(threading.Thread):
    """Reads the child's stdout/stderr, keeping only the first ``keep`` bytes (a 100 MB print costs nothing)."""

    def __init__(self, stream: Any, keep: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.keep = stream, keep
        self.head = bytearray()
        self.total = 0

    def run(self) -> None:
        while True:
            chunk = self.stream.read(65536)
            if not chunk:
                return
            self.total += len(chunk)
            if len(self.head) < self.keep:
                self.head.extend(chunk[: self.keep - len(self.head)])


def peak_rss(pid: int | str) -> int:
    """Peak resident memory (VmHWM) of a live process in bytes, 0 where /proc cannot tell.

    Unlike ``ru_maxrss``, VmHWM starts afresh at ``exec``: on Linux ``ru_maxrss`` carries over the peak of
    the process that forked, which makes a small grader started from a large one look large.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


MAX_DEPTH = 32
RECORD_KEYS = ("kind", "shape", "dtype", "data", "text", "sha256")
"""What an encoded value reported by a sandbox may hold (hwcheck.encode writes arrays as base64 ``data``)."""


GRADER_ERROR_KINDS = frozenset({"Timeout", "Crash", "NotRun", "NoValues", "AnswerUnreadable"})
"""Error types whose message the grader writes itself and shows as it is (scoring); never taken from a report."""


def sandbox_report(report: Dict[str, Any]) -> Dict[str, Any]:
    """Only what scoring reads of a sandbox's report, bounded: a report is the student's, so nothing else in it
    (extra keys, number lists that inflate in memory, endless texts) is kept."""
    kept: Dict[str, Any] = {}
    values = report.get("values")
    if isinstance(values, dict):
        kept["values"] = {str(key)[:200]: {k: v for k, v in value.items() if k in RECORD_KEYS}
                          for key, value in list(values.items())[:5000] if isinstance(value, dict)}
    kernels = report.get("kernels")
    if isinstance(kernels, list):
        kept["kernels"] = [str(name)[:60] for name in kernels[:10]]
    error = report.get("error")
    if isinstance(error, dict):
        kind = str(error.get("type", "Error"))[:60]
        if kind in GRADER_ERROR_KINDS:  # the grader's own words are the grader's: a report cannot borrow them
            kind = "ReportedError"
        kept["error"] = {"type": kind, "message": str(error.get("message", ""))[:2000]}
    return kept


def clean(value: Any, depth: int = 0) -> Any:
    """A child's JSON made safe to keep and to write again: text that is not valid Unicode (lone surrogates,
    which JSON escapes allow) is repaired, and nesting deeper than any real report is cut off."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {clean(key, depth + 1): clean(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item, depth + 1) for item in value]
    return value


class SpaceWatchdog:
    """Notices a sandboxed run taking more than its share of the machine: the shared temporary space (disk,
    inodes, tmpfs memory) or, all its processes together, memory.

    Compares ``statvfs`` of each shared temporary folder with what it was when the child started, and adds up
    the resident memory of the run's processes (the sandbox account's, or the child's session's), a few times a
    second (cheap). Only sandboxed children are watched.
    """

    def __init__(self, active: bool, uid: Optional[int] = None, folders: Sequence[str] = TEMP_FOLDERS,
                 every: float = 0.2, session: Optional[int] = None, max_rss: Optional[int] = None) -> None:
        self.sandboxed = uid is not None
        self.uid = os.getuid() if uid is None else uid
        self.session = session
        self.max_rss = max_rss if active else None
        self.every = every
        self.next_check = 0.0
        self.start: Dict[str, Any] = {}
        for folder in folders if active else ():
            try:
                self.start[folder] = os.statvfs(folder)
            except OSError:
                continue

    def resident_bytes(self) -> int:
        """Resident memory of every process of the run (by account when sandboxed, else by session)."""
        page = os.sysconf("SC_PAGE_SIZE")
        total = 0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if self.sandboxed:
                    if os.stat(f"/proc/{name}").st_uid != self.uid:
                        continue
                elif self.session is None or os.getsid(int(name)) != self.session:
                    continue
                with open(f"/proc/{name}/statm", encoding="ascii") as handle:
                    total += int(handle.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
        return total

    def problem(self) -> str:
        now = time.monotonic()
        if (not self.start and self.max_rss is None) or now < self.next_check:
            return ""
        self.next_check = now + self.every
        if self.max_rss is not None and self.resident_bytes() > self.max_rss:
            return f"used more memory than a notebook may ({self.max_rss // 1024**2} MB, all its processes together)"
        for folder, before in self.start.items():
            try:
                stats = os.statvfs(folder)
            except OSError:
                continue
            used = (before.f_bavail - stats.f_bavail) * stats.f_frsize
            inodes = before.f_favail - stats.f_favail
            if used > MAX_TEMP_GROWTH_BYTES or inodes > MAX_TEMP_GROWTH_INODES or \
                    stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
                # the folder is shared (with parallel gradings, too): stop this child only if it is the one filling it
                owned_bytes, owned_files = owned_by(self.uid, folder)
                if owned_bytes > MAX_TEMP_GROWTH_BYTES // 2 or owned_files > MAX_TEMP_GROWTH_INODES // 2:
                    return f"filled the shared temporary space ({folder})"
                self.start[folder] = stats  # someone else's files: measure this child's growth from here
        return ""


def iter_tree(folder: str, limit: int = 50_000) -> Iterator[Tuple[str, os.stat_result]]:
    """``(path, lstat)`` of everything below ``folder``, at most ``limit`` entries, without recursion (a tree
    thousands of levels deep is just long) and without following links."""
    stack, seen = [folder], 0
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit:
                return
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield entry.path, info
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)


def remove_tree(path: str) -> None:
    """Remove a file or a whole folder tree, however deep (``shutil.rmtree`` recurses and fails on a tree a
    student made thousands of levels deep); never follows links; never raises."""
    try:
        subprocess.run(["rm", "-rf", "--", path], check=False, timeout=120, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        pass
    if os.path.lexists(path):
        try:
            shutil.rmtree(path, ignore_errors=True)
        except RecursionError:
            pass


def owned_by(uid: int, folder: str, limit: int = 50_000) -> Tuple[int, int]:
    """``(bytes, files)`` that ``uid`` owns in ``folder`` (walked without following links, at most ``limit``)."""
    total = files = 0
    for _, info in iter_tree(folder, limit):
        if info.st_uid == uid:
            total += info.st_blocks * 512
            files += 1
    return total, files


class _Child:
    """One sandboxed child process and its event pipe."""

    def __init__(self, job: ProbeJob, workdir: Path, runtime_dir: Path, skip_cells: Set[int], limits: Limits,
                 user: Optional[SandboxUser], python: str, fork_server: bool = True) -> None:
        read_fd, write_fd = os.pipe()
        env = _child_env(workdir, job.env)
        sandboxed = job.mode == "sandbox"
        readable = readable_folders(python, [workdir, runtime_dir]) if sandboxed else None
        script = str(runtime_dir / CHILD_SCRIPT.name)
        server = forkserver.server_for(python, job.preload, _server_env) if fork_server else None
        self.process: Union[ForkedChild, subprocess.Popen, None] = None
        if server is not None:
            try:
                self.process = _forked_child(server, write_fd)
            except ForkServerError:
                self.process = None  # a fresh Python instead
        if self.process is None:
            env["HWGRADE_EVENTS_FD"] = str(write_fd)
            self.process = subprocess.Popen(
                [python, "-I", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=str(workdir),
                env=env,
                pass_fds=(write_fd,),
                preexec_fn=_limit_child(limits, user, offline=sandboxed, readable=readable),
            )
        else:  # what a fresh Python gets from Popen and its preexec_fn, a forked child reads first (forkserver)
            self.send({"cwd": str(workdir), "env": {**env, "HWGRADE_EVENTS_FD": str(forkserver.EVENTS_FD)},
                       "limits": dataclasses.asdict(limits), "offline": sandboxed, "readable": readable,
                       "user": dataclasses.asdict(user) if user is not None else None, "script": script})
        os.close(write_fd)
        self.events = os.fdopen(read_fd, "rb", buffering=0)
        self.buffer = b""
        self.checks = job.checks
        self.drain = _OutputDrain(self.process.stdout, limits.output_bytes_kept)
        self.drain.start()
        self.peak_rss = 0
        self.bytes_read = 0
        self.events_read = 0
        self.watchdog = SpaceWatchdog(job.mode == "sandbox", user.uid if user is not None else None,
                                      session=self.process.pid, max_rss=limits.total_rss_bytes)
        self.stop_reason = ""
        first = {
            "mode": job.mode,
            "notebook": str(job.notebook),
            "runtime_dir": str(runtime_dir),
            "skip_ids": list(job.skip_ids),
            "skip_cells": sorted(skip_cells),
            "skip_tag": job.skip_tag,
            "submitted": dict(job.submitted),
            "preload": list(job.preload),
        }
        self.send(first)

    def send(self, message: Dict[str, Any], seconds: float = 10.0) -> None:
        """Write one line to the child's stdin without ever blocking the grader: a child that stops reading
        (the pipe holds 64 kB) only gets part of it and then times out like any child that never answers."""
        assert self.process.stdin is not None
        data = memoryview((json.dumps(message) + "\n").encode("utf-8"))
        descriptor = self.process.stdin.fileno()
        os.set_blocking(descriptor, False)
        deadline = time.monotonic() + seconds
        while data and time.monotonic() < deadline:
            try:
                _, writable, _ = select.select([], [descriptor], [], 0.25)
                if writable:
                    data = data[os.write(descriptor, data):]
            except BlockingIOError:
                continue
            except OSError:  # the child has gone (BrokenPipeError) or closed its stdin
                return

    def next_event(self, deadline: float) -> Optional[Dict[str, Any]]:
        """The next event, ``None`` on timeout; raises ``EOFError`` when the child has gone (or has to go:
        too much data, or the shared temporary space is filling up; ``stop_reason`` then says why)."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.events], [], [], min(remaining, 0.25))
            self.peak_rss = max(self.peak_rss, peak_rss(self.process.pid))
            problem = self.watchdog.problem()
            if problem:
                self.stop_reason = problem
                raise EOFError
            if not ready:
                continue
            chunk = self.events.read(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk
            self.bytes_read += len(chunk)
            if len(self.buffer) > MAX_EVENT_BYTES or self.bytes_read > MAX_CHILD_BYTES:
                self.stop_reason = "sent more data to the grader than any notebook needs"
                raise EOFError
        self.events_read += 1
        if self.events_read > MAX_EVENTS:
            self.stop_reason = "sent more messages to the grader than any notebook needs"
            raise EOFError
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            event = clean(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"event": "garbage"}
        return event if isinstance(event, dict) else {"event": "garbage"}

    def stop(self) -> float:
        """Kill the whole process group; return the child's CPU seconds."""
        forked = isinstance(self.process, ForkedChild)
        # the pid is the child's until it is reaped (by this process, or by the fork server when asked); a forked
        # child killed before it called setsid() has no process group yet: kill it by its pid too
        for kill in (os.killpg, os.kill) if forked else (os.killpg,):
            try:
                kill(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if forked:
            cpu = self.process.wait()
            self.process.stdin.close()
        else:
            try:
                _, _, usage = os.wait4(self.process.pid, 0)
                cpu = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                cpu = 0.0
        self.drain.join(timeout=2)
        self.events.close()
        return cpu


def _server_env() -> Dict[str, str]:
    """A fork server's environment: a child's (:func:`_child_env`) whose folders are ``/proc/self/cwd``, which is
    the server's own folder (its working directory) while it imports, and each forked child's working folder
    afterwards. Whatever a library works out from them and keeps (dill's temporary folder, matplotlib's font
    folders) then names the child's own folder, as in a fresh Python."""
    return _child_env(Path("/proc/self/cwd"), {})


def _forked_child(server: forkserver.ForkServer, events_fd: int) -> ForkedChild:
    """A child forked by ``server`` with fresh stdin and stdout pipes; it waits for its set-up line on stdin."""
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    try:
        pid = server.fork((stdin_read, stdout_write, events_fd))
    except BaseException:
        os.close(stdin_write)
        os.close(stdout_read)
        raise
    finally:
        os.close(stdin_read)
        os.close(stdout_write)
    return ForkedChild(pid, os.fdopen(stdin_write, "wb"), os.fdopen(stdout_read, "rb"), server)


def run_notebook(job: ProbeJob, workdir: Path, runtime_dir: Path, *, limits: Limits = Limits(),
                 user: Optional[SandboxUser] = None, python: str = sys.executable,
                 listener: Optional[ReportListener] = None,
                 between_children: Optional[Callable[[], None]] = None, fork_server: bool = True) -> NotebookRun:
    """Run ``job.notebook`` and then ``job.checks`` in children; never raises for anything the notebook does.

    ``listener(name, report, seconds)`` hears each requested check as it ends; ``between_children()`` runs
    after a child was stopped and before the next one starts (the grader sweeps the sandbox account there).
    Children are forked from this process's :mod:`.forkserver` unless ``fork_server`` is false (or it cannot
    start): then each is a fresh Python.
    """
    run = NotebookRun(listener=listener)
    started = time.monotonic()
    budget_end = started + limits.notebook_seconds
    remaining = list(job.checks)
    completed: Dict[str, bool] = {}  # check -> ran to the end: replayed (silently) by a restarted child
    skip_cells: Set[int] = set()
    attempts = 0
    while True:
        attempts += 1
        child = _Child(job, workdir, runtime_dir, skip_cells, limits, user, python, fork_server)
        run.children += 1
        finished = _drive(child, run, job, remaining, completed, skip_cells, limits, budget_end)
        run.child_cpu_seconds += child.stop()
        run.child_peak_rss_bytes = max(run.child_peak_rss_bytes, child.peak_rss)
        if not run.output_head:
            run.output_head = child.drain.head.decode("utf-8", "replace")
        run.output_bytes += child.drain.total
        if finished or not remaining:
            break
        if between_children is not None:
            between_children()
        if time.monotonic() >= budget_end:
            run.incident("the notebook used up its time budget")
            break
        if attempts > limits.max_restarts:
            run.incident("the notebook stopped the grading process too many times")
            break
    for check in remaining:
        if check.requested and check.grade_id not in run.reports:
            reason = run.events[-1] if run.events else "the grading process stopped"
            run.report(check.grade_id, {"error": {"type": "NotRun", "message": f"not run: {reason}"}}, 0.0)
    run.wall_seconds = time.monotonic() - started
    return run


def _replays(checks: Sequence[CheckRun], completed: Dict[str, bool]) -> List[Dict[str, Any]]:
    """What a restarted child re-runs before the remaining checks, in the original order: the checks that
    ran to the end in full, and the definitions of those that hung or crashed."""
    return [{"name": c.grade_id, "source": c.source, "defs_only": not completed[c.grade_id]}
            for c in checks if c.grade_id in completed]


def _finish_check(run: NotebookRun, remaining: List[CheckRun], completed: Dict[str, bool], check: CheckRun,
                  ran_to_end: bool) -> None:
    completed[check.grade_id] = ran_to_end
    remaining[:] = [c for c in remaining if c.grade_id != check.grade_id]


def _drive(child: _Child, run: NotebookRun, job: ProbeJob, remaining: List[CheckRun], completed: Dict[str, bool],
           skip_cells: Set[int], limits: Limits, budget_end: float) -> bool:
    """Follow one child's events. Returns True when it finished normally; on a crash or timeout it records
    the culprit (a cell to skip next time, or a failed check) and returns False.

    Events are believed only where they could be true: cell indices within the notebook, check events only
    after the checks were sent and only for the check that is running, one report per check.
    """
    current_cell: Optional[int] = None
    current: Optional[CheckRun] = None
    checks_sent = False
    check_started = 0.0
    deadline = min(time.monotonic() + limits.cell_seconds, budget_end)
    while True:
        try:
            event = child.next_event(deadline)
        except EOFError:
            event = {"event": "eof"}
        if event is None or event.get("event") == "eof":
            timed_out = event is None
            what = "took too long" if timed_out else (child.stop_reason or "ended the grading process")
            if current is not None:
                if current.requested and current.grade_id not in run.reports:
                    run.report(current.grade_id, {"error": {"type": "Timeout" if timed_out else "Crash",
                                                            "message": f"the check {what}"}},
                               time.monotonic() - check_started)
                _finish_check(run, remaining, completed, current, False)
                run.incident(f"check {current.grade_id} {what}")
            elif current_cell is not None:
                skip_cells.add(current_cell)
                run.cells[current_cell] = f"this cell {what}; it was skipped"
                run.incident(f"cell {current_cell} {what}")
            else:
                run.incident(f"the notebook {what}")
                for check in remaining:
                    if check.requested and check.grade_id not in run.reports:
                        run.report(check.grade_id, {"error": {"type": "Crash", "message": f"the notebook {what}"}},
                                   0.0)
                remaining.clear()
            return False
        kind = event.get("event")
        now = time.monotonic()
        if kind == "cell_start" and not checks_sent:
            index = event.get("index")
            current_cell = index if isinstance(index, int) and 0 <= index < job.code_cells else None
            deadline = min(now + limits.cell_seconds, budget_end)
        elif kind == "cell" and not checks_sent:
            index = event.get("index")
            if isinstance(index, int) and 0 <= index < job.code_cells:
                run.cells[index] = "ok" if event.get("status") == "ok" else str(event.get("error", "error"))[:500]
            current_cell = None
        elif kind == "notebook_error" and not checks_sent:
            run.incident(f"the notebook could not be read: {str(event.get('error'))[:300]}")
        elif kind == "cells_done" and not checks_sent:
            current_cell = None
            checks_sent = True
            child.send({"checks": [{"name": c.grade_id, "source": c.source, "seed": c.seed, "requested": c.requested}
                                   for c in remaining],
                        "replay": _replays(job.checks, completed)})
            deadline = min(now + limits.check_seconds, budget_end)
        elif kind == "replay" and checks_sent:
            deadline = min(now + limits.check_seconds, budget_end)
        elif kind == "check_start" and checks_sent:
            name = event.get("name")
            current = next((c for c in remaining if c.grade_id == name), None)
            check_started = now
            deadline = min(now + limits.check_seconds, budget_end)
        elif kind == "check" and checks_sent and current is not None:
            report = event.get("report")
            if (event.get("name") == current.grade_id and current.requested and isinstance(report, dict)
                    and current.grade_id not in run.reports):
                run.report(current.grade_id, sandbox_report(report) if job.mode == "sandbox" else report,
                           now - check_started)
        elif kind == "check_end" and checks_sent and current is not None and event.get("name") == current.grade_id:
            if current.requested and current.grade_id not in run.reports:
                run.report(current.grade_id, {"error": {"type": "NoValues", "message": "the check produced no values"}},
                           now - check_started)
            _finish_check(run, remaining, completed, current, True)
            current = None
        elif kind == "done" and checks_sent:
            return True
