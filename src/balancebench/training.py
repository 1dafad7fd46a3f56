"""Force-matching training of :class:`~balancebench.model.CGSchNet` under one balancing method (seed 000 Sec. 2.2, 2.4).

Loss of one batch of B frames with N beads (Eq. 2 of seed 000)::

    L = lambda_F * L_F + lambda_E * L_E
    L_F = 1/(3 N B) sum_frames sum_i |F_i^pred - M(F^A)_i|^2          (kcal/mol/A)^2
    L_E = 1/B sum_frames (E^pred - U_A)^2                               (kcal/mol)^2   (energy_loss: total)
          1/B sum_frames ((E^pred - U_A) / N)^2                          (energy_loss: per_bead)

Both components are logged unweighted. The update comes from a
:mod:`balancebench.balancing` method, which owns it: every step the trainer calls
``method.prepare_batch``, computes the named losses ``{"force": L_F, "energy": L_E}``,
zeroes the gradients, and calls ``method.backward(losses, context)`` and
``method.step(context)``; every epoch it logs ``method.log_values()`` (the effective
weights and any extras) and calls ``method.end_epoch``. It never asks which shape of
method it holds (value, learned, gradient, conditioned, optimizer).

Early stopping uses a criterion that does not depend on the method (the weighted
loss changes meaning when the weights move): the validation errors normalised by
the variance of their targets over the training frames,
``C = MSE_F / Var(F) + MSE_E / Var(E)`` (a sum of 1 - R^2-like terms). The weights
with the best C are the trained model.

A non-finite loss, or a step loss above ``divergence_factor`` x the untrained model's (first step),
stops the run with status ``diverged`` (its epoch and reason recorded); nothing
is raised, so one bad run never stops the workflow. A checkpoint written
atomically after every epoch lets a killed run resume; the frame order of epoch
e comes from a generator seeded with (seed, e), so a resumed run reproduces the
uninterrupted one exactly on CPU.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from balancebench import pair_kernels
from balancebench.balancing import COMPONENTS, BalancingMethod, TrainContext, get_method
from balancebench.cg import CGDataset
from balancebench.fileio import atomic_torch_save, torch_load
from balancebench.losses import robust_force_loss
from balancebench.model import (
    CGSchNet,
    GraphBatch,
    ModelConfig,
    batch_frames,
    fast_cpu_math,
    resolve_device,
)
from balancebench.neighbors import check_cutoff, neighbor_list
from balancebench.seeding import deterministic_algorithms
from balancebench.settings import settings_from_section

log = logging.getLogger(__name__)

LOG_COLUMNS = ("epoch", "seconds", "train_force", "train_energy", "val_force", "val_energy",
               "coef_force", "coef_energy", "lr", "criterion")


@dataclass
class TrainingSettings:
    max_epochs: int = 100
    batch_size: int = 8  # frames per optimisation step
    learning_rate: float = 1e-3
    lr_decay: float = 0.98  # multiplicative per epoch (ExponentialLR)
    patience: int = 10  # epochs without improvement of the criterion before stopping
    min_delta: float = 1e-3  # relative improvement that counts
    energy_loss: str = "total"  # total (Eq. 2 as printed) | per_bead
    divergence_factor: float = 1e6
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"
    # robust force loss of the training step (balancebench.losses; 2 = the MSE of Eq. 2); validation stays MSE
    force_loss_alpha: float = 2.0
    force_loss_scale: float = 1.0  # kcal/mol/A

    @classmethod
    def from_dict(cls, d: dict) -> TrainingSettings:
        settings = settings_from_section(cls, d, "training")
        if settings.energy_loss not in ("total", "per_bead"):
            raise ValueError(f"energy_loss must be 'total' or 'per_bead', not {settings.energy_loss!r}")
        return settings


@dataclass
class TrainingResult:
    status: str  # completed | diverged
    reason: str
    epoch: int  # last epoch run (1-based)
    best_epoch: int
    best_criterion: float
    log: list[dict] = field(default_factory=list)
    resumed_from: int = 0

    def summary(self) -> dict:
        return {"status": self.status, "reason": self.reason, "epoch": self.epoch, "best_epoch": self.best_epoch,
                "best_criterion": self.best_criterion, "epochs_run": len(self.log), "resumed_from": self.resumed_from}


class FrameSet:
    """Frames on a device with their neighbour lists, computed once (positions do not change during training)."""

    def __init__(self, dataset: CGDataset, indices, cutoff: float, device, dtype):
        indices = np.asarray(indices, dtype=np.int64)
        for box in dataset.box[indices]:
            check_cutoff(cutoff, box)
        self.positions = [torch.as_tensor(dataset.positions[k], dtype=dtype, device=device) for k in indices]
        self.forces = torch.as_tensor(dataset.forces[indices], dtype=dtype, device=device)
        self.energy = torch.as_tensor(dataset.energy[indices], dtype=dtype, device=device)
        self.lists = [neighbor_list(torch.as_tensor(dataset.positions[k]), dataset.box[k], cutoff).to(device)
                      for k in indices]
        for nl in self.lists:
            nl.shift = nl.shift.to(dtype)
        self.n_beads = dataset.n_beads

    def __len__(self) -> int:
        return len(self.positions)

    def batch(self, frames) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
        frames = list(frames)
        graph = batch_frames([self.positions[k] for k in frames], [self.lists[k] for k in frames])
        return graph, self.forces[frames].reshape(-1, 3), self.energy[frames]


def loss_components(model: CGSchNet, graph: GraphBatch, forces_ref, energy_ref, energy_loss: str, n_beads: int,
                    training: bool, force_loss_alpha: float = 2.0,
                    force_loss_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """{"force": L_F, "energy": L_E} of Eq. 2 for one batch (see the module docstring for units).

    ``force_loss_alpha`` != 2 replaces the force MSE by the robust loss of :mod:`balancebench.losses`.
    """
    energy, forces = model.energy_and_forces(graph, training=training)
    return losses_from_predictions(energy, forces, forces_ref, energy_ref, energy_loss, n_beads,
                                   force_loss_alpha, force_loss_scale)


def losses_from_predictions(energy, forces, forces_ref, energy_ref, energy_loss: str, n_beads: int,
                            force_loss_alpha: float = 2.0, force_loss_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """:func:`loss_components` from predicted ``energy`` (B,) and ``forces`` (B*N, 3) already computed."""
    loss_f = robust_force_loss(forces - forces_ref, force_loss_alpha, force_loss_scale)
    err_e = energy - energy_ref
    if energy_loss == "per_bead":
        err_e = err_e / n_beads
    return {"force": loss_f, "energy": torch.mean(err_e**2)}


def evaluate(model: CGSchNet, frames: FrameSet, batch_size: int, energy_loss: str,
             method: BalancingMethod | None = None, context: TrainContext | None = None) -> np.ndarray:
    """Mean [MSE_F, MSE_E] over all frames (frame-weighted), no graph kept.

    With ``method``, its ``prepare_batch(graph, context, training=False)`` runs first (e.g. a
    conditioned model's fixed evaluation preference).
    """
    total = np.zeros(len(COMPONENTS))
    for start in range(0, len(frames), batch_size):
        idx = range(start, min(len(frames), start + batch_size))
        graph, f_ref, e_ref = frames.batch(idx)
        if method is not None:
            method.prepare_batch(graph, context, training=False)
        losses = loss_components(model, graph, f_ref, e_ref, energy_loss, frames.n_beads, training=False)
        total += np.array([float(losses[c].detach()) for c in COMPONENTS]) * len(idx)
    return total / len(frames)


def fit_energy_scale(model: CGSchNet, frames: FrameSet) -> tuple[float, float]:
    """ScaleShift from the training frames: mu = (<U_A> - <U_ex>) / N per bead, s = rms force component x 1 A."""
    with torch.no_grad():
        prior = []
        for x, nl in zip(frames.positions, frames.lists):
            if model.prior is None:
                prior.append(0.0)
                continue
            r = nl.vectors(x).norm(dim=-1)
            prior.append(float(model.prior(r, r < model.cutoff).sum()))
    shift = (float(frames.energy.double().mean()) - float(np.mean(prior))) / frames.n_beads
    scale = float(torch.sqrt(torch.mean(frames.forces.double() ** 2)))
    return shift, max(scale, 1e-6)


def _run_hash(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode() if not isinstance(part, bytes) else part)
    return digest.hexdigest()[:20]


_atomic_save = atomic_torch_save  # balancebench.fileio: temp file, fsync, os.replace


def _with_preference_dim(model_config: ModelConfig, method: BalancingMethod) -> ModelConfig:
    """The model config with ``preference_dim = method.preference_dim`` (a conditioned method's model input).

    The preference input itself (``ModelConfig.preference_dim``, read by ``CGSchNet``) belongs
    to the model; a method that needs it on a model without it is refused here.
    """
    dim = int(getattr(method, "preference_dim", 0) or 0)
    if any(f.name == "preference_dim" for f in dataclasses.fields(model_config)):
        return dataclasses.replace(model_config, preference_dim=dim)
    if dim > 0:
        raise NotImplementedError(f"method {method.name!r} needs a model conditioned on a preference vector of "
                                  f"length {dim}, but ModelConfig has no preference_dim field yet")
    return model_config


class Trainer:
    """One training run: a model, a balancing method, a dataset split, a seed."""

    def __init__(self, dataset: CGDataset, model_config: ModelConfig, settings: TrainingSettings,
                 method: BalancingMethod, seed: int, checkpoint: str | Path | None = None):
        self.settings, self.method, self.seed = settings, method, int(seed)
        self.device = resolve_device(settings.device, "training.device")
        self.dtype = getattr(torch, settings.dtype)
        model_config = _with_preference_dim(model_config, method)
        torch.manual_seed(self.seed)
        fast_cpu_math()
        if self.device.type == "cpu":
            deterministic_algorithms()
        self.model = CGSchNet(model_config).to(device=self.device, dtype=self.dtype)
        self.train_frames = FrameSet(dataset, dataset.split["train"], model_config.cutoff, self.device, self.dtype)
        val_idx = dataset.split.get("validation")
        if val_idx is None or len(val_idx) == 0:
            raise ValueError("the dataset has no validation frames: early stopping needs them (cg.validation_fraction > 0)")
        self.val_frames = FrameSet(dataset, val_idx, model_config.cutoff, self.device, self.dtype)
        shift, scale = fit_energy_scale(self.model, self.train_frames)
        self.model.set_energy_scale(shift, scale)
        # variances of the targets for the method-independent criterion
        n = dataset.n_beads if settings.energy_loss == "per_bead" else 1
        self.var_force = float(torch.var(self.train_frames.forces.double()))
        var_e = float(torch.var(self.train_frames.energy.double() / n)) if len(self.train_frames) > 1 else 0.0
        self.var_energy = var_e if var_e > 0 else 1.0
        self.context = TrainContext(
            model=self.model, model_params=[p for p in self.model.parameters() if p.requires_grad],
            components=COMPONENTS, references={"force": self.var_force, "energy": self.var_energy},
            generator=torch.Generator(device="cpu").manual_seed(self.seed), settings=settings)
        method.setup(self.context)
        self.optimizer = method.make_optimizer(self.context.model_params, settings)
        self.context.optimizer = self.optimizer
        self.scheduler = (torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=settings.lr_decay)
                          if self.optimizer is not None else None)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.run_hash = _run_hash(model_config.to_dict(), dataclasses.asdict(settings), method.name,
                                  method.params, self.seed, dataset.energy.tobytes(),
                                  np.asarray(dataset.split["train"]).tobytes())
        self.log: list[dict] = []
        self.best_state = None
        self.best_criterion = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.first_loss: float | None = None
        self.epoch = 0
        self._epoch_lr = math.nan  # the learning rate of the current epoch (set by begin_epoch)

    # -- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict:
        return {"hash": self.run_hash, "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "method": self.method.state_dict(), "generator": self.context.generator.get_state(),
                "step": self.context.step, "log": self.log, "best_state": self.best_state, "best_criterion": self.best_criterion,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "first_loss": self.first_loss}

    def save_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save(self._state(), self.checkpoint)

    def try_resume(self) -> int:
        """Load the checkpoint if it belongs to this exact run; return the epoch it resumes after (0 if none)."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        state = torch_load(self.checkpoint, "training checkpoint", map_location=self.device,
                           rebuild=f"rm {self.checkpoint}  (the job then trains from the start)")
        if state.get("hash") != self.run_hash:
            log.warning("checkpoint %s belongs to another run (config, data or seed changed): starting afresh",
                        self.checkpoint)
            return 0
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.context.generator.set_state(state["generator"].cpu())
        self.context.step, self.context.epoch = state["step"], state["epoch"]
        self.log = state["log"]
        self.best_state, self.best_criterion = state["best_state"], state["best_criterion"]
        self.best_epoch, self.bad_epochs, self.first_loss = state["best_epoch"], state["bad_epochs"], state["first_loss"]
        self.epoch = state["epoch"]
        log.info("resumed from checkpoint after epoch %d", self.epoch)
        return self.epoch

    # -- one step ------------------------------------------------------------------------
    def train_step(self, frame_indices) -> dict[str, float]:
        """One optimisation step on the training frames ``frame_indices``; returns the raw losses.

        If a loss is not finite nothing is updated (the caller records the divergence). The step is
        :meth:`prepare_step`, the model's energies and forces, :meth:`apply_step`; a driver that
        computes the predictions elsewhere (:mod:`balancebench.multiseed`) calls the two halves.
        """
        graph, f_ref, e_ref = self.prepare_step(frame_indices)
        energy, forces = self.model.energy_and_forces(graph, training=True)
        return self.apply_step(energy, forces, f_ref, e_ref)

    def prepare_step(self, frame_indices) -> tuple[GraphBatch, torch.Tensor, torch.Tensor]:
        """(graph, reference forces, reference energies) of ``frame_indices``, after ``method.prepare_batch``."""
        graph, f_ref, e_ref = self.train_frames.batch(frame_indices)
        self.method.prepare_batch(graph, self.context, training=True)
        return graph, f_ref, e_ref

    def apply_step(self, energy, forces, forces_ref, energy_ref) -> dict[str, float]:
        """The named losses of the predictions, then ``method.backward`` and ``method.step``; the raw losses."""
        raw, losses = self.step_losses(energy, forces, forces_ref, energy_ref)
        if losses is not None:
            self.method.backward(losses, self.context)
            self.finish_step()
        return raw

    def step_losses(self, energy, forces, forces_ref, energy_ref) -> tuple[dict[str, float], dict | None]:
        """(raw losses, named differentiable losses) of the predictions, the gradients zeroed for the backward;
        the named losses are None when a raw one is not finite (no update: the step is recorded as failed)."""
        ctx = self.context
        losses = losses_from_predictions(energy, forces, forces_ref, energy_ref, self.settings.energy_loss,
                                         self.train_frames.n_beads, self.settings.force_loss_alpha,
                                         self.settings.force_loss_scale)
        raw = {c: float(losses[c].detach()) for c in COMPONENTS}
        if not all(math.isfinite(v) for v in raw.values()):
            return raw, None
        for p in [*ctx.model_params, *self.method.parameters()]:
            p.grad = None
        return raw, losses

    def finish_step(self) -> None:
        """After the backward: ``method.step`` and the step count."""
        self.method.step(self.context)
        self.context.step += 1

    # -- the loop ------------------------------------------------------------------------
    def run(self, progress=None) -> TrainingResult:
        resumed = self.try_resume()
        s = self.settings
        failure = ""
        while self.epoch < s.max_epochs and self.bad_epochs < s.patience:
            order = self.begin_epoch()
            start = time.perf_counter()
            step_losses: list = []
            for b in range(0, len(order), s.batch_size):
                failure = self.record_step(self.train_step(order[b:b + s.batch_size]), step_losses)
                if failure:
                    break
            failure = self.finish_epoch(step_losses, time.perf_counter() - start, failure, progress)
            if failure:
                break
        return self.result(failure, resumed)

    # -- the pieces of an epoch (run; balancebench.multiseed drives them in lockstep) --------------
    def begin_epoch(self) -> np.ndarray:
        """Start the next epoch: its frame order (seeded by (seed, epoch)); the model in training mode."""
        self.epoch += 1
        self.context.epoch = self.epoch
        self._epoch_lr = (self.optimizer.param_groups[0]["lr"] if self.optimizer is not None
                          else self.settings.learning_rate * self.settings.lr_decay ** (self.epoch - 1))
        self.model.train()
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.train_frames))

    def record_step(self, step: dict[str, float], step_losses: list) -> str:
        """Append the step's raw losses to ``step_losses``; a divergence reason instead ('' if none)."""
        s = self.settings
        raw = np.array([step[c] for c in COMPONENTS])
        if not np.isfinite(raw).all():
            return f"non-finite loss at epoch {self.epoch} (L_F={raw[0]:.3g}, L_E={raw[1]:.3g})"
        if self.first_loss is None:  # the untrained model's loss: the yardstick of divergence
            self.first_loss = max(float(raw.sum()), 1e-30)
        elif float(raw.sum()) > s.divergence_factor * self.first_loss:
            return (f"loss exploded at epoch {self.epoch}: {raw.sum():.3g} > {s.divergence_factor:g} x "
                    f"the first step's {self.first_loss:.3g}")
        step_losses.append(raw)
        return ""

    def finish_epoch(self, step_losses: list, seconds: float, failure: str = "", progress=None) -> str:
        """Validate, log the row, then (unless failed) decay the lr, ``method.end_epoch``, early stopping,
        checkpoint and ``progress(row)``; returns the failure reason ('' if none)."""
        s = self.settings
        train = np.mean(step_losses, axis=0) if step_losses else np.full(2, np.nan)
        self.model.eval()
        val = (evaluate(self.model, self.val_frames, s.batch_size, s.energy_loss, self.method, self.context)
               if not failure else np.full(2, np.nan))
        criterion = float(val[0] / self.var_force + val[1] / self.var_energy)
        if not failure and not math.isfinite(criterion):
            failure = f"non-finite validation error at epoch {self.epoch}"
        row = {"epoch": self.epoch, "seconds": seconds, "train_force": train[0], "train_energy": train[1],
               "val_force": val[0], "val_energy": val[1], "lr": self._epoch_lr, "criterion": criterion}
        values = {k: float(v) for k, v in self.method.log_values().items()}  # coef_force, coef_energy, extras
        row = {k: row[k] if k in row else values.pop(k) for k in LOG_COLUMNS} | values
        self.log.append(row)
        if failure:
            log.warning("%s", failure)
            return failure
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.end_epoch(dict(zip(COMPONENTS, (float(x) for x in train))), self.context)
        if criterion < self.best_criterion * (1.0 - s.min_delta):
            self.best_criterion, self.best_epoch, self.bad_epochs = criterion, self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        self.save_checkpoint()
        if progress is not None:
            progress({**row, "max_epochs": s.max_epochs})
        return ""

    def result(self, failure: str = "", resumed: int = 0) -> TrainingResult:
        """The run's status (diverged / early stopping / max_epochs); loads the best weights into the model."""
        s = self.settings
        if failure:
            status, reason = "diverged", failure
        elif self.bad_epochs >= s.patience:
            status, reason = "completed", f"early stopping: no {s.min_delta:g} relative improvement for {s.patience} epochs"
        else:
            status, reason = "completed", f"max_epochs {s.max_epochs} reached"
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return TrainingResult(status, reason, self.epoch, self.best_epoch, self.best_criterion,
                              list(self.log), resumed)


def log_columns(rows: list[dict]) -> list[str]:
    """LOG_COLUMNS, then the method's extra columns (``log_values`` keys) in order of first appearance."""
    cols = list(LOG_COLUMNS)
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def write_log(rows: list[dict], path: str | Path) -> None:
    """The per-epoch CSV (LOG_COLUMNS, then the method's extras, e.g. ``log_var_force``); non-finite values
    of a diverged epoch are written as 'nan', an extra missing from a row as an empty field."""
    cols = log_columns(rows)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in cols if k in row})


def write_run(out: Path, trainer: "Trainer", result: TrainingResult, method_name: str, method_params: dict,
              variant: str, dataset: CGDataset, provenance: dict | None = None) -> None:
    """The files of a finished run in ``out``: ``model.pt``, ``hparams.json``, ``train_log.csv``,
    ``method_state.pt`` and ``status.json`` (and, for a preference-conditioned model, its front and chosen r)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings, method = trainer.settings, trainer.method
    atomic_torch_save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
    hparams = {"model": trainer.model.config.to_dict(), "training": dataclasses.asdict(settings),
               "method": method_name, "method_params": method_params, "variant": variant,
               "backward_passes": method.backward_passes, "seed": int(trainer.seed), "n_beads": dataset.n_beads,
               "bead_mass": float(dataset.masses[0]), "energy_unit": "kcal/mol", "length_unit": "angstrom",
               "device": str(trainer.device), "energy_shift_per_bead": float(trainer.model.energy_shift),
               "energy_scale": float(trainer.model.energy_scale), "pair_kernels": pair_kernels.status(),
               "provenance": provenance or {}}
    if method.preference_dim > 0 and result.status == "completed":  # conditioned (COSMOS): front + chosen r
        from balancebench.pareto import conditioned_outputs

        hparams.update(conditioned_outputs(trainer.model, trainer.val_frames, trainer.context.references, out,
                                           settings.batch_size, settings.energy_loss,
                                           int(method.params.get("test_rays", 25)),
                                           method.params.get("eval_preference", (0.5, 0.5))))
    (out / "hparams.json").write_text(json.dumps(hparams, indent=2, sort_keys=True, default=str) + "\n")
    write_log(result.log, out / "train_log.csv")
    torch.save(method.state_dict(), out / "method_state.pt")  # the method's final state (learned weights)
    (out / "status.json").write_text(json.dumps({**result.summary(), "method": method_name, "variant": variant,
                                                 "seed": int(trainer.seed), "provenance": provenance or {}},
                                                indent=2, default=str) + "\n")


def train_model(dataset: CGDataset, model_config: dict, training: dict, method_name: str, method_params: dict,
                seed: int, out_dir: str | Path, checkpoint: str | Path | None = None, threads: int | None = None,
                provenance: dict | None = None, progress=None, variant: str | None = None) -> TrainingResult:
    """Train and write ``model.pt``, ``hparams.json``, ``train_log.csv``, ``method_state.pt`` and ``status.json``
    into ``out_dir``.

    ``variant``: the name the comparison uses for this method + parameters (recorded for
    provenance; default the method name).

    Never raises for a diverging run: its status says ``diverged`` with the reason and epoch.
    """
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig.from_dict(model_config)
    settings = TrainingSettings.from_dict(training)
    method = get_method(method_name, **method_params)
    trainer = Trainer(dataset, cfg, settings, method, seed, checkpoint=checkpoint)
    result = trainer.run(progress=progress)
    write_run(out, trainer, result, method_name, method_params, variant or method_name, dataset, provenance)
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # finished: a forced rerun starts afresh
    return result
