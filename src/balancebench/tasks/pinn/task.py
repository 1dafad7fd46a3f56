"""The task ``pinn`` (docs/pinn.md): a physics-informed network trained on the named losses ``residual``,
``boundary`` and (where the problem has one) ``initial`` of one PDE problem (:mod:`.problems`), chosen by
``pinn.problem``.

Iterations and epochs. The paper (Wang, Teng & Perdikaris 2021, REFERENCES.md sec. 6.1) draws a fresh batch of
points for every loss term at every Adam iteration and decays the learning rate by 0.9 every 1000 iterations.
Here one training *item* is one iteration: the training split has ``pinn.iterations_per_epoch`` items (1000),
``training.batch_size`` must be 1, so one epoch is 1000 iterations and the core's per-epoch ExponentialLR with
``training.lr_decay: 0.9`` is the paper's schedule (staircase: the paper's decay is continuous, 0.9^(it/1000);
the two agree at every 1000th iteration).

Points. The points of iteration ``i`` of the run with seed ``s`` come from
``numpy.random.default_rng([sampling_seed, s, i])``: uniform in the box for the residual, uniform on each edge
for each boundary or initial piece, ``pinn.points_per_term`` points per piece. ``i`` is the model's own
iteration count (a buffer of the model, like BatchNorm's ``num_batches_tracked``, so the trainer's checkpoint
carries it and a resumed run draws the points the uninterrupted run drew); ``s`` is ``torch.initial_seed()`` when
the model is built (the Trainer seeds torch with the run seed just before ``build_model``). Both are
workarounds: ``TaskData.batch(indices)`` sees neither the epoch nor the seed (docs/pinn.md, "core hooks").

References. The losses are made unit-free by their scales on the reference solution over the test grid:
residual: the mean over the grid of the sum of the squares of the equation's terms (e.g. u_xx, u_yy, k^2 u, q);
each boundary or initial piece: the mean square over the grid of the quantity it constrains (u, or u_t), summed
over the pieces of the term.

Validation (early stopping, the best weights): fixed points (``pinn.validation_points`` per piece) drawn once from
the data seed. At every validation the model also records its relative L2 error on the test grid with its
iteration count (the model's extra state), from which the evaluation reads the iterations to reach
``pinn.target_rel_l2``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from balancebench.balancing.ntk import POINTS_SUFFIX  # losses[f"{name}@points"]: e with L = mean(e^2)
from balancebench.tasks.base import LOWER, MetricSpec, Task, TaskData, register_task

from .problems import PROBLEMS, Problem, derivative, make_problem


# ------------------------------------------------------------------------------------------- data
@dataclass
class PinnDataset:
    task: ClassVar[str] = "pinn"
    section: dict
    grid: np.ndarray  # (N, 2) test points
    shape: tuple
    reference: np.ndarray  # (N,) the exact / reference solution on the grid
    validation: dict  # piece key -> (M, 2) points
    references: dict  # loss -> scale
    split: dict = field(default_factory=dict)

    @property
    def problem(self) -> Problem:
        return make_problem(self.section)


@dataclass
class PinnBatch:
    kind: str  # train | validation
    indices: Any = None
    split: Any = None


class PinnTrain(TaskData):
    """``iterations_per_epoch`` items; item = one iteration (its points are drawn in :meth:`Pinn.predict`)."""

    def __init__(self, dataset: PinnDataset, device, dtype):
        self.dataset, self.device, self.dtype = dataset, device, dtype
        self.problem = dataset.problem
        self.n = int(dataset.section["iterations_per_epoch"])
        self.references = dict(dataset.references)

    def __len__(self) -> int:
        return self.n

    def batch(self, indices):
        return PinnBatch("train", np.asarray(list(indices)), self)


class PinnValidation(TaskData):
    """One item: the fixed validation points of every piece (and the test grid for the recorded rel. L2)."""

    def __init__(self, dataset: PinnDataset, device, dtype):
        self.dataset, self.device, self.dtype = dataset, device, dtype
        self.problem = dataset.problem
        self.points = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in dataset.validation.items()}
        self.grid = torch.as_tensor(dataset.grid, dtype=dtype, device=device)
        self.reference = torch.as_tensor(dataset.reference, dtype=dtype, device=device)

    def __len__(self) -> int:
        return 1

    def batch(self, indices):
        return PinnBatch("validation", np.asarray(list(indices)), self)


# ------------------------------------------------------------------------------------------- model
class Clock(torch.nn.Module):
    """The model's iteration count and run seed (buffers) and its (iteration, test rel. L2) history (extra
    state, a float64 tensor): what a resumed run and the evaluation need and the task's hooks do not give."""

    def __init__(self):
        super().__init__()
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))
        self.register_buffer("seed", torch.tensor(int(torch.initial_seed()) % (2 ** 62), dtype=torch.int64))
        self.history = torch.zeros((0, 2), dtype=torch.float64)

    def get_extra_state(self):
        return self.history.clone()

    def set_extra_state(self, state):
        self.history = torch.as_tensor(state, dtype=torch.float64).clone().reshape(-1, 2)

    def record(self, rel_l2: float) -> None:
        it = float(self.iteration)
        if self.history.shape[0] == 0 or float(self.history[-1, 0]) < it:
            self.history = torch.cat([self.history, torch.tensor([[it, rel_l2]], dtype=torch.float64)])


class PinnNet(torch.nn.Module):
    """[2] + [hidden] * layers + [1], tanh, Xavier-normal weights, zero biases (the paper's code); inputs
    standardised by the exact mean and std of the uniform distribution on the box (the code: 1e5 samples)."""

    def __init__(self, hidden: int, layers: int, lower, upper):
        super().__init__()
        self.config = {"hidden": int(hidden), "layers": int(layers), "lower": [float(v) for v in lower],
                       "upper": [float(v) for v in upper]}
        sizes = [2] + [int(hidden)] * int(layers) + [1]
        self.linears = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for lin in self.linears:
            torch.nn.init.xavier_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        lo, hi = torch.tensor(lower, dtype=torch.float64), torch.tensor(upper, dtype=torch.float64)
        self.register_buffer("mu", (lo + hi) / 2)
        self.register_buffer("sigma", (hi - lo) / math.sqrt(12.0))
        self.clock = Clock()  # last: the first state_dict entry stays a float weight (load_trained_model's dtype)

    def forward(self, X):
        h = (X - self.mu.to(X.dtype)) / self.sigma.to(X.dtype)
        for lin in self.linears[:-1]:
            h = torch.tanh(lin(h))
        return self.linears[-1](h).squeeze(-1)

    def last_shared_parameter(self):
        return self.linears[-1].weight


# ------------------------------------------------------------------------------------------- points
def sample_points(problem: Problem, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` uniform points for the residual and for every piece of every condition (key ``loss/piece``)."""
    lo, hi = np.asarray(problem.lower), np.asarray(problem.upper)
    out = {"residual": lo + (hi - lo) * rng.random((n, 2))}
    for loss in problem.loss_names[1:]:
        for piece in problem.pieces(loss):
            X = lo + (hi - lo) * rng.random((n, 2))
            X[:, piece.dim] = piece.value
            out[f"{loss}/{piece.name}"] = X
    return out


def _piece_errors(problem: Problem, model, points: dict, loss: str) -> list[torch.Tensor]:
    """The per-point errors of each piece of ``loss``; the value pieces (order 0) through one forward pass of
    their stacked points (one pass instead of one per edge: the same numbers up to float rounding)."""
    pieces = problem.pieces(loss)
    errs: list = [None] * len(pieces)
    values = [i for i, p in enumerate(pieces) if p.order == 0]
    if values:
        Xs = [points[f"{loss}/{pieces[i].name}"] for i in values]
        u = model(torch.cat(Xs)) if len(Xs) > 1 else model(Xs[0])
        for i, X, ui in zip(values, Xs, torch.split(u, [len(X) for X in Xs])):
            errs[i] = ui - pieces[i].target(X)
    for i, piece in enumerate(pieces):
        if piece.order != 0:
            X = _differentiable(points[f"{loss}/{piece.name}"])
            errs[i] = derivative(model(X), X, piece.dim) - piece.target(X)
    return errs


def _differentiable(X: torch.Tensor) -> torch.Tensor:
    """``X`` as a non-leaf tensor that requires grad: torch's FlopCounterMode (the counted work) refuses
    autograd.grad with respect to a leaf module input."""
    return X.detach().requires_grad_(True) * 1.0


def predict_points(problem: Problem, model, points: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Per loss, the list of per-point errors of its pieces (the residual: one piece)."""
    with torch.enable_grad():
        X = _differentiable(points["residual"])
        out = {"residual": [problem.residual(model(X), X)]}
        for loss in problem.loss_names[1:]:
            out[loss] = _piece_errors(problem, model, points, loss)
    return out


# ------------------------------------------------------------------------------------------- task
_MODEL_DEFAULTS = {"hidden": 50, "layers": 3}
ALL_LOSSES = ("residual", "boundary", "initial")
# the problem of an unconfigured instance (``get_task("pinn")`` without a config, e.g. a trainer built from a
# dataset alone): the last config checked or dataset read in this process. A configured instance
# (``get_task("pinn", config)``, :meth:`Pinn.configure`) holds its own problem and never reads this.
_ACTIVE = {"problem": "helmholtz2d"}


def activate(problem: str) -> None:
    """Make ``problem`` the one whose loss names the task ``pinn`` reports in this process."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown PINN problem {problem!r}; known: {PROBLEMS}")
    _ACTIVE["problem"] = problem


class _LossNames:
    """``Pinn.loss_names``: all three on the class (registration); on an instance its configured problem's
    (:meth:`Pinn.configure`), else the active one's."""

    def __get__(self, obj, owner=None):
        if obj is None:
            return ALL_LOSSES
        return make_problem({"problem": obj.__dict__.get("problem") or _ACTIVE["problem"]}).loss_names


@register_task("pinn")
class Pinn(Task):
    loss_names = _LossNames()  # type: ignore[assignment]  # the active problem's (module _ACTIVE)
    metrics = (
        MetricSpec("rel_l2", LOWER, "accuracy"),
        MetricSpec("max_abs_error", LOWER, "accuracy"),
        MetricSpec("residual_mse", LOWER, "physics"),
        MetricSpec("boundary_error", LOWER, "physics"),
        MetricSpec("iterations_to_target", LOWER, "convergence", "iterations"),
        MetricSpec("work_to_target", LOWER, "convergence", "GFLOP"),
        MetricSpec("t_it", LOWER, "cost", "s"),
        MetricSpec("failed", LOWER, "failures"),
    )
    concerns = {"accuracy": ("rel_l2", "max_abs_error"), "physics": ("residual_mse", "boundary_error"),
                "convergence": ("iterations_to_target", "work_to_target"),
                "cost": ("N_ep", "t_ep", "sigma_ep", "t_it"), "failures": ("failed",)}
    other_items_refusal = ("a PINN batch is drawn from the model's iteration counter, so those evaluations would "
                           "advance the point stream and judge the step on the next iteration's points: not offered "
                           "on the task pinn")
    concern_axes = {"quality": ("accuracy", "physics"), "cost": ("convergence", "cost")}
    claim_declarations = ("balancebench.tasks.pinn.claims:anchor_claims",)  # issue 26's anchors (claims.md)
    dataset_file = "data/pinn.npz"
    evaluation_sections = ("pinn",)

    def code_paths(self) -> tuple[str, ...]:
        return ("tasks/base.py", "tasks/pinn")

    # -- config ----------------------------------------------------------------------------------
    def config_schema(self) -> dict:
        return {"properties": {
            "pinn": {"type": "object", "additionalProperties": False, "default": {}, "properties": {
                "problem": {"type": "string", "enum": list(PROBLEMS), "default": "helmholtz2d",
                            "description": "the PDE problem (docs/pinn.md); one problem per run"},
                "k": {"type": "number", "exclusiveMinimum": 0, "default": 1.0, "description": "Helmholtz wave number"},
                "nu": {"type": "number", "exclusiveMinimum": 0, "default": 0.01 / math.pi,
                       "description": "Burgers viscosity"},
                "points_per_term": {"type": "integer", "minimum": 1, "default": 128,
                                    "description": "fresh uniform points per piece of each loss term per iteration"},
                "iterations_per_epoch": {"type": "integer", "minimum": 1, "default": 1000,
                                         "description": "iterations (training items) per epoch"},
                "validation_points": {"type": "integer", "minimum": 1, "default": 1000,
                                      "description": "fixed validation points per piece (early stopping)"},
                "test_grid": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 2},
                              "minItems": 2, "maxItems": 2, "default": None,
                              "description": "test grid size per coordinate (null: the problem's own)"},
                "target_rel_l2": {"type": "number", "exclusiveMinimum": 0, "default": 0.1},
                "fail_rel_l2": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
                "write_predictions": {"type": "boolean", "default": True,
                                      "description": "prediction.npz and prediction.png next to each model"}}},
            "model": {"additionalProperties": False, "properties": {
                "hidden": {"type": "integer", "minimum": 1, "default": 50},
                "layers": {"type": "integer", "minimum": 1, "default": 3}}}}}

    def configure(self, config: dict) -> "Pinn":
        """An instance whose loss names are those of the run's ``pinn.problem``."""
        task = Pinn()
        task.problem = (config.get("pinn") or {}).get("problem", "helmholtz2d")
        if task.problem not in PROBLEMS:
            raise ValueError(f"unknown PINN problem {task.problem!r}; known: {PROBLEMS}")
        return task

    def check_config(self, config: dict) -> None:
        from balancebench.config import ConfigError

        activate((config.get("pinn") or {}).get("problem", "helmholtz2d"))
        training = config.get("training") or {}
        if int(training.get("batch_size", 1)) != 1:
            raise ConfigError("config error at training.batch_size: the task pinn needs 1 (one item = one "
                              f"iteration with its own fresh points), got {training.get('batch_size')}")
        self._check_update_periods(config)

    @staticmethod
    def _check_update_periods(config: dict) -> None:
        """A method that updates its weights every N iterations (LRA, NTK: param ``every``) on a training of fewer
        than N iterations would never update: refused, naming the variant's field."""
        from balancebench.balancing import default_params
        from balancebench.config import ConfigError

        training = config.get("training") or {}
        total = int((config.get("pinn") or {}).get("iterations_per_epoch", 1000)) * int(training.get("max_epochs", 100))
        for name, variant in ((config.get("balancing") or {}).get("variants") or {}).items():
            if not isinstance(variant, dict) or "method" not in variant:
                continue
            try:
                defaults = default_params(variant["method"])
            except (KeyError, ValueError):
                continue  # an unknown method is named by the core's check
            every = (variant.get("params") or {}).get("every", defaults.get("every"))
            if isinstance(every, int) and not isinstance(every, bool) and every > total:
                raise ConfigError(
                    f"config error at balancing.variants.{name}.params.every: {variant['method']} updates its "
                    f"weights every {every} iterations, but the training runs {total} (pinn.iterations_per_epoch x "
                    f"training.max_epochs): it would never update")

    # -- data --------------------------------------------------------------------------------------
    def make_dataset(self, config: dict, path) -> None:
        section = dict(config["pinn"])
        activate(section["problem"])
        problem = make_problem(section)
        grid, shape = problem.test_grid(section.get("test_grid"))
        reference = problem.reference(grid)
        rng = np.random.default_rng([int(config["seed"]), 7])
        validation = sample_points(problem, rng, int(section["validation_points"]))
        refs = reference_scales(problem, grid, reference, shape)
        meta = {"section": section, "shape": list(shape), "references": refs, "sampling_seed": int(config["seed"])}
        np.savez(path, meta=np.array(json.dumps(meta)), grid=grid, reference=reference,
                 **{f"val:{k}": v for k, v in validation.items()})

    def read_dataset(self, path) -> PinnDataset:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            section = dict(meta["section"], sampling_seed=meta["sampling_seed"])
            activate(section["problem"])
            validation = {k[4:]: data[k] for k in data.files if k.startswith("val:")}
            return PinnDataset(section, data["grid"], tuple(meta["shape"]), data["reference"], validation,
                               meta["references"], {"train": None, "validation": None})

    def build_model(self, model_settings, preference_dim: int = 0) -> PinnNet:
        s = {**_MODEL_DEFAULTS, **dict(model_settings)}
        return PinnNet(s["hidden"], s["layers"], s.get("lower", (-1.0, -1.0)), s.get("upper", (1.0, 1.0)))

    def training_data(self, dataset: PinnDataset, split: str, model_settings, device, dtype) -> TaskData:
        if split == "train":
            return PinnTrain(dataset, device, dtype)
        return PinnValidation(dataset, device, dtype)

    def prepare_model(self, model, train_data) -> None:
        problem = train_data.problem  # the box of the problem: the input standardisation
        lo, hi = torch.tensor(problem.lower, dtype=torch.float64), torch.tensor(problem.upper, dtype=torch.float64)
        model.mu.copy_((lo + hi) / 2)
        model.sigma.copy_((hi - lo) / math.sqrt(12.0))
        model.config.update(lower=list(problem.lower), upper=list(problem.upper))

    def data_fingerprint(self, dataset: PinnDataset, split: str = "train") -> list:
        return [json.dumps(dataset.section, sort_keys=True), dataset.reference.tobytes()]

    def run_record(self, model, dataset) -> dict:
        return {"pinn": {"problem": dataset.section["problem"], "references": dataset.references}}

    # -- losses ----------------------------------------------------------------------------------
    def batch_points(self, model, batch: PinnBatch) -> dict[str, torch.Tensor]:
        data = batch.split
        if batch.kind == "validation":
            return data.points
        clock = model.clock
        rng = np.random.default_rng([int(data.dataset.section["sampling_seed"]), int(clock.seed),
                                     int(clock.iteration)])
        pts = sample_points(data.problem, rng, int(data.dataset.section["points_per_term"]))
        return {k: torch.as_tensor(v, dtype=data.dtype, device=data.device) for k, v in pts.items()}

    def predict(self, model, batch: PinnBatch, training: bool):
        data = batch.split
        out = predict_points(data.problem, model, self.batch_points(model, batch))
        if batch.kind == "train" and training:
            model.clock.iteration += 1
        if batch.kind == "validation":
            with torch.no_grad():
                u = model(data.grid)
                rel = float(torch.linalg.vector_norm(u - data.reference) / torch.linalg.vector_norm(data.reference))
            model.clock.record(rel)
            out = {k: [e.detach() for e in v] for k, v in out.items()}
        return out

    def batched_predictions(self, models: list, batches: list, training: bool, shared_graph: bool) -> list:
        """Multi-seed training (``training.multiseed``): each seed's predictions on its own fresh points, one
        after the other in the one process (no vectorisation over seeds: the gain is one job per variant
        instead of one per seed, i.e. the process start-up and set-up of the other seeds); every seed's numbers
        equal its lone run's (tests/test_pinn.py)."""
        return [self.predict(m, b, training) for m, b in zip(models, batches)]

    def losses(self, predictions, batch, settings, validation: bool = False) -> dict:
        out = {}
        for name in self.loss_names:
            errs = predictions[name]
            out[name] = sum(torch.mean(e ** 2) for e in errs)
            if not validation:  # per-point errors e with L = mean(e^2) for methods that need them (ntk)
                out[name + POINTS_SUFFIX] = torch.cat(errs) * math.sqrt(len(errs))
        return out

    def errors(self, predictions, batch, settings) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in self.losses(predictions, batch, settings, True).items()}

    def loss_references(self, train_data, settings) -> dict[str, float]:
        return {k: float(train_data.references[k]) for k in self.loss_names}

    def dataset_references(self, dataset: PinnDataset, settings) -> dict[str, float]:
        return {k: float(dataset.references[k]) for k in self.loss_names}

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, model, dataset: PinnDataset, hparams: dict, config: dict) -> dict:
        return evaluate_pinn(self, model, dataset, hparams, config)


def reference_scales(problem: Problem, grid: np.ndarray, reference: np.ndarray, shape) -> dict[str, float]:
    """The unit-free scales of the losses on the reference over the test grid (module docstring)."""
    X = torch.as_tensor(grid, dtype=torch.float64)
    if problem.exact is not None:
        Xg = X.clone().requires_grad_(True)
        u = problem.exact(Xg)
        terms = [t.detach().numpy() for t in problem.residual_terms(u, Xg)]
        u_t = derivative(u, Xg, 1).detach().numpy()
    else:  # a tabulated reference (Burgers): its terms by second-order differences on the grid
        U = reference.reshape(shape)
        a = np.unique(grid[:, 0])
        b = np.unique(grid[:, 1])
        u_x, u_t = np.gradient(U, a, b, edge_order=2)
        u_xx = np.gradient(u_x, a, axis=0, edge_order=2)
        nu = problem.params["nu"]
        terms = [u_t.ravel(), (U * u_x).ravel(), -nu * u_xx.ravel()]
        u_t = u_t.ravel()
    refs = {"residual": float(np.mean(np.sum(np.square(terms), axis=0)))}
    mean_u2, mean_ut2 = float(np.mean(reference ** 2)), float(np.mean(u_t ** 2))
    for loss in problem.loss_names[1:]:
        refs[loss] = float(sum(mean_u2 if p.order == 0 else mean_ut2 for p in problem.pieces(loss)))
    return refs


def _model_dir(config: dict, hparams: dict) -> Path | None:
    """The trained model's directory (workaround: evaluate() is not given it): results_dir/models/variant/seedN
    from the config and the replicate seed of hparams' provenance, if its hparams.json is this run's."""
    prov = hparams.get("provenance") or {}
    replicate, variant = prov.get("replicate_seed"), hparams.get("variant")
    if replicate is None or variant is None or not config.get("results_dir"):
        return None
    path = Path(config["results_dir"]) / "models" / str(variant) / f"seed{replicate}"
    try:
        other = json.loads((path / "hparams.json").read_text())
    except (OSError, ValueError):
        return None
    return path if other.get("seed") == hparams.get("seed") and other.get("method") == hparams.get("method") else None


def evaluate_pinn(task: Pinn, model, dataset: PinnDataset, hparams: dict, config: dict) -> dict:
    problem, section = dataset.problem, dataset.section
    dtype = next(model.parameters()).dtype
    grid = torch.as_tensor(dataset.grid, dtype=dtype)
    ref = dataset.reference
    with torch.no_grad():
        u = model(grid).double().numpy()
    err = u - ref
    rel = float(np.linalg.norm(err) / np.linalg.norm(ref))
    res = predict_points(problem, model, {"residual": grid, **_grid_pieces(problem, dataset.grid, dtype)})
    residual_mse = float(torch.mean(res["residual"][0].detach().double() ** 2))
    bnd = torch.cat([e.detach().double() for e in res["boundary"]])
    boundary_rms = float(torch.sqrt(torch.mean(bnd ** 2)))
    out = {"rel_l2": (rel, "completed", ""), "max_abs_error": (float(np.max(np.abs(err))), "completed", ""),
           "residual_mse": (residual_mse, "completed", ""), "boundary_error": (boundary_rms, "completed", ""),
           "failed": (float(rel > float(section["fail_rel_l2"])), "completed",
                      f"rel. L2 {rel:.3g} > {section['fail_rel_l2']}" if rel > float(section["fail_rel_l2"]) else "")}
    history = model.clock.history.numpy()
    target = float(section["target_rel_l2"])
    iters_per_epoch = int(section["iterations_per_epoch"])
    if history.shape[0] == 0:
        out["iterations_to_target"] = (None, "invalid", "no recorded test error")
    else:
        hit = np.flatnonzero(history[:, 1] <= target)
        out["iterations_to_target"] = ((float(history[hit[0], 0]), "completed", "") if hit.size else
                                       (float(history[-1, 0]), "censored",
                                        f"rel. L2 {target} not reached in {int(history[-1, 0])} iterations"))
    model_dir = _model_dir(config, hparams)
    work = _work(config, hparams)
    it_value, it_status, _ = out["iterations_to_target"]
    if work is None:
        out["work_to_target"] = (None, "missing", "no counted work of this run")
        out["t_it"] = (None, "missing", "no counted work of this run")
    else:
        flops_per_it, t_ep = work
        out["t_it"] = (t_ep / iters_per_epoch if t_ep is not None else None,
                       "completed" if t_ep is not None else "missing", "" if t_ep is not None else "no calibration")
        out["work_to_target"] = ((None, it_status, "") if it_value is None else
                                 (it_value * flops_per_it / 1e9, it_status, out["iterations_to_target"][2]))
    if section.get("write_predictions", True) and model_dir is not None:
        write_prediction(model_dir, problem, dataset, u)
    return out


def _grid_pieces(problem: Problem, grid: np.ndarray, dtype) -> dict[str, torch.Tensor]:
    """The test-grid points on each boundary piece (the grid includes the edges)."""
    out = {}
    for loss in problem.loss_names[1:]:
        for piece in problem.pieces(loss):
            on = np.isclose(grid[:, piece.dim], piece.value)
            out[f"{loss}/{piece.name}"] = torch.as_tensor(grid[on], dtype=dtype)
    return out


def _work(config: dict, hparams: dict):
    """(counted FLOP per iteration, counted t_ep or None) from the run's timing files (rule train's work record
    and the calibration), found like :func:`_model_dir`; None when absent."""
    prov = hparams.get("provenance") or {}
    replicate, variant = prov.get("replicate_seed"), hparams.get("variant")
    if replicate is None or variant is None or not config.get("results_dir"):
        return None
    root = Path(config["results_dir"]) / "timing"
    try:
        work = json.loads((root / str(variant) / f"seed{replicate}.json").read_text())
        flops = float(np.mean(work["epoch_flops"])) / int(config["pinn"]["iterations_per_epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        from balancebench.calibration import timing_record

        t_ep = float(timing_record(work, json.loads((root / "calibration.json").read_text()))["t_ep"])
    except Exception:  # noqa: BLE001 - no calibration: t_it missing, the work still counts
        t_ep = None
    return flops, t_ep


def write_prediction(model_dir: Path, problem: Problem, dataset: PinnDataset, u: np.ndarray) -> None:
    """``prediction.npz`` (grid, prediction, reference) and ``prediction.png`` (prediction, reference, |error|)."""
    np.savez(model_dir / "prediction.npz", grid=dataset.grid, prediction=u, reference=dataset.reference,
             shape=np.asarray(dataset.shape))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = dataset.shape
    extent = [problem.lower[1], problem.upper[1], problem.lower[0], problem.upper[0]]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
    for ax, values, title in zip(axes, (u, dataset.reference, np.abs(u - dataset.reference)),
                                 ("prediction", "reference", "|error|")):
        im = ax.imshow(values.reshape(shape), origin="lower", extent=extent, aspect="auto", cmap="viridis")
        ax.set_title(f"{problem.name}: {title}")
        ax.set_xlabel(problem.coords[1])
        ax.set_ylabel(problem.coords[0])
        fig.colorbar(im, ax=ax)
    fig.savefig(model_dir / "prediction.png", dpi=90)
    plt.close(fig)
