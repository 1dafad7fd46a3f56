"""The meta-training family ``task``: short trainings of the task's own model on a subset of its own data.

Issue 25: the learned optimizer is meta-trained where it is used. A problem of this family is one
fresh initialisation of the task's model (the run's ``model:`` section with the family's ``model``
overrides, e.g. a smaller network or another architecture) trained on ``train_items`` items of the
task's training split, with k objectives = the task's named losses (any task of the contract:
:mod:`balancebench.tasks.base`). Per step it draws ``batch_size`` of those items with the episode's
generator and returns

* the meta value sum_i L_i(theta) / L_i(theta_0), each loss relative to the fresh model's loss on the
  problem's items (as the quadratic family's f_i / f_i(x_0)), differentiable in theta: 2 at the start, 0 at a
  perfect fit, comparable between episodes (an untrained CG model's second loss over its reference spans decades
  between initialisations, and with the trainer's fixed references those few problems drowned the
  meta-gradient: measured, the meta-loss per episode jumped between 2 and 1400 over 60 episodes);
* the detached gradients of the raw losses L_i (k, P), which the learned optimizer sees in training.

The family must be bound to the task and its dataset (:meth:`TaskFamily.bind`) before it samples;
``run_meta_training`` does it from the run's config. :func:`compare_on_task` is the held-out check
the record stores: the learned optimizer against Adam and plain gradient descent on the sum of the
normalised losses, every step size tuned on the same grid, on problems never used in meta-training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from balancebench.l2o.problems import _FamilyBase, register_family, unflatten

__all__ = ["STEP_FACTORS", "TaskFamily", "TaskProblem", "compare_on_task"]


@register_family
@dataclass
class TaskFamily(_FamilyBase):
    """Short trainings of the run's task (module docstring)."""

    name = "task"
    train_items: int = 64  # items of the training split the problems train on
    batch_size: int | None = None  # items per step; null: training.batch_size
    model: dict = field(default_factory=dict)  # overrides of the run's model section
    lr: float | None = None  # the learned update's scale; null: training.learning_rate
    data_seed: int = 0  # which training items form the subset
    weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.train_items, bool) or not isinstance(self.train_items, int) or self.train_items < 1:
            raise ValueError(f"l2o.meta.families.task.train_items must be an integer >= 1, got {self.train_items!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"l2o.meta.families.task.batch_size must be null or an integer >= 1, "
                             f"got {self.batch_size!r}")
        if not isinstance(self.model, dict):
            raise ValueError(f"l2o.meta.families.task.model must be a mapping of model settings, got {self.model!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"l2o.meta.families.task.lr must be null or > 0, got {self.lr!r}")
        if not self.weight >= 0:
            raise ValueError("l2o.meta.families.task.weight must be >= 0")
        self._bound = None

    def bind(self, task, dataset, model_config: dict, training: dict) -> TaskFamily:
        """Attach the task, its dataset and the run's model/training sections (the defaults of the family)."""
        from balancebench.training import TrainingSettings

        settings = TrainingSettings.from_dict(training, task.loss_setting_names)
        model_settings = task.model_settings({**dict(model_config or {}), **self.model})
        dtype = getattr(torch, settings.dtype)
        train = task.training_data(dataset, "train", model_settings, torch.device("cpu"), dtype)
        if len(train) < 1:
            raise ValueError("l2o.meta.families.task: the task's training split is empty")
        rng = np.random.default_rng(self.data_seed)
        subset = np.sort(rng.permutation(len(train))[: min(self.train_items, len(train))])
        loss_settings = task.loss_settings(training)
        self._bound = {"task": task, "model_settings": model_settings, "train": train, "subset": subset,
                       "loss_settings": loss_settings,
                       "batch": int(self.batch_size or settings.batch_size),
                       "lr": float(self.lr or settings.learning_rate), "dtype": getattr(torch, settings.dtype)}
        return self

    @property
    def bound(self) -> dict:
        if self._bound is None:
            raise RuntimeError("the meta-training family 'task' is not bound to a task: run_meta_training(..., "
                               "task=..., dataset=...) binds it")
        return self._bound

    @property
    def n_objectives(self) -> int:
        return len(self.bound["task"].loss_names)

    def sample(self, gen: torch.Generator, dtype=None) -> TaskProblem:
        return TaskProblem(self.bound, gen)


class _Call(torch.nn.Module):
    """model -> the task's named losses of a batch (so ``functional_call`` can swap in flat weights)."""

    def __init__(self, model, task, loss_settings):
        super().__init__()
        self.m, self.task, self.loss_settings = model, task, loss_settings

    def forward(self, batch):
        out = self.task.losses(self.task.predict(self.m, batch, training=True), batch, self.loss_settings)
        return torch.stack([out[n] for n in self.task.loss_names])


class TaskProblem:
    """One fresh model of the task as a k-objective problem over its flat weights theta (P,)."""

    batch = 1

    def __init__(self, bound: dict, gen: torch.Generator):
        self.b, self.gen = bound, gen
        self.task = bound["task"]
        self.n_objectives = len(self.task.loss_names)
        self.lr = bound["lr"]
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.task.build_model(bound["model_settings"], 0).to(dtype=bound["dtype"])
        self.task.prepare_model(model, bound["train"])
        self.call = _Call(model, self.task, bound["loss_settings"])
        self.names = [f"m.{n}" for n, p in model.named_parameters() if p.requires_grad]
        self.shapes = [p.shape for p in model.parameters() if p.requires_grad]
        self.theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])
        self.ref = torch.ones(self.n_objectives, dtype=torch.float64)
        self.ref = torch.as_tensor(self.subset_losses(self.theta0), dtype=torch.float64).clamp_min(1e-30)

    def start(self) -> torch.Tensor:
        return self.theta0.clone()

    def _params(self, theta: torch.Tensor) -> dict:
        return unflatten(theta, self.names, self.shapes)

    def losses(self, theta: torch.Tensor, items=None) -> torch.Tensor:
        """Raw losses (k,) on ``items`` of the subset (default: ``batch`` drawn with the problem's generator)."""
        from torch.func import functional_call

        subset = self.b["subset"]
        if items is None:
            pick = torch.randperm(len(subset), generator=self.gen)[: self.b["batch"]].numpy()
            items = subset[np.sort(pick)]
        batch = self.b["train"].batch(items)
        return functional_call(self.call, self._params(theta), (batch,))

    def evaluate(self, theta: torch.Tensor):
        """(meta value sum_i L_i / ref_i, detached raw-loss gradients (k, P), that value detached as (1,))."""
        if not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        losses = self.losses(theta)
        grads = []
        for i in range(self.n_objectives):
            (g,) = torch.autograd.grad(losses[i], theta, retain_graph=True, allow_unused=True)
            grads.append(torch.zeros_like(theta) if g is None else g)
        norm = (losses / self.ref.to(losses.dtype)).sum()
        return norm, torch.stack(grads).detach(), norm.detach().reshape(1)

    def final_value(self, theta: torch.Tensor) -> float:
        """sum_i L_i(theta) / L_i(theta_0) on the whole subset (the held-out comparison's score)."""
        return float((torch.as_tensor(self.subset_losses(theta)) / self.ref).sum())

    def subset_losses(self, theta: torch.Tensor) -> list[float]:
        """Raw losses L_i over all the problem's items (item-weighted mean of batches of the step size)."""
        subset, b = self.b["subset"], self.b["batch"]
        total, n = torch.zeros(self.n_objectives, dtype=torch.float64), 0
        theta = theta.detach().requires_grad_(True)  # a task's predictions may differentiate (derivatives)
        for s in range(0, len(subset), b):
            items = subset[s:s + b]
            total += self.losses(theta, items).detach().double() * len(items)
            n += len(items)
        return (total / n).tolist()


#: the step sizes every method of the held-out comparison is tuned over, in units of the family's lr: two decades
#: each way, so that plain GD (whose best step differs most from Adam's per-coordinate one) is not held at a bad one
STEP_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)


def _run(problem: TaskProblem, method: str, lr: float, steps: int, net=None) -> float:
    theta = problem.start()
    if method == "learned":
        state = net.init_state(theta.numel(), dtype=net.out.weight.dtype)
        with torch.no_grad():
            for _ in range(steps):
                with torch.enable_grad():
                    _, grads, _ = problem.evaluate(theta)
                m, state = net(grads, state)
                state = net.record_applied(state, m)
                theta = theta + lr * m.to(theta.dtype)
                if not bool(torch.isfinite(theta).all()):
                    return math.inf
    else:
        x = torch.nn.Parameter(theta.clone())
        opt = torch.optim.Adam([x], lr=lr) if method == "adam" else torch.optim.SGD([x], lr=lr)
        for _ in range(steps):
            value, _, _ = problem.evaluate(x)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            if not bool(torch.isfinite(x).all()):
                return math.inf
        theta = x.detach()
    value = problem.final_value(theta)
    return value if math.isfinite(value) else math.inf


def compare_on_task(net, family: TaskFamily, seeds, steps: int, factors=STEP_FACTORS) -> dict:
    """The learned optimizer vs Adam vs plain GD on held-out problems of ``family`` (generator stream 1).

    Each method minimises sum_i L_i / L_i(start) from the same fresh initialisations for ``steps`` steps on the
    same mini-batches; its step size is the best of ``factors`` x the family's lr by the mean final value over
    the problems (tuned on these very problems, the same grid for every method; the learned optimizer's
    lr multiplies its output; ``at_grid_edge`` flags a best factor at an end of the grid). Held out means new
    initialisations and new batch orders: the problems train on the family's same subset of the data. Returns per method the final values at its best factor, their mean and median,
    and the learned optimizer's wins against each baseline; a diverged run counts as inf.
    """
    from balancebench.l2o.meta import episode_generator

    out: dict = {"steps": int(steps), "seeds": [int(s) for s in seeds], "step_factors": list(factors),
                 "objective": "sum_i L_i / L_i(start) on the problem's training items (2 at the start, lower is "
                              "better)"}
    finals: dict = {}
    for method in ("learned", "adam", "gd"):
        best = None
        for f in factors:
            values = []
            for s in seeds:
                problem = family.sample(episode_generator(int(s), 0, stream=1))
                values.append(_run(problem, method, f * family.bound["lr"], steps, net))
            score = float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.inf
            if best is None or score < best[0]:
                best = (score, f, values)
        finals[method] = best
        out[method] = {"step_factor": best[1], "final": best[2], "mean": best[0],
                       "median": float(np.median(best[2])),
                       "at_grid_edge": bool(best[1] in (min(factors), max(factors)))}
    for base in ("adam", "gd"):
        a, b = np.array(finals["learned"][2]), np.array(finals[base][2])
        out[f"learned_wins_vs_{base}"] = float(np.mean(a < b))
    best_baseline = min(("adam", "gd"), key=lambda m: finals[m][0])
    out["verdict"] = ("the learned optimizer beats Adam and GD on these problems"
                      if finals["learned"][0] < finals[best_baseline][0]
                      else f"the learned optimizer is worse than {best_baseline} on these problems "
                           f"({finals['learned'][0]:.4g} vs {finals[best_baseline][0]:.4g})")
    return out
