"""Gradient preprocessing of the learned optimizer (Andrychowicz et al. 2016, arXiv 1606.04474, App. A).

Each coordinate's value g becomes two features, so that gradients spanning many orders of
magnitude reach the LSTM on a bounded scale::

    |g| >= exp(-p):  (log|g| / p,  sign(g))
    |g| <  exp(-p):  (-1,          exp(p) g)

with p = 10 by default (the paper's value). Scale: a factor 10 in |g| moves the first
feature by ln(10)/p = 0.23; the second feature carries the sign (or, below exp(-p), the
value itself). Computed without autograd: the optimizer's inputs are data (detached).
"""

from __future__ import annotations

import math

import torch

__all__ = ["log_sign"]


def log_sign(g: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """(..., 2) features of ``g`` (any shape): log-magnitude / p and sign, as in the module docstring."""
    if not p > 0:
        raise ValueError(f"preprocessing exponent p must be > 0, got {p!r}")
    g = g.detach()
    a = g.abs()
    big = a >= math.exp(-p)
    safe = torch.where(big, a, torch.ones_like(a))
    first = torch.where(big, torch.log(safe) / p, torch.full_like(g, -1.0))
    second = torch.where(big, torch.sign(g), g * math.exp(p))
    return torch.stack([first, second], dim=-1)
