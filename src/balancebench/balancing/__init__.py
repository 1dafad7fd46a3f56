"""Loss-balancing methods behind one registry and one contract (seed 000 Sec. 2.4, Eq. 4-8, and later methods).

A model is trained on named loss components (the task's ``loss_names``, e.g. cg_benzene's two terms of
seed 000's Eq. 2). A *balancing method* owns how they become a parameter
update: coefficients (value), learned weights (learned), a combination of per-loss
gradients (gradient), a preference-conditioned model (conditioned) or the update
itself (optimizer). See :mod:`balancebench.balancing.base` for the contract and
``docs/balancing.md`` for the formulas and how to add a method::

    from balancebench.balancing import get_method
    m = get_method("softadapt", beta=0.1, order=1)
    lam = m.coefficients(history)      # history (t, k), oldest first, per-period mean losses

One file per method or small family: ``constant``, ``ratio``, ``softadapt``, ``dwa``
(value), ``uncertainty``, ``gradnorm`` (learned), ``mgda``, ``pcgrad``,
``torchjd_adapter`` (gradient), ``cosmos`` (conditioned, seed 002), ``ml2o``, ``gml2o`` (optimizer, seed 003).
"""

from __future__ import annotations

from . import (  # noqa: F401  (register the methods)  # noqa: F401  (the PINN methods, docs/pinn.md)
    constant,
    cosmos,
    dwa,
    gradnorm,
    lra,
    mgda,
    ml2o,
    ntk,
    pcgrad,
    random_weights,
    ratio,
    relobralo,
    softadapt,
    torchjd_adapter,
    uncertainty,
)
from ._numerics import backward_difference_stencil
from ._params import Param
from .base import (
    KINDS,
    BalancingMethod,
    TrainContext,
    available_methods,
    default_params,
    get_method,
    loss_vector,
    missing_requirements,
    register,
    unregister,
)
from .mgda import min_norm_weights
from .shapes import (
    ConditionedMethod,
    GradientMethod,
    LearnedMethod,
    OptimizerMethod,
    ValueMethod,
    per_loss_gradients,
    write_direction,
)

__all__ = [
    "KINDS",
    "BalancingMethod",
    "ConditionedMethod",
    "GradientMethod",
    "LearnedMethod",
    "OptimizerMethod",
    "Param",
    "TrainContext",
    "ValueMethod",
    "available_methods",
    "backward_difference_stencil",
    "default_params",
    "get_method",
    "loss_vector",
    "min_norm_weights",
    "missing_requirements",
    "per_loss_gradients",
    "register",
    "unregister",
    "write_direction",
]
