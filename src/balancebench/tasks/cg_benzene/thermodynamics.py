"""The thermodynamic metrics of a CG NVT run (seed 000 Sec. 2.3): Delta U, CV_U, mean T, CV_T and the canonical
CV_T target."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from balancebench.tasks.cg_benzene import observables as ob


def canonical_cv_t_target(n_beads: int) -> float:
    """CV_T of the canonical ensemble for N beads with the centre-of-mass momentum removed: sqrt(2 / (3N - 3)).

    The kinetic temperature T = 2K / (k_B f) with f = 3N - 3 degrees of freedom is a sum of f squared
    Gaussian momenta: Var(T) / <T>^2 = 2 / f.
    """
    if n_beads < 2:
        raise ValueError(f"CV_T target needs at least 2 beads, got {n_beads}")
    return math.sqrt(2.0 / (3.0 * n_beads - 3.0))


def production_mask(production: Iterable) -> np.ndarray:
    """Boolean mask of production rows from a bool / 0-1 / 'True'-'False' column."""
    values = pd.Series(list(production) if not isinstance(production, pd.Series) else production)
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float) != 0.0
    lowered = values.astype(str).str.strip().str.lower()
    if not lowered.isin(["true", "false", "1", "0", "1.0", "0.0"]).all():
        raise ValueError(f"unreadable production flags: {sorted(set(lowered))[:5]}")
    return lowered.isin(["true", "1", "1.0"]).to_numpy(dtype=bool)


def delta_u(u_cg: np.ndarray, n_cg: int, u_ref_per_molecule: float) -> float:
    """Delta U (%) = 100 |<U_CG>/N_CG - u_ref| / |u_ref|: production CG energies (kcal/mol, whole system)
    against the atomistic mean U_A per molecule; per-molecule means make different system sizes comparable."""
    u = _finite_series(u_cg, "potential energy")
    if u_ref_per_molecule == 0 or not np.isfinite(u_ref_per_molecule):
        raise ValueError("reference energy is zero or not finite")
    return float(100.0 * abs(u.mean() / n_cg - u_ref_per_molecule) / abs(u_ref_per_molecule))


def thermo_metrics(thermo: pd.DataFrame, n_beads: int, u_ref_per_molecule: float) -> dict[str, float]:
    """delta_U (%), CV_U, mean_T (K) and CV_T over the production rows of thermo.csv."""
    mask = production_mask(thermo["production"])
    if mask.sum() < 2:
        raise ValueError(f"{int(mask.sum())} production rows in thermo (need at least 2)")
    u = _finite_series(thermo["potential_energy"].to_numpy(float)[mask], "potential energy")
    t = _finite_series(thermo["temperature"].to_numpy(float)[mask], "temperature")
    return {
        "delta_U": delta_u(u, n_beads, u_ref_per_molecule),
        "CV_U": ob.coefficient_of_variation(u),
        "mean_T": float(t.mean()),
        "CV_T": ob.coefficient_of_variation(t),
    }


def _finite_series(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError(f"empty {what} series")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"non-finite {what} values")
    return x
