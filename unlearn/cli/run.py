"""`unlearn run RECIPE`: prepare what is missing, unlearn, save, evaluate, report."""

import click

from lethe.cli import is_main_process
from lethe.errors import LetheError
from unlearn.cli.common import overrides_option, recipe_argument


@click.command()
@recipe_argument
@overrides_option
@click.option("--dry-run", is_flag=True,
              help="Print the resolved recipe, run the preflight (every input and output "
                   "checked, nothing trained or written) and print what it checked.")
@click.option("--resume", is_flag=True,
              help="Continue a killed run: skip finished requests, resume from checkpoints.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output_dir.")
@click.option("--no-eval", is_flag=True, help="Skip the evaluation after unlearning.")
@click.option("--seeds", default=None, metavar="S1,S2,...",
              help="Run the whole recipe (prepare included) once per training seed, into "
                   "output_dir/seed_S (models into prepare.out_dir/seed_S), and write one "
                   "report of mean ± sd over the seeds into output_dir. Example: 0,1,2.")
@click.option("--same-models", is_flag=True,
              help="With --seeds: prepare the target and retrain models once (in "
                   "prepare.out_dir, by the first seed's run) and vary only the unlearning "
                   "seed, as MUSE compares methods on fixed targets.")
def run(recipe, overrides, dry_run, resume, overwrite, no_eval, seeds, same_models):
    """Unlearn with RECIPE's method and write the checkpoint and the six-way report.

    Before anything is generated, trained or written, a preflight checks what every stage
    will read (data splits and fields, models and tokenizers, the PrivLeak reference,
    DeepSpeed config, output_dir, free disk) and reports every problem at once (exit 2).

    Multi-GPU: `accelerate launch -m unlearn run RECIPE` (or torchrun / deepspeed) with
    `train.deepspeed: recipes/deepspeed/zero3.json`; evaluation runs on rank 0.
    """
    from lethe.recipe import dump_yaml
    from unlearn.preflight import preflight_run
    from unlearn.recipe import load_unlearn_recipe

    rec = load_unlearn_recipe(recipe, overrides)
    if seeds is not None:
        from unlearn.seeds import parse_seeds, run_seeds

        run_seeds(rec, recipe, overrides, parse_seeds(seeds), dry_run=dry_run, resume=resume,
                  overwrite=overwrite, evaluate=not no_eval, same_models=same_models)
        return
    if same_models:
        raise LetheError("--same-models goes with --seeds (it says which models the seeds "
                         "share); add --seeds S1,S2,... or drop it")
    if dry_run:
        click.echo(dump_yaml(rec), nl=False)
    else:  # one writer per output: held from before the preflight reads output_dir until the
        from lethe.locks import lock_output  # report is written (rank 0 only)

        lock_output(rec.output_dir, "output_dir")
    checked = preflight_run(rec, resume=resume, overwrite=overwrite, evaluate=not no_eval)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    from eval.muse.report import render_markdown
    from unlearn.pipeline import run_recipe

    results = run_recipe(rec, recipe, resume=resume, overwrite=overwrite, evaluate=not no_eval)
    if not is_main_process():
        return
    if results is not None:
        click.echo(render_markdown(results), nl=False)
    click.echo(f"done: {rec.output_dir}")
