"""Who's Harry Potter (WHP; Eldan & Russinovich 2023, "Who's Harry Potter? Approximate
Unlearning in LLMs", arXiv:2310.02238, "generic predictions" from a reinforced model).

A "reinforced" model, fine-tuned further on the forget text, is more confident than the baseline
exactly on forget-specific tokens. The generic logits push those tokens down:

    v_generic = v_baseline − α·ReLU(v_reinforced − v_baseline)          (G); logits (…, V)

Two ways to use it, both here:
- inference-time mixing: `WHPMixture` (a module returning mixed logits, for scoring) and
  `WHPLogitsProcessor` (for `model.generate`) combine the two models at every step;
- the paper's method (`run_whp`): label every forget position with argmax v_generic and
  fine-tune the baseline on those generic labels, so a single model results.
Not implemented: the paper's second ingredient, "anchored term" translations produced with
GPT-4 (idiosyncratic names replaced by generic ones before labelling); it needs an external
model and a hand-checked dictionary. Without it only the reinforcement-based generic
predictions are used (the paper combines both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor
from transformers.modeling_outputs import CausalLMOutput

from lethe.errors import LetheError
from lethe.lm import pad_id
from unlearn.data import LMCollator, PairedDataset
from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll
from unlearn.methods.task_vector import reinforce, train_stage, unwrap_peft

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WHPConfig(MethodConfig):
    name: str = "whp"
    alpha: float = 1.0  # strength α of (G); 1.0 = subtract the reinforcement gain once
    label_batch_size: int = 8  # forget examples per forward when computing generic labels


def generic_logits(base_logits: torch.Tensor, reinforced_logits: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """Eq. 1: v_b − α·ReLU(v_r − v_b). Both (..., V); returns (..., V) in float32."""
    base, reinforced = base_logits.float(), reinforced_logits.float()
    return base - alpha * torch.relu(reinforced - base)


class WHPMixture(torch.nn.Module):
    """Inference-time WHP for scoring: `forward` returns the generic logits of (G).

    `WHPMixture(base, reinforced, alpha)(input_ids=..., attention_mask=...).logits` (B, T, V);
    any other keyword (position_ids, ...) goes to both models.
    """

    def __init__(self, base: torch.nn.Module, reinforced: torch.nn.Module, alpha: float = 1.0):
        super().__init__()
        self.base, self.reinforced, self.alpha = base, reinforced, alpha

    def forward(self, input_ids, attention_mask=None, **kwargs) -> CausalLMOutput:
        kwargs.pop("labels", None)
        v_b = self.base(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits
        v_r = self.reinforced(input_ids=input_ids, attention_mask=attention_mask,
                              **kwargs).logits
        return CausalLMOutput(logits=generic_logits(v_b, v_r, self.alpha))


class WHPLogitsProcessor(LogitsProcessor):
    """Inference-time WHP for `base.generate(..., logits_processor=[WHPLogitsProcessor(...)])`.

    At each step the reinforced model reads the whole sequence so far (no KV cache: simple,
    O(T²)) and the base model's next-token scores become (G)'s generic scores. Put it first
    in the processor list so it sees raw logits. Prompts may be left-padded with `pad_token_id`
    (leading pad tokens are masked out; positions are counted from the first real token).
    """

    def __init__(self, reinforced: torch.nn.Module, alpha: float = 1.0,
                 pad_token_id: int | None = None):
        self.reinforced, self.alpha, self.pad_token_id = reinforced, alpha, pad_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        if self.pad_token_id is None:
            mask = torch.ones_like(input_ids)
        else:  # left padding: everything after the first non-pad token is real
            mask = ((input_ids != self.pad_token_id).cumsum(-1) > 0).long()  # (B, T)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        with torch.no_grad():
            v_r = self.reinforced(input_ids=input_ids, attention_mask=mask,
                                  position_ids=positions).logits[:, -1, :]  # (B, V)
        return generic_logits(scores, v_r, self.alpha).to(scores.dtype)


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
    """Who's Harry Potter: fine-tune on argmax(v_b − α·ReLU(v_r − v_b)) labels (batch labels).

    The paper's procedure; returns the unlearned model (a plain model, LoRA merged):

    1. reinforced = copy of `model` fine-tuned on forget (train_fn, NLL);
    2. generic labels for every forget token from (G) (base = `model`, before any update);
    3. the reinforced copy is released, and `model` is fine-tuned on the generic labels.
    lora: a `LoraSection` or None; when enabled both stages train adapters, merged after each.
    `retain` and `collator` are unused (the paper trains only on the forget text; stage 2 needs
    its own collator for the generic labels); they are accepted so every `run` has the same
    signature.
    """
    if cfg.label_batch_size < 1:
        raise LetheError(f"method.label_batch_size must be ≥ 1, got {cfg.label_batch_size}")
    model = unwrap_peft(model)
    pad = pad_id(tokenizer)
    reinforced = reinforce(model, tokenizer, forget, train_fn, output_dir, lora)
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
