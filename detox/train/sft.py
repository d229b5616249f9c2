"""`detox train` with `algorithm: sft`: a supervised rewriter on parallel pairs.

A second route to a rewriter, and a warm start for RL: fine-tune the policy (LoRA by default)
on pairs such as ParaDetox (Logacheva et al., 2022; toxic -> neutral1) through the shared
trainer. Each example is the rewriting prompt (the same instruction, template and chat wrapping
RL and `detox rewrite` use) followed by the human rewrite and EOS; the loss is the negative
log-likelihood of the response tokens only (prompt positions are labelled -100).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from detox.heldout import drop_heldout
from detox.train.algorithms import register
from detox.train.policy import (load_policy, prompt_builder, run_results, save_policy,
                                special_tokens)
from detox.train.recipe import DetoxTrainRecipe, PairData
from lethe.errors import LetheError

log = logging.getLogger(__name__)

IGNORE = -100  # label of positions that carry no loss (prompt tokens, padding)


def load_pairs(p: PairData, seed: int) -> list[tuple[str, str]]:
    """(input, target) pairs, empty targets dropped, the ParaDetox held-out slice left out
    (detox/heldout.py), shuffled with `seed`."""
    from lethe.loading import load_table

    table = load_table(p.source, config=p.config, split=p.split, revision=p.revision,
                       columns=(p.input_field, p.target_field))
    pairs = [(str(a).strip(), str(b).strip())
             for a, b in zip(table[p.input_field], table[p.target_field])
             if a is not None and b is not None and str(a).strip() and str(b).strip()]
    pairs = drop_heldout(pairs, lambda pr: pr[0], f"pairs {p.source}")
    if not pairs:
        raise LetheError(f"pairs: {p.source} has no row with both {p.input_field} and "
                         f"{p.target_field}")
    random.Random(seed).shuffle(pairs)
    return pairs


def encode_pair(tokenizer, builder, source: str, target: str) -> dict:
    """input_ids = prompt + response + EOS; labels = IGNORE on the prompt, the ids elsewhere.
    The prompt is `detox rewrite`'s (builder: detox.rewrite.prompts.PromptBuilder)."""
    p_ids = tokenizer(builder.build(source), add_special_tokens=special_tokens(builder))[
        "input_ids"]
    # plain prompts end with the label ("Polite:"): the rewrite follows after a space, as the
    # base model would tokenise it (" I" not "I")
    response = f" {target}" if builder.fmt == "plain" else target
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = list(p_ids) + list(r_ids)
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": [IGNORE] * len(p_ids) + list(r_ids)}


def collate(pad: int):
    """Right-pad a list of encoded pairs into (B, T) tensors (labels padded with IGNORE)."""

    def fn(rows):
        from lethe.lm import pad_right

        input_ids, mask = pad_right([r["input_ids"] for r in rows], pad)  # (B, T) each
        labels, _ = pad_right([r["labels"] for r in rows], IGNORE)  # (B, T)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return fn


def response_nll(model, batch):
    """Mean NLL of the response tokens: logits at t predict token t+1. (loss, n_tokens)

    Only the positions from the earliest response in the batch on get logits
    (`logits_to_keep`): the LM head (576 x 49k for SmolLM2, ~1/5 of its forward) and the
    (B, T, V) float copy are skipped over the prompts, whose labels are IGNORE anyway."""
    import torch.nn.functional as F

    labels = batch["labels"]  # (B, T)
    T = labels.shape[1]
    has = (labels != IGNORE).any(0).nonzero()
    start = max(int(has[0]) - 1, 0) if len(has) else 0  # first position whose logit is used
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=T - start).logits  # (B, T - start, V)
    labels = labels[:, start + 1:]  # (B, T - start - 1)
    logits = logits[:, :-1].float()  # (B, T - start - 1, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE)
    return loss, int((labels != IGNORE).sum())


def loss_fn(model, batch):
    loss, n = response_nll(model, batch)
    return loss, {"response_tokens": float(n)}


def mean_response_nll(model, rows, pad_id: int, batch_size: int = 8) -> float:
    """Token-weighted mean response NLL over `rows` (evaluation, no grad)."""
    import torch

    device = next(model.parameters()).device
    fn = collate(pad_id)
    total, count = 0.0, 0
    was = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = {k: v.to(device) for k, v in fn(rows[start:start + batch_size]).items()}
            loss, n = response_nll(model, batch)
            total += loss.item() * n
            count += n
    if was:
        model.train()
    return total / max(count, 1)


@register("sft")
def run_sft(recipe: DetoxTrainRecipe, *, resume=False, scorers=None) -> dict:
    from transformers import set_seed

    from lethe.cli import is_main_process
    from lethe.lm import pad_id
    from lethe.trainer import apply_lora

    set_seed(recipe.seed)
    model, tok, base_spec = load_policy(recipe)
    if not hasattr(model, "peft_config"):
        model = apply_lora(model, recipe.lora)
    builder = prompt_builder(tok, recipe.prompt)
    data = _split_pairs(recipe, tok, builder)
    pad = pad_id(tok)
    nll_before = mean_response_nll(model, data["held"], pad) if data["held"] else None
    trainer, train_s = _train(recipe, model, data["train"], pad, resume)
    steps = trainer.state.global_step
    model_dir = save_policy(trainer, tok, Path(recipe.output_dir), base_spec,
                            bool(recipe.lora and recipe.lora.merge))
    results = run_results(recipe, steps, train_s, model_dir)
    results["data"] = {"source": recipe.pairs.source, "pairs": len(data["pairs"]),
                       "kept": len(data["kept"]), "train": len(data["train"]),
                       "held_out": len(data["held"]),
                       "train_sha256_16": pairs_hash(data["train_pairs"])}
    if not is_main_process():
        return results
    if data["held"]:
        results["held_out_response_nll"] = {
            "initial": nll_before, "final": mean_response_nll(trainer.model, data["held"], pad)}
    # A few greedy rewrites of held-out inputs, for a look (not a metric).
    sample = data["kept"][:min(8, len(data["held"]))]
    if sample:
        results["samples"] = _samples(recipe, trainer.model, tok, builder, sample)
    _write_report(recipe, results, train_s)
    return results


def _split_pairs(recipe: DetoxTrainRecipe, tok, builder) -> dict:
    """The pairs, those that fit `pairs.max_length` ("kept", as pairs), and their encodings
    cut into the held-out share ("held") and the training rows ("train")."""
    p = recipe.pairs
    pairs = load_pairs(p, recipe.seed)
    encoded = [encode_pair(tok, builder, a, b) for a, b in pairs]
    fits = [len(e["input_ids"]) <= p.max_length for e in encoded]
    rows = [e for e, ok in zip(encoded, fits) if ok]
    if not rows:
        raise LetheError(f"pairs: every pair is longer than pairs.max_length={p.max_length} "
                         f"tokens; raise it")
    n_eval = max(1, int(round(len(rows) * p.eval_fraction))) if p.eval_fraction > 0 else 0
    start = n_eval + p.skip
    end = None if p.max_train is None else start + p.max_train
    kept = [pr for pr, ok in zip(pairs, fits) if ok]
    if start >= len(rows):
        raise LetheError(f"pairs.skip={p.skip}: only {len(rows) - n_eval} training pairs; "
                         f"lower it")
    return {"pairs": pairs, "kept": kept, "held": rows[:n_eval], "train": rows[start:end],
            "train_pairs": kept[start:end]}


def pairs_hash(pairs) -> str:
    """SHA-256 (16 hex) of the training pairs in training order (the model card's data hash)."""
    import hashlib

    h = hashlib.sha256()
    for a, b in pairs:
        h.update(f"{a}\t{b}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _train(recipe: DetoxTrainRecipe, model, rows: list[dict], pad: int, resume):
    """(trainer, seconds): the response-token NLL through the shared trainer."""
    import datasets

    from lethe.trainer import (DivergenceGuard, LetheTrainer, resume_checkpoint,
                               training_arguments)

    out = Path(recipe.output_dir)
    args = training_arguments(recipe.train, out, seed=recipe.seed)
    trainer = LetheTrainer(model=model, args=args,
                           train_dataset=datasets.Dataset.from_list(rows),
                           data_collator=collate(pad), loss_fn=loss_fn,
                           guard=DivergenceGuard(recipe.guard.max_abs_loss),
                           progress_desc="detox sft")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(out, resume))
    return trainer, time.perf_counter() - start


def _samples(recipe: DetoxTrainRecipe, model, tok, builder, pairs) -> list[dict]:
    from lethe.lm import LM

    tok.padding_side = "left"
    outs = LM(model, tok).generate([builder.build(a) for a, _ in pairs],
                                   recipe.evaluate.max_new_tokens, recipe.evaluate.batch_size,
                                   add_special_tokens=special_tokens(builder))
    return [{"source": a, "reference": b, "rewrite": builder.clean(o)}
            for (a, b), o in zip(pairs, outs)]


def _write_report(recipe: DetoxTrainRecipe, results: dict, train_s: float) -> None:
    from lethe.report import atomic_write_text, markdown_table, write_json

    out, data = Path(recipe.output_dir), results["data"]
    write_json(out / "results.json", results)
    md = [f"# detox train (sft): {recipe.model.name} on {recipe.pairs.source}\n",
          f"{data['train']} training pairs, {results['steps']} steps in {train_s:.0f} s "
          f"({results['seconds_per_step']:.2f} s/step).\n"]
    if "held_out_response_nll" in results:
        h = results["held_out_response_nll"]
        md.append(markdown_table(["held-out response NLL", "initial", "final"],
                                 [[f"{data['held_out']} pairs", h["initial"], h["final"]]],
                                 digits=4))
    for s in results.get("samples", []):
        md.append(f"\n- **in**: {s['source']}\n  **ref**: {s['reference']}\n"
                  f"  **out**: {s['rewrite']}")
    md.append(f"\n\nModel: `{results['saved']}`\n")
    atomic_write_text(out / "results.md", "\n".join(md))
