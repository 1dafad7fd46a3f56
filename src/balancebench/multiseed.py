"""Many seeds of one configuration in one process: S models of equal shape evaluated in one batched call.

The S models (one per seed) keep their own parameters, optimizers and balancing
methods; what is shared is the work: their explicit energies and forces
(:meth:`~balancebench.model.CGSchNet.explicit_energy_and_forces`) are computed by
``torch.func.vmap`` over parameters stacked along a new leading axis, each model
on its own batch of frames. The graphs of different seeds differ (each seed
shuffles its own frame order), so their pair lists are padded to the longest
with inert pairs (envelope, its derivative and the prior 0: they add exactly
zero to energies, forces and gradients). The stacking is differentiable, so one
backward of ``sum_s L_s`` fills every model's own ``.grad`` with exactly the
gradient of its own loss (the seeds do not interact).

On a GPU this keeps the device busy where one small model leaves it idle; on
one CPU core it saves little (the work is the same), and the point of the CPU
path is correctness: tests/test_multiseed.py demands per-seed weights equal
to training each seed alone.

Selected in the config by ``training.multi_seed`` (default false).
"""

from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from balancebench.model import CGSchNet, GraphBatch, PairGeometry

_GEOMETRY_FIELDS = ("i", "j", "unit", "rbf", "drbf", "envelope", "denvelope", "prior", "dprior")


def pad_geometry(geom: PairGeometry, n_pairs: int) -> PairGeometry:
    """``geom`` with inert pairs (0, 0) appended up to ``n_pairs``: zero envelope, derivative and prior."""
    extra = n_pairs - geom.i.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {geom.i.shape[0]} pairs down to {n_pairs}")
    if extra == 0:
        return geom
    parts = {}
    for name in _GEOMETRY_FIELDS:
        t = getattr(geom, name)
        parts[name] = torch.cat([t, t.new_zeros((extra,) + tuple(t.shape[1:]))])
    return PairGeometry(**parts)


def stack_states(models: list[CGSchNet]) -> tuple[dict, dict]:
    """(parameters, buffers) of ``models`` stacked on a leading seed axis; differentiable in each model's own."""
    names = [n for n, _ in models[0].named_parameters()]
    per_model = [dict(m.named_parameters()) for m in models]
    params = {n: torch.stack([p[n] for p in per_model]) for n in names}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in models[0].named_buffers()}
    return params, buffers


def check_same_shape(models: list[CGSchNet]) -> None:
    configs = {repr(m.config) for m in models}
    if len(configs) != 1:
        raise ValueError(f"training.multi_seed stacks models of one configuration; got {sorted(configs)}")


def batched_energy_and_forces(models: list[CGSchNet], graphs: list[GraphBatch], training: bool = True
                              ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(E (B,), F (B*N, 3)) of model s on graph s] from one vmapped explicit-force call.

    The graphs must hold the same number of frames and beads (the pair counts may differ). With ``training``
    the results carry their graph into every model's parameters; otherwise they are computed without one.
    """
    if len(models) != len(graphs) or not models:
        raise ValueError("one graph per model is needed")
    check_same_shape(models)
    shapes = {(g.n_frames, g.positions.shape[0]) for g in graphs}
    if len(shapes) != 1:
        raise ValueError(f"the seeds' batches must have equal frame and bead counts, got {sorted(shapes)}")
    template, template_graph = models[0], graphs[0]
    for g in graphs[1:]:
        if not torch.equal(g.frame, template_graph.frame):
            raise ValueError("the seeds' batches must have the same frame index per bead")
    geoms = [m.batch_geometry(g) for m, g in zip(models, graphs)]
    n_pairs = max(g.i.shape[0] for g in geoms)
    padded = [pad_geometry(g, n_pairs) for g in geoms]
    stacked = tuple(torch.stack([getattr(g, name) for g in padded]) for name in _GEOMETRY_FIELDS)
    shell = GraphBatch(template_graph.positions, template_graph.neighbors, template_graph.frame,
                       template_graph.n_frames, {k: v for k, v in template_graph.extras.items() if k != "frames"})

    bound = _Explicit(template)

    def one(params, buffers, *fields):
        state = {f"model.{k}": v for k, v in {**params, **buffers}.items()}
        return functional_call(bound, state, (shell, PairGeometry(*fields)))

    with torch.set_grad_enabled(training):
        params, buffers = stack_states(models)
        energy, forces = vmap(one)(params, buffers, *stacked)
    return [(energy[s], forces[s]) for s in range(len(models))]


class _Explicit(torch.nn.Module):
    """``model.explicit_energy_and_forces(batch, geometry)`` as a module call, for ``functional_call``."""

    def __init__(self, model: CGSchNet):
        super().__init__()
        self.model = model

    def forward(self, batch: GraphBatch, geometry: PairGeometry):
        return self.model.explicit_energy_and_forces(batch, geometry)


class MultiSeedTrainer:
    """S :class:`~balancebench.training.Trainer` runs of one configuration (seeds differ), driven in lockstep.

    Every trainer keeps its own model, optimizer, scheduler, method state, frame order, early stopping and
    result, exactly as when run alone; only the step's energies and forces of all still-running seeds come
    from one :func:`batched_energy_and_forces` call, and one backward (per loss component for gradient
    methods) serves them all. Validation uses each trainer's own evaluation. Checkpoints are not written
    (a multi-seed run restarts from scratch).
    """

    def __init__(self, dataset, model_config, settings, method_name: str, method_params: dict, seeds):
        from balancebench.balancing import get_method
        from balancebench.training import Trainer

        if len({int(s) for s in seeds}) != len(list(seeds)):
            raise ValueError(f"training.multi_seed needs distinct seeds, got {list(seeds)}")
        self.trainers = [Trainer(dataset, model_config, settings, get_method(method_name, **method_params), seed)
                         for seed in seeds]
        self.settings = settings

    def _step(self, active: list, batches: dict) -> dict:
        """One optimisation step of every trainer in ``active`` on its frames; returns raw losses per trainer."""
        import numpy as np

        from balancebench.training import loss_components

        graphs, refs = [], []
        for t in active:
            graph, f_ref, e_ref = t.train_frames.batch(batches[id(t)])
            graphs.append(graph)
            refs.append((f_ref, e_ref))
        results = batched_energy_and_forces([t.model for t in active], graphs, training=True)
        losses = []
        for t, (energy, forces), (f_ref, e_ref) in zip(active, results, refs):
            model = _Precomputed(energy, forces)
            losses.append(loss_components(model, None, f_ref, e_ref, t.settings.energy_loss,
                                          t.train_frames.n_beads, training=True))
        raw = {id(t): l.detach().double().cpu().numpy() for t, l in zip(active, losses)}
        ok = [k for k, t in enumerate(active) if np.isfinite(raw[id(t)]).all()]
        for t in active:
            t.optimizer.zero_grad(set_to_none=True)
        if not ok:
            return raw
        gradient = [k for k in ok if active[k].method.kind == "gradient"]
        value = [k for k in ok if active[k].method.kind != "gradient"]
        if value:
            total = sum((torch.as_tensor(active[k].coefficients, dtype=losses[k].dtype) * losses[k]).sum()
                        for k in value)
            total.backward(retain_graph=bool(gradient))
        if gradient:
            params = {k: [p for p in active[k].model.parameters() if p.requires_grad] for k in gradient}
            n_comp = len(losses[gradient[0]])
            per_comp = []
            for c in range(n_comp):
                flat = [p for k in gradient for p in params[k]]
                g = torch.autograd.grad(sum(losses[k][c] for k in gradient), flat, retain_graph=c < n_comp - 1,
                                        allow_unused=True)
                per_comp.append([torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, flat)])
            offset = 0
            for k in gradient:
                t, n = active[k], len(params[k])
                grads = torch.stack([torch.cat([gi.reshape(-1) for gi in per_comp[c][offset:offset + n]])
                                     for c in range(n_comp)])
                offset += n
                direction = t.method.combine(grads, losses[k].detach())
                o = 0
                for p in params[k]:
                    p.grad = direction[o:o + p.numel()].view_as(p).to(p.dtype)
                    o += p.numel()
        for k in ok:
            active[k].optimizer.step()
        return raw

    def run(self, progress=None) -> list:
        """Train all seeds; returns each trainer's TrainingResult (seed order). ``progress(seed, row)`` per epoch."""
        import math
        import time

        import numpy as np

        from balancebench.training import TrainingResult, evaluate

        s = self.settings
        state = {id(t): {"failure": "", "done": False} for t in self.trainers}
        while True:
            active = [t for t in self.trainers
                      if not state[id(t)]["done"] and t.epoch < s.max_epochs and t.bad_epochs < s.patience]
            if not active:
                break
            per = {}
            for t in active:
                t.epoch += 1
                order = np.random.default_rng([t.seed, t.epoch]).permutation(len(t.train_frames))
                per[id(t)] = {"order": order, "coef": t.coefficients.copy(), "lr": t.optimizer.param_groups[0]["lr"],
                              "losses": [], "weights": [], "start": time.perf_counter(), "seconds": 0.0}
                t.model.train()
            running = list(active)
            n_frames = len(active[0].train_frames)
            for b in range(0, n_frames, s.batch_size):
                if not running:
                    break
                batches = {id(t): per[id(t)]["order"][b:b + s.batch_size] for t in running}
                raw = self._step(running, batches)
                still = []
                for t in running:
                    r, st = raw[id(t)], state[id(t)]
                    if not np.isfinite(r).all():
                        st["failure"] = f"non-finite loss at epoch {t.epoch} (L_F={r[0]:.3g}, L_E={r[1]:.3g})"
                        continue
                    if t.first_loss is None:
                        t.first_loss = max(float(r.sum()), 1e-30)
                    elif float(r.sum()) > s.divergence_factor * t.first_loss:
                        st["failure"] = (f"loss exploded at epoch {t.epoch}: {r.sum():.3g} > {s.divergence_factor:g}"
                                         f" x the first step's {t.first_loss:.3g}")
                        continue
                    per[id(t)]["losses"].append(r)
                    if t.method.kind == "gradient" and getattr(t.method, "last_weights", None) is not None:
                        per[id(t)]["weights"].append(np.asarray(t.method.last_weights, dtype=np.float64))
                    t._update_coefficients(r, "step")
                    still.append(t)
                running = still
            for t in active:
                p, st = per[id(t)], state[id(t)]
                seconds = (time.perf_counter() - p["start"]) / len(active)  # shared wall time, split evenly
                coef_epoch = np.mean(p["weights"], axis=0) if p["weights"] else p["coef"]
                train = np.mean(p["losses"], axis=0) if p["losses"] else np.full(2, np.nan)
                t.model.eval()
                failure = st["failure"]
                val = evaluate(t.model, t.val_frames, s.batch_size, s.energy_loss) if not failure else np.full(2, np.nan)
                criterion = float(val[0] / t.var_force + val[1] / t.var_energy)
                if not failure and not math.isfinite(criterion):
                    failure = st["failure"] = f"non-finite validation error at epoch {t.epoch}"
                row = {"epoch": t.epoch, "seconds": seconds, "train_force": train[0], "train_energy": train[1],
                       "val_force": val[0], "val_energy": val[1], "coef_force": coef_epoch[0],
                       "coef_energy": coef_epoch[1], "lr": p["lr"], "criterion": criterion}
                t.log.append(row)
                if failure:
                    st["done"] = True
                    continue
                t.scheduler.step()
                t._update_coefficients(train, "epoch")
                if criterion < t.best_criterion * (1.0 - s.min_delta):
                    t.best_criterion, t.best_epoch, t.bad_epochs = criterion, t.epoch, 0
                    t.best_state = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
                else:
                    t.bad_epochs += 1
                if progress is not None:
                    progress(t.seed, row)
        results = []
        for t in self.trainers:
            failure = state[id(t)]["failure"]
            if failure:
                status, reason = "diverged", failure
            elif t.bad_epochs >= s.patience:
                status, reason = "completed", f"early stopping: no {s.min_delta:g} relative improvement for {s.patience} epochs"
            else:
                status, reason = "completed", f"max_epochs {s.max_epochs} reached"
            if t.best_state is not None:
                t.model.load_state_dict(t.best_state)
            results.append(TrainingResult(status, reason, t.epoch, t.best_epoch, t.best_criterion, list(t.log), 0))
        return results


class _Precomputed:
    """Stands in for the model in ``loss_components``: returns the (energy, forces) computed in the batched call."""

    def __init__(self, energy: torch.Tensor, forces: torch.Tensor):
        self._result = (energy, forces)

    def energy_and_forces(self, graph, training: bool = False):
        return self._result


def train_seeds(dataset, model_config: dict, training: dict, method_name: str, method_params: dict, seeds,
                out_dirs, threads: int | None = None, provenance: dict | None = None, progress=None) -> list:
    """:func:`~balancebench.training.train_model` for several seeds in one process (``training.multi_seed``).

    Writes into ``out_dirs[k]`` the files ``train_model`` writes for ``seeds[k]`` (model.pt, hparams.json,
    train_log.csv, status.json; tests/test_multiseed.py compares them); returns the TrainingResults.
    ``progress(seed, row)`` is called per seed and epoch.
    """
    import dataclasses
    import json
    from pathlib import Path

    from balancebench.model import ModelConfig
    from balancebench.training import TrainingSettings, write_log

    if threads:
        torch.set_num_threads(int(threads))
    seeds, out_dirs = [int(s) for s in seeds], [Path(d) for d in out_dirs]
    if len(seeds) != len(out_dirs):
        raise ValueError(f"{len(seeds)} seeds but {len(out_dirs)} output directories")
    cfg = ModelConfig.from_dict(model_config)
    settings = TrainingSettings.from_dict(training)
    multi = MultiSeedTrainer(dataset, cfg, settings, method_name, method_params, seeds)
    results = multi.run(progress=progress)
    for seed, out, trainer, result in zip(seeds, out_dirs, multi.trainers, results):
        out.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
        hparams = {"model": cfg.to_dict(), "training": dataclasses.asdict(settings), "method": method_name,
                   "method_params": method_params, "seed": seed, "n_beads": dataset.n_beads,
                   "bead_mass": float(dataset.masses[0]), "energy_unit": "kcal/mol", "length_unit": "angstrom",
                   "device": str(trainer.device), "energy_shift_per_bead": float(trainer.model.energy_shift),
                   "energy_scale": float(trainer.model.energy_scale), "provenance": provenance or {}}
        (out / "hparams.json").write_text(json.dumps(hparams, indent=2, sort_keys=True, default=str) + "\n")
        write_log(result.log, out / "train_log.csv")
        (out / "status.json").write_text(json.dumps({**result.summary(), "method": method_name, "seed": seed,
                                                     "provenance": provenance or {}}, indent=2, default=str) + "\n")
    return results
