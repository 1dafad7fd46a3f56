"""The losses of a classification head: cross-entropy, and the TaylorGLO loss (seed 001, Eq. 2).

The TaylorGLO polynomial and its initial points are task-neutral (:mod:`balancebench.losses_taylorglo`, formula
there): here it is applied per class with one-hot x and softmax y over the n = 10 classes, batch mean. The task's
default theta (:data:`DEFAULT_THETA`) is the third-order Taylor expansion of cross-entropy at (1, 1)
(``cross_entropy_theta(10)``): cross-entropy itself is not a polynomial.
"""

from __future__ import annotations

import torch

from balancebench.losses_taylorglo import (  # noqa: F401 (re-exported: the task's names)
    SEED_TABLE2_THETA,
    THETA_NAMES,
    classification_loss,
    cross_entropy_theta,
    taylorglo_terms,
)

N_CLASSES = 10
DEFAULT_THETA = cross_entropy_theta(N_CLASSES)


def taylorglo_loss(logits: torch.Tensor, labels: torch.Tensor, theta) -> torch.Tensor:
    """Eq. 2 of seed 001 of ``logits`` (B, n) against integer ``labels`` (B,), batch mean."""
    return classification_loss(logits, labels, theta)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats); ln(10) for the uniform predictor of ten classes."""
    return torch.nn.functional.cross_entropy(logits, labels)
