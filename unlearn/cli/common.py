"""Options shared by several `unlearn` commands."""

import click

recipe_argument = click.argument("recipe", type=click.Path(dir_okay=False))
overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a recipe field, e.g. --set train.learning_rate=1e-4 (repeatable).")
