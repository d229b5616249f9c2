"""SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, "Simplicity Prevails: Rethinking Negative
Preference Optimization for LLM Unlearning", arXiv:2410.07163, the SimNPO objective): NPO without a reference
model, with a length-normalised log-likelihood and a reward margin γ.

    L = −(2/β)·E_y log σ(−(β/|y|)·log π_θ(y|x) − γ)
      = −(2/β)·E_y log σ(β·NLL_sum(y)/|y| − γ)

|y| is the number of scored tokens of the sequence. The authors' code subtracts γ before
scaling by β, i.e. log σ(β·(NLL_sum/|y| − γ_code)); that is the paper's form with γ = β·γ_code
(identical at the default γ = 0).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import sequence_logprob


@dataclass(frozen=True)
class SimNPOConfig(MethodConfig):
    name: str = "simnpo"
    beta: float = 2.5  # inverse temperature β (paper's TOFU forget05 setting; MUSE used 0.7-0.75)
    gamma: float = 0.0  # reward margin γ ≥ 0, outside β as in the paper's formula (0 on TOFU)


@register("simnpo", SimNPOConfig)
def simnpo_loss(model, batch, cfg: SimNPOConfig, ref=None):
    """SimNPO: −(2/β)·mean log σ(β·NLL_sum/|y| − γ) on forget; no reference model."""
    logp, count = sequence_logprob(model, batch["forget"])  # (B,), (B,)
    mean_nll = -logp / count.clamp(min=1)  # (B,) length-normalised NLL = −log π_θ(y|x)/|y|
    loss = -(2.0 / cfg.beta) * F.logsigmoid(cfg.beta * mean_nll - cfg.gamma).mean()
    forget_nll = -logp.sum() / count.sum().clamp(min=1)
    return loss, {"forget_nll": forget_nll.item()}
