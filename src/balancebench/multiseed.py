"""Many seeds of one configuration in one process, driven in lockstep, for any task that offers batched
predictions (:meth:`balancebench.tasks.base.Task.batched_predictions`).

The S models (one per seed) keep their own parameters, optimizers and balancing methods; what is shared is the
forward work: the task computes the predictions of all S models in one call (the CG task: ``torch.func.vmap``
over stacked parameters, :mod:`balancebench.tasks.cg_benzene.batched`). Each seed then goes through the
balancing contract exactly as alone (:meth:`~balancebench.training.Trainer.apply_step`: its named losses, its own
``method.backward`` and ``method.step``), with no branch on the method's kind. When every seed's method is the
gradient of one objective (``single_objective``: value, conditioned and uncertainty weighting), the seeds'
objectives are summed and one backward pass through the batched graph serves all seeds (the parameters are
disjoint); otherwise each seed's backward runs on its own slice of the shared graph (~S times one model's
backward). tests/test_multiseed.py demands per-seed weights equal to training each seed alone.

The workflow routes to it with ``training.multiseed: true`` (one ``train`` job per variant, all seeds;
:func:`train_seeds`); the default is one job per seed.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch


class MultiSeedTrainer:
    """S :class:`~balancebench.training.Trainer` runs of one configuration (seeds differ), driven in lockstep.

    Every trainer keeps its own model, optimizer, scheduler, balancing method, item order, early stopping
    and result, exactly as when run alone, and goes through the same epoch pieces
    (``begin_epoch``, ``prepare_step`` / ``apply_step``, ``record_step``, ``finish_epoch``, ``result``);
    only the step's predictions of all still-running seeds come from one ``task.batched_predictions`` call.
    Checkpoints are not written (a multi-seed run restarts from scratch). ``seconds`` in the log is the
    epoch's shared wall time split evenly over the seeds.
    """

    def __init__(self, dataset, model_config, training: dict, method_name: str, method_params: dict, seeds,
                 task=None):
        import dataclasses

        from balancebench.training import trainer_for

        if dataclasses.is_dataclass(training):  # a TrainingSettings (core keys only)
            training = dataclasses.asdict(training)
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"a multi-seed run needs one or more distinct seeds, got {seeds}")
        self.trainers = [trainer_for(dataset, model_config, training, method_name, method_params, seed, task=task)
                         for seed in seeds]
        self.task = self.trainers[0].task
        self.settings = self.trainers[0].settings

    def _step(self, running: list, batches: dict) -> dict:
        """One optimisation step of every trainer in ``running`` on its items; raw losses per trainer."""
        prepared = [t.prepare_step(batches[id(t)]) for t in running]
        merged = all(t.method.single_objective() for t in running)
        predictions = self.task.batched_predictions([t.model for t in running], prepared, training=True,
                                                    shared_graph=merged)
        if not merged:
            return {id(t): t.apply_step(pred, batch) for t, pred, batch in zip(running, predictions, prepared)}
        raw, stepping, total = {}, [], None
        for t, pred, batch in zip(running, predictions, prepared):
            raw[id(t)], losses = t.step_losses(pred, batch)
            if losses is not None:
                objective = t.method.objective(losses, t.context)
                total = objective if total is None else total + objective
                stepping.append(t)
        if total is not None:
            total.backward()
        for t in stepping:
            t.finish_step()
        return raw

    def run(self, progress=None) -> list:
        """Train all seeds; returns each trainer's TrainingResult (seed order). ``progress(seed, row)`` per epoch."""
        s = self.settings
        failure = {id(t): "" for t in self.trainers}
        while True:
            active = [t for t in self.trainers
                      if not failure[id(t)] and t.epoch < s.max_epochs and t.bad_epochs < s.patience]
            if not active:
                break
            orders = {id(t): t.begin_epoch() for t in active}
            step_losses = {id(t): [] for t in active}
            running = list(active)
            start = time.perf_counter()
            for b in range(0, len(active[0].train_data), s.batch_size):
                if not running:
                    break
                raw = self._step(running, {id(t): orders[id(t)][b:b + s.batch_size] for t in running})
                for t in running:
                    failure[id(t)] = t.record_step(raw[id(t)], step_losses[id(t)])
                running = [t for t in running if not failure[id(t)]]
            seconds = (time.perf_counter() - start) / len(active)
            for t in active:
                report = None if progress is None else (lambda row, seed=t.seed: progress(seed, row))
                failure[id(t)] = t.finish_epoch(step_losses[id(t)], seconds, failure[id(t)], report)
        return [t.result(failure[id(t)]) for t in self.trainers]


def train_seeds(dataset, model_config: dict, training: dict, method_name: str, method_params: dict, seeds,
                out_dirs, threads: int | None = None, provenance: dict | list | None = None, progress=None,
                variant: str | None = None, task=None) -> list:
    """:func:`~balancebench.training.train_model` for several seeds in one process (``training.multiseed`` in
    the workflow: one ``train`` job per variant).

    Writes into ``out_dirs[k]`` the files ``train_model`` writes for ``seeds[k]`` (the same
    :func:`~balancebench.training.write_run`; tests/test_multiseed.py compares them); returns the
    TrainingResults. ``provenance``: one dict for all seeds or one per seed. ``progress(seed, row)`` is called
    per seed and epoch.
    """
    from balancebench.training import write_run

    if threads:
        torch.set_num_threads(int(threads))
    seeds, out_dirs = [int(s) for s in seeds], [Path(d) for d in out_dirs]
    if len(seeds) != len(out_dirs):
        raise ValueError(f"{len(seeds)} seeds but {len(out_dirs)} output directories")
    if not isinstance(provenance, list):
        provenance = [provenance] * len(seeds)
    if len(provenance) != len(seeds):
        raise ValueError(f"{len(seeds)} seeds but {len(provenance)} provenance records")
    multi = MultiSeedTrainer(dataset, model_config, training, method_name, method_params, seeds, task=task)
    results = multi.run(progress=progress)
    for out, trainer, result, record in zip(out_dirs, multi.trainers, results, provenance):
        write_run(out, trainer, result, method_name, method_params, variant or method_name, dataset, record)
    return results
