"""Click plumbing shared by the `unlearn` and `detox` console scripts.

Commands live one per module and are imported only when invoked (`LazyGroup`), so
`unlearn --help` stays fast and a broken optional dependency of one command cannot break the
others. `run_cli` turns every `LetheError` into one line on stderr (one per problem for a
`lethe.preflight.PreflightError`) and exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from lethe.errors import LetheError


class LazyGroup(click.Group):
    """A click group whose subcommands are `"module:attribute"` strings, imported on use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module_name, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # transformers/datasets are chatty at INFO; keep them at WARNING unless asked.
    for noisy in ("transformers", "datasets", "urllib3", "filelock", "httpx", "huggingface_hub",
                  "DeepSpeed", "deepspeed", "torch.distributed", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:  # per-file "Loading weights" bars would drown Lethe's own progress bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    import datasets  # its per-split bars would break "one line per error" on stderr

    datasets.disable_progress_bars()


def run_cli(group: click.Group, prog_name: str) -> None:
    """Entry point: run `group`, mapping LetheError to one line + exit 2."""
    try:
        group.main(args=sys.argv[1:], prog_name=prog_name, standalone_mode=False)
    except LetheError as err:
        # One line per problem: a preflight reports every problem it found at once.
        for line in str(err).splitlines() or [""]:
            click.echo(f"{prog_name}: error: {line}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:  # usage errors, bad option values
        err.show()
        sys.exit(2 if err.exit_code == 2 else err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed): only it writes reports and prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def int_list(text: str | None, what: str) -> tuple[int, ...] | None:
    """Comma-separated integers (e.g. --layers 0,2,-1); None for 'all' or no value."""
    if text is None or text.strip().lower() == "all":
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LetheError(f"{what} must be comma-separated integers or 'all', got {text!r}") \
            from None
