import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture()
def demo_config() -> dict:
    with open(REPO / "config" / "config.yaml") as fh:
        return copy.deepcopy(yaml.safe_load(fh))


def lennard_jones_bead_dataset(n_frames=48, n_side=3, spacing=5.6, seed=0):
    """A small CG-like dataset with a known answer: a Lennard-Jones bead liquid (benzene-like sigma, epsilon)
    sampled by ASE Langevin dynamics; forces (kcal/mol/A) and energies (kcal/mol) are the exact LJ ones."""
    import numpy as np
    from ase import Atoms, units
    from ase.calculators.lj import LennardJones
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from balancebench.cg import CGDataset, split_frames
    from balancebench.simulation import EV_PER_KCAL_MOL

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
        dyn.run(25)
        pos.append(atoms.get_positions().copy())
        frc.append(atoms.get_forces() / EV_PER_KCAL_MOL)
        ene.append(atoms.get_potential_energy() / EV_PER_KCAL_MOL)
    n = len(grid)
    return CGDataset(np.array(pos), np.array(frc), np.array(ene), np.full((n_frames, 3), box),
                     np.full(n, 78.114), np.arange(n_frames) * 0.1, split_frames(n_frames, 0.1, 0.15, seed))


@pytest.fixture(scope="session")
def lj_dataset():
    return lennard_jones_bead_dataset()
