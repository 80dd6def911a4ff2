"""The fork server (assignkit.grading.forkserver): a forked child is confined exactly like a fresh Python, inherits
nothing of another run, and a server that dies or is sent nonsense costs time, never a result.

Root only where an account is needed (CI runs as root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import grading_fixtures
import pytest
from grading_fixtures import NEEDS_ROOT

from assignkit.grading import forkserver, runner
from assignkit.grading.runner import CheckRun, Limits, ProbeJob, SandboxUser, run_notebook

ROOT = Path(__file__).resolve().parents[1]
sandbox_user = grading_fixtures.sandbox_user  # this worker's account, removed at the end
PRELOAD = ("IPython.display", "matplotlib.pyplot", "numpy", "numpy.random", "torch")  # numpy.random: its global
# generator then exists in the server, and each child must still draw differently

PROBE = r"""
import json, os, resource, socket, sys, threading
import numpy
report = {"uid": os.getuid(), "gid": os.getgid(), "session leader": os.getsid(0) == os.getpid()}

def attempt(name, action):
    try:
        action()
        report[name] = "allowed"
    except BaseException as error:
        report[name] = type(error).__name__

def fork():
    if os.fork() == 0:
        os._exit(0)

attempt("read the checkout", lambda: open(CHECKOUT_FILE, "rb").read(1))
attempt("internet socket", lambda: socket.socket(socket.AF_INET))
attempt("start a thread", lambda: threading.Thread(target=print).start())
attempt("fork", fork)
attempt("signal the parent", lambda: os.kill(os.getppid(), 0))
attempt("read the parent's memory", lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(1))
attempt("read the parent's environment", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read(1))
report["descriptors"] = sorted(os.readlink(f"/proc/self/fd/{fd}").split(":")[0].replace(os.getcwd(), "WORK")
                               for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}"))
report["grader modules"] = sorted(name for name in sys.modules if name.startswith("assignkit"))
import ctypes, tempfile, matplotlib, matplotlib.style, IPython.paths, dill
report["dill sees IPython"] = bool(dill._dill.IS_IPYTHON)
report["style folder"] = [os.path.realpath(path).replace(os.getcwd(), "WORK")
                          for path in matplotlib.style.USER_LIBRARY_PATHS]
def trace_me():
    if ctypes.CDLL(None, use_errno=True).ptrace(0, 0, None, None) != 0:  # PTRACE_TRACEME
        raise PermissionError(ctypes.get_errno())
attempt("make the parent its tracer", trace_me)
import dill.session
report["folders"] = [os.path.realpath(path).replace(os.getcwd(), "WORK") for path in (
    tempfile.gettempdir(), matplotlib.get_configdir(), matplotlib.get_cachedir(), os.path.expanduser("~"),
    IPython.paths.get_ipython_dir(), dill.session.TEMPDIR)]
report["dumpable"] = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
attempt("read its own /proc/self/environ", lambda: open("/proc/self/environ", "rb").read(1))
report["limits"] = [resource.getrlimit(getattr(resource, name)) for name in
                    ("RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE")]
status = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in open("/proc/self/status")
          if line.startswith(("VmData:", "VmSize:"))}
report["room"] = {"data": resource.getrlimit(resource.RLIMIT_DATA)[0] - status["VmData"],
                  "address space": resource.getrlimit(resource.RLIMIT_AS)[0] - status["VmSize"]}
report["environment"] = {key: value.replace(os.getcwd(), "WORK") for key, value in os.environ.items()
                        if key != "HWGRADE_EVENTS_FD"}  # a descriptor number: 3 when forked
report["path"] = sys.path[:1] == [RUNTIME]
report["argv"] = sys.argv
report["no new privileges"] = open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0]
report["seccomp"] = open("/proc/self/status").read().split("Seccomp:")[1].split()[0]
report["parent"] = os.getppid()
report["numpy draw"] = float(numpy.random.rand())
print("REPORT" + json.dumps(report))
"""


def notebook(*sources: str) -> Dict[str, Any]:
    return {"cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
                      for source in sources], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def runtime_files(folder: Path) -> None:
    """What a child needs beside the notebook: child.py and the homework's hwcheck.py."""
    shutil.copy(runner.CHILD_SCRIPT, folder / "child.py")
    shutil.copy(ROOT / "source" / "hw_rnn" / "hwcheck.py", folder / "hwcheck.py")


@pytest.fixture
def folders(sandbox_user: SandboxUser) -> Iterator[Tuple[Path, Path, SandboxUser]]:
    """A working folder the account may write, a runtime folder holding child.py and hwcheck.py, and the account."""
    work = Path(tempfile.mkdtemp(prefix="hwfork-work-"))
    runtime = Path(tempfile.mkdtemp(prefix="hwfork-runtime-"))
    try:
        os.chmod(work, 0o777)
        os.chmod(runtime, 0o755)
        runtime_files(runtime)
        for path in runtime.iterdir():
            os.chmod(path, 0o644)
        yield work, runtime, sandbox_user
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


def run_probe(work: Path, runtime: Path, user: Any, fork_server: bool) -> Tuple[Dict[str, Any], Any]:
    source = PROBE.replace("CHECKOUT_FILE", repr(str(ROOT / "README.md"))).replace("RUNTIME", repr(str(runtime)))
    (work / "probe.ipynb").write_text(json.dumps(notebook(source)))
    job = ProbeJob(work / "probe.ipynb", [CheckRun("later", "print('the check ran')")], preload=PRELOAD)
    run = run_notebook(job, work, runtime, user=user, fork_server=fork_server)
    assert run.cells == {0: "ok"}, (run.cells, run.events, run.output_head)
    found = re.search(r"^REPORT(.*)$", run.output_head, re.MULTILINE)
    assert found, run.output_head
    return json.loads(found.group(1)), run


@NEEDS_ROOT
def test_a_forked_child_is_confined_exactly_like_a_fresh_python(folders: Tuple[Path, Path, Any]) -> None:
    work, runtime, user = folders
    fresh, fresh_run = run_probe(work, runtime, user, fork_server=False)
    forked, forked_run = run_probe(work, runtime, user, fork_server=True)
    again, _ = run_probe(work, runtime, user, fork_server=True)
    server = forkserver.server_for(sys.executable, PRELOAD, runner._server_env)
    assert server is not None
    assert fresh["parent"] == os.getpid() and forked["parent"] == again["parent"] == server.process.pid
    assert forked["numpy draw"] != again["numpy draw"], "numpy's global generator must be seeded afresh per child"
    assert fresh["uid"] == user.uid and fresh["read the checkout"] == "PermissionError", fresh
    assert fresh["folders"] == ["WORK", "WORK/.matplotlib", "WORK/.matplotlib", "WORK", "WORK/.ipython", "WORK"], fresh
    assert fresh["dumpable"] == 1 and fresh["read its own /proc/self/environ"] == "allowed"
    for name in ("internet socket", "fork", "signal the parent", "read the parent's memory",
                 "read the parent's environment", "make the parent its tracer"):
        assert fresh[name] == "PermissionError", (name, fresh)
    assert fresh["start a thread"] == "RuntimeError" and fresh["grader modules"] == []
    assert fresh["dill sees IPython"] and fresh["style folder"] == ["WORK/.matplotlib/stylelib"]
    for report in (forked, again):  # the student's memory room is at least a fresh child's (within 8 MiB)
        for kind, room in report.pop("room").items():
            assert 0 <= room - fresh["room"][kind] <= forkserver.FORKED_HEADROOM_BYTES, (kind, room, fresh["room"])
    del fresh["room"]
    for report in (fresh, forked, again):
        del report["parent"], report["numpy draw"]
    assert forked == fresh and again == fresh
    assert "the check ran" in forked_run.output_head and "the check ran" in fresh_run.output_head
    assert forked_run.child_cpu_seconds < fresh_run.child_cpu_seconds  # the imports were the server's


def server_memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any writable mapping of process ``pid`` holds ``needle`` (read as root)."""
    with open(f"/proc/{pid}/maps", encoding="ascii") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            span, permissions = line.split()[:2]
            if not permissions.startswith("rw"):  # where received data would be: heap, stacks, anonymous memory
                continue
            start, end = (int(part, 16) for part in span.split("-"))
            try:
                memory.seek(start)
                if needle in memory.read(end - start):
                    return True
            except (OSError, OverflowError, ValueError):
                continue
    return False


@NEEDS_ROOT
def test_the_server_holds_nothing_of_a_run(folders: Tuple[Path, Path, Any]) -> None:
    """What a forked child could inherit: the server's memory, descriptors and shared mappings. After a sandboxed
    and a referee run whose environment, folder and checks hold markers, none of them is in the server's memory;
    it has no descriptor but its standard streams and its socket, and no mapping another process could write."""
    work, runtime, user = folders
    marker = f"MARKER-{os.getpid()}-{time.time_ns()}"
    (work / "marked.ipynb").write_text(json.dumps(notebook("print('cell ran')")))
    job = ProbeJob(work / "marked.ipynb", [CheckRun("marked", f"print({(marker + '-check')!r})", seed=271828)],
                   env={"HW_MARKER": marker + "-env"}, preload=PRELOAD)
    run = run_notebook(job, work, runtime, user=user)
    assert run.cells == {0: "ok"} and marker + "-check" in run.output_head, run.output_head
    referee = ProbeJob(work / "marked.ipynb", [CheckRun("marked", f"print({(marker + '-expected')!r})", seed=314159)],
                       env={"HW_MARKER": marker + "-referee"}, mode="referee", preload=PRELOAD)
    run = run_notebook(referee, work, runtime)  # the same server forks the referee's children
    assert run.cells == {0: "ok"} and marker + "-expected" in run.output_head, run.output_head
    server = forkserver.server_for(sys.executable, PRELOAD, runner._server_env)
    assert server is not None
    pid = server.process.pid
    assert server_memory_holds(pid, b"numpy")  # the scan reads the server's memory at all
    for needle in (marker.encode(), str(work).encode()):
        assert not server_memory_holds(pid, needle), needle
    descriptors = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    log = str(Path(server.home) / "server.log")
    assert len(descriptors) == 4 and descriptors[:3] == ["/dev/null", "/dev/null", log], descriptors
    assert descriptors[3].startswith("socket:"), descriptors
    shared_writable = [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                       if line.split()[1][1] == "w" and line.split()[1][3] == "s"]
    assert shared_writable == []
    assert os.stat(server.home).st_mode & 0o777 == 0o700


@NEEDS_ROOT
def test_a_server_that_dies_mid_run_costs_only_the_running_cell(folders: Tuple[Path, Path, Any]) -> None:
    """The server is killed while a cell runs: the child dies with it (PR_SET_PDEATHSIG), the grader restarts the
    notebook without that cell on a new server, and the later cell and the check still run."""
    work, runtime, user = folders
    (work / "slow.ipynb").write_text(json.dumps(notebook("import time\ntime.sleep(30)", "print('second cell')")))
    job = ProbeJob(work / "slow.ipynb", [CheckRun("after", "print('check after')")], preload=PRELOAD)
    server = forkserver.server_for(sys.executable, PRELOAD, runner._server_env)
    assert server is not None
    first_server = server.process.pid
    victims: List[int] = []

    def kill_the_server() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not victims:
            children = [int(p) for p in os.listdir("/proc") if p.isdigit() and parent_of(int(p)) == first_server]
            if children:
                time.sleep(1.0)  # inside the sleeping cell
                victims.extend(children)
                os.kill(first_server, signal.SIGKILL)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_server)
    killer.start()
    started = time.monotonic()
    run = run_notebook(job, work, runtime, user=user, limits=Limits(cell_seconds=60))
    killer.join()
    assert victims and time.monotonic() - started < 25
    assert not [pid for pid in victims if alive(pid)]
    assert run.cells[1] == "ok" and run.cells[0] != "ok" and run.children == 2, (run.cells, run.events)
    assert run.reports["after"]["error"]["type"] == "NoValues"  # the check ran to its end (it reports nothing)
    replacement = forkserver.server_for(sys.executable, PRELOAD, runner._server_env)
    assert replacement is not None and replacement.process.pid != first_server


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def test_a_request_that_is_not_fork_is_refused_and_the_server_goes_on(tmp_path: Path) -> None:
    server = forkserver.server_for(sys.executable, (), runner._server_env)
    assert server is not None
    read_end, write_end = os.pipe()
    try:
        with server.lock:
            socket.send_fds(server.socket, [b"exec /bin/sh"], [read_end, write_end, write_end])
            reply = server._receive(10)
        assert reply is not None and "error" in reply
        with server.lock:
            server.socket.send(b"fork")  # no descriptors
            reply = server._receive(10)
        assert reply is not None and "error" in reply
    finally:
        os.close(read_end)
        os.close(write_end)
    assert server.alive()
    (tmp_path / "ok.ipynb").write_text(json.dumps(notebook("print('still serving')")))
    runtime_files(tmp_path)
    run = run_notebook(ProbeJob(tmp_path / "ok.ipynb", [], mode="referee"), tmp_path, tmp_path)
    assert run.cells == {0: "ok"} and "still serving" in run.output_head


GRADER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from assignkit.grading.runner import ProbeJob, run_notebook
work = Path({work!r})
run_notebook(ProbeJob(work / "sleep.ipynb", [], mode="referee"), work, work)
"""


def test_a_killed_grader_takes_its_server_and_children_with_it(tmp_path: Path) -> None:
    runtime_files(tmp_path)
    (tmp_path / "sleep.ipynb").write_text(json.dumps(notebook("import time\nprint('sleeping', flush=True)\n"
                                                              "time.sleep(120)")))
    grader = subprocess.Popen([sys.executable, "-c", GRADER.format(root=str(ROOT), work=str(tmp_path))])
    try:
        deadline = time.monotonic() + 60
        server = child = 0
        while time.monotonic() < deadline and not child:
            servers = [int(p) for p in os.listdir("/proc") if p.isdigit() and parent_of(int(p)) == grader.pid]
            server = servers[0] if servers else 0
            children = [int(p) for p in os.listdir("/proc") if p.isdigit() and server and parent_of(int(p)) == server]
            child = children[0] if children else 0
            time.sleep(0.2)
        assert server and child, "no forked child appeared"
        grader.kill()
        grader.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (alive(server) or alive(child)):
            time.sleep(0.1)
        assert not alive(server) and not alive(child)
    finally:
        if grader.poll() is None:
            grader.kill()


def test_a_child_that_makes_the_server_its_tracer_is_ended_not_reported_as_gone(tmp_path: Path) -> None:
    """A referee child is not filtered: one that calls PTRACE_TRACEME and stops itself is seen by the server's
    wait as stopped. The server must kill it (never report a stopped child as exited, which would let the grader
    skip the kill), so the notebook goes on at once without that cell."""
    runtime_files(tmp_path)
    trace = ("import ctypes, os, signal\nassert ctypes.CDLL(None).ptrace(0, 0, None, None) == 0\n"
             "os.kill(os.getpid(), signal.SIGSTOP)\nprint('not stopped')")
    (tmp_path / "trace.ipynb").write_text(json.dumps(notebook(trace, "print('after the tracer')")))
    started = time.monotonic()
    job = ProbeJob(tmp_path / "trace.ipynb", [CheckRun("after", "print('check after')")], mode="referee")
    run = run_notebook(job, tmp_path, tmp_path, limits=Limits(cell_seconds=60))
    assert time.monotonic() - started < 30, "the stopped child was left to the cell's time-out"
    assert run.cells[0] != "ok" and run.cells[1] == "ok" and run.children == 2, (run.cells, run.events)
    server = forkserver.server_for(sys.executable, (), runner._server_env)
    assert server is not None and server.exits == set()


def test_a_server_that_does_not_answer_in_time_is_never_asked_again() -> None:
    """Its late answer would otherwise be read as the answer to the next request (a child mistaken for another)."""
    server = forkserver.server_for(sys.executable, (), runner._server_env)
    assert server is not None
    read_end, write_end = os.pipe()
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(forkserver.ForkServerError, match="did not answer"):
            server.fork((read_end, write_end, write_end), seconds=1.0)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        os.close(write_end)
        os.close(read_end)
    assert not server.alive()
    replacement = forkserver.server_for(sys.executable, (), runner._server_env)
    assert replacement is not None and replacement is not server and replacement.alive()


def test_a_childs_pid_stays_taken_until_the_grader_releases_it(tmp_path: Path) -> None:
    """The grader kills a child by its pid; the server reports an ended child but leaves it a zombie until the
    grader asks for it to be reaped, so that pid cannot meanwhile belong to another process."""
    runtime_files(tmp_path)
    server = forkserver.server_for(sys.executable, (), runner._server_env)
    assert server is not None
    events = os.open(os.devnull, os.O_WRONLY)
    try:
        child = runner._forked_child(server, events)
    finally:
        os.close(events)
    child.stdin.close()  # no set-up line: the child ends at once
    deadline = time.monotonic() + 20
    with server.lock:
        while child.pid not in server.exits and time.monotonic() < deadline:
            server._receive(0.5)
    assert child.pid in server.exits
    time.sleep(0.3)
    assert Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    child.wait()
    child.stdout.close()
    assert not Path(f"/proc/{child.pid}").exists() and server.exits == set()


def test_matplotlib_inline_and_a_user_style_work_in_a_forked_child(folders: Tuple[Path, Path, Any]) -> None:
    """Honest habits found by red-team round eleven: `%matplotlib inline` (the child's IPython shell has no event
    loop to enable) and a style saved in matplotlib's user style folder, which a forked child must find in its own
    folder."""
    work, runtime, user = folders
    cell = ("%matplotlib inline\nimport os\nimport matplotlib, matplotlib.pyplot as plt\n"
            "folder = os.path.join(matplotlib.get_configdir(), 'stylelib')\nos.makedirs(folder, exist_ok=True)\n"
            "open(os.path.join(folder, 'hw.mplstyle'), 'w').write('lines.linewidth: 3\\n')\n"
            "plt.style.reload_library()\nplt.style.use('hw')\nassert matplotlib.rcParams['lines.linewidth'] == 3\n"
            "plt.plot([0, 1])\nprint('styled')")
    (work / "style.ipynb").write_text(json.dumps(notebook(cell)))
    for fork_server in (False, True):
        run = run_notebook(ProbeJob(work / "style.ipynb", [CheckRun("after", "pass")], preload=PRELOAD), work,
                           runtime, user=user, fork_server=fork_server)
        assert run.cells == {0: "ok"} and "styled" in run.output_head, (fork_server, run.cells, run.output_head)
        shutil.rmtree(work / ".matplotlib", ignore_errors=True)
