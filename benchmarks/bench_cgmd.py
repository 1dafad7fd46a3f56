"""CG MD speed: ASE Langevin steps/s with our CGCalculator at 125 and 500 beads.

In one process, on the same atoms and integrator:

  cgschnet   CGCalculator (SchNet + prior, Verlet list with 1 A skin), demo or paper hyperparameters
  forces     the model's energy + forces alone (no ASE, no neighbour list): what the MD step cannot beat
  lj         ASE's own LennardJones calculator (rc 10 A): a reference for ASE's per-step overhead

The model is untrained (random weights scaled down, prior on), which costs exactly what a
trained one costs. Figures: steps/s, ns/day at 4 fs, and the ratios cgschnet / forces
(overhead of ASE + neighbour list) and lj / cgschnet.

    .venv/bin/python benchmarks/bench_cgmd.py [--threads 1] [--steps 200] [--dtype float64|float32] [--device cpu|cuda]
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

from balancebench.model import CGSchNet, ModelConfig
from balancebench.simulation import EV_PER_KCAL_MOL, CGCalculator, atoms_from_frame, initialise_velocities

SIZES = {
    125: dict(hidden_channels=32, num_filters=32, num_interactions=2, num_gaussians=25, cutoff=10.0),
    500: dict(hidden_channels=64, num_filters=64, num_interactions=3, num_gaussians=50, cutoff=12.0),
}


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


def md_rate(atoms, steps: int) -> float:
    initialise_velocities(atoms, 340.0, seed=1)
    dyn = Langevin(atoms, 4.0 * units.fs, temperature_K=340.0, friction=0.002, rng=np.random.default_rng(1))
    dyn.run(5)
    start = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    out = {"device": args.device, "threads": args.threads, "dtype": args.dtype}
    for n, hp in SIZES.items():
        positions, box = packing(n)
        torch.manual_seed(0)
        model = CGSchNet(ModelConfig(**hp))
        model.set_energy_scale(-6.85, 0.1)
        calc = CGCalculator(model, skin=1.0, device=args.device, dtype=dtype)
        rate = md_rate(atoms_from_frame(positions, box, calculator=calc), args.steps)
        x = torch.as_tensor(positions, dtype=dtype, device=args.device)
        from balancebench.neighbors import neighbor_list

        nl = neighbor_list(x, box, hp["cutoff"])
        calc.model.frame_energy_and_forces(x, box, nl)
        start = time.perf_counter()
        for _ in range(args.steps):
            calc.model.frame_energy_and_forces(x, box, nl)
        if args.device == "cuda":
            torch.cuda.synchronize()
        forces_rate = args.steps / (time.perf_counter() - start)
        lj = atoms_from_frame(positions, box, calculator=LennardJones(sigma=5.3, epsilon=0.6 * EV_PER_KCAL_MOL,
                                                                       rc=10.0, smooth=True))
        lj_rate = md_rate(lj, args.steps)
        out[f"{n}_beads"] = {
            "hyperparameters": hp, "steps_per_second": rate, "ns_per_day_at_4fs": rate * 4e-6 * 86400,
            "force_evaluations_per_second": forces_rate, "lj_steps_per_second": lj_rate,
            "md_step_over_force_call": forces_rate / rate, "lj_over_cgschnet": lj_rate / rate,
            "verlet_builds": calc.verlet.builds,
        }
    print(json.dumps(out, indent=2))
    for n in SIZES:
        r = out[f"{n}_beads"]
        print(f"{n} beads: {r['steps_per_second']:.0f} steps/s ({r['ns_per_day_at_4fs']:.1f} ns/day at 4 fs); "
              f"a step costs {r['md_step_over_force_call']:.2f} model calls; ASE LJ runs {r['lj_over_cgschnet']:.1f}x faster")


if __name__ == "__main__":
    main()
