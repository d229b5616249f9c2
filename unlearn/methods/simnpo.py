"""SimNPO as published (Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, "Simplicity Prevails:
Rethinking Negative Preference Optimization for LLM Unlearning", arXiv:2410.07163): NPO without
a reference model, with a length-normalised log-likelihood and a reward margin, plus the retain
NLL term the paper and open-unlearning run it with.

    L = w_f · ( −(2/β) · E_y log σ( β · (NLL_sum(y)/|y| − δ) ) ) + α · NLL(retain)

|y| is the number of scored tokens of the sequence. The defaults are open-unlearning's
(locuslab/open-unlearning configs/trainer/SimNPO.yaml, src/trainer/unlearn/simnpo.py): β 4.5,
δ 0, w_f 0.125 (its `gamma`; Unlearn-Simple's `npo_coeff`), α 1. δ sits inside β as in both
codes (the paper's γ = β·δ). The forget-only form is `simnpo_forget`.

`reference_impl: muse_code` is Unlearn-Simple's MUSE code (OPTML-Group/Unlearn-Simple
MUSE/baselines/baselines/iterative.py, `simnpo_gdr`): the forget term on raw logits,
−(2/β)·mean over positions and vocabulary of log σ(β·(−z_θ − δ)); its published MUSE rows come
from that code (docs/faithfulness.md).
"""

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import muse_code_simnpo_term, nll, part_of, sequence_logprob


@dataclass(frozen=True)
class SimNPOConfig(MethodConfig):
    name: str = "simnpo"
    beta: float = 4.5  # inverse temperature β (open-unlearning's SimNPO default)
    delta: float = 0.0  # reward margin δ, subtracted before scaling by β (both codes)
    forget_weight: float = 0.125  # w_f on the forget term (open-unlearning `gamma`)
    alpha: float = 1.0  # weight of the retain NLL
    reference_impl: Literal["paper", "muse_code"] = "paper"  # muse_code: raw logits, as
    #                                      Unlearn-Simple's MUSE code (never the default)


def simnpo_term(logp, count, beta: float, delta: float):
    """−(2/β)·mean log σ(β·(NLL_sum/|y| − δ)); logp, count (B,)."""
    mean_nll = -logp / count.clamp(min=1)  # (B,) length-normalised NLL = −log π_θ(y|x)/|y|
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll - delta)).mean()


@register("simnpo", SimNPOConfig, needs_retain=True)
def simnpo_loss(model, batch, cfg: SimNPOConfig, ref=None):
    """SimNPO + retain: w_f·(−(2/β)·mean log σ(β·(NLL_sum/|y| − δ))) + α·NLL(retain)."""
    part = batch["forget"]
    if cfg.reference_impl == "muse_code":
        logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
        forget = muse_code_simnpo_term(logits, part["attention_mask"], cfg.beta, cfg.delta)
        logs = {}
    else:
        logp, count = sequence_logprob(model, part)  # (B,), (B,)
        forget = simnpo_term(logp, count, cfg.beta, cfg.delta)
        logs = {"forget_nll": (-logp.sum() / count.sum().clamp(min=1)).item()}
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    loss = cfg.forget_weight * forget + cfg.alpha * retain_nll
    return loss, {**logs, "simnpo": forget.item(), "retain_nll": retain_nll.item()}
