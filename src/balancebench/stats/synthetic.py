"""A synthetic metrics table with the pipeline's metrics, methods and directions.

For tests, the benchmark and demonstrating the report without the physics
stages. Each method has a fixed offset per metric (some large, some zero), so
a few metrics differ clearly between methods and the rest do not; optionally
some runs fail (their physics metrics empty, like an unstable CG simulation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PIPELINE_METHODS = ("constant", "ratio", "softadapt", "softadapt_weighted", "softadapt_normalized")
#: metric -> (direction, target, typical value, spread between seeds, method effect in spreads)
PIPELINE_METRICS = {
    "N_ep": ("lower", None, 400.0, 120.0, 3.0),
    "t_ep": ("lower", None, 20.0, 0.3, 8.0),
    "sigma_ep": ("lower", None, 0.5, 0.08, 3.0),
    "delta_U": ("lower", None, 15.0, 8.0, 0.5),
    "CV_U": ("lower", None, 0.05, 0.02, 0.5),
    "mean_T": ("target", 340.0, 340.0, 2.0, 0.3),
    "CV_T": ("target", 0.0733, 0.07, 0.01, 2.0),  # canonical sqrt(2 / (3N - 3)) of N = 125 beads
    "d_KS": ("lower", None, 0.05, 0.02, 0.3),
    "p_KS": ("higher", None, 0.4, 0.15, 0.3),
    "s_MSD": ("target", 0.6, 0.65, 0.03, 1.5),
}
PHYSICS_METRICS = ("delta_U", "CV_U", "mean_T", "CV_T", "d_KS", "p_KS", "s_MSD")


def synthetic_metrics_table(methods=PIPELINE_METHODS, n_seeds: int = 5, metrics: dict | None = None,
                            failed_runs: dict[tuple[str, int], str] | None = None, seed: int = 0) -> pd.DataFrame:
    """A tidy table (method, seed, metric, value, status, direction, target, reason).

    ``failed_runs`` maps (method, seed index) to ``unstable`` (the physics
    metrics get that status and no value) or ``diverged`` (every row gets that
    status; the training metrics keep a value, the physics metrics have none).
    """
    rng = np.random.default_rng(seed)
    metrics = dict(metrics or PIPELINE_METRICS)
    failed_runs = dict(failed_runs or {})
    rows = []
    for name, (direction, target, typical, spread, effect) in metrics.items():
        offsets = effect * spread * np.linspace(-1.0, 1.0, len(methods)) * rng.permutation(len(methods)) / max(len(methods) - 1, 1)
        for m_index, method in enumerate(methods):
            values = typical + offsets[m_index] + spread * rng.standard_normal(n_seeds)
            # every pipeline metric is non-negative and p_KS is a probability
            values = np.clip(values, 0.0, 1.0) if name == "p_KS" else np.abs(values)
            for s in range(n_seeds):
                run_status = failed_runs.get((method, s), "completed")
                # as balancebench.tasks.cg_benzene.metrics writes them: an unstable simulation leaves the training
                # metrics completed; a diverged training keeps its training values (status
                # diverged) and has no physics metrics
                status = "completed" if (run_status == "unstable" and name not in PHYSICS_METRICS) else run_status
                empty = status != "completed" and name in PHYSICS_METRICS
                rows.append({
                    "method": method, "seed": s, "metric": name,
                    "value": "" if empty else repr(round(float(values[s]), 6)),
                    "status": status, "direction": direction, "target": "" if target is None else target,
                    "reason": {"completed": "", "unstable": "CG simulation blew up",
                               "diverged": "training loss diverged"}[status],
                })
    return pd.DataFrame(rows)
