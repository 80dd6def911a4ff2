"""Benchmark of the autograder for ``make bench``: ``run()`` grades the full solution submission and compares
with ``nbgrader autograde`` and ``otter run`` on the same notebooks.

For each tool: wall seconds, CPU seconds of every process involved (``getrusage(RUSAGE_CHILDREN)`` around
the command), and peak memory of the processes alive at the same time (sampled with psutil every 50 ms over the
whole process tree): summed RSS, and summed PSS, which counts a page shared by several processes once in all
(the physical memory a container is charged; our grader's children share the fork server's pages, which summed
RSS counts twice). Our grader runs twice: as it grades (children forked from a fork server) and with
``HWGRADER_FORKSERVER=0`` (each child a fresh Python), so the ratio shows what the server saves. For our grader the
per-process numbers come from its submission_log.json: the grader's own CPU and peak RSS, and each sandboxed
child's wall, CPU and peak RSS (read by the runner from /proc). Targets (Gradescope defaults, with margin):
<= 60 CPU-seconds and <= 700 MB (summed PSS) for the processes alive at the same time.

Needs a built course (``make release``): solutions/, autograder/dist/autograder.zip, gradebook.db.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "hw_rnn"
CPU_TARGET_SECONDS = 60.0
MEMORY_TARGET_MB = 700.0
MB = 1024 * 1024


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; keeps the peak (and the largest process)."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_sum = 0
        self.peak_pss_sum = 0
        self.peak_single = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.is_set():
            total = pss_total = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                try:
                    memory = process.memory_full_info()  # PSS from /proc/<pid>/smaps_rollup
                except psutil.Error:
                    continue
                total += memory.rss
                pss_total += getattr(memory, "pss", memory.rss)
                self.peak_single = max(self.peak_single, memory.rss)
            self.peak_sum = max(self.peak_sum, total)
            self.peak_pss_sum = max(self.peak_pss_sum, pss_total)
            self.stop.wait(self.every)


def measure(command: List[str], cwd: Path, env: Optional[Dict[str, str]] = None, timeout: float = 900
            ) -> Dict[str, Any]:
    """Run ``command``; wall and CPU seconds (all its processes) and sampled peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=str(cwd), env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(process.pid)
    sampler.start()
    output, _ = process.communicate(timeout=timeout)
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"returncode": process.returncode, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "peak_mb_summed": round(sampler.peak_sum / MB), "peak_mb_pss_summed": round(sampler.peak_pss_sum / MB),
            "peak_mb_largest_process": round(sampler.peak_single / MB),
            "output_tail": output[-1500:] if process.returncode else ""}


def solution_submission(root: Path, target: Path) -> Path:
    """The full solution submission: every solution notebook, plus the trained models and the log if built."""
    target.mkdir(parents=True, exist_ok=True)
    solutions = root / "solutions" / ASSIGNMENT
    for notebook in sorted(solutions.glob("q_*.ipynb")):
        shutil.copyfile(notebook, target / notebook.name)
    for name in ("surname_model.pt", "submission_log.json", "char_lm.pt"):
        for place in (solutions, root / "source" / ASSIGNMENT):
            if (place / name).is_file():
                shutil.copyfile(place / name, target / name)
                break
    return target


def bench_ours(root: Path, work: Path, submission: Path, fork_server: bool = True) -> Dict[str, Any]:
    bundle = root / "autograder" / "dist" / "autograder.zip"
    out = work / "ours"
    command = [sys.executable, "-m", "assignkit.grading.grade", str(submission), "--out", str(out)]
    command += ["--bundle", str(bundle)] if bundle.is_file() else ["--course", str(root)]
    command += sandbox_arguments()
    result = measure(command, ROOT, {"HWGRADER_FORKSERVER": "1" if fork_server else "0"})
    log = json.loads((out / "submission_log.json").read_text())
    usage = log["grader"]["usage"]
    children = {name: {"wall_seconds": round(o["wall_seconds"], 2), "cpu_seconds": round(o["cpu_seconds"], 2),
                       "peak_rss_mb": round(o["peak_rss_bytes"] / MB), "sandboxed_runs": o["children"],
                       "referee_wall_seconds": round(o["referee_seconds"], 2),
                       "referee_cpu_seconds": round(o["referee_cpu_seconds"], 2),
                       "referee_peak_rss_mb": round(o["referee_peak_rss_bytes"] / MB)}
                for name, o in log["notebooks"].items() if o["status"] == "graded"}
    result.update({
        "score": log["score"], "max_score": log["max_score"], "sandboxed": log["grader"]["sandbox_uid"] is not None,
        "grader": {"cpu_seconds": usage["cpu_seconds"], "peak_rss_mb": round(usage["peak_rss_bytes"] / MB)},
        "children": children,
    })
    return result


def bench_ours_fresh(root: Path, work: Path, submission: Path) -> Dict[str, Any]:
    """Our grader with every child a fresh Python (``HWGRADER_FORKSERVER=0``), as before the fork server."""
    return bench_ours(root, work, submission, fork_server=False)


def sandbox_arguments() -> List[str]:
    """As root: grade as the sandbox account (created if missing, as setup.sh does); otherwise run unsandboxed
    (the bench grades the staff's own solution)."""
    from .sandbox import find_user, is_root

    if not is_root():
        return ["--no-sandbox"]
    if find_user("hwsandbox") is None:
        subprocess.run(["bash", str(ROOT / "autograder" / "create_sandbox_user.sh"), "hwsandbox"], check=True)
    return ["--user", "hwsandbox"]


def bench_nbgrader(root: Path, work: Path, submission: Path) -> Dict[str, Any]:
    """Real ``nbgrader autograde`` of the same notebooks, in a copy of the course (gradebook included)."""
    if not (root / "gradebook.db").is_file():
        return {"skipped": "no gradebook.db: run `make release` first"}
    course = work / "nbgrader_course"
    shutil.copytree(root / "source", course / "source")
    shutil.copy2(root / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copy2(root / "gradebook.db", course / "gradebook.db")
    student = course / "submitted" / "bench_student" / ASSIGNMENT
    student.mkdir(parents=True)
    for path in submission.iterdir():
        shutil.copyfile(path, student / path.name)
    command = [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--student", "bench_student", "--force",
               "--log-level", "WARN"]
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "HWCHECK_GOLDENS": str(root / "build" / "goldens" / "hidden_goldens.json"),
           "HW_HIDDEN_SURNAMES": str(root / "autograder" / "hidden_data" / "surnames_test_hidden.tsv")}
    result = measure(command, course, env)
    result["score"] = sum(score for score, _ in nbgrader_autograded_points(course, "bench_student").values())
    return result


def nbgrader_autograded_points(course: Path, student: str) -> Dict[str, Tuple[float, float]]:
    """``{grade_id: (points, max points)}`` nbgrader's autograder gave the student's test cells, from the
    course's sqlite gradebook (manually graded answers left out)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "hw_rnn_course") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return {grade.name: (grade.auto_score or 0.0, grade.max_score) for notebook in submission.notebooks
                for grade in notebook.grades if grade.cell.cell_type == "code"}


OTTER_TEST = '''OK_FORMAT = False

from otter.test_files import test_case

name = {name!r}
points = {points!r}
SOURCE = {source!r}


@test_case(points={points!r}, hidden={hidden!r})
def test_check(env):
    exec(compile(SOURCE, {name!r}, "exec"), env)
'''


def otter_zip(path: Path, checks: List[Tuple[Any, str]], course_files: Dict[str, bytes]) -> Path:
    """An otter autograder zip whose tests run this notebook's checks (hidden ones included) in the kernel.

    Otter runs every test in its own copy of the notebook's namespace, while a check cell may call helpers
    an earlier check cell defined; each test therefore starts with the earlier cells' definitions (the
    same ``definitions_only`` our child uses when it replays checks).
    """
    from .child import definitions_only

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("otter_config.json", json.dumps({"lang": "python"}))
        archive.writestr("requirements.txt", "")
        earlier: List[str] = []
        for check, check_source in checks:
            source = "\n\n".join([*earlier, check_source])
            archive.writestr(f"tests/{check.grade_id}.py", OTTER_TEST.format(
                name=check.grade_id, points=check.points, source=source, hidden=check.hidden))
            earlier.append(definitions_only(check_source))
        for name, content in course_files.items():
            archive.writestr(f"files/{name}", content)
    return path


def bench_otter(root: Path, work: Path, submission: Path) -> Dict[str, Any]:
    """``otter run`` of each notebook (otter grades one notebook per run), the checks as otter test files.

    Otter executes the notebook and its tests in one kernel (hidden checks, their goldens and the labelled
    hidden names included, as for nbgrader), so this is a timing comparison only.
    """
    from .course import Course

    course = Course.from_repo(root)
    files = {"public_goldens.json": json.dumps(course.public_goldens).encode(),
             "hidden_goldens.json": (root / "build" / "goldens" / "hidden_goldens.json").read_bytes()}
    files.update({path.name: path.read_bytes() for path in course.runtime_files})
    files.update({relative: path.read_bytes() for relative, path in course.public_data})
    for table in sorted(course.hidden_data_dir.glob("*.tsv")) if course.hidden_data_dir else []:
        files[f"hidden_data/{table.name}"] = table.read_bytes()
    totals = {"wall_seconds": 0.0, "cpu_seconds": 0.0, "peak_mb_pss_summed": 0, "peak_mb_summed": 0, "score": 0.0,
              "runs": []}
    for suite in course.suites:
        notebook = submission / suite.filename
        if not notebook.is_file():
            continue
        archive = otter_zip(work / f"otter-{suite.name}.zip", course.check_sources(suite), files)
        out = work / f"otter-{suite.name}"
        out.mkdir()
        result = measure([sys.executable, "-m", "otter", "run", "-a", str(archive), "-o", str(out), "--no-logo",
                          str(notebook)], work, {"HWCHECK_GOLDENS": "hidden_goldens.json", "HW_FAST": "1",
                                                   "HW_HIDDEN_SURNAMES": "hidden_data/surnames_test_hidden.tsv"})
        if result["returncode"] != 0 or not (out / "results.json").is_file():
            return {"skipped": f"otter run failed on {suite.filename}: {result['output_tail'][-600:]}"}
        graded = json.loads((out / "results.json").read_text())
        score = sum(test.get("score", 0) for test in graded.get("tests", []) if "max_score" in test)
        totals["runs"].append({"notebook": suite.filename, **{k: result[k] for k in (
            "wall_seconds", "cpu_seconds", "peak_mb_pss_summed", "peak_mb_summed")}, "score": score})
        totals["wall_seconds"] += result["wall_seconds"]
        totals["cpu_seconds"] += result["cpu_seconds"]
        totals["peak_mb_summed"] = max(totals["peak_mb_summed"], result["peak_mb_summed"])
        totals["peak_mb_pss_summed"] = max(totals["peak_mb_pss_summed"], result["peak_mb_pss_summed"])
        totals["score"] += score
    return totals


def markdown(results: Dict[str, Any]) -> str:
    ours = results["ours"]
    repeats = ours.get("repeats", 1)
    lines = [f"| grading the full solution (median of {repeats}) | wall s | CPU s (all processes) | "
             "peak MB, PSS (alive together) | peak MB, RSS (alive together) | score |",
             "| --- | --- | --- | --- | --- | --- |"]
    names = {"ours": "this autograder (sandboxed, fork server)",
             "ours_fresh": "this autograder, each child a fresh Python", "nbgrader": "nbgrader autograde",
             "otter": "otter run"}
    for tool, title in names.items():
        other = results.get(tool, {})
        if "skipped" in other or not other:
            lines.append(f"| {title} | skipped: {other.get('skipped', 'not run')[:80]} | | | | |")
            continue
        score = f"{other['score']:g} / {other['max_score']:g}" if "max_score" in other else other.get("score", "")
        lines.append(f"| {title} | {other['wall_seconds']:.2f} | {other['cpu_seconds']:.2f} | "
                     f"{other.get('peak_mb_pss_summed', '')} | {other['peak_mb_summed']} | {score} |")
    lines += ["", "| process (this autograder) | wall s | CPU s | peak RSS MB |", "| --- | --- | --- | --- |",
              f"| grader | {ours['wall_seconds']} | {ours['grader']['cpu_seconds']} | "
              f"{ours['grader']['peak_rss_mb']} |"]
    for name, child in ours["children"].items():
        if "referee_wall_seconds" in child:
            lines.append(f"| referee (trusted), {name} | {child['referee_wall_seconds']} | "
                         f"{child['referee_cpu_seconds']} | {child['referee_peak_rss_mb']} |")
        lines.append(f"| sandboxed child, {name} ({child['sandboxed_runs']} run) | {child['wall_seconds']} | "
                     f"{child['cpu_seconds']} | {child['peak_rss_mb']} |")
    ratios = results.get("ratios", {})
    if ratios:
        lines += ["", "Ratios (this autograder / other): " + ", ".join(f"{k} {v}" for k, v in ratios.items())]
    return "\n".join(lines)


def ratios(ours: Dict[str, Any], others: Dict[str, Dict[str, Any]]) -> Dict[str, float]:
    found = {}
    for tool, other in others.items():
        if "skipped" in other or not other.get("wall_seconds"):
            continue
        for key in ("wall_seconds", "cpu_seconds", "peak_mb_pss_summed", "peak_mb_summed"):
            if other.get(key):
                found[f"{key} vs {tool}"] = round(ours[key] / other[key], 2)
    return found


def median_of_runs(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One tool's repeated measurements as one: the median of each headline number, the other details
    from the run with the median wall time."""
    if any("skipped" in run for run in runs):
        return next(run for run in runs if "skipped" in run)
    ordered = sorted(runs, key=lambda run: run["wall_seconds"])
    merged = dict(ordered[(len(ordered) - 1) // 2])
    for key in ("wall_seconds", "cpu_seconds", "peak_mb_pss_summed", "peak_mb_summed"):
        if all(key in run for run in runs):
            merged[key] = round(statistics.median(run[key] for run in runs), 2)
    merged["repeats"] = len(runs)
    return merged


def run(root: Path = ROOT, repeats: int = 3) -> Dict[str, Any]:
    """Grade the full solution with this autograder, nbgrader autograde and otter run, ``repeats`` times each
    (interleaved, so a slow spell of the shared machine hits every tool); medians and ratios."""
    if not (root / "solutions" / ASSIGNMENT).is_dir():
        return {"skipped": "no solutions/: run `make release` first"}
    tools = {"ours": bench_ours, "ours_fresh": bench_ours_fresh, "nbgrader": bench_nbgrader, "otter": bench_otter}
    runs: Dict[str, List[Dict[str, Any]]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory(prefix="hwbench-") as folder:
        submission = solution_submission(root, Path(folder) / "submission")
        for repeat in range(repeats):
            for tool, bench in tools.items():
                work = Path(folder) / f"{tool}-{repeat}"
                work.mkdir()
                runs[tool].append(bench(root, work, submission))
    results: Dict[str, Any] = {tool: median_of_runs(tool_runs) for tool, tool_runs in runs.items()}
    ours = results["ours"]
    results["ratios"] = ratios(ours, {"fresh Python per child": results["ours_fresh"],
                                      "nbgrader": results["nbgrader"], "otter": results["otter"]})
    results["targets"] = {
        "cpu_seconds <= 60": ours["cpu_seconds"] <= CPU_TARGET_SECONDS,
        "peak MB alive together (PSS) <= 700": ours["peak_mb_pss_summed"] <= MEMORY_TARGET_MB,
    }
    results["markdown"] = markdown(results)
    return results


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT), indent=1))
