"""The TaylorGLO loss family (seed 001, Morozov & Stanovov, Eq. 2; Gonzalez & Miikkulainen 2021), task-neutral.

A third-order bivariate Taylor polynomial in (x, y), x a target and y a prediction, centred at (theta_0, theta_1),
with every third-order term that has a non-zero d/dy (terms in x alone move no gradient and are left out)::

    T(x, y) = theta_2 u + 1/2 theta_3 u^2 + 1/6 theta_4 u^3 + theta_5 v u + 1/2 theta_6 v u^2 + 1/2 theta_7 v^2 u,
              u = y - theta_1,  v = x - theta_0

    f(x, y) = -1/n sum_{i=1..n} T(x_i, y_i)                                               (Eq. 2)

The seed prints the first term as theta_2 (y_i - theta_1)^3 (the cube twice) and Eq. 3 swaps the powers of
theta_2 and theta_4; both are misprints of the form above (REFERENCES.md sec. 7.1). The seed divides by n; the
official TaylorGLO trainer sums over the classes (x n): we follow the seed.

Two uses, the same polynomial (:func:`taylorglo`: -mean of T over every entry):

* **classification** (:func:`classification_loss`, Eq. 2 as the seed applies it): i runs over the n classes of
  an item, x_i the one-hot target, y_i the softmax output; the loss is the batch mean of f. For n = 2 and
  x_2 = 1 - x_1, y_2 = 1 - y_1 this is the seed's Eq. 3.
* **regression** (:func:`regression_loss`): i runs over every component of the prediction (e.g. every Cartesian
  component of every predicted vector) with x = target / s and y = prediction / s for a unit s (the same unit as
  the targets), and ``L = s^2 f(x, y)``, so L has the units of a squared error and theta is unit-free.

Initial points (the default loss of a task, where the polynomial can represent it):

* **squared error** (:func:`squared_error_theta`): theta = (0, 0, 0, -2c, 0, 2c, 0, 0) gives
  T = 2c x y - c y^2, so ``f = c mean((y - x)^2) - c mean(x^2)``: the scaled squared error up to a term that does
  not depend on the prediction, hence exactly its gradient (regression: ``L = c MSE - c mean(target^2)``; with
  c = 1 the MSE's gradient). Loss *values* are shifted by -c mean(x^2) and can be negative: a method that reads
  loss values (ratio, SoftAdapt) sees the shift, a fixed-weight or gradient-only method does not.
* **cross-entropy** cannot be represented: ln y is not a polynomial, and CE = -sum_i x_i ln y_i is unbounded as
  y -> 0 while T is bounded on [0, 1]. :func:`cross_entropy_theta` is its third-order Taylor expansion at
  (x, y) = (1, 1), scaled by n so that f matches CE (a sum over classes) and not CE / n:
  theta = (1, 1, n, -n, 2n, n, -n, 0). On the target class (x = 1) f is -[(y-1) - (y-1)^2/2 + (y-1)^3/3],
  ln y to third order in (y - 1); on a non-target class (x = 0) it adds -(y-1)^3/3, the truncated fourth-order
  term x (y-1)^3/3 of x ln y (CE adds nothing there). In one measured multidigits training its best
  validation cross-entropy was 8 % above CE's, the seed's Table 2 coefficients (CIFAR-10) 126 % (docs/search.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

N_THETA = 8
THETA_NAMES = tuple(f"taylor_theta_{i}" for i in range(N_THETA))
# seed 001, Table 2 (CIFAR-10, theta_0..theta_7): the only evolved coefficients the seed prints
SEED_TABLE2_THETA = (-1.694, 3.338, 0.340, -0.162, 4.553, 0.056, -2.396, 1.635)


def squared_error_theta(c: float = 1.0) -> tuple[float, ...]:
    """theta of ``c (y - x)^2`` up to a term in x alone (module docstring)."""
    c = float(c)
    return (0.0, 0.0, 0.0, -2.0 * c, 0.0, 2.0 * c, 0.0, 0.0)


def cross_entropy_theta(n_classes: int) -> tuple[float, ...]:
    """theta of the third-order Taylor expansion of n x ln y at (1, 1), so that f ~ -sum_i x_i ln y_i (module
    docstring): d/dy x ln y = 1, d2/dy2 = -1, d3/dy3 = 2, d2/dxdy = 1, d3/dxdy2 = -1, d3/dx2dy = 0."""
    n = float(n_classes)
    return (1.0, 1.0, n, -n, 2.0 * n, n, -n, 0.0)


def check_theta(theta: Sequence[float]) -> tuple[float, ...]:
    t = tuple(float(v) for v in theta)
    if len(t) != N_THETA:
        raise ValueError(f"TaylorGLO needs {N_THETA} coefficients theta_0..theta_7, got {len(t)}")
    if not all(math.isfinite(v) for v in t):
        raise ValueError(f"TaylorGLO coefficients must be finite, got {t}")
    return t


def theta_from_settings(settings: dict, default: Sequence[float]) -> tuple[float, ...]:
    """theta_0..theta_7 from ``taylor_theta_<i>`` keys of a settings mapping, ``default`` for the missing ones."""
    return check_theta(settings.get(name, d) if settings.get(name) is not None else d
                       for name, d in zip(THETA_NAMES, default))


def taylorglo_terms(x: torch.Tensor, y: torch.Tensor, theta: Sequence[float]) -> torch.Tensor:
    """T(x, y) of every entry (the bracket of Eq. 2; module docstring), the shape of ``x`` and ``y``."""
    t = check_theta(theta)
    u, v = y - t[1], x - t[0]
    return (t[2] * u + 0.5 * t[3] * u**2 + t[4] * u**3 / 6.0 + t[5] * v * u + 0.5 * t[6] * v * u**2
            + 0.5 * t[7] * v**2 * u)


def taylorglo(x: torch.Tensor, y: torch.Tensor, theta: Sequence[float]) -> torch.Tensor:
    """-mean of T over every entry: Eq. 2's f per item (last axis = the n entries), averaged over items."""
    return -taylorglo_terms(x, y, theta).mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, theta: Sequence[float]) -> torch.Tensor:
    """Eq. 2 of ``logits`` (B, n) against integer ``labels`` (B,): one-hot x, softmax y, batch mean."""
    import torch

    y = torch.softmax(logits, dim=-1)
    x = torch.nn.functional.one_hot(labels, logits.shape[-1]).to(y.dtype)
    return taylorglo(x, y, theta)


def regression_loss(prediction: torch.Tensor, target: torch.Tensor, theta: Sequence[float],
                    scale: float = 1.0) -> torch.Tensor:
    """``s^2 f(target / s, prediction / s)`` over every component (module docstring); s = ``scale`` > 0."""
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"the TaylorGLO unit must be > 0, got {s}")
    return s * s * taylorglo(target / s, prediction / s, theta)


def check_theta_search(config: dict, family_key: str, family: str = "taylorglo", barron: Sequence[str] = ()) -> None:
    """Refuse a search whose candidates would not feel what it searches (ConfigError naming the field).

    A search that sets ``taylor_theta_<i>`` must train its candidates with ``training.<family_key>: <family>``
    (the run's ``training`` overridden by the search's ``training``), and one that sets a parameter of another
    family (``barron``: e.g. a robust loss's shape) must not.
    """
    from balancebench.config import ConfigError

    training = config.get("training") or {}
    for name, spec in ((config.get("balancing") or {}).get("searches") or {}).items():
        chosen = {**training, **(spec.get("training") or {})}.get(family_key)
        grid = spec.get("kind") == "grid"
        params = [spec.get("parameter")] if grid else list(spec.get("space") or {})
        theta = [p for p in params if p in THETA_NAMES]
        other = [p for p in params if p in barron]
        if theta and chosen != family:
            where = "parameter" if grid else f"space.{theta[0]}"
            raise ConfigError(f"config error at balancing.searches.{name}.{where}: {theta[0]} is a TaylorGLO "
                              f"coefficient but the candidates train with {family_key}: {chosen!r} (set "
                              f"balancing.searches.{name}.training.{family_key}: {family})")
        if other and chosen == family:
            where = "parameter" if grid else f"space.{other[0]}"
            raise ConfigError(f"config error at balancing.searches.{name}.{where}: {other[0]} has no effect with "
                              f"{family_key}: {family}")
