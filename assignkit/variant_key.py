"""The answer key of one student's variant of q_written (Parts 1 and 2), for the staff.

    python -m assignkit.variant_key a1234567 [more IDs ...] [--json]

Prints, per student ID, the gains of Part 1 and the correct typed answers (the formulas of 1.1 and 1.2 with that
student's numbers, the edge terms of 1.3 expanded the same way, the beams of 2.1-2.3), computed with
``source/hw_rnn/variants.py`` (the module the notebook and the referee use). An empty ID gives the default variant,
the solutions' key.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

SOURCE = Path(__file__).resolve().parents[1] / "source" / "hw_rnn"


def load_variants() -> Any:
    """The course's variants.py (source/hw_rnn), as the notebook imports it."""
    spec = importlib.util.spec_from_file_location("hw_variants", SOURCE / "variants.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(SOURCE / "variants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def key_of(student_id: str) -> Dict[str, Any]:
    """The key of ``student_id``'s variant: its gains and the answers the typed cells expect."""
    variants = load_variants()
    default_tree = json.loads((SOURCE / "data" / "beam_tree.json").read_text(encoding="utf-8"))
    variant = variants.for_student(student_id, default_tree)
    a, b = variant.input_gain, variant.recurrent_gain
    t = f"{a}*u3 + {a * b}*w*u2 + {a * b * b}*w^2*u1"
    beams = variants.beams(variant.beam_tree)
    return {
        "student_id": variant.student_id or "(default variant)",
        "id_problem": variants.id_problem(student_id) if not variant.is_default else None,
        "recurrence": f"h_k = w ({a} u_k {'+' if b > 0 else '-'} {abs(b)} h_(k-1))",
        "answer_t": t, "answer_y": f"w*({t})", "answer_dy_dw": f"{a}*u3 + {2 * a * b}*w*u2 + {3 * a * b * b}*w^2*u1",
        "answer_edge_q": f"{a * b * b}*w^2*u1", "answer_edge_s": f"{a * b}*w*u2 + {a * b * b}*w^2*u1",
        "answer_edge_y": t,
        "intermediates": variants.intermediates(variant),
        "beam_t1": beams[0], "beam_t2": beams[1], "beam_t3": beams[2],
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="+", help="student IDs or e-mail addresses as typed (\"\" for the default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per ID instead of text")
    args = parser.parse_args(argv)
    for student_id in args.ids:
        key = key_of(student_id)
        if args.json:
            print(json.dumps(key, sort_keys=True))
            continue
        print(f"{key['student_id']}: {key['recurrence']}"
              + (f"  (an unusual ID: {key['id_problem']}; it has numbers of its own all the same)" if key["id_problem"]
                 else ""))
        for name in ("answer_t", "answer_y", "answer_dy_dw", "answer_edge_q", "answer_edge_s", "answer_edge_y",
                     "beam_t1", "beam_t2", "beam_t3"):
            print(f"  {name} = {key[name]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
