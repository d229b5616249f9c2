"""UNDIAL: self-distillation with adjusted logits (Dong, Lin, Belkin, Huerta, Vulić 2025,
"UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in Large Language Models",
NAACL 2025, arXiv:2402.10052, §3 eq. 2-3).

The student (the model being unlearned) is trained towards the starting model's own next-token
distribution with the logit of the token to forget lowered by β:

    q_t = softmax( z_ref,t − β·onehot(y_t) )          (the adjusted teacher, no gradient)
    L = γ · mean_t CE(q_t, p_θ,t) + α · NLL(retain)

averaged over the forget sequence's scored tokens (padding and prompt never count;
open-unlearning's compute_undial_loss averages over every position of the batch, padding
included). z_ref comes from a `Reference` (adapters disabled under LoRA, else a frozen copy).
Defaults are open-unlearning's configs/trainer/UNDIAL.yaml: β 10, γ 1, α 0 (the paper uses no
retain set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lethe.errors import LetheError
from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import forward_shifted, masked_mean, nll, part_of, shifted, soft_ce


@dataclass(frozen=True)
class UNDIALConfig(MethodConfig):
    name: str = "undial"
    beta: float = 10.0  # β: how far the forgotten token's teacher logit is lowered
    gamma: float = 1.0  # weight γ of the distillation (forget) term
    alpha: float = 0.0  # weight α of the retain NLL (0: no retain set, as the paper)


def adjusted_teacher(ref_logits: torch.Tensor, targets: torch.Tensor,
                     beta: float) -> torch.Tensor:
    """softmax(z_ref − β·onehot(target)): ref_logits (B, T, V), targets (B, T) → (B, T, V)."""
    onehot = torch.zeros_like(ref_logits).scatter_(-1, targets.unsqueeze(-1), 1.0)
    return torch.softmax(ref_logits.float() - beta * onehot, dim=-1)


@register("undial", UNDIALConfig, needs_ref_model=True)
def undial_loss(model, batch, cfg: UNDIALConfig, ref=None):
    """UNDIAL: γ·CE(softmax(z_ref − β·onehot(y)), p_θ) on forget + α·NLL(retain)."""
    if ref is None:
        raise LetheError("undial needs a reference model: build one with make_reference")
    part = batch["forget"]
    logits, targets, mask = forward_shifted(model, part)  # (B, T-1, V), (B, T-1), (B, T-1)
    ref_logits, _, _ = shifted(ref.logits(part), part["labels"])
    teacher = adjusted_teacher(ref_logits, targets, cfg.beta)  # (B, T-1, V)
    forget = masked_mean(soft_ce(logits, teacher), mask)
    loss, logs = cfg.gamma * forget, {"undial": forget.item()}
    if cfg.alpha:
        retain_nll = nll(model, part_of(batch, "retain", cfg.name))
        loss = loss + cfg.alpha * retain_nll
        logs["retain_nll"] = retain_nll.item()
    return loss, logs
