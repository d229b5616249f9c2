"""Negative Preference Optimization (NPO; Zhang, Lin, Bai, Mei 2024, arXiv:2404.05868).

L_NPO = −(2/β)·E_{y∈forget} log σ(−β·log(π_θ(y|x) / π_ref(y|x))), with log π(y|x) the summed
log-likelihood of the sequence. π_ref is the starting model: its log-likelihoods are cached in
the batch as `ref_logp` by `precompute_ref_logp` (no reference model during training).

`reference_impl: muse_code` (never the default) reproduces MUSE's released code instead
(swj0419/muse_bench baselines/baselines/iterative.py): the "log-ratio" is z_ref − z_θ on raw
logits, element-wise over positions and vocabulary (losses.muse_code_npo_term), which needs the
reference model's logits every step. MUSE's published NPO rows come from that code.
"""

from dataclasses import dataclass
from typing import Literal

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import muse_code_npo_term, npo_term, ref_logprob, sequence_logprob

ReferenceImpl = Literal["paper", "muse_code"]  # paper: the papers' formula; muse_code: MUSE's code


@dataclass(frozen=True)
class NPOConfig(MethodConfig):
    name: str = "npo"
    beta: float = 0.1  # inverse temperature β of the log-ratio (paper and TOFU/MUSE runs: 0.1)
    reference_impl: ReferenceImpl = "paper"  # muse_code: MUSE's raw-logit arithmetic


def npo_forget(model, batch, cfg, ref):
    """(NPO loss on batch["forget"], logs) — shared by npo, npo_gdr, npo_klr."""
    part = batch["forget"]
    if getattr(cfg, "reference_impl", "paper") == "muse_code":
        from lethe.errors import LetheError

        if ref is None:
            raise LetheError(f"{cfg.name} with reference_impl muse_code needs a reference "
                             f"model (make_reference(..., cfg=cfg))")
        logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
        loss = muse_code_npo_term(logits, ref.logits(part), part["attention_mask"], cfg.beta)
        return loss, {"npo": loss.item()}
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
