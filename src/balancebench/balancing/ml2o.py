"""The ``ml2o`` and ``gml2o`` balancing methods (seed 003): a meta-trained optimizer owns the update.

Optimizer shape of the method contract (CONTRACT.md): :meth:`make_optimizer` returns None,
:meth:`backward` computes the per-objective gradients g_1 .. g_k of the model's parameters
(one backward pass per loss, the graph retained between them; unreached parameters get zeros),
:meth:`step` applies

    ml2o:   theta <- theta + lr_e * m,       m = learned optimizer(g_1, .., g_k, history)
    gml2o:  theta <- theta + (lr_e * m  if M(theta + lr_e m) <= M(theta + u_D)  else  u_D)

with u_D the DSSMG step (the min-norm step of the per-objective gradients on a growing sample) and M the
merit after a step, max_i [f_i(after) - f_i(before)] on the step's mini-batch (:mod:`balancebench.l2o.guard`:
the formulas, our choices, the convergence argument). lr_e = lr * lr_decay^(e - 1) in epoch e (the
trainer's schedule: with no shared optimizer the trainer has no scheduler, so the method
applies it), lr defaulting to ``training.learning_rate``. The fallback's trust length is
tau_e = lr_e sqrt(P) (the length of a step of lr_e per coordinate, as Adam's) and its
largest step size ``max_step_size`` (eta_max; null = no cap, since L is unknown). DSSMG's sample in epoch e
is n_e = min(n_max, ceil(b growth^(e-1))) training items: the step's b items plus n_e - b drawn without
replacement from the rest with the run's generator (``dssmg_growth``, ``dssmg_max_sample``). Logged per
epoch: ``coef_<loss>``, the epoch mean of the effective weights (for a learned update the least-squares
weights w with u ~ -sum_i w_i g_i, L1-normalised; for a fallback step the MGDA weights alpha), ``min_norm``
(epoch mean of |d|, the Pareto-criticality measure at the iterates), and for gml2o ``acceptance`` (fraction
of steps whose learned update was accepted), ``merit_learned`` and ``merit_dssmg`` (epoch means of both
candidates' merits, finite ones) and ``dssmg_sample`` (n_e).

The learned optimizer is read from ``optimizer_path`` (the artifact of the rule
``meta_train_l2o``); a missing or mismatched artifact is refused with its name and what
differs. Its recurrent state is part of :meth:`state_dict`, so a resumed training is
bit-identical on CPU; resuming with another artifact is refused.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from balancebench.l2o.artifact import load_optimizer
from balancebench.l2o.guard import (
    ARMIJO_SIGMA,
    dssmg_sample_size,
    dssmg_step,
    merit,
    merit_guard,
    min_norm_direction,
    projection_weights,
)

from ._params import Param
from .base import register
from .shapes import OptimizerMethod, per_loss_gradients

__all__ = ["GML2O", "ML2O"]


def _path(v: Any) -> str:
    if not isinstance(v, (str, Path)) or not str(v):
        raise ValueError(f"expected a file path, got {v!r}")
    return str(v)


def _optional_positive(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"expected null or a number > 0, got {v!r}")
    return float(v)


def _positive(v: Any) -> float:
    out = _optional_positive(v)
    if out is None:
        raise ValueError("expected a number > 0, got None")
    return out


def _add_flat(params, update: torch.Tensor) -> None:
    """theta <- theta + update, the flat (P,) ``update`` laid over ``params`` in order (in place)."""
    offset = 0
    for p in params:
        p.add_(update[offset:offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()


def _items_outside(batch: np.ndarray, count: int, n_train: int, generator) -> np.ndarray:
    """``count`` training items not in ``batch``, in the order of one permutation drawn with ``generator``."""
    order = torch.randperm(n_train, generator=generator).numpy()
    return order[~np.isin(order, batch)][:count]


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


@register("ml2o")
class ML2O(OptimizerMethod):
    """ML2O: the meta-trained multi-gradient optimizer applies the update (module docstring)."""

    params: ClassVar[dict[str, Param]] = {
        "optimizer_path": Param("results/l2o/optimizer.pt", _path, "the meta-trained optimizer artifact"),
        "learning_rate": Param(None, _optional_positive,
                               "scale of the learned update (units of the weights); null: training.learning_rate"),
        "lr_decay": Param(None, _optional_positive, "per-epoch factor of the scale; null: training.lr_decay"),
    }
    guarded: ClassVar[bool] = False

    def _configure(self) -> None:
        super()._configure()
        self.backward_passes = 2
        self.net = None
        self.state: dict | None = None
        self.artifact_digest: str | None = None
        self._grads: torch.Tensor | None = None
        self._restored: dict | None = None

    # -- setup ---------------------------------------------------------------------------
    def setup(self, context) -> None:
        path = self.params["optimizer_path"]
        self.net, self.record_meta = load_optimizer(path, n_objectives=len(context.components))
        digest = _file_digest(path)
        params = list(context.model_params)
        device = params[0].device
        self.net = self.net.to(device)
        n = sum(p.numel() for p in params)
        self._set_schedule(context)
        if self._restored is not None:
            if self._restored["artifact"] != digest:
                raise ValueError(f"the checkpoint was written with another learned optimizer than {path} "
                                 f"(artifact digest {self._restored['artifact']} vs {digest}): start afresh")
            self.state = {k: v.to(device) for k, v in self._restored["state"].items()}
            self._restored = None
        else:
            self.state = self.net.init_state(n, dtype=self.net.out.weight.dtype, device=device)
        self.artifact_digest = digest
        if self.state["h"].shape[0] != n:
            raise ValueError(f"the learned optimizer state holds {self.state['h'].shape[0]} coordinates, "
                             f"the model has {n}")

    def _set_schedule(self, context) -> None:
        """lr and its per-epoch decay: the method's params, else the trainer's settings."""
        settings = context.settings
        self.lr0 = self.params["learning_rate"] or float(settings.learning_rate)
        self.decay = self.params["lr_decay"] or float(getattr(settings, "lr_decay", 1.0))

    def lr_at(self, epoch: int) -> float:
        return self.lr0 * self.decay ** max(int(epoch) - 1, 0)

    # -- per step ------------------------------------------------------------------------
    def backward(self, losses: dict, context) -> None:
        missing = [c for c in context.components if c not in losses]
        if missing:
            raise KeyError(f"{self.name}: losses lack the component(s) {missing}; got {sorted(losses)}")
        vec = torch.stack([losses[c] for c in context.components])
        params = list(context.model_params)
        grads = per_loss_gradients(vec, params)
        self._grads = grads.detach()
        self._f_before = vec.detach().double().cpu().numpy()
        total = grads.sum(0)  # .grad holds the unweighted total gradient (diagnostics; the update is step()'s)
        offset = 0
        for p in params:
            p.grad = total[offset:offset + p.numel()].view_as(p).to(p.dtype).clone()
            offset += p.numel()

    def _decide(self, learned: torch.Tensor, grads: torch.Tensor, context):
        """(applied update, effective weights, extras to log)."""
        d, _ = min_norm_direction(grads)
        return learned, projection_weights(learned, grads), {"min_norm": float(d.double().norm())}

    @torch.no_grad()
    def step(self, context) -> None:
        if self._grads is None:
            raise RuntimeError(f"{self.name}: step() before backward()")
        grads = self._grads
        lr = self.lr_at(context.epoch)
        m, state = self.net(grads, self.state)
        learned = (lr * m).to(grads.dtype)
        applied, weights, extra = self._decide(learned, grads, context)
        self.state = self.net.record_applied(state, applied / lr)
        _add_flat(context.model_params, applied)
        self._grads = None
        self.record_weights(context, np.asarray(weights, dtype=np.float64))
        self.record(context, **extra)

    # -- resume --------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        if self.state is None:
            return {}
        return {"artifact": self.artifact_digest, "state": {k: v.detach().cpu().clone() for k, v in self.state.items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if state:
            self._restored = {"artifact": state["artifact"], "state": state["state"]}
            if self.net is not None:  # setup already ran: apply now
                digest = self.artifact_digest
                if state["artifact"] != digest:
                    raise ValueError(f"the checkpoint was written with another learned optimizer than "
                                     f"{self.params['optimizer_path']} (artifact digest {state['artifact']} vs {digest})")
                device = self.net.out.weight.device
                self.state = {k: v.to(device) for k, v in state["state"].items()}
                self._restored = None

    def load_state_dict(self, d: dict[str, Any]) -> None:
        net, meta, digest = self.net, getattr(self, "record_meta", None), self.artifact_digest
        lr = (getattr(self, "lr0", None), getattr(self, "decay", None))
        super().load_state_dict(d)  # re-runs _configure (clears net) before _load_extra_state
        if net is not None:
            self.net, self.record_meta, self.artifact_digest = net, meta, digest
            self.lr0, self.decay = lr
            if self._restored is not None:
                self._load_extra_state({"artifact": self._restored["artifact"], "state": self._restored["state"]})


def _growth(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 1:
        raise ValueError(f"expected a number >= 1, got {v!r}")
    return float(v)


def _backtracks(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"expected an integer >= 0, got {v!r}")
    return int(v)


def _optional_items(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"expected null or an integer >= 1, got {v!r}")
    return int(v)


@register("gml2o")
class GML2O(ML2O):
    """GML2O: the learned candidate or the DSSMG candidate, whichever has the better merit after the step
    (module docstring; :mod:`balancebench.l2o.guard`)."""

    evaluates_other_items: ClassVar[bool] = True  # the merit items and DSSMG's sample (TrainContext.losses_at)
    params: ClassVar[dict[str, Param]] = {
        **ML2O.params,
        "max_step_size": Param(None, _optional_positive,
                               "eta_max of the DSSMG step (units weight / gradient); null: no cap (L unknown)"),
        "dssmg_growth": Param(1.1, _growth, "DSSMG's sample grows by this factor per epoch (n_e = b growth^(e-1))"),
        "dssmg_max_sample": Param(None, _optional_items,
                                  "largest DSSMG sample in training items; null: 4 x the batch size"),
        "max_backtracks": Param(10, _backtracks, "halvings of DSSMG's step size until the merit shows the "
                                                  "sufficient decrease (0: none)"),
    }
    guarded: ClassVar[bool] = True

    def setup(self, context) -> None:
        super().setup(context)
        self.n_coords = sum(p.numel() for p in context.model_params)
        self.backward_passes = 2  # plus the DSSMG sample's extra items and two merit evaluations, counted as run

    def _sample_gradients(self, grads: torch.Tensor, context) -> tuple[torch.Tensor, int]:
        """(G (k, P), n): the per-objective gradients on DSSMG's sample of this epoch (the step's items first)."""
        batch = np.asarray(context.batch_indices if context.batch_indices is not None else [], dtype=np.int64)
        b = max(len(batch), 1)
        n_train = int(context.n_train or 0)
        if n_train <= b or context.losses_at is None:
            return grads, b
        cap = self.params["dssmg_max_sample"] or 4 * b
        n = dssmg_sample_size(context.epoch, b, self.params["dssmg_growth"], cap, n_train)
        if n <= b:
            return grads, b
        extra = _items_outside(batch, n - b, n_train, context.generator)
        params = list(context.model_params)
        with torch.enable_grad():
            losses = context.losses_at(extra, training=True)
            g_extra = per_loss_gradients(torch.stack([losses[c] for c in context.components]), params).detach()
        m = len(extra)
        return (b * grads + m * g_extra.to(grads.dtype)) / (b + m), b + m

    def _merit_items(self, context):
        """The items both candidates are judged on: b training items outside the step's batch, drawn with the run's
        generator (an independent batch: the learned step was computed on the step's own items), or the step's
        batch when the split is too small for that (None)."""
        batch = np.asarray(context.batch_indices if context.batch_indices is not None else [], dtype=np.int64)
        n_train = int(context.n_train or 0)
        if len(batch) == 0 or n_train < 2 * len(batch):
            return None
        return np.sort(_items_outside(batch, len(batch), n_train, context.generator))

    def _losses_after(self, update, context, saved: list[torch.Tensor], items) -> np.ndarray:
        """The losses of ``items`` at theta + update (None: at theta); theta restored from ``saved`` afterwards."""
        params = list(context.model_params)
        if update is not None:
            _add_flat(params, update)
        try:
            with torch.enable_grad():
                out = context.losses_at(items, training=False)
            return np.array([float(out[c].detach()) for c in context.components])
        finally:
            if update is not None:
                for p, s in zip(params, saved):
                    p.copy_(s)

    @staticmethod
    def _unit_weights(context) -> np.ndarray:
        """w_i = 1 / ref_i (the task's loss references, e.g. the targets' variances): the merit and DSSMG's direction work on
        the unit-free losses f_i / ref_i (1 where a reference is missing)."""
        refs = getattr(context, "references", None) or {}
        return np.array([1.0 / float(refs[c]) if float(refs.get(c, 0.0) or 0.0) > 0 else 1.0
                         for c in context.components])

    def _dssmg_candidate(self, grads, context, saved, items, f_x, weights):
        """DSSMG's step from the sample gradients of the unit-free losses, its step size backtracked (halved, at
        most ``max_backtracks`` times) until the merit on ``items`` shows the sufficient decrease
        M <= -sigma eta |d|^2 (module docstring of l2o.guard). Returns (u_D, alpha, |d|, n, M(u_D), halvings)."""
        sample_grads, n = self._sample_gradients(grads, context)
        w = torch.as_tensor(weights, dtype=sample_grads.dtype, device=sample_grads.device)[:, None]
        tau = self.lr_at(context.epoch) * math.sqrt(self.n_coords)
        eta_max = self.params["max_step_size"] or math.inf
        u_d, alpha, dnorm, eta = dssmg_step(w * sample_grads, eta_max, tau)
        u_d = u_d.to(grads.dtype)
        halvings, m_d = 0, math.inf
        while True:
            m_d = merit(self._losses_after(u_d, context, saved, items), f_x, weights)
            if m_d <= -ARMIJO_SIGMA * eta * dnorm ** 2 or halvings >= self.params["max_backtracks"] or dnorm == 0:
                break
            u_d, eta, halvings = 0.5 * u_d, 0.5 * eta, halvings + 1
        return u_d, alpha, dnorm, n, m_d, halvings

    def _decide(self, learned, grads, context):
        if context.losses_at is None:
            raise RuntimeError("gml2o compares the merits after both candidate steps: the training context must "
                               "offer losses_at (the trainer does)")
        saved = [p.detach().clone() for p in context.model_params]
        items = self._merit_items(context)
        f_x = self._losses_after(None, context, saved, items)
        weights = self._unit_weights(context)
        u_d, alpha, dnorm, n, m_d, halvings = self._dssmg_candidate(grads, context, saved, items, f_x, weights)
        f_learned = (self._losses_after(learned, context, saved, items) if bool(torch.isfinite(learned).all())
                     else np.full(len(context.components), np.inf))
        dec = merit_guard(f_x, f_learned, None, weights, merit_dssmg=m_d)
        extra = {"min_norm": dnorm, "acceptance": 1.0 if dec.accepted else 0.0, "dssmg_sample": float(n),
                 "dssmg_halvings": float(halvings)}
        if math.isfinite(dec.merit_learned):
            extra["merit_learned"] = dec.merit_learned
        if math.isfinite(dec.merit_dssmg):
            extra["merit_dssmg"] = dec.merit_dssmg
        if dec.accepted:
            return learned, projection_weights(learned, grads), extra
        return u_d, alpha, extra


@register("dssmg")
class DSSMG(GML2O):
    """DSSMG alone: GML2O's convergent fallback (the min-norm step of the unit-free per-objective gradients on a
    growing sample, at most tau_e = lr_e sqrt(P) long, backtracked to a sufficient decrease of the merit) taken at
    every step, with no learned optimizer. The baseline that
    GML2O must never do worse than (seed 003's claim; :mod:`balancebench.l2o.guard`)."""

    params: ClassVar[dict[str, Param]] = {k: v for k, v in GML2O.params.items() if k != "optimizer_path"}

    def setup(self, context) -> None:
        self.n_coords = sum(p.numel() for p in context.model_params)
        self._set_schedule(context)
        self.backward_passes = 2

    @torch.no_grad()
    def step(self, context) -> None:
        if self._grads is None:
            raise RuntimeError(f"{self.name}: step() before backward()")
        if context.losses_at is None:
            raise RuntimeError("dssmg backtracks on the merit of its step: the training context must offer "
                               "losses_at (the trainer does)")
        grads = self._grads
        saved = [p.detach().clone() for p in context.model_params]
        items = self._merit_items(context)
        f_x = self._losses_after(None, context, saved, items)
        u_d, alpha, dnorm, n, m_d, halvings = self._dssmg_candidate(grads, context, saved, items, f_x,
                                                                     self._unit_weights(context))
        _add_flat(context.model_params, u_d)
        self._grads = None
        self.record_weights(context, np.asarray(alpha, dtype=np.float64))
        extra = {"min_norm": dnorm, "dssmg_sample": float(n), "dssmg_halvings": float(halvings)}
        if math.isfinite(m_d):
            extra["merit_dssmg"] = m_d
        self.record(context, **extra)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        lr = (getattr(self, "lr0", None), getattr(self, "decay", None), getattr(self, "n_coords", None))
        BalancingMethodState = super(ML2O, self)
        BalancingMethodState.load_state_dict(d)
        self.lr0, self.decay, self.n_coords = lr
