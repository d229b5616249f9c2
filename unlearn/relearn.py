"""The relearning attack: fine-tune an unlearned model for a few steps, then measure again.

Hu et al. (2024, "Jogging the memory of unlearned LLMs through targeted relearning attacks")
bring unlearned knowledge back by fine-tuning on a small amount of related text; Deeb & Roger
(2024) recover 88% of pre-unlearning accuracy by fine-tuning on facts that are still
accessible. Two slices, both `texts` rows of the benchmark's `raw` config:

- `forget`: the first `texts` rows of the forget split (part of what was unlearned). Only the
  rest is measured afterwards (`eval.attacks.recovery.held_out_rows`), so a score that comes
  back is knowledge the model was not shown again.
- `retain`: the first `texts` rows of a retain split (text that was never to be forgotten).
  Any recovery on the forget set is then knowledge that unlearning only hid.

Training is the shared trainer's (lethe.trainer: TrainingArguments, progress bar, JSONL log,
divergence guard) with the plain next-token loss; LoRA (r 8 on q_proj, v_proj; merged after
training) or all weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from lethe.errors import LetheError

log = logging.getLogger(__name__)

SLICES = ("forget", "retain")


@dataclass(frozen=True)
class RelearnSpec:
    """One relearning attack."""

    on: str = "forget"  # "forget" (part of the forget split; the rest is measured) | "retain"
    texts: int | None = None  # rows to train on; None = a quarter of the forget split (>= 1)
    steps: int = 20  # optimizer steps
    learning_rate: float = 1e-3
    batch_size: int = 4  # texts per step
    lora: bool = False  # LoRA (r 8 on q_proj, v_proj) instead of every weight
    forget_split: str = "forget"  # raw split the forget slice is taken from
    retain_split: str = "retain2"  # raw split the retain slice is taken from
    config: str = "raw"  # dataset config of both splits
    max_length: int = 512  # tokens per training example (longer texts are cut in chunks)
    seed: int = 0  # data order and initialisation of LoRA

    def __post_init__(self):
        if self.on not in SLICES:
            raise LetheError(f"--relearn-on {self.on!r}: use forget, retain or both "
                             f"(forget,retain)")
        if self.texts is not None and self.texts < 1:
            raise LetheError(f"--relearn-texts must be at least 1, got {self.texts}")
        if self.steps < 1:
            raise LetheError(f"--relearn-steps must be at least 1, got {self.steps}")

    @property
    def label(self) -> str:
        return f"relearn_{self.on}"

    @property
    def split(self) -> str:
        return self.forget_split if self.on == "forget" else self.retain_split


def default_texts(n_forget: int) -> int:
    """A quarter of the forget split, at least one text."""
    return max(1, n_forget // 4)


def slice_size(spec: RelearnSpec, n_forget: int, n_split: int) -> int:
    """How many texts `spec` trains on; raises if the slice is larger than its split (for the
    forget slice: it must leave some of the forget set to measure)."""
    n = spec.texts or default_texts(n_forget)
    where = f"{spec.config}/{spec.forget_split}"
    if n > n_forget:
        raise LetheError(f"--relearn-texts {n} is larger than the forget set ({n_forget} texts "
                         f"in {where}); give at most {max(1, n_forget - 1)}")
    if spec.on == "forget" and n == n_forget:
        raise LetheError(f"--relearn-texts {n} is the whole forget set ({where}): relearning on "
                         f"part of it leaves the rest to measure; give at most {n_forget - 1}")
    if n > n_split:
        raise LetheError(f"--relearn-texts {n} is larger than {spec.config}/{spec.split} "
                         f"({n_split} texts); give at most {n_split}")
    return n


def slice_texts(data: str, spec: RelearnSpec) -> list[str]:
    """The texts `spec` trains on (checked against the forget split's size)."""
    from lethe.loading import load_table

    def texts(split: str) -> list[str]:
        rows = load_table(data, config=spec.config, split=split, columns=("text",))["text"]
        return [t for t in rows if isinstance(t, str) and t.strip()]

    forget = texts(spec.forget_split)
    pool = forget if spec.on == "forget" else texts(spec.retain_split)
    return pool[:slice_size(spec, len(forget), len(pool))]


def relearn(model, tokenizer, texts: list[str], spec: RelearnSpec, output_dir: str | Path, *,
            use_cpu: bool = False):
    """Fine-tune `model` on `texts` for `spec.steps` steps (NLL); returns the plain model.

    `output_dir` receives the trainer's `metrics.jsonl` (loss per step)."""
    from lethe.trainer import LetheTrainer, LoraSection, apply_lora, training_arguments
    from unlearn.data import PairedCollator, PairedDataset, tokenize_texts
    from unlearn.methods.losses import nll

    examples = tokenize_texts(tokenizer, texts, spec.max_length)
    if not examples:
        raise LetheError(f"the {spec.on} relearning slice has no text of two or more tokens")
    model = apply_lora(model, LoraSection() if spec.lora else None)
    args = training_arguments(
        {"learning_rate": spec.learning_rate, "max_steps": spec.steps,
         "per_device_train_batch_size": spec.batch_size, "lr_scheduler_type": "constant",
         "seed": spec.seed, "use_cpu": use_cpu}, output_dir)
    trainer = LetheTrainer(model=model, args=args,
                           train_dataset=PairedDataset(examples, None, seed=spec.seed),
                           data_collator=PairedCollator(tokenizer.pad_token_id),
                           loss_fn=lambda m, batch: (nll(m, batch["forget"]), {}),
                           progress_desc=spec.label, processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    log.info("%s: %d steps on %d texts in %.1fs", spec.label, spec.steps, len(texts),
             time.perf_counter() - start)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model.eval()
