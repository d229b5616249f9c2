"""Where do humans stand under J? A leave-one-out human row for the ParaDetox held-out slice.

    python tests/bench/bench_detox_human.py [--systems default,sft] [--out runs/bench/detox_heldout]

J's chrF is measured against the human references, so the human reference itself scores chrF 1
by construction (J 0.805 on the slice) and says nothing about how far a rewriter is from human
quality. The fair human row scores one human rewrite (neutral1) against the *other* humans'
references (neutral2..3), on the rows that have at least two; every system is scored against
the same references on the same rows. If the delete baseline beats that row, J rewards keeping
the input over rewriting it the way people do, and "beat delete by a margin" cannot be the
whole goal of a rewriter.

Reads the `<system>.jsonl` outputs written by bench_detox_heldout.py in `--out` (each line has
`text`, `references`, `rewrite`), runs the delete baseline itself, scores each with
`detox eval --per-example` (default scorers) and prints the means and paired bootstrap 95%
intervals of (system - human) per metric. Writes <out>/human_loo/results.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_detox_heldout as hb  # noqa: E402  (the sibling bench: paths, subprocess runner)

METRICS = ("sta_bin", "sta_bin_clf", "sim", "chrf", "j_bin_chrf", "j_clf")


def loo_rows(rows: list[dict]) -> list[dict]:
    """The rows with >= 2 references, with the first reference as the human rewrite and the
    others as the references everyone is scored against."""
    return [{**r, "human": r["references"][0], "references": r["references"][1:]}
            for r in rows if len(r["references"]) >= 2]


def paired_ci(diff: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of paired differences (rows resampled)."""
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n_boot)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", default="default,sft")
    ap.add_argument("--out", default="runs/bench/detox_heldout")
    a = ap.parse_args()
    from detox.rewrite.baselines import DeleteConfig
    from detox.rewrite.rewriters import Item

    src = hb.ROOT / a.out
    inp = src / "heldout.jsonl"
    if not inp.is_file():
        print(f"skipped: {inp} not found (run tests/bench/bench_detox_heldout.py first)")
        return
    rows = loo_rows([json.loads(x) for x in inp.open()])
    ids = {r["id"] for r in rows}
    outputs = {"human (neutral1)": {r["id"]: r["human"] for r in rows}}
    dele = DeleteConfig().build().rewrite([Item(r["text"]) for r in rows])
    outputs["delete"] = {r["id"]: d.text for r, d in zip(rows, dele)}
    for name in [s for s in a.systems.split(",") if s]:
        path = src / f"{name}.jsonl"
        if not path.is_file():
            raise SystemExit(f"{path} not found: run bench_detox_heldout.py --systems {name}")
        outputs[name] = {r["id"]: r["rewrite"] for r in map(json.loads, path.open())
                         if r["id"] in ids}
    out = src / "human_loo"
    out.mkdir(parents=True, exist_ok=True)
    env = hb.bench_env()
    per = {}
    for name, rewrites in outputs.items():
        records = [{"id": r["id"], "text": r["text"], "references": r["references"],
                    "rewrite": rewrites[r["id"]]} for r in rows]
        _, per[name] = hb.evaluate_records(out / (name.split()[0] + ".jsonl"), records, env,
                                           METRICS)
    human = per["human (neutral1)"]
    result = {"rows": len(rows), "references": "neutral2..3 of held-out rows with >= 2",
              "systems": {}}
    lines = [f"# Leave-one-out human row: {len(rows)} held-out rows with >= 2 references, "
             "everyone scored against neutral2..3\n",
             "| system | " + " | ".join(METRICS) + " | J - human [95% CI] | J_clf - human [95% CI] |",
             "|---" * (len(METRICS) + 3) + "|"]
    for name, ex in per.items():
        means = {m: float(np.mean([e[m] for e in ex])) for m in METRICS}
        cis = {}
        for m in ("j_bin_chrf", "j_clf"):
            diff = np.array([e[m] - h[m] for e, h in zip(ex, human)])
            cis[m] = (float(diff.mean()), *paired_ci(diff))
        result["systems"][name] = {"means": means, "minus_human": cis}
        cells = [f"{means[m]:.3f}" for m in METRICS]
        cells += ["–" if ex is human else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                  for d, lo, hi in cis.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    md = "\n".join(lines) + "\n"
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
