"""The robustness table of docs/results.md: every method of a comparison × {none, relearn on a
forget slice, relearn on retain text only, int8, int4}, mean ± sd over seeds.

    unlearn run recipes/demo_compare.yaml --seeds 0,1,2
    python scripts/robustness_table.py runs/demo/compare --seeds 0,1,2 [--out runs/robustness]
        [--base-dir .] [--methods ga,npo] [--limit N] [-- any extra `unlearn attack` options]

For each seed S and method M it runs (skipping runs whose results.json exists)

    unlearn attack COMPARE/seed_S/M/model --data DATA --attacks relearn,quantize
                   --target TARGET --seed S --out OUT/seed_S/M [extra options]

where TARGET and DATA come from COMPARE/seed_S/M/recipe.yaml (`model.target`, else
`prepare.out_dir`/target; `eval.data`, else `data.source`), relative paths resolved against
--base-dir (the directory `unlearn run` ran in). Then it writes OUT/results.json and
OUT/results.md: per metric the score after each attack (none = the unlearned model on all
rows) and, for the forget-side metrics, the recovery (attacked − unlearned) / (target −
unlearned), each as mean ± sd over the seeds (docs/metrics.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

CONDITIONS = [("none", None), ("relearn forget", "relearn_forget"),
              ("relearn retain", "relearn_retain"), ("int8", "int8"), ("int4", "int4")]


def method_dirs(compare: Path, seed: int, only: list[str] | None) -> list[Path]:
    root = compare / f"seed_{seed}"
    found = sorted(p.parent.parent for p in root.glob("*/model/config.json"))
    return [p for p in found if not only or p.name in only]


def recipe_paths(method_dir: Path, base: Path) -> tuple[str, str]:
    """(target, data) of one unlearned run, from the recipe it saved."""
    raw = yaml.safe_load((method_dir / "recipe.yaml").read_text())
    target = (raw.get("model") or {}).get("target") or \
        str(Path(raw["prepare"]["out_dir"]) / "target")
    data = (raw.get("eval") or {}).get("data") or raw["data"]["source"]

    def resolve(p: str) -> str:
        return p if Path(p).is_absolute() else str(base / p)

    return resolve(target), resolve(data)


def attack(method_dir: Path, seed: int, out: Path, base: Path, extra: list[str]) -> dict:
    if not (out / "results.json").is_file():
        target, data = recipe_paths(method_dir, base)
        cmd = [sys.executable, "-m", "unlearn", "attack", str(method_dir / "model"),
               "--data", data, "--attacks", "relearn,quantize", "--target", target,
               "--seed", str(seed), "--out", str(out), "--overwrite", *extra]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((out / "results.json").read_text())["recovery"]


def mean_sd(values: list) -> dict:
    xs = [v for v in values if v is not None]
    return {"mean": statistics.fmean(xs) if xs else None,
            "sd": statistics.stdev(xs) if len(xs) > 1 else None, "n": len(xs)}


def cell(stat: dict, seeds: int, digits: int) -> str:
    if stat["mean"] is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat["sd"] is not None:
        text += f" ± {stat['sd']:.{digits}f}"
    return text + (f" (n={stat['n']})" if stat["n"] < seeds else "")


def aggregate(runs: dict) -> dict:
    """runs[method][seed] = recovery section -> table[metric][method][condition] stats."""
    first = next(iter(next(iter(runs.values())).values()))
    metrics, criteria = first["metrics"], first["criteria"]
    table = {"metrics": metrics, "criteria": criteria, "after": {}, "recovery": {},
             "target": {}}
    for name in metrics:
        after, rec = {}, {}
        for method, seeds in runs.items():
            after[method] = {label: mean_sd([
                (r["rows"]["unlearned"][name] if key is None
                 else r["attacks"][key]["metrics"][name]["after"]) for r in seeds.values()
                if key is None or key in r["attacks"]]) for label, key in CONDITIONS}
            rec[method] = {label: mean_sd([
                ((r["attacks"][key]["metrics"][name]["recovery"] or {}).get("value"))
                for r in seeds.values() if key in r["attacks"]])
                for label, key in CONDITIONS if key}
        table["after"][name], table["recovery"][name] = after, rec
        # one target per seed (every method of a seed shares it): sd over seeds, not runs
        per_seed = {seed: r["rows"]["target"][name]
                    for seeds in runs.values() for seed, r in seeds.items()}
        table["target"][name] = mean_sd(list(per_seed.values()))
    return table


def markdown(table: dict, n_seeds: int) -> str:
    lines = [f"Mean ± sd over {n_seeds} seeds; none = the unlearned model on all rows; each "
             f"attack on the rows it did not train on; recovery = (attacked − unlearned) / "
             f"(target − unlearned), – where target = unlearned.", ""]
    labels = [c for c, _ in CONDITIONS]
    for name in table["metrics"]:
        crit = table["criteria"][name]
        t = table["target"][name]
        lines += [f"**{crit['column']}** (target: {cell(t, t['n'], 1)})", "",
                  "| method | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels)]
        for method, row in table["after"][name].items():
            lines.append(f"| {method} | " + " | ".join(cell(row[c], n_seeds, 1)
                                                       for c in labels) + " |")
        lines.append("")
        if crit["direction"] != "down":
            continue
        lines += [f"**Recovery of {crit['title']}**", "",
                  "| method | " + " | ".join(labels[1:]) + " |",
                  "|---|" + "---|" * (len(labels) - 1)]
        for method, row in table["recovery"][name].items():
            lines.append(f"| {method} | " + " | ".join(cell(row[c], n_seeds, 2)
                                                       for c in labels[1:]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("compare", type=Path, help="output_dir of `unlearn run ... --seeds`")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="comma-separated (default: all found)")
    ap.add_argument("--out", type=Path, default=Path("runs/robustness"))
    ap.add_argument("--base-dir", type=Path, default=Path("."),
                    help="where `unlearn run` ran (relative recipe paths start there)")
    args, extra = ap.parse_known_args(argv)
    extra = [x for x in extra if x != "--"]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    only = args.methods.split(",") if args.methods else None
    runs: dict = {}
    for seed in seeds:
        for method_dir in method_dirs(args.compare, seed, only):
            runs.setdefault(method_dir.name, {})[seed] = attack(
                method_dir, seed, args.out / f"seed_{seed}" / method_dir.name, args.base_dir,
                extra)
    if not runs:
        sys.exit(f"no {args.compare}/seed_S/<method>/model for seeds {args.seeds}")
    table = aggregate(runs)
    from lethe.report import atomic_write_text, write_json

    write_json(args.out / "results.json", {"seeds": seeds, **table})
    text = markdown(table, len(seeds))
    atomic_write_text(args.out / "results.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
