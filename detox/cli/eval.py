"""`detox eval OUT.jsonl`: STA, SIM, FL, joint scores and reference metrics of rewrites."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from lethe.errors import LetheError

# columns that hold references, and columns that hold the source text, in a references file
REFERENCE_COLUMNS = ("references", "reference", "neutral1", "neutral2", "neutral3", "Paraphrase",
                     "target")
SOURCE_COLUMNS = ("text", "toxic", "Utterance", "source")


def _as_refs(value) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def refs_of_row(row: dict) -> list[str]:
    refs: list[str] = []
    for col in REFERENCE_COLUMNS:
        refs += [r for r in _as_refs(row.get(col)) if r not in refs]
    return refs


def load_references(path: str, records) -> list[list[str]]:
    """One reference list per record, matched by `id`, else by source text, else by order."""
    from detox.rewrite.fewshot import read_rows
    from detox.io import id_key

    p = Path(path)
    if not p.is_file():
        raise LetheError(f"references file not found: {path}")
    rows = read_rows(p)
    if not rows or not any(c in rows[0] for c in REFERENCE_COLUMNS):
        raise LetheError(f"{path}: no reference column (one of {', '.join(REFERENCE_COLUMNS)})")
    if "id" in rows[0]:
        # csv ids are strings: match an integer id 7 to "7" there
        table = {str(r.get("id")): refs_of_row(r) for r in rows}
        keyed = [(str(rec.id), f"id {id_key(rec.id)}") for rec in records]
    elif any(c in rows[0] for c in SOURCE_COLUMNS):
        col = next(c for c in SOURCE_COLUMNS if c in rows[0])
        table = {str(r.get(col, "")).strip(): refs_of_row(r) for r in rows}
        keyed = [(rec.text.strip(), f"text {rec.text[:40]!r}") for rec in records]
    else:
        if len(rows) != len(records):
            raise LetheError(f"{path} has no id or source column and {len(rows)} rows for "
                             f"{len(records)} outputs; add an id column")
        return [refs_of_row(r) for r in rows]
    out = []
    for key, label in keyed:
        if key not in table:
            raise LetheError(f"{path}: no reference row for {label}")
        out.append(table[key])
    return out


def read_rewrites(path: Path, name: str) -> list:
    """The records of a `detox rewrite` output. A file that is still being appended to is read
    up to its last whole line, so a scorer never sees a half-written record."""
    from detox import io

    end, torn = io.complete_prefix(path)
    if torn:
        click.echo(f"detox eval: ignoring the incomplete last line of {name} ({torn} bytes; "
                   f"is detox rewrite still writing it?)", err=True)
    need = {"required": ("id", "text", "rewrite"), "string_fields": ("rewrite",), "limit": end}
    found = io.scan(path, **need)
    if found.bad:
        raise LetheError(f"{found.message(name)}; fix them (or rerun detox rewrite)")
    rows = list(io.records(path, **need))
    if not rows:
        raise LetheError(f"{name} has no rewrites to score")
    return rows


@click.command("eval")
@click.argument("output_file", metavar="OUT.jsonl")
@click.option("--references", default=None, metavar="FILE",
              help="References (jsonl/csv/tsv with id or source text + reference columns, e.g. "
                   "ParaDetox neutral1..3); default: each line's own 'references' field, if any.")
@click.option("--metrics", default=None, metavar="M1,M2",
              help="Comma-separated metrics (default: all that apply). See --list-metrics.")
@click.option("--preset", default=None, type=click.Choice(["paradetox", "pan2024", "offline"]),
              help="The published evaluators: paradetox (binary STA x Wieting SIM x binary CoLA "
                   "FL), pan2024 (P(neutral) x LaBSE cosine x chrF), or offline (bundled "
                   "scorers). Sets the scorers and the default metrics; --recipe and --set "
                   "apply on top (docs/detox.md).")
@click.option("--recipe", "recipe_path", default=None, metavar="RECIPE.yaml",
              help="Take the scorers: section from this recipe (default: built-in scorers).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set scorers.fl.model=PATH.")
@click.option("--report-dir", default=None, metavar="DIR",
              help="Where results.json and results.md go (default: OUT.eval/ beside the file).")
@click.option("--per-example", is_flag=True, help="Also write per_example.jsonl to the report dir.")
@click.option("--list-metrics", is_flag=True, help="List the metrics and exit.")
def eval_command(output_file, references, metrics, preset, recipe_path, overrides, report_dir,
                 per_example, list_metrics):
    """Score the rewrites in OUT.jsonl (written by `detox rewrite`).

    STA (non-toxicity), SIM (similarity to the input), FL (fluency), the joint scores
    j_paradetox / j_clef2024 / j_bin_chrf, and with references chrF, BLEU and ROUGE-L.
    --preset paradetox / pan2024 scores with the published evaluators' models, combined as
    their scripts do (docs/detox.md); the default scorers run offline and give a J that is
    not comparable with published ones.
    """
    from detox.rewrite.recipe import load_rewrite_recipe
    from eval.detox import joint
    from eval.detox.presets import get_preset
    from eval.detox.scorers import Scorers
    from lethe.locks import lock_output

    if list_metrics:
        for name, m in sorted(joint.METRICS.items()):
            click.echo(f"{name:12s} {m.doc}" + ("  [needs references]" if m.needs_refs else ""))
        return
    chosen = get_preset(preset) if preset else None
    recipe = load_rewrite_recipe(recipe_path, (chosen.overrides() if chosen else []) +
                                 list(overrides))
    path = Path(output_file)
    if not path.is_file():
        raise LetheError(f"file not found: {output_file} (the output of detox rewrite)")
    out_dir = Path(report_dir) if report_dir else path.with_name(path.stem + ".eval")
    lock_output(out_dir, "report directory")
    rows = read_rewrites(path, output_file)
    refs = _references(rows, references)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else \
        list(chosen.metrics if chosen and chosen.metrics else
             joint.default_metrics(refs is not None))
    names = joint.check_metrics(names, refs is not None)
    preflight_scorers(recipe.scorers, joint.scorer_kinds(names))

    start = time.perf_counter()
    comps = joint.Components([r.extra["rewrite"] for r in rows], [r.text for r in rows], refs,
                             Scorers.from_config(recipe.scorers))
    summary, per_ex = joint.evaluate(comps, names)
    elapsed = time.perf_counter() - start
    results = {"file": str(path), "n": len(rows), "references": references or (
        "per-line 'references' field" if refs is not None else None), "metrics": summary,
        "preset": preset, "scorers": recipe.scorers, "elapsed_s": round(elapsed, 2)}
    table = _write_report(out_dir, results, names, rows, per_ex if per_example else None)
    click.echo(table, nl=False)
    click.echo(f"detox eval: {len(rows)} line(s) scored in {elapsed:.1f} s -> {out_dir}/",
               err=True)


def preflight_scorers(scorers, kinds) -> None:
    """Every model, package or file the scorers the metrics read will load, checked before
    any is loaded: one line per problem (a hub model missing offline is one line)."""
    from detox.rewrite.checks import check_scorer
    from lethe.preflight import Preflight

    pf = Preflight("detox eval")
    for kind in kinds:
        check_scorer(pf, getattr(scorers, kind), f"scorers.{kind}")
    pf.finish()


def _references(rows, references: str | None) -> list[list[str]] | None:
    """One reference list per row (from --references, else the rows' own fields), or None."""
    from detox import io

    if references:
        refs = load_references(references, rows)
    elif any(refs_of_row(r.extra) for r in rows):
        refs = [refs_of_row(r.extra) for r in rows]
    else:
        return None
    empty = next((r for r, x in zip(rows, refs) if not x), None)
    if empty is not None:
        raise LetheError(f"line {empty.line} (id {io.id_key(empty.id)}) has no reference; "
                         f"every line needs one for the reference metrics")
    return refs


def _write_report(out_dir: Path, results: dict, names, rows, per_ex) -> str:
    """results.json, results.md (+ per_example.jsonl); returns the Markdown table."""
    from eval.detox import joint
    from lethe.recipe import to_dict
    from lethe.report import atomic_write_text, library_versions, machine_info, \
        markdown_table, write_json

    results = dict(results, scorers=to_dict(results["scorers"]), versions=library_versions(),
                   machine=machine_info())
    write_json(out_dir / "results.json", results)
    summary = results["metrics"]
    table = markdown_table(["metric", "value", "what"],
                           [[n, summary[n], joint.METRICS[n].doc] for n in names], digits=3)
    atomic_write_text(out_dir / "results.md", f"# detox eval: {Path(results['file']).name} "
                                              f"({len(rows)} lines)\n\n{table}")
    if per_ex is not None:
        lines = []
        for i, r in enumerate(rows):
            obj = {"id": r.id, "rewrite": r.extra["rewrite"]}
            obj.update({n: round(v[i], 6) for n, v in per_ex.items()})
            lines.append(json.dumps(obj, ensure_ascii=False))
        atomic_write_text(out_dir / "per_example.jsonl", "\n".join(lines) + "\n")
    return table
