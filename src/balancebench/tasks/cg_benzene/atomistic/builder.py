"""Random liquid start configurations written as LAMMPS data files (atom_style full)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from balancebench.tasks.cg_benzene.atomistic import forcefield as ff
from balancebench.tasks.cg_benzene.config_checks import box_length


@dataclass
class System:
    """An all-atom benzene system: positions (A), types, charges, molecule ids (1-based), box edge (A)."""

    positions: np.ndarray  # (n_atoms, 3), unwrapped: every molecule whole, centre of mass inside [0, L)
    types: np.ndarray  # (n_atoms,) 1 = CA, 2 = HA
    molecule_ids: np.ndarray  # (n_atoms,)
    box: float

    @property
    def n_molecules(self) -> int:
        return int(self.molecule_ids.max())

    def wrapped(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions wrapped into [0, L), integer image flags) with positions = wrapped + image * L."""
        image = np.floor(self.positions / self.box).astype(int)
        return self.positions - image * self.box, image

    @property
    def charges(self) -> np.ndarray:
        return ff.atom_charges(self.types)

    @property
    def masses(self) -> np.ndarray:
        return ff.atom_masses(self.types)


def build_benzene_box(n_molecules: int, density: float, seed: int, min_distance: float = 2.2,
                      max_attempts: int = 2000) -> System:
    """Random sequential insertion of rigid OPLS benzenes: uniform random centres and orientations.

    The box edge follows from ``density`` (g/cm^3). A molecule's position and
    orientation are redrawn until no atom comes closer than ``min_distance`` A
    (minimum image) to any atom already placed; RuntimeError if that fails
    ``max_attempts`` times (density too high for a random start).
    """
    rng = np.random.default_rng(seed)
    box = box_length(n_molecules, density, ff.molecule_mass())
    template, template_types = ff.benzene_geometry()
    placed = np.empty((0, 3))
    tree = None
    for m in range(n_molecules):
        for _ in range(max_attempts):
            rotation = Rotation.random(random_state=rng)
            atoms = rotation.apply(template) + rng.uniform(0.0, box, 3)
            wrapped = np.mod(atoms, box)
            wrapped = np.where(wrapped >= box, 0.0, wrapped)  # cKDTree needs coordinates strictly below box
            if tree is None or np.all(tree.query(wrapped, k=1)[0] >= min_distance):
                break
        else:
            raise RuntimeError(
                f"could not place molecule {m + 1} of {n_molecules} at {density} g/cm^3 without overlap "
                f"(min distance {min_distance} A); lower atomistic.start_density"
            )
        placed = np.concatenate([placed, atoms])
        wrapped_all = np.mod(placed, box)
        tree = cKDTree(np.where(wrapped_all >= box, 0.0, wrapped_all), boxsize=box)
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
    wrapped, image = system.wrapped()
    for a in range(len(system.types)):
        x, y, z = wrapped[a]
        ix, iy, iz = image[a]
        lines.append(f"{a + 1} {system.molecule_ids[a]} {system.types[a]} {q[a]:.4f} {x:.8f} {y:.8f} {z:.8f} "
                     f"{ix} {iy} {iz}")
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
