"""The rank-one update that makes the down-projection map k* to v*.

ROME Eq. 2 (Meng et al. 2022): minimise ||Ŵ K − V|| subject to Ŵ k* = v*, with C = K Kᵀ / N
the keys' second moment. The solution is

    Ŵ = W + Λ (C⁻¹ k*)ᵀ,    Λ = (v* − W k*) / ((C⁻¹ k*)ᵀ k*)

i.e. ΔW = (v* − W k*) uᵀ / (uᵀ k*) with the left vector u = C⁻¹ k*. Then Ŵ k* = W k* + (v* −
W k*) = v* exactly, and any key k with uᵀ k = 0 (C⁻¹-orthogonal to k*) is left unchanged.
With a bias b, "W k*" means the module's output W k* + b, which the update does not touch.

ROME's released code keeps u = C⁻¹ k* but puts the *unprefixed prompt's* key k_p in the
residual and the denominator, ΔW = (v* − W k_p) uᵀ / (uᵀ k_p), so that prompt gets exactly v*
(EditConfig.update_key = "prompt"); `rank_one_delta(k_p, r, u)` computes that too.

Shapes: W is (d_model, d_ff) for nn.Linear (ΔW = r uᵀ) and (d_ff, d_model) for GPT-2's
Conv1D (ΔW = u rᵀ). The algebra is done in float64 and cast to the weight's dtype once.
"""

from __future__ import annotations

import torch

from lethe.errors import LetheError


def covariance_factor(cov: torch.Tensor, ridge: float, device) -> torch.Tensor:
    """Cholesky factor (d_ff, d_ff), float64, of C + ridge · mean(diag C) · I."""
    c = cov.to(device=device, dtype=torch.float64)
    if ridge > 0:
        c = c + ridge * c.diagonal().mean() * torch.eye(c.shape[0], dtype=c.dtype, device=device)
    factor, info = torch.linalg.cholesky_ex(c)
    if int(info) != 0:
        raise LetheError("the key covariance C is singular (too few corpus tokens for d_ff); "
                         "raise EditConfig.cov_samples or set cov_ridge (e.g. 1e-4)")
    return factor


def left_vector(k_star: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    """u = C⁻¹ k* (d_ff,), float64; u = k* when `factor` is None (C = I)."""
    k = k_star.to(torch.float64)
    if factor is None:
        return k
    return torch.cholesky_solve(k.to(factor.device)[:, None], factor)[:, 0]


def rank_one_delta(k_star: torch.Tensor, residual: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ΔW (d_model, d_ff), float64 = residual uᵀ / (uᵀ k); residual = v* − (W k + b).

    `k_star` is the key the update must be exact for (k* itself, or the prompt's key)."""
    k = k_star.to(u.device, torch.float64)
    denom = u @ k
    if not torch.isfinite(denom) or abs(float(denom)) < 1e-12:
        raise LetheError("rank-one update is ill-conditioned (uᵀk* ≈ 0): the key k* is zero at "
                         "this layer; choose another EditConfig.layer")
    return torch.outer(residual.to(u.device, torch.float64), u) / denom


@torch.no_grad()
def apply_delta(module, delta_out_in: torch.Tensor, orientation: str) -> None:
    """W += ΔW in the module's own layout ("out_in": nn.Linear; "in_out": Conv1D)."""
    d = delta_out_in if orientation == "out_in" else delta_out_in.T
    w = module.weight
    if d.shape != w.shape:
        raise LetheError(f"rank-one update shape {tuple(d.shape)} does not match the weight "
                         f"{tuple(w.shape)}; is the rewrite module a down-projection?")
    w.add_(d.to(device=w.device, dtype=w.dtype))
