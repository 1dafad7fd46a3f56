"""LAMMPS driver for rigid OPLS-AA benzene: compression, NPT equilibration, NVT production.

Protocol (seed 000 Sec. 2.2, with the settings that proved stable here, see
docs/atomistic.md):

1. NVT compression (``fix deform``) from the sparse random start to
   ``compress.density``; NPT straight after building cavitates at 340 K.
2. NPT at T, P (``fix rigid/npt/small``); the mean density is taken over the
   last ``npt.average_fraction`` of the run.
3. A short NVT ``fix deform`` to exactly that mean density, then NVT production
   (``fix rigid/nvt/small``) saving a frame every ``nvt.frame_interval``.

Intermolecular energy. Intramolecular pairs are removed from the real-space
sum (``neigh_modify exclude molecule/intra all``), so ``evdwl + ecoul`` are
purely intermolecular (``evdwl`` includes the LJ tail correction when enabled).
The reciprocal-space term ``elong`` still contains each molecule's smooth
intramolecular term sum q_i q_j erf(alpha r_ij) / r_ij, a constant for rigid
molecules; subtracting it gives the exact Ewald intermolecular energy

    U_A = evdwl + ecoul + elong - N_mol * sum_{i<j in molecule} qqr2e q_i q_j erf(alpha r_ij) / r_ij

(kcal/mol), verified against an independent Ewald sum in tests/test_atomistic_md.py.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from balancebench.progress import Progress
from balancebench.tasks.cg_benzene.atomistic import forcefield as ff
from balancebench.tasks.cg_benzene.lammps_runtime import import_lammps

log = logging.getLogger(__name__)

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 g/mol / A^3 / N_A in g/cm^3


class LammpsError(RuntimeError):
    """LAMMPS refused a command; the message is LAMMPS's own."""


@dataclass(frozen=True)
class MDSettings:
    temperature: float = 340.0  # K
    pressure: float = 1.0  # atm
    timestep: float = 4.0  # fs
    pair_cutoff: float = 10.0  # A
    tail_correction: bool = True
    kspace_style: str = "pppm"
    kspace_accuracy: float = 1e-5
    g_ewald: float = 0.25  # 1/A
    tdamp: float = 100.0  # fs
    pdamp: float = 2000.0  # fs
    compress_density: float = 0.83  # g/cm^3
    compress_duration: float = 5.0  # ps
    npt_duration: float = 20.0  # ps
    npt_average_fraction: float = 0.5
    rescale_duration: float = 2.0  # ps
    nvt_duration: float = 60.0  # ps
    frame_interval: float = 0.3  # ps
    thermo_interval: float = 0.2  # ps
    atom_precision: str = "float32"

    @classmethod
    def from_config(cls, md: dict) -> "MDSettings":
        return cls(
            temperature=md["temperature"], pressure=md["pressure"], timestep=md["timestep"],
            pair_cutoff=md["pair_cutoff"], tail_correction=md["tail_correction"],
            kspace_style=md["kspace"]["style"], kspace_accuracy=md["kspace"]["accuracy"],
            g_ewald=md["kspace"]["g_ewald"], tdamp=md["tdamp"], pdamp=md["pdamp"],
            compress_density=md["compress"]["density"], compress_duration=md["compress"]["duration"],
            npt_duration=md["npt"]["duration"], npt_average_fraction=md["npt"]["average_fraction"],
            rescale_duration=md["npt"]["rescale_duration"], nvt_duration=md["nvt"]["duration"],
            frame_interval=md["nvt"]["frame_interval"], thermo_interval=md["thermo_interval"],
            atom_precision=md["atom_precision"],
        )

    def steps(self, duration_ps: float) -> int:
        return max(1, int(round(duration_ps * 1000.0 / self.timestep)))


class LammpsSession:
    """One LAMMPS instance set up for OPLS-AA benzene; commands raise :class:`LammpsError` with LAMMPS's message."""

    def __init__(self, data_file: str | Path, settings: MDSettings, log_file: str | Path | None = None,
                 threads: int = 1):
        lammps = import_lammps()
        args = ["-screen", "none", "-log", str(log_file) if log_file else "none", "-nocite"]
        if threads > 1:
            args += ["-sf", "omp", "-pk", "omp", str(threads)]
        self.lmp = lammps.lammps(cmdargs=args)
        self.settings = settings
        self._setup_done = False
        s = settings
        kspace = f"kspace_style {s.kspace_style} {s.kspace_accuracy}"
        self.commands([
            "units real",
            "atom_style full",
            "boundary p p p",
            f"pair_style lj/cut/coul/long {s.pair_cutoff}",
            "bond_style harmonic",
            "angle_style harmonic",
            "dihedral_style opls",
            "improper_style cvff",
            "special_bonds lj/coul {} {} {}".format(*ff.SPECIAL_BONDS),
            f"read_data {data_file}",
            f"pair_modify mix geometric tail {'yes' if s.tail_correction else 'no'}",
            kspace,
            f"kspace_modify gewald {s.g_ewald}",
            "neighbor 2.0 bin",
            "neigh_modify every 1 delay 0 check yes exclude molecule/intra all",
            f"timestep {s.timestep}",
            "thermo_style custom step time temp press pe evdwl ecoul elong etail vol density",
            "thermo_modify flush yes",
            "compute molchunk all chunk/atom molecule",
            "compute molcom all com/chunk molchunk",
            "compute atomforce all property/atom fx fy fz",
            "compute molforce all reduce/chunk molchunk sum c_atomforce[1] c_atomforce[2] c_atomforce[3]",
        ])
        self.n_atoms = int(self.lmp.get_natoms())
        self.n_molecules = int(self.lmp.extract_global("nmolecule") or 0) or self._count_molecules()
        self.intra_erf = ff.intramolecular_erf_energy(s.g_ewald, qqr2e=float(self.lmp.extract_global("qqr2e")))

    # -- commands ----------------------------------------------------------------
    def command(self, cmd: str) -> None:
        try:
            self.lmp.command(cmd)
        except Exception as exc:  # the lammps module raises a bare Exception carrying LAMMPS's ERROR text
            raise LammpsError(f"LAMMPS failed on `{cmd}`: {exc}") from exc

    def commands(self, cmds: list[str]) -> None:
        for cmd in cmds:
            self.command(cmd)

    def run(self, steps: int, phase: tuple[int, int] | None = None) -> None:
        """Run ``steps`` steps; full setup only on the first run after a fix changed.

        ``phase`` = (first, last) timestep of a phase split over several ``run``
        commands, passed as ``start``/``stop`` so that time-dependent fixes such as
        ``fix deform`` ramp over the whole phase rather than over each chunk.
        """
        flags = f" start {phase[0]} stop {phase[1]}" if phase else ""
        flags += "" if not self._setup_done else " pre no post no"
        self.command(f"run {steps}{flags}")
        self._setup_done = True

    @property
    def step(self) -> int:
        return int(self.lmp.extract_global("ntimestep"))

    def changed(self) -> None:
        """Call after defining or deleting fixes: the next run needs a full setup."""
        self._setup_done = False

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- state -------------------------------------------------------------------
    def _count_molecules(self) -> int:
        mol = self.lmp.numpy.extract_atom("molecule")[: self.lmp.extract_global("nlocal")]
        return int(np.max(mol))

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi, *_ = self.lmp.extract_box()
        return np.array(lo), np.array(hi)

    def thermo(self, name: str) -> float:
        return float(self.lmp.get_thermo(name))

    def density(self) -> float:
        return self.thermo("density")

    def energies(self) -> dict[str, float]:
        """Per-frame energies, kcal/mol (extensive). ``U_A`` is the intermolecular energy of the module docstring."""
        e = {k: self.thermo(k) for k in ("pe", "evdwl", "ecoul", "elong", "etail")}
        e["intra_correction"] = -self.n_molecules * self.intra_erf
        e["U_A"] = e["evdwl"] + e["ecoul"] + e["elong"] + e["intra_correction"]
        return e

    def scalars(self) -> dict[str, float]:
        out = self.energies()
        out.update(temperature=self.thermo("temp"), pressure=self.thermo("press"),
                   density=self.thermo("density"), volume=self.thermo("vol"))
        return out

    def atoms_sorted(self) -> dict[str, np.ndarray]:
        """Per-atom unwrapped positions (A) and forces (kcal/mol/A), ordered by atom id."""
        lmp = self.lmp
        nlocal = lmp.extract_global("nlocal")
        ids = lmp.numpy.extract_atom("id")[:nlocal]
        order = np.argsort(ids)
        x = np.array(lmp.numpy.extract_atom("x")[:nlocal][order], dtype=np.float64)
        f = np.array(lmp.numpy.extract_atom("f")[:nlocal][order], dtype=np.float64)
        image = np.array(lmp.numpy.extract_atom("image")[:nlocal][order], dtype=np.int64)
        mask, bits, bits2, imax = (lmp.extract_setting(k) for k in ("IMGMASK", "IMGBITS", "IMG2BITS", "IMGMAX"))
        flags = np.stack([(image & mask) - imax, ((image >> bits) & mask) - imax, (image >> bits2) - imax], axis=1)
        lo, hi = self.box()
        return {"position": x + flags * (hi - lo), "force": f, "image": flags}

    def molecules(self) -> dict[str, np.ndarray]:
        """Per-molecule centre of mass (unwrapped, A) and summed force (kcal/mol/A), computed inside LAMMPS."""
        lammps = import_lammps()
        com = self.lmp.numpy.extract_compute("molcom", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_ARRAY)
        force = self.lmp.numpy.extract_compute("molforce", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_ARRAY)
        return {"position": np.array(com, dtype=np.float64), "force": np.array(force, dtype=np.float64)}


def _write_trace(rows: list[dict], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _deform_to_density(session: LammpsSession, density: float, duration_ps: float, trace: list, phase: str,
                       t0: float) -> float:
    """NVT run that deforms the cubic box linearly to ``density`` (rigid-body COMs remapped)."""
    s = session.settings
    lo, hi = session.box()
    scale = (session.density() / density) ** (1.0 / 3.0)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * scale
    session.commands([
        f"fix thermostat all rigid/nvt/small molecule temp {s.temperature} {s.temperature} {s.tdamp}",
        "fix deform all deform 1 " + " ".join(f"{ax} final {c - h:.10f} {c + h:.10f}"
                                              for ax, c, h in zip("xyz", centre, half)) + " remap x",
    ])
    session.changed()
    t = _run_traced(session, duration_ps, trace, phase, t0)
    session.commands(["unfix deform", "unfix thermostat"])
    session.changed()
    return t


def _run_traced(session: LammpsSession, duration_ps: float, trace: list, phase: str, t0: float) -> float:
    s = session.settings
    total = s.steps(duration_ps)
    chunk = s.steps(s.thermo_interval)
    first = session.step
    done = 0
    reporter = Progress(total, f"LAMMPS {phase}", logger=log, every=0.1)  # a line per 10 % of the stage
    while done < total:
        n = min(chunk, total - done)
        session.run(n, phase=(first, first + total))
        done += n
        row = {"phase": phase, "time_ps": t0 + done * s.timestep / 1000.0}
        values = session.scalars()
        row.update({k: values[k] for k in ("temperature", "pressure", "density", "volume")})
        row["U_A_per_molecule"] = values["U_A"] / session.n_molecules
        trace.append(row)
        reporter.update(done, T=f"{row['temperature']:.1f} K", P=f"{row['pressure']:.0f} atm",
                        density=f"{row['density']:.4f} g/cm^3")
        if not np.all(np.isfinite([row["temperature"], row["pressure"], row["density"]])):
            reporter.close()
            raise LammpsError(f"non-finite thermodynamics in {phase} at t = {row['time_ps']:.3f} ps: {row}")
    reporter.close()
    log.info("%s done at t = %.1f ps: T = %.1f K, P = %.0f atm, density = %.4f g/cm^3, U_A = %.3f kcal/mol/molecule",
             phase, trace[-1]["time_ps"], trace[-1]["temperature"], trace[-1]["pressure"], trace[-1]["density"],
             trace[-1]["U_A_per_molecule"])
    return t0 + total * s.timestep / 1000.0


def equilibrate(data_in: str | Path, data_out: str | Path, trace_csv: str | Path, settings: MDSettings,
                seed: int, lammps_log: str | Path | None = None, threads: int = 1) -> dict:
    """Compression, NPT, and rescaling to the mean NPT density; writes the equilibrated data file.

    Returns a summary: mean NPT density and its standard error, temperatures, final density.
    """
    s = settings
    trace: list[dict] = []
    with LammpsSession(data_in, s, lammps_log, threads) as session:
        session.command(f"velocity all create {s.temperature} {seed} mom yes rot yes dist gaussian")
        t = _deform_to_density(session, s.compress_density, s.compress_duration, trace, "compress", 0.0)
        session.command(
            f"fix thermostat all rigid/npt/small molecule temp {s.temperature} {s.temperature} {s.tdamp} "
            f"iso {s.pressure} {s.pressure} {s.pdamp}"
        )
        session.changed()
        t = _run_traced(session, s.npt_duration, trace, "npt", t)
        session.command("unfix thermostat")
        session.changed()
        npt = np.array([r["density"] for r in trace if r["phase"] == "npt"])
        tail = npt[int(round(len(npt) * (1.0 - s.npt_average_fraction))):]
        mean_density = float(tail.mean())
        t = _deform_to_density(session, mean_density, s.rescale_duration, trace, "rescale", t)
        final_density = session.density()
        session.command(f"write_data {data_out}")
    _write_trace(trace, trace_csv)
    npt_temps = np.array([r["temperature"] for r in trace if r["phase"] == "npt"])
    summary = {
        "npt_mean_density": mean_density,
        "npt_density_std": float(tail.std(ddof=1)) if len(tail) > 1 else 0.0,
        "npt_samples_averaged": int(len(tail)),
        "npt_mean_temperature": float(npt_temps.mean()),
        "production_density": final_density,
        "settings": asdict(s),
    }
    log.info("equilibrated: %s", summary)
    return summary


def production(data_in: str | Path, writer, settings: MDSettings, lammps_log: str | Path | None = None,
               threads: int = 1, progress_every: int = 0) -> dict:
    """NVT production writing per-frame all-atom and per-molecule data through ``writer`` (H5MDWriter).

    ``progress_every`` > 0 logs a progress line (frames, T, ns/day, ETA) every that many frames
    (:class:`balancebench.progress.Progress`, a bar on a terminal).
    Returns a summary of the run (frames, mean U_A per molecule, temperature, density).
    """
    import time as _time

    s = settings
    atom_dtype = np.float32 if s.atom_precision == "float32" else np.float64
    steps_per_frame = s.steps(s.frame_interval)
    n_frames = int(round(s.nvt_duration / s.frame_interval))
    with LammpsSession(data_in, s, lammps_log, threads) as session:
        lmp = session.lmp
        nlocal = lmp.extract_global("nlocal")
        ids = lmp.numpy.extract_atom("id")[:nlocal]
        order = np.argsort(ids)
        types = np.array(lmp.numpy.extract_atom("type")[:nlocal][order])
        mol_ids = np.array(lmp.numpy.extract_atom("molecule")[:nlocal][order])
        masses = ff.atom_masses(types)
        charges = np.array(lmp.numpy.extract_atom("q")[:nlocal][order])
        writer.particle_group("atoms", {
            "species": (types, ""), "mass": (masses, "g/mol"), "charge": (charges, "e"),
            "molecule_id": (mol_ids, ""),
        })
        mol_mass = np.bincount(mol_ids - 1, weights=masses)
        writer.particle_group("molecules", {"mass": (mol_mass, "g/mol"),
                                            "species": (np.ones(len(mol_mass), dtype=np.int32), "")})
        session.command(f"fix thermostat all rigid/nvt/small molecule temp {s.temperature} {s.temperature} {s.tdamp}")
        session.changed()
        session.command(f"thermo {steps_per_frame}")
        u_a, temps, dens = [], [], []
        started = _time.perf_counter()
        reporter = (Progress(n_frames, "LAMMPS production", logger=log, every=min(1.0, progress_every / n_frames),
                             unit="frame") if progress_every else None)
        for frame in range(1, n_frames + 1):
            session.run(steps_per_frame)
            step = frame * steps_per_frame
            time = step * s.timestep / 1000.0
            atoms = session.atoms_sorted()
            mols = session.molecules()
            values = session.scalars()
            lo, hi = session.box()
            for group, data in (("atoms", atoms), ("molecules", mols)):
                dtype = atom_dtype if group == "atoms" else np.float64
                writer.append(f"particles/{group}/position", data["position"], step, time, "angstrom", dtype)
                writer.append(f"particles/{group}/force", data["force"], step, time, "kcal mol-1 angstrom-1", dtype)
                writer.append(f"particles/{group}/box/edges", hi - lo, step, time, "angstrom")
            units = {"temperature": "K", "pressure": "atm", "density": "g cm-3", "volume": "angstrom3"}
            for key, value in values.items():
                writer.append(f"observables/{key}", value, step, time, units.get(key, "kcal mol-1"))
            writer.append("observables/net_atomic_force", atoms["force"].sum(axis=0), step, time,
                          "kcal mol-1 angstrom-1")
            if not np.isfinite(values["U_A"]) or not np.isfinite(atoms["force"]).all():
                raise LammpsError(f"non-finite energy or forces at production frame {frame} (step {step})")
            u_a.append(values["U_A"])
            temps.append(values["temperature"])
            dens.append(values["density"])
            if reporter is not None:
                ns_per_day = time * 1e-3 / max(_time.perf_counter() - started, 1e-9) * 86400.0
                if reporter.update(frame, T=f"{values['temperature']:.1f} K", speed=f"{ns_per_day:.2f} ns/day"):
                    writer.flush()
        if reporter is not None:
            reporter.close()
        writer.flush()
    return {
        "frames": n_frames,
        "steps_per_frame": steps_per_frame,
        "mean_U_A_per_molecule": float(np.mean(u_a) / session.n_molecules),
        "mean_temperature": float(np.mean(temps)),
        "density": float(np.mean(dens)),
    }
