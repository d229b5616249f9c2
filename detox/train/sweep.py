"""A weighting sweep (`sweep.weightings`): one RL policy per weighting, then one trade-off
table and plot of appropriateness against similarity on held-out arguments."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from detox.train.algorithms import get_algorithm
from detox.train.recipe import DetoxTrainRecipe, with_weights
from lethe.recipe import to_dict

log = logging.getLogger(__name__)


def run_sweep(recipe: DetoxTrainRecipe, *, resume=False, scorers=None) -> dict:
    """One policy per weighting (OUTPUT_DIR/sweep/<tag>), then one trade-off table + plot.
    A weighting whose results.json was written for the same recipe is not trained again."""
    from lethe.cli import is_main_process
    from lethe.lm import pick_device
    from lethe.report import (atomic_write_text, library_versions, machine_info, markdown_table,
                              write_json)

    from detox.train.rewards import build_scorers

    out = Path(recipe.output_dir)
    if scorers is None:  # built once, shared by every weighting
        scorers = build_scorers(recipe.rewards, pick_device(),
                                need=("appropriateness", "similarity"))
    rows = sweep_rows(_train_weightings(recipe, resume, scorers))
    header = ["weighting", "appropriateness", "similarity", "reward", "train_reward_first",
              "train_reward_last"]
    table = markdown_table(header, [[r.get(k) for k in header] for r in rows], digits=3)
    results = {"command": "detox train (sweep)", "recipe": to_dict(recipe), "rows": rows,
               "versions": library_versions(), "machine": machine_info()}
    if not is_main_process():  # rank 0 writes the report (and holds the output's lock)
        return results
    write_json(out / "results.json", results)
    _plot_tradeoff(rows, out / "results.png")
    atomic_write_text(out / "results.md",
                      f"# Weighting sweep: {recipe.model.name}, {recipe.algorithm}\n\n"
                      f"Held-out means of the reward parts per weighting (greedy rewrites).\n\n"
                      f"{table}\n![trade-off](results.png)\n")
    return results


def _train_weightings(recipe: DetoxTrainRecipe, resume, scorers) -> list[tuple]:
    """[(weighting, results)] in the sweep's order, training only what is not done yet."""
    out = Path(recipe.output_dir)
    runs = []
    for i, w in enumerate(recipe.sweep.weightings):
        sub = with_weights(recipe, w, str(out / "sweep" / w.tag()))
        if i > 0:  # the initial policy is the same for every weighting: score it once
            sub = dataclasses.replace(sub, evaluate=dataclasses.replace(sub.evaluate,
                                                                        initial=False))
        done = Path(sub.output_dir) / "results.json"
        same = json.loads(json.dumps(to_dict(sub)))  # as results.json stores it
        if done.is_file() and json.loads(done.read_text()).get("recipe") == same:
            log.info("sweep: %s already trained, reusing %s", w.tag(), done)
            res = json.loads(done.read_text())
        else:
            res = get_algorithm(sub.algorithm)(sub, resume=resume, scorers=scorers)
        runs.append((w, res))
    return runs


def sweep_rows(runs: list[tuple]) -> list[dict]:
    """One row per weighting (after the initial policy's, when it was scored)."""
    rows = []
    first_eval = runs[0][1].get("eval", {}) if runs else {}
    if "initial" in first_eval:
        init = first_eval["initial"]
        rows.append({"weighting": "initial policy", "appropriateness": init.get(
            "appropriateness"), "similarity": init.get("similarity")})
    for w, res in runs:
        fin = res.get("eval", {}).get("final", {})
        cs = res.get("curve_summary", {})
        rows.append({"weighting": w.tag(), "w_app": w.appropriateness, "w_sim": w.similarity,
                     "appropriateness": fin.get("appropriateness"),
                     "similarity": fin.get("similarity"), "reward": fin.get("reward"),
                     "train_reward_first": cs.get("first"), "train_reward_last": cs.get("last"),
                     "dir": res.get("saved")})
    return rows


def _plot_tradeoff(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lethe.report import save_figure

    pts = [r for r in rows if r.get("similarity") is not None
           and r.get("appropriateness") is not None]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in pts:
        ax.scatter(r["similarity"], r["appropriateness"],
                   marker="x" if r["weighting"] == "initial policy" else "o")
        ax.annotate(r["weighting"], (r["similarity"], r["appropriateness"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("similarity to the original")
    ax.set_ylabel("P(appropriate)")
    ax.set_title("appropriateness vs content preservation")
    save_figure(fig, path)
    plt.close(fig)

