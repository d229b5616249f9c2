"""Is it really forgotten? Relearning and quantization attacks on an unlearned checkpoint.

`unlearn attack MODEL --attacks relearn,quantize --target TARGET --data DATA` builds one
attacked copy of MODEL per attack variant (relearn on a forget slice / on retain text only;
int8 / int4 weights), evaluates MODEL, every attacked copy and TARGET (the model before
unlearning) with the MUSE suite in one run (`eval.muse.evaluate_models`; each attacked copy is
made only when its turn comes, one in memory at a time), and reports per attack and metric the
score before (MODEL) and after, and the recovery (attacked − unlearned) / (target − unlearned)
with a paired bootstrap interval (`eval.attacks.recovery`). Every metric is averaged over the
rows whose query the attack did not train on (all rows for quantization).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from eval.attacks.quantize import QuantSpec
from lethe.errors import LetheError
from unlearn.relearn import RelearnSpec

log = logging.getLogger(__name__)

RECOVERY_ATTACKS = ("relearn", "quantize")  # attack names handled here (extraction: eval)
DEFAULT_METRICS = "verbmem_f,knowmem_f,knowmem_r"


@dataclass(frozen=True)
class RecoveryPlan:
    """The attack variants of one `unlearn attack` run and what they are measured with."""

    relearn: tuple[RelearnSpec, ...]  # one per slice
    quantize: tuple[QuantSpec, ...]  # one per bit width
    metrics: tuple[str, ...]  # MUSE metric names

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.relearn] + [q.label for q in self.quantize]


def _names(text: str) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def build_plan(attacks: list[str], *, relearn_on: str, relearn: dict, bits: str,
               quant: dict, metrics: str) -> RecoveryPlan:
    """The plan from the command's options (raises LetheError naming the bad option).

    relearn: RelearnSpec fields but `on`; quant: QuantSpec fields but `bits`."""
    from eval.muse.suite import resolve_metrics
    from lethe.cli import int_list

    slices = tuple(RelearnSpec(on=on, **relearn) for on in _names(relearn_on)) \
        if "relearn" in attacks else ()
    if "relearn" in attacks and not slices:
        raise LetheError("--relearn-on is empty; give forget, retain or forget,retain")
    widths = (int_list(bits, "--bits") or ()) if "quantize" in attacks else ()
    if "quantize" in attacks and not widths:
        raise LetheError("--bits is empty; give 8, 4 or 8,4")
    quants = tuple(QuantSpec(bits=b, **quant) for b in dict.fromkeys(widths))
    from eval.muse.registry import metrics as registered

    chosen = resolve_metrics(metrics, have_reference=True)
    for name in chosen:
        if registered()[name].needs_reference:
            raise LetheError(f"--metrics: {name} needs a retrain reference, which `unlearn "
                             f"attack` does not take; measure it with `unlearn eval`")
    return RecoveryPlan(tuple(dict.fromkeys(slices)), quants, tuple(chosen))


def _relearn_loader(model: str, spec: RelearnSpec, texts: list[str], out: Path, record: dict,
                    *, dtype: str, device: str):
    def loader():
        from lethe.lm import pick_device
        from lethe.loading import load_model, load_tokenizer
        from unlearn.relearn import relearn

        tok = load_tokenizer(model)
        start = time.perf_counter()
        attacked = relearn(load_model(model, dtype=dtype), tok, texts, spec,
                           out / spec.label, use_cpu=str(device) == "cpu")
        record["seconds"] = round(time.perf_counter() - start, 2)
        return attacked.to(pick_device(device)), tok

    return loader


def _quant_loader(model: str, spec: QuantSpec, record: dict, *, dtype: str, device: str):
    def loader():
        from eval.attacks.quantize import load_quantized, quantize_model_
        from lethe.lm import load_for_inference
        from lethe.loading import load_tokenizer

        start = time.perf_counter()
        if spec.backend == "bnb":
            attacked = load_quantized(model, spec)
            record["details"] = {"backend": "bnb", "bits": spec.bits}
        else:
            attacked = load_for_inference(model, dtype=dtype, device=device)
            record["details"] = quantize_model_(attacked, spec)
        record["seconds"] = round(time.perf_counter() - start, 2)
        return attacked, load_tokenizer(model)

    return loader


def attacked_entries(model: str, data: str, plan: RecoveryPlan, out: Path, records: dict, *,
                     dtype: str, device: str) -> list:
    """One lazily built `ModelEntry` per attack variant; `records[label]` gets each one's
    parameters, training texts (relearn) and the seconds it took to build."""
    from eval.muse.suite import ModelEntry
    from lethe.loading import model_identity
    from unlearn.relearn import slice_texts

    identity = model_identity(model)
    entries = []
    for spec in plan.relearn:
        texts = slice_texts(data, spec)
        records[spec.label] = {"kind": "relearn", "params": asdict(spec), "texts": len(texts),
                               "train_texts": texts}
        entries.append(ModelEntry(spec.label, identity={**identity, "attack": spec.label},
                                  loader=_relearn_loader(model, spec, texts, out,
                                                         records[spec.label], dtype=dtype,
                                                         device=device)))
    for spec in plan.quantize:
        records[spec.label] = {"kind": "quantize", "params": asdict(spec)}
        entries.append(ModelEntry(spec.label, identity={**identity, "attack": spec.label},
                                  loader=_quant_loader(model, spec, records[spec.label],
                                                       dtype=dtype, device=device)))
    return entries


def measured_rows(tables: dict, metrics, train_texts: list[str] | None) -> dict:
    """metric -> row indices it is averaged over: rows whose query (the first field of the
    metric's first table) is not in `train_texts`; None (all rows) without training text."""
    from eval.attacks.recovery import held_out_rows
    from eval.muse.registry import metrics as registered

    out = {}
    for name in metrics:
        split = registered()[name].splits[0]
        queries = tables[split.key][split.columns[0]]
        out[name] = None if train_texts is None else held_out_rows(queries, train_texts)
    return out


def run_recovery(model: str, target: str, data: str, plan: RecoveryPlan, out: Path, *,
                 settings, dtype: str = "auto", device: str = "auto") -> dict:
    """Evaluate MODEL, every attacked copy and TARGET; return the recovery section."""
    from eval.muse.report import write_report
    from eval.muse.suite import ModelEntry, evaluate_models, load_suite_data

    records: dict = {}
    entries = attacked_entries(model, data, plan, out, records, dtype=dtype, device=device)
    suite = evaluate_models(  # the report is written once, at the end (a PNG per write)
        [ModelEntry.from_spec(model, "unlearned", dtype=dtype, device=device), *entries],
        data, list(plan.metrics),
        target=ModelEntry.from_spec(target, "target", "target", dtype=dtype, device=device),
        settings=settings)
    write_report(suite, out / "suite")
    tables, _ = load_suite_data(data, plan.metrics, settings=settings)
    return summarize(suite, plan, records, tables)


def summarize(suite: dict, plan: RecoveryPlan, records: dict, tables: dict) -> dict:
    """The recovery section of results.json from the suite's rows."""
    from eval.attacks.recovery import compare

    rows = {r["label"]: r for r in suite["models"]}
    settings = suite["settings"]
    attacks = {}
    for label in plan.labels:
        record = dict(records[label])
        train = record.pop("train_texts", None)
        measured = measured_rows(tables, plan.metrics, train)
        record["metrics"] = {
            name: compare(rows, label, name, suite["criteria"][name]["direction"],
                          measured[name], settings) for name in plan.metrics}
        attacks[label] = record
    return {"metrics": list(plan.metrics), "criteria": suite["criteria"],
            "attacks": attacks, "suite_report": "suite/results.json",
            "rows": {k: {m: v["scores"][m]["value"] for m in plan.metrics}
                     for k, v in rows.items()}}


def render_markdown(rec: dict) -> str:
    """The recovery table of results.md."""
    from lethe.report import fmt, markdown_table

    rows = []
    for label, a in rec["attacks"].items():
        for name, m in a["metrics"].items():
            r = m["recovery"]
            shown = "–" if not r or r["value"] is None else \
                f"{fmt(r['value'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
            rows.append([label, rec["criteria"][name]["column"], m["target"], m["before"],
                         m["after"], shown, m["n"] if m["n"] is not None else "all"])
    lines = ["## Relearning and quantization attacks", "",
             "recovery = (attacked − unlearned) / (target − unlearned) on the rows each attack "
             "did not train on (docs/metrics.md); [95% paired bootstrap interval]; 0 = nothing "
             "came back, 1 = as before unlearning.", "",
             markdown_table(["attack", "metric", "target", "unlearned", "attacked", "recovery",
                             "rows"], rows, digits=2)]
    return "\n".join(lines)


def plot(rec: dict, path: Path) -> None:
    """Bars: recovery of each forget-side metric per attack, with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lethe.report import save_figure

    labels = list(rec["attacks"])
    names = [n for n in rec["metrics"] if rec["criteria"][n]["direction"] == "down"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels), 3.2))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        vals, lows, highs = [], [], []
        for label in labels:
            r = rec["attacks"][label]["metrics"][name]["recovery"] or {}
            v = r.get("value")
            vals.append(v if v is not None else 0.0)
            lows.append(v - r["ci_low"] if v is not None and r.get("ci_low") is not None else 0)
            highs.append(r["ci_high"] - v if v is not None and r.get("ci_high") is not None
                         else 0)
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, vals, width, yerr=[lows, highs], capsize=3,
               label=rec["criteria"][name]["title"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("recovery")
    ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)
