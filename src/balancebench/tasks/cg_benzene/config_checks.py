"""The checks of the CG benzene sections that a schema cannot express (a leaf module: the MD environment
imports it through the system builder)."""

from __future__ import annotations

import math

from balancebench.config import ConfigError

AVOGADRO = 6.02214076e23
BENZENE_MASS = 78.114  # g/mol, 6 x (12.011 + 1.008), OPLS-AA masses


def box_length(n_molecules: int, density: float, molar_mass: float = BENZENE_MASS) -> float:
    """Edge (A) of a cubic box holding ``n_molecules`` at ``density`` g/cm^3: L = (N M / (rho N_A))^(1/3)."""
    volume_cm3 = n_molecules * molar_mass / (density * AVOGADRO)
    return (volume_cm3 * 1e24) ** (1.0 / 3.0)


def check_physics(config: dict) -> None:
    """The checks of the CG sections a schema cannot express (cutoffs against the box, whole timesteps)."""
    md = config.get("atomistic")
    if not md:
        return
    densest = max(md["start_density"], md["compress"]["density"])
    # NPT density fluctuates a few percent above the compression target; leave 5 % margin.
    smallest_box = box_length(md["n_molecules"], densest * 1.05)
    if md["pair_cutoff"] >= 0.5 * smallest_box:
        raise ConfigError(
            f"config error at atomistic.pair_cutoff: {md['pair_cutoff']} A is not below half the "
            f"smallest box edge {0.5 * smallest_box:.2f} A ({md['n_molecules']} molecules at "
            f"{densest * 1.05:.3f} g/cm^3); use more molecules or a shorter cutoff"
        )
    model = config.get("model") or {}
    if model and model["cutoff"] >= 0.5 * smallest_box:
        raise ConfigError(
            f"config error at model.cutoff: {model['cutoff']} A is not below half the smallest CG box edge "
            f"{0.5 * smallest_box:.2f} A; use more molecules or a shorter cutoff"
        )
    frame = md["nvt"]["frame_interval"] * 1000.0
    if frame < md["timestep"] or not math.isclose(frame / md["timestep"], round(frame / md["timestep"]), rel_tol=1e-9):
        raise ConfigError(
            f"config error at atomistic.nvt.frame_interval: {md['nvt']['frame_interval']} ps is not a "
            f"whole number of {md['timestep']} fs timesteps"
        )
    if md["nvt"]["duration"] < 2 * md["nvt"]["frame_interval"]:
        raise ConfigError("config error at atomistic.nvt.duration: shorter than two frames")
