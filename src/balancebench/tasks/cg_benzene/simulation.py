"""CG molecular dynamics with ASE: NVT at the atomistic temperature, with a stability guard.

Units: ASE works in eV, A, amu and its own time unit; this module takes
temperatures in K and times in fs/ps, and reports potential energies in
kcal/mol (the unit of the atomistic U_A they are compared with):
E[kcal/mol] = E[eV] / (ase.units.kcal / ase.units.mol).

Thermostats (``NVTSettings.thermostat``):
- ``langevin``: ase.md.langevin.Langevin, friction in 1/ps (default; robust for
  untrained or poor models because it damps runaway kinetic energy);
- ``bussi``: ase.md.bussi.Bussi (CSVR, Bussi et al. JCP 126, 014101 (2007)), taut in fs;
- ``nose_hoover_chain``: ase.md.nose_hoover_chain.NoseHooverChainNVT, tdamp in fs;
- ``nve``: ase.md.verlet.VelocityVerlet (for conservation checks).

The guard stops a run as ``unstable`` when the potential energy or a force is
not finite, when the temperature exceeds ``max_temperature_factor`` x target,
or when two beads come closer than ``min_distance`` A; the reason and step are
recorded, and nothing is raised, so one bad model never stops the workflow.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from balancebench.fileio import read_json
from balancebench.tasks.cg_benzene.config_checks import BENZENE_MASS

EV_PER_KCAL_MOL = units.kcal / units.mol  # 1 kcal/mol in eV
BENZENE_BEAD_MASS = BENZENE_MASS  # amu, one bead per molecule


class CGCalculator(Calculator):
    """ASE calculator of a trained :class:`~balancebench.tasks.cg_benzene.model.CGSchNet`: energy in eV, forces in eV/A.

    The model works in kcal/mol and A; the conversion happens here and nowhere
    else. Periodic orthorhombic cells only. A Verlet list with ``skin`` (A) is
    rebuilt when a bead has moved more than skin / 2. ``dtype`` float64 (default)
    evaluates a float32-trained model in double precision, which MD energy
    conservation needs.

    Energies and forces come from the model's explicit-force path (no autograd).
    ``filter_table`` (A; default: the model's own ``model.filter_table``, so a tabulated model runs the table
    it was trained with, else 0.005) tabulates each block's radial filter and its r-derivative on a grid of
    that spacing (cubic Hermite,
    :class:`~balancebench.tasks.cg_benzene.model.FilterTable`: ~1e-8 relative in the forces, below
    float32 rounding), which removes the filter network from the MD step; ``None``
    evaluates the filter network exactly. The table is built once from the
    (frozen) weights.
    """

    implemented_properties = ["energy", "forces", "free_energy"]

    def __init__(self, model, skin: float = 1.0, device: str = "cpu", dtype=torch.float64,
                 filter_table: float | None | str = "model", preference=None, **kwargs):
        super().__init__(**kwargs)
        from balancebench.runtime import fast_cpu_math
        from balancebench.tasks.cg_benzene.model import FilterTable
        from balancebench.tasks.cg_benzene.neighbors import VerletList

        fast_cpu_math()
        self.device, self.dtype = torch.device(device), dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if filter_table == "model":  # a tabulated model runs its own table; an exact one the default 0.005 A
            filter_table = model.config.filter_table or 0.005
        self.table = FilterTable(self.model, filter_table) if filter_table else None
        self.verlet = VerletList(model.cutoff, skin)
        self.preference = self._fix_preference(preference)

    def _fix_preference(self, preference):
        """A conditioned (COSMOS) model is one force field per preference r: fix it; others take none."""
        k = int(getattr(self.model.config, "preference_dim", 0))
        if k == 0:
            if preference is not None:
                raise ValueError(f"preference {preference!r} given, but the model is not preference-conditioned "
                                 "(model.preference_dim = 0)")
            return None
        if preference is None:
            raise ValueError(f"the model is conditioned on a preference of length {k} (model.preference_dim): "
                             "pass preference=[r_force, r_energy] (hparams.json records the chosen one)")
        r = np.asarray(preference, dtype=np.float64).ravel()
        if r.shape != (k,):
            raise ValueError(f"preference must have length {k} (model.preference_dim), got {list(r)}")
        self.model.fix_preference(r)
        return (r / r.sum()).tolist()

    @classmethod
    def from_checkpoint(cls, path: str | Path, preference=None, **kwargs) -> "CGCalculator":
        """Load ``model.pt`` (weights only) and its ``hparams.json`` from a model directory or the .pt path.

        A preference-conditioned model runs at ``preference`` if given, else at the r recorded in
        ``hparams["preference"]`` (the one chosen after training).
        """
        from balancebench.tasks.cg_benzene.model import load_model

        path = Path(path)
        state = path / "model.pt" if path.is_dir() else path
        hparams = read_json(state.parent / "hparams.json")
        if preference is None:
            preference = hparams.get("preference")
        calc = cls(load_model(state, hparams), preference=preference, **kwargs)
        calc.hparams = hparams
        return calc

    def check_state(self, atoms, tol=1e-15):
        """ASE's check for changes since the last calculation, with an exact-equality fast path.

        ASE calls this about ten times per MD step, mostly on unchanged atoms; its per-array ``np.allclose``
        cost ~0.9 ms per 125-bead step (14 % of it). Arrays that are exactly equal are within any tolerance,
        so the answer is the same: "nothing changed" when every array, the cell and pbc are identical, else
        ASE's own comparison.
        """
        old = self.atoms
        if (old is not None and old.arrays.keys() == atoms.arrays.keys()
                and np.array_equal(old.cell.array, atoms.cell.array) and np.array_equal(old.pbc, atoms.pbc)
                and all(np.array_equal(old.arrays[k], atoms.arrays[k]) for k in old.arrays)):
            return []
        return super().check_state(atoms, tol)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        cell = self.atoms.cell.array
        box = np.diag(cell).copy()
        if np.count_nonzero(cell) != np.count_nonzero(box) or not all(self.atoms.pbc):
            raise ValueError("CGCalculator needs a periodic orthorhombic cell")
        x = torch.as_tensor(self.atoms.get_positions(), dtype=self.dtype, device=self.device)
        energy, forces = self.model.frame_energy_and_forces(x, box, self.verlet.get(x, box), table=self.table)
        self.results["energy"] = self.results["free_energy"] = float(energy.detach()) * EV_PER_KCAL_MOL
        self.results["forces"] = forces.detach().cpu().numpy().astype(np.float64) * EV_PER_KCAL_MOL


def atoms_from_frame(positions, box, mass: float = BENZENE_BEAD_MASS, calculator=None) -> Atoms:
    """Beads of one frame as periodic ASE Atoms (positions wrapped into the box, masses in amu)."""
    box = np.asarray(box, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    atoms = Atoms(f"X{len(positions)}", positions=positions - box * np.floor(positions / box), cell=box, pbc=True)
    atoms.set_masses(np.full(len(positions), mass))
    if calculator is not None:
        atoms.calc = calculator
    return atoms


@dataclass(frozen=True)
class NVTSettings:
    temperature: float = 340.0  # K
    timestep: float = 4.0  # fs
    thermostat: str = "langevin"
    friction: float = 1.0  # 1/ps (Langevin)
    tau: float = 100.0  # fs (Bussi taut, Nose-Hoover tdamp)
    equilibration: float = 10.0  # ps, discarded
    production: float = 50.0  # ps
    thermo_interval: int = 10  # steps between energy/temperature records and guard checks
    frame_interval: float = 0.2  # ps between saved positions
    max_temperature_factor: float = 3.0
    min_distance: float = 2.0  # A
    seed: int = 0

    def steps(self, ps: float) -> int:
        return int(round(ps * 1000.0 / self.timestep))


@dataclass
class NVTResult:
    status: str  # "completed" or "unstable"
    reason: str
    step: int  # last step reached (the failing one for unstable runs)
    settings: dict
    thermo: dict[str, np.ndarray] = field(default_factory=dict)  # step, time_ps, potential_energy (kcal/mol), temperature (K), production (bool)
    positions: np.ndarray | None = None  # (frames, N, 3) unwrapped, production only
    frame_times: np.ndarray | None = None  # ps
    box: np.ndarray | None = None  # (3,) A

    def summary(self) -> dict:
        return {"status": self.status, "reason": self.reason, "step": self.step,
                "frames": 0 if self.positions is None else int(len(self.positions))}


def make_dynamics(atoms: Atoms, settings: NVTSettings):
    dt = settings.timestep * units.fs
    rng = np.random.default_rng(settings.seed)
    name = settings.thermostat
    if name == "langevin":
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        # the centre of mass is held by a constraint (ASE >= 3.28: Langevin's own fixcm samples NVT incorrectly)
        atoms.set_constraint(FixCom())
        return Langevin(atoms, dt, temperature_K=settings.temperature,
                        friction=settings.friction / (1000.0 * units.fs), rng=rng, fixcm=False)
    if name == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt, temperature_K=settings.temperature, taut=settings.tau * units.fs, rng=rng)
    if name == "nose_hoover_chain":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, dt, temperature_K=settings.temperature, tdamp=settings.tau * units.fs)
    if name == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)
    raise ValueError(f"unknown thermostat {name!r}; use langevin, bussi, nose_hoover_chain or nve")


def minimum_distance(positions: np.ndarray, box: np.ndarray) -> float:
    from balancebench.tasks.cg_benzene.observables import minimum_image_distances

    return float(minimum_image_distances(positions, box).min())


def initialise_velocities(atoms: Atoms, temperature: float, seed: int) -> None:
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed), force_temp=True)
    Stationary(atoms)


def run_nvt(atoms: Atoms, settings: NVTSettings, progress=None) -> NVTResult:
    """Equilibrate then produce; ``atoms`` must carry a calculator and velocities (or get them here).

    ``progress(step, total, temperature)`` (temperature in K) is called every thermo interval if given.
    """
    if not np.any(atoms.get_momenta()):
        initialise_velocities(atoms, settings.temperature, settings.seed)
    dyn = make_dynamics(atoms, settings)
    box = np.diag(atoms.get_cell().array).copy()
    n_eq, n_prod = settings.steps(settings.equilibration), settings.steps(settings.production)
    total = n_eq + n_prod
    # frames are taken at guard checks: every frame_chunks thermo intervals
    frame_chunks = max(1, int(round(settings.steps(settings.frame_interval) / settings.thermo_interval)))
    n_chunk = 0
    records = {"step": [], "time_ps": [], "potential_energy": [], "temperature": [], "production": []}
    frames, frame_times = [], []
    status, reason, step = "completed", "", 0
    while step < total:
        chunk = min(settings.thermo_interval, total - step)
        try:
            with np.errstate(all="ignore"):
                dyn.run(chunk)
            step += chunk
            energy = atoms.get_potential_energy() / EV_PER_KCAL_MOL
            temperature = atoms.get_temperature()
            forces_ok = bool(np.isfinite(atoms.get_forces()).all())
        except (FloatingPointError, RuntimeError, ValueError) as exc:  # a model can fail numerically
            step += chunk
            status, reason = "unstable", f"{type(exc).__name__}: {exc}"
            break
        if not np.isfinite(energy) or not forces_ok:
            status, reason = "unstable", "non-finite potential energy or forces"
        elif not np.isfinite(temperature) or temperature > settings.max_temperature_factor * settings.temperature:
            status, reason = "unstable", (f"temperature {temperature:.1f} K above {settings.max_temperature_factor} x "
                                          f"{settings.temperature} K")
        else:
            dmin = minimum_distance(atoms.get_positions(), box)
            if dmin < settings.min_distance:
                status, reason = "unstable", f"beads {dmin:.2f} A apart (< {settings.min_distance} A)"
        records["step"].append(step)
        records["time_ps"].append(step * settings.timestep / 1000.0)
        records["potential_energy"].append(energy)
        records["temperature"].append(temperature)
        records["production"].append(step > n_eq)
        if status != "completed":
            break
        n_chunk += 1
        if step > n_eq and n_chunk % frame_chunks == 0:
            frames.append(atoms.get_positions().copy())
            frame_times.append(step * settings.timestep / 1000.0)
        if progress is not None:
            progress(step, total, temperature)
    return NVTResult(
        status=status, reason=reason, step=step, settings=asdict(settings),
        thermo={k: np.asarray(v) for k, v in records.items()},
        positions=np.asarray(frames) if frames else None,
        frame_times=np.asarray(frame_times) if frames else None,
        box=box,
    )


def settings_from_config(sim: dict, temperature: float, prior_sigma: float, seed: int) -> NVTSettings:
    """NVTSettings from the ``simulation`` config block (min distance = fraction x the prior's sigma)."""
    keys = ("thermostat", "timestep", "friction", "tau", "equilibration", "production", "thermo_interval",
            "frame_interval", "max_temperature_factor")
    return NVTSettings(temperature=float(sim.get("temperature") or temperature), seed=int(seed),
                       min_distance=float(sim["min_distance_fraction"]) * float(prior_sigma),
                       **{k: sim[k] for k in keys})


def simulate_model(model_dir: str | Path, dataset, sim_config: dict, temperature: float, seed: int,
                   out_dir: str | Path, provenance: str = "{}", log=None) -> dict:
    """CG NVT of one trained model from the first held-out test frame; writes the run's files into ``out_dir``.

    Files: ``trajectory.h5`` (H5MD: ``particles/beads`` unwrapped production positions and box,
    ``observables/potential_energy`` kcal/mol and ``observables/temperature`` K per thermo record),
    ``thermo.csv`` (step, time_ps, potential_energy, temperature, production) and ``status.json``
    (completed / unstable with step and reason / skipped when the training diverged).
    """
    import pandas as pd

    from balancebench.progress import Progress
    from balancebench.runtime import resolve_device
    from balancebench.tasks.cg_benzene.trajectory import H5MDWriter

    model_dir, out = Path(model_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    training = read_json(model_dir / "status.json")
    hparams = read_json(model_dir / "hparams.json")
    settings = settings_from_config(sim_config, temperature, hparams["model"]["prior_sigma"], seed)
    columns = ["step", "time_ps", "potential_energy", "temperature", "production"]
    if training["status"] != "completed":
        status = {"status": "skipped", "reason": f"training {training['status']}: {training['reason']}", "step": 0}
        pd.DataFrame(columns=columns).to_csv(out / "thermo.csv", index=False)
        with H5MDWriter(out / "trajectory.h5", creator="balancebench.tasks.cg_benzene.simulation", provenance=provenance):
            pass
    else:
        calc = CGCalculator.from_checkpoint(model_dir, skin=float(sim_config.get("skin", 1.0)),
                                            dtype=getattr(torch, sim_config.get("precision", "float64")),
                                            device=resolve_device(sim_config.get("device", "auto"), "simulation.device"))
        frame = int(dataset.split["test"][0])
        atoms = atoms_from_frame(dataset.positions[frame], dataset.box[frame], float(dataset.masses[0]), calc)
        total = settings.steps(settings.equilibration) + settings.steps(settings.production)
        start = time.perf_counter()
        # a line at least every 10 % of the run (step, T, ETA) in the rule log; a bar on a terminal
        with Progress(total, "NVT", logger=log, every=0.1) as reporter:
            result = run_nvt(atoms, settings, progress=lambda step, n, temperature: reporter.update(
                step, T=f"{temperature:.1f} K"))
        seconds = time.perf_counter() - start
        status = {**result.summary(), "start_frame": frame, "seconds": seconds,
                  "steps_per_second": result.step / seconds if seconds > 0 else None, "total_steps": total,
                  "verlet_builds": calc.verlet.builds, "preference": calc.preference}
        pd.DataFrame({k: result.thermo.get(k, []) for k in columns}).to_csv(out / "thermo.csv", index=False)
        with H5MDWriter(out / "trajectory.h5", creator="balancebench.tasks.cg_benzene.simulation", provenance=provenance) as writer:
            writer.particle_group("beads", {"mass": (np.asarray(atoms.get_masses()), "amu")})
            for t, x in zip(result.frame_times if result.positions is not None else [],
                            result.positions if result.positions is not None else []):
                step = int(round(t * 1000.0 / settings.timestep))
                writer.append("particles/beads/position", x, step, t, unit="angstrom")
                writer.append("particles/beads/box/edges", result.box, step, t, unit="angstrom")
            th = result.thermo
            for k in range(len(th.get("step", []))):
                writer.append("observables/potential_energy", th["potential_energy"][k], int(th["step"][k]),
                              float(th["time_ps"][k]), unit="kcal mol-1")
                writer.append("observables/temperature", th["temperature"][k], int(th["step"][k]),
                              float(th["time_ps"][k]), unit="K")
    status.update({"settings": asdict(settings), "training_status": training["status"]})
    (out / "status.json").write_text(json.dumps(status, indent=2, default=float) + "\n")
    return status
