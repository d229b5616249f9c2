#!/usr/bin/env python
"""Check what the offline demo claims, in every seed of an `unlearn run --seeds` directory.

    python scripts/demo_criteria.py runs/demo/npo_gdr          # demo.yaml over seeds
    python scripts/demo_criteria.py runs/demo/compare          # demo_compare.yaml over seeds

Per seed (seed_*/results.json):
  target VerbMem_f >= 80 and PrivLeak <= -80; retrain VerbMem_f <= 30;
  KnowMem_r of target and retrain each inside the other's 95% interval;
  NPO_GDR closest to retrain: the smallest mean distance |m - retrain| / 100 over VerbMem_f,
  KnowMem_f, KnowMem_r and PrivLeak among every row other than retrain.
Prints a table (criterion x seed) and exits 1 if any criterion fails in any seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("verbmem_f", "knowmem_f", "knowmem_r", "privleak")


def rows(results: dict) -> dict[str, dict]:
    return {r["label"]: r["scores"] for r in results["models"]}


def by_role(results: dict, role: str) -> dict:
    return next(r["scores"] for r in results["models"] if r["role"] == role)


def distance(a: dict, b: dict) -> float:
    return sum(abs(a[m]["value"] - b[m]["value"]) for m in METRICS) / (100 * len(METRICS))


def check(results: dict) -> dict[str, tuple[bool, str]]:
    target, retrain = by_role(results, "target"), by_role(results, "retrain")
    t_r, r_r = target["knowmem_r"], retrain["knowmem_r"]
    inside = (r_r["ci_low"] <= t_r["value"] <= r_r["ci_high"]
              and t_r["ci_low"] <= r_r["value"] <= t_r["ci_high"])
    others = {label: s for label, s in rows(results).items()
              if label not in ("retrain",) and all(m in s for m in METRICS)}
    dists = {label: distance(s, retrain) for label, s in others.items()}
    closest = min(dists, key=dists.get)
    npo = next((label for label in dists if label.startswith("npo_gdr")), None)
    return {
        "target VerbMem_f >= 80": (target["verbmem_f"]["value"] >= 80,
                                   f"{target['verbmem_f']['value']:.1f}"),
        "target PrivLeak <= -80": (target["privleak"]["value"] <= -80,
                                   f"{target['privleak']['value']:.1f}"),
        "retrain VerbMem_f <= 30": (retrain["verbmem_f"]["value"] <= 30,
                                    f"{retrain['verbmem_f']['value']:.1f}"),
        "KnowMem_r inside each other's CI": (inside, f"{t_r['value']:.1f} vs {r_r['value']:.1f}"),
        "NPO_GDR closest to retrain": (npo is not None and closest == npo,
                                       f"closest {closest} ({dists[closest]:.3f})"),
    }


def main(root: str) -> int:
    seeds = sorted(Path(root).glob("seed_*/results.json"),
                   key=lambda p: int(p.parent.name.split("_")[1]))
    if not seeds:
        print(f"no seed_*/results.json under {root}", file=sys.stderr)
        return 2
    table = {p.parent.name: check(json.loads(p.read_text())) for p in seeds}
    names = list(next(iter(table.values())))
    print("| criterion | " + " | ".join(table) + " |")
    print("|---|" + "---|" * len(table))
    ok = True
    for name in names:
        cells = []
        for seed in table:
            passed, shown = table[seed][name]
            ok &= passed
            cells.append(f"{'ok' if passed else 'FAIL'} ({shown})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("all criteria hold in every seed" if ok else "some criterion fails")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/npo_gdr"))
