"""The `unlearn` console script: one module per command, imported when the command runs."""

import click

from lethe.cli import LazyGroup, run_cli, setup_logging

COMMANDS = {
    "world": "unlearn.cli.world:world",
    "prepare": "unlearn.cli.prepare:prepare",
    "run": "unlearn.cli.run:run",
    "eval": "unlearn.cli.eval:eval_command",
    "attack": "unlearn.cli.attack:attack",
    "methods": "unlearn.cli.methods:methods",
    "covariance": "unlearn.cli.covariance:covariance",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging (also from transformers).")
def cli(verbose):
    """Lethe unlearning: build the benchmark world, prepare models, unlearn, evaluate, attack."""
    setup_logging(verbose)


def main():
    run_cli(cli, "unlearn")
