"""Gradient difference (GradDiff): ascend on forget, descend on retain.

Loss = −NLL(forget) + α·NLL(retain) (Liu et al. 2022, "Continual learning and private
unlearning"; the GD baseline of TOFU, Maini et al. 2024, and MUSE, Shi et al. 2024).
"""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll, part_of


@dataclass(frozen=True)
class GradDiffConfig(MethodConfig):
    name: str = "grad_diff"
    alpha: float = 1.0  # weight of the retain NLL (open-unlearning/MUSE default 1.0)


@register("grad_diff", GradDiffConfig, needs_retain=True)
def grad_diff_loss(model, batch, cfg: GradDiffConfig, ref=None):
    """Gradient difference: −NLL(forget) + α·NLL(retain)."""
    forget_nll = nll(model, batch["forget"])
    retain_nll = nll(model, part_of(batch, "retain", cfg.name))
    loss = -forget_nll + cfg.alpha * retain_nll
    return loss, {"forget_nll": forget_nll.item(), "retain_nll": retain_nll.item()}
