"""An independent numpy Ewald + Lennard-Jones intermolecular energy, the oracle for U_A.

Nothing here is shared with the LAMMPS driver: the sums are written out from the
textbook Ewald decomposition (Frenkel & Smit, Understanding Molecular Simulation,
Sec. 12.1) for a neutral, orthorhombic, periodic system:

    E_coul = E_real + E_recip - E_self, with
    E_real  = sum_{i<j, r<rc} qqr2e q_i q_j erfc(alpha r) / r
    E_recip = qqr2e (2 pi / V) sum_{k != 0} exp(-k^2 / 4 alpha^2) / k^2 |sum_j q_j exp(i k.r_j)|^2
    E_self  = qqr2e alpha / sqrt(pi) sum_j q_j^2
and the intermolecular part removes, for each molecule, its own pairs:
E_real over intermolecular pairs only, and sum_{i<j in mol} qqr2e q_i q_j erf(alpha r)/r from E_recip - E_self.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc

QQR2E = 332.06371


def intermolecular_energy(positions, charges, molecule_ids, types, sigma, epsilon, box, rc, alpha,
                          tail=True, k_tolerance=1e-16):
    x = np.asarray(positions, float)
    q = np.asarray(charges, float)
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    d = x[i] - x[j]
    d -= box * np.round(d / box)
    r = np.linalg.norm(d, axis=1)
    inter = molecule_ids[i] != molecule_ids[j]
    within = inter & (r < rc)
    # Lennard-Jones with geometric mixing
    s = np.sqrt(sigma[types[i]] * sigma[types[j]])
    e = np.sqrt(epsilon[types[i]] * epsilon[types[j]])
    sr6 = (s[within] / r[within]) ** 6
    e_lj = float(np.sum(4 * e[within] * (sr6 * sr6 - sr6)))
    if tail:
        volume = float(np.prod(box))
        counts = np.bincount(types)
        for a in range(len(counts)):
            for b in range(len(counts)):
                if counts[a] == 0 or counts[b] == 0:
                    continue
                sab, eab = np.sqrt(sigma[a] * sigma[b]), np.sqrt(epsilon[a] * epsilon[b])
                e_lj += (8 * np.pi / volume) * counts[a] * counts[b] * eab * sab**6 * (sab**6 - 3 * rc**6) / (9 * rc**9)
    # Ewald real space over intermolecular pairs
    e_real = float(np.sum(QQR2E * q[i[within]] * q[j[within]] * erfc(alpha * r[within]) / r[within]))
    # reciprocal space over all pairs and images
    kmax_norm = 2 * alpha * np.sqrt(-np.log(k_tolerance))
    nmax = np.ceil(kmax_norm * box / (2 * np.pi)).astype(int)
    grids = np.meshgrid(*(np.arange(-m, m + 1) for m in nmax), indexing="ij")
    nvec = np.stack([g.ravel() for g in grids], axis=1)
    nvec = nvec[np.any(nvec != 0, axis=1)]
    k = 2 * np.pi * nvec / box
    k2 = np.einsum("ij,ij->i", k, k)
    keep = k2 <= kmax_norm**2
    k, k2 = k[keep], k2[keep]
    e_recip = 0.0
    for start in range(0, len(k), 4096):
        kk = k[start:start + 4096]
        phase = kk @ x.T
        s_re = np.cos(phase) @ q
        s_im = np.sin(phase) @ q
        e_recip += float(np.sum(np.exp(-k2[start:start + 4096] / (4 * alpha**2)) / k2[start:start + 4096]
                                * (s_re**2 + s_im**2)))
    e_recip *= QQR2E * 2 * np.pi / float(np.prod(box))
    e_self = QQR2E * alpha / np.sqrt(np.pi) * float(np.sum(q * q))
    intra = ~inter
    e_intra = float(np.sum(QQR2E * q[i[intra]] * q[j[intra]] * erf(alpha * r[intra]) / r[intra]))
    return {"lj": e_lj, "coulomb": e_real + e_recip - e_self - e_intra, "total": e_lj + e_real + e_recip - e_self - e_intra}
