"""The losses of a classification head: cross-entropy, and the TaylorGLO loss (seed 001, Eq. 2).

TaylorGLO (Gonzalez & Miikkulainen, arXiv 2002.00059; seed 001 Morozov & Stanovov, Eq. 2): a third-order
Taylor polynomial in (x, y), x the one-hot target of a class and y the softmax output of that class, centred at
(theta_0, theta_1), summed over the n classes with -1/n::

    f(x, y) = -1/n sum_{i=1..n} [ theta_2 (y_i - theta_1) + 1/2 theta_3 (y_i - theta_1)^2
                                  + 1/6 theta_4 (y_i - theta_1)^3 + theta_5 (x_i - theta_0)(y_i - theta_1)
                                  + 1/2 theta_6 (x_i - theta_0)(y_i - theta_1)^2
                                  + 1/2 theta_7 (x_i - theta_0)^2 (y_i - theta_1) ]

averaged over the batch. The seed prints the first term as theta_2 (y_i - theta_1)^3 (the cube twice, a
misprint: REFERENCES.md sec. 7.1); this is the intended form, every third-order term with a non-zero d/dy.
The seed divides by n (the class count); the official trainer (fumanchu) sums over the classes (x10 for ten
classes, which the learning rate feels): we follow the seed. theta = (0, 0, 0, -2, 0, 2, 0, 0) gives
(1/n) sum_i (y_i^2 - 2 x_i y_i) = (1/n) sum_i (x_i - y_i)^2 - 1/n: the squared error of the softmax (the
Brier score over n) up to a constant, hence with the same gradient.
"""

from __future__ import annotations

import torch

# seed 001, Table 2 (CIFAR-10, theta_0..theta_7): the only evolved coefficients the seed prints
SEED_TABLE2_THETA = (-1.694, 3.338, 0.340, -0.162, 4.553, 0.056, -2.396, 1.635)
THETA_NAMES = tuple(f"taylor_theta_{i}" for i in range(8))


def taylorglo_terms(x: torch.Tensor, y: torch.Tensor, theta) -> torch.Tensor:
    """The bracket of Eq. 2 per item and class ((B, n) from one-hot ``x`` and softmax ``y`` of shape (B, n))."""
    t = [float(v) for v in theta]
    if len(t) != 8:
        raise ValueError(f"TaylorGLO needs 8 coefficients theta_0..theta_7, got {len(t)}")
    u, v = y - t[1], x - t[0]
    return (t[2] * u + 0.5 * t[3] * u**2 + t[4] * u**3 / 6.0 + t[5] * v * u + 0.5 * t[6] * v * u**2
            + 0.5 * t[7] * v**2 * u)


def taylorglo_loss(logits: torch.Tensor, labels: torch.Tensor, theta) -> torch.Tensor:
    """Eq. 2 of seed 001 (module docstring) of ``logits`` (B, n) against integer ``labels`` (B,), batch mean."""
    y = torch.softmax(logits, dim=-1)
    x = torch.nn.functional.one_hot(labels, logits.shape[-1]).to(y.dtype)
    return -taylorglo_terms(x, y, theta).mean(dim=-1).mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats); ln(10) for the uniform predictor of ten classes."""
    return torch.nn.functional.cross_entropy(logits, labels)
