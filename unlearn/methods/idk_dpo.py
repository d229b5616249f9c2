"""IdkDPO: DPO towards "I don't know" (TOFU, Maini et al. 2024 §4; open-unlearning's DPO
trainer on its QAwithIdkDataset): the preferred response to every forget prompt is an answer
drawn from Lethe's bundled "I don't know" set (unlearn/idk.jsonl). The loss is `dpo`'s
(unlearn/methods/dpo.py: Rafailov et al. 2023 eq. 7 scaled by 2/β, plus α·NLL(retain)).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.dpo import dpo_objective


@dataclass(frozen=True)
class IdkDPOConfig(MethodConfig):
    name: str = "idk_dpo"
    beta: float = 0.1  # inverse temperature β (open-unlearning's DPO default)
    alpha: float = 1.0  # weight α of the retain NLL
    gamma: float = 1.0  # weight γ of the preference term

    @property
    def alternate(self) -> str:
        return "idk"  # always the bundled "I don't know" answers


@register("idk_dpo", IdkDPOConfig, needs_ref_logp=True, needs_retain=True, needs_alternate=True)
def idk_dpo_loss(model, batch, cfg: IdkDPOConfig, ref=None):
    """IdkDPO: DPO preferring a bundled "I don't know" answer to the forget answer."""
    return dpo_objective(model, batch, cfg, ref)
