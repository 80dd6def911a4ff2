"""A full emulation of Gradescope on Python 3.10: ``make emulate-gradescope`` (``python -m assignkit.emulate``).

It does what Gradescope does with ``autograder/dist/autograder.zip`` (built by ``make release``), on this machine
and as root:

1. unzips the bundle into ``<root>/source`` of a fresh temporary root and runs ``setup.sh`` there, with ``python3``
   meaning Python 3.10 (a shim first on ``PATH``, as on Ubuntu 22.04): a venv, the pinned requirements, torch, the
   sandbox account (a dedicated one, ``hwemu``, deleted afterwards), the grading key and the smoke test;
2. grades two submissions with ``run_autograder`` (``AUTOGRADER_ROOT=<root>``): the staff solution (the solution
   notebooks, ``surname_model.pt``, ``submission_log.json`` and ``char_lm.pt``), which must get every autograded
   point, and the blank release, which must get none;
3. writes wall time, CPU time and peak memory of ``setup.sh`` and of each grading to
   ``bench/gradescope_py310.json`` and exits 0 only when both scores are as expected.

Two deviations from Gradescope, both opt-in variables that are never set there, and the only ones: PyTorch's CPU
index is not reachable here, so ``setup.sh`` installs torch from PyPI (``HWGRADER_TORCH_INDEX``), whose Linux wheel
is the CUDA build; that build's libraries take about 2.6 GB more address space, 0.6 GB more data segment and 0.5 GB
more resident memory than the CPU build's, so the children's three memory limits grow by that much
(``HWGRADER_ALLOW_CUDA_TORCH=1``, ``runner.CUDA_TORCH_HEADROOM``). Every other limit, Landlock, the seccomp filters
and the sandbox account are as in production. The memory figures are therefore those of the CUDA build, not of
Gradescope's CPU build.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import json
import os
import platform
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from assignkit.grading.bench import MB, TreeSampler, solution_submission
from assignkit.grading.runner import CUDA_TORCH_HEADROOM, CUDA_TORCH_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "hw_rnn"
BUNDLE = ROOT / "autograder" / "dist" / "autograder.zip"
OUTPUT = ROOT / "bench" / "gradescope_py310.json"
PYPI = "https://pypi.org/simple"
DEFAULT_USER = "hwemu"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETUP_SECONDS = 1800.0
GRADING_SECONDS = 900.0
DROPPED_VARIABLES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")
"""Variables of the calling shell (``make`` runs inside the development venv) that Gradescope would not have."""


def find_python310() -> Optional[str]:
    """The real executable of a Python 3.10 (``sys.executable`` as it reports it, so a pyenv shim is resolved):
    ``python3.10`` on ``PATH`` first, then pyenv's versions (``$PYENV_ROOT`` or ``~/.pyenv``); ``None`` if none."""
    candidates = [shutil.which("python3.10") or ""]
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += sorted((str(path) for path in versions.glob("3.10*/bin/python3.10")), reverse=True)
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10); "
                                    "print(sys.executable)"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    return None


class PeakSampler(TreeSampler):
    """:class:`TreeSampler` that also keeps which processes made the summed peak (account, RSS, command)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(pid, every)
        self.at_peak: List[Dict[str, Any]] = []

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            seen = []
            for process in processes:
                try:
                    memory, uid = process.memory_full_info(), process.uids().real  # PSS: smaps_rollup
                    command = " ".join(process.cmdline()[:4])[-100:]
                except psutil.Error:
                    continue
                seen.append({"pid": process.pid, "uid": uid, "rss_mb": round(memory.rss / MB),
                             "pss_mb": round(getattr(memory, "pss", memory.rss) / MB), "command": command})
                self.peak_single = max(self.peak_single, memory.rss)
            total = sum(entry["rss_mb"] for entry in seen) * MB
            self.peak_pss_sum = max(self.peak_pss_sum, sum(entry["pss_mb"] for entry in seen) * MB)
            if total > self.peak_sum:
                self.peak_sum, self.at_peak = total, [entry for entry in seen if entry["rss_mb"] >= 5]
            self.stop.wait(self.every)


def measure(command: List[str], cwd: Path, env: Mapping[str, str], log: Path, timeout: float) -> Dict[str, Any]:
    """Run ``command`` with its output in ``log``: return code, wall and CPU seconds (every process it waited for)
    and peak memory (summed RSS of its process tree, sampled every 50 ms, and the largest single process); and the
    machine's one-minute load average before and after (wall times on a busy machine are longer)."""
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(command, cwd=str(cwd), env=dict(env), stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = PeakSampler(process.pid)
        sampler.start()
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
        finally:
            sampler.stop.set()
            sampler.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"returncode": returncode, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "peak_mb_summed": round(sampler.peak_sum / MB), "peak_mb_pss_summed": round(sampler.peak_pss_sum / MB),
            "peak_mb_largest_process": round(sampler.peak_single / MB), "processes_at_peak": sampler.at_peak,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def tail(path: Path, characters: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-characters:] if path.is_file() else ""


class Emulation:
    """One emulated Gradescope autograder: a temporary root, its ``setup.sh`` run, then any number of gradings."""

    def __init__(self, python310: str, work: Path, user: str, torch_index: str, cuda_torch: bool,
                 find_links: Optional[Path] = None) -> None:
        self.python310, self.work, self.user = python310, work, user
        self.root = work / "autograder"  # Gradescope's /autograder
        self.venv = work / "hwgrader-venv"  # Gradescope's /opt/hwgrader-venv
        self.logs = work / "logs"
        shim = work / "bin"
        for folder in (self.root, self.logs, shim):
            folder.mkdir(parents=True)
        # Ubuntu 22.04's python3 is Python 3.10. A script that execs it (not a symlink), so that the venv's home is
        # the real interpreter's folder.
        (shim / "python3").write_text(f'#!/bin/sh\nexec "{python310}" "$@"\n', encoding="utf-8")
        os.chmod(shim / "python3", 0o755)
        self.env = {key: value for key, value in os.environ.items() if key not in DROPPED_VARIABLES}
        self.env.update({"PATH": f"{shim}:{SYSTEM_PATH}", "HOME": pwd.getpwuid(0).pw_dir,
                         "HWGRADER_VENV": str(self.venv), "HWGRADER_PYTHON": str(self.venv / "bin" / "python"),
                         "HWGRADER_SANDBOX_USER": user, "HWGRADER_TORCH_INDEX": torch_index,
                         CUDA_TORCH_VARIABLE: "1" if cuda_torch else ""})
        if find_links is not None:  # wheels downloaded earlier; pip still asks the index for anything else
            self.env["PIP_FIND_LINKS"] = " ".join(filter(None, [self.env.get("PIP_FIND_LINKS", ""), str(find_links)]))

    def set_up(self, bundle: Path) -> Dict[str, Any]:
        """Unzip ``bundle`` into ``<root>/source`` and run its ``setup.sh`` as Gradescope does (as root, in that
        folder); ``run_autograder`` is then copied to ``<root>``."""
        source = self.root / "source"
        source.mkdir()
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(source)
        for name in ("setup.sh", "run_autograder", "create_sandbox_user.sh"):
            os.chmod(source / name, 0o755)
        result = measure(["bash", str(source / "setup.sh")], source, self.env, self.logs / "setup.log", SETUP_SECONDS)
        shutil.copy2(source / "run_autograder", self.root / "run_autograder")
        result["log_tail"] = tail(self.logs / "setup.log", 1500)
        return result

    def interpreter(self) -> Dict[str, Any]:
        """The venv's Python and torch, as ``setup.sh`` installed them (outside any sandbox)."""
        probe = ("import json, platform, torch; print(json.dumps({'python': platform.python_version(), "
                 "'torch': torch.__version__, 'torch_cuda': torch.version.cuda}))")
        done = subprocess.run([str(self.venv / "bin" / "python"), "-I", "-c", probe], capture_output=True, text=True,
                              timeout=300)
        return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-1000:]}

    def grade(self, label: str, files: Mapping[str, Path]) -> Dict[str, Any]:
        """Put ``files`` into a fresh ``<root>/submission``, run ``<root>/run_autograder`` and summarise
        ``results.json`` and ``submission_log.json``."""
        for part in ("submission", "results"):
            shutil.rmtree(self.root / part, ignore_errors=True)
            (self.root / part).mkdir()
        for name, path in files.items():
            shutil.copyfile(path, self.root / "submission" / name)
        env = {**self.env, "AUTOGRADER_ROOT": str(self.root)}
        log = self.logs / f"grading-{label}.log"
        result = measure(["bash", str(self.root / "run_autograder")], self.root, env, log, GRADING_SECONDS)
        results_file, log_file = self.root / "results" / "results.json", self.root / "results" / "submission_log.json"
        if not (results_file.is_file() and log_file.is_file()):
            return {**result, "error": "no results", "output_tail": tail(log)}
        gradescope = json.loads(results_file.read_text(encoding="utf-8"))
        staff = json.loads(log_file.read_text(encoding="utf-8"))
        notebooks = {name: {"sandbox_peak_rss_mb": round(o.get("peak_rss_bytes", 0) / MB),
                            "referee_peak_rss_mb": round(o.get("referee_peak_rss_bytes", 0) / MB),
                            "sandbox_wall_seconds": round(o.get("wall_seconds", 0), 1),
                            "referee_wall_seconds": round(o.get("referee_seconds", 0), 1)}
                     for name, o in staff.get("notebooks", {}).items()}
        usage = staff.get("grader", {}).get("usage", {})
        result.update({
            "files": sorted(files), "score": staff.get("score"), "max_score": staff.get("max_score"),
            "results_json_points": sum(test.get("score", 0) for test in gradescope.get("tests", [])),
            "finished": staff.get("finished"),
            "misconfigured": staff.get("misconfigured") or None, "internal_errors": staff.get("internal_errors"),
            "python": staff.get("environment", {}).get("python"),
            "sandbox_uid": staff.get("grader", {}).get("sandbox_uid"),
            "sandbox_limits_mb": {name: round(value / MB) for name, value in staff.get("grader", {}).get("limits", {})
                                  .items() if name.endswith("_bytes") and name != "output_bytes_kept"},
            "grader_peak_rss_mb": round(usage.get("peak_rss_bytes", 0) / MB), "notebooks": notebooks,
            "checks_short_of_full": [{k: check.get(k) for k in ("grade_id", "points", "max_points", "message")}
                                     for check in staff.get("checks", [])
                                     if check.get("points") != check.get("max_points")][:40],
        })
        if result["returncode"] != 0:
            result["output_tail"] = tail(log)
        return result


def processes_of(uid: int) -> List[int]:
    """The ids of the processes running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def remove_account(name: str) -> None:
    """Kill, one by one, the processes left by the account ``name`` (which this emulation created; the grader's
    sweep should have left none) and delete the account with its group."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for pid in processes_of(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    subprocess.run(["userdel", name], check=False, capture_output=True)
    if group_exists(name):
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def blank_submission() -> Dict[str, Path]:
    """The release notebooks, as a student who changed nothing submits them."""
    return {path.name: path for path in sorted((ROOT / "release" / ASSIGNMENT).glob("q_*.ipynb"))}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="the autograder zip (default: make release's)")
    parser.add_argument("--python", default=None, help="a Python 3.10 (default: python3.10 on PATH, else pyenv's)")
    parser.add_argument("--user", default=DEFAULT_USER, help="the sandbox account to create and delete afterwards")
    parser.add_argument("--torch-index", default=PYPI, help="HWGRADER_TORCH_INDEX for setup.sh (default: PyPI)")
    parser.add_argument("--cpu-torch", action="store_true",
                        help="the index gives torch's CPU build: keep the production memory limits (no "
                             "HWGRADER_ALLOW_CUDA_TORCH)")
    parser.add_argument("--find-links", type=Path, default=None, help="a folder of wheels downloaded earlier")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="where the figures go (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary root (logs, venv) and the account")
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        print("emulate: run as root (setup.sh creates an account; run_autograder runs student code as it)",
              file=sys.stderr)
        return 2
    missing = [str(p) for p in (args.bundle, ROOT / "solutions" / ASSIGNMENT, ROOT / "release" / ASSIGNMENT)
               if not p.exists()]
    if missing:
        print(f"emulate: missing {', '.join(missing)}: run `make release` first", file=sys.stderr)
        return 2
    python310 = args.python or find_python310()
    if python310 is None:
        print("emulate: no Python 3.10 found (python3.10 on PATH or pyenv's); give one with --python",
              file=sys.stderr)
        return 2
    if account_exists(args.user) or group_exists(args.user):
        print(f"emulate: the account or group {args.user!r} exists already (left by an earlier run?); delete it "
              f"(`userdel {args.user}`) or choose another name with --user", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="hwemu-"))
    os.chmod(work, 0o755)  # the sandbox account runs the venv's interpreter from here
    figures: Dict[str, Any] = {}
    try:
        emulation = Emulation(python310, work, args.user, args.torch_index, not args.cpu_torch, args.find_links)
        print(f"emulate: setup.sh in {emulation.root} (Python {python310}; torch from {args.torch_index}) ...",
              flush=True)
        setup = emulation.set_up(args.bundle)
        print(f"emulate: setup.sh exit {setup['returncode']} in {setup['wall_seconds']} s, "
              f"peak {setup['peak_mb_summed']} MB (PSS {setup['peak_mb_pss_summed']} MB)", flush=True)
        figures = {
            "measured_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "system": platform.platform()},
            "bundle": str(args.bundle.relative_to(ROOT) if args.bundle.is_relative_to(ROOT) else args.bundle),
            "base_python": python310,
            "deviations_from_gradescope": {
                "HWGRADER_TORCH_INDEX": args.torch_index, CUDA_TORCH_VARIABLE: "" if args.cpu_torch else "1",
                "memory_limits_raised_by_mb": {} if args.cpu_torch else {
                    name: value // MB for name, value in CUDA_TORCH_HEADROOM.items()},
                "find_links": str(args.find_links) if args.find_links else None},
            "setup": setup,
        }
        if setup["returncode"] != 0:
            print(setup["log_tail"], file=sys.stderr)
            return 1
        setup.pop("log_tail")
        figures["environment"] = emulation.interpreter()
        gradings = {}
        with tempfile.TemporaryDirectory(prefix="hwemu-solution-") as folder:
            solution = solution_submission(ROOT, Path(folder))
            for label, files in (("solution", {p.name: p for p in sorted(solution.iterdir())}),
                                 ("blank_release", blank_submission())):
                print(f"emulate: grading the {label.replace('_', ' ')} ...", flush=True)
                gradings[label] = emulation.grade(label, files)
                grading = gradings[label]
                print(f"emulate: {label}: {grading.get('score')} / {grading.get('max_score')} in "
                      f"{grading['wall_seconds']} s (CPU {grading['cpu_seconds']} s), peak "
                      f"{grading['peak_mb_summed']} MB (PSS {grading['peak_mb_pss_summed']} MB)", flush=True)
        figures["gradings"] = gradings
        solution_result = gradings["solution"]
        expected = {"solution": solution_result.get("max_score"), "blank_release": 0}
        passed = solution_result.get("max_score") and all(
            gradings[label].get("score") == points and gradings[label].get("results_json_points") == points
            and gradings[label].get("finished") and not gradings[label].get("misconfigured")
            and gradings[label].get("sandbox_uid") is not None for label, points in expected.items())
        figures["passed"] = bool(passed)
        if not passed:
            for label, grading in gradings.items():
                print(f"{label}: {json.dumps(grading, indent=1)[-4000:]}", file=sys.stderr)
        return 0 if passed else 1
    finally:
        if figures:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
            print(f"emulate: figures in {args.out}")
        if args.keep:
            print(f"emulate: kept {work} and the account {args.user}")
        else:
            remove_account(args.user)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
