"""SatImp: saturation × importance reweighting of gradient ascent (Yang, Wang, Huang, Liu,
Zhang, Han 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning", ICML 2025,
arXiv:2505.11953, §4):

    w_t = p_θ(y_t)^β₁ · (1 − p_θ(y_t))^β₂   (no gradient through w)
    L = γ · ( −mean_t w_t · CE_t ) + α · NLL(retain)

p^β₁ (saturation) favours tokens not yet forgotten, (1 − p)^β₂ (importance) tokens the model is
not yet certain of. β₁ 5, β₂ 1 as the paper and open-unlearning; γ 1, α 0.1 as the paper's
ratio of 10 between the forget and retain terms (open-unlearning's community/methods/SatImp
README; its configs/trainer/SatImp.yaml has the inverse, γ 0.1 and α 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll, part_of, weighted_ascent


@dataclass(frozen=True)
class SatImpConfig(MethodConfig):
    name: str = "satimp"
    beta1: float = 5.0  # exponent β₁ of the saturation weight p^β₁
    beta2: float = 1.0  # exponent β₂ of the importance weight (1 − p)^β₂
    gamma: float = 1.0  # weight γ of the reweighted ascent (forget) term
    alpha: float = 0.1  # weight α of the retain NLL


@register("satimp", SatImpConfig, needs_retain=True)
def satimp_loss(model, batch, cfg: SatImpConfig, ref=None):
    """SatImp: γ·(−mean p^β₁(1−p)^β₂·CE) on forget + α·NLL(retain), weights without gradient."""
    forget, logs = weighted_ascent(model, batch["forget"],
                                   lambda p: p.pow(cfg.beta1) * (1 - p).pow(cfg.beta2))
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    loss = cfg.gamma * forget + cfg.alpha * retain_nll
    return loss, {**logs, "satimp": forget.item(), "retain_nll": retain_nll.item()}
