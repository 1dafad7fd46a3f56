"""The force residual loss of Eq. 2, generalised to a robust-loss family with a searchable shape (issue 11).

Barron's general robust loss (CVPR 2019) of a residual r with shape alpha and scale c, scaled by 2 c^2
so that every shape equals the squared residual for |r| << c (units (kcal/mol/A)^2, like the MSE)::

    rho(r; alpha, c) = 2 c^2 |alpha - 2| / alpha * [ ((r/c)^2 / |alpha - 2| + 1)^(alpha/2) - 1 ]
    rho(r; 2, c)     = r^2                               (the MSE of Eq. 2, exactly)
    rho(r; 0, c)     = 2 c^2 log(r^2 / (2 c^2) + 1)      (Cauchy / Lorentzian)
    rho(r; 1, c)     = 2 c^2 (sqrt(r^2/c^2 + 1) - 1)     (pseudo-Huber: quadratic near 0, linear tail)

``L_F = mean over beads and Cartesian components of rho(F_pred - F_ref)``. alpha < 2 down-weights large
force residuals (the TaylorGLO idea of a learned loss shape, with one shape and one scale parameter).
"""

from __future__ import annotations

import torch

_EPS = 1e-6


def robust_force_loss(residual: torch.Tensor, alpha: float = 2.0, scale: float = 1.0) -> torch.Tensor:
    """Mean of rho(residual; alpha, scale) (see the module docstring); alpha = 2 is ``mean(residual**2)``."""
    alpha, c = float(alpha), float(scale)
    if c <= 0:
        raise ValueError(f"force_loss_scale must be > 0, got {c}")
    if abs(alpha - 2.0) < _EPS:
        return torch.mean(residual**2)
    x2 = (residual / c) ** 2
    if abs(alpha) < _EPS:
        return 2.0 * c * c * torch.mean(torch.log1p(0.5 * x2))
    b = abs(alpha - 2.0)
    return 2.0 * c * c * (b / alpha) * torch.mean(torch.pow(x2 / b + 1.0, 0.5 * alpha) - 1.0)
