"""SimNPO's forget term alone (Fan et al. 2024, arXiv:2410.07163, Eq. of L_SimNPO): NPO without
a reference model, with a length-normalised log-likelihood and a reward margin γ, and no retain
term. This was Lethe's `simnpo` before issue #14; `simnpo` is now the published form with the
retain NLL (simnpo.py).

    L = −(2/β)·E_y log σ(−(β/|y|)·log π_θ(y|x) − γ)
      = −(2/β)·E_y log σ(β·NLL_sum(y)/|y| − γ)

γ is the paper's margin, outside β (the codes' δ inside β: γ = β·δ; identical at 0).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import sequence_logprob


@dataclass(frozen=True)
class SimNPOForgetConfig(MethodConfig):
    name: str = "simnpo_forget"
    beta: float = 2.5  # inverse temperature β (paper's TOFU forget05 setting; MUSE used 0.7-0.75)
    gamma: float = 0.0  # reward margin γ ≥ 0, outside β as in the paper's formula (0 on TOFU)


@register("simnpo_forget", SimNPOForgetConfig)
def simnpo_forget_loss(model, batch, cfg: SimNPOForgetConfig, ref=None):
    """SimNPO's forget term alone: −(2/β)·mean log σ(β·NLL_sum/|y| − γ); no reference, no retain."""
    logp, count = sequence_logprob(model, batch["forget"])  # (B,), (B,)
    mean_nll = -logp / count.clamp(min=1)  # (B,) length-normalised NLL = −log π_θ(y|x)/|y|
    loss = -(2.0 / cfg.beta) * F.logsigmoid(cfg.beta * mean_nll - cfg.gamma).mean()
    forget_nll = -logp.sum() / count.sum().clamp(min=1)
    return loss, {"forget_nll": forget_nll.item()}
