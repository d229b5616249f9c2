"""NPO with a retain KL regulariser (NPO_KLR in MUSE, Shi et al. 2024).

Loss = L_NPO(forget) + α·KL(p_ref ‖ p_θ) on retain. Forget-side reference log-likelihoods come
from the cache (`ref_logp`); the KL needs full reference distributions on retain batches, so a
reference model is used (adapters disabled under LoRA, otherwise a frozen copy).
`reference_impl: muse_code` computes both terms as MUSE's released code does, on raw logits
(losses.muse_code_npo_term, losses.muse_code_kl); never the default.
"""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import muse_code_retain_kl, part_of, retain_kl
from unlearn.methods.npo import ReferenceImpl, npo_forget


@dataclass(frozen=True)
class NPOKLRConfig(MethodConfig):
    name: str = "npo_klr"
    beta: float = 0.1  # NPO inverse temperature β (Zhang et al. 2024)
    alpha: float = 1.0  # weight of the retain KL term (MUSE/open-unlearning default 1.0)
    reference_impl: ReferenceImpl = "paper"  # muse_code: MUSE's raw-logit NPO and KL


@register("npo_klr", NPOKLRConfig, needs_ref_logp=True, needs_ref_model=True, needs_retain=True)
def npo_klr_loss(model, batch, cfg: NPOKLRConfig, ref=None):
    """NPO + KL: L_NPO(forget) + α·KL(p_ref ‖ p_θ) on retain."""
    forget_loss, logs = npo_forget(model, batch, cfg, ref)
    kl_of = muse_code_retain_kl if cfg.reference_impl == "muse_code" else retain_kl
    kl = kl_of(model, ref, part_of(batch, "retain", cfg.name))
    return forget_loss + cfg.alpha * kl, {**logs, "retain_kl": kl.item()}
