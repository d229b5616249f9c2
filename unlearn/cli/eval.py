"""`unlearn eval`: the MUSE six-way evaluation of one or more checkpoints.

    unlearn eval MODEL [MODEL ...] --data DATA [--labels a,b,...]
                 [--retrain MODEL | --retrain-auc FLOAT|muse-news|muse-books]
                 [--target MODEL] [--protocol scal|sust]
                 [--metrics verbmem_f,knowmem_f,privleak,knowmem_r] [--out DIR] [--overwrite]
                 [--batch-size N] [--min-k 0.4] [--limit N] [--seed 0]

MODEL is a hub id, a local checkpoint, a GGUF file or a LoRA adapter directory. Several
MODELs are rows of one table; with --protocol they are the checkpoints of forget_1..N in
order (C5 scalability / C6 sustainability). A preflight checks everything (metric names,
retrain reference, data tables, models and tokenizers, output directory) before the first model
is loaded and reports every problem at once; --dry-run stops after it.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from lethe.errors import LetheError


def _default_label(spec: str) -> str:
    p = Path(spec)
    name = p.stem if p.suffix == ".gguf" else (p.name or spec)
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-") or "model"


def _labels(models: tuple[str, ...], labels: str | None) -> list[str]:
    if labels:
        out = [x.strip() for x in labels.split(",")]
        if len(out) != len(models) or not all(out):
            raise LetheError(f"--labels gives {len(out)} label(s) for {len(models)} model(s); "
                             f"give one non-empty label per MODEL, comma-separated")
        return out
    out = [_default_label(m) for m in models]
    if len(set(out)) < len(out):  # e.g. runs/a/final and runs/b/final
        out = [f"{i + 1}-{x}" for i, x in enumerate(out)]
    return out


@click.command("eval")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--data", required=True, metavar="DATA",
              help="Benchmark world directory (DATA/{config}/{split}.jsonl) or a hub dataset "
                   "with MUSE's layout (e.g. muse-bench/MUSE-News).")
@click.option("--labels", metavar="A,B,...", help="One row label per MODEL (default: names).")
@click.option("--retrain", metavar="MODEL",
              help="Retrain checkpoint: evaluated as a row; its AUC is PrivLeak's reference.")
@click.option("--retrain-auc", metavar="FLOAT|muse-news|muse-books",
              help="PrivLeak's reference AUC in (0, 1], or MUSE's published Min-40% value.")
@click.option("--target", metavar="MODEL",
              help="The model before unlearning, evaluated as a reference row.")
@click.option("--protocol", type=click.Choice(["scal", "sust"]),
              help="MODELs are the checkpoints of {protocol}/forget_1..N, in order (C5/C6).")
@click.option("--metrics", metavar="LIST",
              help="Comma-separated: verbmem_f, knowmem_f, privleak, knowmem_r (default: all; "
                   "privleak only with a retrain reference).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Output directory (default: runs/eval/<labels>).")
@click.option("--overwrite", is_flag=True, help="Replace results in a non-empty --out.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--min-k", type=float, default=0.4, show_default=True,
              help="k of Min-K% Prob for PrivLeak (MUSE: 0.4).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N rows of each evaluated split (quick checks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--n-resamples", type=click.IntRange(min=1), default=9999, show_default=True,
              help="Bootstrap resamples per interval.")
@click.option("--dtype", default="auto", show_default=True,
              help="auto, float32, bfloat16 or float16.")
@click.option("--device", default="auto", show_default=True,
              help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, ...")
@click.option("--revision", default=None, help="Hub revision of the model(s).")
@click.option("--data-revision", default=None, help="Hub revision of DATA.")
@click.option("--dry-run", is_flag=True,
              help="Run the preflight (names, reference, tables, models, --out), print what it "
                   "checked, and stop before loading any model.")
def eval_command(models, data, labels, retrain, retrain_auc, target, protocol, metrics,
                 out_dir, overwrite, batch_size, min_k, limit, seed, n_resamples, dtype, device,
                 revision, data_revision, dry_run):
    """Evaluate MODEL(s) with MUSE's criteria; write results.json, results.md, results.png."""
    from eval.muse import evaluate_models
    from lethe.locks import lock_output
    from lethe.outputs import prepare_output_dir
    from unlearn.preflight import preflight_eval

    try:  # datasets' progress bars would turn one-line errors into several lines
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass

    if not dry_run:  # one writer per report directory, before the preflight reads it
        names = _labels(models, labels)
        lock_output(Path(out_dir) if out_dir else Path("runs") / "eval" / "_".join(names)[:80],
                    "--out directory")
    checked, plan = preflight_eval(
        models, data=data, labels=lambda: _labels(models, labels), retrain=retrain,
        retrain_auc=retrain_auc, target=target, protocol=protocol, metrics=metrics,
        out=lambda names: Path(out_dir) if out_dir else
        Path("runs") / "eval" / "_".join(names)[:80], overwrite=overwrite,
        settings=dict(batch_size=batch_size, seed=seed, min_k=min_k, limit=limit,
                      n_resamples=n_resamples),
        revision=revision, data_revision=data_revision, device=device)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    rows = _entries(models, plan.labels, retrain, target, dtype=dtype, device=device,
                    revision=revision)
    out = prepare_output_dir(plan.out, overwrite=overwrite)
    results = evaluate_models(rows["models"], data, plan.metrics, retrain=rows["retrain"],
                              target=rows["target"], retrain_auc=plan.reference,
                              settings=plan.settings, out_dir=out, protocol=protocol,
                              data_revision=data_revision)
    from eval.muse.report import render_markdown

    click.echo(render_markdown(results))
    click.echo(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


def _entries(models, labels, retrain, target, **load) -> dict:
    """The rows to evaluate: lazily loaded models (eval.muse.ModelEntry.from_spec)."""
    from eval.muse import ModelEntry

    return {"models": [ModelEntry.from_spec(m, n, **load) for m, n in zip(models, labels)],
            "retrain": ModelEntry.from_spec(retrain, "retrain", "retrain", **load)
            if retrain else None,
            "target": ModelEntry.from_spec(target, "target", "target", **load)
            if target else None}
