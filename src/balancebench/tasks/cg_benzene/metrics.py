"""The ten evaluation metrics of seed 000 Sec. 2.3, a g(r) distance, and the pre-screening hierarchy.

One model = one ``{method}`` x ``{seed}``: a training run and a CG NVT simulation
compared with the atomistic reference. Everything here works on arrays;
the thin readers at the end turn the files of the workflow into those arrays:

- training run dir ``results/models/{method}/seed{seed}/``: ``train_log.csv``
  (``epoch, seconds, ...``) and ``status.json`` (``completed`` | ``diverged``);
- CG simulation dir ``results/simulations/{method}/seed{seed}/``: ``thermo.csv``
  (``step, time_ps, potential_energy`` [kcal/mol, whole system], ``temperature``
  [K], ``production`` [bool]), ``trajectory.h5`` (``particles/beads/position``,
  unwrapped, A; ``particles/beads/box/edges``) and ``status.json``
  (``completed`` | ``unstable``);
- atomistic reference dir ``results/atomistic/``: ``observables.json``,
  ``rdf.csv`` (``r_A, g``) and ``msd.csv`` (``lag_ps, msd_A2``), written by
  :func:`balancebench.tasks.cg_benzene.reference.trajectory_observables`.

g(r) and MSD of the CG run come from :mod:`balancebench.tasks.cg_benzene.observables`, the module
that computed the atomistic reference, on the reference's r grid and with the
same MSD settings. docs/metrics.md states every definition; the short version is
in :data:`METRICS`.

Status convention (never a silent NaN): each metric value is either a finite
float or ``None``. ``status == "completed"`` implies a finite value. ``None``
comes with ``diverged`` (the training diverged: no physics metrics),
``unstable`` (the CG run stopped early), ``missing`` (an input is absent) or
``invalid`` (the metric is undefined on the data, e.g. fewer than two
production rows); ``reason`` says why. Training metrics of a diverged training
keep their values with status ``diverged`` (counted up to the divergence), so a
consumer can tell them apart from completed runs; the same holds for a log without
its status.json (``missing``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from balancebench.evaluation import (  # noqa: F401 (the statuses and tables are this module's vocabulary too)
    CENSORED,
    COMPLETED,
    DIVERGED,
    INVALID,
    METRIC_STATUSES,
    MISSING,
    TIDY_COLUMNS,
    UNSTABLE,
    TrainingRun,
    _join,
    _status_of,
    epochs_to_target,
    read_model_json,
    read_status,
    read_training_run,
    timing_table,
    training_metric_results,
    training_metrics,
    write_model_json,
)
from balancebench.evaluation import tidy_table as _tidy_table
from balancebench.evaluation import write_tidy_csv as _write_tidy_csv
from balancebench.fileio import open_h5, read_csv, read_json
from balancebench.tasks.base import HIGHER, LOWER, TARGET
from balancebench.tasks.cg_benzene import observables as ob
from balancebench.tasks.cg_benzene.dynamics import friction_limited_msd_slope
from balancebench.tasks.cg_benzene.prescreen import (  # noqa: F401 (the task's metrics vocabulary)
    DEFAULT_THRESHOLDS,
    PRESCREEN_LEVELS,
    prescreen,
    prescreen_criteria,
    prescreen_table,
)
from balancebench.tasks.cg_benzene.structure import (  # noqa: F401
    _uniform_spacing,
    common_rdf_range,
    gr_l1,
    gr_w1,
    inverse_cdf_sample,
    ks_gr,
    ks_sup_distance,
    pair_distance_cdf,
)
from balancebench.tasks.cg_benzene.thermodynamics import (  # noqa: F401
    canonical_cv_t_target,
    delta_u,
    production_mask,
    thermo_metrics,
)

# --------------------------------------------------------------------------- registry

TRAINING, SIMULATION = "training", "simulation"


@dataclass(frozen=True)
class Metric:
    name: str  # column-safe identifier used in the tidy table
    symbol: str  # as printed in seed 000 (LaTeX-ish)
    unit: str
    description: str
    direction: str  # "lower", "higher" or "target"
    stage: str  # "training" or "simulation": which run it needs
    target: str = ""  # for direction "target": how the target is obtained
    paper: bool = True  # one of the ten metrics of seed 000 Sec. 2.3


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("N_ep", "N_{ep}", "epochs", "number of training epochs run, early-stopping patience epochs included "
           "(every row of train_log.csv); status censored when max_epochs stopped the run (a lower bound)",
           LOWER, TRAINING),
    Metric("t_ep", "t_{ep}", "s", "counted work of a training epoch (FLOPs, torch FlopCounterMode over the trained "
           "configuration's epochs) divided by the machine's calibrated FLOP rate (balancebench.timing); the "
           "wall-clock mean stays in the model JSON (t_ep_wall)", LOWER, TRAINING),
    Metric("sigma_ep", "\\sigma_{ep}", "s", "population standard deviation of the counted epoch work over the "
           "calibrated FLOP rate (0 for a method whose step cost does not depend on the batch or its state)",
           LOWER, TRAINING),
    Metric("delta_U", "\\Delta U", "%", "100 |<U_CG>/N_CG - <U_A>/N_A| / |<U_A>/N_A|: absolute percentage "
           "difference of the mean production CG potential energy from the mean U_A of the training frames "
           "(as the paper says), per molecule", LOWER, SIMULATION),
    Metric("CV_U", "CV_{U_{CG}}", "1", "std / |mean| of the production CG potential energy (whole system)",
           LOWER, SIMULATION),
    Metric("mean_T", "\\overline{T}", "K", "mean production temperature of the CG run", TARGET, SIMULATION,
           target="the thermostat temperature of the CG NVT run (config atomistic.temperature, 340 K)"),
    Metric("CV_T", "CV_T", "1", "std / |mean| of the production temperature", TARGET, SIMULATION,
           target="the canonical value sqrt(2 / (3 N - 3)) of N beads (kinetic-temperature fluctuation in NVT, "
                  "centre-of-mass momentum removed); lower is not better: a thermostat that suppresses "
                  "fluctuations is as wrong as one that inflates them"),
    Metric("d_KS", "d_{KS}", "1", "two-sample KS statistic between CG and atomistic pair-distance distributions "
           "(normalised r^2 g(r) on [0, r_max], deterministic inverse-CDF samples)", LOWER, SIMULATION),
    Metric("p_KS", "p_{KS}", "1", "p-value of that KS test at the fixed sample size ks_sample_size (a monotone "
           "function of d_KS; reported for fidelity to the paper)", HIGHER, SIMULATION),
    Metric("s_MSD", "s_{MSD}", "A^2/ps", "least-squares slope of the last msd_slope_fraction (30 %) of the CG "
           "centre-of-mass MSD curve", TARGET, SIMULATION,
           target="the same slope of the atomistic MSD (results/atomistic/msd.csv, same settings); the Langevin "
                  "friction caps it at 6 kT / (m gamma) (details.s_MSD_friction_limit, docs/metrics.md)"),
    Metric("gr_w1", "W_1", "A", "Wasserstein-1 distance int |F_CG(r) - F_A(r)| dr between the CG and atomistic "
           "pair-distance distributions (normalised r^2 g(r) on [0, r_max], as for d_KS): a sample-size-free g(r) "
           "distance", LOWER, SIMULATION, paper=False),
    Metric("N_target", "N_{target}", "epochs", "epochs until the validation criterion first came within "
           "metrics.target_tolerance (5 %) of the run's best value: the efficiency beside N_ep, free of the "
           "patience epochs and of the max_epochs cap", LOWER, TRAINING, paper=False),
)}

#: The concerns of the benzene task (issue 27): each metric of the tidy table belongs to at most one group,
#: and the statistics stage ranks the variants per group besides the paper's weighted total. Plain data, read
#: by the stats core like the directions above (``failed_runs`` is the scheme's failure count;
#: N_target and the COSMOS hypervolume are reported in no concern). docs/statistics.md, "Concerns".
CONCERNS: dict[str, tuple[str, ...]] = {
    "structure": ("d_KS", "p_KS", "gr_w1"),
    "dynamics": ("s_MSD",),
    "thermodynamics": ("delta_U", "CV_U", "mean_T", "CV_T"),
    "training cost": ("N_ep", "t_ep", "sigma_ep"),
    "failures": ("failed_runs",),
}
#: the concerns averaged into the physics axis and the cost axis of figures/physics_vs_cost.png
PHYSICS_CONCERNS = ("structure", "dynamics", "thermodynamics")
COST_CONCERNS = ("training cost",)

TRAINING_METRICS = tuple(n for n, m in METRICS.items() if m.stage == TRAINING)
SIMULATION_METRICS = tuple(n for n, m in METRICS.items() if m.stage == SIMULATION)


def registry_table() -> pd.DataFrame:
    """The registry as a table (name, symbol, unit, direction, target, stage, paper, description)."""
    return pd.DataFrame([asdict(m) for m in METRICS.values()])[
        ["name", "symbol", "unit", "direction", "target", "stage", "paper", "description"]]


# --------------------------------------------------------------------------- settings and inputs

@dataclass(frozen=True)
class MetricSettings:
    """How the metrics are computed; :meth:`from_config` reads them from the workflow config.

    temperature: K, the target of mean_T (the CG thermostat temperature).
    msd_max_lag_fraction, msd_slope_fraction, msd_remove_drift: the MSD settings; must equal
    the atomistic ones (config ``observables``) so that s_MSD and its target are comparable.
    rdf_r_max: A, upper end of the fixed r range of d_KS, p_KS and gr_w1 (reduced to half the
    smallest CG box edge or the end of the reference grid if either is shorter).
    ks_sample_size: n of each deterministic inverse-CDF sample given to the KS test.
    """

    temperature: float = 340.0
    msd_max_lag_fraction: float = 0.5
    msd_slope_fraction: float = 0.3
    msd_remove_drift: bool = True
    rdf_r_max: float = 12.0
    ks_sample_size: int = 1000
    target_tolerance: float = 0.05  # N_target: epochs to come within this fraction of the run's best criterion
    friction: float | None = None  # 1/ps, Langevin friction of the CG run (for the s_MSD friction limit)
    bead_mass: float | None = None  # g/mol

    @classmethod
    def from_config(cls, config: Mapping[str, Any], temperature: float | None = None) -> "MetricSettings":
        """MSD settings from ``config["observables"]`` (those of the atomistic reference), r range and KS
        sample size from ``config["metrics"]``, the mean_T target from ``temperature`` (the CG
        thermostat's) or else ``config["atomistic"]["temperature"]``."""
        obs = dict(config.get("observables") or {})
        met = dict(config.get("metrics") or {})
        default = cls()
        if temperature is None:
            temperature = (config.get("atomistic") or {}).get("temperature", default.temperature)
        return cls(
            temperature=float(temperature),
            msd_max_lag_fraction=float(obs.get("msd_max_lag_fraction", default.msd_max_lag_fraction)),
            msd_slope_fraction=float(obs.get("msd_slope_fraction", default.msd_slope_fraction)),
            rdf_r_max=float(met.get("rdf_r_max", default.rdf_r_max)),
            ks_sample_size=int(met.get("ks_sample_size", default.ks_sample_size)),
            target_tolerance=float(met.get("target_tolerance", default.target_tolerance)),
            friction=_optional_float((config.get("simulation") or {}).get("friction")),
        )


@dataclass
class Reference:
    """The atomistic reference: U_A per molecule (kcal/mol), mean T (K), g(r) and MSD curves."""

    u_per_molecule: float
    n_molecules: int
    temperature: float | None  # K, mean atomistic temperature (informative; mean_T's target is the thermostat's)
    rdf_r: np.ndarray  # bin centres, A (uniform grid starting at bin_width / 2)
    rdf_g: np.ndarray
    msd_lag: np.ndarray  # ps
    msd: np.ndarray  # A^2

    def msd_slope(self, fraction: float) -> float:
        """s_MSD of the atomistic reference (A^2/ps), the target of the CG s_MSD."""
        return ob.msd_slope(self.msd_lag, self.msd, fraction)

    @property
    def bin_width(self) -> float:
        return _uniform_spacing(self.rdf_r, "reference g(r) grid")

    @classmethod
    def load(cls, directory: str | Path) -> "Reference":
        """Read ``observables.json``, ``rdf.csv`` and ``msd.csv`` of ``results/atomistic``."""
        directory = Path(directory)
        summary = read_json(directory / "observables.json")
        n = int(summary["n_particles"])
        if "mean_U_A_per_molecule" in summary:
            u = float(summary["mean_U_A_per_molecule"])
        else:
            u = float(summary["mean_U_A"]) / n
        rdf = read_csv(directory / "rdf.csv")
        msd = read_csv(directory / "msd.csv")
        return cls(u_per_molecule=u, n_molecules=n, temperature=_optional_float(summary.get("mean_temperature")),
                   rdf_r=rdf["r_A"].to_numpy(float), rdf_g=rdf["g"].to_numpy(float),
                   msd_lag=msd["lag_ps"].to_numpy(float), msd=msd["msd_A2"].to_numpy(float))


@dataclass
class SimulationRun:
    """status.json contents, thermo table, and the production frames (unwrapped positions, A)."""

    status: dict
    thermo: pd.DataFrame | None = None
    times: np.ndarray | None = None  # (F,) ps
    positions: np.ndarray | None = None  # (F, N, 3) A, unwrapped
    boxes: np.ndarray | None = None  # (F, 3) A

    @property
    def n_beads(self) -> int | None:
        return None if self.positions is None else int(np.shape(self.positions)[1])


@dataclass
class Curves:
    """CG g(r) and MSD, computed like the reference (same r grid and MSD settings)."""

    rdf_r: np.ndarray
    rdf_g: np.ndarray
    msd_lag: np.ndarray
    msd: np.ndarray
    n_frames: int
    n_beads: int
    frame_interval: float  # ps


# --------------------------------------------------------------------------- metric functions

def simulation_curves(positions: np.ndarray, boxes: np.ndarray, times: np.ndarray, reference: Reference,
                      settings: MetricSettings) -> Curves:
    """CG g(r) on the reference grid (up to settings.rdf_r_max and half the CG box) and MSD with the atomistic
    MSD settings, both from :mod:`balancebench.tasks.cg_benzene.observables`."""
    positions = np.asarray(positions, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[0] < 2:
        raise ValueError(f"need at least two frames of (N, 3) positions, got shape {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("non-finite bead positions in the trajectory")
    boxes = np.broadcast_to(np.asarray(boxes, dtype=np.float64), (len(positions), 3))
    dt = _uniform_spacing(times, "frame times")
    width = reference.bin_width
    r_max = min(settings.rdf_r_max, 0.5 * float(boxes.min()), float(reference.rdf_r[-1]) + 0.5 * width)
    n_bins = common_rdf_range(reference.rdf_r, r_max)
    if n_bins < 2:
        raise ValueError(f"r range up to {r_max:.2f} A holds fewer than two g(r) bins")
    rdf = ob.radial_distribution(positions, boxes, bin_width=width, r_max=n_bins * width)
    if len(rdf.r) < n_bins or not np.allclose(rdf.r[:n_bins], reference.rdf_r[:n_bins], atol=1e-6 * width):
        raise ValueError("CG g(r) grid does not match the reference grid")
    lag, msd = ob.mean_squared_displacement(positions, dt, max_lag_fraction=settings.msd_max_lag_fraction,
                                            remove_drift=settings.msd_remove_drift)
    return Curves(rdf_r=rdf.r[:n_bins], rdf_g=rdf.g[:n_bins], msd_lag=lag, msd=msd, n_frames=len(positions),
                  n_beads=positions.shape[1], frame_interval=dt)


def structure_metrics(curves: Curves, reference: Reference, settings: MetricSettings) -> dict[str, float]:
    """d_KS, p_KS and gr_w1 of the CG g(r) against the reference on the common fixed r range."""
    n = len(curves.rdf_r)
    r, g_ref = reference.rdf_r[:n], reference.rdf_g[:n]
    d, p = ks_gr(r, curves.rdf_g, g_ref, settings.ks_sample_size)
    return {"d_KS": d, "p_KS": p, "gr_w1": gr_w1(r, curves.rdf_g, g_ref)}


def metric_target(name: str, reference: Reference | None, settings: MetricSettings,
                  n_beads: int | None = None) -> float | None:
    """Numeric target of a ``target`` metric (mean_T: settings.temperature K; CV_T: sqrt(2 / (3N - 3)) of the
    run's N beads; s_MSD: the atomistic slope A^2/ps), None for ``lower``/``higher`` metrics or when the
    reference or the bead count is missing."""
    if name == "mean_T":
        return float(settings.temperature)
    if name == "CV_T":
        return canonical_cv_t_target(int(n_beads)) if n_beads else None
    if name == "s_MSD":
        if reference is None:
            return None
        try:
            value = reference.msd_slope(settings.msd_slope_fraction)
        except ValueError:
            return None
        return float(value) if np.isfinite(value) else None
    return None


# --------------------------------------------------------------------------- one model

def compute_model_metrics(method: str, seed: int, training: TrainingRun | None, simulation: SimulationRun | None,
                          reference: Reference | None, settings: MetricSettings | None = None,
                          curves: Curves | None = None, timing: Mapping | None = None,
                          u_reference: float | None = None, n_beads: int | None = None) -> dict:
    """All metrics of one model as a JSON-ready dict.

    Returns ``{"method", "seed", "training_status", "training_reason", "simulation_status",
    "simulation_reason", "n_beads", "metrics": {name: {"value", "status", "reason", "unit",
    "direction", "target"}}, "details": {...}}``. ``curves`` (from :func:`simulation_curves`)
    may be passed to avoid computing g(r) and MSD twice (e.g. when plotting too). ``timing``: the
    counted-work record of :func:`balancebench.timing.time_run` (t_ep, sigma_ep; without it they are the
    wall-clock values of the log); ``u_reference``: mean U_A per molecule of the training frames (kcal/mol),
    the reference of Delta U; ``n_beads``: the bead count (for the CV_T target when the run failed).
    """
    settings = settings or MetricSettings()
    results: dict[str, tuple[float | None, str, str]] = {}
    details: dict[str, Any] = {}
    if u_reference is not None and reference is not None:  # Delta U against the training frames' mean U_A
        reference = dataclasses.replace(reference, u_per_molecule=float(u_reference))
        details["u_reference_source"] = "training frames"

    # training (the metrics every task shares: balancebench.evaluation)
    t_status, t_reason, training_results, training_details = training_metric_results(
        training, timing, settings.target_tolerance)
    results.update(training_results)
    details.update(training_details)

    # simulation
    s_status = _status_of(simulation.status if simulation else None)
    s_reason = str((simulation.status or {}).get("reason", "")) if simulation else "no simulation status.json"
    failure = _physics_failure(t_status, t_reason, simulation, s_status, s_reason, reference)
    if failure is not None:
        for name in SIMULATION_METRICS:
            results[name] = (None, *failure)
    else:
        _physics(results, details, simulation, reference, settings, curves)

    metrics = {}
    for name, meta in METRICS.items():
        value, status, reason = results[name]
        if value is not None and not np.isfinite(value):  # the invariant: never a silent NaN
            value, status, reason = None, INVALID, f"non-finite value ({value})"
        if value is None and status in (COMPLETED, CENSORED):
            status = INVALID
        metrics[name] = {"value": None if value is None else float(value), "status": status, "reason": reason,
                         "unit": meta.unit, "direction": meta.direction,
                         "target": metric_target(name, reference, settings, details.get("n_beads") or n_beads)}
    details["reference"] = None if reference is None else {
        "u_per_molecule_kcal_mol": reference.u_per_molecule, "n_molecules": reference.n_molecules,
        "temperature_K": reference.temperature, "s_MSD_A2_per_ps": metric_target("s_MSD", reference, settings),
    }
    if settings.friction and settings.bead_mass:
        limit = friction_limited_msd_slope(settings.temperature, settings.bead_mass, settings.friction)
        target = metric_target("s_MSD", reference, settings)
        details["s_MSD_friction_limit"] = limit
        details["s_MSD_target_attainable"] = None if target is None else bool(target < limit)
    details["settings"] = asdict(settings)
    return {
        "method": str(method), "seed": int(seed),
        "training_status": t_status, "training_reason": t_reason,
        "simulation_status": s_status, "simulation_reason": s_reason,
        "n_beads": details.get("n_beads"),
        "metrics": metrics, "details": details,
    }


def _physics_failure(t_status, t_reason, simulation, s_status, s_reason, reference) -> tuple[str, str] | None:
    if t_status == DIVERGED:
        return DIVERGED, _join("training diverged", t_reason)
    if simulation is None or s_status == MISSING:
        return MISSING, "no CG simulation"
    if s_status == UNSTABLE:
        return UNSTABLE, f"CG simulation unstable at step {simulation.status.get('step', '?')}" + (
            f": {s_reason}" if s_reason else "")
    if s_status != COMPLETED:
        return INVALID, f"unknown simulation status {s_status!r}"
    if reference is None:
        return MISSING, "no atomistic reference"
    return None


def _physics(results, details, simulation: SimulationRun, reference: Reference, settings: MetricSettings,
             curves: Curves | None) -> None:
    # energy and temperature
    try:
        if simulation.thermo is None:
            raise ValueError("no thermo.csv")
        n_beads = simulation.n_beads or (curves.n_beads if curves is not None else None)
        if n_beads is None:
            raise ValueError("bead count unknown (no trajectory)")
        details["n_beads"] = n_beads
        values = thermo_metrics(simulation.thermo, n_beads, reference.u_per_molecule)
        mask = production_mask(simulation.thermo["production"])
        details["production_rows"] = int(mask.sum())
        details["mean_U_CG_per_bead_kcal_mol"] = float(
            simulation.thermo["potential_energy"].to_numpy(float)[mask].mean() / n_beads)
        for name, value in values.items():
            results[name] = (value, COMPLETED, "")
    except (KeyError, ValueError) as err:
        for name in ("delta_U", "CV_U", "mean_T", "CV_T"):
            results[name] = (None, INVALID, f"thermo: {err}")
    # structure and dynamics
    try:
        if curves is None:
            if simulation.positions is None:
                raise ValueError("no trajectory")
            curves = simulation_curves(simulation.positions, simulation.boxes, simulation.times, reference, settings)
        values = structure_metrics(curves, reference, settings)
        values["s_MSD"] = ob.msd_slope(curves.msd_lag, curves.msd, settings.msd_slope_fraction)
        details.update(n_frames=curves.n_frames, frame_interval_ps=curves.frame_interval,
                       rdf_r_range_A=[0.0, float(curves.rdf_r[-1] + 0.5 * reference.bin_width)],
                       msd_max_lag_ps=float(curves.msd_lag[-1]),
                       reference_msd_max_lag_ps=float(reference.msd_lag[-1]))
        for name, value in values.items():
            results[name] = (value, COMPLETED, "")
    except (KeyError, ValueError) as err:
        for name in ("d_KS", "p_KS", "gr_w1", "s_MSD"):
            results[name] = (None, INVALID, f"trajectory: {err}")


# --------------------------------------------------------------------------- tables and files

def tidy_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """:func:`balancebench.evaluation.tidy_table` in the order of :data:`METRICS`."""
    return _tidy_table(records, list(METRICS))


def write_tidy_csv(path: str | Path, records_or_table: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """:func:`balancebench.evaluation.write_tidy_csv` in the order of :data:`METRICS`."""
    return _write_tidy_csv(path, records_or_table, list(METRICS))


# --------------------------------------------------------------------------- pre-screening

# --------------------------------------------------------------------------- readers

def read_cg_trajectory(path: str | Path, group: str = "beads") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times ps, unwrapped positions (F, N, 3) A, box edges (F, 3) A) of an H5MD CG trajectory."""
    with open_h5(path) as fh:
        g = fh[f"particles/{group}"]
        return g["position/time"][()], g["position/value"][()], g["box/edges/value"][()]


def read_simulation_run(directory: str | Path) -> SimulationRun:
    """``status.json``, ``thermo.csv`` and ``trajectory.h5`` of ``results/simulations/{method}/seed{seed}``;
    absent files read as None (the status says why)."""
    directory = Path(directory)
    status = read_status(directory / "status.json")
    thermo_path, traj_path = directory / "thermo.csv", directory / "trajectory.h5"
    thermo = read_csv(thermo_path) if thermo_path.exists() and thermo_path.stat().st_size else None
    times = positions = boxes = None
    if traj_path.exists() and status.get("status") == COMPLETED:
        times, positions, boxes = read_cg_trajectory(traj_path)
    return SimulationRun(status=status, thermo=thermo, times=times, positions=positions, boxes=boxes)


def evaluate_model(method: str, seed: int, model_dir: str | Path, simulation_dir: str | Path,
                   atomistic_dir: str | Path, settings: MetricSettings | None = None,
                   figure: str | Path | None = None, timing: str | Path | Mapping | None = None,
                   u_reference: float | None = None) -> dict:
    """Read one model's files, compute its metrics and (optionally) write its comparison figure.

    ``timing``: the timing record (:func:`balancebench.timing.timing_record`: counted work at a calibration, or
    its JSON); ``u_reference``: the mean U_A per molecule of the training frames (:func:`training_u_per_molecule`).
    """
    settings = settings or MetricSettings()
    reference = Reference.load(atomistic_dir)
    training = read_training_run(model_dir)
    hparams_path = Path(model_dir) / "hparams.json"
    hparams = read_json(hparams_path) if hparams_path.exists() else {}
    if settings.bead_mass is None and hparams.get("bead_mass"):
        settings = dataclasses.replace(settings, bead_mass=float(hparams["bead_mass"]))
    if isinstance(timing, (str, Path)):
        timing = read_json(timing)
    if timing is not None and timing.get("status", "completed") != "completed":
        timing = None  # the timing pass failed: fall back to wall clock, said in details.timing
    simulation = read_simulation_run(simulation_dir)
    curves = None
    if (simulation.status.get("status") == COMPLETED and training.status.get("status") != DIVERGED
            and simulation.positions is not None):
        try:
            curves = simulation_curves(simulation.positions, simulation.boxes, simulation.times, reference, settings)
        except ValueError:
            curves = None  # compute_model_metrics records the reason
    record = compute_model_metrics(method, seed, training, simulation, reference, settings, curves=curves,
                                   timing=timing, u_reference=u_reference, n_beads=hparams.get("n_beads"))
    if figure is not None:
        plot_model(figure, reference, curves, settings, record=record)
    return record


def training_u_per_molecule(dataset) -> float:
    """Mean U_A per molecule (kcal/mol) over the training frames of a CG dataset (the reference of Delta U)."""
    train = np.asarray(dataset.split["train"])
    return float(np.mean(np.asarray(dataset.energy)[train]) / dataset.n_beads)


# --------------------------------------------------------------------------- figure

def plot_model(path: str | Path, reference: Reference, curves: Curves | None, settings: MetricSettings | None = None,
               record: Mapping | None = None, title: str = "") -> None:
    """PNG with two panels: CG vs atomistic g(r) (fixed r range shaded) and MSD with the s_MSD fits.

    Failed runs (``curves`` None) get the atomistic curves and the failure reason, so every
    model has a figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = settings or MetricSettings()
    fraction = settings.msd_slope_fraction
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    ax.plot(reference.rdf_r, reference.rdf_g, color="k", lw=1.2, label="atomistic")
    if curves is not None:
        ax.plot(curves.rdf_r, curves.rdf_g, color="C1", lw=1.2, label="CG")
        ax.axvspan(0.0, curves.rdf_r[-1] + 0.5 * reference.bin_width, color="0.92", zorder=0,
                   label="d_KS / W1 range")
    ax.axhline(1.0, color="0.5", lw=0.5)
    ax.set(xlabel="r / A", ylabel="g(r)", title="pair correlation")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(reference.msd_lag, reference.msd, color="k", lw=1.2, label="atomistic")
    _plot_slope(ax, reference.msd_lag, reference.msd, fraction, "k")
    if curves is not None:
        ax.plot(curves.msd_lag, curves.msd, color="C1", lw=1.2, label="CG")
        _plot_slope(ax, curves.msd_lag, curves.msd, fraction, "C1")
    ax.set(xlabel="lag / ps", ylabel="MSD / A$^2$", title=f"MSD (fit: last {100 * fraction:.0f} %)")
    ax.legend(fontsize=7)
    if record is not None:
        lines = []
        for name in ("delta_U", "CV_U", "mean_T", "CV_T", "d_KS", "p_KS", "gr_w1", "s_MSD"):
            m = record["metrics"][name]
            unit = "" if METRICS[name].unit == "1" else f" {METRICS[name].unit}"
            lines.append(f"{name} = {m['value']:.4g}{unit}" if m["value"] is not None else f"{name}: {m['status']}")
        axes[1].text(0.97, 0.04, "\n".join(lines), transform=axes[1].transAxes, ha="right", va="bottom", fontsize=7,
                     family="monospace", bbox=dict(boxstyle="round", facecolor="white", alpha=0.85, lw=0.5))
        title = title or f"{record.get('method')} seed {record.get('seed')}"
        if record.get("training_status") == DIVERGED:
            title += f": training diverged ({record.get('training_reason', '')}), no CG run"
        elif record.get("simulation_status") != COMPLETED:
            title += (f": CG simulation {record.get('simulation_status')} "
                      f"({record.get('simulation_reason', '')}), no CG curves")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_slope(ax, lag, msd, fraction, color) -> None:
    try:
        slope = ob.msd_slope(lag, msd, fraction)
    except ValueError:
        return
    start = int(np.floor(len(lag) * (1.0 - fraction)))
    t = np.asarray(lag)[start:]
    intercept = float(np.mean(np.asarray(msd)[start:]) - slope * np.mean(t))
    ax.plot(t, intercept + slope * t, color=color, ls="--", lw=2.0, alpha=0.5, label=f"s = {slope:.3g} A$^2$/ps")


# --------------------------------------------------------------------------- helpers

def _optional_float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


__all__ = [
    "METRICS", "Metric", "MetricSettings", "Reference", "TrainingRun", "SimulationRun", "Curves",
    "DEFAULT_THRESHOLDS", "TIDY_COLUMNS", "registry_table", "training_metrics", "production_mask", "delta_u",
    "thermo_metrics", "pair_distance_cdf", "inverse_cdf_sample", "ks_gr", "ks_sup_distance", "gr_w1", "gr_l1",
    "common_rdf_range", "simulation_curves", "structure_metrics", "metric_target", "compute_model_metrics",
    "tidy_table", "write_model_json", "read_model_json", "write_tidy_csv", "canonical_cv_t_target", "prescreen_criteria",
    "prescreen", "prescreen_table", "read_status", "read_training_run", "read_cg_trajectory",
    "read_simulation_run", "evaluate_model", "plot_model", "epochs_to_target", "canonical_cv_t_target",
    "friction_limited_msd_slope", "training_u_per_molecule", "timing_table", "CENSORED",
]
