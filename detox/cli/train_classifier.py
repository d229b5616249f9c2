"""`detox train-classifier RECIPE`: fine-tune the reward's appropriateness classifier."""

from __future__ import annotations

import click

from lethe.recipe import dump_yaml


@click.command("train-classifier", help="""Fine-tune a sequence classifier and report macro-F1.

Trains the encoder named in model.name (a new classification head; offline: `minilm`) on the
training fold of a labelled table through the shared trainer (cross-entropy), then reports
macro-F1 and accuracy on the valid and test folds beside the majority-class baseline. Writes
OUTPUT_DIR/model (loadable by any HF classifier consumer, e.g. the RL reward
rewards.appropriateness.model), metrics.jsonl, results.json and results.md.

The default data is the appropriateness corpus (post_text -> Inappropriateness, folds from the
fold0.0 column). Example:

  detox train-classifier recipes/detox/classifier.yaml --set train.num_train_epochs=1
""")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --set train.learning_rate=5e-5 (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Print the recipe, run the preflight (model, labelled data, trainer config, "
                   "output_dir, disk), print what it checked, then stop.")
@click.option("--resume", is_flag=False, flag_value="auto", default=None, metavar="[CKPT]",
              help="Resume from the newest checkpoint in output_dir (or the one given).")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty output_dir.")
def train_classifier(recipe, overrides, dry_run, resume, overwrite):
    from detox.preflight import preflight_classifier
    from detox.train.recipe import load_classifier_recipe

    r = load_classifier_recipe(recipe, overrides)
    if dry_run:
        click.echo(dump_yaml(r), nl=False)
    else:  # one writer per run directory (rank 0 holds it), before the preflight reads it
        from lethe.locks import lock_output

        lock_output(r.output_dir, "output_dir")
    checked = preflight_classifier(r, resume=resume, overwrite=overwrite)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    from detox.train.classifier import train_classifier as run
    res = run(r, resume=resume or False)
    if "test" in res:
        t = res["test"]
        click.echo(f"test macro-F1 {t['macro_f1']:.3f} (accuracy {t['accuracy']:.3f}, "
                   f"majority class {t['majority_macro_f1']:.3f}, n={t['n']}); "
                   f"model: {res.get('saved')}; report: {r.output_dir}/results.md")
