"""What `detox train` (grpo / rloo) writes: the reward curve per logged step, its plot, and
results.md beside results.json."""

from __future__ import annotations

import json
from pathlib import Path

from lethe.recipe import dump_yaml

def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reward_curve(records: list[dict]) -> list[dict]:
    """Per logged step: the mean reward and each part's mean (TRL's rewards/<part>/mean or
    our reward_parts/<part>), plus KL and loss when logged."""
    out = []
    for r in records:
        if "reward" not in r:
            continue
        row = {"step": r["step"], "reward": r["reward"]}
        for k, v in r.items():
            if k.startswith("rewards/") and k.endswith("/mean"):
                row[k.split("/")[1]] = v
            elif k.startswith("reward_parts/"):
                row[k.split("/", 1)[1]] = v
        for k in ("kl", "loss", "reward_std", "step_time"):
            if k in r:
                row[k] = r[k]
        out.append(row)
    return out


def summarise_curve(curve: list[dict]) -> dict:
    if not curve:
        return {}
    k = max(1, min(5, len(curve) // 3))
    first = [r["reward"] for r in curve[:k]]
    last = [r["reward"] for r in curve[-k:]]
    return {"k": k, "first": sum(first) / k, "last": sum(last) / k}


def _plot_curve(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lethe.report import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in curve]
    keys = ["reward"] + sorted({k for r in curve for k in r} - {"step", "reward", "kl", "loss",
                                                                 "reward_std", "step_time"})
    for k in keys:
        ax.plot(steps, [r.get(k) for r in curve], marker="o", ms=3, label=k,
                lw=2 if k == "reward" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean over the step's completions")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def write_report(recipe, out: Path, results: dict) -> None:
    from lethe.report import atomic_write_text, markdown_table, write_json

    write_json(out / "results.json", results)
    curve = results.get("curve", [])
    lines = [f"# detox train ({recipe.algorithm}): {recipe.model.name}\n",
             f"{results['steps']} steps in {results['train_seconds']:.0f} s "
             f"({results['seconds_per_step']:.1f} s/step); {results['data']['train']['kept']} "
             f"training prompts. Reward = {recipe.rewards.combine} mean of "
             + ", ".join(f"{k} x {v:.2f}" for k, v in results["weights"].items()) + ".\n"]
    if curve:
        parts = sorted({k for r in curve for k in r} - {"step", "reward", "kl", "loss",
                                                         "reward_std", "step_time"})
        header = ["step", "reward"] + parts + [k for k in ("kl", "loss") if k in curve[0]]
        lines.append("## Reward per step (training samples)\n")
        lines.append(markdown_table(header, [[r.get(k) for k in header] for r in curve],
                                    digits=4))
        s = results["curve_summary"]
        lines.append(f"\nMean reward over the first {s['k']} steps {s['first']:.4f}, "
                     f"over the last {s['k']} steps {s['last']:.4f}.\n")
        _plot_curve(curve, out / "reward_curve.png", f"{recipe.algorithm}: reward per step")
    ev = results.get("eval")
    if ev:
        keys = [k for k in ev["final"]]
        rows = [[name] + [ev[name][k] for k in keys] for name in ("initial", "final")
                if name in ev]
        lines.append(f"\n## Held-out arguments (n = {ev['n']}, greedy)\n")
        lines.append(markdown_table(["policy"] + keys, rows, digits=3))
    lines.append(f"\nModel: `{results['saved']}`\n\n```yaml\n{dump_yaml(recipe)}```\n")
    atomic_write_text(out / "results.md", "\n".join(lines))

