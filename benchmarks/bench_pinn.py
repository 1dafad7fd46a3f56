"""Training speed of our plain PINN against DeepXDE on Helmholtz 2D, and the balancing methods' cost per iteration.

Issue 26: the same network ([2, 50, 50, 50, 1], tanh, Glorot-normal weights, zero biases), the same problem (Wang,
Teng & Perdikaris 2021: Delta u + k^2 u = q on [-1, 1]^2, u = 0 on the boundary, a1 = 1, a2 = 4, k = 1), the same
points per iteration (128 residual points, 128 on each of the 4 edges = 512 boundary points, all fresh every
iteration), Adam at lr 1e-3, one thread, in one process:

  ours       the task ``pinn``'s training path through the core trainer (``Trainer.train_step``: fresh seeded
             points, the residual by autograd, the named losses, the method's backward and Adam step) under
             the method ``constant`` (the plain PINN)
  deepxde    DeepXDE (PyTorch backend) ``dde.Model.train`` with a ``PDEPointResampler(period=1)`` (fresh
             points every iteration, as ours); ``deepxde_fixed`` the same without resampling (DeepXDE's
             default: one set of points for the whole training), for reference

Each path runs ``--iterations`` iterations per repeat after one warm-up repeat, interleaved (the order rotated),
``--repeats`` times; reported: iterations per second (median and best over repeats) and the ratio ours / DeepXDE
(the issue's goal: >= 1.5). Then every PINN balancing method's seconds per iteration as a ratio to ``constant``
on the same path (median over repeats).

DeepXDE is an optional extra (``pip install -e '.[bench-pinn]'``, pinned); without it the DeepXDE rows are
skipped with that message.

    .venv/bin/python benchmarks/bench_pinn.py [--iterations 300] [--repeats 3] [--methods constant,lra,...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

METHODS = ("constant", "random_weights", "lra", "lra_mean", "relobralo", "ntk", "softadapt", "uncertainty",
           "gradnorm", "mgda", "torchjd_upgrad")


def our_trainer(iterations: int, method: str, tmp: Path, seed: int = 1):
    """A Trainer of the task pinn (Helmholtz) with ``iterations`` items per epoch under ``method``."""
    import yaml

    from balancebench.config import validate_config
    from balancebench.tasks.base import get_task
    from balancebench.training import trainer_for

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config" / "pinn.yaml").read_text())
    if "tasks" in config:  # a multi-task file: the Helmholtz run's own config
        config = yaml.safe_load((repo / config["tasks"]["helmholtz2d"]).read_text())
    config["pinn"].update({"problem": "helmholtz2d", "iterations_per_epoch": iterations, "points_per_term": 128})
    config = validate_config(config)
    task = get_task("pinn", config)
    path = tmp / "pinn.npz"
    if not path.exists():
        task.make_dataset(config, path)
    dataset = task.read_dataset(path)
    training = {k: v for k, v in config["training"].items() if k not in ("seeds", "seed_design", "multiseed")}
    training.update({"learning_rate": 1e-3, "max_epochs": 1, "device": "cpu", "dtype": "float32"})
    return trainer_for(dataset, config["model"], training, method, {}, seed, task=task)


def time_ours(iterations: int, method: str, tmp: Path) -> float:
    """Seconds for ``iterations`` training steps of ours (``method``), after building the trainer."""
    trainer = our_trainer(iterations, method, tmp)
    order = trainer.begin_epoch()
    start = time.perf_counter()
    for i in order:
        trainer.train_step([int(i)])
    return time.perf_counter() - start


def deepxde_model(resample: bool):
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde

    dde.config.set_default_float("float32")
    a1, a2, k = 1.0, 4.0, 1.0

    def pde(x, u):
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        u_yy = dde.grad.hessian(u, x, i=1, j=1)
        s = torch.sin(a1 * math.pi * x[:, 0:1]) * torch.sin(a2 * math.pi * x[:, 1:2])
        q = (k ** 2 - (a1 * math.pi) ** 2 - (a2 * math.pi) ** 2) * s
        return u_xx + u_yy + k ** 2 * u - q

    geom = dde.geometry.Rectangle([-1.0, -1.0], [1.0, 1.0])
    bc = dde.icbc.DirichletBC(geom, lambda x: 0.0, lambda x, on_boundary: on_boundary)
    data = dde.data.PDE(geom, pde, bc, num_domain=128, num_boundary=512, train_distribution="pseudo")
    net = dde.nn.FNN([2, 50, 50, 50, 1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-3)
    callbacks = [dde.callbacks.PDEPointResampler(period=1)] if resample else []
    return model, callbacks


def time_deepxde(iterations: int, resample: bool) -> float:
    model, callbacks = deepxde_model(resample)
    start = time.perf_counter()
    model.train(iterations=iterations, display_every=10 * iterations, callbacks=callbacks, verbose=0)
    return time.perf_counter() - start


def have_deepxde() -> bool:
    try:
        os.environ.setdefault("DDE_BACKEND", "pytorch")
        import deepxde  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from balancebench.balancing import available_methods, missing_requirements

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}")
    paths = ["ours"] + (["deepxde", "deepxde_fixed"] if have_deepxde() else [])
    if len(paths) == 1:
        print("DeepXDE is not installed: pip install -e '.[bench-pinn]' (DeepXDE, PyTorch backend); "
              "its rows are skipped")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = {"ours": lambda: time_ours(args.iterations, "constant", tmp),
               "deepxde": lambda: time_deepxde(args.iterations, True),
               "deepxde_fixed": lambda: time_deepxde(args.iterations, False)}
        for p in paths:  # warm-up
            run[p]()
        seconds = {p: [] for p in paths}
        for r in range(args.repeats):
            for p in paths[r % len(paths):] + paths[: r % len(paths)]:
                seconds[p].append(run[p]())
        its = {p: [args.iterations / s for s in v] for p, v in seconds.items()}
        out = {"iterations": args.iterations, "repeats": args.repeats, "threads": args.threads,
               "torch": torch.__version__, "paths": {}}
        print(f"Helmholtz 2D, [2, 50 x 3, 1], 128 + 512 points per iteration, {args.iterations} iterations, "
              f"{args.repeats} repeats, {args.threads} thread(s)")
        for p in paths:
            med, best = float(np.median(its[p])), float(np.max(its[p]))
            out["paths"][p] = {"it_per_s_median": med, "it_per_s_best": best}
            print(f"  {p:14s} {med:8.1f} it/s median  {best:8.1f} best")
        if "deepxde" in its:
            paired = [a / b for a, b in zip(its["ours"], its["deepxde"])]
            ratio = float(np.median(its["ours"]) / np.median(its["deepxde"]))
            out["ours_over_deepxde"] = {"of_medians": ratio, "paired_median": float(np.median(paired)),
                                        "goal": 1.5, "met": bool(ratio >= 1.5)}
            fixed = float(np.median(its["ours"]) / np.median(its["deepxde_fixed"]))
            out["ours_over_deepxde_fixed_points"] = fixed
            print(f"  ours / DeepXDE (fresh points): {ratio:.2f} (paired median {np.median(paired):.2f}; goal 1.5: "
                  f"{'met' if ratio >= 1.5 else 'NOT met'}); ours / DeepXDE with fixed points: {fixed:.2f}")
        per_it = {}
        for m in methods:
            if missing_requirements(m):
                print(f"  {m}: skipped, needs {missing_requirements(m)}")
                continue
            time_ours(min(args.iterations, 50), m, tmp)  # warm-up
            per_it[m] = float(np.median([time_ours(args.iterations, m, tmp) / args.iterations
                                         for _ in range(args.repeats)]))
        if "constant" in per_it:
            print("  seconds per iteration, and the ratio to the plain PINN (constant):")
            out["methods"] = {}
            for m, s in per_it.items():
                out["methods"][m] = {"seconds_per_iteration": s, "ratio_to_constant": s / per_it["constant"]}
                print(f"    {m:16s} {s * 1e3:7.2f} ms  x{s / per_it['constant']:.2f}")
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
