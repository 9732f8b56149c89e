"""Euclidean projection onto the l1 ball, per sample (notebook 06).

    P(v) = argmin_{||w||_1 ≤ r} ||w - v||_2

If ||v||_1 ≤ r, P(v) = v. Otherwise P(v) = sign(v) · max(|v| - θ, 0) with the threshold θ > 0 chosen so that
||P(v)||_1 = r (Duchi et al., 2008): sort u = |v| in decreasing order, let ρ be the largest j with
u_j > (Σ_{i≤j} u_i - r) / j, and θ = (Σ_{i≤ρ} u_i - r) / ρ. O(n log n) per sample, done for a whole batch.
GIFD keeps each stage's feature change h - h_0 inside such a ball so the generator stays near its range.
"""

from __future__ import annotations

import torch

__all__ = ["project_l1_ball"]


def project_l1_ball(v: torch.Tensor, radius: torch.Tensor | float) -> torch.Tensor:
    """Project every sample v[i] (any shape after the batch dimension) onto {w : ||w||_1 ≤ radius[i]}."""
    flat = v.flatten(1)
    b, n = flat.shape
    r = torch.as_tensor(radius, dtype=flat.dtype, device=flat.device).expand(b).clamp_min(0)
    outside = flat.abs().sum(1) > r          # no early return on "none outside": that would be a host read
    u = flat.abs().sort(dim=1, descending=True).values
    cssv = u.cumsum(1) - r[:, None]
    j = torch.arange(1, n + 1, device=flat.device, dtype=flat.dtype)
    rho = ((u - cssv / j) > 0).sum(1).clamp_min(1)               # how many entries stay non-zero
    theta = cssv.gather(1, (rho - 1)[:, None]).squeeze(1) / rho.to(flat.dtype)
    projected = flat.sign() * (flat.abs() - theta[:, None]).clamp_min(0)
    return torch.where(outside[:, None], projected, flat).view_as(v)
