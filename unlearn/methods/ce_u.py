"""Cross-Entropy Unlearning (CE-U; Yang et al. 2025, "CE-U: Cross Entropy Unlearning",
arXiv:2503.01224, §3): cross-entropy towards the model's own next-token distribution with the
true token removed,

    q_t = softmax(z_θ,t with z_θ,t[y_t] = −∞)   (no gradient through q)
    L = mean_t CE(q_t, p_θ,t) + α · NLL(retain)

over the forget batch's scored tokens except the first `ignore_first_n` of each sequence (the
paper's footnote; open-unlearning's CEU, `ignore_first_n_answer_tokens` 1). Unlike gradient
ascent its gradient is bounded: at q = p_θ without y_t the only push is away from y_t. The paper
and open-unlearning use no retain term (α 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import forward_shifted, masked_mean, nll, part_of, soft_ce


@dataclass(frozen=True)
class CEUConfig(MethodConfig):
    name: str = "ce_u"
    ignore_first_n: int = 1  # scored tokens of each sequence left out (paper: the first one)
    alpha: float = 0.0  # weight α of the retain NLL (0: none, as the paper)


def true_token_removed(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """softmax of detached logits with the target's logit at −∞: (B, T, V), (B, T) → (B, T, V)."""
    z = logits.detach().float().scatter(-1, targets.unsqueeze(-1), float("-inf"))
    return torch.softmax(z, dim=-1)


def drop_first(mask: torch.Tensor, n: int) -> torch.Tensor:
    """`mask` (B, T) without the first `n` true positions of each row."""
    return mask & (mask.long().cumsum(-1) > n)


@register("ce_u", CEUConfig)
def ce_u_loss(model, batch, cfg: CEUConfig, ref=None):
    """CE-U: CE towards p_θ with the true token removed (first n tokens skipped) on forget."""
    logits, targets, mask = forward_shifted(model, batch["forget"])  # (B, T-1, V) ...
    mask = drop_first(mask, cfg.ignore_first_n)
    forget = masked_mean(soft_ce(logits, true_token_removed(logits, targets)), mask)
    loss, logs = forget, {"ce_u": forget.item()}
    if cfg.alpha:
        retain_nll = nll(model, part_of(batch, "retain", cfg.name))
        loss = loss + cfg.alpha * retain_nll
        logs["retain_nll"] = retain_nll.item()
    return loss, logs
