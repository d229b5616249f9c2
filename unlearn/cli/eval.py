"""`unlearn eval`: the MUSE six-way evaluation (or TOFU's) of one or more checkpoints.

    unlearn eval MODEL [MODEL ...] --data DATA [--labels a,b,...] [--benchmark muse|tofu]
                 [--retrain MODEL | --retrain-auc FLOAT|muse-news|muse-books]
                 [--target MODEL] [--protocol scal|sust]
                 [--metrics verbmem_f,knowmem_f,privleak,knowmem_r] [--out DIR] [--overwrite]
                 [--batch-size N] [--min-k 0.4] [--limit N] [--seed 0]
                 [--mia loss,...,ref,gradnorm] [--reference MODEL]
                 [--forget-split forget10] [--qa-template plain|chat]
                 [--lm-eval wmdp_bio,mmlu] [--lm-eval-include DIR]

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
@click.option("--benchmark", type=click.Choice(["muse", "tofu"]), default="muse",
              show_default=True,
              help="The default metrics: MUSE's four, or TOFU's (forget quality, model "
                   "utility, truth ratio, probability, ROUGE, extraction strength, exact "
                   "memorisation) on a TOFU-layout DATA (locuslab/TOFU, unlearn world "
                   "--format tofu).")
@click.option("--metrics", metavar="LIST",
              help="Comma-separated metric names (default: the benchmark's; privleak and "
                   "forget_quality only with a retrain model; all of them: docs/metrics.md).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Output directory (default: runs/eval/<labels>).")
@click.option("--overwrite", is_flag=True, help="Replace results in a non-empty --out.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--min-k", type=float, default=0.4, show_default=True,
              help="k of Min-K% Prob for PrivLeak (MUSE: 0.4).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N rows of each evaluated split (quick checks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--mia", metavar="LIST",
              help="MIA scores PrivLeak reports (loss, zlib, lowercase, min_k, min_k_pp, ref, "
                   "gradnorm; default: all but gradnorm, ref only with --reference).")
@click.option("--reference", "mia_reference", metavar="MODEL",
              help="Reference model of the `ref` MIA score (e.g. the base model before "
                   "fine-tuning on the benchmark).")
@click.option("--grad-p", type=click.Choice(["1", "2", "inf"]), default="2", show_default=True,
              help="The p-norm of the gradnorm MIA score.")
@click.option("--forget-split", default="forget10", show_default=True,
              help="TOFU: the forget config (forget01, forget05, forget10).")
@click.option("--qa-template", type=click.Choice(["plain", "chat"]), default="plain",
              show_default=True, help="TOFU prompts: plain 'Question: …\\nAnswer: …' or the "
                                      "tokenizer's chat template.")
@click.option("--tofu-max-new-tokens", type=click.IntRange(min=1), default=200,
              show_default=True, help="TOFU ROUGE: greedy tokens per answer.")
@click.option("--lm-eval", "lm_eval_tasks", metavar="TASKS",
              help="Also run these lm-evaluation-harness tasks on every model (e.g. "
                   "wmdp_bio,mmlu; needs lethe-llm[lm-eval]).")
@click.option("--lm-eval-include", multiple=True, metavar="DIR",
              help="Directory of local lm-eval task YAMLs (repeatable).")
@click.option("--lm-eval-limit", type=click.IntRange(min=1), default=None,
              help="At most N documents per lm-eval task.")
@click.option("--lm-eval-fewshot", type=click.IntRange(min=0), default=None,
              help="Few-shot examples per lm-eval task (default: each task's).")
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
def eval_command(models, data, labels, retrain, retrain_auc, target, protocol, benchmark,
                 metrics, out_dir, overwrite, batch_size, min_k, limit, seed, mia, mia_reference,
                 grad_p, forget_split, qa_template, tofu_max_new_tokens, lm_eval_tasks,
                 lm_eval_include, lm_eval_limit, lm_eval_fewshot, n_resamples, dtype, device,
                 revision, data_revision, dry_run):
    """Evaluate MODEL(s) with MUSE's or TOFU's criteria; write results.json/.md/.png."""
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
                      n_resamples=n_resamples, forget_split=forget_split,
                      qa_template=qa_template, tofu_max_new_tokens=tofu_max_new_tokens,
                      mia=_names(mia), grad_p=float(grad_p)),
        revision=revision, data_revision=data_revision, device=device, benchmark=benchmark,
        mia_reference=mia_reference,
        harness=_harness(lm_eval_tasks, lm_eval_include, lm_eval_limit, lm_eval_fewshot,
                         batch_size))
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    rows = _entries(models, plan.labels, retrain, target, mia_reference, dtype=dtype,
                    device=device, revision=revision)
    out = prepare_output_dir(plan.out, overwrite=overwrite)
    results = evaluate_models(rows["models"], data, plan.metrics, retrain=rows["retrain"],
                              target=rows["target"], retrain_auc=plan.reference,
                              settings=plan.settings, out_dir=out, protocol=protocol,
                              data_revision=data_revision, benchmark=benchmark,
                              mia_reference=rows["reference"], harness=plan.harness)
    from eval.muse.report import render_markdown

    click.echo(render_markdown(results))
    click.echo(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


def _names(value: str | None) -> tuple[str, ...] | None:
    names = tuple(n for n in (p.strip() for p in (value or "").split(",")) if n)
    return names or None


def _harness(tasks, include, limit, fewshot, batch_size):
    """eval.lm_harness.HarnessSettings of --lm-eval, or None."""
    if not tasks:
        if include or limit or fewshot is not None:
            raise LetheError("--lm-eval-include/--lm-eval-limit/--lm-eval-fewshot need "
                             "--lm-eval TASKS")
        return None
    from eval.lm_harness import HarnessSettings, parse_tasks

    return HarnessSettings(parse_tasks(tasks), tuple(include), limit, fewshot, batch_size)


def _entries(models, labels, retrain, target, reference, **load) -> dict:
    """The rows to evaluate: lazily loaded models (eval.muse.ModelEntry.from_spec), and the
    MIA reference model."""
    from eval.muse import ModelEntry

    def entry(spec, label, role):
        return ModelEntry.from_spec(spec, label, role, **load) if spec else None

    return {"models": [ModelEntry.from_spec(m, n, **load) for m, n in zip(models, labels)],
            "retrain": entry(retrain, "retrain", "retrain"),
            "target": entry(target, "target", "target"),
            "reference": entry(reference, "reference", "model")}
