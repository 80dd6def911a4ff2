"""The suites: every master's checks and the metadata grading needs, as plain JSON.

The bundle carries them as ``suites/suites.json`` so the Gradescope grader never has to parse the master
notebooks; locally the same structure is made from the masters and the recorded goldens on the fly.
Only the standard library is used here at grading time.

Each check has a *kind* (recorded by the build, see ``hwcheck.check``):

``sandbox``  the probe runs in the sandbox on the student's code; a public one is compared with its public
             goldens, a hidden one with the values the referee computes for this grading's seed;
``referee``  the probe runs in the referee on a submitted file (the saved model), never on student code;
``static``   a typed answer, read by the referee from the notebook file without running it.

``probe_source`` is the only part of a check cell the sandbox ever receives (no reference code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

FORMAT = 2
KINDS = ("sandbox", "referee", "static")
SPEC_KEYS = ("rtol", "atol", "layouts", "compare", "score", "hints", "follows", "diagnoses", "seeded", "kernels",
             "variable", "cell")


@dataclass(frozen=True)
class SuiteCheck:
    """One autograded check: how it runs, how it is compared, and what Gradescope shows (``title``)."""

    grade_id: str
    notebook: str
    points: float
    hidden: bool
    probe_source: str
    title: str
    kind: str = "sandbox"
    spec: Mapping[str, Any] = field(default_factory=dict)  # comparison options, never values

    @property
    def seeded(self) -> bool:
        return bool(self.spec.get("seeded"))

    @property
    def refuses_kernels(self) -> bool:
        return self.spec.get("kernels") == "refuse"

    @property
    def in_sandbox(self) -> bool:
        return self.kind == "sandbox"


@dataclass(frozen=True)
class Suite:
    """Everything about one notebook that grading needs."""

    name: str
    checks: Tuple[SuiteCheck, ...]
    skip_ids: Tuple[str, ...] = ()
    manual_points: Mapping[str, float] = field(default_factory=dict)
    grade_ids: Tuple[str, ...] = ()  # every grade_id of the master: tells a right notebook from a wrong one
    submit: Tuple[str, ...] = ()  # files students submit for this notebook besides it (e.g. surname_model.pt)

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"

    @property
    def autograded_points(self) -> float:
        return sum(check.points for check in self.checks)

    @property
    def manual_total(self) -> float:
        return sum(self.manual_points.values())

    @property
    def sandbox_checks(self) -> Tuple[SuiteCheck, ...]:
        return tuple(check for check in self.checks if check.in_sandbox)

    @property
    def referee_checks(self) -> Tuple[SuiteCheck, ...]:
        """The checks whose expected values (or whole verdict) the referee computes."""
        return tuple(check for check in self.checks if check.hidden or not check.in_sandbox)


def spec_of(golden: Mapping[str, Any]) -> Dict[str, Any]:
    """A recorded goldens entry without its values: only how to run and compare the check."""
    return {key: golden[key] for key in SPEC_KEYS if key in golden and golden[key] not in (None, {}, "")}


def from_master(master: Any, goldens: Mapping[str, Mapping[str, Any]]) -> Suite:
    """Build a suite from an ``assignkit.masters.Master`` and the goldens the build recorded for it."""
    from .titles import check_titles

    notebook = json.loads(Path(master.path).read_text(encoding="utf-8"))
    titles = check_titles(notebook, master.path.name, master.checks)
    grade_ids = []
    for cell in notebook.get("cells", []):
        grade_id = ((cell.get("metadata") or {}).get("nbgrader") or {}).get("grade_id")
        if grade_id:
            grade_ids.append(str(grade_id))
    checks = []
    for c in master.checks:
        golden = goldens.get(c.grade_id)
        if golden is None:
            raise ValueError(f"{master.name}: check {c.grade_id!r} has no recorded goldens (run `make release`)")
        kind = str(golden.get("kind", "sandbox"))
        if kind not in KINDS:
            raise ValueError(f"{master.name}: check {c.grade_id!r} has an unknown kind {kind!r}")
        if c.hidden and kind == "sandbox" and not golden.get("seeded"):
            raise ValueError(f"{master.name}: hidden check {c.grade_id!r} must be seeded (hwcheck.check(..., "
                             "seeded=True)): its inputs are drawn afresh for every grading")
        if not c.hidden and kind != "sandbox":
            raise ValueError(f"{master.name}: public check {c.grade_id!r} must run in the sandbox")
        checks.append(SuiteCheck(c.grade_id, master.name, float(c.points), bool(c.hidden),
                                 c.probe_source if kind == "sandbox" else "", titles[c.grade_id], kind,
                                 spec_of(golden)))
    return Suite(master.name, tuple(checks), tuple(master.skip_ids), dict(master.manual_points), tuple(grade_ids),
                 tuple(master.submit))


def to_json(suites: Sequence[Suite]) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "suites": [
            {
                "name": suite.name,
                "skip_ids": list(suite.skip_ids),
                "manual_points": dict(sorted(suite.manual_points.items())),
                "grade_ids": list(suite.grade_ids),
                "submit": list(suite.submit),
                "checks": [
                    {"grade_id": c.grade_id, "points": c.points, "hidden": c.hidden, "title": c.title,
                     "kind": c.kind, "spec": dict(c.spec), "probe_source": c.probe_source}
                    for c in suite.checks
                ],
            }
            for suite in suites
        ],
    }


def from_json(data: Mapping[str, Any]) -> List[Suite]:
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported suites format {data.get('format')!r}")
    suites = []
    for item in data["suites"]:
        checks = tuple(
            SuiteCheck(str(c["grade_id"]), str(item["name"]), float(c["points"]), bool(c["hidden"]),
                       str(c["probe_source"]), str(c["title"]), str(c["kind"]), dict(c["spec"]))
            for c in item["checks"]
        )
        suites.append(Suite(str(item["name"]), checks, tuple(item.get("skip_ids", [])),
                            {str(k): float(v) for k, v in item.get("manual_points", {}).items()},
                            tuple(item.get("grade_ids", [])), tuple(str(n) for n in item.get("submit", []))))
    return suites


def write(path: Path, suites: Sequence[Suite]) -> None:
    """Deterministic JSON (sorted keys, fixed indentation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(suites), indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load(path: Path) -> List[Suite]:
    return from_json(json.loads(path.read_text(encoding="utf-8")))
