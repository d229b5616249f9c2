#!/usr/bin/env python
"""The attack and edit tables of docs/ over several training seeds (mean ± sd, min-max).

    python scripts/seed_tables.py attacks --seeds 0,1,2      # unlearn attack per model, seed
    python scripts/seed_tables.py edits --seeds 0,1,2        # tests/bench/bench_edit_table.py

Inputs are what `unlearn run RECIPE --seeds 0,1,2` leaves: the target of seed S in
MODELS/seed_S/target, the comparison's checkpoints in COMPARE/seed_S/<method>/model, and (for
`attacks`, optional) ROME's erasure checkpoint in ROME/seed_S/model. Each measurement runs as
its own command (finished ones are skipped), then the per-seed results.json files are folded
into OUT/results.{json,md}. The machine they ran on is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ATTACK_COLUMNS = [  # (header, path into unlearn attack's results.json)
    ("head-proj s@B", ("attacks", "head_projection", "success_rate")),
    ("prob-Δ s@B", ("attacks", "prob_delta", "success_rate")),
    ("rephrase s@B", ("attacks", "rephrase", "success_rate")),
    ("rewrite score", ("editing", "rewrite_score")),
    ("p(true)", ("editing", "p_true_after")),
    ("greedy acc.", ("editing", "forget_acc_after")),
    ("Δacc random", ("editing", "delta_acc_random")),
    ("Δacc neighbourhood", ("editing", "delta_acc_neighborhood")),
]
EDIT_COLUMNS = [("rewrite score", "rewrite_score"), ("Δ-acc random", "delta_acc_random"),
                ("Δ-acc neighbourhood", "delta_acc_neighborhood"),
                ("head projection s@B", "head_projection_success"),
                ("prob. delta s@B", "prob_delta_success"), ("rephrase s@B", "rephrase_success"),
                ("p(true)", "p_true_after")]


def dig(obj, path):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def cell(values: list) -> str:
    from eval.muse.seeds import spread

    s = spread(values)
    if s["n"] == 0:
        return "–"
    return f"{s['mean']:.3f} ± {s['sd']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def attacks(args, seeds: list[int]) -> tuple[list[str], list[list], dict]:
    labels = ["target"] + args.methods.split(",") + (["rome_erasure"] if args.rome else [])
    per = {label: [] for label in labels}
    for seed in seeds:
        base = Path(args.models) / f"seed_{seed}" / "target"
        paths = {"target": base, "rome_erasure": Path(args.rome or ".") / f"seed_{seed}" / "model"}
        for label in labels:
            model = paths.get(label, Path(args.compare) / f"seed_{seed}" / label / "model")
            out = Path(args.out) / f"seed_{seed}" / label
            if not (out / "results.json").is_file():
                run([sys.executable, "-m", "unlearn", "attack", str(model), "--data", args.data,
                     "--base", str(base), "--limit", str(args.limit), "--out", str(out),
                     "--overwrite"])
            per[label].append(json.loads((out / "results.json").read_text()))
    header = ["model"] + [h for h, _ in ATTACK_COLUMNS]
    rows = [[label] + [cell([dig(r, path) for r in per[label]]) for _, path in ATTACK_COLUMNS]
            for label in labels]
    raw = {label: [{h: dig(r, path) for h, path in ATTACK_COLUMNS} for r in per[label]]
           for label in labels}
    return header, rows, raw


def edits(args, seeds: list[int]) -> tuple[list[str], list[list], dict]:
    per_seed = []
    for seed in seeds:
        out = Path(args.out) / f"seed_{seed}"
        if not (out / "results.json").is_file():
            run([sys.executable, "tests/bench/bench_edit_table.py", "--model",
                 str(Path(args.models) / f"seed_{seed}" / "target"), "--data", args.data,
                 "--out", str(out), "--limit", str(args.limit), *args.bench_args])
        per_seed.append(json.loads((out / "results.json").read_text()))
    objectives = [r["objective"] for r in per_seed[0]["rows"]]
    header = ["objective", "facts"] + [h for h, _ in EDIT_COLUMNS]
    rows, raw = [], {}
    for objective in objectives:
        found = [next(r for r in res["rows"] if r["objective"] == objective) for res in per_seed]
        raw[objective] = found
        rows.append([objective, "/".join(str(r.get("n_facts")) for r in found)] +
                    [cell([r.get(key) for r in found]) for _, key in EDIT_COLUMNS])
    return header, rows, raw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("table", choices=("attacks", "edits"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="runs/demo/models", help="prepare.out_dir (seed_S/)")
    ap.add_argument("--compare", default="runs/demo/compare", help="demo_compare output_dir")
    ap.add_argument("--methods", default="ga,npo_gdr", help="comparison rows to attack")
    ap.add_argument("--rome", default=None, help="output_dir of rome_erasure.yaml --seeds")
    ap.add_argument("--data", default="runs/demo/world")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--out", default=None)
    args, rest = ap.parse_known_args()
    args.bench_args = rest  # passed on to bench_edit_table.py
    args.out = args.out or f"runs/demo/{args.table}_seeds"
    seeds = [int(s) for s in args.seeds.split(",")]
    header, rows, raw = (attacks if args.table == "attacks" else edits)(args, seeds)
    from lethe.report import atomic_write_text, machine_info, markdown_table, write_json

    # the thread count of this process (per-seed runs started elsewhere may have used others)
    note = (f"mean ± sd over seeds {args.seeds}; machine: {machine_info()['cpu']}, "
            f"{machine_info().get('cpus_usable')} cores, OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}\n\n")
    text = note + markdown_table(header, rows)
    write_json(Path(args.out) / "results.json", {"table": args.table, "seeds": seeds,
                                                 "header": header, "rows": rows, "raw": raw,
                                                 "machine": machine_info()})
    atomic_write_text(Path(args.out) / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
