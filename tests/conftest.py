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
    sampled by ASE Langevin dynamics; forces (kcal/mol/A) and energies (kcal/mol) are the exact LJ ones
    (the library's meta-training problem, balancebench.tasks.cg_benzene.l2o_family.lj_bead_dataset)."""
    from balancebench.tasks.cg_benzene.l2o_family import lj_bead_dataset

    return lj_bead_dataset(n_frames=n_frames, n_side=n_side, spacing=spacing, seed=seed)


@pytest.fixture(scope="session")
def lj_dataset():
    return lennard_jones_bead_dataset()
