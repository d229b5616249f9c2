"""The batch update that writes every fact into one layer at once (MEMIT Eq. 14).

For a layer with weight W (d_model × d_ff), keys K = [k_1 … k_n] (d_ff × n) of the facts at
that layer and residuals R = [r_1 … r_n] (d_model × n) they still need, MEMIT minimises

    Σ_preserved ||Ŵ k − W k||² + Σ_i ||Ŵ k_i − (W k_i + r_i)||²

whose solution is Δ = Ŵ − W = R Kᵀ (C₀ + K Kᵀ)⁻¹ with C₀ = λ·E[k kᵀ] the preserved keys'
(scaled) second moment (Eq. 14; MEMIT's code scales the cached moment by mom2_update_weight λ).
With C₀ = 0 and K invertible this is Δ K = R exactly; the larger λC, the more each fact's key is
only partly written, in directions the preserved keys use little.

Alg. 1 spreads a fact's residual over the layers still to edit: at the i-th of m layers (from
the lowest) the layer takes r_i / (m − i) of what is still missing at the last layer, so the
change is shared instead of piled onto one weight (`spread`).

Shapes as ROME's update.py: Δ is (d_model, d_ff) and is transposed for GPT-2's Conv1D by
`unlearn.rome.update.apply_delta`. The algebra is in float64.
"""

from __future__ import annotations

import torch

from lethe.errors import LetheError


def spread(residual: torch.Tensor, index: int, n_layers: int) -> torch.Tensor:
    """The part of `residual` the `index`-th (0-based, lowest first) of `n_layers` layers
    writes: residual / (n_layers − index) (Alg. 1)."""
    return residual / (n_layers - index)


def batch_delta(keys: torch.Tensor, residuals: torch.Tensor, cov: torch.Tensor | None,
                weight: float, ridge: float = 0.0) -> torch.Tensor:
    """Δ (d_model, d_ff), float64 = R Kᵀ (λC + K Kᵀ)⁻¹ (Eq. 14).

    keys (n, d_ff) and residuals (n, d_model): one row per fact; cov (d_ff, d_ff) = E[k kᵀ]
    (None = I); weight = λ; ridge adds ridge · mean(diag C) · I to C (a singular C)."""
    k = keys.to(torch.float64).T  # (d_ff, n)
    r = residuals.to(device=k.device, dtype=torch.float64).T  # (d_model, n)
    d_ff = k.shape[0]
    c = torch.eye(d_ff, dtype=torch.float64, device=k.device) if cov is None \
        else cov.to(device=k.device, dtype=torch.float64)
    if ridge > 0:
        c = c + ridge * c.diagonal().mean() * torch.eye(d_ff, dtype=c.dtype, device=c.device)
    a = weight * c + k @ k.T  # (d_ff, d_ff), symmetric positive (semi)definite
    factor, info = torch.linalg.cholesky_ex(a)
    # a pivot that is zero to working precision: A is singular (e.g. C = 0 and n < d_ff)
    tiny = float(factor.diagonal().min()) ** 2 <= 1e-12 * float(a.diagonal().max()) \
        if int(info) == 0 else True
    if tiny:
        raise LetheError("MEMIT's λC + K Kᵀ is singular: raise update_weight, set cov_ridge "
                         "(e.g. 1e-4) or cov_samples, or edit fewer facts than the layer has "
                         "key dimensions")
    adj = torch.cholesky_solve(k, factor)  # (d_ff, n) = A⁻¹ K
    return r @ adj.T  # (d_model, d_ff) = R Kᵀ A⁻¹ (A symmetric)
