"""The `detox` console script: one module per command, imported when the command runs."""

import click

from lethe.cli import LazyGroup, run_cli, setup_logging

COMMANDS = {
    "rewrite": "detox.cli.rewrite:rewrite",
    "eval": "detox.cli.eval:eval_command",
    "train": "detox.cli.train:train",
    "train-classifier": "detox.cli.train_classifier:train_classifier",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (also from transformers).")
def cli(verbose):
    """Lethe detox: rewrite offensive text, score rewrites, train rewriters by RL."""
    setup_logging(verbose)


def main():
    run_cli(cli, "detox")
