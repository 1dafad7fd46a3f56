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
    ``scale`` (the force/energy imbalance in miniature), centres c_i ~ N(0, 1), start
    x_0 ~ N(0, ``start_spread``^2). Pareto set known in closed form (:meth:`QuadraticBatch.pareto_point`):
    x_j(lam) = (lam s_1 a_1j c_1j + (1 - lam) s_2 a_2j c_2j) / (lam s_1 a_1j + (1 - lam) s_2 a_2j).
    f_i^ref = f_i(x_0). Optional gradient noise (relative, Gaussian) makes it stochastic.
``lj_schnet``
    a small :class:`~balancebench.tasks.cg_benzene.model.CGSchNet` fitted to a Lennard-Jones bead liquid
    (:func:`lj_bead_dataset`, benzene-like sigma and epsilon): objectives the force MSE and the
    squared energy error of Eq. 2 of seed 000 on a random mini-batch of frames per step,
    f^ref = the target variances (the trainer's criterion); a fresh initialisation per episode.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from balancebench.settings import settings_from_section

__all__ = [
    "LJSchNetFamily",
    "QuadraticBatch",
    "QuadraticFamily",
    "SchNetProblem",
    "family_from_dict",
    "lj_bead_dataset",
]


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


# --------------------------------------------------------------------------------------
# Lennard-Jones bead liquid + small SchNet
# --------------------------------------------------------------------------------------


def lj_bead_dataset(n_frames: int = 24, n_side: int = 3, spacing: float = 5.6, seed: int = 0,
                    interval: int = 25):
    """A Lennard-Jones bead liquid (sigma 5 A, epsilon 0.6 kcal/mol, 78.114 amu, 340 K) sampled by ASE Langevin.

    Forces (kcal/mol/A) and energies (kcal/mol) are exact LJ ones, so they are learnable by
    a CG SchNet (the tests' Lennard-Jones dataset, tests/conftest.py, is this one). Returns a
    :class:`~balancebench.tasks.cg_benzene.cg.CGDataset` whose ``train`` split holds about 75 % of the frames (test 10 %, validation 15 %).
    """
    from ase import Atoms, units
    from ase.calculators.lj import LennardJones
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from balancebench.tasks.cg_benzene.cg import CGDataset, split_frames
    from balancebench.tasks.cg_benzene.simulation import EV_PER_KCAL_MOL

    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(n_side) for j in range(n_side) for k in range(n_side)], float)
    box = n_side * spacing
    atoms = Atoms(f"X{len(grid)}", positions=grid * spacing + rng.normal(scale=0.1, size=grid.shape),
                  cell=[box] * 3, pbc=True)
    atoms.set_masses(np.full(len(grid), 78.114))
    atoms.calc = LennardJones(sigma=5.0, epsilon=0.6 * EV_PER_KCAL_MOL, rc=7.5, smooth=True)
    MaxwellBoltzmannDistribution(atoms, temperature_K=340.0, rng=rng)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=340.0, friction=0.01, rng=rng, fixcm=False)
    dyn.run(100)
    pos, frc, ene = [], [], []
    for _ in range(n_frames):
        dyn.run(interval)
        pos.append(atoms.get_positions().copy())
        frc.append(atoms.get_forces() / EV_PER_KCAL_MOL)
        ene.append(atoms.get_potential_energy() / EV_PER_KCAL_MOL)
    n = len(grid)
    return CGDataset(np.array(pos), np.array(frc), np.array(ene), np.full((n_frames, 3), box),
                     np.full(n, 78.114), np.arange(n_frames) * 0.05, split_frames(n_frames, 0.1, 0.15, seed))


@dataclass
class LJSchNetFamily(_FamilyBase):
    """A small SchNet on a Lennard-Jones bead liquid (module docstring)."""

    name = "lj_schnet"
    n_frames: int = 24
    batch_frames: int = 2
    hidden_channels: int = 8
    num_filters: int = 8
    num_interactions: int = 1
    num_gaussians: int = 12
    cutoff: float = 7.5
    lr: float = 1.0e-3  # learning rate of the learned update on this family (units of the weights)
    weight: float = 0.0
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_frames < 2 or self.batch_frames < 1 or not self.lr > 0 or not self.weight >= 0:
            raise ValueError("l2o.meta.families.lj_schnet: n_frames >= 2, batch_frames >= 1, lr > 0, weight >= 0")
        self._frames = None

    def frames(self):
        """The training frames of the LJ liquid (generated once, deterministic from data_seed)."""
        if self._frames is None:
            from balancebench.training import FrameSet

            data = lj_bead_dataset(n_frames=self.n_frames, seed=self.data_seed)
            self._frames = FrameSet(data, data.split["train"], self.cutoff, torch.device("cpu"), torch.float32)
        return self._frames

    def sample(self, gen: torch.Generator, dtype=torch.float32) -> SchNetProblem:
        from balancebench.tasks.cg_benzene.model import ModelConfig

        cfg = ModelConfig(hidden_channels=self.hidden_channels, num_filters=self.num_filters,
                          num_interactions=self.num_interactions, num_gaussians=self.num_gaussians,
                          cutoff=self.cutoff)
        return SchNetProblem(self.frames(), cfg, self.batch_frames, self.lr, gen)


class SchNetProblem:
    """One small CGSchNet as a two-objective problem (force MSE, squared energy error) over its flat weights."""

    n_objectives = 2
    batch = 1

    def __init__(self, frames, config, batch_frames: int, lr: float, gen: torch.Generator):
        from balancebench.tasks.cg_benzene.model import CGSchNet
        from balancebench.training import fit_energy_scale

        self.frames, self.batch_frames, self.lr, self.gen = frames, int(batch_frames), float(lr), gen
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = CGSchNet(config)
        self.model.set_energy_scale(*fit_energy_scale(self.model, frames))
        self.names = [n for n, p in self.model.named_parameters()]
        self.shapes = [p.shape for p in self.model.parameters()]
        self.theta0 = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        self.var = torch.tensor([float(torch.var(frames.forces.double())), float(torch.var(frames.energy.double()))])

    def start(self) -> torch.Tensor:
        return self.theta0.clone()

    def _params(self, theta):
        out, o = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = math.prod(shape)
            out[name] = theta[o:o + n].view(shape)
            o += n
        return out

    def losses(self, theta: torch.Tensor) -> torch.Tensor:
        """[L_F, L_E] (raw, differentiable w.r.t. theta) on a random mini-batch of frames."""
        from torch.func import functional_call

        from balancebench.training import loss_components

        idx = torch.randperm(len(self.frames), generator=self.gen)[: self.batch_frames].tolist()
        graph, f_ref, e_ref = self.frames.batch(idx)

        class _Wrap(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, g):
                out = loss_components(self.m, g, f_ref, e_ref, "total", self.m_n, training=True)
                return torch.stack([out["force"], out["energy"]]) if isinstance(out, dict) else out

        wrap = _Wrap(self.model)
        wrap.m_n = self.frames.n_beads
        return functional_call(wrap, {f"m.{k}": v for k, v in self._params(theta).items()}, (graph,))

    def evaluate(self, theta: torch.Tensor):
        if not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        losses = self.losses(theta)
        grads = []
        for i in range(2):
            (g,) = torch.autograd.grad(losses[i], theta, retain_graph=True, allow_unused=True)
            grads.append(torch.zeros_like(theta) if g is None else g)
        norm = losses / self.var.to(losses.dtype)
        return norm.sum(), torch.stack(grads).detach(), norm.sum().detach().reshape(1)


def family_from_dict(name: str, d: dict):
    """Build a family by name (``quadratic`` | ``lj_schnet``) from its config dict."""
    table = {"quadratic": QuadraticFamily, "lj_schnet": LJSchNetFamily}
    if name not in table:
        raise ValueError(f"unknown l2o meta-training family {name!r}; available: {sorted(table)}")
    return table[name].from_dict(dict(d or {}))
