"""Gradient ascent (GA): maximise the forget set's NLL. Loss = −NLL(forget)."""

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.losses import nll


@dataclass(frozen=True)
class GAConfig(MethodConfig):
    name: str = "ga"


@register("ga", GAConfig)
def ga_loss(model, batch, cfg: GAConfig, ref=None):
    """Gradient ascent on the forget set: −NLL(forget)."""
    forget_nll = nll(model, batch["forget"])
    return -forget_nll, {"forget_nll": forget_nll.item()}
