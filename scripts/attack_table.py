"""One Markdown table of `unlearn attack` reports, each success rate with its 95% interval.

    python scripts/attack_table.py LABEL=DIR[,DIR...] [LABEL=DIR[,DIR...] ...]

Each DIR holds the results.json `unlearn attack` wrote. Per model row: every attack's
success@B with a percentile-bootstrap interval over the facts (eval.stats, seeded), and the
editing metrics (p(true), greedy accuracy, Δ-accuracies) when a --base was given. A LABEL
given several directories (comma-separated, e.g. one per unlearning seed) shows the mean over
them ± their sample sd instead of an interval.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDITING = (("p_true_after", "p(true)"), ("forget_acc_after", "greedy acc."),
           ("delta_acc_random", "Δacc random"), ("delta_acc_neighborhood", "Δacc neighbourhood"))


def cell_interval(successes: list[bool]) -> str:
    from eval.stats import mean_score

    s = mean_score([float(x) for x in successes])
    return f"{s.value:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def cell_seeds(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def row(label: str, reports: list[dict], attacks: list[str]) -> list[str]:
    cells = [label]
    for name in attacks:
        if len(reports) == 1:
            per_fact = reports[0]["per_fact"].get(name)
            cells.append(cell_interval([f["success"] for f in per_fact]) if per_fact else "–")
        else:
            cells.append(cell_seeds([r["attacks"][name]["success_rate"] for r in reports]))
    for key, _ in EDITING:
        values = [r["editing"][key] for r in reports if key in r.get("editing", {})]
        cells.append(cell_seeds(values) if values else "–")
    return cells


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="LABEL=DIR[,DIR...]")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    rows, attacks = [], None
    for spec in args.models:
        label, dirs = spec.split("=", 1)
        reports = [json.loads((Path(d) / "results.json").read_text()) for d in dirs.split(",")]
        if attacks is None:
            attacks = list(reports[0]["attacks"])
        rows.append(row(label, reports, attacks))
    budgets = {a: json.loads((Path(args.models[0].split("=", 1)[1].split(",")[0])
                              / "results.json").read_text())["attacks"][a]["budget"]
               for a in attacks}
    header = ["model"] + [f"{a} s@{budgets[a]}" for a in attacks] + [t for _, t in EDITING]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
