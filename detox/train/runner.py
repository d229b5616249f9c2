"""`detox train`: one run of the recipe's algorithm, or a weighting sweep; and `--dry-run`'s
resolved trainer config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from detox.train.algorithms import get_algorithm
from detox.train.recipe import DetoxTrainRecipe, with_weights
from lethe.errors import LetheError
from lethe.recipe import dump_yaml


def run(recipe: DetoxTrainRecipe, *, resume=False) -> dict:
    """`detox train`: one run, or a sweep when `sweep.weightings` is set."""
    runner = get_algorithm(recipe.algorithm)
    if recipe.sweep.weightings:
        if recipe.algorithm == "sft":
            raise LetheError("sweep: weightings are reward weights; they need grpo or rloo")
        from detox.train.sweep import run_sweep

        return run_sweep(recipe, resume=resume)
    return runner(recipe, resume=resume)


def _dry_config(algorithm: str, train: dict, output_dir, seed: int):
    """The trainer config a recipe produces, built without starting anything: the keys a
    preflight must not instantiate here (DeepSpeed; bf16/fp16/tf32 without CUDA) are checked
    (the DeepSpeed file exists, is JSON, has a ZeRO stage 0-3; booleans) and left out."""
    from lethe.deepspeed import check_deepspeed
    from lethe.preflight import GPU_ONLY_KEYS, held_keys

    train, held = held_keys(train)
    if held.get("deepspeed"):
        check_deepspeed(held["deepspeed"])
    for k in GPU_ONLY_KEYS:
        if k in held and held[k] is not None and not isinstance(held[k], bool):
            raise LetheError(f"train.{k}: expected true or false, got {held[k]!r}")
    if algorithm in ("grpo", "rloo"):
        from detox.train.rl import config_class, rl_config

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
    from detox.train.rewards import normalised

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

