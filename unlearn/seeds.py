"""`unlearn run RECIPE --seeds 0,1,2`: the whole recipe once per training seed, one report.

Each seed is the recipe with `seed: S` (model initialisation, data order, unlearning), its
own output directory `output_dir/seed_S` and, when the recipe prepares its own models, its
own `prepare.out_dir/seed_S` (paths under prepare.out_dir in `model:` follow) — unless
`--same-models`: then every seed unlearns the one target prepared in `prepare.out_dir` (by the
first seed's run), as MUSE evaluates methods on fixed targets, and only unlearning varies. The
world is shared: its generator seed (`world.seed`) is data, not training. Every seed's inputs are
checked before the first one trains; finished seeds are skipped with `--resume`; the report
(`eval/muse/seeds.py`) is mean ± sd over the seeds, written to output_dir.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from lethe.errors import LetheError

log = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LetheError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") \
            from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise LetheError(f"--seeds {text!r}: give at least one seed, each once (e.g. 0,1,2)")
    return seeds


def seed_overrides(rec, seed: int, same_models: bool = False) -> list[str]:
    """The `--set` overrides that turn `rec` into its run for `seed`. same_models: every seed
    unlearns the same prepared target (prepared once, by the first seed's run), as MUSE's
    fixed targets; only the unlearning (data order, LoRA initialisation) varies."""
    out = [f"seed={seed}", f"output_dir={Path(rec.output_dir) / f'seed_{seed}'}"]
    if rec.prepare is not None and not same_models:
        models = Path(rec.prepare.out_dir)
        out.append(f"prepare.out_dir={models / f'seed_{seed}'}")
        for key in ("target", "retrain"):
            spec = getattr(rec.model, key)
            if spec and Path(spec).parent == models:  # e.g. runs/demo/models/retrain
                out.append(f"model.{key}={models / f'seed_{seed}' / Path(spec).name}")
    return out


def run_seeds(rec, recipe_path: str, overrides, seeds: list[int], *, dry_run: bool,
              resume: bool, overwrite: bool, evaluate: bool,
              same_models: bool = False) -> dict | None:
    from lethe.cli import is_main_process
    from lethe.locks import lock_output
    from lethe.outputs import prepare_output_dir
    from unlearn.pipeline import run_recipe
    from unlearn.preflight import preflight_run
    from unlearn.recipe import load_unlearn_recipe

    root = Path(rec.output_dir)
    if not dry_run:
        lock_output(root, "output_dir")  # one writer for the whole sweep
    runs = {s: load_unlearn_recipe(recipe_path,
                                   list(overrides) + seed_overrides(rec, s, same_models))
            for s in seeds}
    todo = {s: r for s, r in runs.items() if not (resume and _finished(r, evaluate))}
    for seed, r in todo.items():  # every seed is checked before the first one trains
        checked = preflight_run(r, resume=resume, overwrite=overwrite, evaluate=evaluate)
        if dry_run:
            click.echo(f"# seed {seed}: output_dir {r.output_dir}")
            click.echo(checked.report(), nl=False)
    if dry_run:
        return None
    if is_main_process():
        prepare_output_dir(root, overwrite=overwrite, resume=resume, what="output_dir")
    for seed in seeds:
        if seed not in todo:
            log.info("seed %d already finished in %s; skipping", seed, runs[seed].output_dir)
            continue
        log.info("seed %d of %s: %s", seed, seeds, runs[seed].output_dir)
        run_recipe(runs[seed], recipe_path, resume=resume, overwrite=overwrite,
                   evaluate=evaluate)
    if not (evaluate and rec.eval.enabled and is_main_process()):
        return None
    return write_aggregate(root, {s: r.output_dir for s, r in runs.items()})


def _finished(r, evaluate: bool) -> bool:
    path = Path(r.output_dir) / "results.json"
    if not evaluate:
        return (Path(r.output_dir) / "ledger.json").is_file()
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError):
        return False


def write_aggregate(root: Path, dirs: dict[int, str]) -> dict:
    """Fold every seed's results.json into root/results.{json,md,png}; echo the table."""
    from eval.muse.seeds import aggregate, render_markdown, write_seed_report

    per_seed = {}
    for seed, d in dirs.items():
        path = Path(d) / "results.json"
        try:
            per_seed[seed] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LetheError(f"cannot read {path} of seed {seed} ({err}); rerun with --resume") \
                from None
    agg = aggregate(per_seed)
    agg["runs"] = {str(s): str(d) for s, d in dirs.items()}
    write_seed_report(agg, root)
    click.echo(render_markdown(agg), nl=False)
    click.echo(f"done: {root}")
    return agg
