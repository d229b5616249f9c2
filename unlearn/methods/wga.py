"""Weighted Gradient Ascent (WGA; Wang, Zhou, Zhou, Shin, Han, Weinberger 2025, "Rethinking LLM
Unlearning Objectives: A Gradient Perspective and Go Beyond", ICLR 2025, arXiv:2502.19301,
§4): gradient ascent whose token losses are weighted by the model's own confidence in the
token, so tokens already forgotten stop dominating the update:

    w_t = p_θ(y_t | y_<t)^β   (no gradient through w)
    L = γ · ( −mean_t w_t · CE_t ) + α · NLL(retain)

over the forget batch's scored tokens. Defaults: open-unlearning's configs/trainer/WGA.yaml
(β 1, γ 1, α 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll, part_of, weighted_ascent


@dataclass(frozen=True)
class WGAConfig(MethodConfig):
    name: str = "wga"
    beta: float = 1.0  # exponent β of the confidence weight p^β
    gamma: float = 1.0  # weight γ of the weighted ascent (forget) term
    alpha: float = 1.0  # weight α of the retain NLL


@register("wga", WGAConfig, needs_retain=True)
def wga_loss(model, batch, cfg: WGAConfig, ref=None):
    """WGA: γ·(−mean p^β·CE) on forget + α·NLL(retain), weights without gradient."""
    forget, logs = weighted_ascent(model, batch["forget"], lambda p: p.pow(cfg.beta))
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    loss = cfg.gamma * forget + cfg.alpha * retain_nll
    return loss, {**logs, "wga": forget.item(), "retain_nll": retain_nll.item()}
