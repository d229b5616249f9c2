"""`detox train` with RL: TRL's GRPOTrainer (default) or RLOOTrainer built from a recipe.

Ziegenbein et al. (ACL 2024) prompt an instruction-tuned LLM to rewrite an inappropriate
argument and optimise it with PPO for a weighted mean of P(appropriate | rewrite) and the
similarity to the original, under a fixed KL penalty (0.001857) to the initial policy, with LoRA
(r = 8). This module builds the same loop from today's libraries:

- prompts: arguments from a table, kept only when the appropriateness classifier scores them as
  inappropriate (as in the paper), rendered with the tokenizer's chat template;
- rewards: `detox.rewards` callables wrapping the `eval.detox` scorers, combined by TRL's
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

from lethe.errors import LetheError
from lethe.recipe import dump_yaml, nearest, to_dict

from detox.train_recipe import PAPER_KL_BETA, DetoxTrainRecipe, with_weights

log = logging.getLogger(__name__)

ALGORITHMS: dict[str, Callable] = {}  # algorithm name -> run(recipe, *, resume, scorers)


def register(name: str):
    def deco(fn):
        ALGORITHMS[name] = fn
        return fn

    return deco


# ---------------------------------------------------------------------------------------------
# prompts (shared with SFT so that a rewriter sees the same text in training and in use)


def prompt_builder(tokenizer, cfg):
    """`detox rewrite`'s PromptBuilder for `cfg` (a detox.recipe.PromptConfig); format auto =
    chat when the tokenizer has a chat template, else plain (as `detox rewrite` resolves it)."""
    from detox.fewshot import PromptBuilder

    fmt = cfg.format
    if fmt == "auto":
        fmt = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    return PromptBuilder(cfg, tokenizer, fmt)


def policy_prompt(builder, text: str):
    """What the RL trainer gets: the chat messages `detox rewrite` would render (TRL applies
    the same template with the generation prompt) or, for plain/raw formats, the string."""
    if builder.fmt == "chat":
        system = ([{"role": "system", "content": builder.cfg.instruction_text}]
                  if builder.cfg.instruction else [])
        return system + [{"role": "user", "content": builder.message(text)}]
    return builder.build(text)


def special_tokens(builder) -> bool:
    """Add the tokenizer's special tokens to a rendered prompt? Not to chat-rendered ones
    (the template writes its own BOS), as in `detox rewrite`."""
    return builder.fmt != "chat"


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
    from lethe.trainer import TRAIN_DEFAULTS, ensure_distributed_env

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
        from lethe.preflight import deepspeed_config

        try:
            deepspeed_config(kwargs["deepspeed"])
        except LetheError as err:
            raise LetheError(f"train.deepspeed: {err}") from None
        ensure_distributed_env()
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
# policy in, policy out


def load_policy(recipe: DetoxTrainRecipe):
    """(model, tokenizer, base_spec). An adapter directory (e.g. an SFT warm start) is loaded
    trainable, so RL continues that adapter and its KL reference is the warm-started policy."""
    from lethe.loading import load_model, load_tokenizer, resolve_model

    m = recipe.model
    tok = load_tokenizer(m.name, revision=m.revision, trust_remote_code=m.trust_remote_code)
    src = resolve_model(m.name)
    if src.kind == "adapter":
        from peft import PeftModel

        base = load_model(src.base, dtype=m.dtype, revision=m.revision,
                          trust_remote_code=m.trust_remote_code)
        model = PeftModel.from_pretrained(base, src.path, is_trainable=True)
        return model, tok, src.base
    model = load_model(m.name, dtype=m.dtype, revision=m.revision,
                       trust_remote_code=m.trust_remote_code)
    return model, tok, m.name


def portable_base(spec: str) -> str:
    """The base name to record in adapter_config.json: an alias or hub id as given (loadable
    anywhere by lethe.loading), a local path made absolute."""
    from lethe.loading import BUNDLED_GGUF

    p = Path(spec).expanduser()
    if spec in BUNDLED_GGUF or spec == "minilm" or not p.exists():
        return spec
    return str(p.resolve())


def record_base(model_dir: Path, base_spec: str) -> None:
    """Point an adapter's base_model_name_or_path at `base_spec` (the cached GGUF conversion
    path PEFT records would break on another machine; the alias does not)."""
    from eval.report import atomic_write_text

    path = Path(model_dir) / "adapter_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    cfg["base_model_name_or_path"] = portable_base(base_spec)
    atomic_write_text(path, json.dumps(cfg, indent=2) + "\n")


def save_policy(trainer, tokenizer, out: Path, base_spec: str, merge: bool) -> Path:
    """OUTPUT_DIR/model (adapter or full checkpoint) + tokenizer, swapped in atomically; with
    `merge`, also OUTPUT_DIR/merged (the adapter folded into the base weights)."""
    import shutil

    from detox.classifier import save_dir_atomically

    tmp = out / ".model.partial"
    if trainer.accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of an interrupted save
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # every rank: gathers ZeRO-3 shards; rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if not trainer.accelerator.is_main_process:
        return out / "model"
    shutil.rmtree(tmp / "ref", ignore_errors=True)  # TRL's frozen copy of a warm-start adapter

    def write(dest):
        shutil.move(str(tmp), str(dest))
        tokenizer.save_pretrained(dest)
        record_base(dest, base_spec)

    model_dir = save_dir_atomically(out / "model", write)
    if merge and (model_dir / "adapter_config.json").is_file():
        from lethe.loading import load_model

        merged = load_model(str(model_dir), dtype="auto", merge_adapter=True)
        save_dir_atomically(out / "merged", lambda d: (merged.save_pretrained(d),
                                                       tokenizer.save_pretrained(d)))
    return model_dir


# ---------------------------------------------------------------------------------------------
# data


def _table_texts(recipe: DetoxTrainRecipe, fold: str | None) -> list[str]:
    from lethe.loading import load_table

    d = recipe.data
    cols = (d.text_field,) + ((d.fold_field,) if d.fold_field else ())
    table = load_table(d.source, config=d.config, split=d.split, revision=d.revision,
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
    from detox.rewards import inappropriate_rows

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
    train, info = select_prompts(_table_texts(recipe, fold), d.max_train, p_app, f.threshold,
                                 recipe.seed)
    if not train:
        raise LetheError(f"data: no training prompt left after filtering {info} (lower "
                         f"filter.threshold, raise data.max_words or set filter.enabled: false)")
    eval_texts, eval_info = [], {}
    if recipe.evaluate.enabled and d.fold_field and d.eval_fold:
        eval_texts, eval_info = select_prompts(_table_texts(recipe, d.eval_fold), d.max_eval,
                                               p_app, f.threshold, recipe.seed + 1)
    builder = prompt_builder(tokenizer, recipe.prompt)
    ds = datasets.Dataset.from_dict({"prompt": [policy_prompt(builder, t) for t in train],
                                     "source": train})
    return ds, eval_texts, {"train": info, "eval": eval_info}


# ---------------------------------------------------------------------------------------------
# evaluation of a saved policy


def _PromptLM(model, tokenizer, add_special_tokens: bool):
    """eval.lm.LM whose prompts get special tokens only when `detox rewrite` adds them."""
    from eval.lm import LM

    class PromptLM(LM):
        def encode(self, texts, *, add_special_tokens=add_special_tokens):
            return super().encode(texts, add_special_tokens=add_special_tokens)

    return PromptLM(model, tokenizer, progress=True)


def evaluate_saved(recipe, model_dir: Path, base_spec: str, texts: list[str], scorers,
                   device) -> dict:
    """Greedy rewrites of `texts` by the trained policy (and the initial one), scored by every
    reward part and combined as in training."""
    from lethe.loading import load_model, load_tokenizer

    from detox.rewards import SOURCE_PARTS, combine, normalised

    ev = recipe.evaluate
    tok = load_tokenizer(str(model_dir), padding_side="left")
    model = load_model(str(model_dir), dtype=recipe.model.dtype).to(device)
    builder = prompt_builder(tok, recipe.prompt)
    prompts = [builder.build(t) for t in texts]
    weights = normalised(recipe.rewards.weights_dict())

    def run(lm_model, tag):
        lm = _PromptLM(lm_model, tok, special_tokens(builder))
        outs = [builder.clean(o) for o in lm.generate(prompts, ev.max_new_tokens, ev.batch_size,
                                                       desc=f"rewrite ({tag})")]
        parts = {k: [float(v) for v in scorers[k].score(
            outs, sources=texts if k in SOURCE_PARTS else None)] for k in scorers}
        reward = combine(parts, weights, recipe.rewards.combine)
        means = {k: sum(v) / len(v) for k, v in parts.items()}
        means["reward"] = sum(reward) / len(reward)
        rows = [{"source": s, "rewrite": o, **{k: parts[k][i] for k in parts},
                 "reward": reward[i]} for i, (s, o) in enumerate(zip(texts, outs))]
        return means, rows

    result = {"n": len(texts)}
    result["final"], rows = run(model, "trained")
    if ev.initial:
        initial = None
        if hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                result["initial"], initial = run(model, "initial")
        else:  # full fine-tuning: the initial policy is the recipe's model
            base = load_model(base_spec, dtype=recipe.model.dtype).to(device)
            result["initial"], initial = run(base, "initial")
            del base
        for row, first in zip(rows, initial):
            row["initial_rewrite"] = first["rewrite"]
    result["rows"] = rows
    return result


# ---------------------------------------------------------------------------------------------
# reports


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reward_curve(records: list[dict]) -> list[dict]:
    """Per logged step: the mean reward and each part's mean (TRL's rewards/<part>/mean or
    our reward_parts/<part>), plus KL and loss when logged."""
    out = []
    for r in records:
        if "reward" not in r:
            continue
        row = {"step": r["step"], "reward": r["reward"]}
        for k, v in r.items():
            if k.startswith("rewards/") and k.endswith("/mean"):
                row[k.split("/")[1]] = v
            elif k.startswith("reward_parts/"):
                row[k.split("/", 1)[1]] = v
        for k in ("kl", "loss", "reward_std", "step_time"):
            if k in r:
                row[k] = r[k]
        out.append(row)
    return out


def _plot_curve(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.report import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in curve]
    keys = ["reward"] + sorted({k for r in curve for k in r} - {"step", "reward", "kl", "loss",
                                                                 "reward_std", "step_time"})
    for k in keys:
        ax.plot(steps, [r.get(k) for r in curve], marker="o", ms=3, label=k,
                lw=2 if k == "reward" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean over the step's completions")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def write_report(recipe, out: Path, results: dict) -> None:
    from eval.report import atomic_write_text, markdown_table, write_json

    write_json(out / "results.json", results)
    curve = results.get("curve", [])
    lines = [f"# detox train ({recipe.algorithm}): {recipe.model.name}\n",
             f"{results['steps']} steps in {results['train_seconds']:.0f} s "
             f"({results['seconds_per_step']:.1f} s/step); {results['data']['train']['kept']} "
             f"training prompts. Reward = {recipe.rewards.combine} mean of "
             + ", ".join(f"{k} x {v:.2f}" for k, v in results["weights"].items()) + ".\n"]
    if curve:
        parts = sorted({k for r in curve for k in r} - {"step", "reward", "kl", "loss",
                                                         "reward_std", "step_time"})
        header = ["step", "reward"] + parts + [k for k in ("kl", "loss") if k in curve[0]]
        lines.append("## Reward per step (training samples)\n")
        lines.append(markdown_table(header, [[r.get(k) for k in header] for r in curve],
                                    digits=4))
        s = results["curve_summary"]
        lines.append(f"\nMean reward over the first {s['k']} steps {s['first']:.4f}, "
                     f"over the last {s['k']} steps {s['last']:.4f}.\n")
        _plot_curve(curve, out / "reward_curve.png", f"{recipe.algorithm}: reward per step")
    ev = results.get("eval")
    if ev:
        keys = [k for k in ev["final"]]
        rows = [[name] + [ev[name][k] for k in keys] for name in ("initial", "final")
                if name in ev]
        lines.append(f"\n## Held-out arguments (n = {ev['n']}, greedy)\n")
        lines.append(markdown_table(["policy"] + keys, rows, digits=3))
    lines.append(f"\nModel: `{results['saved']}`\n\n```yaml\n{dump_yaml(recipe)}```\n")
    atomic_write_text(out / "results.md", "\n".join(lines))


def summarise_curve(curve: list[dict]) -> dict:
    if not curve:
        return {}
    k = max(1, min(5, len(curve) // 3))
    first = [r["reward"] for r in curve[:k]]
    last = [r["reward"] for r in curve[-k:]]
    return {"k": k, "first": sum(first) / k, "last": sum(last) / k}


# ---------------------------------------------------------------------------------------------
# the run


def scorer_device():
    """This process's device (cuda:LOCAL_RANK under a launcher, else cpu): each rank scores
    its own completions on its own accelerator."""
    from accelerate import PartialState

    return PartialState().device


def _trainer_class(algorithm: str):
    from trl import GRPOTrainer, RLOOTrainer

    return {"grpo": GRPOTrainer, "rloo": RLOOTrainer}[algorithm]


def build_trainer(recipe: DetoxTrainRecipe, scorers: dict):
    """The TRL trainer of a recipe, plus what the run needs after training:
    (trainer, tokenizer, base_spec, eval_texts, data_info, weights)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from lethe.trainer import DivergenceGuard, standard_callbacks

    from detox.rewards import normalised, reward_functions

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

    from eval.report import library_versions, machine_info
    from lethe.cli import is_main_process
    from lethe.loading import model_identity
    from lethe.trainer import resume_checkpoint

    from detox.rewards import build_scorers

    out = Path(recipe.output_dir)
    set_seed(recipe.seed)
    device = scorer_device()
    if scorers is None:
        scorers = build_scorers(recipe.rewards, device, need=("appropriateness", "similarity"))
    trainer, tok, base_spec, eval_texts, data_info, weights = build_trainer(recipe, scorers)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        from eval.report import atomic_write_text

        atomic_write_text(out / "recipe.yaml", dump_yaml(recipe))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_checkpoint(out, resume))
    train_s = time.perf_counter() - start
    steps = trainer.state.global_step
    merge = bool(recipe.lora and recipe.lora.merge)
    model_dir = save_policy(trainer, tok, out, base_spec, merge)
    del trainer
    results = {"command": "detox train", "algorithm": recipe.algorithm,
               "recipe": to_dict(recipe), "model": model_identity(recipe.model.name,
                                                                  recipe.model.revision),
               "weights": weights, "data": data_info, "steps": steps,
               "train_seconds": round(train_s, 1),
               "seconds_per_step": round(train_s / max(steps, 1), 2), "saved": str(model_dir),
               "versions": library_versions(), "machine": machine_info()}
    if not is_main_process():
        return results
    curve = reward_curve(read_metrics(out / "metrics.jsonl"))
    results["curve"] = curve
    results["curve_summary"] = summarise_curve(curve)
    if recipe.evaluate.enabled and eval_texts:
        ev = evaluate_saved(recipe, model_dir, base_spec, eval_texts, scorers, device)
        from eval.report import atomic_write_text

        atomic_write_text(out / "rewrites.jsonl", "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in ev.pop("rows")))
        results["eval"] = ev
    write_report(recipe, out, results)
    return results


register("grpo")(run_rl)
register("rloo")(run_rl)


# ---------------------------------------------------------------------------------------------
# weighting sweep


def run_sweep(recipe: DetoxTrainRecipe, *, resume=False, scorers=None) -> dict:
    """One policy per weighting (OUTPUT_DIR/sweep/<tag>), then one trade-off table + plot.
    A weighting whose results.json was written for the same recipe is not trained again."""
    from eval.report import (atomic_write_text, library_versions, machine_info, markdown_table,
                             write_json)

    from detox.rewards import build_scorers

    out = Path(recipe.output_dir)
    if scorers is None:  # built once, shared by every weighting
        scorers = build_scorers(recipe.rewards, scorer_device(),
                                need=("appropriateness", "similarity"))
    runs = []
    for i, w in enumerate(recipe.sweep.weightings):
        sub = with_weights(recipe, w, str(out / "sweep" / w.tag()))
        if i > 0:  # the initial policy is the same for every weighting: score it once
            sub = dataclasses.replace(sub, evaluate=dataclasses.replace(sub.evaluate,
                                                                        initial=False))
        done = Path(sub.output_dir) / "results.json"
        same = json.loads(json.dumps(to_dict(sub)))  # as results.json stores it
        if done.is_file() and json.loads(done.read_text()).get("recipe") == same:
            log.info("sweep: %s already trained, reusing %s", w.tag(), done)
            res = json.loads(done.read_text())
        else:
            res = ALGORITHMS[sub.algorithm](sub, resume=resume, scorers=scorers)
        runs.append((w, res))
    rows, table = [], []
    first_eval = runs[0][1].get("eval", {}) if runs else {}
    if "initial" in first_eval:
        init = first_eval["initial"]
        rows.append({"weighting": "initial policy", "appropriateness": init.get(
            "appropriateness"), "similarity": init.get("similarity")})
    for w, res in runs:
        fin = res.get("eval", {}).get("final", {})
        cs = res.get("curve_summary", {})
        rows.append({"weighting": w.tag(), "w_app": w.appropriateness, "w_sim": w.similarity,
                     "appropriateness": fin.get("appropriateness"),
                     "similarity": fin.get("similarity"), "reward": fin.get("reward"),
                     "train_reward_first": cs.get("first"), "train_reward_last": cs.get("last"),
                     "dir": res.get("saved")})
    header = ["weighting", "appropriateness", "similarity", "reward", "train_reward_first",
              "train_reward_last"]
    table = markdown_table(header, [[r.get(k) for k in header] for r in rows], digits=3)
    results = {"command": "detox train (sweep)", "recipe": to_dict(recipe), "rows": rows,
               "versions": library_versions(), "machine": machine_info()}
    from lethe.cli import is_main_process

    if not is_main_process():  # rank 0 writes the report (and holds the output's lock)
        return results
    write_json(out / "results.json", results)
    _plot_tradeoff(rows, out / "results.png")
    atomic_write_text(out / "results.md",
                      f"# Weighting sweep: {recipe.model.name}, {recipe.algorithm}\n\n"
                      f"Held-out means of the reward parts per weighting (greedy rewrites).\n\n"
                      f"{table}\n![trade-off](results.png)\n")
    return results


def _plot_tradeoff(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.report import save_figure

    pts = [r for r in rows if r.get("similarity") is not None
           and r.get("appropriateness") is not None]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in pts:
        ax.scatter(r["similarity"], r["appropriateness"],
                   marker="x" if r["weighting"] == "initial policy" else "o")
        ax.annotate(r["weighting"], (r["similarity"], r["appropriateness"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("similarity to the original")
    ax.set_ylabel("P(appropriate)")
    ax.set_title("appropriateness vs content preservation")
    save_figure(fig, path)
    plt.close(fig)


def run(recipe: DetoxTrainRecipe, *, resume=False) -> dict:
    """`detox train`: one run, or a sweep when `sweep.weightings` is set."""
    import detox.sft  # noqa: F401  (registers "sft")

    if recipe.algorithm not in ALGORITHMS:
        raise LetheError(f"algorithm '{recipe.algorithm}' has no runner "
                         f"({', '.join(sorted(ALGORITHMS))})")
    if recipe.sweep.weightings:
        if recipe.algorithm == "sft":
            raise LetheError("sweep: weightings are reward weights; they need grpo or rloo")
        return run_sweep(recipe, resume=resume)
    return ALGORITHMS[recipe.algorithm](recipe, resume=resume)


def _dry_config(algorithm: str, train: dict, output_dir, seed: int):
    """The trainer config a recipe produces, built without starting anything: the keys a
    preflight must not instantiate here (DeepSpeed; bf16/fp16/tf32 without CUDA) are checked
    (the DeepSpeed file exists, is JSON, has a ZeRO stage 0-3; booleans) and left out."""
    from lethe.preflight import GPU_ONLY_KEYS, deepspeed_config, held_keys

    train, held = held_keys(train)
    if held.get("deepspeed"):
        try:
            deepspeed_config(held["deepspeed"])
        except LetheError as err:
            raise LetheError(f"train.deepspeed: {err}") from None
    for k in GPU_ONLY_KEYS:
        if k in held and held[k] is not None and not isinstance(held[k], bool):
            raise LetheError(f"train.{k}: expected true or false, got {held[k]!r}")
    if algorithm in ("grpo", "rloo"):
        valid = {f.name for f in dataclasses.fields(config_class(algorithm)) if f.init}
        for key in held:
            if key not in valid:
                raise LetheError(f"train.{key}: not a {config_class(algorithm).__name__} field")
        cfg = rl_config(algorithm, train, output_dir, seed)
    else:
        from lethe.trainer import training_arguments

        cfg = training_arguments(train, output_dir, seed=seed)
    return cfg, held


def dry_run(recipe: DetoxTrainRecipe) -> str:
    """The resolved recipe plus the trainer config it produces (validates every key)."""
    from detox.rewards import normalised

    cfg, held = _dry_config(recipe.algorithm, recipe.train, recipe.output_dir, recipe.seed)
    fields = ("beta", "num_generations", "max_completion_length", "temperature",
              "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
              "max_steps", "num_train_epochs", "bf16", "deepspeed", "gradient_checkpointing")
    resolved = {"trainer_config": type(cfg).__name__}
    resolved.update({f: getattr(cfg, f) for f in fields if hasattr(cfg, f)})
    resolved.update(held)
    if held:
        resolved["not_instantiated_here"] = sorted(held)  # DeepSpeed; bf16 etc. without CUDA
    if recipe.algorithm in ("grpo", "rloo"):
        if recipe.sweep.weightings:
            resolved["runs"] = {
                str(Path(recipe.output_dir) / "sweep" / w.tag()): normalised(
                    with_weights(recipe, w, "").rewards.weights_dict())
                for w in recipe.sweep.weightings}
        else:
            resolved["runs"] = {recipe.output_dir: normalised(recipe.rewards.weights_dict())}
    return dump_yaml(recipe) + dump_yaml({"resolved": resolved})
