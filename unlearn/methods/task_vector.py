"""Task-vector negation (Ilharco et al. 2023, "Editing Models with Task Arithmetic", ICLR,
forgetting by negation; the "Task Vector" baseline of MUSE, Shi et al. 2024).

Two stages: fine-tune a copy of the target model on the forget set (the "reinforced" model
θ_ft), then subtract the task vector τ = θ_ft − θ_target:

    θ_unlearned = θ_target − α·(θ_ft − θ_target)

Not a single loss, so the method provides `run` (see docs/methods.md for the signature).
Memory: the target and the fine-tuned copy are both held during stage 1 (unavoidable: τ needs
both); the copy is released before returning.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from lethe.errors import LetheError
from lethe.lm import pad_id
from unlearn.data import PairedCollator, PairedDataset
from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskVectorConfig(MethodConfig):
    name: str = "task_vector"
    alpha: float = 1.0  # scaling α of the negated task vector (1.0 = subtract it once)


def unwrap_peft(model):
    """A plain model: LoRA adapters merged into the weights (a no-op for fresh adapters)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def train_stage(model, lora, train_fn, dataset, collator, loss_fn, output_dir):
    """Train `model` (through LoRA adapters when `lora` is enabled) and return a plain model.

    `train_fn` may return the model or the `transformers.Trainer` that trained it.
    """
    from transformers import Trainer

    from lethe.trainer import apply_lora

    model = apply_lora(model, lora)
    result = train_fn(model, dataset, collator, loss_fn, str(output_dir))
    return unwrap_peft(result.model if isinstance(result, Trainer) else result)


def forget_nll_loss(model, batch):
    """Plain language-model loss on the forget side (stage-1 fine-tuning)."""
    loss = nll(model, batch["forget"])
    return loss, {"forget_nll": loss.item()}


def reinforce(model, tokenizer, forget: list[dict], train_fn, output_dir,
              lora=None) -> torch.nn.Module:
    """A copy of `model` fine-tuned on the forget examples (`model` itself is untouched)."""
    if not forget:
        raise LetheError("the forget set is empty; nothing to fine-tune the reinforced model on")
    reinforced = copy.deepcopy(model)
    reinforced.train()
    return train_stage(reinforced, lora, train_fn, PairedDataset(forget, None),
                       PairedCollator(pad_id(tokenizer)), forget_nll_loss,
                       Path(output_dir) / "reinforced")


def negate_task_vector(target, finetuned, alpha: float) -> None:
    """In place: θ_target ← θ_target − α·(θ_ft − θ_target), for every parameter of both."""
    tuned = dict(finetuned.named_parameters())
    missing = [n for n, _ in target.named_parameters() if n not in tuned]
    if missing:
        raise LetheError(f"task_vector: the fine-tuned model lacks parameters {missing[:3]}; "
                         f"train_fn must return the same architecture")
    with torch.no_grad():
        for name, p in target.named_parameters():
            p.sub_(alpha * (tuned[name].to(p.device, p.dtype) - p))


@register("task_vector", TaskVectorConfig, kind="run")
def run_task_vector(*, model, tokenizer, forget: list[dict], retain: list[dict] | None,
                    cfg: TaskVectorConfig, train_fn, output_dir, lora=None,
                    collator=None) -> torch.nn.Module:
    """Task-vector negation: θ − α·(θ_ft − θ), θ_ft fine-tuned on forget (loss: NLL(forget)).

    Returns the unlearned model (`model`, edited in place). lora: a `LoraSection` or None;
    when enabled the fine-tuned copy trains adapters (merged afterwards), so the task vector is
    low-rank. `retain` and `collator` are unused (task arithmetic needs only the forget set;
    batches are built from the tokenizer's pad id); they are accepted so every `run` has the
    same signature.
    """
    model = unwrap_peft(model)
    finetuned = reinforce(model, tokenizer, forget, train_fn, output_dir, lora)
    negate_task_vector(model, finetuned, cfg.alpha)
    del finetuned
    log.info("task_vector: subtracted %.3g x the forget-set task vector", cfg.alpha)
    return model
