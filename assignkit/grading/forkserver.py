"""Start the grader's children by forking a Python that has already imported the notebooks' libraries.

A child (:mod:`.child`) used to spend about 2.5 CPU-seconds importing torch, numpy, matplotlib and IPython before
its first cell, and a grading starts at least two per notebook (the referee and the sandboxed child, more after a
crash). A fork server is one Python per grader process and interpreter that imports those libraries once and
then forks a child for each run; the child applies the same confinement a freshly started one did
(:func:`.runner._limit_child`: its own session, resource limits, the sandbox account, the seccomp filter,
Landlock, death with its parent) and runs ``child.py`` as ``__main__``.

What the server knows, and so what every forked child inherits: the libraries and its fixed environment
(:func:`.runner._server_env`, whose folders are ``/proc/self/cwd``: after the fork, the child's own working
folder). It never receives anything about a run. A request is the word
``fork`` and three pipe ends; the forked child, still privileged and before anything else runs, reads its
set-up (mode, working folder, environment, limits, account, readable folders) as the first line of its own
stdin, which only the grader writes, and checks, seeds and submitted files reach it through the same pipes as
before. So referee and sandboxed children share one server: neither inherits anything of the other.

Every child of one server shares its address layout, the referee's children included, and a student's code can
learn it. That is of no use to an attacker: the layout is drawn afresh for every grader process (on Gradescope,
every submission), and the only student bytes the referee reads, the submitted files, are fixed before it
exists. One server, not one per mode, also keeps memory where it was: a forked child's pages are the server's
until it writes them, while a second server would hold another ~250 MB beside the child (``make bench``:
summed PSS).

The server runs as the grader's user (root on Gradescope) beside the sandbox. The sandbox account cannot signal,
trace or read it (another uid; the child's seccomp filter), holds none of its descriptors (a forked child closes
them before it reads its set-up), and cannot make it do anything: it reads only the grader's socket. It dies
with the grader (``PR_SET_PDEATHSIG``) and its children die with it.

The preflight (:mod:`.startup`) still starts a fresh Python under the grader's limits, which is what proves the
libraries load within them. ``HWGRADER_FORKSERVER=0`` starts every child as a fresh Python (``make bench``
measures both).

Runs on Python 3.10; the server side imports only the standard library, the grading package and ``preload``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

FORKSERVER_VARIABLE = "HWGRADER_FORKSERVER"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 180.0
"""How long a server may take to import its libraries (a few seconds; a loaded machine, much more)."""
EVENTS_FD = 3
"""The descriptor a forked child writes its events to (``HWGRADE_EVENTS_FD``)."""
MAX_SETUP_BYTES = 1 << 20
FORKED_HEADROOM_BYTES = 8 << 20
"""Added to a forked child's data and address-space limits: it starts with the server's own heap (its loop and
the grading modules: 0.3–1.5 MB more data than a fresh child, measured), which must not come out of the
student's room."""
REAP_SECONDS = 0.02


class ForkServerError(RuntimeError):
    """The server could not be started, or stopped answering; the caller starts a fresh Python instead."""


def enabled(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether children are forked from a server (Linux, unless ``HWGRADER_FORKSERVER=0``)."""
    value = (os.environ if environ is None else environ).get(FORKSERVER_VARIABLE, "1")
    return sys.platform.startswith("linux") and value != "0"


@dataclass
class ForkedChild:
    """A child forked by a server: the parts of a ``subprocess.Popen`` the runner uses."""

    pid: int
    stdin: BinaryIO
    stdout: BinaryIO
    server: ForkServer

    def wait(self, seconds: float = 10.0) -> float:
        """Wait until the child has ended and the server has reaped it; its CPU seconds (0.0 if it cannot tell)."""
        return self.server.wait(self.pid, seconds)


class ForkServer:
    """The grader's end of one server process (see the module's docstring)."""

    def __init__(self, python: str, preload: Sequence[str], env: Mapping[str, str], home: str) -> None:
        from .runner import _parent_death_signal  # runner imports this module

        self.home = home
        self.broken = False
        self.lock = threading.Lock()
        self.exits: Set[int] = set()  # children the server reported as ended, not yet reaped
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.socket = ours
        log = open(os.path.join(home, "server.log"), "wb")
        try:
            self.process = subprocess.Popen(
                [python, "-I", __file__, str(PACKAGE_ROOT), str(theirs.fileno()), json.dumps(list(preload))],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=home, env=dict(env),
                pass_fds=(theirs.fileno(),), preexec_fn=_parent_death_signal())
        finally:
            theirs.close()
            log.close()
        try:
            message = self._receive(READY_SECONDS)
        except ForkServerError:
            message = None
        if not message or not message.get("ready"):
            self.close()
            raise ForkServerError(f"the fork server did not start: {message or self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return Path(self.home, "server.log").read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return not self.broken and self.socket.fileno() >= 0 and self.process.poll() is None

    def _receive(self, seconds: float) -> Optional[Dict[str, Any]]:
        """The server's next message, ``None`` after ``seconds``; raises :class:`ForkServerError` when it has gone."""
        ready, _, _ = select.select([self.socket], [], [], max(0.0, seconds))
        if not ready:
            return None
        try:
            data = self.socket.recv(1 << 16)
        except OSError as error:
            raise ForkServerError(f"the fork server's socket failed: {error}") from error
        if not data:
            raise ForkServerError("the fork server has stopped")
        message = json.loads(data.decode("utf-8"))
        if "exited" in message:
            self.exits.add(int(message["exited"]))
        return message

    def fork(self, descriptors: Tuple[int, int, int], seconds: float = 30.0) -> int:
        """Ask for a child that uses ``descriptors`` (its stdin, its stdout and stderr, its event pipe); its pid."""
        with self.lock:
            try:
                socket.send_fds(self.socket, [b"fork"], list(descriptors))
            except OSError as error:
                raise ForkServerError(f"the fork server's socket failed: {error}") from error
            deadline = time.monotonic() + seconds
            while True:
                message = self._receive(deadline - time.monotonic())
                if message is None:  # a late answer would be taken for the next request's: never ask again
                    self.broken = True
                    raise ForkServerError("the fork server did not answer")
                if "spawned" in message:
                    return int(message["spawned"])
                if "error" in message:
                    raise ForkServerError(str(message["error"])[:500])

    def wait(self, pid: int, seconds: float) -> float:
        """Wait until child ``pid`` has ended, then have it reaped (its pid is free only then); its CPU seconds."""
        with self.lock:
            deadline = time.monotonic() + seconds
            try:
                while pid not in self.exits and time.monotonic() < deadline:
                    self._receive(deadline - time.monotonic())
                if pid not in self.exits:
                    return 0.0
                self.exits.discard(pid)
                self.socket.send(f"reap {pid}".encode())
                while time.monotonic() < deadline + 5:
                    message = self._receive(deadline + 5 - time.monotonic())
                    if message is None:
                        break
                    if message.get("reaped") == pid:
                        return float(message.get("cpu", 0.0))
                    if "error" in message:
                        break
            except (ForkServerError, OSError):
                pass  # the server has gone, and its children with it (PR_SET_PDEATHSIG)
            return 0.0

    def close(self) -> None:
        """End the server (it kills what it still runs when its socket closes) and remove its folder."""
        if os.getpid() != self.owner:  # a copy inherited by a forked grader worker: not ours to stop
            os.close(self.socket.detach())
            return
        self.socket.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


_SERVERS: Dict[Tuple[int, str, Tuple[str, ...]], ForkServer] = {}
_FAILED: Dict[Tuple[int, str, Tuple[str, ...]], str] = {}
_REGISTRY_LOCK = threading.Lock()


def server_for(python: str, preload: Sequence[str], make_env: Callable[[], Dict[str, str]]) -> Optional[ForkServer]:
    """This process's server for ``python`` with ``preload`` imported, started on first use; ``None`` when
    disabled or when it cannot start (the caller then starts a fresh Python, as without a server)."""
    if not enabled():
        return None
    key = (os.getpid(), python, tuple(preload))
    with _REGISTRY_LOCK:
        for other in [k for k in _SERVERS if k[0] != key[0]]:  # inherited through a fork of the grader
            _SERVERS.pop(other).close()
        server = _SERVERS.get(key)
        if server is not None and server.alive():
            return server
        if server is not None:
            server.close()
        if key in _FAILED:
            return None
        home = tempfile.mkdtemp(prefix="hwforkserver-")
        try:
            server = ForkServer(python, preload, make_env(), home)  # home: its working directory
        except (ForkServerError, OSError) as error:
            _FAILED[key] = str(error)
            shutil.rmtree(home, ignore_errors=True)
            return None
        _SERVERS[key] = server
        return server


def failures() -> Dict[str, str]:
    """Why a server could not start, by interpreter (for the grading log)."""
    return {python: why for (_, python, _), why in _FAILED.items()}


def close_all() -> None:
    with _REGISTRY_LOCK:
        while _SERVERS:
            _SERVERS.popitem()[1].close()


import atexit  # noqa: E402  (registered after the registry it empties)

atexit.register(close_all)


# ---------------------------------------------------------------------------------------------------- server side


def _warm_up(preload: List[str]) -> None:
    """Import what the children would, then wait for the threads a library started while loading: a fork
    copies only the calling thread."""
    import builtins

    from assignkit.grading import child, runner  # noqa: F401  (runner: what a forked child confines itself with)

    # a fresh child has created its IPython shell, which sets builtins.__IPYTHON__, before it imports anything, and
    # libraries decide things at import from it (dill: whether to treat IPython's singletons and sources specially)
    builtins.__IPYTHON__ = True  # type: ignore[attr-defined]
    child.warm_up(preload)
    try:
        import IPython.core.interactiveshell  # noqa: F401  (child.make_shell)
    except Exception:
        pass
    deadline = time.monotonic() + 30
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if threading.active_count() != 1:
        raise RuntimeError(f"threads still running after the imports: {threading.enumerate()}")


def _read_setup() -> Dict[str, Any]:
    """The first line of stdin, read a byte at a time so that nothing after it is consumed."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk or len(data) > MAX_SETUP_BYTES:
            raise EOFError("no set-up line from the grader")
        data += chunk
    return json.loads(data.decode("utf-8"))


def _forget_the_servers_folders() -> None:
    """Drop what the libraries worked out from the server's environment while they loaded, so the child finds its
    own folders as a fresh Python would: the temporary folder (``TMPDIR``), matplotlib's configuration and cache
    folders (``MPLCONFIGDIR``), which cache their first answer, and its style folder, which resolved
    ``/proc/self/cwd`` to the server's folder. Nothing is created here (the child is still root)."""
    import tempfile

    tempfile.tempdir = None
    matplotlib = sys.modules.get("matplotlib")
    if matplotlib is not None:
        for name, label in (("get_configdir", "CONFIGDIR=%s"), ("get_cachedir", "CACHEDIR=%s")):
            function = getattr(matplotlib, name, None)
            original = getattr(function, "__wrapped__", None)
            if original is not None and hasattr(matplotlib, "_logged_cached"):
                setattr(matplotlib, name, matplotlib._logged_cached(label)(original))
        folder = os.environ.get("MPLCONFIGDIR")
        for module in (sys.modules.get("matplotlib.style"), sys.modules.get("matplotlib.style.core")):
            paths = getattr(module, "USER_LIBRARY_PATHS", None)
            if folder and isinstance(paths, list):  # the user's style folder, worked out (and resolved) at import
                paths[:] = [os.path.join(os.path.realpath(folder), "stylelib")]


def _dumpable_again() -> None:
    """After the switch to the account, Linux marks a process not dumpable, and only ``exec`` (which a fresh Python
    went through) marks it dumpable again; so its ``/proc/self`` entries (``environ``, ``io``, ``mem``) would belong
    to root. Mark it dumpable as ``exec`` would: it is the account's own process (core files stay off, RLIMIT_CORE)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def _become_child(server_pid: int, base_path: List[str]) -> None:
    """In the forked child, on descriptors 0–3 already: read the set-up, confine, run ``child.py`` as ``__main__``.
    Never returns."""
    code = 70
    try:
        setup = _read_setup()
        from dataclasses import replace

        from assignkit.grading.runner import Limits, SandboxUser, _limit_child

        user = SandboxUser(**setup["user"]) if setup.get("user") else None
        limits = Limits(**setup["limits"])
        limits = replace(limits, data_bytes=limits.data_bytes + FORKED_HEADROOM_BYTES,
                         address_space_bytes=limits.address_space_bytes + FORKED_HEADROOM_BYTES)
        confine = _limit_child(limits, user, offline=bool(setup.get("offline")), readable=setup.get("readable"),
                               parent=server_pid)
        os.chdir(setup["cwd"])
        os.environ.clear()
        os.environ.update(setup["env"])
        _forget_the_servers_folders()
        confine()
        _dumpable_again()
        for name in [name for name in sys.modules if name == "assignkit" or name.startswith("assignkit.")]:
            del sys.modules[name]
        if "numpy" in sys.modules:  # a fresh Python seeds numpy's global generator from the OS: so does this child
            sys.modules["numpy"].random.seed()
        script = setup["script"]
        sys.argv[:] = [script]
        sys.path[:] = [os.path.dirname(script), *base_path[1:]]
        del setup, confine
        import runpy

        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _fork(server: socket.socket, descriptors: List[int], base_path: List[str], die_with_server: Callable[[], None]
          ) -> int:
    server_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    try:
        die_with_server()  # at once, while it waits for its set-up; armed again after the account change
        if os.getppid() != server_pid:
            os._exit(1)
        import fcntl

        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in descriptors]  # above 0–3 before they are replaced
        for target, fd in zip((0, 1, EVENTS_FD), high, strict=True):
            os.dup2(fd, target)
        os.dup2(1, 2)
        server.detach()
        os.closerange(EVENTS_FD + 1, max(os.sysconf("SC_OPEN_MAX"), 65536))
    except BaseException:
        os._exit(71)
    _become_child(server_pid, base_path)
    return 0  # not reached


def _watch(server: socket.socket, children: Dict[int, bool]) -> None:
    """Tell the grader which children have ended, without reaping them: a child's pid stays taken (a zombie) until
    the grader, which may still kill it by that pid, releases it (``reap``). A child stopped because it made this
    server its tracer (PTRACE_TRACEME; the sandbox's filter refuses it, a referee has no reason to) is killed."""
    for pid, reported in list(children.items()):
        if reported:
            continue
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            children.pop(pid)
            continue
        if info is None:
            continue
        if info.si_code in (os.CLD_STOPPED, os.CLD_TRAPPED):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG)  # consume the stop, so the exit is seen next
            continue
        children[pid] = True
        server.send(json.dumps({"exited": pid}).encode())


def _release(server: socket.socket, children: Dict[int, bool], pid: int) -> None:
    """Reap ``pid`` for the grader, once it has ended, and send its CPU seconds."""
    if not children.get(pid):
        raise ValueError(f"no ended child {pid}")
    _, _, usage = os.wait4(pid, 0)
    del children[pid]
    server.send(json.dumps({"reaped": pid, "cpu": usage.ru_utime + usage.ru_stime}).encode())


def serve(fd: int, preload: List[str], base_path: List[str]) -> int:
    """Requests: ``fork`` with three descriptors (answer ``spawned``), ``reap <pid>`` for a child it reported as
    ``exited`` (answer ``reaped`` with its CPU seconds); anything else is answered ``error``."""
    server = socket.socket(fileno=fd)
    try:
        _warm_up(preload)
    except Exception as error:
        server.send(json.dumps({"error": f"warm-up failed: {error}"[:1000]}).encode())
        return 1
    from assignkit.grading.runner import _parent_death_signal

    die_with_server = _parent_death_signal()
    server.send(json.dumps({"ready": True}).encode())
    children: Dict[int, bool] = {}  # pid -> its end was reported (it waits, a zombie, for the grader's reap)
    while True:
        waiting = any(not reported for reported in children.values())
        ready, _, _ = select.select([server], [], [], REAP_SECONDS if waiting else None)
        _watch(server, children)
        if not ready:
            continue
        message, descriptors, _, _ = socket.recv_fds(server, 64, 3)
        if not message:
            break
        try:
            if message == b"fork" and len(descriptors) == 3:
                pid = _fork(server, descriptors, base_path, die_with_server)
                children[pid] = False
                server.send(json.dumps({"spawned": pid}).encode())
            elif message.startswith(b"reap ") and not descriptors:
                _release(server, children, int(message[5:]))
            else:
                raise ValueError("a request is b'fork' with three descriptors or b'reap <pid>'")
        except (OSError, ValueError) as error:
            server.send(json.dumps({"error": str(error)[:500]}).encode())
        finally:
            for descriptor in descriptors:
                os.close(descriptor)
    for pid in list(children):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    _base_path = list(sys.path)
    sys.path.insert(0, sys.argv[1])
    sys.exit(serve(int(sys.argv[2]), json.loads(sys.argv[3]), _base_path))
