"""Atomistic stage speed: ns/day of the demo system and the cost of Python-side frame extraction.

Three runs of the same equilibrated input and the same NVT production protocol,
in one process, on the same threads:

  plain      LAMMPS ``run`` of the whole production length, no per-frame output
  dump       the same with LAMMPS's own ``dump custom`` of x, y, z, fx, fy, fz, image every frame
  balancebench  :func:`balancebench.tasks.cg_benzene.atomistic.md.production` (chunked runs, numpy extraction,
             per-molecule computes, H5MD writing)

The figure of merit is the overhead ratio balancebench / plain (target < 1.10).
A second part measures steps/s of 500 molecules (the paper's size) to extrapolate
the paper protocol.

    .venv/bin/python benchmarks/bench_atomistic.py [--molecules 125] [--threads 2] [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from balancebench.tasks.cg_benzene.atomistic import builder, md
from balancebench.tasks.cg_benzene.trajectory import H5MDWriter


def equilibrated_input(workdir: Path, n_molecules: int, threads: int, pair_cutoff: float) -> Path:
    system = builder.build_benzene_box(n_molecules, 0.35, seed=1)
    builder.write_lammps_data(system, workdir / "start.data")
    settings = md.MDSettings(pair_cutoff=pair_cutoff, compress_duration=3.0, npt_duration=4.0, rescale_duration=0.5)
    md.equilibrate(workdir / "start.data", workdir / "eq.data", workdir / "trace.csv", settings, seed=1, threads=threads)
    return workdir / "eq.data"


def plain_run(data: Path, settings: md.MDSettings, steps_per_frame: int, frames: int, threads: int,
              dump: Path | None = None) -> float:
    with md.LammpsSession(data, settings, threads=threads) as session:
        s = settings
        session.command(f"fix thermostat all rigid/nvt/small molecule temp {s.temperature} {s.temperature} {s.tdamp}")
        session.command(f"thermo {steps_per_frame}")
        if dump:
            session.command(f"dump frames all custom {steps_per_frame} {dump} id mol x y z fx fy fz ix iy iz")
        session.run(0)
        start = time.perf_counter()
        session.command(f"run {steps_per_frame * frames} pre no post no")
        return time.perf_counter() - start


def extracted_run(data: Path, settings: md.MDSettings, workdir: Path, threads: int) -> float:
    start = time.perf_counter()
    with H5MDWriter(workdir / "bench.h5") as writer:
        md.production(data, writer, settings, threads=threads)
    return time.perf_counter() - start


def ns_per_day(steps: int, timestep_fs: float, seconds: float) -> float:
    return steps * timestep_fs * 1e-6 / seconds * 86400.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", type=int, default=125)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--frame-interval", type=float, default=0.2, help="ps (demo config)")
    parser.add_argument("--paper-molecules", type=int, default=500)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = equilibrated_input(workdir, args.molecules, args.threads, 10.0)
        settings = md.MDSettings(pair_cutoff=10.0, nvt_duration=args.frames * args.frame_interval,
                                 frame_interval=args.frame_interval)
        spf = settings.steps(settings.frame_interval)
        steps = spf * args.frames
        # warm-up (first-touch of the PPPM grid and neighbour structures), then alternate the variants
        plain_run(data, settings, spf, 5, args.threads)
        timings = {"plain": [], "dump": [], "balancebench": []}
        for _ in range(2):
            timings["plain"].append(plain_run(data, settings, spf, args.frames, args.threads))
            timings["dump"].append(plain_run(data, settings, spf, args.frames, args.threads, dump=workdir / "d.lammpstrj"))
            timings["balancebench"].append(extracted_run(data, settings, workdir, args.threads))
        best = {k: min(v) for k, v in timings.items()}
        results["demo"] = {
            "molecules": args.molecules, "threads": args.threads, "frames": args.frames, "steps": steps,
            "seconds": best,
            "ns_per_day": {k: ns_per_day(steps, settings.timestep, v) for k, v in best.items()},
            "steps_per_second_plain": steps / best["plain"],
            "overhead_vs_plain": best["balancebench"] / best["plain"] - 1.0,
            "overhead_vs_dump": best["balancebench"] / best["dump"] - 1.0,
        }
        if not args.skip_paper:
            pdir = workdir / "paper"
            pdir.mkdir()
            pdata = equilibrated_input(pdir, args.paper_molecules, args.threads, 12.0)
            psettings = md.MDSettings(pair_cutoff=12.0)
            pspf = psettings.steps(2.0)
            seconds = plain_run(pdata, psettings, pspf, 2, args.threads)
            sps = 2 * pspf / seconds
            paper_steps = (20.0 + 1000.0 + 10.0 + 20000.0) * 1000.0 / psettings.timestep
            results["paper_size"] = {
                "molecules": args.paper_molecules, "threads": args.threads, "steps_per_second": sps,
                "ns_per_day": ns_per_day(1, psettings.timestep, 1.0 / sps),
                "paper_protocol_hours_here": paper_steps / sps / 3600.0,
            }
    print(json.dumps(results, indent=2))
    demo = results["demo"]
    print(f"\ndemo ({demo['molecules']} molecules, {demo['threads']} threads): "
          f"{demo['ns_per_day']['plain']:.2f} ns/day plain, {demo['ns_per_day']['balancebench']:.2f} ns/day with "
          f"extraction; overhead {100 * demo['overhead_vs_plain']:.1f} % vs plain, "
          f"{100 * demo['overhead_vs_dump']:.1f} % vs LAMMPS dump")
    if "paper_size" in results:
        p = results["paper_size"]
        print(f"paper size ({p['molecules']} molecules, {p['threads']} threads): {p['steps_per_second']:.1f} steps/s, "
              f"{p['ns_per_day']:.2f} ns/day -> paper protocol {p['paper_protocol_hours_here']:.0f} h here")


if __name__ == "__main__":
    main()
