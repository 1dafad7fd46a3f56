"""Random liquid start configurations written as LAMMPS data files (atom_style full)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from balancebench.atomistic import forcefield as ff
from balancebench.config import box_length


@dataclass
class System:
    """An all-atom benzene system: positions (A), types, charges, molecule ids (1-based), box edge (A)."""

    positions: np.ndarray  # (n_atoms, 3), wrapped into [0, L)
    types: np.ndarray  # (n_atoms,) 1 = CA, 2 = HA
    molecule_ids: np.ndarray  # (n_atoms,)
    box: float

    @property
    def n_molecules(self) -> int:
        return int(self.molecule_ids.max())

    @property
    def charges(self) -> np.ndarray:
        return ff.atom_charges(self.types)

    @property
    def masses(self) -> np.ndarray:
        return ff.atom_masses(self.types)


def build_benzene_box(n_molecules: int, density: float, seed: int, min_distance: float = 2.2,
                      max_attempts: int = 200) -> System:
    """Place ``n_molecules`` rigid OPLS benzenes on a jittered cubic lattice with uniformly random orientations.

    The box edge follows from ``density`` (g/cm^3). A molecule's orientation is
    redrawn until no atom comes closer than ``min_distance`` A (minimum image) to
    any atom already placed; RuntimeError if that fails (density too high).
    """
    rng = np.random.default_rng(seed)
    box = box_length(n_molecules, density, ff.molecule_mass())
    template, template_types = ff.benzene_geometry()
    per_side = int(np.ceil(n_molecules ** (1.0 / 3.0)))
    spacing = box / per_side
    sites = np.array([(i, j, k) for i in range(per_side) for j in range(per_side) for k in range(per_side)], float)
    sites = (sites[rng.permutation(len(sites))[:n_molecules]] + 0.5) * spacing

    placed = np.empty((0, 3))
    for site in sites:
        for _ in range(max_attempts):
            rotation = Rotation.random(random_state=rng)
            jitter = rng.uniform(-0.1, 0.1, 3) * spacing
            atoms = np.mod(rotation.apply(template) + site + jitter, box)
            if len(placed) == 0:
                break
            tree = cKDTree(placed, boxsize=box)
            if np.all(tree.query(atoms, k=1)[0] >= min_distance):
                break
        else:
            raise RuntimeError(
                f"could not place {n_molecules} benzene molecules at {density} g/cm^3 without overlap "
                f"(min distance {min_distance} A); lower atomistic.start_density"
            )
        placed = np.concatenate([placed, atoms])
    # tiny safety margin: cKDTree's periodic box needs coordinates strictly below box
    placed = np.where(placed >= box, placed - box, placed)
    types = np.tile(template_types, n_molecules)
    molecule_ids = np.repeat(np.arange(1, n_molecules + 1), len(template_types))
    return System(placed, types, molecule_ids, box)


def write_lammps_data(system: System, path: str | Path, title: str = "OPLS-AA benzene") -> Path:
    """Write ``system`` as a LAMMPS data file (atom_style full) with every force-field coefficient."""
    path = Path(path)
    topo = ff.benzene_topology()
    n_atoms_mol = 12
    lines = [f"{title}\n"]
    n_mol = system.n_molecules
    counts = {k: len(v) * n_mol for k, v in topo.items()}
    lines += [
        f"{len(system.types)} atoms",
        f"{counts['bonds']} bonds",
        f"{counts['angles']} angles",
        f"{counts['dihedrals']} dihedrals",
        f"{counts['impropers']} impropers",
        "",
        "2 atom types", "2 bond types", "2 angle types", "1 dihedral types", "1 improper types",
        "",
        f"0.0 {system.box:.10f} xlo xhi",
        f"0.0 {system.box:.10f} ylo yhi",
        f"0.0 {system.box:.10f} zlo zhi",
        "",
        "Masses", "",
        *(f"{i + 1} {t.mass}  # {t.name} {t.opls}" for i, t in enumerate(ff.ATOM_TYPES)),
        "",
        "Pair Coeffs # lj/cut/coul/long", "",
        *(f"{i + 1} {t.epsilon} {t.sigma}  # {t.name}" for i, t in enumerate(ff.ATOM_TYPES)),
        "",
        "Bond Coeffs # harmonic", "",
        f"1 {ff.BOND_CC[0]} {ff.BOND_CC[1]}  # CA-CA",
        f"2 {ff.BOND_CH[0]} {ff.BOND_CH[1]}  # CA-HA",
        "",
        "Angle Coeffs # harmonic", "",
        f"1 {ff.ANGLE_CCC[0]} {ff.ANGLE_CCC[1]}  # CA-CA-CA",
        f"2 {ff.ANGLE_CCH[0]} {ff.ANGLE_CCH[1]}  # CA-CA-HA",
        "",
        "Dihedral Coeffs # opls", "",
        "1 " + " ".join(str(k) for k in ff.DIHEDRAL_XCCX) + "  # X-CA-CA-X",
        "",
        "Improper Coeffs # cvff", "",
        "1 " + " ".join(str(k) for k in ff.IMPROPER_AROMATIC) + "  # aromatic planarity",
        "",
        "Atoms # full", "",
    ]
    q = system.charges
    for a in range(len(system.types)):
        x, y, z = system.positions[a]
        lines.append(f"{a + 1} {system.molecule_ids[a]} {system.types[a]} {q[a]:.4f} {x:.8f} {y:.8f} {z:.8f} 0 0 0")
    for section, key in (("Bonds", "bonds"), ("Angles", "angles"), ("Dihedrals", "dihedrals"), ("Impropers", "impropers")):
        lines += ["", section, ""]
        idx = 1
        for m in range(n_mol):
            offset = m * n_atoms_mol + 1
            for entry in topo[key]:
                atoms = " ".join(str(offset + a) for a in entry[1:])
                lines.append(f"{idx} {entry[0]} {atoms}")
                idx += 1
    path.write_text("\n".join(lines) + "\n")
    return path
