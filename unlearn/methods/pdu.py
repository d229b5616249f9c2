"""Primal-Dual Unlearning (PDU; Entesari, Hatami, Khaziev, Ramakrishna, Fazlyab 2025,
"Constrained Entropic Unlearning: A Primal-Dual Framework for Large Language Models",
arXiv:2506.05314, §3-4).

Forgetting flattens the next-token logits of the forget set (logit-margin flattening, which
drives the distribution towards uniform), subject to a constraint on the retain loss:

    minimise  mean_t (max_v z_t,v − mean_v z_t,v)²   subject to  NLL(retain) ≤ ε

solved with the Lagrangian L = γ·forget + λ·(NLL(retain) − ε) and dual ascent after every loss
call, λ ← max(0, λ + η·(NLL(retain) − ε)) (once `dual_warmup_steps` calls have passed). λ
starts at `alpha` (open-unlearning's retain preference). ε: the paper asks for a value a bit
above the starting model's retain loss; None takes the first batch's retain NLL × (1 +
`eps_margin`), Lethe's default. The forget term averages over the positions that predict a
scored token (open-unlearning masks the unshifted labels instead). Defaults otherwise follow
open-unlearning's configs/trainer/PDU.yaml (γ 1, step size η 1, updates per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import forward_shifted, masked_mean, nll, part_of


@dataclass(frozen=True)
class PDUConfig(MethodConfig):
    name: str = "pdu"
    gamma: float = 1.0  # weight γ of the logit-flattening (forget) term
    alpha: float = 1.0  # starting dual variable λ₀ (the retain preference)
    retain_eps: float | None = None  # ε of NLL(retain) ≤ ε; None: first retain NLL × (1 + margin)
    eps_margin: float = 0.1  # margin above the first retain NLL when retain_eps is None
    primal_dual: bool = True  # update λ by dual ascent (False: fixed weight λ₀)
    dual_step_size: float = 1.0  # dual step η
    dual_warmup_steps: int = 0  # loss calls before λ starts to move


@dataclass
class DualState:
    """The mutable part of a PDU run: λ, ε (once known) and how many loss calls have run."""

    lam: float
    eps: float | None
    calls: int = 0


def pdu_state(cfg: PDUConfig) -> DualState:
    return DualState(lam=float(cfg.alpha), eps=cfg.retain_eps)


def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """(max_v z − mean_v z)² per position: (B, T, V) → (B, T)."""
    return (logits.max(-1).values - logits.mean(-1)).pow(2)


@register("pdu", PDUConfig, needs_retain=True, state=pdu_state)
def pdu_loss(model, batch, cfg: PDUConfig, ref=None, state: DualState | None = None):
    """PDU: γ·mean (max z − mean z)² on forget + λ·(NLL(retain) − ε), λ by dual ascent."""
    state = state if state is not None else pdu_state(cfg)
    logits, _, mask = forward_shifted(model, batch["forget"])  # (B, T-1, V), ..., (B, T-1)
    forget = masked_mean(logit_margin(logits), mask)
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    if state.eps is None:
        state.eps = retain_nll.item() * (1 + cfg.eps_margin)
    slack = retain_nll - state.eps
    loss = cfg.gamma * forget + state.lam * slack
    logs = {"logit_margin": forget.item(), "retain_nll": retain_nll.item(), "lambda": state.lam}
    state.calls += 1
    if cfg.primal_dual and state.calls > cfg.dual_warmup_steps:
        state.lam = max(0.0, state.lam + cfg.dual_step_size * slack.item())
    return loss, logs
