"""`unlearn run RECIPE`: prepare what is missing, unlearn, save, evaluate, report."""

import click

from lethe.cli import is_main_process
from unlearn.cli.common import overrides_option, recipe_argument


@click.command()
@recipe_argument
@overrides_option
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and exit.")
@click.option("--resume", is_flag=True,
              help="Continue a killed run: skip finished requests, resume from checkpoints.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output_dir.")
@click.option("--no-eval", is_flag=True, help="Skip the evaluation after unlearning.")
def run(recipe, overrides, dry_run, resume, overwrite, no_eval):
    """Unlearn with RECIPE's method and write the checkpoint and the six-way report.

    Multi-GPU: `accelerate launch -m unlearn run RECIPE` (or torchrun / deepspeed) with
    `train.deepspeed: recipes/deepspeed/zero3.json`; evaluation runs on rank 0.
    """
    from lethe.recipe import dump_yaml
    from unlearn.recipe import load_unlearn_recipe

    rec = load_unlearn_recipe(recipe, overrides)
    if dry_run:
        click.echo(dump_yaml(rec), nl=False)
        return
    from lethe.locks import lock_output

    lock_output(rec.output_dir, "output_dir")  # rank 0 holds it until the report is written
    from eval.muse.report import render_markdown
    from lethe.outputs import prepare_output_dir
    from unlearn import pipeline
    from unlearn.prepare import ensure_world, prepare
    from unlearn.recipe import expand_variants

    if is_main_process():
        if rec.prepare is not None:
            prepare(rec)  # generates the world first when it is missing
        elif rec.world is not None:
            ensure_world(rec.world)
    _barrier()
    variants = expand_variants(rec, recipe)
    if variants:  # a comparison: every variant into output_dir/<label>, one report
        if is_main_process():
            prepare_output_dir(rec.output_dir, overwrite=overwrite, resume=resume,
                               what="output_dir")
        runs = [(label, pipeline.run(v, resume=resume, overwrite=overwrite))
                for label, v in variants]
    else:
        runs = [(rec.method.name, pipeline.run(rec, resume=resume, overwrite=overwrite))]
    if not is_main_process():
        return
    if rec.eval.enabled and not no_eval:
        results = pipeline.evaluate_run(rec, runs)
        click.echo(render_markdown(results), nl=False)
    click.echo(f"done: {rec.output_dir}")


def _barrier():
    """Other ranks wait while rank 0 generates the world / prepares models."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
