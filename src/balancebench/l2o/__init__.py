"""Learned multi-gradient optimizers (ML2O / GML2O, seed 003, arXiv 2311.00559): docs/ml2o.md.

Modules: :mod:`~balancebench.l2o.preprocess` (log/sign gradient features),
:mod:`~balancebench.l2o.net` (the coordinate-wise LSTM optimizer),
:mod:`~balancebench.l2o.guard` (GML2O's merit guard against the DSSMG step),
:mod:`~balancebench.l2o.problems` (meta-training problems), :mod:`~balancebench.l2o.meta`
(truncated-BPTT meta-training, comparison with MGDA), :mod:`~balancebench.l2o.artifact`
(the stored optimizer). The ``ml2o``/``gml2o`` balancing methods are in :mod:`balancebench.balancing.ml2o`.
"""

from balancebench.l2o.artifact import ARTIFACT_VERSION, load_optimizer, save_optimizer
from balancebench.l2o.guard import dssmg_step, merit_guard, min_norm_direction
from balancebench.l2o.net import MultiGradientOptimizer, OptimizerSpec

__all__ = ["ARTIFACT_VERSION", "MultiGradientOptimizer", "OptimizerSpec", "dssmg_step", "load_optimizer", "merit_guard",
           "min_norm_direction", "save_optimizer"]
