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

from lethe.errors import LetheError
from lethe.recipe import to_dict

from detox.rl import load_policy, prompt_builder, register, save_policy, special_tokens
from detox.train_recipe import DetoxTrainRecipe, PairData

log = logging.getLogger(__name__)

IGNORE = -100  # label of positions that carry no loss (prompt tokens, padding)


def load_pairs(p: PairData, seed: int) -> list[tuple[str, str]]:
    """(input, target) pairs, empty targets dropped, shuffled with `seed`, capped at max_train
    + the held-out share."""
    from lethe.loading import load_table

    table = load_table(p.source, config=p.config, split=p.split, revision=p.revision,
                       columns=(p.input_field, p.target_field))
    pairs = [(str(a).strip(), str(b).strip())
             for a, b in zip(table[p.input_field], table[p.target_field])
             if a is not None and b is not None and str(a).strip() and str(b).strip()]
    if not pairs:
        raise LetheError(f"pairs: {p.source} has no row with both {p.input_field} and "
                         f"{p.target_field}")
    random.Random(seed).shuffle(pairs)
    return pairs


def encode_pair(tokenizer, builder, source: str, target: str) -> dict:
    """input_ids = prompt + response + EOS; labels = IGNORE on the prompt, the ids elsewhere.
    The prompt is `detox rewrite`'s (builder: detox.fewshot.PromptBuilder)."""
    p_ids = tokenizer(builder.build(source), add_special_tokens=special_tokens(builder))[
        "input_ids"]
    r_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = list(p_ids) + list(r_ids)
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": [IGNORE] * len(p_ids) + list(r_ids)}


def collate(pad_id: int):
    """Right-pad a list of encoded pairs into (B, T) tensors."""

    def fn(rows):
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        out = {"input_ids": torch.full((len(rows), width), pad_id, dtype=torch.long),
               "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
               "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long)}
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            for key in out:
                out[key][i, :n] = torch.tensor(r[key])
        return out

    return fn


def response_nll(model, batch):
    """Mean NLL of the response tokens: logits at t predict token t+1. (loss, n_tokens)"""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"],
                   attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    labels = batch["labels"][:, 1:]  # (B, T-1)
    logits = logits[:, :-1].float()  # (B, T-1, V)
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
    import datasets
    from transformers import set_seed

    from eval.report import (atomic_write_text, library_versions, machine_info, markdown_table,
                             write_json)
    from lethe.cli import is_main_process
    from lethe.loading import model_identity
    from lethe.trainer import (DivergenceGuard, LetheTrainer, apply_lora, resume_checkpoint,
                               training_arguments)

    out = Path(recipe.output_dir)
    set_seed(recipe.seed)
    model, tok, base_spec = load_policy(recipe)
    if not hasattr(model, "peft_config"):
        model = apply_lora(model, recipe.lora)
    p = recipe.pairs
    pairs = load_pairs(p, recipe.seed)
    builder = prompt_builder(tok, recipe.prompt)
    encoded = [encode_pair(tok, builder, a, b) for a, b in pairs]
    kept = [e for e in encoded if len(e["input_ids"]) <= p.max_length]
    if not kept:
        raise LetheError(f"pairs: every pair is longer than pairs.max_length={p.max_length} "
                         f"tokens; raise it")
    n_eval = max(1, int(round(len(kept) * p.eval_fraction))) if p.eval_fraction > 0 else 0
    held, train_rows = kept[:n_eval], kept[n_eval:]
    if p.max_train is not None:
        train_rows = train_rows[:p.max_train]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    nll_before = mean_response_nll(model, held, pad) if held else None
    args = training_arguments(recipe.train, out, seed=recipe.seed)
    trainer = LetheTrainer(model=model, args=args,
                           train_dataset=datasets.Dataset.from_list(train_rows),
                           data_collator=collate(pad), loss_fn=loss_fn,
                           guard=DivergenceGuard(recipe.guard.max_abs_loss),
                           progress_desc="detox sft")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(out, resume))
    train_s = time.perf_counter() - start
    steps = trainer.state.global_step
    model_dir = save_policy(trainer, tok, out, base_spec, bool(recipe.lora and recipe.lora.merge))
    results = {"command": "detox train", "algorithm": "sft", "recipe": to_dict(recipe),
               "model": model_identity(recipe.model.name, recipe.model.revision),
               "data": {"source": p.source, "pairs": len(pairs), "kept": len(kept),
                        "train": len(train_rows), "held_out": len(held)},
               "steps": steps, "train_seconds": round(train_s, 1),
               "seconds_per_step": round(train_s / max(steps, 1), 2), "saved": str(model_dir),
               "versions": library_versions(), "machine": machine_info()}
    if not is_main_process():
        return results
    model = trainer.model
    if held:
        results["held_out_response_nll"] = {"initial": nll_before,
                                            "final": mean_response_nll(model, held, pad)}
    # A few greedy rewrites of held-out inputs, for a look (not a metric).
    held_pairs = [pr for pr, e in zip(pairs, encoded) if len(e["input_ids"]) <= p.max_length]
    sample = held_pairs[:min(8, n_eval)]
    if sample:
        from detox.rl import _PromptLM

        tok.padding_side = "left"
        lm = _PromptLM(model, tok, special_tokens(builder))
        outs = lm.generate([builder.build(a) for a, _ in sample],
                           recipe.evaluate.max_new_tokens, recipe.evaluate.batch_size)
        results["samples"] = [{"source": a, "reference": b, "rewrite": builder.clean(o)}
                              for (a, b), o in zip(sample, outs)]
    write_json(out / "results.json", results)
    md = [f"# detox train (sft): {recipe.model.name} on {p.source}\n",
          f"{len(train_rows)} training pairs, {steps} steps in {train_s:.0f} s "
          f"({results['seconds_per_step']:.2f} s/step).\n"]
    if held:
        h = results["held_out_response_nll"]
        md.append(markdown_table(["held-out response NLL", "initial", "final"],
                                 [[f"{len(held)} pairs", h["initial"], h["final"]]], digits=4))
    for s in results.get("samples", []):
        md.append(f"\n- **in**: {s['source']}\n  **ref**: {s['reference']}\n"
                  f"  **out**: {s['rewrite']}")
    md.append(f"\n\nModel: `{model_dir}`\n")
    atomic_write_text(out / "results.md", "\n".join(md))
    return results
