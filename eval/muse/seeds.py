"""Results over several training seeds: mean ± sd of every MUSE score, per model row.

A table from one training run on one machine is an anecdote: float results of training differ
between CPU types and thread counts, and between seeds on the same machine. `unlearn run
--seeds 0,1,2` trains and evaluates once per seed; this module folds the per-seed
`results.json` files into one report whose cells are mean ± sd (sample sd, n - 1) with the
min-max range and every seed's value beside it, so a claim can say in how many seeds it holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

SCHEMA = "lethe.muse.seeds/1"


def spread(values: Sequence[float]) -> dict:
    """mean, sample sd (0 for one value), min, max and n of `values` (None entries dropped)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(xs), "max": max(xs), "n": len(xs)}


def aggregate(per_seed: dict[int, dict]) -> dict:
    """Fold {seed: results.json dict} into one report: rows in the first seed's order; a row
    or metric missing from some seed is aggregated over the seeds that have it."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    labels = [row["label"] for row in first["models"]]
    for seed in seeds[1:]:
        labels += [r["label"] for r in per_seed[seed]["models"] if r["label"] not in labels]
    rows = []
    for label in labels:
        found = {s: _row(per_seed[s], label) for s in seeds}
        found = {s: r for s, r in found.items() if r is not None}
        role = next(iter(found.values()))["role"]
        scores = {}
        for metric in first["metrics"]:
            values = {s: r["scores"].get(metric, {}).get("value") for s, r in found.items()}
            inside_zero = {s: _ci_holds_zero(r["scores"].get(metric)) for s, r in found.items()}
            scores[metric] = {**spread(list(values.values())),
                              "values": {str(s): v for s, v in values.items()},
                              "ci_holds_zero": {str(s): z for s, z in inside_zero.items()}}
        rows.append({"label": label, "role": role, "seeds": [str(s) for s in found],
                     "scores": scores})
    return {"schema": SCHEMA, "seeds": seeds, "metrics": first["metrics"],
            "criteria": first.get("criteria", {}), "data": first.get("data"),
            "models": rows, "machine": first.get("machine"),
            "versions": first.get("versions")}


def _row(results: dict, label: str) -> dict | None:
    return next((r for r in results["models"] if r["label"] == label), None)


def _ci_holds_zero(score: dict | None) -> bool | None:
    if not score or score.get("ci_low") is None or score.get("ci_high") is None:
        return None
    return score["ci_low"] <= 0 <= score["ci_high"]


def _cell(s: dict) -> str:
    if s["mean"] is None:
        return "–"
    if s["n"] == 1:
        return f"{s['mean']:.1f}"
    return f"{s['mean']:.1f} ± {s['sd']:.1f} ({s['min']:.1f}–{s['max']:.1f})"


def render_markdown(agg: dict) -> str:
    """One table, mean ± sd (min–max) over the seeds; the machine it ran on beneath."""
    titles = [agg["criteria"].get(m, {}).get("column", m) for m in agg["metrics"]]
    lines = [f"Seeds {', '.join(map(str, agg['seeds']))}: mean ± sd (min–max) over "
             f"{len(agg['seeds'])} training seeds.", "",
             "| model | " + " | ".join(titles) + " |",
             "|---|" + "---|" * len(titles)]
    for row in agg["models"]:
        cells = [_cell(row["scores"][m]) for m in agg["metrics"]]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    machine = agg.get("machine") or {}
    if machine:
        lines += ["", f"Machine: {machine.get('cpu')}, {machine.get('cpus_usable', '?')} "
                      f"core(s), torch threads {machine.get('torch_threads')}."]
    return "\n".join(lines) + "\n"


def plot(agg: dict):
    """One panel per metric: each model's mean with an sd error bar and the seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = agg["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    labels = [r["label"] for r in agg["models"]]
    for ax, metric in zip(axes[0], metrics):
        for i, row in enumerate(agg["models"]):
            s = row["scores"][metric]
            if s["mean"] is None:
                continue
            ax.bar(i, s["mean"], yerr=s["sd"], color="#9ab", capsize=3)
            points = [v for v in s["values"].values() if v is not None]
            ax.plot([i] * len(points), points, "k.", markersize=4)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(agg["criteria"].get(metric, {}).get("column", metric), fontsize=9)
        ax.axhline(0, color="grey", linewidth=0.5)
    fig.suptitle(f"mean ± sd over seeds {', '.join(map(str, agg['seeds']))}", fontsize=9)
    fig.tight_layout()
    return fig


def write_seed_report(agg: dict, out_dir: str | Path) -> dict[str, Path]:
    """results.json, results.md and results.png of the seed aggregate into `out_dir`."""
    from lethe.report import atomic_write_text, save_figure, write_json

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    paths = {"json": write_json(out / "results.json", agg),
             "md": atomic_write_text(out / "results.md", render_markdown(agg))}
    fig = plot(agg)
    paths["png"] = save_figure(fig, out / "results.png")
    plt.close(fig)
    return paths
