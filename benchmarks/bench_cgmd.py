"""CG MD speed: ASE Langevin steps/s with our CGCalculator at 125 and 500 beads, against today's autograd path.

In one process, on the same atoms and integrator, interleaved ``--repeats`` times:

  table      CGCalculator as the workflow uses it: explicit forces with the tabulated filter
             (FilterTable, h = 0.005 A, ~1e-8 relative in the forces), Verlet list with 1 A skin
  exact      CGCalculator(filter_table=None): explicit forces through the exact filter network
  autograd   the reference (the path before issue 14): the same model, forces by autograd of the energy
  lj         ASE's own LennardJones calculator (rc 10 A): a reference for ASE's per-step overhead

The model is untrained (random weights scaled down, prior on), which costs exactly what a
trained one costs. Rates are steps per second of process CPU time (robust when other jobs share
the cores) and of wall time; the figure of merit is table / autograd (issue 14 asks >= 2 at 500 beads).
The forces of the three CGSchNet paths on the start frame are compared (max relative deviation).

    .venv/bin/python benchmarks/bench_cgmd.py [--threads 1] [--steps 100] [--repeats 3] [--dtype float32|float64]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from ase import units
from ase.calculators.lj import LennardJones
from ase.md.langevin import Langevin

from balancebench.tasks.cg_benzene.model import CGSchNet, ModelConfig
from balancebench.tasks.cg_benzene.simulation import EV_PER_KCAL_MOL, CGCalculator, atoms_from_frame, initialise_velocities

SIZES = {
    125: dict(hidden_channels=32, num_filters=32, num_interactions=2, num_gaussians=25, cutoff=10.0),
    500: dict(hidden_channels=64, num_filters=64, num_interactions=3, num_gaussians=50, cutoff=12.0),
}


class AutogradCalculator(CGCalculator):
    """The reference: forces by autograd of the energy (CGSchNet.energy_and_forces_autograd), no table."""

    def __init__(self, model, **kwargs):
        super().__init__(model, filter_table=None, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        from ase.calculators.calculator import Calculator

        from balancebench.tasks.cg_benzene.model import GraphBatch

        Calculator.calculate(self, atoms, properties, system_changes)
        box = np.diag(self.atoms.cell.array).copy()
        x = torch.as_tensor(self.atoms.get_positions(), dtype=self.dtype, device=self.device)
        nl = self.verlet.get(x, box)
        batch = GraphBatch(x, nl, torch.zeros(len(x), dtype=torch.long), 1)
        energy, forces = self.model.energy_and_forces_autograd(batch)
        self.results["energy"] = self.results["free_energy"] = float(energy[0].detach()) * EV_PER_KCAL_MOL
        self.results["forces"] = forces.detach().cpu().numpy().astype(np.float64) * EV_PER_KCAL_MOL


def packing(n: int, density_per_a3: float = 125 / 26.9**3, seed: int = 0):
    """A random packing with beads > 4.2 A apart at the demo's number density."""
    rng = np.random.default_rng(seed)
    box = np.full(3, (n / density_per_a3) ** (1 / 3))
    x = []
    while len(x) < n:
        p = rng.uniform(0, 1, 3) * box
        d = np.array(x) - p if x else np.zeros((0, 3))
        d -= box * np.round(d / box)
        if not len(x) or np.min(np.einsum("ij,ij->i", d, d)) > 4.2**2:
            x.append(p)
    return np.array(x), box


def md_rate(atoms, steps: int) -> tuple[float, float]:
    """(steps per CPU second, steps per wall second) of Langevin at 4 fs from a fresh start."""
    initialise_velocities(atoms, 340.0, seed=1)
    dyn = Langevin(atoms, 4.0 * units.fs, temperature_K=340.0, friction=0.002, rng=np.random.default_rng(1))
    dyn.run(5)
    cpu, wall = time.process_time(), time.perf_counter()
    dyn.run(steps)
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float64", "float32"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    out = {"device": args.device, "threads": args.threads, "dtype": args.dtype, "steps": args.steps,
           "repeats": args.repeats}
    for n, hp in SIZES.items():
        positions, box = packing(n)
        torch.manual_seed(0)
        model = CGSchNet(ModelConfig(**hp))
        model.set_energy_scale(-6.85, 0.1)
        calcs = {"table": CGCalculator(model, skin=1.0, device=args.device, dtype=dtype),
                 "exact": CGCalculator(model, skin=1.0, device=args.device, dtype=dtype, filter_table=None),
                 "autograd": AutogradCalculator(model, skin=1.0, device=args.device, dtype=dtype)}
        forces = {k: atoms_from_frame(positions, box, calculator=c).get_forces() for k, c in calcs.items()}
        scale = np.abs(forces["autograd"]).max()
        rates = {k: {"cpu": [], "wall": []} for k in [*calcs, "lj"]}
        for _ in range(args.repeats):
            for k, c in calcs.items():
                cpu, wall = md_rate(atoms_from_frame(positions, box, calculator=c), args.steps)
                rates[k]["cpu"].append(cpu)
                rates[k]["wall"].append(wall)
            lj = LennardJones(sigma=5.3, epsilon=0.6 * EV_PER_KCAL_MOL, rc=10.0, smooth=True)
            cpu, wall = md_rate(atoms_from_frame(positions, box, calculator=lj), args.steps)
            rates["lj"]["cpu"].append(cpu)
            rates["lj"]["wall"].append(wall)
        summary = {k: {f"{clock}_steps_per_second_{stat}": float(fn(v[clock]))
                       for clock in ("cpu", "wall") for stat, fn in (("max", np.max), ("median", np.median))}
                   for k, v in rates.items()}
        out[f"{n}_beads"] = {
            "hyperparameters": hp, "rates": summary,
            "table_over_autograd_cpu_median": summary["table"]["cpu_steps_per_second_median"]
            / summary["autograd"]["cpu_steps_per_second_median"],
            "table_over_autograd_cpu_best": summary["table"]["cpu_steps_per_second_max"]
            / summary["autograd"]["cpu_steps_per_second_max"],
            "exact_over_autograd_cpu_median": summary["exact"]["cpu_steps_per_second_median"]
            / summary["autograd"]["cpu_steps_per_second_median"],
            "max_force_deviation_rel": {k: float(np.abs(forces[k] - forces["autograd"]).max() / scale)
                                        for k in ("table", "exact")},
            "verlet_builds": calcs["table"].verlet.builds,
        }
    print(json.dumps(out, indent=2))
    for n in SIZES:
        r = out[f"{n}_beads"]
        s = r["rates"]
        print(f"{n} beads ({args.dtype}): table {s['table']['cpu_steps_per_second_median']:.1f}, exact "
              f"{s['exact']['cpu_steps_per_second_median']:.1f}, autograd {s['autograd']['cpu_steps_per_second_median']:.1f}"
              f" steps/CPU-s (median of {args.repeats}) -> table/autograd {r['table_over_autograd_cpu_median']:.2f}x "
              f"(best {r['table_over_autograd_cpu_best']:.2f}x); forces deviate {r['max_force_deviation_rel']['table']:.1e}"
              f" (table), {r['max_force_deviation_rel']['exact']:.1e} (exact)")


if __name__ == "__main__":
    main()
