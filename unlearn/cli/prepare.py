"""`unlearn prepare RECIPE`: generate the world and train the target/retrain checkpoints."""

import json

import click

from lethe.cli import is_main_process
from unlearn.cli.common import overrides_option, recipe_argument


@click.command()
@recipe_argument
@overrides_option
@click.option("--overwrite", is_flag=True, help="Retrain even if target/retrain already exist.")
@click.option("--dry-run", is_flag=True,
              help="Run the preflight (data, base model, trainer settings, out_dir, disk), "
                   "print what it checked, and stop before generating or training anything.")
def prepare(recipe, overrides, overwrite, dry_run):
    """Train the target (forget+retain) and retrain (retain only) models of RECIPE's world."""
    from unlearn.preflight import preflight_prepare
    from unlearn.prepare import prepare as run_prepare
    from unlearn.recipe import load_unlearn_recipe

    rec = load_unlearn_recipe(recipe, overrides)
    checked = preflight_prepare(rec, overwrite=overwrite)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    summary = run_prepare(rec, overwrite=overwrite)
    if is_main_process():
        click.echo(json.dumps(summary, indent=2))
