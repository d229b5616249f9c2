"""Alternate Preference Optimization (AltPO; Mekala et al. 2025, "Alternate Preference
Optimization for Unlearning Factual Knowledge in Large Language Models", COLING 2025,
arXiv:2409.13474): negative feedback on the forget answer combined with positive feedback on
in-domain *plausible alternate* answers to the same question, in DPO's form. As the authors'
code (molereddy/Alternate-Preference-Optimization, loss `subdpo`) and open-unlearning's
community/methods/AltPO run it:

    L = γ · ( −(2/β) · mean_{k} log σ( β·[ log π_θ(ỹ_k|x)/π_ref(ỹ_k|x) − log π_θ(y_f|x)/π_ref(y_f|x) ] ) )
        + α · NLL(retain)

with k = 1..`n_alternates` alternate answers ỹ_k per question (the paper's default is 5, each
a separate training pair). The alternates are a column of the forget table (`alternate`); the
paper samples them from the target model prompted to change the answer's facts, the offline
TOFU-layout world (`unlearn world --format tofu`) writes them from its pool of wrong facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.methods import MethodConfig, register
from unlearn.methods.dpo import alternate_reads, dpo_objective


@dataclass(frozen=True)
class AltPOConfig(MethodConfig):
    name: str = "altpo"
    beta: float = 0.1  # inverse temperature β (open-unlearning's AltPO grid: 0.05, 0.1, 0.5)
    alpha: float = 1.0  # weight α of the retain NLL (grid: 1, 2, 5)
    gamma: float = 1.0  # weight γ of the preference term
    alternate: str = "alternate"  # forget-table column of plausible alternate answers
    n_alternates: int = 5  # alternates per question, each its own pair (the paper's alt5)


@register("altpo", AltPOConfig, needs_ref_logp=True, needs_retain=True, needs_alternate=True,
          reads=alternate_reads)
def altpo_loss(model, batch, cfg: AltPOConfig, ref=None):
    """AltPO: DPO preferring plausible alternate answers to the forget answer, + α·NLL(retain)."""
    return dpo_objective(model, batch, cfg, ref)
