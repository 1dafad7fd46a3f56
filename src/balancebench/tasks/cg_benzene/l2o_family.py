"""The ML2O meta-training family of the task cg_benzene: a small SchNet on a Lennard-Jones bead liquid, as a
two-objective problem (force MSE, squared energy error) over its flat weights (balancebench.l2o.problems)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from balancebench.l2o.problems import _FamilyBase, register_family, unflatten
from balancebench.tasks.cg_benzene.config_checks import BENZENE_MASS


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
    atoms.set_masses(np.full(len(grid), BENZENE_MASS))
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
                     np.full(n, BENZENE_MASS), np.arange(n_frames) * 0.05, split_frames(n_frames, 0.1, 0.15, seed))


@register_family
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
            from balancebench.tasks.cg_benzene.training_data import FrameSet

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
        from balancebench.tasks.cg_benzene.training_data import fit_energy_scale

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

    def _params(self, theta: torch.Tensor) -> dict:
        return unflatten(theta, self.names, self.shapes)

    def losses(self, theta: torch.Tensor) -> torch.Tensor:
        """[L_F, L_E] (raw, differentiable w.r.t. theta) on a random mini-batch of frames."""
        from torch.func import functional_call

        from balancebench.tasks.cg_benzene.training_data import loss_components

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


