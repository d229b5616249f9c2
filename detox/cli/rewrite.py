"""`detox rewrite INPUT.jsonl [-o OUT.jsonl]`: rewrite every line, streaming and resumable."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click


log = logging.getLogger(__name__)


def output_record(rec, result, with_scores: bool) -> dict:
    out = {"id": rec.id, "text": rec.text}
    if rec.context:
        out["context"] = list(rec.context)
    out.update({k: v for k, v in rec.extra.items() if k not in ("rewrite", "scores")})
    out["rewrite"] = result.text
    if with_scores:
        out["scores"] = {k: round(float(v), 6) for k, v in result.scores.items()}
    return out


@click.command("rewrite")
@click.argument("input_file", metavar="INPUT.jsonl")
@click.option("-o", "--output", default="-", show_default=True,
              help="Output JSON Lines file; '-' writes to standard output.")
@click.option("--recipe", "recipe_path", default=None, metavar="RECIPE.yaml",
              help="Rewrite recipe (default: the built-in one, as in recipes/detox/default.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set rewriter.k=10 (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Start the output afresh instead of resuming it.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail",
              show_default=True,
              help="Bad input lines: fail before generating anything, or skip them.")
@click.option("--scores", is_flag=True, help="Add per-line STA/SIM/FL scores of each rewrite.")
@click.option("--dry-run", is_flag=True,
              help="Run the preflight (input lines, output, model/adapter/pool/embedder, "
                   "scorers), print the recipe, the plan and what was checked; generate nothing.")
def rewrite(input_file, output, recipe_path, overrides, overwrite, on_error, scores, dry_run):
    """Rewrite each line's `text` politely; writes id, text, rewrite (+ scores) per line.

    INPUT.jsonl has one JSON object per line with `id`, `text` and optionally `context`
    (earlier dialogue turns). Rerunning with the same -o resumes: ids already written are
    skipped (a line torn by a kill is dropped first). '-' reads standard input.
    """
    from detox.rewrite.recipe import load_rewrite_recipe
    from lethe.locks import lock_output

    recipe = load_rewrite_recipe(recipe_path, overrides)
    with_scores = scores or recipe.scores
    if output != "-" and not dry_run:  # one writer per output, held until the last line;
        lock_output(output, "output")  # taken before anything reads the output for resume,
    # and before the imports below (torch, transformers: seconds), so a second writer is
    # refused at once
    from detox import io
    from detox.preflight import check_rewrite, check_rewrite_input
    from lethe.preflight import Preflight
    from lethe.recipe import dump_yaml

    pf = Preflight("detox rewrite")  # every problem below is reported together, exit 2
    if not check_rewrite(pf, recipe, input_file=input_file, output=output, overwrite=overwrite,
                         with_scores=with_scores):
        pf.finish()
    with io.input_path(input_file) as path:
        source = "<stdin>" if input_file == "-" else input_file
        found, done = check_rewrite_input(pf, path, source, output, overwrite=overwrite,
                                          on_error=on_error)
        pf.finish()
        if found.bad:
            click.echo(f"detox rewrite: skipping {found.message(source)}", err=True)
        to_stdout = output == "-"
        if not (to_stdout or overwrite or dry_run) and Path(output).is_file() \
                and Path(output).stat().st_size:
            io.recover_output(Path(output))  # drop a torn last line an interrupted run left
        todo = found.valid - len(done)
        if dry_run:
            click.echo(dump_yaml(recipe), nl=False)
            click.echo(pf.report(), nl=False)
            click.echo(f"# {found.valid} valid line(s), {len(found.bad)} bad, {len(done)} "
                       f"already in {output}, {todo} to rewrite", err=True)
            return
        written, start = 0, time.perf_counter()
        if todo > 0:
            written = _run(recipe, path, done, todo, output, overwrite, with_scores)
        elapsed = time.perf_counter() - start
        rate = written / elapsed if elapsed > 0 and written else 0.0
        click.echo(f"detox rewrite: {written} line(s) rewritten, {len(done)} already done, "
                   f"{len(found.bad)} bad line(s) skipped; {elapsed:.1f} s ({rate:.2f} lines/s)"
                   f" -> {'<stdout>' if to_stdout else output}", err=True)


def _run(recipe, path: Path, done: set[str], todo: int, output: str, overwrite: bool,
         with_scores: bool) -> int:
    from detox import io
    from detox.rewrite.rewriters import build_rewriter
    from eval.detox.scorers import Scorers

    need_scorers = with_scores or getattr(recipe.rewriter, "needs_scorers", False)
    scorers = Scorers.from_config(recipe.scorers) if need_scorers else None
    rewriter = build_rewriter(recipe.rewriter, recipe, scorers)
    if overwrite and output != "-":
        # Only now, with the input validated and the model loaded, is the old output dropped.
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with open(output, "wb") as fh:
            os.fsync(fh.fileno())
    pending = (r for r in io.records(path) if r.key not in done)
    with io.JsonlWriter(output) as writer:
        return stream(rewriter, pending, writer, recipe.generation.window, todo,
                      scorers if with_scores else None)


def stream(rewriter, records, writer, window: int, total: int | None = None,
           scorers=None) -> int:
    """Rewrite `records` `window` at a time (the rewriter batches inside a window), appending
    each window to `writer` (flush + fsync); with `scorers`, add each rewrite's STA/SIM/FL.
    Returns the number of lines written."""
    from tqdm import tqdm

    from detox import io
    from detox.rewrite.rewriters import Item, add_scores

    # tqdm shows s/it below 1 it/s; the postfix always gives lines/s
    bar_format = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                  "[{elapsed}<{remaining}{postfix}]")
    written, start = 0, time.perf_counter()
    with tqdm(total=total, unit="line", file=sys.stderr, dynamic_ncols=True, desc="rewrite",
              bar_format=bar_format) as bar:
        for chunk in io.batched(records, window):
            items = [Item(r.text, r.context) for r in chunk]
            results = rewriter.rewrite(items)
            if scorers is not None:
                add_scores(results, items, scorers)
            writer.write(output_record(r, res, scorers is not None)
                         for r, res in zip(chunk, results))
            written += len(chunk)
            bar.set_postfix_str(f"{written / (time.perf_counter() - start):.2f} lines/s",
                                refresh=False)
            bar.update(len(chunk))
    return written
