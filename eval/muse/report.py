"""results.json + results.md + results.png for a MUSE evaluation (written atomically).

- results.json: the whole results dict (every score, interval, per-example values, model and
  data identifiers, seed, settings, library versions).
- results.md: one table, rows = models, columns = criteria with the desired direction
  (VerbMem_f ↓, KnowMem_f ↓, PrivLeak →0, KnowMem_r ↑), each cell "value [low, high]".
- results.png: one panel per criterion; bars with interval whiskers per model (target and
  retrain coloured and drawn as dashed reference lines), or lines over the steps of a
  scal/sust protocol.
"""

from __future__ import annotations

from pathlib import Path

from eval.muse.protocols import PROTOCOLS
from lethe.report import atomic_write_text, markdown_table, save_figure, write_json

ROLE_COLORS = {"target": "#7f7f7f", "model": "#1f77b4", "retrain": "#2ca02c"}
IDEAL_LINE = {"zero": 0.0}  # criteria with a fixed ideal value get a solid line there


def _cell(score: dict | None, fmt: str = ".1f") -> str:
    if not score or score.get("value") is None:
        return "–"
    v, lo, hi = score["value"], score.get("ci_low"), score.get("ci_high")
    if lo is None or hi is None:
        return f"{v:{fmt}}"
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _benchmarks(results: dict) -> list[str]:
    """The benchmarks the report's metrics belong to, in column order."""
    crit = results["criteria"]
    return list(dict.fromkeys(crit[m].get("benchmark", "muse") for m in results["metrics"]))


def _notes(results: dict) -> list[str]:
    s, metrics = results["settings"], results["metrics"]
    notes = [f"Data: `{results['data']['source']}`"
             + (f" @ {results['data']['revision']}" if results["data"].get("revision") else "")]
    interval = (f"[low, high] = {s['confidence']:.0%} percentile bootstrap interval "
                f"({s['n_resamples']} resamples, seed {results['seed']})")
    if "muse" in _benchmarks(results):
        notes.append(f"MUSE values × 100 except PrivLeak (a relative AUC difference in %); "
                     f"{interval}")
    if "tofu" in _benchmarks(results):
        notes.append(f"TOFU values in [0, 1] ({s.get('forget_split', 'forget10')}, "
                     f"{s.get('qa_template', 'plain')} prompts); {interval}")
        if "forget_quality" in metrics:
            notes.append("FQ = p-value of a two-sample KS test between the model's and the "
                         "retain model's forget-set truth ratios (no interval)")
        if "model_utility" in metrics:
            notes.append("MU = harmonic mean of probability, ROUGE-L recall and truth ratio on "
                         "retain, real authors and world facts (no interval)")
    return notes


def render_markdown(results: dict) -> str:
    metrics = results["metrics"]
    crit = results["criteria"]
    steps = {s["label"]: s for s in (results.get("protocol") or {}).get("steps") or []}
    header = ["model", "role"] + (["step"] if steps else []) + [crit[m]["column"]
                                                                for m in metrics]
    rows = []
    for row in results["models"]:
        step = steps.get(row["label"])
        where = (f"{step['split']} ({step['n_words']} words)" if step else "–")
        rows.append([row["label"], row["role"]] + ([where] if steps else [])
                    + [_cell(row["scores"].get(m), crit[m].get("format", ".1f"))
                       for m in metrics])
    s = results["settings"]
    title = " + ".join(b.upper() for b in _benchmarks(results))
    lines = [f"# {title} evaluation", ""]
    if not results.get("complete", True):
        lines += [f"**Incomplete run**: {len(results['models'])} model(s) evaluated so far.", ""]
    lines += [markdown_table(header, rows)]
    notes = _notes(results)
    ref = results.get("retrain_reference")
    if ref and "privleak" in metrics:
        k = s["min_k"]
        notes.append(f"PrivLeak = (AUC − AUC_retrain) / AUC_retrain × 100 with Min-{k:.0%} "
                     f"scores, members (forget) labelled 1; AUC_retrain = {ref['auc']:.4f} "
                     f"({ref['source']})")
    proto = results.get("protocol")
    if proto:
        p = PROTOCOLS[proto["name"]]
        notes.append(f"Protocol {p.name}: {p.criterion}; checkpoint i unlearned "
                     f"{'forget_1..i' if p.cumulative else 'forget_i'}")
    if s.get("limit"):
        notes.append(f"smoke run: only the first {s['limit']} rows of each split")
    lines += [""] + [f"- {n}" for n in notes] + [""]
    lines += _harness_table(results)
    return "\n".join(lines)


def _harness_table(results: dict) -> list[str]:
    """results.md's lm-evaluation-harness section (rows: models; columns: task/metric)."""
    from eval.lm_harness import harness_columns

    rows = results["models"]
    cols = harness_columns(rows)
    if not cols:
        return []
    body = []
    for row in rows:
        scores = row.get("lm_eval") or {}
        cells = []
        for task, metric in cols:
            value = (scores.get(task) or {}).get(metric)
            err = (scores.get(task) or {}).get(f"{metric}_stderr")
            cells.append("–" if value is None else f"{value:.3f}" + (
                f" ± {err:.3f}" if isinstance(err, float) and err == err else ""))
        body.append([row["label"], row["role"]] + cells)
    settings = results.get("lm_eval") or {}
    header = ["model", "role"] + [f"{t} {m}" for t, m in cols]
    return ["## lm-evaluation-harness", "", markdown_table(header, body), "",
            f"- tasks {', '.join(settings.get('tasks', []))}; ± = the harness's standard "
            f"error; limit {settings.get('limit')}, few-shot "
            f"{settings.get('num_fewshot') if settings.get('num_fewshot') is not None else 'task default'}",
            ""]


def plot_results(results: dict):
    """A matplotlib Figure: one panel per criterion."""
    from matplotlib.figure import Figure

    metrics = results["metrics"]
    rows = results["models"]
    fig = Figure(figsize=(max(3.4 * len(metrics), 4.0), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    proto = results.get("protocol")
    for ax, m in zip(axes, metrics):
        info = results["criteria"][m]
        ax.set_title(info["column"], fontsize=10)
        refs = {r["role"]: r["scores"].get(m, {}).get("value") for r in rows
                if r["role"] in ("target", "retrain")}
        if proto:
            _plot_steps(ax, rows, m, proto)
        else:
            _plot_bars(ax, rows, m, info.get("format", ".1f"))
        for role in ("target", "retrain"):
            if refs.get(role) is not None:
                ax.axhline(refs[role], color=ROLE_COLORS[role], linestyle="--", linewidth=1,
                           label=role)
        if info["direction"] in IDEAL_LINE:
            ax.axhline(IDEAL_LINE[info["direction"]], color="black", linewidth=0.8,
                       label="ideal")
        _set_limits(ax, rows, m, info)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{' + '.join(b.upper() for b in _benchmarks(results))} criteria (arrows: "
                 f"desired direction; whiskers: bootstrap CI)", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_steps(ax, rows, m: str, proto: dict) -> None:
    """A protocol's panel: metric `m` of each step's checkpoint, with its CI, along the steps."""
    step_labels = [s["label"] for s in proto["steps"]]
    by_label = {r["label"]: r for r in rows}
    xs, ys, lo, hi = [], [], [], []
    for i, label in enumerate(step_labels):
        sc = by_label.get(label, {}).get("scores", {}).get(m)
        if sc and sc.get("value") is not None:
            xs.append(i)
            ys.append(sc["value"])
            lo.append(sc["value"] - (sc["ci_low"] if sc["ci_low"] is not None
                                     else sc["value"]))
            hi.append((sc["ci_high"] if sc["ci_high"] is not None else sc["value"])
                      - sc["value"])
    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", color=ROLE_COLORS["model"], capsize=3)
    key = "n_words_cumulative" if PROTOCOLS[proto["name"]].cumulative else "n_words"
    ax.set_xticks(range(len(step_labels)))
    ax.set_xticklabels([f"{s['label']}\n{s[key]} words" for s in proto["steps"]], fontsize=7)
    ax.set_xlabel(PROTOCOLS[proto["name"]].x_label, fontsize=8)


def _plot_bars(ax, rows, m: str, fmt: str = ".1f") -> None:
    """One bar per model row (coloured by role) with its CI whiskers and value."""
    for i, r in enumerate(rows):
        sc = r["scores"].get(m)
        if not sc or sc.get("value") is None:
            continue
        v = sc["value"]
        err = None
        if sc.get("ci_low") is not None and sc.get("ci_high") is not None:
            err = [[v - sc["ci_low"]], [sc["ci_high"] - v]]
        bars = ax.bar(i, v, yerr=err, color=ROLE_COLORS.get(r["role"], "#1f77b4"), capsize=3,
                      width=0.7)
        ax.bar_label(bars, labels=[f"{v:{fmt}}"], fontsize=7, padding=2)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=8)


def _set_limits(ax, rows, metric: str, info: dict) -> None:
    """MUSE's ROUGE-based criteria live on [0, 100], TOFU's on [0, 1], p-values on a log
    axis; PrivLeak around 0. Leave room for labels."""
    direction = info["direction"]
    vals = []
    for r in rows:
        sc = r["scores"].get(metric) or {}
        vals += [sc[k] for k in ("value", "ci_low", "ci_high") if sc.get(k) is not None]
    if not vals:
        return
    if info.get("log_axis"):
        ax.set_yscale("log")
        ax.set_ylim(max(min(vals), 1e-300) / 10, 2.0)
        return
    lo, hi = min(vals + [0.0]), max(vals + [0.0])
    if info.get("benchmark") == "tofu":
        ax.set_ylim(0, max(hi * 1.15, 1.05))
        return
    if direction in IDEAL_LINE:  # PrivLeak: show both sides of the ideal
        span = max(hi - lo, 10.0)
        ax.set_ylim(lo - 0.12 * span, hi + 0.12 * span)
    else:
        ax.set_ylim(0, max(hi * 1.15, 5.0))


def write_report(results: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.md and results.png into `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(out / "results.json", results),
             "md": atomic_write_text(out / "results.md", render_markdown(results))}
    if results["models"]:
        paths["png"] = save_figure(plot_results(results), out / "results.png")
    return paths
