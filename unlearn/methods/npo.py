"""Negative Preference Optimization (NPO; Zhang, Lin, Bai, Mei 2024, arXiv:2404.05868).

L_NPO = −(2/β)·E_{y∈forget} log σ(−β·log(π_θ(y|x) / π_ref(y|x))), with log π(y|x) the summed
log-likelihood of the sequence. π_ref is the starting model: its log-likelihoods are cached in
the batch as `ref_logp` by `precompute_ref_logp` (no reference model during training).
"""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import npo_term, ref_logprob, sequence_logprob


@dataclass(frozen=True)
class NPOConfig(MethodConfig):
    name: str = "npo"
    beta: float = 0.1  # inverse temperature β of the log-ratio (paper and TOFU/MUSE runs: 0.1)


def npo_forget(model, batch, cfg, ref):
    """(NPO loss on batch["forget"], logs) — shared by npo, npo_gdr, npo_klr."""
    part = batch["forget"]
    logp, count = sequence_logprob(model, part)  # (B,), (B,)
    ref_logp = ref_logprob(part, ref, cfg.name)  # (B,)
    loss = npo_term(logp, ref_logp, cfg.beta)
    forget_nll = -logp.sum() / count.sum().clamp(min=1)
    return loss, {"npo": loss.item(), "forget_nll": forget_nll.item(),
                  "log_ratio": (logp - ref_logp).mean().item()}


@register("npo", NPOConfig, needs_ref_logp=True)
def npo_loss(model, batch, cfg: NPOConfig, ref=None):
    """NPO: −(2/β)·mean log σ(−β·(log π_θ(y) − log π_ref(y))) on forget."""
    return npo_forget(model, batch, cfg, ref)
