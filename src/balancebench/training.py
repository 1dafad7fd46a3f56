"""Training of a task's model under one balancing method (seed 000 Sec. 2.2, 2.4), for any task of the task
contract (:mod:`balancebench.tasks.base`).

The loss of a batch is the task's named losses ``{name: L_name}`` (``task.loss_names``, e.g. two or three
terms), each logged unweighted. The update comes from a :mod:`balancebench.balancing` method, which owns it:
every step the trainer calls ``method.prepare_batch`` on the batch's model input, computes the named losses
from the task's predictions, zeroes the gradients, and calls ``method.backward(losses, context)`` and
``method.step(context)``; every epoch it logs ``method.log_values()`` (the effective weights and any extras)
and calls ``method.end_epoch``. It never asks which shape of method it holds (value, learned, gradient,
conditioned, optimizer), nor which task it trains.

Early stopping uses a criterion that does not depend on the method (the weighted loss changes meaning when
the weights move): the validation errors over the task's references (e.g. the variances of the targets over
the training data), ``C = sum_i val_i / ref_i`` (a sum of 1 - R^2-like terms). The weights with the best C
are the trained model.

A non-finite loss, or a step loss of one component above ``divergence_factor`` x that component's running
best, stops the run with status ``diverged`` (its epoch and reason recorded). Each loss is judged against its
own scale: the running best of component i is the smallest epoch-mean training loss of i so far (during the
first epoch, the untrained model's first step), so a loss that starts huge and then explodes is
caught even when the first step's total was dominated by it (issue 25). Nothing
is raised, so one bad run never stops the workflow. A checkpoint written
atomically after every epoch lets a killed run resume; the item order of epoch
e comes from a generator seeded with (seed, e), so a resumed run reproduces the
uninterrupted one exactly on CPU.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from balancebench.balancing import BalancingMethod, TrainContext, get_method
from balancebench.checkpoints import atomic_torch_save, torch_load
from balancebench.provenance import run_hash
from balancebench.runtime import fast_cpu_math, resolve_device
from balancebench.seeding import deterministic_algorithms
from balancebench.settings import settings_dict, settings_from_section
from balancebench.tasks.base import Task, get_task

log = logging.getLogger(__name__)



def log_columns_for(loss_names) -> tuple[str, ...]:
    """The fixed columns of ``train_log.csv`` for a task's losses: epoch, seconds, ``train_<name>``,
    ``val_<name>``, ``coef_<name>`` (each in loss order), lr, criterion."""
    names = tuple(loss_names)
    return ("epoch", "seconds", *(f"train_{n}" for n in names), *(f"val_{n}" for n in names),
            *(f"coef_{n}" for n in names), "lr", "criterion")


@dataclass
class TrainingSettings:
    max_epochs: int = 100
    batch_size: int = 8  # frames per optimisation step
    learning_rate: float = 1e-3
    lr_decay: float = 0.98  # multiplicative per epoch (ExponentialLR)
    patience: int = 10  # epochs without improvement of the criterion before stopping
    min_delta: float = 1e-3  # relative improvement that counts
    divergence_factor: float = 1e3  # per component, against its running best
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: dict, task_keys=()) -> TrainingSettings:
        """The core settings of a ``training`` section; ``task_keys`` (the task's loss settings) are left out."""
        return settings_from_section(cls, {k: v for k, v in d.items() if k not in set(task_keys)}, "training")


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


_atomic_save = atomic_torch_save  # balancebench.fileio: temp file, fsync, os.replace


def preference_dim(task: Task, method: BalancingMethod) -> int:
    """The length of the conditioning input a method needs of the task's model (0: none); a conditioned method
    on a task whose model has no conditioning input is refused, naming both."""
    dim = int(getattr(method, "preference_dim", 0) or 0)
    if dim > 0 and not task.conditioning:
        raise ValueError(f"method {method.name!r} conditions the model on a preference vector, but the model of "
                         f"task {task.name!r} has no conditioning input")
    if dim > 0 and dim != len(task.loss_names):
        raise ValueError(f"method {method.name!r} needs {dim} losses, task {task.name!r} has "
                         f"{len(task.loss_names)} {task.loss_names}")
    return dim


class Trainer:
    """One training run: a task's model, a balancing method, a dataset split, a seed.

    ``task``: a :class:`~balancebench.tasks.base.Task` (default: the task that reads ``dataset``, its
    ``task`` attribute); ``loss_settings``: the task's loss settings (default: the task's defaults).
    """

    def __init__(self, dataset, model_config, settings: TrainingSettings, method: BalancingMethod, seed: int,
                 checkpoint: str | Path | None = None, task: Task | None = None, loss_settings=None):
        self.task = task if task is not None else get_task(dataset.task)
        task = self.task
        self.loss_names = tuple(task.loss_names)
        self.loss_settings = loss_settings if loss_settings is not None else task.loss_settings({})
        self.settings, self.method, self.seed = settings, method, int(seed)
        self.device = resolve_device(settings.device, "training.device")
        self.dtype = getattr(torch, settings.dtype)
        model_config = task.model_settings(model_config)
        dim = preference_dim(task, method)
        torch.manual_seed(self.seed)
        fast_cpu_math()
        if self.device.type == "cpu":
            deterministic_algorithms()
        self.model = task.build_model(model_config, dim).to(device=self.device, dtype=self.dtype)
        self.train_data = task.training_data(dataset, "train", model_config, self.device, self.dtype)
        self.val_data = task.training_data(dataset, "validation", model_config, self.device, self.dtype)
        task.prepare_model(self.model, self.train_data)
        # the references that make the validation errors unit-free (the method-independent criterion)
        self.references = {k: float(v) for k, v in task.loss_references(self.train_data, self.loss_settings).items()}
        self.context = TrainContext(
            model=self.model, model_params=[p for p in self.model.parameters() if p.requires_grad],
            components=self.loss_names, references=dict(self.references),
            generator=torch.Generator(device="cpu").manual_seed(self.seed), settings=settings,
            losses_at=self.losses_at, n_train=len(self.train_data))
        method.setup(self.context)
        self.optimizer = method.make_optimizer(self.context.model_params, settings)
        self.context.optimizer = self.optimizer
        self.scheduler = (torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=settings.lr_decay)
                          if self.optimizer is not None else None)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.model_config = model_config
        self.run_hash = run_hash(task.name, settings_dict(model_config), dataclasses.asdict(settings),
                                  settings_dict(self.loss_settings), method.name, method.params, self.seed,
                                  *task.data_fingerprint(dataset, "train"))
        self.log: list[dict] = []
        self.best_state = None
        self.best_criterion = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.component_best: list[float] | None = None  # per loss: the yardstick of divergence
        self.component_first: list[float] | None = None
        self.epoch = 0
        self._epoch_lr = math.nan  # the learning rate of the current epoch (set by begin_epoch)

    # -- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict:
        return {"hash": self.run_hash, "epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "method": self.method.state_dict(), "generator": self.context.generator.get_state(),
                "step": self.context.step, "log": self.log, "best_state": self.best_state, "best_criterion": self.best_criterion,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "component_best": self.component_best, "component_first": self.component_first}

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
        self.best_epoch, self.bad_epochs = state["best_epoch"], state["bad_epochs"]
        self.component_best = state.get("component_best")
        self.component_first = state.get("component_first", self.component_best)
        self.epoch = state["epoch"]
        log.info("resumed from checkpoint after epoch %d", self.epoch)
        return self.epoch

    # -- one step ------------------------------------------------------------------------
    def train_step(self, indices) -> dict[str, float]:
        """One optimisation step on the training items ``indices``; returns the raw losses.

        If a loss is not finite nothing is updated (the caller records the divergence). The step is
        :meth:`prepare_step`, the task's predictions, :meth:`apply_step`; a driver that computes the
        predictions elsewhere (:mod:`balancebench.multiseed`) calls the two halves.
        """
        batch = self.prepare_step(indices)
        return self.apply_step(self.task.predict(self.model, batch, training=True), batch)

    def prepare_step(self, indices):
        """The task's batch of ``indices``, after ``method.prepare_batch`` on its model input."""
        batch = self.train_data.batch(indices)
        self.context.batch_indices = np.asarray(indices)
        self.method.prepare_batch(self.task.model_input(batch), self.context, training=True)
        return batch

    def losses_at(self, indices=None, training: bool = False) -> dict:
        """The task's named losses of the training items ``indices`` (None: the current step's) at the current
        parameters (``TrainContext.losses_at``); ``training=False`` builds no graph for a later double backward."""
        idx = self.context.batch_indices if indices is None else np.asarray(indices)
        if idx is None:
            raise RuntimeError("losses_at(None) before the first step's batch")
        batch = self.train_data.batch(idx)
        return self.task.losses(self.task.predict(self.model, batch, training=training), batch, self.loss_settings)

    def apply_step(self, predictions, batch) -> dict[str, float]:
        """The named losses of the predictions, then ``method.backward`` and ``method.step``; the raw losses."""
        raw, losses = self.step_losses(predictions, batch)
        if losses is not None:
            self.method.backward(losses, self.context)
            self.finish_step()
        return raw

    def step_losses(self, predictions, batch) -> tuple[dict[str, float], dict | None]:
        """(raw losses, named differentiable losses) of the predictions, the gradients zeroed for the backward;
        the named losses are None when a raw one is not finite (no update: the step is recorded as failed)."""
        ctx = self.context
        losses = self.task.losses(predictions, batch, self.loss_settings)
        raw = {c: float(losses[c].detach()) for c in self.loss_names}
        if not all(math.isfinite(v) for v in raw.values()):
            return raw, None
        for p in [*ctx.model_params, *self.method.parameters()]:
            p.grad = None
        return raw, losses

    def finish_step(self) -> None:
        """After the backward: ``method.step`` and the step count."""
        self.method.step(self.context)
        self.context.step += 1

    def validation_errors(self, data=None, batch_size: int | None = None) -> np.ndarray:
        """Mean plain errors per loss (the task's validation losses, item-weighted) over ``data`` (default the
        validation split), no graph kept; the method's ``prepare_batch(..., training=False)`` runs first (e.g. a
        conditioned model's fixed evaluation preference)."""
        return validation_errors(self.task, self.model, self.val_data if data is None else data,
                                 batch_size or self.settings.batch_size, self.loss_settings, self.method, self.context)

    def criterion(self, val: np.ndarray) -> float:
        """C = sum_i val_i / ref_i (see the module docstring)."""
        total = val[0] / self.references[self.loss_names[0]]
        for value, name in zip(val[1:], self.loss_names[1:]):
            total = total + value / self.references[name]
        return float(total)

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
        """Start the next epoch: its item order (seeded by (seed, epoch)); the model in training mode."""
        self.epoch += 1
        self.context.epoch = self.epoch
        self._epoch_lr = (self.optimizer.param_groups[0]["lr"] if self.optimizer is not None
                          else self.settings.learning_rate * self.settings.lr_decay ** (self.epoch - 1))
        self.model.train()
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.train_data))

    def record_step(self, step: dict[str, float], step_losses: list) -> str:
        """Append the step's raw losses to ``step_losses``; a divergence reason instead ('' if none)."""
        s = self.settings
        raw = np.array([step[c] for c in self.loss_names])
        if not np.isfinite(raw).all():
            return (f"non-finite loss at epoch {self.epoch}, step {self.context.step} "
                    f"({self.task.divergence_note(step)})")
        if self.component_best is None:  # the untrained model's losses: the first yardstick of divergence
            self.component_best = [float(v) for v in raw]
            self.component_first = [float(v) for v in raw]
        best = np.asarray(self.component_best, dtype=float)
        first = np.asarray(self.component_first or self.component_best, dtype=float)
        # factor x the running best for a loss whose best is positive; in general a step more than (factor - 1) x the
        # loss's scale above its running best, the scale being the best itself when positive, else
        # max(|first step's|, first - best, 1e-12): a TaylorGLO polynomial can go negative or cross zero, and a
        # loss can start at 0
        fallback = np.maximum.reduce([np.abs(first), first - best, np.full(len(best), 1e-12)])
        scale = np.where(best > 0, best, fallback)
        limit = best + (s.divergence_factor - 1.0) * scale
        over = raw > limit
        if over.any():
            worst = int(np.argmax(np.where(over, (raw - best) / scale, -np.inf)))
            name = self.loss_names[worst]
            return (f"loss {name!r} exploded at epoch {self.epoch}, step {self.context.step}: {raw[worst]:.3g}, more than "
                    f"{s.divergence_factor - 1:g} x its scale {scale[worst]:.3g} above its running best "
                    f"{self.component_best[worst]:.3g}")
        step_losses.append(raw)
        return ""

    def update_running_best(self, epoch_train_losses) -> None:
        """Lower each component's running best (the yardstick of divergence) to this epoch's mean training loss."""
        train = np.asarray(epoch_train_losses, dtype=float)
        if self.component_best is not None and np.isfinite(train).all():
            self.component_best = [min(b, float(t)) for b, t in zip(self.component_best, train)]

    def finish_epoch(self, step_losses: list, seconds: float, failure: str = "", progress=None) -> str:
        """Validate, log the row, then (unless failed) decay the lr, ``method.end_epoch``, early stopping,
        checkpoint and ``progress(row)``; returns the failure reason ('' if none)."""
        s = self.settings
        k = len(self.loss_names)
        train = np.mean(step_losses, axis=0) if step_losses else np.full(k, np.nan)
        self.model.eval()
        val = self.validation_errors() if not failure else np.full(k, np.nan)
        criterion = self.criterion(val)
        if not failure and not math.isfinite(criterion):
            failure = f"non-finite validation error at epoch {self.epoch}"
        row = {"epoch": self.epoch, "seconds": seconds,
               **{f"train_{n}": train[i] for i, n in enumerate(self.loss_names)},
               **{f"val_{n}": val[i] for i, n in enumerate(self.loss_names)},
               "lr": self._epoch_lr, "criterion": criterion}
        values = {k: float(v) for k, v in self.method.log_values().items()}  # coef_<loss>, extras
        for name in self.loss_names:
            values.setdefault(f"coef_{name}", math.nan)
        row = {k: row[k] if k in row else values.pop(k) for k in log_columns_for(self.loss_names)} | values
        self.log.append(row)
        if failure:
            log.warning("%s", failure)
            return failure
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.end_epoch(dict(zip(self.loss_names, (float(x) for x in train))), self.context)
        self.update_running_best(train)
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


def validation_errors(task: Task, model, data, batch_size: int, loss_settings, method: BalancingMethod | None = None,
                      context: TrainContext | None = None) -> np.ndarray:
    """Mean plain errors per loss (``task.losses(..., validation=True)``) over ``data``, weighted by the items of
    each batch; no graph kept. With ``method``, its ``prepare_batch(model_input, context, training=False)`` runs
    first (e.g. a conditioned model's fixed evaluation preference)."""
    names = tuple(task.loss_names)
    total = np.zeros(len(names))
    for start in range(0, len(data), batch_size):
        idx = range(start, min(len(data), start + batch_size))
        batch = data.batch(idx)
        if method is not None:
            method.prepare_batch(task.model_input(batch), context, training=False)
        losses = task.losses(task.predict(model, batch, training=False), batch, loss_settings, validation=True)
        total += np.array([float(losses[c].detach()) for c in names]) * len(idx)
    return total / len(data)


def log_columns(rows: list[dict], loss_names) -> list[str]:
    """The fixed columns (:func:`log_columns_for`), then the method's extra columns (``log_values`` keys) in
    order of first appearance."""
    cols = list(log_columns_for(loss_names))
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def write_log(rows: list[dict], path: str | Path, loss_names) -> None:
    """The per-epoch CSV (the fixed columns, then the method's extras); non-finite values of a diverged epoch
    are written as 'nan', an extra missing from a row as an empty field."""
    cols = log_columns(rows, loss_names)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in cols if k in row})


def write_run(out: Path, trainer: "Trainer", result: TrainingResult, method_name: str, method_params: dict,
              variant: str, dataset, provenance: dict | None = None) -> None:
    """The files of a finished run in ``out``: ``model.pt``, ``hparams.json``, ``train_log.csv``,
    ``method_state.pt`` and ``status.json`` (and, for a preference-conditioned model, its front and chosen r)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings, method, task = trainer.settings, trainer.method, trainer.task
    atomic_torch_save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
    hparams = {"task": task.name, "losses": list(trainer.loss_names), "references": dict(trainer.references),
               "model": settings_dict(trainer.model.config),
               "training": {**dataclasses.asdict(settings), **task.loss_settings_record(trainer.loss_settings)},
               "method": method_name, "method_params": method_params, "variant": variant,
               "backward_passes": method.backward_passes, "seed": int(trainer.seed),
               **task.run_record(trainer.model, dataset), "device": str(trainer.device),
               "provenance": provenance or {}}
    if method.preference_dim > 0 and result.status == "completed":  # conditioned (COSMOS): front + chosen r
        from balancebench.pareto import conditioned_outputs

        rays = method.test_preferences() if hasattr(method, "test_preferences") \
            else int(method.params.get("test_rays", 25))
        hparams.update(conditioned_outputs(trainer, out, rays,
                                           method.params.get("eval_preference", (0.5,) * len(trainer.loss_names))))
    (out / "hparams.json").write_text(json.dumps(hparams, indent=2, sort_keys=True, default=str) + "\n")
    write_log(result.log, out / "train_log.csv", trainer.loss_names)
    torch.save(method.state_dict(), out / "method_state.pt")  # the method's final state (learned weights)
    (out / "status.json").write_text(json.dumps({**result.summary(), "method": method_name, "variant": variant,
                                                 "seed": int(trainer.seed), "provenance": provenance or {}},
                                                indent=2, default=str) + "\n")


def load_trained_model(task: Task, model_dir: str | Path):
    """(model, hparams) of a finished run: the task's model rebuilt from ``hparams.json`` with the weights of
    ``model.pt`` (loaded with ``weights_only=True``), in evaluation mode; a conditioned model at its chosen
    preference."""
    model_dir = Path(model_dir)
    hparams = json.loads((model_dir / "hparams.json").read_text())
    settings = task.model_settings(hparams["model"])
    dim = int(hparams["model"].get("preference_dim", 0) or 0) if isinstance(hparams["model"], dict) else 0
    model = task.build_model(settings, dim)
    state = torch_load(model_dir / "model.pt", "trained model", map_location="cpu")
    model.load_state_dict(state)
    model = model.to(dtype=next(iter(state.values())).dtype).eval()
    if hparams.get("preference") is not None and hasattr(model, "fix_preference"):
        model.fix_preference(hparams["preference"])
    return model, hparams


def trainer_for(dataset, model_config: dict, training: dict, method_name: str, method_params: dict, seed: int,
                checkpoint: str | Path | None = None, task: Task | None = None) -> Trainer:
    """A :class:`Trainer` from config sections: the task (default: the dataset's), its model settings, the core
    training settings and the task's loss settings out of one ``training`` section."""
    task = task if task is not None else get_task(dataset.task)
    settings = TrainingSettings.from_dict(training, task.loss_setting_names)
    method = get_method(method_name, **method_params)
    return Trainer(dataset, task.model_settings(model_config), settings, method, seed, checkpoint=checkpoint,
                   task=task, loss_settings=task.loss_settings(training))


def train_model(dataset, model_config: dict, training: dict, method_name: str, method_params: dict,
                seed: int, out_dir: str | Path, checkpoint: str | Path | None = None, threads: int | None = None,
                provenance: dict | None = None, progress=None, variant: str | None = None,
                task: Task | None = None) -> TrainingResult:
    """Train and write ``model.pt``, ``hparams.json``, ``train_log.csv``, ``method_state.pt`` and ``status.json``
    into ``out_dir``.

    ``variant``: the name the comparison uses for this method + parameters (recorded for
    provenance; default the method name). ``task``: default the task that reads ``dataset``.

    Never raises for a diverging run: its status says ``diverged`` with the reason and epoch.
    """
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = trainer_for(dataset, model_config, training, method_name, method_params, seed, checkpoint, task)
    result = trainer.run(progress=progress)
    write_run(out, trainer, result, method_name, method_params, variant or method_name, dataset, provenance)
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # finished: a rerun with -f starts afresh
    return result
