"""`unlearn attack`: extraction attacks (and editing metrics) on any checkpoint.

    unlearn attack MODEL --data DATA [--attacks head_projection,prob_delta,rephrase]
                   [--k 4] [--layers all|2,3,...] [--layer-index hidden_states|block]
                   [--paraphrases 4] [--samples 5] [--new-tokens 1|answer]
                   [--match substring|prefix]
                   [--budget B] [--base MODEL] [--split forget] [--retain-split retain]
                   [--limit N] [--retain-limit 100] [--out DIR] [--overwrite] [--seed 0]

DATA holds CounterFact-style facts: DATA/facts/{split}.jsonl as `unlearn world` writes them.
The attacks look for each fact's true answer (Patil, Hase & Bansal 2024); with --base (the
unedited model) the rewrite score and Δ-accuracies are added. Writes results.json and
results.md; docs/editing.md defines every number.
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
    k, samples = budget // (2 * n_layers), budget // n_prompts
    if k < 1 or samples < 1:
        raise LetheError(f"--budget {budget} is too small: head projection needs at least "
                         f"2·|layers| = {2 * n_layers}, rephrasing at least --paraphrases = "
                         f"{n_prompts}")
    return k, samples


def render_markdown(results: dict) -> str:
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
    return "\n".join(lines)


@click.command("attack")
@click.argument("model", metavar="MODEL")
@click.option("--data", required=True, metavar="DATA",
              help="World directory with facts/{split}.jsonl (or a dataset with a 'facts' "
                   "config).")
@click.option("--attacks", default=DEFAULT_ATTACKS, show_default=True, metavar="LIST",
              help="Comma-separated: head_projection, prob_delta, rephrase.")
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
@click.option("--limit", type=click.IntRange(min=1), default=None, help="First N facts only.")
@click.option("--retain-limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="First N random (retain) facts for Δ-accuracy.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Output directory (default: runs/attack/<model>).")
@click.option("--overwrite", is_flag=True, help="Replace results in a non-empty --out.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-k-sampling", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rephrase attack sampling filter (transformers' default 50; 0 = none).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--dtype", default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1...")
@click.option("--dry-run", is_flag=True,
              help="Run the preflight (attacks, facts, MODEL/--base and their tokenizers, --out),"
                   " print what it checked, and stop before loading any model.")
def attack(model, data, attacks, k, layers, layer_index, paraphrases, samples, new_tokens,
           match, budget, base, split, retain_split, limit, retain_limit, out_dir, overwrite,
           seed, temperature, top_k_sampling, batch_size, dtype, device, dry_run):
    """Run extraction attacks on MODEL's facts; write results.json and results.md.

    Each attack proposes at most B candidate answers per fact and succeeds when the true
    answer is among them (Patil, Hase & Bansal 2024). head_projection (white-box): top-k and
    bottom-k tokens of the logit lens at each chosen layer, B = 2·k·|layers|. prob_delta
    (white-box): the same on differences of consecutive layers' lens distributions,
    B = 2·k·(|layers| − 1). rephrase (black-box): m sampled answers for each of the last n
    phrasings of the fact, B = n·m. With --base (the unedited model) the rewrite score and
    Δ-accuracy on random facts and on neighbourhood prompts are added (docs/editing.md).

    \b
    Example:
      unlearn attack runs/edited --data runs/demo/world --base runs/demo/models/target
    """
    from lethe.locks import lock_output
    from lethe.outputs import prepare_output_dir
    from unlearn.preflight import preflight_attack

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir else Path("runs") / "attack" / _label(model)
    if not dry_run:  # one writer per report directory, before the preflight reads it
        lock_output(out, "--out directory")
    checked = preflight_attack(model, data=data, attacks=attacks, layers=layers, split=split,
                               retain_split=retain_split, base=base, out=out,
                               overwrite=overwrite, device=device)
    if dry_run:
        click.echo(checked.report(), nl=False)
        return
    facts = load_facts(data, split, limit)
    try:
        retain = load_facts(data, retain_split, retain_limit) if base else []
    except LetheError as err:
        log.warning("no random facts for Δ-accuracy: %s", err)
        retain = []
    out = prepare_output_dir(out, overwrite=overwrite)
    opts = dict(k=k, layers=layers, layer_index=layer_index, paraphrases=paraphrases,
                samples=samples, new_tokens=parse_new_tokens(new_tokens), match=match,
                budget=budget, seed=seed, temperature=temperature, top_k=top_k_sampling,
                batch_size=batch_size, dtype=dtype, device=device)
    results = run_attacks(model, base, facts, retain, names=attacks, data=data, split=split,
                          **opts)
    results["seconds"] = time.perf_counter() - t0
    write_results(results, out)


def parse_new_tokens(value: str) -> int | None:
    """--new-tokens: a positive integer, or 'answer' (None: as many tokens as the answer)."""
    if str(value).strip().lower() == "answer":
        return None
    if not str(value).strip().isdigit() or int(value) < 1:
        raise LetheError(f"--new-tokens must be a positive integer or 'answer', got {value!r}")
    return int(value)


def run_attacks(model: str, base: str | None, facts: list[dict], retain: list[dict], *,
                names: str, data: str, split: str, k: int, layers: str, paraphrases: int,
                samples: int, budget: int | None, seed: int, temperature: float, top_k: int,
                batch_size: int, dtype: str, device: str, layer_index: str = "hidden_states",
                new_tokens: int | None = 1, match: str = "substring") -> dict:
    """The attacks `names` on `model`'s facts, and the editing metrics against `base`."""
    from eval.attacks.editing import editing_metrics
    from eval.attacks.extraction import AttackParams, attack_points, run_attack
    from lethe.cli import int_list
    from lethe.lens import lens_layout
    from lethe.lm import load_for_inference
    from lethe.loading import load_tokenizer, model_identity
    from lethe.report import library_versions, machine_info

    tok = load_tokenizer(model)  # the preflight checked --base has the same vocabulary
    lm = load_for_inference(model, dtype=dtype, device=device)
    _, chosen = attack_points(lm, lens_layout(lm), int_list(layers, "--layers"), layer_index)
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
    for name in [a.strip() for a in names.split(",") if a.strip()]:
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
    click.echo(text)
    click.echo(f"wrote {out / 'results.json'}, {out / 'results.md'}")
