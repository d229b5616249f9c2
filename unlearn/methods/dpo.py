"""Direct Preference Optimization for unlearning (DPO; Rafailov et al. 2023, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model", arXiv:2305.18290, eq. 7), with
the forget response as the dispreferred one, as TOFU (Maini et al. 2024 §4) and open-unlearning
run it:

    L = γ · ( −(2/β) · E log σ( β·[ log π_θ(y_a|x)/π_ref(y_a|x) − log π_θ(y_f|x)/π_ref(y_f|x) ] ) )
        + α · NLL(retain)

y_f is the forget response to prompt x, y_a the alternate (preferred) response to the same x:
an "I don't know" answer (`alternate: idk`, the IdkDPO of TOFU) or a column of the forget table
(e.g. AltPO's plausible alternate answers). log π(y|x) is summed over the response tokens; π_ref
is the starting model, its log-likelihoods cached once before training (`ref_logp`). The 2/β
factor is open-unlearning's (src/trainer/utils.py compute_dpo_loss; it is (2/β)× eq. 7, the
scaling NPO introduced so the gradient does not vanish as β → 0). Defaults: open-unlearning's
configs/trainer/DPO.yaml (β 0.1, α 1, γ 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll, part_of, ref_logprob, sequence_logprob


@dataclass(frozen=True)
class DPOConfig(MethodConfig):
    name: str = "dpo"
    beta: float = 0.1  # inverse temperature β of the log-ratios (open-unlearning: 0.1)
    alpha: float = 1.0  # weight α of the retain NLL
    gamma: float = 1.0  # weight γ of the preference (forget) term
    alternate: str = "idk"  # preferred responses: idk (bundled set) or a forget-table column
    n_alternates: int = 1  # alternates per forget example (each makes its own pair)


def dpo_term(win_logp: torch.Tensor, win_ref: torch.Tensor, lose_logp: torch.Tensor,
             lose_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """−(2/β)·mean log σ(β·[(log π_w − log π_ref,w) − (log π_l − log π_ref,l)]); inputs (B,).

    At θ = ref the margin is 0 and the term is (2/β)·log 2."""
    margin = (win_logp - win_ref.to(win_logp.dtype)) - (lose_logp - lose_ref.to(lose_logp.dtype))
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


def dpo_objective(model, batch, cfg, ref) -> tuple[torch.Tensor, dict]:
    """γ·DPO(alternate ≻ forget) + α·NLL(retain) — shared by dpo, idk_dpo and altpo."""
    lose, win = batch["forget"], part_of(batch, "alternate", cfg.name)
    lose_logp, lose_n = sequence_logprob(model, lose)  # (B,), (B,)
    win_logp, _ = sequence_logprob(model, win)  # (B,)
    lose_ref, win_ref = ref_logprob(lose, ref, cfg.name), ref_logprob(win, ref, cfg.name)
    pref = dpo_term(win_logp, win_ref, lose_logp, lose_ref, cfg.beta)
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    loss = cfg.gamma * pref + cfg.alpha * retain_nll
    return loss, {"dpo": pref.item(), "retain_nll": retain_nll.item(),
                  "forget_nll": (-lose_logp.sum() / lose_n.sum().clamp(min=1)).item(),
                  "alternate_log_ratio": (win_logp - win_ref).mean().item()}


def alternate_reads(cfg, data_source, forget):
    """The alternate column the preflight checks (none for the bundled idk set); it may hold
    one string or a list of them per row."""
    from unlearn.alternates import alternate_columns

    columns = alternate_columns(cfg)
    return [(data_source, forget.config, forget.split, (), columns)] if columns else []


@register("dpo", DPOConfig, needs_ref_logp=True, needs_retain=True, needs_alternate=True,
          reads=alternate_reads)
def dpo_loss(model, batch, cfg: DPOConfig, ref=None):
    """DPO: γ·(−(2/β)·log σ(β·(ratio(alternate) − ratio(forget)))) + α·NLL(retain)."""
    return dpo_objective(model, batch, cfg, ref)
