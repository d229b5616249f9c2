"""`unlearn attack`: attacks on any checkpoint, and the editing metrics.

    unlearn attack MODEL --data DATA [--attacks head_projection,prob_delta,rephrase]
                   [--k 4] [--layers all|2,3,...] [--layer-index hidden_states|block]
                   [--paraphrases 4] [--samples 5] [--new-tokens 1|answer]
                   [--match substring|prefix]
                   [--budget B] [--base MODEL] [--split forget] [--retain-split retain]
                   [--limit N] [--retain-limit 100] [--out DIR] [--overwrite] [--seed 0]
    unlearn attack MODEL --data DATA --attacks relearn,quantize --target TARGET
                   [--relearn-on forget,retain] [--relearn-texts N] [--relearn-steps 20]
                   [--relearn-lr 1e-3] [--relearn-lora] [--bits 8,4] [--group-size 128]
                   [--quant-scheme sym|asym] [--quant-backend rtn|bnb] [--metrics ...]

Two families share the command, its preflight and its output lock, and may be mixed in one
--attacks list. Extraction attacks look for each fact's true answer in DATA/facts/{split}
(Patil, Hase & Bansal 2024); with --base (the unedited model) the rewrite score and
Δ-accuracies are added (docs/editing.md). Recovery attacks change the checkpoint (a few steps
of fine-tuning; 8/4-bit weights) and measure with the MUSE suite how much of what unlearning
removed comes back, relative to --target, the model before unlearning (docs/metrics.md).
Writes results.json and results.md (+ results.png and suite/ for recovery attacks).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import click

from lethe.errors import LetheError

log = logging.getLogger(__name__)

DEFAULT_ATTACKS = "head_projection,prob_delta,rephrase"


def _label(spec: str) -> str:
    p = Path(spec)
    name = p.stem if p.suffix == ".gguf" else (p.name or spec)
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-") or "model"


def load_facts(data: str, split: str, limit: int | None) -> list[dict]:
    from lethe.loading import load_table

    rows = load_table(data, config="facts", split=split,
                      columns=("subject", "prompt", "target_true")).to_list()
    return rows[:limit] if limit else rows


def budget_params(budget: int, n_layers: int, n_prompts: int) -> tuple[int, int]:
    """(k, samples) so that head projection and rephrasing each propose at most `budget`."""
    # no white-box attack requested (n_layers 0): k is unused
    k, samples = (budget // (2 * n_layers) if n_layers else 1), budget // n_prompts
    if k < 1 or samples < 1:
        raise LetheError(f"--budget {budget} is too small: head projection needs at least "
                         f"2·|layers| = {2 * n_layers}, rephrasing at least --paraphrases = "
                         f"{n_prompts}")
    return k, samples


def render_markdown(results: dict) -> str:
    lines = []
    if "attacks" in results:
        lines += _extraction_markdown(results)
    if "recovery" in results:
        from unlearn.robustness import render_markdown as recovery_markdown

        rec = results["recovery"]
        if not lines:
            lines = [f"# Attacks: {rec['model']['spec']}", ""]
        lines += ["", f"Target (before unlearning): {rec['target']['spec']}; data: "
                  f"{rec['data']}; every model's MUSE report: {rec['suite_report']}.", "",
                  recovery_markdown(rec)]
    return "\n".join(lines)


def _extraction_markdown(results: dict) -> list[str]:
    from lethe.report import markdown_table

    lines = [f"# Extraction attacks: {results['model']['spec']}", "",
             f"{results['n_facts']} facts of {results['data']} (split {results['split']}); "
             f"success@B = fraction of facts whose true answer is among the attack's B "
             f"candidates (docs/editing.md).", ""]
    rows = [[a["attack"], a["budget"], a["success_rate"], a["n"]]
            for a in results["attacks"].values()]
    lines.append(markdown_table(["attack", "budget B", "success@B", "facts"], rows, digits=3))
    ed = results["editing"]
    keys = [("rewrite_score", "rewrite score (erasure)"),
            ("rewrite_score_injection", "rewrite score (injection)"),
            ("p_true_before", "p(true answer), base"), ("p_true_after", "p(true answer)"),
            ("forget_acc_before", "greedy accuracy on the facts, base"),
            ("forget_acc_after", "greedy accuracy on the facts"),
            ("delta_acc_random", "Δ-accuracy, random facts"),
            ("delta_acc_neighborhood", "Δ-accuracy, neighbourhood"),
            ("acc_random_after", "accuracy, random facts"),
            ("acc_neighborhood_after", "accuracy, neighbourhood")]
    rows = [[label, ed[key]] for key, label in keys if key in ed]
    lines += ["", markdown_table(["metric", "value"], rows, digits=3)]
    return lines


@click.command("attack")
@click.argument("model", metavar="MODEL")
@click.option("--data", required=True, metavar="DATA",
              help="World directory with facts/{split}.jsonl (or a dataset with a 'facts' "
                   "config).")
@click.option("--attacks", default=DEFAULT_ATTACKS, show_default=True, metavar="LIST",
              help="Comma-separated: head_projection, prob_delta, rephrase (extraction); "
                   "relearn, quantize (recovery, need --target).")
@click.option("--k", "k", type=click.IntRange(min=1), default=4, show_default=True,
              help="White-box attacks: top-k and bottom-k tokens per layer.")
@click.option("--layers", default="all", show_default=True, metavar="all|L1,L2,...",
              help="White-box attack layers, numbered as --layer-index says (negative from the "
                   "end); all = the output of every block.")
@click.option("--layer-index", type=click.Choice(["hidden_states", "block"]),
              default="hidden_states", show_default=True,
              help="hidden_states: an index into output_hidden_states (0 = embeddings, l = "
                   "block l-1's output), as Patil et al.'s layer lists; block: block l's output.")
@click.option("--paraphrases", type=click.IntRange(min=1), default=4, show_default=True,
              help="Rephrase attack: n, the last n phrasings of each fact (the paper: 4).")
@click.option("--samples", type=click.IntRange(min=1), default=5, show_default=True,
              help="Rephrase attack: m sampled answers per phrasing (the paper: 5).")
@click.option("--new-tokens", default="1", show_default=True, metavar="N|answer",
              help="Rephrase attack: tokens sampled per answer (the paper: 1), or 'answer' for "
                   "as many as the answer has.")
@click.option("--match", type=click.Choice(["substring", "prefix"]), default="substring",
              show_default=True,
              help="Rephrase attack success: the answer occurs in a sample (the paper), or a "
                   "sample starts with it (case-insensitive).")
@click.option("--budget", type=click.IntRange(min=1), default=None, metavar="B",
              help="Set k = B // (2·|layers|) and m = B // n so each attack proposes <= B "
                   "candidates (overrides --k and --samples).")
@click.option("--base", metavar="MODEL",
              help="The unedited model: adds the rewrite score and Δ-accuracies.")
@click.option("--split", default="forget", show_default=True, help="Facts split to attack.")
@click.option("--retain-split", default="retain", show_default=True,
              help="Facts split for Δ-accuracy on random facts (skipped if absent).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="First N facts only (and first N rows of each MUSE table).")
@click.option("--retain-limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="First N random (retain) facts for Δ-accuracy.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Output directory (default: runs/attack/<model>).")
@click.option("--overwrite", is_flag=True, help="Replace results in a non-empty --out.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Sampling, relearning and bootstrap seed.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k-sampling", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rephrase attack sampling filter (transformers' default 50; 0 = none).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1...")
@click.option("--target", metavar="MODEL",
              help="Recovery attacks: the model before unlearning (recovery is measured "
                   "toward it; same tokenizer as MODEL).")
@click.option("--metrics", default=None, metavar="LIST",
              help="Recovery attacks: MUSE metrics  [default: verbmem_f,knowmem_f,knowmem_r].")
@click.option("--relearn-on", default="forget,retain", show_default=True, metavar="LIST",
              help="relearn: forget (first texts of the forget split; the rest is measured) "
                   "and/or retain (first texts of --relearn-retain-split).")
@click.option("--relearn-texts", type=click.IntRange(min=1), default=None, metavar="N",
              help="relearn: texts per slice  [default: a quarter of the forget split].")
@click.option("--relearn-steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--relearn-lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True)
@click.option("--relearn-batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--relearn-lora", is_flag=True,
              help="relearn: LoRA (r 8 on q_proj, v_proj) instead of every weight.")
@click.option("--relearn-retain-split", default="retain2", show_default=True,
              help="relearn: the raw split of the retain slice.")
@click.option("--bits", default="8,4", show_default=True, metavar="LIST",
              help="quantize: 8 and/or 4 bits.")
@click.option("--group-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="quantize: input weights per RTN group.")
@click.option("--quant-scheme", type=click.Choice(["sym", "asym"]), default="sym",
              show_default=True, help="quantize: absmax grid centred on 0, or min-max.")
@click.option("--quant-backend", type=click.Choice(["rtn", "bnb"]), default="rtn",
              show_default=True,
              help="quantize: round-to-nearest in torch (any device) or bitsandbytes (CUDA).")
@click.option("--dry-run", is_flag=True,
              help="Run the preflight (attacks, data, MODEL/--base/--target and their "
                   "tokenizers, --out), print what it checked, and stop before loading any "
                   "model.")
def attack(model, data, attacks, out_dir, overwrite, dry_run, **opts):
    """Attack MODEL; write results.json and results.md.

    Extraction attacks propose at most B candidate answers per fact and succeed when the true
    answer is among them (Patil, Hase & Bansal 2024). head_projection (white-box): top-k and
    bottom-k tokens of the logit lens at each chosen layer, B = 2·k·|layers|. prob_delta
    (white-box): the same on differences of consecutive layers' lens distributions,
    B = 2·k·(|layers| − 1). rephrase (black-box): m sampled answers for each of the last n
    phrasings of the fact, B = n·m. With --base (the unedited model) the rewrite score and
    Δ-accuracy on random facts and on neighbourhood prompts are added (docs/editing.md).

    Recovery attacks (need --target): relearn fine-tunes a copy for --relearn-steps steps on a
    forget slice or on retain text; quantize rounds the weights to 8/4 bits. Each attacked copy,
    MODEL and --target are scored with the MUSE metrics; recovery = (attacked − unlearned) /
    (target − unlearned) with a 95% bootstrap interval (docs/metrics.md).

    \b
    Examples:
      unlearn attack runs/edited --data runs/demo/world --base runs/demo/models/target
      unlearn attack runs/demo/npo_gdr/model --data runs/demo/world \\
          --attacks relearn,quantize --target runs/demo/models/target
    """
    from lethe.locks import lock_output
    from lethe.outputs import prepare_output_dir
    from unlearn.preflight import preflight_attack

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir else Path("runs") / "attack" / _label(model)
    if not dry_run:  # one writer per report directory, before the preflight reads it
        lock_output(out, "--out directory")
    checked, plan = preflight_attack(model, data=data, attacks=attacks, out=out,
                                     overwrite=overwrite, options=opts)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    from unlearn.robustness import RECOVERY_ATTACKS

    out = prepare_output_dir(out, overwrite=overwrite)
    names = [a.strip() for a in attacks.split(",") if a.strip()]
    extraction = ",".join(n for n in names if n not in RECOVERY_ATTACKS)
    results = {"command": "attack"}
    if extraction:
        results.update(_extraction(model, data, extraction, opts))
    if plan is not None:
        results["recovery"] = _recovery(model, data, plan, out, opts)
    from lethe.report import library_versions, machine_info

    results.setdefault("versions", library_versions())
    results.setdefault("machine", machine_info())
    results["seconds"] = time.perf_counter() - t0
    write_results(results, out)


def _extraction(model: str, data: str, names: str, o: dict) -> dict:
    from unlearn.preflight import parse_new_tokens

    facts = load_facts(data, o["split"], o["limit"])
    try:
        retain = load_facts(data, o["retain_split"], o["retain_limit"]) if o["base"] else []
    except LetheError as err:
        log.warning("no random facts for Δ-accuracy: %s", err)
        retain = []
    return run_attacks(model, o["base"], facts, retain, names=names, data=data,
                       split=o["split"], k=o["k"], layers=o["layers"],
                       paraphrases=o["paraphrases"], samples=o["samples"], budget=o["budget"],
                       seed=o["seed"], temperature=o["temperature"],
                       top_k=o["top_k_sampling"], batch_size=o["batch_size"],
                       dtype=o["dtype"], device=o["device"], layer_index=o["layer_index"],
                       new_tokens=parse_new_tokens(o["new_tokens"]), match=o["match"])


def _recovery(model: str, data: str, plan, out: Path, o: dict) -> dict:
    from eval.muse.registry import SuiteSettings
    from lethe.loading import model_identity
    from unlearn.robustness import run_recovery

    settings = SuiteSettings(batch_size=o["batch_size"], seed=o["seed"], limit=o["limit"])
    click.echo(f"running {', '.join(plan.labels)} against {o['target']}...", err=True)
    rec = run_recovery(model, o["target"], data, plan, out, settings=settings,
                       dtype=o["dtype"], device=o["device"])
    rec.update(model=model_identity(model), target=model_identity(o["target"]),
               data=str(data))
    return rec


def run_attacks(model: str, base: str | None, facts: list[dict], retain: list[dict], *,
                names: str, data: str, split: str, k: int, layers: str, paraphrases: int,
                samples: int, budget: int | None, seed: int, temperature: float, top_k: int,
                batch_size: int, dtype: str, device: str, layer_index: str = "hidden_states",
                new_tokens: int | None = 1, match: str = "substring") -> dict:
    """The attacks `names` on `model`'s facts, and the editing metrics against `base`."""
    from eval.attacks.editing import editing_metrics
    from eval.attacks.extraction import WHITE_BOX, AttackParams, attack_points, run_attack
    from lethe.cli import int_list
    from lethe.lens import lens_layout
    from lethe.lm import load_for_inference
    from lethe.loading import load_tokenizer, model_identity
    from lethe.mixture import LogitMixture
    from lethe.report import library_versions, machine_info

    tok = load_tokenizer(model)  # the preflight checked --base has the same vocabulary
    lm = load_for_inference(model, dtype=dtype, device=device)
    requested = [a.strip() for a in names.split(",") if a.strip()]
    chosen: list[int] = []
    if set(requested) & WHITE_BOX:  # the black-box attack needs no layers (a WHP mixture)
        if isinstance(lm, LogitMixture):
            raise LetheError(f"{model} is a logit mixture (WHP): it has no layers for the "
                             f"white-box attacks; pass --attacks rephrase")
        _, chosen = attack_points(lm, lens_layout(lm), int_list(layers, "--layers"),
                                  layer_index)
    if budget is not None:
        k, samples = budget_params(budget, len(chosen), paraphrases)
    params = AttackParams(layers=tuple(chosen), layer_index=layer_index, k=k,
                          paraphrases=paraphrases, samples=samples, seed=seed,
                          temperature=temperature, top_k=top_k, new_tokens=new_tokens,
                          match=match, batch_size=batch_size)
    results = {"command": "attack", "model": model_identity(model),
               "base": model_identity(base) if base else None, "data": str(data),
               "split": split, "n_facts": len(facts),
               "params": {**params.__dict__, "layers": list(chosen), "budget": budget},
               "attacks": {}, "per_fact": {}}
    for name in requested:
        click.echo(f"running {name} on {len(facts)} facts...", err=True)
        res = run_attack(name, lm, tok, facts, params)
        results["attacks"][name] = res.summary()
        results["per_fact"][name] = [{"case_id": f.get("case_id"), "success": s, **d}
                                     for f, s, d in zip(facts, res.success, res.details)]
    base_lm = load_for_inference(base, dtype=dtype, device=device) if base else None
    results["editing"] = editing_metrics(lm, tok, facts, base=base_lm, retain_facts=retain,
                                         batch_size=batch_size)
    results["versions"] = library_versions()
    results["machine"] = machine_info()
    return results


def write_results(results: dict, out: Path) -> None:
    from lethe.report import atomic_write_text, write_json

    write_json(out / "results.json", results)
    text = render_markdown(results)
    atomic_write_text(out / "results.md", text + "\n")
    wrote = [out / "results.json", out / "results.md"]
    if "recovery" in results:
        from unlearn.robustness import plot

        plot(results["recovery"], out / "results.png")
        wrote.append(out / "results.png")
    click.echo(text)
    click.echo(f"wrote {', '.join(map(str, wrote))}")
