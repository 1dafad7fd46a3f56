"""torchjd aggregators as gradient methods, through ``torchjd.autojac`` (Jacobian descent; torchjd 0.18, MIT).

Per step: ``torchjd.autojac.backward([L_1, .., L_k], inputs=model_params)`` stores the
Jacobian (k rows, one per loss, through any double backward of a loss on a derivative of the model) in ``.jac`` of every
parameter, and ``torchjd.autojac.jac_to_grad(model_params, aggregator)`` writes the
aggregated direction into ``.grad`` and returns the weights of ``d = sum_i w_i g_i``
(logged as ``coef_<c>``, epoch mean). Never ``torchjd.autogram``: its Gramian engine
misses the path through a derivative of the model (REFERENCES.md sec. 4). k backward passes per step (the Jacobian).

Registered: ``torchjd_upgrad`` (UPGrad, Quinton & Rey, arXiv 2406.16232),
``torchjd_cagrad`` (Liu et al. NeurIPS 2021; needs the optional cvxpy + clarabel, both
Apache-2.0), ``torchjd_imtlg`` (IMTL-G, Liu et al. ICLR 2021), ``torchjd_alignedmtl``
(Aligned-MTL, Senushkin et al. CVPR 2023). UPGrad's dual-cone projection is a small
quadratic program: torchjd solves it with quadprog (GPL-2+); here ``solver="active_set"``
(default) solves it exactly by enumerating the 2^k active sets (k = 2: four linear
systems), so no GPL code is needed; ``solver="quadprog"`` uses torchjd's own projector
(optional extra).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from ._params import Param, _choice, _finite_float, _positive_float
from .base import TrainContext, loss_vector, register
from .shapes import GradientMethod


def project_dual_cone_weights(u: np.ndarray, gram: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """argmin_v v^T G v subject to v >= u (elementwise), for a positive-definite G (k x k), exactly.

    Enumerates the active sets A (v_A = u_A), solves G_FF v_F = -G_FA u_A on the free set
    F and keeps the KKT point: v_F >= u_F and multipliers (G v)_A >= 0. The QP is strictly
    convex, so that point is the unique minimiser (Quinton & Rey 2024, Prop. 1: the
    weights of the projection of J^T u onto the dual cone of the rows of J).
    """
    u = np.asarray(u, dtype=np.float64)
    g = np.asarray(gram, dtype=np.float64)
    k = len(u)
    scale = max(float(np.max(np.abs(np.diag(g)))), 1e-300)
    best, best_cost = None, np.inf
    for n_free in range(k, -1, -1):
        for free in itertools.combinations(range(k), n_free):
            free = list(free)
            act = [i for i in range(k) if i not in free]
            v = u.copy()
            if free:
                rhs = -g[np.ix_(free, act)] @ u[act] if act else np.zeros(len(free))
                try:
                    v[free] = np.linalg.solve(g[np.ix_(free, free)], rhs)
                except np.linalg.LinAlgError:
                    continue
            if np.any(v[free] < u[free] - tol * (1 + np.abs(u[free]))):
                continue
            mult = g @ v
            if act and np.any(mult[act] < -tol * scale * (1 + np.max(np.abs(v)))):
                continue
            cost = float(v @ g @ v)
            if cost < best_cost:
                best, best_cost = v, cost
    if best is None:
        raise ValueError("dual-cone projection: no KKT point found (the Gramian is not positive definite)")
    return best


def _active_set_projector(norm_eps: float, reg_eps: float):
    """A torchjd ``DualConeProjector`` using :func:`project_dual_cone_weights` (same normalisation and
    regularisation of the Gramian as torchjd's ``QuadprogProjector``)."""
    import torch
    from torchjd._linalg import DualConeProjector, normalize, regularize

    class ActiveSetProjector(DualConeProjector):
        def __call__(self, U, G):
            gn = regularize(normalize(G, norm_eps), reg_eps).detach().cpu().double().numpy()
            flat = U.detach().cpu().double().numpy().reshape(-1, U.shape[-1])
            w = np.stack([project_dual_cone_weights(row, gn) for row in flat]).reshape(U.shape)
            return torch.as_tensor(w, dtype=G.dtype, device=G.device)

    return ActiveSetProjector()


class TorchJDMethod(GradientMethod):
    """Base of the torchjd adapters: subclasses build the aggregator in :meth:`make_aggregator`."""

    #: the torchjd class name, for the docs and errors
    aggregator_name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("torchjd",)

    def _configure(self) -> None:
        super()._configure()
        self._aggregator = None  # stateless: rebuilt from the (possibly reloaded) parameters on first use

    def make_aggregator(self):
        raise NotImplementedError

    def aggregator(self):
        """The torchjd aggregator (built on first use; a missing optional dependency is named)."""
        if self._aggregator is None:
            try:
                self._aggregator = self.make_aggregator()
            except ImportError as exc:
                raise ImportError(f"balancing method {self.name!r} needs optional packages {list(self.requires)}: "
                                  f"{exc}") from None
        return self._aggregator

    def setup(self, context: TrainContext) -> None:
        super().setup(context)
        self.aggregator()

    def combine(self, grads: Any, losses: Any = None):
        """The aggregated direction of the matrix ``grads`` (k, P) (pure; weights in ``last_weights``)."""
        import torch

        g = self._check_grads(grads)
        agg = self.aggregator()
        weighting = getattr(agg, "gramian_weighting", None)
        if weighting is not None:
            w = weighting(g.double() @ g.double().T)
            self.last_weights = w.detach().cpu().numpy().astype(np.float64)
            return (torch.as_tensor(self.last_weights, dtype=torch.float64, device=g.device) @ g.double()).to(g.dtype)
        self.last_weights = None
        return agg(g)

    def backward(self, losses: dict, context: TrainContext) -> None:
        from torchjd.autojac import backward, jac_to_grad

        vec = loss_vector(losses, context.components)
        backward([vec[i] for i in range(len(vec))], inputs=context.model_params)
        weights = jac_to_grad(context.model_params, self.aggregator())
        if weights is not None:
            self.last_weights = weights.detach().cpu().double().numpy()
            self.record_weights(context, self.last_weights)


@register("torchjd_upgrad")
class TorchJDUPGrad(TorchJDMethod):
    """torchjd ``UPGrad`` (Quinton & Rey 2024, arXiv 2406.16232): the mean of the projections of every g_i onto
    the dual cone of {g_j}; d never conflicts with any g_i. ``solver``: ``active_set`` (exact enumeration, this
    module, no GPL dependency) or ``quadprog`` (torchjd's, needs the GPL optional extra qpsolvers + quadprog).
    ``norm_eps``, ``reg_eps``: torchjd's Gramian normalisation and regularisation (1e-4 each)."""

    aggregator_name = "UPGrad"
    params: ClassVar[dict[str, Param]] = {
        **GradientMethod.params,
        "solver": Param("active_set", _choice("active_set", "quadprog"), "dual-cone QP solver"),
        "norm_eps": Param(1e-4, _positive_float, "Gramian normalisation epsilon"),
        "reg_eps": Param(1e-4, _positive_float, "Gramian regularisation epsilon"),
    }

    def make_aggregator(self):
        from torchjd.aggregation import UPGrad

        if self.params["solver"] == "quadprog":
            from torchjd._linalg import QuadprogProjector

            return UPGrad(projector=QuadprogProjector(norm_eps=self.params["norm_eps"], reg_eps=self.params["reg_eps"]))
        return UPGrad(projector=_active_set_projector(self.params["norm_eps"], self.params["reg_eps"]))


@register("torchjd_cagrad")
class TorchJDCAGrad(TorchJDMethod):
    """torchjd ``CAGrad`` (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021, "Conflict-averse gradient descent"): the
    direction maximising the worst local improvement within a ball of radius c |g_0| around the mean gradient
    g_0. ``c`` (default 0.4, the paper's choice for its multi-task experiments). Needs the optional packages
    cvxpy and clarabel (Apache-2.0): ``pip install "torchjd[cagrad]"``."""

    aggregator_name = "CAGrad"
    requires = ("torchjd", "cvxpy", "clarabel")
    params: ClassVar[dict[str, Param]] = {
        **GradientMethod.params,
        "c": Param(0.4, _finite_float, "radius factor c >= 0 of the conflict-averse ball"),
    }

    def make_aggregator(self):
        from torchjd.aggregation import CAGrad

        return CAGrad(c=self.params["c"])


@register("torchjd_imtlg")
class TorchJDIMTLG(TorchJDMethod):
    """torchjd ``IMTLG`` (Liu et al., ICLR 2021, "Towards impartial multi-task learning", gradient part): the
    direction whose projections onto every unit gradient g_i / |g_i| are equal (impartial); weights from the
    Gramian in closed form."""

    aggregator_name = "IMTLG"

    def make_aggregator(self):
        from torchjd.aggregation import IMTLG

        return IMTLG()


@register("torchjd_alignedmtl")
class TorchJDAlignedMTL(TorchJDMethod):
    """torchjd ``AlignedMTL`` (Senushkin, Patakin, Kuznetsov, Konushin, CVPR 2023, "Independent component
    alignment for multi-task learning"): aligns the principal components of the gradient matrix (condition
    number 1) before summing. ``scale_mode``: ``min`` (default, torchjd's and the paper's), ``median`` or
    ``rmse``."""

    aggregator_name = "AlignedMTL"
    params: ClassVar[dict[str, Param]] = {
        **GradientMethod.params,
        "scale_mode": Param("min", _choice("min", "median", "rmse"), "eigenvalue used to rescale the aligned matrix"),
    }

    def make_aggregator(self):
        from torchjd.aggregation import AlignedMTL

        return AlignedMTL(scale_mode=self.params["scale_mode"])


__all__ = ["TorchJDMethod", "project_dual_cone_weights"]
