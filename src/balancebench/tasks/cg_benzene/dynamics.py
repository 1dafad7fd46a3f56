"""The dynamics of a CG Langevin NVT run: the largest MSD slope its friction allows (the s_MSD metric itself is
:func:`balancebench.tasks.cg_benzene.observables.msd_slope`)."""

from __future__ import annotations


def friction_limited_msd_slope(temperature: float, mass: float, friction: float) -> float:
    """6 D_max (A^2/ps) with D_max = k_B T / (m gamma): the MSD slope of a free particle under Langevin friction.

    Interactions only slow diffusion down, so a CG run thermostatted with friction gamma cannot exceed it;
    T in K, m in g/mol, gamma in 1/ps. (k_B T / m in A^2/ps^2 = 0.831446 T / m.)
    """
    if not (temperature > 0 and mass > 0 and friction > 0):
        raise ValueError("temperature, mass and friction must be > 0 for the friction limit")
    return 6.0 * 0.8314462618 * temperature / mass / friction
