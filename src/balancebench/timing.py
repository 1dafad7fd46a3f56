"""t_ep and sigma_ep as counted work: the cost of the method, not of the machine's other jobs.

Wall-clock epoch times move with whatever else runs on the machine (the same demo gave
two orderings on one machine). Here the cost of a training epoch is *counted*:

    W_e = sum over the optimisation steps of epoch e of the FLOPs of the step

counted by :class:`torch.utils.flop_counter.FlopCounterMode` while the trained
configuration (its model weights, balancing method and settings, hparams.json) runs the
steps of epochs 1..E in the training's own batch order. The counter sees every matrix
product of the step, the double backward of a derivative-trained model and the extra backward passes of gradient
methods included; element-wise operations and the optimizer update are not counted (the
same for every variant). W_e depends only on the model, the data, the batch order and the
method: it is identical on a loaded and an idle machine, and on any machine.

Seconds come from one machine calibration shared by every variant:

    rate = FLOPs(reference step) / min over R repeats of its wall time     (FLOP/s)
    t_ep = mean_e W_e / rate,    sigma_ep = std_e W_e / rate               (s)

the reference step being one constant-weight step on the first training batch, timed on the
machine that ran the stage (its CPU/GPU model is recorded). Load changes ``rate`` and so every
variant's t_ep by the same factor, which no test used in the scheme sees (Kruskal-Wallis,
Friedman and their post-hocs are rank tests, Tukey HSD is scale-invariant): scores and ordering
do not move. ``metrics.timing.flop_rate`` pins the factor to make the values machine-independent.
sigma_ep is the spread of the counted work between epochs: 0 for a method whose step cost does not
depend on the batch or the state (every method registered today; the frames of an epoch are a
permutation of the same set), positive for methods with data- or state-dependent work. The per-run
wall times of the training log stay in the model JSON as provenance (``t_ep_wall``, ``sigma_ep_wall``).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from balancebench.calibration import Calibration, pinned_calibration, timing_metrics, timing_record
from balancebench.checkpoints import torch_load
from balancebench.fileio import read_json


def machine_model(device: torch.device | str | None = None) -> str:
    """The processor that ran the timing: the GPU name for CUDA, else the CPU model of /proc/cpuinfo."""
    device = torch.device(device or "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _step(trainer, frames) -> None:
    """One optimisation step through the public ``Trainer.train_step``."""
    trainer.train_step(np.asarray(frames))


def epoch_batches(trainer, epoch: int) -> list[np.ndarray]:
    """The batches of ``epoch`` in the training's own order (permutation seeded with (seed, epoch))."""
    n = len(trainer.train_data)
    order = np.random.default_rng([trainer.seed, epoch]).permutation(n)
    size = trainer.settings.batch_size
    return [order[b:b + size] for b in range(0, n, size)]


def count_step(trainer, frames) -> int:
    """FLOPs of one training step on the items ``frames`` (forward, backward, the method's backward passes)."""
    with FlopCounterMode(display=False) as counter:
        _step(trainer, frames)
    return int(counter.get_total_flops())


def count_epochs(trainer, epochs: int = 2, max_steps: int | None = None) -> list[int]:
    """Counted work W_e of epochs 1..``epochs`` (FLOPs), stepping the trainer through them.

    ``max_steps``: count only the first steps of each epoch and scale by batches / counted (an estimate for
    large data sets; None counts every step, exact).
    """
    if epochs < 1:
        raise ValueError(f"metrics.timing.epochs must be >= 1, got {epochs}")
    trainer.model.train()
    totals = []
    for epoch in range(1, epochs + 1):
        batches = epoch_batches(trainer, epoch)
        counted = batches if max_steps is None else batches[:max_steps]
        work = sum(count_step(trainer, frames) for frames in counted)
        totals.append(int(round(work * len(batches) / len(counted))))
    return totals


def calibrate(trainer, repeats: int = 5) -> Calibration:
    """Time the reference step (one step of ``trainer`` on its first training batch) ``repeats`` times after a
    warm-up and count its FLOPs; rate = FLOPs / fastest repeat (the least load-sensitive estimate)."""
    if repeats < 1:
        raise ValueError(f"metrics.timing.calibration_repeats must be >= 1, got {repeats}")
    frames = np.arange(min(trainer.settings.batch_size, len(trainer.train_data)))
    trainer.model.train()
    _step(trainer, frames)  # warm-up (allocations, lazy initialisation)
    flops = count_step(trainer, frames)
    best = np.inf
    for _ in range(repeats):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _step(trainer, frames)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return Calibration(flop_rate=flops / best, reference_flops=flops, best_seconds=float(best), repeats=repeats,
                       machine=machine_model(trainer.device), device=str(trainer.device),
                       threads=torch.get_num_threads())


def trainer_from_run(dataset, hparams: dict, state_dict: dict | None = None, device: str = "cpu"):
    """A Trainer for the configuration of a finished run (hparams.json), with its trained weights loaded."""
    from balancebench.tasks.base import get_task
    from balancebench.training import trainer_for

    training = dict(hparams["training"])
    training["device"] = device
    task = get_task(hparams.get("task") or dataset.task)
    trainer = trainer_for(dataset, hparams["model"], training, hparams["method"],
                          dict(hparams.get("method_params") or {}), int(hparams["seed"]), task=task)
    if state_dict is not None:
        trainer.model.load_state_dict(state_dict)
    return trainer


def count_run(dataset, hparams: dict, state_dict: dict | None, epochs: int = 2, max_steps: int | None = None,
              device: str = "cpu") -> dict:
    """The counted work of one trained configuration (machine-free): FLOPs of epochs 1..``epochs``."""
    trainer = trainer_from_run(dataset, hparams, state_dict, device=device)
    work = count_epochs(trainer, epochs=epochs, max_steps=max_steps)
    return {"method": hparams["method"], "seed": int(hparams["seed"]), "epoch_flops": work,
            "epochs_counted": epochs, "max_steps": max_steps}


def counted_work_record(dataset, model_dir: str | Path, epochs: int = 2, max_steps: int | None = None,
                        device: str = "cpu") -> dict:
    """:func:`count_run` of the run in ``model_dir`` (hparams.json, model.pt) with ``status`` completed, or
    ``status`` failed and the reason: a failure is recorded, never raised (t_ep then falls back to wall clock)."""
    model_dir = Path(model_dir)
    try:
        hparams = read_json(model_dir / "hparams.json")
        state = torch_load(model_dir / "model.pt")
        return {**count_run(dataset, hparams, state, epochs=epochs, max_steps=max_steps, device=device),
                "status": "completed"}
    except Exception as err:  # noqa: BLE001 - any failure of the counting pass becomes a status
        return {"status": "failed", "reason": f"{type(err).__name__}: {err}"}


def write_counted_work(path: str | Path, dataset, model_dir: str | Path, counting: dict, device: str, logger,
                       provenance: dict, label: str = "") -> dict:
    """Rule train's last step: :func:`counted_work_record` of ``model_dir`` (``counting``: metrics.timing's
    epochs and max_steps) written to ``path`` with its provenance, and said in the rule log."""
    work = counted_work_record(dataset, model_dir, epochs=counting["epochs"], max_steps=counting["max_steps"],
                               device=device)
    if work["status"] == "completed":
        logger.info("%scounted work %s FLOP per epoch (epochs 1-%d)", label, work["epoch_flops"], counting["epochs"])
    else:
        logger.warning("%scounting pass failed: %s", label, work["reason"])
    write_json(path, {**work, "provenance": provenance})
    return work


def time_run(dataset, hparams: dict, state_dict: dict | None, calibration: Calibration, epochs: int = 2,
             max_steps: int | None = None, device: str = "cpu") -> dict:
    """The timing record of one trained configuration: counted work per epoch, t_ep, sigma_ep, calibration."""
    return timing_record(count_run(dataset, hparams, state_dict, epochs=epochs, max_steps=max_steps,
                                   device=device), calibration)


def write_json(path: str | Path, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


__all__ = ["Calibration", "calibrate", "count_epochs", "count_run", "count_step", "counted_work_record",
           "epoch_batches", "machine_model", "pinned_calibration", "time_run", "timing_metrics", "timing_record",
           "trainer_from_run", "write_counted_work", "write_json"]
