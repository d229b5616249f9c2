"""`detox train RECIPE`: train a rewriter by RL from machine feedback (or SFT on pairs)."""

from __future__ import annotations

import click


@click.command("train", help="""Train a rewriting policy from a recipe.

algorithm: grpo (default) or rloo -- RL from machine feedback (Ziegenbein et al., 2024) with
TRL: the policy rewrites arguments the appropriateness classifier flags, and is rewarded with a
weighted mean of eval.detox scores (appropriateness, similarity, optional fluency and length)
under a KL penalty to the initial policy (train.beta, default 0.001857), with LoRA.
algorithm: sft -- supervised rewriting on parallel pairs (e.g. ParaDetox), loss on the
response tokens only; its adapter can warm-start RL (model.name: <its output_dir>/model).

The train: section goes to GRPOConfig / RLOOConfig (sft: TrainingArguments) unchanged, so
DeepSpeed (train.deepspeed), bf16, gradient accumulation etc. work as in any HF trainer.
A sweep: section trains one policy per weighting and writes a trade-off table and plot.
Before any model is loaded a preflight checks everything the run will read and write and
reports every problem at once (exit 2); a non-empty output_dir needs --resume or --overwrite.

Writes OUTPUT_DIR/model (a LoRA adapter that `detox rewrite` and lethe.loading load as a
model), metrics.jsonl (reward and parts per step), results.json/.md, reward_curve.png.

\b
Examples:
  detox train recipes/detox/rl_smollm2.yaml
  detox train recipes/detox/rl_sweep.yaml --dry-run
  accelerate launch --num_processes 8 -m detox train recipes/detox/rl_llama8b_zero3.yaml
""")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --set train.max_steps=5 (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Resolve the recipe and the trainer config, run the preflight (policy, data, "
                   "reward models, DeepSpeed, output_dir, disk), print all three, and stop "
                   "before loading any model.")
@click.option("--resume", is_flag=False, flag_value="auto", default=None, metavar="[CKPT]",
              help="Resume from the newest checkpoint in output_dir (or the one given).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output_dir.")
def train(recipe, overrides, dry_run, resume, overwrite):
    from detox.preflight import preflight_train
    from detox.train.runner import dry_run as resolve
    from detox.train.runner import run
    from detox.train.recipe import load_train_recipe
    from lethe.locks import lock_output

    r = load_train_recipe(recipe, overrides)
    if dry_run:
        click.echo(resolve(r), nl=False)
    else:  # one writer per run directory (rank 0 holds it), before the preflight reads it
        lock_output(r.output_dir, "output_dir")
    checked = preflight_train(r, resume=resume, overwrite=overwrite)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    res = run(r, resume=resume or False)
    if "rows" in res:  # a sweep
        click.echo(f"sweep of {len(res['rows'])} rows: {r.output_dir}/results.md")
        return
    s = res.get("curve_summary") or {}
    msg = f"{res['steps']} steps, {res['seconds_per_step']:.1f} s/step"
    if s:
        msg += f"; reward first {s['k']} steps {s['first']:.3f} -> last {s['k']} {s['last']:.3f}"
    click.echo(f"{msg}; model: {res['saved']}; report: {r.output_dir}/results.md")
