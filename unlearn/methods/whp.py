"""Who's Harry Potter (WHP; Eldan & Russinovich 2023, "Who's Harry Potter? Approximate
Unlearning in LLMs", arXiv:2310.02238, "generic predictions" from a reinforced model).

A "reinforced" model, fine-tuned further on the forget text, is more confident than the baseline
exactly on forget-specific tokens. The generic logits push those tokens down:

    v_generic = v_baseline − α·ReLU(v_reinforced − v_baseline)          (G); logits (…, V)

`method.mode` picks how the unlearned model uses it:
- "mixture" (default; how MUSE evaluates WHP, swj0419/muse_bench
  baselines/baselines/whos_harry_potter.py): the unlearned model *is* the inference-time
  mixture of the baseline and the reinforced model (`lethe.mixture.LogitMixture`). `unlearn run`
  saves it as a mixture directory (the reinforced checkpoint + the baseline's name), which
  `unlearn eval` and the run's own report load like any checkpoint;
- "finetune" (the WHP paper's procedure): label every forget position with argmax v_generic and
  fine-tune the baseline on those generic labels, so a single plain model results.
Not implemented: the paper's second ingredient, "anchored term" translations produced with
GPT-4 (idiosyncratic names replaced by generic ones before labelling); it needs an external
model and a hand-checked dictionary. Without it only the reinforcement-based generic
predictions are used (the paper combines both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from lethe.errors import LetheError
from lethe.lm import pad_id
from lethe.mixture import LogitMixture, MixtureLogitsProcessor, generic_logits
from unlearn.data import LMCollator, PairedDataset
from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll
from unlearn.methods.task_vector import reinforce, train_stage, unwrap_peft

log = logging.getLogger(__name__)

# The inference-time mixture and its logits processor live in lethe (model loading needs them);
# the names below are kept for code written against this module.
WHPMixture = LogitMixture
WHPLogitsProcessor = MixtureLogitsProcessor
__all__ = ["WHPConfig", "WHPMixture", "WHPLogitsProcessor", "generic_logits", "generic_labels",
           "run_whp"]


@dataclass(frozen=True)
class WHPConfig(MethodConfig):
    name: str = "whp"
    alpha: float = 1.0  # strength α of (G); 1.0 = subtract the reinforcement gain once (MUSE)
    mode: Literal["mixture", "finetune"] = "mixture"  # mixture: MUSE's inference-time WHP;
    #                                                  finetune: the paper's generic-label tuning
    label_batch_size: int = 8  # finetune: forget examples per forward for the generic labels

    def request_problem(self, mode: str, n_requests: int) -> str | None:
        if self.mode == "mixture" and mode == "sequential" and n_requests > 1:
            return ("whp mode mixture saves two models mixed at inference time, which a next "
                    "request cannot fine-tune; use mode finetune for sequential requests")
        return None


def generic_labels(base, reinforced, examples: list[dict], pad_id: int, alpha: float,
                   batch_size: int = 8) -> list[dict]:
    """Each example with `generic_labels`: per token, the argmax of (G) predicting it.

    generic_labels[0] = -100 (nothing predicts the first token); generic_labels[t+1] =
    argmax v_generic at position t. Returns new dicts.
    """
    collate = LMCollator(pad_id)
    device = next(base.parameters()).device
    out: list[dict] = []
    starts = range(0, len(examples), batch_size)
    modes = (base.training, reinforced.training)
    base.eval()
    reinforced.eval()
    try:
        with torch.no_grad():
            for start in tqdm(starts, desc="WHP generic labels", unit="batch",
                              disable=len(starts) < 2):
                chunk = [{"input_ids": e["input_ids"]} for e in examples[start:start + batch_size]]
                batch = {k: v.to(device) for k, v in collate(chunk).items()}
                mixed = WHPMixture(base, reinforced, alpha)(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                pred = mixed.argmax(-1)  # (B, T): prediction for token t+1
                for i, ex in enumerate(examples[start:start + batch_size]):
                    n = len(ex["input_ids"])
                    out.append({**ex, "generic_labels": [-100] + pred[i, :n - 1].tolist()})
    finally:
        base.train(modes[0])
        reinforced.train(modes[1])
    return out


@dataclass
class GenericLabelCollator:
    """Pads forget examples like `PairedCollator`, with labels = their `generic_labels`."""

    pad_token_id: int

    def __call__(self, items: list[dict]) -> dict:
        examples = [it["forget"] for it in items]
        part = LMCollator(self.pad_token_id)(
            [{k: v for k, v in e.items() if k != "generic_labels"} for e in examples])
        labels = torch.full_like(part["input_ids"], -100)  # (B, T)
        for i, e in enumerate(examples):
            labels[i, :len(e["generic_labels"])] = torch.as_tensor(e["generic_labels"])
        part["labels"] = labels
        return {"forget": part}


def generic_nll_loss(model, batch):
    """Cross-entropy toward the generic labels (stage 2 of the paper)."""
    loss = nll(model, batch["forget"])
    return loss, {"generic_nll": loss.item()}


@register("whp", WHPConfig, kind="run")
def run_whp(*, model, tokenizer, forget: list[dict], retain: list[dict] | None,
            cfg: WHPConfig, train_fn, output_dir, lora=None, collator=None) -> torch.nn.Module:
    """Who's Harry Potter: the baseline mixed with a forget-tuned copy, v_b − α·ReLU(v_r − v_b).

    1. reinforced = copy of `model` fine-tuned on forget (train_fn, NLL);
    2. mode "mixture" (MUSE): return `LogitMixture(model, reinforced, α)`, saved by the pipeline
       as a mixture directory; mode "finetune" (the paper): generic labels for every forget
       token from (G), the reinforced copy released, and `model` fine-tuned on the labels
       (a plain model, LoRA merged).
    lora: a `LoraSection` or None; when enabled the stages train adapters, merged after each.
    `retain` and `collator` are unused (WHP trains only on the forget text; stage 2 needs its
    own collator for the generic labels); they are accepted so every `run` has the same
    signature.
    """
    if cfg.label_batch_size < 1:
        raise LetheError(f"method.label_batch_size must be ≥ 1, got {cfg.label_batch_size}")
    model = unwrap_peft(model)
    reinforced = reinforce(model, tokenizer, forget, train_fn, output_dir, lora)
    if cfg.mode == "mixture":
        log.info("whp: inference-time mixture of the baseline and the reinforced model "
                 "(alpha %.3g)", cfg.alpha)
        return LogitMixture(model.eval(), reinforced.eval(), cfg.alpha,
                            baseline_spec=getattr(model.config, "_name_or_path", None))
    pad = pad_id(tokenizer)
    labelled = generic_labels(model, reinforced, forget, pad, cfg.alpha,
                              cfg.label_batch_size)
    del reinforced
    changed = sum(lab != tok for e in labelled
                  for lab, tok in zip(e["generic_labels"][1:], e["input_ids"][1:]))
    total = sum(len(e["input_ids"]) - 1 for e in labelled)
    log.info("whp: generic labels differ from the text on %d of %d tokens", changed, total)
    model.train()
    return train_stage(model, lora, train_fn, PairedDataset(labelled, None),
                       GenericLabelCollator(pad), generic_nll_loss,
                       Path(output_dir) / "generic")
