"""Many seeds in one process (training.multiseed) against the same seeds trained one after another.

Both sides train S seeds of one configuration (the demo's 32-feature model, softadapt, float32) for
the same epochs on the same frames with the ordinary Trainer:

  alone      S Trainer runs, one after another (the default workflow: one train job per seed, here
             without the process start-up each job pays on top)
  together   balancebench.multiseed.MultiSeedTrainer: the S models' energies and forces from one
             torch.func.vmap call per step, each seed's balancing method and optimizer as alone

Reported: seconds per epoch of all S seeds (wall, with the device synchronised; process CPU time too),
the ratio alone / together (> 1: the batched path is faster), and the largest difference between a
seed's weights trained both ways (float rounding only: tests/test_multiseed.py demands equality in
float64). The forward is shared, but every backward of a seed runs through the batched graph (~S times
one model's backward): on one CPU core the batched path is slower; the gain it exists for is on a
device that one small model leaves idle (a GPU), where the S seeds' work runs side by side.

Data: results/cg/dataset.h5 when run from a demo's directory, otherwise a Lennard-Jones bead liquid of
125 beads sampled by ASE (balancebench.tasks.cg_benzene.l2o_family.lj_bead_dataset).

    .venv/bin/python benchmarks/bench_multiseed.py --seeds 1 2 4 --epochs 2
    .venv/bin/python benchmarks/bench_multiseed.py --device cuda --seeds 1 4 8 16
"""

import argparse
import json
import time
from pathlib import Path

import torch

from balancebench.balancing import get_method
from balancebench.multiseed import MultiSeedTrainer
from balancebench.tasks.cg_benzene.model import ModelConfig
from balancebench.training import Trainer, TrainingSettings

MODEL = dict(hidden_channels=32, num_filters=32, num_interactions=2, num_gaussians=25, cutoff=10.0,
             filter_table=0.02)
METHOD, PARAMS = "softadapt", {"beta": 0.1}


def dataset(n_frames: int):
    path = Path("results/cg/dataset.h5")
    if path.exists():
        from balancebench.tasks.cg_benzene.cg import read_dataset

        return read_dataset(path), str(path)
    from balancebench.tasks.cg_benzene.l2o_family import lj_bead_dataset

    return lj_bead_dataset(n_frames=n_frames, n_side=5, spacing=5.6, seed=0), "LJ bead liquid, 125 beads"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(run, device: str) -> tuple[float, float]:
    synchronize(device)
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(data, n_seeds: int, epochs: int, batch_size: int, device: str, model: dict) -> dict:
    model = ModelConfig(**model)
    settings = TrainingSettings(max_epochs=epochs, batch_size=batch_size, learning_rate=3e-3, patience=epochs + 1,
                                device=device)
    seeds = list(range(1, n_seeds + 1))
    alone = [Trainer(data, model, settings, get_method(METHOD, **PARAMS), s) for s in seeds]
    results = {}
    wall_alone, cpu_alone = timed(lambda: results.update(alone=[t.run() for t in alone]), device)
    multi = MultiSeedTrainer(data, model, settings, METHOD, PARAMS, seeds)
    wall_together, cpu_together = timed(lambda: results.update(together=multi.run()), device)
    diff = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
               for t, u in zip(alone, multi.trainers)
               for a, b in zip(u.model.state_dict().values(), t.model.state_dict().values()) if b.is_floating_point())
    status = {side: sorted({r.status for r in rs}) for side, rs in results.items()}
    return {"seeds": n_seeds, "epochs": epochs, "status": status,
            "wall_s_per_epoch": {"alone": wall_alone / epochs, "together": wall_together / epochs},
            "cpu_s_per_epoch": {"alone": cpu_alone / epochs, "together": cpu_together / epochs},
            "speedup_wall": wall_alone / wall_together, "max_rel_weight_difference": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--exact", action="store_true", help="the exact filter instead of the demo's 0.02 A table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, source = dataset(args.frames)
    model = MODEL | ({"filter_table": None} if args.exact else {})
    rows = [bench(data, s, args.epochs, args.batch_size, args.device, model) for s in args.seeds]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    print(json.dumps({"device": device, "data": source, "model": model,
                      "method": METHOD, "rows": rows}, indent=2))
    for r in rows:
        print(f"{r['seeds']:3d} seeds on {device}: {r['wall_s_per_epoch']['alone']:.3f} s/epoch one after another, "
              f"{r['wall_s_per_epoch']['together']:.3f} s/epoch together -> {r['speedup_wall']:.2f}x; "
              f"weights differ by {r['max_rel_weight_difference']:.1e} (relative)")


if __name__ == "__main__":
    main()
