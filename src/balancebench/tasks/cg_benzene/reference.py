"""Reference observables of a bead trajectory (atomistic molecule centres of mass, later CG runs).

:func:`trajectory_observables` reads an H5MD file (see :mod:`balancebench.tasks.cg_benzene.trajectory`)
and returns g(r), MSD and thermodynamic summaries computed with
:mod:`balancebench.tasks.cg_benzene.observables`; :func:`plot_liquid` draws the figure a user
checks first (density trace, g(r), MSD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from balancebench.fileio import open_h5
from balancebench.tasks.cg_benzene import observables as ob


@dataclass
class TrajectoryObservables:
    summary: dict
    rdf: pd.DataFrame
    msd: pd.DataFrame
    series: pd.DataFrame = field(default_factory=pd.DataFrame)


def trajectory_observables(path: str | Path, particles: str = "molecules", bin_width: float = 0.05,
                           r_max: float | None = None, msd_fit_start: float = 5.0, msd_max_lag_fraction: float = 0.5,
                           msd_slope_fraction: float = 0.3, viscosity: float | None = None) -> TrajectoryObservables:
    """Observables of the ``particles`` group of an H5MD trajectory; energies per particle in kcal/mol."""
    with open_h5(path) as fh:
        group = fh[f"particles/{particles}"]
        positions = group["position/value"][()]
        times = group["position/time"][()]
        boxes = group["box/edges/value"][()]
        scalars = {name: fh[f"observables/{name}/value"][()] for name in fh["observables"]
                   if fh[f"observables/{name}/value"].ndim == 1}
    n_frames, n_particles, _ = positions.shape
    if n_frames < 2:
        raise ValueError(f"{path}: need at least two frames, found {n_frames}")
    dt = float(times[1] - times[0])
    rdf = ob.radial_distribution(positions, boxes, bin_width=bin_width, r_max=r_max)
    lag, msd = ob.mean_squared_displacement(positions, dt, max_lag_fraction=msd_max_lag_fraction)
    peak_r, peak_g = rdf.first_peak()
    number_density = (n_particles - 1) / float(np.mean(np.prod(boxes, axis=1)))
    r_min = rdf.first_minimum()
    summary = {
        "n_frames": int(n_frames),
        "n_particles": int(n_particles),
        "frame_interval_ps": dt,
        "duration_ps": float(times[-1] - times[0] + dt),
        "mean_box_edge_A": float(np.mean(boxes)),
        "rdf_first_peak_A": peak_r,
        "rdf_first_peak_height": peak_g,
        "rdf_first_minimum_A": r_min,
        "first_shell_coordination": rdf.coordination_number(number_density, r_min),
        "msd_slope_last_fraction": ob.msd_slope(lag, msd, msd_slope_fraction),
        "msd_slope_fraction": msd_slope_fraction,
        "msd_slope_unit": "A^2/ps",
    }
    if lag[-1] > msd_fit_start:
        d_raw = ob.diffusion_coefficient(lag, msd, msd_fit_start)
        summary["diffusion_m2_per_s"] = d_raw
        if viscosity and "temperature" in scalars:
            corr = ob.yeh_hummer_correction(float(np.mean(scalars["temperature"])), viscosity, float(np.mean(boxes)))
            summary["diffusion_yeh_hummer_m2_per_s"] = d_raw + corr
            summary["viscosity_Pa_s"] = viscosity
    for name, values in scalars.items():
        summary[f"mean_{name}"] = float(np.mean(values))
        summary[f"std_{name}"] = float(np.std(values))
    if "U_A" in scalars:
        summary["mean_U_A_per_molecule"] = float(np.mean(scalars["U_A"]) / n_particles)
        summary["std_U_A_per_molecule"] = float(np.std(scalars["U_A"]) / n_particles)
        summary["CV_U_A"] = ob.coefficient_of_variation(scalars["U_A"])
    if "temperature" in scalars:
        summary["CV_T"] = ob.coefficient_of_variation(scalars["temperature"])
    series = pd.DataFrame({"time_ps": times, **scalars})
    return TrajectoryObservables(
        summary=summary,
        rdf=pd.DataFrame({"r_A": rdf.r, "g": rdf.g}),
        msd=pd.DataFrame({"lag_ps": lag, "msd_A2": msd}),
        series=series,
    )


def plot_liquid(obs: TrajectoryObservables, trace: pd.DataFrame | None, path: str | Path,
                experimental_density: float | None = None, title: str = "") -> None:
    """Three panels: density trace (equilibration + production), g(r), MSD with its fitted slope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    if trace is not None and len(trace):
        for phase, part in trace.groupby("phase", sort=False):
            ax.plot(part["time_ps"], part["density"], lw=1, label=phase)
    if "density" in obs.series:
        t0 = float(trace["time_ps"].max()) if trace is not None and len(trace) else 0.0
        ax.plot(obs.series["time_ps"] + t0, obs.series["density"], lw=1, label="production")
    if experimental_density:
        ax.axhline(experimental_density, color="k", ls="--", lw=0.8, label=f"experiment {experimental_density}")
    ax.set(xlabel="time / ps", ylabel="density / g cm$^{-3}$", title="density")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(obs.rdf["r_A"], obs.rdf["g"], lw=1.2)
    ax.axhline(1.0, color="k", lw=0.5)
    peak = obs.summary["rdf_first_peak_A"]
    ax.axvline(peak, color="C3", ls=":", lw=0.8, label=f"peak {peak:.2f} A")
    ax.set(xlabel="r / A", ylabel="g(r)", title="centre-of-mass g(r)")
    ax.legend(fontsize=7)
    ax = axes[2]
    ax.plot(obs.msd["lag_ps"], obs.msd["msd_A2"], lw=1.2)
    label = f"s_MSD = {obs.summary['msd_slope_last_fraction']:.3f} A$^2$/ps"
    if "diffusion_m2_per_s" in obs.summary:
        label += f"\nD = {obs.summary['diffusion_m2_per_s']:.2e} m$^2$/s"
    ax.text(0.05, 0.95, label, transform=ax.transAxes, va="top", fontsize=8)
    ax.set(xlabel="lag / ps", ylabel="MSD / A$^2$", title="centre-of-mass MSD")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
