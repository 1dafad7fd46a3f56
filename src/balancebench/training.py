"""Force-matching training of :class:`~balancebench.model.CGSchNet` under one balancing method (seed 000 Sec. 2.2, 2.4).

Loss of one batch of B frames with N beads (Eq. 2 of seed 000)::

    L = lambda_F * L_F + lambda_E * L_E
    L_F = 1/(3 N B) sum_frames sum_i |F_i^pred - M(F^A)_i|^2          (kcal/mol/A)^2
    L_E = 1/B sum_frames (E^pred - U_A)^2                               (kcal/mol)^2   (energy_loss: total)
          1/B sum_frames ((E^pred - U_A) / N)^2                          (energy_loss: per_bead)

Both components are logged unweighted. The coefficients come from a
:mod:`balancebench.balancing` method: value-based methods get the history of
raw per-epoch (or per-step) mean training losses, oldest first; gradient-based
methods get the per-component gradients of all parameters every step.

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
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from balancebench.balancing import BalancingMethod, get_method
from balancebench.cg import CGDataset
from balancebench.model import CGSchNet, GraphBatch, ModelConfig, batch_frames, fast_cpu_math, resolve_device
from balancebench.neighbors import check_cutoff, neighbor_list

log = logging.getLogger(__name__)

COMPONENTS = ("force", "energy")
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
    multi_seed: bool = False  # seeds of one variant in one process (balancebench.multiseed.MultiSeedTrainer)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; valid: {sorted(names)}")
        settings = cls(**d)
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
                    training: bool) -> torch.Tensor:
    """[L_F, L_E] of Eq. 2 for one batch (see the module docstring for units)."""
    energy, forces = model.energy_and_forces(graph, training=training)
    loss_f = torch.mean((forces - forces_ref) ** 2)
    err_e = energy - energy_ref
    if energy_loss == "per_bead":
        err_e = err_e / n_beads
    return torch.stack([loss_f, torch.mean(err_e**2)])


def evaluate(model: CGSchNet, frames: FrameSet, batch_size: int, energy_loss: str) -> np.ndarray:
    """Mean [MSE_F, MSE_E] over all frames (frame-weighted), no graph kept."""
    total = np.zeros(2)
    for start in range(0, len(frames), batch_size):
        idx = range(start, min(len(frames), start + batch_size))
        graph, f_ref, e_ref = frames.batch(idx)
        losses = loss_components(model, graph, f_ref, e_ref, energy_loss, frames.n_beads, training=False)
        total += losses.detach().double().cpu().numpy() * len(idx)
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


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """One training run: a model, a balancing method, a dataset split, a seed."""

    def __init__(self, dataset: CGDataset, model_config: ModelConfig, settings: TrainingSettings,
                 method: BalancingMethod, seed: int, checkpoint: str | Path | None = None):
        self.settings, self.method, self.seed = settings, method, int(seed)
        self.device = resolve_device(settings.device, "training.device")
        self.dtype = getattr(torch, settings.dtype)
        if self.method.kind == "conditioned":
            raise NotImplementedError(f"method {method.name!r} needs a preference-conditioned model, "
                                      "which this trainer does not build yet")
        torch.manual_seed(self.seed)
        fast_cpu_math()
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
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
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=settings.lr_decay)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.run_hash = _run_hash(model_config.to_dict(), dataclasses.asdict(settings), method.name,
                                  method.state_dict(), self.seed, dataset.energy.tobytes(),
                                  np.asarray(dataset.split["train"]).tobytes())
        self.history: list[list[float]] = []  # raw training losses per update period (value-based methods)
        self.coefficients = np.asarray(method.initial_coefficients(2), dtype=np.float64)
        self.log: list[dict] = []
        self.best_state = None
        self.best_criterion = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.first_loss: float | None = None
        self.epoch = 0

    # -- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict:
        return {"hash": self.run_hash, "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "method": self.method.state_dict(), "history": self.history, "coefficients": self.coefficients.tolist(),
                "log": self.log, "best_state": self.best_state, "best_criterion": self.best_criterion,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "first_loss": self.first_loss}

    def save_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save(self._state(), self.checkpoint)

    def try_resume(self) -> int:
        """Load the checkpoint if it belongs to this exact run; return the epoch it resumes after (0 if none)."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        if state.get("hash") != self.run_hash:
            log.warning("checkpoint %s belongs to another run (config, data or seed changed): starting afresh",
                        self.checkpoint)
            return 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.history, self.log = state["history"], state["log"]
        self.coefficients = np.asarray(state["coefficients"], dtype=np.float64)
        self.best_state, self.best_criterion = state["best_state"], state["best_criterion"]
        self.best_epoch, self.bad_epochs, self.first_loss = state["best_epoch"], state["bad_epochs"], state["first_loss"]
        self.epoch = state["epoch"]
        log.info("resumed from checkpoint after epoch %d", self.epoch)
        return self.epoch

    # -- one step ------------------------------------------------------------------------
    def _update_coefficients(self, losses: np.ndarray, unit: str) -> None:
        """Value-based methods: append one period's mean raw losses, recompute every update_every periods."""
        if self.method.kind != "value" or self.method.update_unit != unit:
            return
        self.history.append([float(x) for x in losses])
        if len(self.history) % self.method.update_every == 0:
            self.coefficients = np.asarray(self.method.coefficients(np.asarray(self.history)), dtype=np.float64)

    def _step(self, frames) -> np.ndarray:
        graph, f_ref, e_ref = self.train_frames.batch(frames)
        losses = loss_components(self.model, graph, f_ref, e_ref, self.settings.energy_loss,
                                 self.train_frames.n_beads, training=True)
        raw = losses.detach().double().cpu().numpy()
        if not np.isfinite(raw).all():
            return raw
        self.optimizer.zero_grad(set_to_none=True)
        if self.method.kind == "gradient":
            params = [p for p in self.model.parameters() if p.requires_grad]
            grads = []
            for k in range(len(losses)):
                g = torch.autograd.grad(losses[k], params, retain_graph=k < len(losses) - 1, allow_unused=True)
                grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                        for gi, p in zip(g, params)]))
            direction = self.method.combine(torch.stack(grads), losses.detach())
            offset = 0
            for p in params:
                p.grad = direction[offset:offset + p.numel()].view_as(p).to(p.dtype)
                offset += p.numel()
        else:
            coef = torch.as_tensor(self.coefficients, dtype=losses.dtype, device=losses.device)  # data, no gradient
            (coef * losses).sum().backward()
        self.optimizer.step()
        return raw

    # -- the loop ------------------------------------------------------------------------
    def run(self, progress=None) -> TrainingResult:
        resumed = self.try_resume()
        s = self.settings
        failure = ""
        while self.epoch < s.max_epochs and self.bad_epochs < s.patience:
            self.epoch += 1
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.train_frames))
            coef_epoch = self.coefficients.copy()
            lr = self.optimizer.param_groups[0]["lr"]
            self.model.train()
            start = time.perf_counter()
            step_losses, step_weights = [], []
            for b in range(0, len(order), s.batch_size):
                raw = self._step(order[b:b + s.batch_size])
                if not np.isfinite(raw).all():
                    failure = f"non-finite loss at epoch {self.epoch} (L_F={raw[0]:.3g}, L_E={raw[1]:.3g})"
                    break
                if self.first_loss is None:  # the untrained model's loss: the yardstick of divergence
                    self.first_loss = max(float(raw.sum()), 1e-30)
                elif float(raw.sum()) > s.divergence_factor * self.first_loss:
                    failure = (f"loss exploded at epoch {self.epoch}: {raw.sum():.3g} > {s.divergence_factor:g} x "
                               f"the first step's {self.first_loss:.3g}")
                    break
                step_losses.append(raw)
                if self.method.kind == "gradient" and getattr(self.method, "last_weights", None) is not None:
                    step_weights.append(np.asarray(self.method.last_weights, dtype=np.float64))
                self._update_coefficients(raw, "step")
            seconds = time.perf_counter() - start
            if step_weights:  # gradient methods: the effective weights of their combined directions, epoch mean
                coef_epoch = np.mean(step_weights, axis=0)
            train = np.mean(step_losses, axis=0) if step_losses else np.full(2, np.nan)
            self.model.eval()
            val = evaluate(self.model, self.val_frames, s.batch_size, s.energy_loss) if not failure else np.full(2, np.nan)
            criterion = float(val[0] / self.var_force + val[1] / self.var_energy)
            if not failure and not math.isfinite(criterion):
                failure = f"non-finite validation error at epoch {self.epoch}"
            row = {"epoch": self.epoch, "seconds": seconds, "train_force": train[0], "train_energy": train[1],
                   "val_force": val[0], "val_energy": val[1], "coef_force": coef_epoch[0], "coef_energy": coef_epoch[1],
                   "lr": lr, "criterion": criterion}
            self.log.append(row)
            if failure:
                log.warning("%s", failure)
                break
            self.scheduler.step()
            self._update_coefficients(train, "epoch")
            if criterion < self.best_criterion * (1.0 - s.min_delta):
                self.best_criterion, self.best_epoch, self.bad_epochs = criterion, self.epoch, 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            self.save_checkpoint()
            if progress is not None:
                progress(row)
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


def write_log(rows: list[dict], path: str | Path) -> None:
    """The per-epoch CSV (columns LOG_COLUMNS); non-finite values of a diverged epoch are written as 'nan'."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in LOG_COLUMNS})


def train_model(dataset: CGDataset, model_config: dict, training: dict, method_name: str, method_params: dict,
                seed: int, out_dir: str | Path, checkpoint: str | Path | None = None, threads: int | None = None,
                provenance: dict | None = None, progress=None) -> TrainingResult:
    """Train and write ``model.pt``, ``hparams.json``, ``train_log.csv`` and ``status.json`` into ``out_dir``.

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
    torch.save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
    hparams = {"model": cfg.to_dict(), "training": dataclasses.asdict(settings), "method": method_name,
               "method_params": method_params, "seed": int(seed), "n_beads": dataset.n_beads,
               "bead_mass": float(dataset.masses[0]), "energy_unit": "kcal/mol", "length_unit": "angstrom",
               "device": str(trainer.device), "energy_shift_per_bead": float(trainer.model.energy_shift),
               "energy_scale": float(trainer.model.energy_scale), "provenance": provenance or {}}
    (out / "hparams.json").write_text(json.dumps(hparams, indent=2, sort_keys=True, default=str) + "\n")
    write_log(result.log, out / "train_log.csv")
    (out / "status.json").write_text(json.dumps({**result.summary(), "method": method_name, "seed": int(seed),
                                                 "provenance": provenance or {}}, indent=2, default=str) + "\n")
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # finished: a forced rerun starts afresh
    return result


def select_grid_point(status_paths: list, hparams_paths: list):
    """(table of the grid, selection) for the constant method's grid search.

    The winner is the completed grid point with the lowest best validation criterion
    (the method-independent criterion of the module docstring, so points with different
    weights are compared on the same scale). If every point diverged, the registry's
    default weights are used and the selection says so.
    """
    import pandas as pd

    from balancebench.balancing import default_params

    rows = []
    for status_path, hparams_path in zip(status_paths, hparams_paths):
        status = json.loads(Path(status_path).read_text())
        hparams = json.loads(Path(hparams_path).read_text())
        weights = hparams["method_params"]["weights"]
        rows.append({"force_weight": weights[0], "energy_weight": weights[1], "status": status["status"],
                     "best_criterion": status["best_criterion"] if status["status"] == "completed" else None,
                     "best_epoch": status["best_epoch"], "epochs_run": status["epochs_run"],
                     "reason": status["reason"]})
    table = pd.DataFrame(rows)
    done = table[table["status"] == "completed"]
    if done.empty:
        weights = list(default_params("constant")["weights"])
        return table, {"weights": weights, "criterion": None,
                       "note": "no grid point completed training; the registry's default weights are used"}
    best = done.loc[done["best_criterion"].astype(float).idxmin()]
    table["selected"] = table.index == best.name
    return table, {"weights": [float(best["force_weight"]), float(best["energy_weight"])],
                   "criterion": float(best["best_criterion"]),
                   "rule": "lowest best validation criterion MSE_F/Var(F) + MSE_E/Var(E) among completed points"}
