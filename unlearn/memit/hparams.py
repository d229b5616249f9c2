"""MemitConfig: ROME's EditConfig with a layer range instead of one layer, and λ of Eq. 14.

Every EditConfig field keeps its meaning (objective, v* optimisation, contexts, covariance
corpus); `layer` is ROME's single layer and must stay unset (MEMIT edits `layers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn.rome.hparams import EditConfig, EditConfigError


@dataclass(frozen=True)
class MemitConfig(EditConfig):
    layers: tuple[int, ...] | None = None
    """Blocks whose MLP down-projections are rewritten, edited from the lowest; the facts'
    target hidden states z are fit at the highest (MEMIT's critical layers: 3-8 of GPT-J's 28).
    None = default_layers(n_layers): from n_layers // 5 (ROME's layer) up, never the last
    block."""
    update_weight: float = 15000.0
    """λ in Eq. 14, Δ = R Kᵀ (λC + K Kᵀ)⁻¹ with C = E[k kᵀ] over the covariance corpus
    (MEMIT's mom2_update_weight: 15000 for GPT-J, 20000 for GPT-2 XL): how many "preserved
    keys" weigh against each new fact. Larger = smaller, more conservative updates."""

    def __post_init__(self):
        super().__post_init__()
        if self.layer is not None:
            raise EditConfigError("MemitConfig: `layer` is ROME's single edit layer; MEMIT "
                                  "edits `layers` (e.g. layers: [0, 1])")
        if self.layers is not None and (not self.layers
                                        or len(set(self.layers)) != len(self.layers)):
            raise EditConfigError(f"MemitConfig: layers must be distinct and at least one "
                                  f"(got {self.layers!r})")
        if self.update_weight < 0:
            raise EditConfigError(f"MemitConfig: update_weight must be >= 0 (got "
                                  f"{self.update_weight})")


def default_layers(n_layers: int) -> tuple[int, ...]:
    """ROME's layer n_layers // 5 and the blocks above it, max(2, n_layers // 6) in all,
    stopping before the last block (a shift written there reaches no later token):
    4 blocks -> (0, 1); 2 -> (0,); 28 -> (5, 6, 7, 8); 30 -> (6, ..., 10)."""
    start = n_layers // 5
    stop = min(start + max(2, n_layers // 6), n_layers - 1)
    return tuple(range(start, max(stop, start + 1)))
