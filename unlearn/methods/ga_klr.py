"""GA with a KL regulariser on retain (GA_KLR: the "KL minimisation"
baseline of MUSE, Shi et al. 2024).

Loss = −NLL(forget) + α·KL(p_ref ‖ p_θ) on retain, where the KL is between next-token
distributions (log-softmax on both sides) averaged over the retain batch's scored tokens.
The reference is the starting model: adapters disabled under LoRA, otherwise a frozen copy.
`reference_impl: muse_code` computes the KL as MUSE's released code does, on raw logits
(losses.muse_code_kl); never the default.
"""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import muse_code_retain_kl, nll, part_of, retain_kl
from unlearn.methods.npo import ReferenceImpl


@dataclass(frozen=True)
class GAKLRConfig(MethodConfig):
    name: str = "ga_klr"
    alpha: float = 1.0  # weight of the retain KL term (MUSE/open-unlearning default 1.0)
    reference_impl: ReferenceImpl = "paper"  # muse_code: MUSE's KL on raw logits


@register("ga_klr", GAKLRConfig, needs_ref_model=True, needs_retain=True)
def ga_klr_loss(model, batch, cfg: GAKLRConfig, ref=None):
    """GA + KL: −NLL(forget) + α·KL(p_ref ‖ p_θ) on retain."""
    forget_nll = nll(model, batch["forget"])
    kl_of = muse_code_retain_kl if cfg.reference_impl == "muse_code" else retain_kl
    kl = kl_of(model, ref, part_of(batch, "retain", cfg.name))
    loss = -forget_nll + cfg.alpha * kl
    return loss, {"forget_nll": forget_nll.item(), "retain_kl": kl.item()}
