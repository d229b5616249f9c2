"""RLMF on arguments, scored where it counts: the TEST-fold arguments of an RL run.

    python tests/bench/bench_detox_arguments.py [--run runs/detox/rl_arguments]
                                                [--classifier runs/detox/classifier/model]

Reads `<run>/rewrites.jsonl` written by `detox train recipes/detox/local/rl_arguments.yaml`
(greedy rewrites, after training, of the flagged arguments of the evaluation fold - TEST there,
never seen by the classifier or the policy - by the RL policy (`rewrite`) and by the policy it
started from (`initial_rewrite`: the shipped SFT rewriter)), and scores both with `detox eval`
beside the copy and delete baselines on the same arguments: P(appropriate) under the
appropriateness classifier (`sta_clf`, soft; `sta_bin_clf`, share classified appropriate),
MiniLM similarity to the argument, SmolLM2 fluency, refusal share. Paired bootstrap 95%
interval of (RL - initial) P(appropriate). Writes <run>/test_eval/results.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_detox_heldout as hb  # noqa: E402  (the sibling bench: paths, subprocess runner)
from bench_detox_human import paired_ci  # noqa: E402

METRICS = ("sta_clf", "sta_bin_clf", "sim", "fl", "refusal")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/detox/rl_arguments")
    ap.add_argument("--classifier", default="runs/detox/classifier/model")
    a = ap.parse_args()
    run_dir = hb.ROOT / a.run
    src = run_dir / "rewrites.jsonl"
    if not src.is_file():
        print(f"skipped: {src} not found (run detox train recipes/detox/local/rl_arguments.yaml)")
        return
    rows = [json.loads(x) for x in src.open()]
    out = run_dir / "test_eval"
    out.mkdir(parents=True, exist_ok=True)
    env = hb.bench_env()
    clf = ("--set", f"scorers.sta_clf.model={a.classifier}",
           "--set", "scorers.sta_clf.toxic_label=inappropriate")
    per, systems = {}, {}
    for name, field in (("initial (SFT rewriter)", "initial_rewrite"), ("RL policy", "rewrite")):
        records = [{"id": i, "text": r["source"], "rewrite": r[field]}
                   for i, r in enumerate(rows)]
        res, per[name] = hb.evaluate_records(out / (name.split()[0] + ".jsonl"), records, env,
                                             METRICS, baselines=field == "rewrite", extra=clf)
        systems[name] = res["metrics"]
        systems.update(res.get("baselines", {}))
    diff = np.array([b["sta_clf"] - a_["sta_clf"] for a_, b in
                     zip(per["initial (SFT rewriter)"], per["RL policy"])])
    lo, hi = paired_ci(diff)
    result = {"n": len(rows), "source": str(src), "classifier": a.classifier,
              "systems": systems, "rl_minus_initial_p_appropriate": [float(diff.mean()), lo, hi]}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# {len(rows)} flagged evaluation-fold arguments of {a.run}\n",
             "| system | P(appropriate) | share appropriate | SIM | FL | refusal |",
             "|---|---|---|---|---|---|"]
    for name, m in systems.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS) + " |")
    lines.append(f"\nRL - initial P(appropriate): {diff.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] "
                 "(paired bootstrap 95%)\n")
    md = "\n".join(lines)
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
