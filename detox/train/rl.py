"""`detox train` with RL: TRL's GRPOTrainer (default) or RLOOTrainer built from a recipe.

Ziegenbein et al. (ACL 2024) prompt an instruction-tuned LLM to rewrite an inappropriate
argument and optimise it with PPO for a weighted mean of P(appropriate | rewrite) and the
similarity to the original, under a fixed KL penalty (0.001857) to the initial policy, with LoRA
(r = 8). This module builds the same loop from today's libraries:

- prompts: arguments from a table, kept only when the appropriateness classifier scores them as
  inappropriate (as in the paper), rendered with the tokenizer's chat template;
- rewards: `detox.train.rewards` callables wrapping the `eval.detox` scorers, combined by TRL's
  `reward_weights` (weighted arithmetic mean) or one harmonic-mean callable;
- the trainer: GRPOConfig / RLOOConfig from the recipe's `train:` section (keys checked against
  the chosen class; `beta` defaults to the paper's 0.001857), LoRA from `lora:` (the reference
  policy is then the base with adapters disabled), DeepSpeed via `train.deepspeed`, and Lethe's
  progress bar, JSONL log and divergence guard;
- outputs: OUTPUT_DIR/model (a LoRA adapter whose adapter_config.json names a loadable base,
  so `detox rewrite` and `lethe.loading.load_model` take the directory as a model), optional
  OUTPUT_DIR/merged, the reward curve (metrics.jsonl, results.json/.md, reward_curve.png) and
  an evaluation of the initial and trained policy on held-out arguments.

A `sweep:` trains one policy per weighting and writes one trade-off table and plot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
import warnings
from pathlib import Path
from typing import Callable

from detox.heldout import drop_heldout
from detox.train.algorithms import register
from detox.train.policy import (load_policy, policy_prompt, prompt_builder, run_results,
                                save_policy, special_tokens)
from detox.train.recipe import PAPER_KL_BETA, DetoxTrainRecipe
from detox.train.rl_report import read_metrics, reward_curve, summarise_curve, write_report
from lethe.errors import LetheError
from lethe.recipe import dump_yaml, nearest

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# the trainer's config


def config_class(algorithm: str):
    from trl import GRPOConfig, RLOOConfig

    table = {"grpo": GRPOConfig, "rloo": RLOOConfig}
    if algorithm not in table:
        raise LetheError(f"algorithm '{algorithm}' is not an RL algorithm (grpo, rloo)")
    return table[algorithm]


def rl_config(algorithm: str, train: dict, output_dir, seed: int = 0, **overrides):
    """GRPOConfig / RLOOConfig from `train:` (checked against that class's own fields) plus
    Lethe's defaults and the paper's KL coefficient where the recipe is silent."""
    from lethe.deepspeed import prepare_deepspeed
    from lethe.trainer import TRAIN_DEFAULTS

    cls = config_class(algorithm)
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in train:
        if key not in valid:
            raise LetheError(f"train.{key}: not a {cls.__name__} field{nearest(key, valid)}")
    import torch

    # TRL turns bf16 on unless told otherwise, which TrainingArguments refuses without a GPU;
    # pinned memory only warns there.
    cpu = {} if torch.cuda.is_available() else {"dataloader_pin_memory": False}
    if not torch.cuda.is_available() and "fp16" not in train:
        cpu["bf16"] = False
    kwargs = {**TRAIN_DEFAULTS, **cpu, "beta": PAPER_KL_BETA, "seed": seed, **dict(train),
              "output_dir": str(output_dir), **overrides}
    if kwargs.get("deepspeed"):
        prepare_deepspeed(kwargs["deepspeed"])
    try:
        with warnings.catch_warnings():
            # TRL's configs still set the old `gradient_checkpointing` name (TOOLCHAIN.md)
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* deprecated",
                                    category=FutureWarning)
            return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise LetheError(f"train: {str(err).splitlines()[0]}") from None


def lora_config(model, lora):
    """peft LoraConfig for TRL's `peft_config` (TRL then also handles ZeRO-3 adapter dtypes)."""
    from lethe.trainer import lora_config as shared_lora_config

    return shared_lora_config(model, lora)


# ---------------------------------------------------------------------------------------------
# data


def _table_texts(recipe: DetoxTrainRecipe, fold: str | None, split: str | None = None
                 ) -> list[str]:
    from lethe.loading import load_table

    d = recipe.data
    cols = (d.text_field,) + ((d.fold_field,) if d.fold_field else ())
    table = load_table(d.source, config=d.config, split=split or d.split, revision=d.revision,
                       columns=cols)
    texts = table[d.text_field]
    if d.fold_field:
        folds = [str(f) for f in table[d.fold_field]]
        if fold not in folds:
            raise LetheError(f"data: no row of {d.source} has {d.fold_field} = {fold!r} "
                             f"(values: {', '.join(sorted(set(folds)))})")
        texts = [t for t, f in zip(texts, folds) if f == fold]
    texts = [str(t).strip() for t in texts if t is not None and str(t).strip()]
    if d.max_words:
        texts = [t for t in texts if len(t.split()) <= d.max_words]
    return texts


def select_prompts(texts: list[str], limit: int | None, p_appropriate: Callable | None,
                   threshold: float, seed: int, chunk: int = 64) -> tuple[list[str], dict]:
    """Shuffle (seeded), keep texts scored inappropriate (if a scorer is given), stop at
    `limit`. Scores in chunks so a small run does not classify the whole corpus."""
    from detox.train.rewards import inappropriate_rows

    order = list(texts)
    random.Random(seed).shuffle(order)
    kept, seen = [], 0
    for start in range(0, len(order), chunk):
        batch = order[start:start + chunk]
        seen += len(batch)
        if p_appropriate is None:
            kept.extend(batch)
        else:
            kept.extend(batch[i] for i in inappropriate_rows(p_appropriate(batch), threshold))
        if limit is not None and len(kept) >= limit:
            kept = kept[:limit]
            break
    return kept, {"candidates": len(texts), "scored": seen if p_appropriate else 0,
                  "kept": len(kept)}


def build_datasets(recipe, tokenizer, scorers):
    """(train Dataset with prompt/source columns, eval texts, info)."""
    import datasets

    d, f = recipe.data, recipe.filter
    app = scorers.get("appropriateness") if f.enabled else None
    if f.enabled and app is None:
        raise LetheError("filter.enabled needs the appropriateness classifier "
                         "(rewards.appropriateness)")
    p_app = (lambda batch: app.score(batch)) if app is not None else None
    fold = d.train_fold if d.fold_field else None
    # the ParaDetox held-out slice never becomes a training prompt (detox/heldout.py)
    pool = drop_heldout(_table_texts(recipe, fold), str, f"data {d.source}")
    seed = recipe.seed if d.seed is None else d.seed
    train, info = select_prompts(pool, d.max_train, p_app, f.threshold, seed)
    if not train:
        raise LetheError(f"data: no training prompt left after filtering {info} (lower "
                         f"filter.threshold, raise data.max_words or set filter.enabled: false)")
    eval_texts, eval_info = [], {}
    if recipe.evaluate.enabled and ((d.fold_field and d.eval_fold) or
                                    (not d.fold_field and d.eval_split)):
        texts = _table_texts(recipe, d.eval_fold, None if d.fold_field else d.eval_split)
        eval_texts, eval_info = select_prompts(texts, d.max_eval, p_app, f.threshold,
                                               seed + 1)
    builder = prompt_builder(tokenizer, recipe.prompt)
    ds = datasets.Dataset.from_dict({"prompt": [policy_prompt(builder, t) for t in train],
                                     "source": train})
    return ds, eval_texts, {"train": info, "eval": eval_info}


# ---------------------------------------------------------------------------------------------
# evaluation of a saved policy


def evaluate_saved(recipe, model_dir: Path, base_spec: str, texts: list[str], scorers,
                   device) -> dict:
    """Greedy rewrites of `texts` by the trained policy (and the initial one), scored by every
    reward part and combined as in training."""
    from lethe.lm import load_for_inference
    from lethe.loading import load_tokenizer, resolve_model

    tok = load_tokenizer(str(model_dir), padding_side="left")
    # a warm start (e.g. from the SFT rewriter's adapter) is continued as the same adapter, so
    # disabling the adapters would give the bare base model, not the policy RL started from
    warm = resolve_model(recipe.model.name).kind == "adapter"
    # not merged: for a fresh LoRA the initial policy is this model with its adapters disabled
    model = load_for_inference(str(model_dir), dtype=recipe.model.dtype, device=device,
                               merge_adapter=False)
    result = {"n": len(texts)}
    result["final"], rows = _score_rewrites(recipe, model, tok, texts, scorers, "trained")
    if recipe.evaluate.initial:
        if warm:
            start = load_for_inference(recipe.model.name, dtype=recipe.model.dtype,
                                       device=device, merge_adapter=False)
            result["initial"], initial = _score_rewrites(recipe, start, tok, texts, scorers,
                                                         "initial")
            del start
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                result["initial"], initial = _score_rewrites(recipe, model, tok, texts,
                                                             scorers, "initial")
        else:  # full fine-tuning: the initial policy is the recipe's model
            base = load_for_inference(base_spec, dtype=recipe.model.dtype, device=device,
                                      merge_adapter=False)
            result["initial"], initial = _score_rewrites(recipe, base, tok, texts, scorers,
                                                         "initial")
            del base
        for row, first in zip(rows, initial):
            row["initial_rewrite"] = first["rewrite"]
    result["rows"] = rows
    return result


def _score_rewrites(recipe, model, tok, texts: list[str], scorers, tag: str):
    """(mean of each reward part and of the reward, one row per text) of `model`'s greedy
    rewrites, prompted as `detox rewrite` would prompt it."""
    from lethe.lm import LM

    from detox.train.rewards import SOURCE_PARTS, combine, normalised

    ev = recipe.evaluate
    builder = prompt_builder(tok, recipe.prompt)
    raw = LM(model, tok).generate([builder.build(t) for t in texts], ev.max_new_tokens,
                                  ev.batch_size, add_special_tokens=special_tokens(builder),
                                  desc=f"rewrite ({tag})")
    outs = [builder.clean(o) for o in raw]
    parts = {k: [float(v) for v in scorers[k].score(
        outs, sources=texts if k in SOURCE_PARTS else None)] for k in scorers}
    reward = combine(parts, normalised(recipe.rewards.weights_dict()), recipe.rewards.combine)
    means = {k: sum(v) / len(v) for k, v in parts.items()}
    means["reward"] = sum(reward) / len(reward)
    rows = [{"source": s, "rewrite": o, **{k: parts[k][i] for k in parts},
             "reward": reward[i]} for i, (s, o) in enumerate(zip(texts, outs))]
    return means, rows


# ---------------------------------------------------------------------------------------------
# the run


def _trainer_class(algorithm: str):
    from trl import GRPOTrainer, RLOOTrainer

    return {"grpo": GRPOTrainer, "rloo": RLOOTrainer}[algorithm]


def build_trainer(recipe: DetoxTrainRecipe, scorers: dict):
    """The TRL trainer of a recipe, plus what the run needs after training:
    (trainer, tokenizer, base_spec, eval_texts, data_info, weights)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from lethe.trainer import DivergenceGuard, standard_callbacks

    from detox.train.rewards import normalised, reward_functions

    out = Path(recipe.output_dir)
    weights = normalised(recipe.rewards.weights_dict())
    model, tok, base_spec = load_policy(recipe)
    # rewards score what `detox rewrite` would output: the cleaned (first-line) completion
    clean = prompt_builder(tok, recipe.prompt).clean
    funcs, reward_weights = reward_functions(scorers, weights, recipe.rewards.combine, clean)
    train_ds, eval_texts, data_info = build_datasets(recipe, tok, scorers)
    extra = {"reward_weights": reward_weights} if reward_weights else {}
    args = rl_config(recipe.algorithm, recipe.train, out, recipe.seed, **extra)
    peft = None if hasattr(model, "peft_config") else lora_config(model, recipe.lora)
    trainer = _trainer_class(recipe.algorithm)(
        model=model, reward_funcs=funcs, args=args, train_dataset=train_ds,
        processing_class=tok, peft_config=peft,
        callbacks=standard_callbacks(out, DivergenceGuard(recipe.guard.max_abs_loss),
                                     desc=f"detox {recipe.algorithm}"))
    for cb in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(cb)
    return trainer, tok, base_spec, eval_texts, data_info, weights


def run_rl(recipe: DetoxTrainRecipe, *, resume=False, scorers=None) -> dict:
    from transformers import set_seed

    from lethe.cli import is_main_process
    from lethe.lm import pick_device
    from lethe.report import atomic_write_text
    from lethe.trainer import resume_checkpoint

    from detox.train.rewards import build_scorers

    out = Path(recipe.output_dir)
    set_seed(recipe.seed)
    device = pick_device()  # this rank's own accelerator: each rank scores its completions
    if scorers is None:
        scorers = build_scorers(recipe.rewards, device, need=("appropriateness", "similarity"))
    trainer, tok, base_spec, eval_texts, data_info, weights = build_trainer(recipe, scorers)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.yaml", dump_yaml(recipe))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(out, resume))
    train_s = time.perf_counter() - start
    steps = trainer.state.global_step
    model_dir = save_policy(trainer, tok, out, base_spec, bool(recipe.lora and recipe.lora.merge))
    del trainer
    results = run_results(recipe, steps, train_s, model_dir)
    results.update(weights=weights, data=data_info)
    if not is_main_process():
        return results
    curve = reward_curve(read_metrics(out / "metrics.jsonl"))
    results["curve"] = curve
    results["curve_summary"] = summarise_curve(curve)
    if recipe.evaluate.enabled and eval_texts:
        ev = evaluate_saved(recipe, model_dir, base_spec, eval_texts, scorers, device)
        atomic_write_text(out / "rewrites.jsonl", "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in ev.pop("rows")))
        results["eval"] = ev
    write_report(recipe, out, results)
    return results


register("grpo")(run_rl)
register("rloo")(run_rl)


