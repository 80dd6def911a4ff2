"""The sandbox's infrastructure: the root sweep, one account per parallel grading, a checkout the sandbox cannot
read, build outputs made private, the preflight of setup.sh, and create_sandbox_user.sh.

The tests that switch to an account run as root only (CI runs as root); each xdist worker uses accounts of its own
(named after its pid), removed at the end, because a sweep kills everything of its account.
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest
from grading_fixtures import (
    CREATE_USER,
    NEEDS_ROOT,
    delete_sandbox_user,
    ensure_sandbox_user,
    settle_account,
    shared_dir,
)

from assignkit.grading import grade, landlock, runner, sandbox, startup
from assignkit.grading.runner import Limits, SandboxUser

SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"

MIB = 1024**2


# -- helpers -------------------------------------------------------------------------------------------------

def uids_and_state(pid: int) -> Optional[tuple]:
    try:
        text = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return tuple(int(v) for v in fields["Uid"].split()), fields["State"].split()[0]


def alive(pid: int) -> bool:
    status = uids_and_state(pid)
    return status is not None and status[1] not in ("Z", "X")


def live_processes_of(uid: int) -> Set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            status = uids_and_state(int(name))
            if status is not None and uid in status[0] and status[1] not in ("Z", "X"):
                found.add(int(name))
    return found


def run_as(user: SandboxUser, code: str, *, nproc: int = 64, cpu: int = 30, timeout: float = 30,
           **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -I -c code`` as the account, with a process and CPU limit (so a failed test cannot leave a bomb)."""

    def limits() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    return subprocess.run([sys.executable, "-I", "-c", code], user=user.uid, group=user.gid, extra_groups=[],
                          preexec_fn=limits, capture_output=True, text=True, timeout=timeout, cwd="/", check=False,
                          **kwargs)


def slot_holders(uid: int) -> str:
    """Who holds the process slots of ``uid`` (every task, zombies included) and which accounts have that uid: what
    a failure for want of processes needs to say."""
    tasks = subprocess.run(["ps", "-eLo", "uid,pid,ppid,stat,etimes,args"], capture_output=True, text=True).stdout
    holders = [line for line in tasks.splitlines() if line.split()[:1] == [str(uid)]]
    names = [line for line in Path("/etc/passwd").read_text().splitlines() if f":{uid}:" in line]
    return f"\n{len(holders)} tasks of uid {uid}:\n" + "\n".join(holders[:60]) + "\naccounts: " + "; ".join(names)


def unused_uid() -> int:
    for uid in range(61000, 62000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if not live_processes_of(uid):
                return uid
    raise RuntimeError("no unused uid")


def delete_accounts(names: List[str]) -> None:
    for name in names:
        delete_sandbox_user(name)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[SandboxUser]:
    """An account of this worker's own (a sweep kills everything of its account)."""
    name = f"hwinf{os.getpid() % 100000}"
    user = ensure_sandbox_user(name, shared_dir(tmp_path_factory, worker_id))
    yield user
    delete_accounts([name])


@pytest.fixture(autouse=True)
def settled_account(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test of this module's account, wait until its swept processes are reaped: a sweep kills them, but
    they stay zombies (holding the account's process slots) until init reaps them, and the next test's ``run_as``
    would find its RLIMIT_NPROC used up (seen after the double-forked daemon's test on a busy machine)."""
    yield
    if "account" in request.fixturenames:
        settle_account(request.getfixturevalue("account"))


# -- (a)-(c) the root sweep -----------------------------------------------------------------------------------

DAEMON = r"""
import os, signal, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
print(os.getpid(), flush=True)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while True:
    for _ in range(4):
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            pass
    time.sleep(0.02)
    try:
        os.kill(-1, signal.SIGKILL)  # every other process of this uid: a sweeper running as the account dies
    except OSError:
        pass
"""

FORK_BOMB = r"""
import os, time
for _ in range(500):  # the first fork may wait for the previous test's killed processes to be reaped
    try:
        if os.fork():
            os._exit(0)
        break
    except OSError:
        time.sleep(0.01)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


@NEEDS_ROOT
def test_sweep_kills_a_double_forked_daemon_that_kills_sweepers(account: SandboxUser) -> None:
    bystander = subprocess.Popen(["sleep", "30"])  # root's: must survive
    try:
        started = run_as(account, DAEMON)
        daemon = int(started.stdout.split()[0])
        time.sleep(0.2)
        assert alive(daemon) and uids_and_state(daemon)[0][0] == account.uid
        old_sweeper = run_as(account, "import os, signal, time; time.sleep(1); os.kill(-1, signal.SIGKILL)")
        assert old_sweeper.returncode == -signal.SIGKILL and alive(daemon)  # a sweep as the account cannot work
        report = sandbox.sweep(account)
        assert not alive(daemon), report
        assert live_processes_of(account.uid) == set(), report
        assert report["processes_killed"] >= 1 and report["rounds"] >= 1 and "survivors" not in report
        assert bystander.poll() is None  # the grader's side is untouched
    finally:
        sandbox.sweep(account)
        bystander.kill()
        bystander.wait()


DISGUISED_DAEMON = r"""
import ctypes, os, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
ctypes.CDLL(None).prctl(15, b"\x1cUid:\tx", 0, 0, 0)  # PR_SET_NAME: a name that reads as a second Uid line
print(os.getpid(), flush=True)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
time.sleep(120)
"""


@NEEDS_ROOT
def test_sweep_kills_a_daemon_whose_name_forges_a_status_line(account: SandboxUser) -> None:
    started = run_as(account, DISGUISED_DAEMON)
    assert started.stdout.split(), started.stderr + slot_holders(account.uid)
    daemon = int(started.stdout.split()[0])
    try:
        time.sleep(0.2)
        assert os.stat(f"/proc/{daemon}").st_uid == account.uid
        assert "\x1cUid:" in Path(f"/proc/{daemon}/status").read_text(errors="replace")
        report = sandbox.sweep(account)
        time.sleep(0.1)
        state = Path(f"/proc/{daemon}/stat").read_text().rsplit(")", 1)[1].split()[0] \
            if os.path.exists(f"/proc/{daemon}") else "gone"
        assert state in ("gone", "Z"), report
        assert report["processes_killed"] >= 1
    finally:
        sandbox.sweep(account)


@NEEDS_ROOT
def test_the_sandboxed_child_reads_only_its_own_folders(account: SandboxUser, tmp_path: Path) -> None:
    """A world-readable copy of the course elsewhere (a sibling checkout) is out of the child's reach (Landlock),
    while the interpreter, its packages and the child's work folder stay usable."""
    if not landlock.supported():
        pytest.skip("this kernel has no Landlock")
    sibling = Path(tempfile.mkdtemp(prefix="hwsibling-"))
    work = Path(tempfile.mkdtemp(prefix="hwwork-"))
    try:
        os.chmod(sibling, 0o755)
        (sibling / "solutions.ipynb").write_text("the answer key")
        os.chmod(sibling / "solutions.ipynb", 0o644)
        (work / "mine.txt").write_text("the student's")
        shutil.chown(work, account.uid, account.gid)
        shutil.chown(work / "mine.txt", account.uid, account.gid)
        code = f"""
import numpy
print(open("{work}/mine.txt").read())
try:
    print(open("{sibling}/solutions.ipynb").read())
except PermissionError:
    print("refused")
try:
    print(os.listdir("{sibling}"))
except PermissionError:
    print("refused")
"""
        readable = landlock.readable_folders(sys.executable, [work])
        child = subprocess.run([sys.executable, "-I", "-c", "import os\n" + code], capture_output=True, text=True,
                               timeout=60, cwd=str(work), env={"PATH": "/usr/bin:/bin", "HOME": str(work)},
                               preexec_fn=runner._limit_child(Limits(), account, offline=True, readable=readable))
        assert child.returncode == 0, child.stderr + slot_holders(account.uid)
        assert child.stdout.split("\n")[:3] == ["the student's", "refused", "refused"], child.stdout
        opened = run_as(account, f"print(open('{sibling}/solutions.ipynb').read())")
        assert opened.stdout.strip() == "the answer key"  # only Landlock stood in the way
    finally:
        shutil.rmtree(sibling, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


@NEEDS_ROOT
def test_sweep_converges_on_a_fork_bomb(account: SandboxUser) -> None:
    try:
        run_as(account, FORK_BOMB, nproc=64, cpu=20)
        deadline = time.monotonic() + 10
        while len(live_processes_of(account.uid)) < 32 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(live_processes_of(account.uid)) >= 32
        started = time.monotonic()
        report = sandbox.sweep(account)
        assert live_processes_of(account.uid) == set(), report
        assert report["processes_killed"] >= 32 and time.monotonic() - started < 10
    finally:
        sandbox.sweep(account)


@NEEDS_ROOT
def test_sweep_removes_the_accounts_files_and_ipc_but_nothing_of_others(account: SandboxUser) -> None:
    tag = f"hwsweep{os.getpid()}"
    shared = Path(tempfile.mkdtemp(prefix=f"{tag}-rootdir-"))  # root-owned, writable by all: looked into
    scratch = Path(tempfile.mkdtemp(prefix="hwgrade-"))  # a grading under way: its work folder stays
    left_behind = Path(tempfile.mkdtemp(prefix="hwgrade-"))
    others = [Path(f"/tmp/{tag}-root"), Path(f"/var/tmp/{tag}-other"), shared / f"{tag}-root-inner",
              scratch / "work-q" / "cell_output.txt"]
    try:
        os.chmod(shared, 0o1777)
        (scratch / "work-q").mkdir()
        for path in others:
            path.write_text("not the account's")
        os.chown(others[1], unused_uid(), unused_uid())
        for path in (scratch / "work-q", others[3]):
            os.chown(path, account.uid, account.gid)
        code = f"""
import ctypes, os
open("/tmp/{tag}-file", "wb").write(b"x" * 1000)
os.makedirs("/var/tmp/{tag}-dir/sub")
open("/var/tmp/{tag}-dir/sub/f", "wb").write(b"y" * 2000)
open("/dev/shm/{tag}-shm", "wb").write(b"z" * 3000)
open("{shared}/{tag}-inner", "wb").write(b"w" * 500)
os.symlink("{others[0]}", "/tmp/{tag}-link")
print(ctypes.CDLL(None).shmget(0, 4096, 0o1600))
"""
        made = run_as(account, code)
        assert made.returncode == 0, made.stderr
        shmid = int(made.stdout.split()[-1])

        def shm_ids() -> Set[int]:
            lines = Path("/proc/sysvipc/shm").read_text().splitlines()
            column = lines[0].split().index("shmid")
            return {int(line.split()[column]) for line in lines[1:]}

        assert shmid in shm_ids()
        (left_behind / "work-q").mkdir()  # the scratch folder of a grader that was killed: cleared
        os.chown(left_behind / "work-q", account.uid, account.gid)
        report = sandbox.sweep(account, keep=[scratch])
        mine = [f"/tmp/{tag}-file", f"/var/tmp/{tag}-dir", f"/dev/shm/{tag}-shm", f"{shared}/{tag}-inner",
                f"/tmp/{tag}-link", str(left_behind / "work-q")]
        for path in mine:
            assert not os.path.lexists(path), (path, report)
        for path in others:
            assert path.read_text() == "not the account's", path
        assert shared.is_dir()
        assert report["bytes_freed"] >= 6500 and report["paths_removed_count"] >= len(mine)
        assert shmid not in shm_ids() and report["ipc_removed"] >= 1
    finally:
        sandbox.sweep(account)
        for path in others:
            path.unlink(missing_ok=True)
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(left_behind, ignore_errors=True)


@NEEDS_ROOT
def test_sweep_never_signals_another_uid_nor_root(account: SandboxUser) -> None:
    other = unused_uid()
    stranger = subprocess.Popen(["sleep", "30"], user=other, group=other, extra_groups=[], cwd="/")
    own = subprocess.Popen(["sleep", "30"], user=account.uid, group=account.gid, extra_groups=[], cwd="/")
    try:
        report = sandbox.sweep(account)
        assert stranger.poll() is None and alive(stranger.pid)
        assert own.wait(timeout=5) == -signal.SIGKILL and report["processes_killed"] >= 1
    finally:
        stranger.kill()
        stranger.wait()
    uid = account.uid
    assert not sandbox._is_target(1, ((0, uid, uid, uid), "S"), uid)  # root acting as the account: never
    assert not sandbox._is_target(1, ((other, other, other, other), "S"), uid)
    assert sandbox._is_target(1, ((uid, 0, 0, 0), "S"), uid)  # a set-uid program the account started
    assert sandbox._is_target(1, ((other, other, uid, other), "S"), uid)  # saved uid
    zombie = subprocess.Popen(["true"])  # exits, and stays a zombie until reaped
    while uids_and_state(zombie.pid)[1] != "Z":
        time.sleep(0.01)
    assert not sandbox._is_target(zombie.pid, ((uid, uid, uid, uid), "Z"), uid)  # a zombie (single-threaded)
    zombie.wait()


def test_sweep_refuses_shared_accounts_and_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.sweep(None) == {}
    monkeypatch.setattr(sandbox, "is_root", lambda: True)
    assert "not swept" in sandbox.sweep(SandboxUser(0, 0, "/root"))["note"]
    assert "not swept" in sandbox.sweep(SandboxUser(65534, 65534, "/nonexistent"))["note"]
    monkeypatch.setattr(sandbox, "is_root", lambda: False)
    assert sandbox.sweep(SandboxUser(12345, 12345, "/nonexistent")) == {}


# -- (d) one account per parallel grading -------------------------------------------------------------------

def test_account_names_and_the_missing_account_message(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.account_names("hwsandbox", 3) == ["hwsandbox", "hwsandbox2", "hwsandbox3"]
    assert sandbox.account_names("hwsandbox", 1) == ["hwsandbox"]
    monkeypatch.setattr(sandbox, "find_user", lambda name: SandboxUser(5000, 5000, "/x") if name == "hwsandbox"
                        else None)
    with pytest.raises(sandbox.SandboxError) as missing:
        sandbox.dedicated_users("hwsandbox", 3)
    message = str(missing.value)
    assert "hwsandbox2, hwsandbox3 missing" in message
    assert "bash autograder/create_sandbox_user.sh --count 3" in message and "--base" not in message
    with pytest.raises(sandbox.SandboxError, match=r"create_sandbox_user\.sh --count 2 --base hwother"):
        sandbox.dedicated_users("hwother", 2)
    monkeypatch.setattr(sandbox, "find_user", lambda name: SandboxUser(5000, 5000, "/x"))
    with pytest.raises(sandbox.SandboxError, match="uids of their own"):
        sandbox.dedicated_users("hwsandbox", 2)


def test_grade_stops_before_grading_when_an_account_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / "subs" / name).mkdir(parents=True)
    monkeypatch.setattr(grade, "is_root", lambda: True)
    monkeypatch.setattr(grade, "open_course", lambda *args: (SimpleNamespace(sandbox_user="hwnoaccount"), None, None))
    monkeypatch.setattr(grade, "grade_many", lambda *args, **kwargs: pytest.fail("graded without accounts"))
    assert grade.main(["--many", str(tmp_path / "subs"), "-j", "2"]) == 2
    err = capsys.readouterr().err
    assert "hwnoaccount, hwnoaccount2 missing" in err
    assert "bash autograder/create_sandbox_user.sh --count 2 --base hwnoaccount" in err


def test_grade_refuses_student_code_as_yourself_without_no_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(grade, "open_course", lambda *args: pytest.fail("must refuse before loading"))
    monkeypatch.setattr(grade, "is_root", lambda: False)
    assert grade.main([str(tmp_path)]) == 2
    assert "--no-sandbox" in capsys.readouterr().err
    monkeypatch.setattr(grade, "is_root", lambda: True)
    assert grade.main([str(tmp_path), "--no-sandbox"]) == 2
    assert "as root" in capsys.readouterr().err


def test_two_grade_runs_cannot_share_an_account(tmp_path: Path) -> None:
    users = [SandboxUser(50001, 50001, "/nonexistent"), SandboxUser(50002, 50002, "/nonexistent")]
    held = len(grade._LOCKS)
    try:
        grade._claim(users, tmp_path / "locks")
        with pytest.raises(sandbox.SandboxError, match="in use by another grade run"):
            grade._claim(users[1:], tmp_path / "locks")  # what a second run would do
        grade._claim([SandboxUser(50003, 50003, "/nonexistent")], tmp_path / "locks")
    finally:
        while len(grade._LOCKS) > held:
            os.close(grade._LOCKS.pop())


def _fake_grade(submission: Path, out: Path, course: Any, options: Dict[str, Any]) -> Any:
    time.sleep(0.3)
    return SimpleNamespace(uid=options["user"].uid, sweep=options.get("sweep_user"))


def _fake_row(grading: Any) -> Dict[str, Any]:
    return {"finished": True, "score": 1.0, "max_score": 1.0, "uid": grading.uid, "pid": os.getpid(),
            "sweep": grading.sweep}


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the stubs reach the workers by fork")
def test_each_parallel_worker_grades_as_its_own_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d", "e", "f"):
        (tmp_path / "subs" / name).mkdir(parents=True)
    monkeypatch.setattr(grade, "_grade", _fake_grade)
    monkeypatch.setattr(grade, "scores_row", _fake_row)
    users = [SandboxUser(50001, 50001, "/nonexistent"), SandboxUser(50002, 50002, "/nonexistent")]
    course = SimpleNamespace(suites=[], extra_files=[])
    rows = grade.grade_many(tmp_path / "subs", tmp_path / "out", course, {"user": None}, 8,
                            tmp_path / "grades.csv", users=users)
    assert len(rows) == 6 and all(row["sweep"] for _, row in rows)
    account_of: Dict[int, Set[int]] = {}
    for _, row in rows:
        account_of.setdefault(row["pid"], set()).add(row["uid"])
    assert len(account_of) == 2  # two workers (not 8: one per account) ...
    assert all(len(uids) == 1 for uids in account_of.values())  # ... each always as the same account ...
    assert {uid for uids in account_of.values() for uid in uids} == {50001, 50002}  # ... a different one
    assert [row["submission"] for row in csv.DictReader((tmp_path / "grades.csv").open())] == list("abcdef")


# -- (e) the checkout: nothing readable but the virtualenv ----------------------------------------------------

def fake_checkout() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hwfakerepo-"))
    os.chmod(root, 0o755)
    files = {
        "README.md": "readme", ".git/config": "[core]", "source/hw_rnn/q_rnn_and_grad.ipynb": "solutions",
        "solutions/hw_rnn/q_written.ipynb": "answers", "build/goldens/hidden_goldens.json": "{}",
        "autograder/hidden_data/surnames_test_hidden.tsv": "name\tlabel\n", "tests/test_x.py": "",
        "passonly/secret.txt": "found by name", ".venv/pyvenv.cfg": "home = /usr/bin\n",
        ".venv/lib/site-packages/fakepkg/__init__.py": "VALUE = 42\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, 0o644)
    for folder in [p for p in root.rglob("*") if p.is_dir()]:
        os.chmod(folder, 0o755)
    os.chmod(root / "passonly", 0o711)  # listed by nobody, but its file opens by name
    (root / "link").symlink_to(root / "README.md")
    return root


@NEEDS_ROOT
def test_protect_checkout_leaves_only_the_virtualenv_readable(account: SandboxUser) -> None:
    root = fake_checkout()
    venv = root / ".venv"
    try:
        before = sandbox.verify_unreadable(account, [root / "README.md", root / "passonly", root / "source"])
        assert str(root / "README.md") in before and str(root / "passonly" / "secret.txt") in before
        assert str(root / "passonly") not in before  # passable, not listable
        report = sandbox.protect_checkout(root, account, venv=venv)
        assert f"{root}: 0755 -> 0711" in report["changed"] and report["venv_readable"]
        assert any(line.startswith(f"{root / 'source'}:") for line in report["changed"])
        secrets = [p for p in root.iterdir() if p != venv]
        assert sandbox.verify_unreadable(account, secrets) == []
        readable = sandbox.verify_unreadable(account, [root])
        assert readable and all(path.startswith(str(venv)) for path in readable)  # the root itself not listable
        assert set(readable) >= {str(venv / "pyvenv.cfg"), str(venv / "lib/site-packages/fakepkg/__init__.py")}
        imported = run_as(account, f"import sys; sys.path.insert(0, {str(venv / 'lib/site-packages')!r}); "
                                   f"import fakepkg; print(fakepkg.VALUE)")
        assert imported.stdout.strip() == "42", imported.stderr
        assert sandbox.protect_checkout(root, account, venv=venv)["changed"] == []  # idempotent
        stolen = root / "owned_by_the_account.txt"  # chmod cannot take it away from its owner
        stolen.write_text("x")
        os.chown(stolen, account.uid, account.gid)
        with pytest.raises(sandbox.SandboxError, match="can still read"):
            sandbox.protect_checkout(root, account, venv=venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@NEEDS_ROOT
def test_a_private_bundle_folder_verifies_unreadable(account: SandboxUser, tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hwbundle-test-"))
    try:
        (folder / "suites").mkdir()
        (folder / "suites" / "hidden_goldens.json").write_text("{}")
        os.chmod(folder, 0o755)
        assert sandbox.verify_unreadable(account, [folder])
        os.chmod(folder, 0o700)
        assert sandbox.verify_unreadable(account, [folder]) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_make_private_removes_group_and_other_permissions(tmp_path: Path) -> None:
    tree = tmp_path / "build"
    (tree / "goldens").mkdir(parents=True)
    (tree / "goldens" / "hidden_goldens.json").write_text("{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("public")
    os.chmod(outside, 0o644)
    (tree / "link").symlink_to(outside)
    for path in (tree, tree / "goldens", tree / "goldens" / "hidden_goldens.json"):
        os.chmod(path, 0o755)
    changed = sandbox.make_private([tree, tmp_path / "missing"])
    assert len(changed) == 3
    for path in (tree, tree / "goldens", tree / "goldens" / "hidden_goldens.json"):
        assert path.stat().st_mode & 0o077 == 0
    assert outside.stat().st_mode & 0o777 == 0o644  # never followed
    assert sandbox.make_private([tree]) == []


# -- (f) preflight: what setup.sh checks ----------------------------------------------------------------------

@NEEDS_ROOT
def test_preflight_imports_under_the_graders_limits_and_fails_under_absurd_ones(account: SandboxUser) -> None:
    """setup.sh's smoke test: the sandbox account's child, started as for a grading, imports what the masters
    import (torch included); under an address space no torch fits in, it says which import failed and why."""
    runtime = [SOURCE / "hwcheck.py", SOURCE / "safe_expr.py"]
    modules = startup.library_imports(sorted(SOURCE.glob("q_*.ipynb")))
    assert "torch" in modules and "matplotlib.pyplot" in modules
    assert startup.preflight(account, Limits(), runtime, modules) is None
    error = startup.preflight(account, dataclasses.replace(Limits(), address_space_bytes=400 * MIB), runtime, modules)
    assert error is not None and "address space 400 MiB" in error and "import torch" in error, error


# -- (g) create_sandbox_user.sh -------------------------------------------------------------------------------

def test_create_sandbox_user_names() -> None:
    def names(*args: str) -> List[str]:
        done = subprocess.run(["bash", str(CREATE_USER), "--dry-run", *args], capture_output=True, text=True,
                              check=True)
        return done.stdout.split()

    assert names("--count", "3") == ["hwsandbox", "hwsandbox2", "hwsandbox3"]
    assert names() == ["hwsandbox"]
    assert names("a", "b") == ["a", "b"]
    assert names("--count", "2", "--base", "hwx") == ["hwx", "hwx2"]
    bad = subprocess.run(["bash", str(CREATE_USER), "--dry-run", "Not A Name"], capture_output=True, text=True)
    assert bad.returncode == 2


@NEEDS_ROOT
def test_create_sandbox_user_count_creates_accounts_idempotently() -> None:
    base = f"hwcnt{os.getpid() % 100000}"
    names = [base, f"{base}2", f"{base}3"]
    try:
        for _ in range(2):
            done = subprocess.run(["bash", str(CREATE_USER), "--count", "3", "--base", base], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        entries = [pwd.getpwnam(name) for name in names]
        assert len({entry.pw_uid for entry in entries}) == 3 and all(entry.pw_uid != 0 for entry in entries)
        assert all(entry.pw_shell.endswith("nologin") for entry in entries)
        assert "exists" in done.stdout
        assert [user.uid for user in sandbox.dedicated_users(base, 3)] == [entry.pw_uid for entry in entries]
        refused = subprocess.run(["bash", str(CREATE_USER), "root"], capture_output=True, text=True)
        assert refused.returncode == 1 and "refusing" in refused.stderr
    finally:
        delete_accounts(names)
