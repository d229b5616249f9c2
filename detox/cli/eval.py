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
@click.option("--baselines", default=None, metavar="B1,B2",
              help="Also rewrite the same inputs with these baselines (copy, delete) and report "
                   "them as rows of the same table, e.g. --baselines copy,delete.")
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
def eval_command(output_file, references, metrics, baselines, preset, recipe_path, overrides,
                 report_dir, per_example, list_metrics):
    """Score the rewrites in OUT.jsonl (written by `detox rewrite`).

    STA (non-toxicity) under the word-list scorer and the learned classifier, SIM (similarity
    to the input), FL (fluency), the refusal share, the joint scores j_paradetox / j_clef2024 /
    j_bin_chrf / j_clf, and with references chrF, BLEU and ROUGE-L. --baselines adds the
    trivial rewriters (copy, delete) as rows of the same report. --preset paradetox / pan2024
    scores with the published evaluators' models, combined as their scripts do
    (docs/detox.md); the default scorers run offline and give a J that is not comparable with
    published ones.
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
    base_names = baseline_names(baselines)
    out_dir = Path(report_dir) if report_dir else path.with_name(path.stem + ".eval")
    lock_output(out_dir, "report directory")
    rows = read_rewrites(path, output_file)
    refs = _references(rows, references)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else \
        list(chosen.metrics if chosen and chosen.metrics else
             joint.default_metrics(refs is not None))
    names = joint.check_metrics(names, refs is not None)
    _preflight(recipe, names, base_names)

    start = time.perf_counter()
    scorers = Scorers.from_config(recipe.scorers)
    sources = [r.text for r in rows]
    comps = joint.Components([r.extra["rewrite"] for r in rows], sources, refs, scorers)
    summary, per_ex = joint.evaluate(comps, names)
    systems = {path.stem: summary}
    for name, texts in run_baselines(base_names, rows).items():
        systems[name] = joint.evaluate(joint.Components(texts, sources, refs, scorers), names)[0]
    elapsed = time.perf_counter() - start
    results = {"file": str(path), "n": len(rows), "references": references or (
        "per-line 'references' field" if refs is not None else None), "metrics": summary,
        "baselines": {k: v for k, v in systems.items() if k in base_names},
        "preset": preset, "scorers": recipe.scorers, "elapsed_s": round(elapsed, 2)}
    table = _write_report(out_dir, results, names, rows, per_ex if per_example else None,
                          systems)
    click.echo(table, nl=False)
    click.echo(f"detox eval: {len(rows)} line(s) scored in {elapsed:.1f} s -> {out_dir}/",
               err=True)


def _preflight(recipe, names, base_names) -> None:
    """The scorers the metrics need and the baselines: every problem at once, exit 2."""
    from detox.preflight import check_eval
    from lethe.preflight import Preflight

    pf = Preflight("detox eval")
    check_eval(pf, recipe, names, base_names)
    pf.finish()


def baseline_names(spec: str | None) -> list[str]:
    """The baselines `--baselines` names (rewriters marked `baseline = True`), checked."""
    if not spec:
        return []
    from detox.rewrite.recipe import rewriter_configs
    from lethe.recipe import nearest

    valid = sorted(n for n, c in rewriter_configs().items() if getattr(c, "baseline", False))
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in valid:
            raise LetheError(f"--baselines: unknown baseline '{n}'{nearest(n, valid)}; valid: "
                             f"{', '.join(valid)}")
    return list(dict.fromkeys(names))


def run_baselines(names, rows) -> dict[str, list[str]]:
    """{baseline: its rewrite of every row's text}, each with its default configuration."""
    from detox.rewrite.recipe import rewriter_configs
    from detox.rewrite.rewriters import Item

    items = [Item(r.text, r.context) for r in rows]
    return {n: [x.text for x in rewriter_configs()[n]().build().rewrite(items)] for n in names}


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


def _write_report(out_dir: Path, results: dict, names, rows, per_ex, systems: dict) -> str:
    """results.json, results.md, results.png (+ per_example.jsonl); returns the Markdown."""
    from lethe.recipe import to_dict
    from lethe.report import atomic_write_text, library_versions, machine_info, write_json

    results = dict(results, scorers=to_dict(results["scorers"]), versions=library_versions(),
                   machine=machine_info())
    main = Path(results["file"]).stem
    if len(systems) > 1:
        results["beats_baselines"] = beats(systems, main, names)
    write_json(out_dir / "results.json", results)
    table = summary_table(systems, names)
    if len(systems) > 1:
        table += "\n" + beats_line(results["beats_baselines"])
    plot_systems(systems, names, out_dir / "results.png")
    atomic_write_text(out_dir / "results.md", f"# detox eval: {Path(results['file']).name} "
                                              f"({len(rows)} lines)\n\n{table}\n"
                                              f"![metrics](results.png)\n")
    if per_ex is not None:
        lines = []
        for i, r in enumerate(rows):
            obj = {"id": r.id, "rewrite": r.extra["rewrite"]}
            obj.update({n: round(v[i], 6) for n, v in per_ex.items()})
            lines.append(json.dumps(obj, ensure_ascii=False))
        atomic_write_text(out_dir / "per_example.jsonl", "\n".join(lines) + "\n")
    return table


def summary_table(systems: dict, names) -> str:
    """One system: metric | value | what. Several: one row per system, one column per metric."""
    from eval.detox import joint
    from lethe.report import markdown_table

    if len(systems) == 1:
        (summary,) = systems.values()
        return markdown_table(["metric", "value", "what"],
                              [[n, summary[n], joint.METRICS[n].doc] for n in names], digits=3)
    return markdown_table(["system", *names], [[s, *(m[n] for n in names)]
                                               for s, m in systems.items()], digits=3)


# the joint scores a system is compared on with the baselines (higher is better)
JOINT = ("j_bin_chrf", "j_clf", "j_paradetox", "j_clef2024")


def beats(systems: dict, main: str, names) -> dict:
    """{baseline: {joint metric: main's value - baseline's}} for the joint scores computed."""
    return {b: {n: systems[main][n] - m[n] for n in JOINT if n in names}
            for b, m in systems.items() if b != main}


def beats_line(diffs: dict) -> str:
    parts = [f"{n} {d:+.3f} vs {b}" for b, ds in diffs.items() for n, d in ds.items()]
    return ("Margin over the baselines (positive = better): " + "; ".join(parts) + "\n") \
        if parts else ""


def plot_systems(systems: dict, names, path: Path) -> None:
    """Grouped bars: one group per metric in [0, 1], one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lethe.report import save_figure

    shown = [n for n in names if n not in ("bleu", "chrf_corpus", "rouge_l")]
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(shown) * max(1, len(systems)) ** 0.5), 3.5))
    for i, (sysname, m) in enumerate(systems.items()):
        ax.bar([j + i * width for j in range(len(shown))], [m[n] for n in shown], width,
               label=sysname)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shown))], shown, rotation=45,
                  ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("detox eval")
    save_figure(fig, path)
    plt.close(fig)
