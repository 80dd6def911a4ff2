"""Entry point of the Gradescope autograder (called by the bundle's ``run_autograder``).

    AUTOGRADER_ROOT=/autograder python -m assignkit.grading.gradescope [--bundle DIR]

Grades ``$AUTOGRADER_ROOT/submission/`` into ``$AUTOGRADER_ROOT/results/`` (results.json and
submission_log.json) with the suites of the bundle (default: the bundle this package was unpacked from,
normally ``$AUTOGRADER_ROOT/source``). As root it first makes the bundle and the results folder private
(0700 root) and runs student code as the sandbox account (``HWGRADER_SANDBOX_USER``, default from the
bundle: ``hwsandbox``), killing that account's leftover processes after every notebook.

``HWGRADER_ALLOW_CUDA_TORCH=1`` raises the memory limits of the sandbox and the referee by what the CUDA build of torch
takes beyond the CPU build (``runner.CUDA_TORCH_HEADROOM``), for the emulation of Gradescope with PyPI's torch only
(``make emulate-gradescope``); it is never set on Gradescope.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import List, Optional

from . import results
from .autograde import REFEREE_LIMITS, grade_submission
from .course import Course
from .identity import gradescope_submitters
from .runner import CUDA_TORCH_VARIABLE, Limits, cuda_torch_allowed, for_the_installed_torch
from .sandbox import find_user, is_root, lock_down

DEFAULT_ROOT = "/autograder"
BUNDLE_OF_THIS_PACKAGE = Path(__file__).resolve().parents[3]  # <bundle>/grader/assignkit/grading/


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=BUNDLE_OF_THIS_PACKAGE, help="the unzipped bundle")
    args = parser.parse_args(argv)
    root = Path(os.environ.get("AUTOGRADER_ROOT") or DEFAULT_ROOT)
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results.write_json_atomic(results_dir / results.RESULTS_FILE, results.placeholder())
    try:
        lock_down([args.bundle, root / "source", results_dir])
        course = Course.from_bundle(args.bundle)
        name = os.environ.get("HWGRADER_SANDBOX_USER") or course.sandbox_user
        user = find_user(name) if is_root() else None
        if is_root() and user is None:  # never fall back to a shared account such as nobody
            raise RuntimeError(f"the sandbox account {name!r} does not exist (setup.sh creates it)")
        dedicated = user is not None
        limits, referee_limits = for_the_installed_torch(Limits()), for_the_installed_torch(REFEREE_LIMITS)
        if cuda_torch_allowed():
            print(f"{CUDA_TORCH_VARIABLE}=1: memory limits raised for the CUDA build of torch (address space "
                  f"{limits.address_space_bytes // 1024**2} MiB, data {limits.data_bytes // 1024**2} MiB, all "
                  f"processes {limits.total_rss_bytes // 1024**2} MiB); an emulation, never Gradescope", flush=True)
    except Exception:
        traceback.print_exc()
        results.write_json_atomic(results_dir / results.RESULTS_FILE, results.placeholder(
            "The autograder is misconfigured and could not grade this submission: please tell the course staff."))
        return 1
    submitters = gradescope_submitters(root / "submission_metadata.json")  # whose variant (q_written)
    grading = grade_submission(course, root / "submission", results_dir, limits=limits, referee_limits=referee_limits,
                               user=user, sweep_user=dedicated, log=lambda message: print(message, flush=True),
                               submitters=submitters)
    totals = grading.totals()
    print(f"graded: {totals['score']:g} / {totals['max_score']:g} (finished: {grading.finished})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
