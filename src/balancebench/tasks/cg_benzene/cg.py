"""Coarse-grained mapping: one bead per molecule (seed 000 Sec. 2.1).

The bead sits at the molecule's centre of mass (78.114 g/mol for benzene) and
feels the mapped force M(F^A) = sum of the molecule's atomic forces (the
force-matching map of Noid et al., J. Chem. Phys. 128, 244114 (2008) for a
centre-of-mass mapping); its training energy is the frame's intermolecular
energy U_A. Both per-molecule quantities are computed inside LAMMPS
(``compute com/chunk`` / ``reduce/chunk``) and stored in the atomistic H5MD
file, so mapping is a cheap read.

CG dataset (``results/cg/dataset.h5``), all float64, units as attributes::

    positions  (F, N, 3)  A, unwrapped bead positions
    forces     (F, N, 3)  kcal/mol/A, mapped forces
    energy     (F,)       kcal/mol, U_A
    box        (F, 3)     A, orthorhombic edges
    masses     (N,)       g/mol
    time       (F,)       ps
    split/{train,validation,test}   frame indices, disjoint, seeded
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np

from balancebench.fileio import open_h5


@dataclass
class CGDataset:
    task: ClassVar[str] = "cg_benzene"  # the task that reads it (balancebench.tasks)
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    box: np.ndarray
    masses: np.ndarray
    time: np.ndarray
    split: dict[str, np.ndarray]

    @property
    def n_frames(self) -> int:
        return len(self.energy)

    @property
    def n_beads(self) -> int:
        return self.positions.shape[1]

    def subset(self, name: str) -> "CGDataset":
        idx = self.split[name]
        return CGDataset(self.positions[idx], self.forces[idx], self.energy[idx], self.box[idx], self.masses,
                         self.time[idx], {name: np.arange(len(idx))})


def split_frames(n_frames: int, test_fraction: float, validation_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Random disjoint train / validation / test frame indices (seed 000: 9000 / 1000 of 10000, random).

    ``validation_fraction`` is taken out of the training frames and drives early
    stopping, so the test frames are never seen during training.
    """
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise ValueError("fractions must lie in (0, 1)")
    order = np.random.default_rng(seed).permutation(n_frames)
    n_test = max(1, int(round(test_fraction * n_frames)))
    n_val = int(round(validation_fraction * (n_frames - n_test)))
    if validation_fraction > 0:
        n_val = max(1, n_val)
    if n_frames - n_test - n_val < 1:
        raise ValueError(f"{n_frames} frames leave no training frame after the split")
    return {
        "test": np.sort(order[:n_test]),
        "validation": np.sort(order[n_test:n_test + n_val]),
        "train": np.sort(order[n_test + n_val:]),
    }


def map_trajectory(trajectory: str | Path, stride: int = 1) -> CGDataset:
    """Read the per-molecule data of an atomistic H5MD trajectory (every ``stride``-th frame)."""
    with open_h5(trajectory) as fh:
        mol = fh["particles/molecules"]
        positions = mol["position/value"][::stride]
        forces = mol["force/value"][::stride]
        box = mol["box/edges/value"][::stride]
        masses = mol["mass"][()]
        time = mol["position/time"][::stride]
        energy = fh["observables/U_A/value"][::stride]
    return CGDataset(positions.astype(np.float64), forces.astype(np.float64), energy.astype(np.float64),
                     box.astype(np.float64), masses.astype(np.float64), time, {})


def write_dataset(dataset: CGDataset, path: str | Path, provenance: str = "{}") -> None:
    units = {"positions": "angstrom", "forces": "kcal mol-1 angstrom-1", "energy": "kcal mol-1",
             "box": "angstrom", "masses": "g mol-1", "time": "ps"}
    with h5py.File(path, "w") as fh:
        for name, unit in units.items():
            ds = fh.create_dataset(name, data=getattr(dataset, name),
                                   **({"compression": "gzip", "compression_opts": 4} if name in ("positions", "forces") else {}))
            ds.attrs["unit"] = unit
        for name, idx in dataset.split.items():
            fh.create_dataset(f"split/{name}", data=np.asarray(idx, dtype=np.int64))
        fh.attrs["provenance"] = provenance
        fh.attrs["mapping"] = "one bead per molecule at its centre of mass; force = sum of atomic forces"


def read_dataset(path: str | Path) -> CGDataset:
    with open_h5(path) as fh:
        arrays = {k: fh[k][()] for k in ("positions", "forces", "energy", "box", "masses", "time")}
        split = {k: fh[f"split/{k}"][()] for k in fh["split"]} if "split" in fh else {}
    return CGDataset(**arrays, split=split)


def mapping_summary(dataset: CGDataset) -> dict:
    """Checks a user should see: bead-force scale, net force per frame (should be ~0), energy statistics."""
    net = np.abs(dataset.forces.sum(axis=1)).max()
    rms = float(np.sqrt(np.mean(dataset.forces**2)))
    return {
        "frames": dataset.n_frames,
        "beads": dataset.n_beads,
        "rms_bead_force": rms,
        "max_net_force_per_frame": float(net),
        "mean_energy": float(dataset.energy.mean()),
        "std_energy": float(dataset.energy.std()),
        "mean_energy_per_bead": float(dataset.energy.mean() / dataset.n_beads),
        **{f"n_{k}": int(len(v)) for k, v in dataset.split.items()},
    }
