"""OPLS-AA all-atom benzene in LAMMPS ``real`` units (kcal/mol, A, fs, e).

Sources (every constant below):
- Non-bonded (CA = opls_145, HA = opls_146): W. L. Jorgensen, D. L. Severance,
  J. Am. Chem. Soc. 112, 4768 (1990); W. L. Jorgensen, D. S. Maxwell,
  J. Tirado-Rives, J. Am. Chem. Soc. 118, 11225 (1996). Identical numbers in
  GROMACS ``share/top/oplsaa.ff/ffnonbonded.itp``.
- Bonded (CA-CA, CA-HA bonds; CA-CA-CA, CA-CA-HA angles; X-CA-CA-X torsion;
  aromatic improper): Jorgensen et al. 1996 and GROMACS ``oplsaa.ff/ffbonded.itp``,
  converted to LAMMPS conventions (harmonic K includes the 1/2: K_lammps = k_gmx / 2).
- Combination rules: geometric for both sigma and epsilon; 1-4 pairs scaled by 0.5.

With rigid molecules (the only constraint scheme offered) the bonded terms and
the intramolecular non-bonded pairs are constants; they are kept so that the
data file is a complete OPLS-AA topology.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Coulomb constant of LAMMPS ``real`` units, kcal A / (mol e^2).
QQR2E_REAL = 332.06371


@dataclass(frozen=True)
class AtomType:
    name: str
    opls: str
    mass: float  # g/mol
    charge: float  # e
    sigma: float  # A
    epsilon: float  # kcal/mol


CA = AtomType("CA", "opls_145", 12.011, -0.115, 3.55, 0.070)
HA = AtomType("HA", "opls_146", 1.008, 0.115, 2.42, 0.030)
ATOM_TYPES = (CA, HA)  # LAMMPS types 1, 2

#: harmonic bonds: (K kcal/mol/A^2, r0 A), E = K (r - r0)^2
BOND_CC = (469.0, 1.40)
BOND_CH = (367.0, 1.08)
#: harmonic angles: (K kcal/mol/rad^2, theta0 deg)
ANGLE_CCC = (63.0, 120.0)
ANGLE_CCH = (35.0, 120.0)
#: dihedral_style opls: K1 K2 K3 K4 (kcal/mol), X-CA-CA-X
DIHEDRAL_XCCX = (0.0, 7.25, 0.0, 0.0)
#: improper_style cvff: K (kcal/mol), d, n; E = K [1 + d cos(n phi)] keeps the ring planar
IMPROPER_AROMATIC = (1.1, -1, 2)

#: special_bonds lj/coul: 1-2, 1-3 excluded, 1-4 halved
SPECIAL_BONDS = (0.0, 0.0, 0.5)

C_C_BOND = BOND_CC[1]
C_H_BOND = BOND_CH[1]


def benzene_geometry() -> tuple[np.ndarray, np.ndarray]:
    """Ideal D6h benzene: (12, 3) coordinates (A) centred on the centre of mass, and type indices (1 = CA, 2 = HA).

    Atoms 0-5 are carbons around the ring, atom 6 + i is the hydrogen on carbon i.
    """
    angles = np.arange(6) * np.pi / 3.0
    ring = np.stack([np.cos(angles), np.sin(angles), np.zeros(6)], axis=1)
    carbons = C_C_BOND * ring  # a regular hexagon's radius equals its side
    hydrogens = (C_C_BOND + C_H_BOND) * ring
    coords = np.concatenate([carbons, hydrogens])
    types = np.array([1] * 6 + [2] * 6)
    return coords, types


def molecule_mass() -> float:
    return 6 * (CA.mass + HA.mass)


def atom_charges(types: np.ndarray) -> np.ndarray:
    return np.where(types == 1, CA.charge, HA.charge)


def atom_masses(types: np.ndarray) -> np.ndarray:
    return np.where(types == 1, CA.mass, HA.mass)


def benzene_topology() -> dict[str, list[tuple]]:
    """Bonds, angles, dihedrals, impropers of one molecule as (type, atom indices...) with 0-based indices."""
    ring_next = [(i + 1) % 6 for i in range(6)]
    ring_prev = [(i - 1) % 6 for i in range(6)]
    bonds = [(1, i, ring_next[i]) for i in range(6)] + [(2, i, 6 + i) for i in range(6)]
    neighbours = {i: {ring_next[i], ring_prev[i], 6 + i} for i in range(6)}
    for i in range(6):
        neighbours[6 + i] = {i}
    angles = []
    for c in range(6):
        angles.append((1, ring_prev[c], c, ring_next[c]))
        angles.append((2, ring_prev[c], c, 6 + c))
        angles.append((2, ring_next[c], c, 6 + c))
    dihedrals = []
    for j in range(6):
        k = ring_next[j]
        for i in sorted(neighbours[j] - {k}):
            for l in sorted(neighbours[k] - {j}):
                dihedrals.append((1, i, j, k, l))
    impropers = [(1, 6 + c, ring_prev[c], c, ring_next[c]) for c in range(6)]
    return {"bonds": bonds, "angles": angles, "dihedrals": dihedrals, "impropers": impropers}


def intramolecular_erf_energy(g_ewald: float, coords: np.ndarray | None = None, types: np.ndarray | None = None,
                              qqr2e: float = QQR2E_REAL) -> float:
    """Intramolecular smooth Ewald term of one molecule, kcal/mol: sum_{i<j in molecule} qqr2e q_i q_j erf(alpha r_ij) / r_ij.

    The reciprocal-space Ewald/PPPM energy (minus self energy) contains this sum
    for every molecule. When intramolecular pairs are excluded from the real-space
    neighbour list (``neigh_modify exclude molecule/intra``) nothing cancels it,
    so the intermolecular energy is U_A = evdwl + ecoul + elong - N_mol * this.
    Constant for rigid molecules.
    """
    from scipy.special import erf

    if coords is None or types is None:
        coords, types = benzene_geometry()
    q = atom_charges(types)
    i, j = np.triu_indices(len(q), k=1)
    r = np.linalg.norm(coords[i] - coords[j], axis=1)
    return float(np.sum(qqr2e * q[i] * q[j] * erf(g_ewald * r) / r))
