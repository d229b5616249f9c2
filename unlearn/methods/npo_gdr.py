"""NPO with a retain NLL regulariser (NPO+RT in Zhang et al. 2024; NPO_GDR in MUSE).

Loss = L_NPO(forget) + α·NLL(retain). With `reference_impl: muse_code` the NPO term is MUSE's
raw-logit one (npo.py); the retain NLL is the same in both.
"""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll, part_of
from unlearn.methods.npo import ReferenceImpl, npo_forget


@dataclass(frozen=True)
class NPOGDRConfig(MethodConfig):
    name: str = "npo_gdr"
    beta: float = 0.1  # NPO inverse temperature β (Zhang et al. 2024)
    alpha: float = 1.0  # weight of the retain NLL (MUSE/open-unlearning default 1.0)
    reference_impl: ReferenceImpl = "paper"  # muse_code: MUSE's raw-logit NPO (npo.py)


@register("npo_gdr", NPOGDRConfig, needs_ref_logp=True, needs_retain=True)
def npo_gdr_loss(model, batch, cfg: NPOGDRConfig, ref=None):
    """NPO + GDR: L_NPO(forget) + α·NLL(retain)."""
    forget_loss, logs = npo_forget(model, batch, cfg, ref)
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    return forget_loss + cfg.alpha * retain_nll, {**logs, "retain_nll": retain_nll.item()}
