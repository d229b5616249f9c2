"""The shared trainer: a `transformers.Trainer` whose loss is a pluggable function of a batch.

Unlearning methods, model preparation and detox SFT/classifier training all go through here, so
DeepSpeed ZeRO-2/3, `accelerate launch` / `torchrun` / `deepspeed` launches, LoRA, checkpoint
resume, progress, JSONL metric logs and the divergence guard behave the same everywhere.

- `train:` in a recipe is handed to `TrainingArguments` unchanged (`training_arguments`).
- `lora:` becomes a peft `LoraConfig` (`apply_lora`).
- `loss_fn(model, batch) -> (loss, logs)`: `logs` are floats averaged between logging steps
  and written beside `loss` (e.g. `forget_nll`, `retain_nll`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback, TrainingArguments

from lethe.errors import Diverged, LetheError

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, dict], "tuple[torch.Tensor, dict[str, float]]"]


def training_argument_names() -> set[str]:
    """Valid keys of a recipe's `train:` section: exactly TrainingArguments' init fields."""
    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


def training_argument_types() -> dict:
    """Annotations of TrainingArguments' fields (to type-check `train:` values on load)."""
    import typing

    return typing.get_type_hints(TrainingArguments)


# Lethe's defaults where the user said nothing. `remove_unused_columns` must be off because
# batches are nested ({"forget": {...}, "retain": {...}}); the progress bar is ours.
TRAIN_DEFAULTS = {"report_to": "none", "remove_unused_columns": False, "disable_tqdm": True,
                  "save_strategy": "no", "logging_steps": 1, "save_only_model": False}


def training_arguments(train: dict, output_dir: str | Path, **overrides) -> TrainingArguments:
    """TrainingArguments from a recipe's `train:` mapping (+ Lethe defaults, + overrides)."""
    kwargs = {**TRAIN_DEFAULTS, "dataloader_pin_memory": torch.cuda.is_available(),
              **dict(train), "output_dir": str(output_dir), **overrides}
    if kwargs.get("deepspeed"):
        from lethe.deepspeed import prepare_deepspeed

        prepare_deepspeed(kwargs["deepspeed"])
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError) as err:
        raise LetheError(f"train: {str(err).splitlines()[0]}") from None


@dataclass(frozen=True)
class LoraSection:
    """A recipe's `lora:` section (peft.LoraConfig). Absent or `enabled: false` = full training."""

    enabled: bool = True
    r: int = 8  # adapter rank (Ziegenbein et al. 2024 use r=8)
    alpha: int = 16  # scaling numerator: updates are scaled by alpha / r
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")  # names of nn.Linear modules to adapt
    merge: bool = False  # fold the adapter into the weights when saving (a full checkpoint)


def lora_config(model, lora: LoraSection | None, task_type: str = "CAUSAL_LM"):
    """The peft `LoraConfig` for a recipe's `lora:` section (None when LoRA is off), after
    checking that every target module exists in `model`."""
    if lora is None or not lora.enabled:
        return None
    from peft import LoraConfig

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in lora.target_modules if m not in names]
    if missing:
        raise LetheError(f"lora.target_modules: {', '.join(missing)} not found in the model "
                         f"(modules include: {', '.join(sorted(names - {''})[:12])}, ...)")
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(lora.target_modules), task_type=task_type)


def apply_lora(model, lora: LoraSection | None, task_type: str = "CAUSAL_LM"):
    cfg = lora_config(model, lora, task_type)
    if cfg is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, cfg)


class DivergenceGuard:
    """Stops training on a NaN/inf loss or |loss| above `max_abs_loss` (recipe threshold)."""

    def __init__(self, max_abs_loss: float | None = None):
        self.max_abs_loss = max_abs_loss

    def bad(self, value: float) -> bool:
        return not math.isfinite(value) or (self.max_abs_loss is not None
                                            and abs(value) > self.max_abs_loss)

    def fail(self, value: float, step: int, output_dir: str) -> Diverged:
        last = last_complete_checkpoint(output_dir)
        kept = (f"last good checkpoint kept: {last}" if last else
                "no checkpoint had been saved (set train.save_steps to keep one)")
        why = "is not finite" if not math.isfinite(value) else \
            f"exceeds the limit {self.max_abs_loss:g} (guard.max_abs_loss)"
        return Diverged(f"training diverged at step {step}: loss {value:g} {why}; stopped "
                        f"before the update; {kept}; lower train.learning_rate")


class DivergenceCallback(TrainerCallback):
    """The guard for trainers whose loss we do not compute (TRL): checks each logged loss."""

    def __init__(self, guard: DivergenceGuard):
        self.guard = guard

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and self.guard.bad(float(logs["loss"])):
            raise self.guard.fail(float(logs["loss"]), state.global_step, args.output_dir)


class ProgressBar(TrainerCallback):
    """One tqdm bar over optimizer steps, the latest logged loss in its postfix (rank 0)."""

    def __init__(self, desc: str = "train", position: int | None = None):
        # position: the bar's line when several processes train at once (unlearn prepare)
        self.desc, self.position, self.bar = desc, position, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc,
                            unit="step", dynamic_ncols=True, position=self.position)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            shown = {k: f"{v:.4g}" for k, v in logs.items()
                     if isinstance(v, float) and k in ("loss", "forget_nll", "retain_nll",
                                                       "reward", "eval_loss")}
            self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonlLogger(TrainerCallback):
    """Appends every log record (step, epoch, loss, method parts) to `metrics.jsonl` (rank 0)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, **logs}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def standard_callbacks(output_dir: str | Path, guard: DivergenceGuard | None = None,
                       desc: str = "train", position: int | None = None
                       ) -> list[TrainerCallback]:
    cbs: list[TrainerCallback] = [ProgressBar(desc, position),
                                  JsonlLogger(Path(output_dir) / "metrics.jsonl")]
    if guard is not None:
        cbs.append(DivergenceCallback(guard))
    return cbs


class PairedOrderSampler(torch.utils.data.Sampler):
    """A fresh shuffle every epoch in which the first `n_shared` examples come in an order that
    depends only on (seed, epoch, n_shared), whatever follows them.

    Two trainings that share a prefix of their data (unlearn prepare: the target trains on
    retain + forget, the retrain model on retain + stand-in) then meet every shared example in
    the same relative order and at nearly the same step, so their difference is the data they do
    not share, not two unrelated shuffles (common random numbers). On the demo world the
    target and retrain models differed in KnowMem_r by 2.6 ± 1.8 points over five pairs ordered
    this way, by 6.6 ± 3.3 over four with independent shuffles (docs/results.md, "Paired data
    order"). Own examples (index ≥ n_shared) are shuffled among themselves and dropped into
    uniformly drawn gaps between the shared ones; the k-th gap drawn is the same for any number
    of own examples, so runs whose own parts differ in length put theirs in the same places
    wherever both have one.
    """

    def __init__(self, n_shared: int, n_total: int, seed: int):
        if not 0 <= n_shared <= n_total:
            raise ValueError(f"n_shared={n_shared} must lie in [0, n_total={n_total}]")
        self.n_shared, self.n_total, self.seed, self.epoch = n_shared, n_total, seed, 0

    def __len__(self) -> int:
        return self.n_total

    def set_epoch(self, epoch: int) -> None:  # Trainer and accelerate call this every epoch
        self.epoch = epoch

    def __iter__(self):
        import random

        epoch, self.epoch = self.epoch, self.epoch + 1  # also right where nobody sets it
        shared = list(range(self.n_shared))
        random.Random(f"shared:{self.seed}:{epoch}").shuffle(shared)
        own_rng = random.Random(f"own:{self.seed}:{epoch}")
        gaps = [own_rng.random() for _ in range(self.n_total - self.n_shared)]
        own = list(range(self.n_shared, self.n_total))
        random.Random(f"own-order:{self.seed}:{epoch}").shuffle(own)
        # shared example k sorts at k; an own example in gap g (before shared example g) at
        # g - 0.5, ties broken by its draw
        keys = [(float(k), 0.0, i) for k, i in enumerate(shared)]
        keys += [(math.floor(u * (self.n_shared + 1)) - 0.5, u, i) for u, i in zip(gaps, own)]
        return iter([i for *_, i in sorted(keys)])


class LetheTrainer(Trainer):
    """A Trainer whose loss is `loss_fn(model, batch) -> (loss, logs)`.

    `shared_prefix=n` orders the training data with `PairedOrderSampler` (the first n examples
    in an order shared with any other run of the same seed) instead of a plain shuffle."""

    def __init__(self, *args, loss_fn: LossFn, guard: DivergenceGuard | None = None,
                 progress_desc: str = "train", progress_position: int | None = None,
                 shared_prefix: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.shared_prefix = shared_prefix
        self.guard = guard or DivergenceGuard()
        self._extra: dict[str, list[float]] = {}
        self.tokens_seen = 0  # training tokens of this process so far (logged as tokens_seen)
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for cb in (ProgressCallback, PrinterCallback):
            self.remove_callback(cb)
        for cb in standard_callbacks(self.args.output_dir, desc=progress_desc,
                                     position=progress_position):
            self.add_callback(cb)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.shared_prefix is None or dataset is None:
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return PairedOrderSampler(self.shared_prefix, len(dataset), seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, logs = self.loss_fn(model, inputs)
        self._check(loss)
        if model.training:
            self.tokens_seen += batch_tokens(inputs)
            for key, value in logs.items():
                self._extra.setdefault(key, []).append(float(value))
        return (loss, None) if return_outputs else loss

    def _check(self, loss: torch.Tensor) -> None:
        # One scalar sync per step. Under several processes the worst value is shared so that
        # every rank stops together instead of one rank raising and the others hanging.
        value = loss.detach().float().reshape(1)
        flag = torch.tensor([1.0 if self.guard.bad(value.item()) else 0.0], device=value.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() > 0:
            raise self.guard.fail(value.item(), self.state.global_step + 1, self.args.output_dir)

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self._extra and "loss" in logs:
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._extra.items()}}
            self._extra = {}
        if self.tokens_seen:  # with the final train_runtime record: tokens/s of the run
            logs = {**logs, "tokens_seen": self.tokens_seen}
        super().log(logs, *args, **kwargs)


def batch_tokens(batch: dict) -> int:
    """Real tokens in a training batch, over every part of a nested one ({"forget": ...,
    "retain": ...}): attention-mask ones, or for packed rows (no mask) the positions that
    carry a label (a document's first token, which has none, is left out); padding never
    counts."""
    if not isinstance(batch, dict):
        return 0
    if "attention_mask" in batch and torch.is_tensor(batch["attention_mask"]):
        return int(batch["attention_mask"].sum())
    if "input_ids" in batch and torch.is_tensor(batch["input_ids"]):
        labels = batch.get("labels")
        if torch.is_tensor(labels):
            return int((labels != -100).sum())
        return batch["input_ids"].numel()
    return sum(batch_tokens(part) for part in batch.values() if isinstance(part, dict))


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` that the trainer finished writing, or None.

    transformers writes a checkpoint in place and `trainer_state.json` after the weights and
    optimizer state, so a run killed while saving leaves a newer, incomplete `checkpoint-N`
    without it; resuming from that would fail (or load half a state). Such are skipped.
    """
    if not Path(output_dir).is_dir():
        return None
    steps = {p: re.fullmatch(r"checkpoint-(\d+)", p.name) for p in Path(output_dir).iterdir()}
    found = sorted(((int(m.group(1)), p) for p, m in steps.items() if m and p.is_dir()),
                   reverse=True)
    for _, path in found:
        if (path / "trainer_state.json").is_file():
            return str(path)
        log.warning("skipping %s: it has no trainer_state.json (killed while saving)", path)
    return None


def resume_checkpoint(output_dir: str | Path, resume: bool | str) -> str | None:
    """`--resume` → the newest `checkpoint-*` in output_dir (or the given path), else None."""
    if not resume:
        return None
    if isinstance(resume, str) and resume not in ("true", "auto"):
        if not Path(resume).is_dir():
            raise LetheError(f"--resume: checkpoint {resume} does not exist")
        return resume
    last = last_complete_checkpoint(output_dir)
    if last is None:
        log.info("no checkpoint in %s; starting from scratch", output_dir)
    return last
