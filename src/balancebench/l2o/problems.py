"""Meta-training problems of the learned optimizer: cheap, related two-objective problems.

Every problem is a batch of optimisees seen by the coordinate-wise optimizer as one
parameter vector theta (P,), with k objectives. :meth:`Problem.evaluate` returns

* ``meta``: the differentiable normalised total sum_i f_i(theta) / f_i^ref (mean over the
  batch), the quantity whose sum over an unroll is the meta-loss (and whose final value
  is the "final loss" of the held-out comparison),
* ``grads``: the detached per-objective gradients (k, P) fed to the optimizer,
* ``per_problem``: (B,) normalised totals, detached (for evaluation).

Families (config ``l2o.meta.families``):

``quadratic``
    f_i(x) = s_i / 2 sum_j a_ij (x_j - c_ij)^2 for i = 1, 2 (diagonal convex quadratics),
    curvatures a_ij log-uniform in ``curvature``, objective scales s_i log-uniform in
    ``scale`` (the imbalance of two losses in miniature), centres c_i ~ N(0, 1), start
    x_0 ~ N(0, ``start_spread``^2). Pareto set known in closed form (:meth:`QuadraticBatch.pareto_point`):
    x_j(lam) = (lam s_1 a_1j c_1j + (1 - lam) s_2 a_2j c_2j) / (lam s_1 a_1j + (1 - lam) s_2 a_2j).
    f_i^ref = f_i(x_0). Optional gradient noise (relative, Gaussian) makes it stochastic.
``task`` (:mod:`balancebench.l2o.task_family`)
    short trainings of the run's own task: its model on a subset of its training split, its named losses
    (issue 25: meta-trained where it is used).
``lj_schnet`` (the task cg_benzene's family, :mod:`balancebench.tasks.cg_benzene.l2o_family`)
    a small model of the task fitted to a Lennard-Jones bead liquid, its two losses of seed 000's Eq. 2 on a
    random mini-batch per step; a fresh initialisation per episode. A task's family registers itself
    (:func:`register_family`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from balancebench.settings import settings_from_section

__all__ = [
    "FAMILIES",
    "QuadraticBatch",
    "QuadraticFamily",
    "family_from_dict",
    "register_family",
]


def unflatten(theta: torch.Tensor, names, shapes) -> dict:
    """{name: view of theta} for parameters ``names`` of ``shapes`` laid out in order in the flat ``theta``."""
    out, o = {}, 0
    for name, shape in zip(names, shapes):
        n = math.prod(shape)
        out[name] = theta[o:o + n].view(shape)
        o += n
    return out


def _log_uniform(gen: torch.Generator, lo: float, hi: float, shape, dtype) -> torch.Tensor:
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))).to(dtype)


def _pair(v, name: str) -> tuple[float, float]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and 0 < float(v[0]) <= float(v[1])):
        raise ValueError(f"l2o.meta.families.{name} must be [low, high] with 0 < low <= high, got {v!r}")
    return float(v[0]), float(v[1])


class _FamilyBase:
    name = ""

    @classmethod
    def from_dict(cls, d: dict):
        return settings_from_section(cls, d, f"l2o meta-training family {cls.name!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QuadraticFamily(_FamilyBase):
    """Batches of diagonal convex two-objective quadratics (module docstring)."""

    name = "quadratic"
    dim: int = 10
    batch: int = 16
    curvature: tuple = (0.1, 10.0)
    scale: tuple = (0.01, 100.0)
    start_spread: float = 2.0
    noise: float = 0.0  # relative std of the gradient noise
    lr: float = 0.05  # learning rate of the learned update on this family (units of x)
    weight: float = 1.0  # relative frequency among the families

    def __post_init__(self) -> None:
        self.curvature = _pair(self.curvature, "quadratic.curvature")
        self.scale = _pair(self.scale, "quadratic.scale")
        if self.dim < 1 or self.batch < 1:
            raise ValueError("l2o.meta.families.quadratic.dim and .batch must be >= 1")
        if self.noise < 0 or not self.lr > 0 or not self.weight >= 0:
            raise ValueError("l2o.meta.families.quadratic: noise >= 0, lr > 0, weight >= 0 required")

    def sample(self, gen: torch.Generator, dtype=torch.float64) -> QuadraticBatch:
        b, n, k = self.batch, self.dim, 2
        a = _log_uniform(gen, *self.curvature, (b, k, n), dtype)
        s = _log_uniform(gen, *self.scale, (b, k), dtype)
        c = torch.randn((b, k, n), generator=gen, dtype=torch.float64).to(dtype)
        x0 = (self.start_spread * torch.randn((b, n), generator=gen, dtype=torch.float64)).to(dtype)
        return QuadraticBatch(a, s, c, x0, self.noise, self.lr, gen)


class QuadraticBatch:
    """B two-objective diagonal quadratics; theta is x (B, n) flattened."""

    n_objectives = 2

    def __init__(self, a, s, c, x0, noise: float, lr: float, gen: torch.Generator | None = None):
        self.a, self.s, self.c, self.x0 = a, s, c, x0
        self.noise, self.lr, self.gen = float(noise), float(lr), gen
        self.ref = self._values(x0).detach()  # (B, k)

    @property
    def batch(self) -> int:
        return self.a.shape[0]

    def start(self) -> torch.Tensor:
        return self.x0.reshape(-1).clone()

    def smoothness(self) -> torch.Tensor:
        """L (B,): the largest curvature over both objectives (Lipschitz constant of every gradient)."""
        return (self.s[:, :, None] * self.a).amax(dim=(1, 2))

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        diff = x[:, None, :] - self.c
        return 0.5 * self.s * (self.a * diff * diff).sum(-1)  # (B, k)

    def gradients(self, theta: torch.Tensor) -> torch.Tensor:
        """(k, P) exact gradients (plus relative noise if the family has some), detached."""
        x = theta.detach().reshape(self.batch, -1)
        g = self.s[:, :, None] * self.a * (x[:, None, :] - self.c)  # (B, k, n)
        if self.noise > 0:
            z = torch.randn(g.shape, generator=self.gen, dtype=torch.float64).to(g.dtype)
            g = g * (1.0 + self.noise * z)
        return g.permute(1, 0, 2).reshape(self.n_objectives, -1)

    def evaluate(self, theta: torch.Tensor):
        f = self._values(theta.reshape(self.batch, -1)) / self.ref
        per = f.sum(-1)
        return per.mean(), self.gradients(theta), per.detach()

    def per_problem_grads(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, k, n) exact gradients, detached."""
        x = theta.detach().reshape(self.batch, -1)
        return self.s[:, :, None] * self.a * (x[:, None, :] - self.c)

    def pareto_point(self, lam: float) -> torch.Tensor:
        """The Pareto-optimal x (B, n) minimising lam f_1 + (1 - lam) f_2."""
        w1, w2 = lam * self.s[:, 0, None] * self.a[:, 0], (1 - lam) * self.s[:, 1, None] * self.a[:, 1]
        return (w1 * self.c[:, 0] + w2 * self.c[:, 1]) / (w1 + w2)


# families that belong to a task live in its folder and register here on import (module path by name)
_TASK_FAMILIES = {"lj_schnet": "balancebench.tasks.cg_benzene.l2o_family", "task": "balancebench.l2o.task_family"}
FAMILIES: dict = {"quadratic": QuadraticFamily}


def register_family(cls):
    """Class decorator: a meta-training family (``cls.name``) that ``family_from_dict`` can build."""
    FAMILIES[cls.name] = cls
    return cls


def family_from_dict(name: str, d: dict):
    """Build a family by name (``quadratic`` | ``lj_schnet`` | ``task``) from its config dict."""
    if name not in FAMILIES and name in _TASK_FAMILIES:
        import importlib

        importlib.import_module(_TASK_FAMILIES[name])
    if name not in FAMILIES:
        raise ValueError(f"unknown l2o meta-training family {name!r}; available: {sorted(set(FAMILIES) | set(_TASK_FAMILIES))}")
    return FAMILIES[name].from_dict(dict(d or {}))
