"""Constructed inputs shaped like the benzene demo's, for checking that figures stay legible (not a run)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def demo_like_front_inputs(seed: int = 0) -> tuple[dict, pd.DataFrame, tuple[float, float], pd.DataFrame]:
    """(fronts, points, reference point, search trainings) shaped like the benzene demo's (16 variants x 3 seeds,
    three COSMOS fronts, 36 search trainings; f_F in 0.92-1, f_E in 1.1-8 as REFERENCES.md sec. 8): constructed
    values for checking the figure's legibility (scripts/check_stats_report.py), not a run."""
    rng = np.random.default_rng(seed)
    fronts = {}
    for s in (1, 2, 3):
        t = np.linspace(0.1, 1.4, 9)
        fronts[("cosmos", s)] = pd.DataFrame({"f_force": 0.92 + 0.04 * t**2 + 0.01 * s,
                                              "f_energy": 8 / (1 + 5 * t) + 0.1 * s,
                                              "non_dominated": [True] * 8 + [False]})
    points = pd.DataFrame([{"method": m, "seed": s, "status": "completed", "f_force": 0.92 + 0.08 * rng.random(),
                            "f_energy": 1.1 + 7 * rng.random()} for m in DEMO_LIKE if m != "cosmos" for s in (1, 2, 3)])
    grid = pd.DataFrame([{"method": v, "label": f"energy_weight={w:.3g}", "status": "completed",
                          "f_force": 0.92 + 0.08 * rng.random(), "f_energy": 1.1 + 7 * rng.random()}
                         for v in ("constant", "constant_nsde", "constant_de") for w in 10 ** (-4 * rng.random(12))])
    return fronts, points, (1.1, 8.8), grid


#: variant -> (gr_w1, s_MSD, t_ep) medians: the six variants of issue 27's table (the benzene demo from a fresh
#: clone) as measured; the other eight variants and the three controls are placed inside the measured ranges
#: (REFERENCES.md sec. 8) by hand: a constructed table for the report and its tests, not a run.
DEMO_LIKE = {
    "forces_only": (0.026, 1.90, 0.39), "equal_unitfree": (0.060, 2.9, 0.39),
    "constant": (0.145, 4.63, 0.39), "ratio": (0.120, 4.1, 0.39), "softadapt": (0.115, 3.90, 0.39),
    "softadapt_weighted": (0.130, 4.4, 0.39), "softadapt_normalized": (0.135, 4.5, 0.39),
    "uncertainty": (0.125, 4.2, 0.40), "gradnorm": (0.110, 3.8, 0.95), "mgda": (0.024, 1.85, 0.64),
    "torchjd_upgrad": (0.100, 3.6, 0.66), "ml2o": (0.030, 2.37, 1.46), "gml2o": (0.027, 1.86, 1.46),
    "cosmos": (0.140, 5.3, 0.45), "constant_nsde": (0.105, 3.95, 0.39), "constant_de": (0.096, 3.89, 0.39),
}


def demo_like_metrics_table(n_seeds: int = 3, seed: int = 0, ks_sample_size: int = 1000) -> pd.DataFrame:
    """A tidy table shaped like the benzene demo's (16 variants with the three controls, 3 seeds, the twelve
    metrics of metrics.csv): structure and dynamics from :data:`DEMO_LIKE` with a few per cent seed noise,
    d_KS = 0.26 gr_w1 and p_KS its two-sample KS p-value at ``ks_sample_size`` (a monotone function of d_KS,
    as in the pipeline), counted work without noise, thermodynamics alike for every variant."""
    import scipy.stats as ss

    rng = np.random.default_rng(seed)
    rows = []

    def add(method, s, metric, value, direction, target=None, status="completed"):
        rows.append({"method": method, "seed": s + 1, "metric": metric, "value": repr(round(float(value), 6)),
                     "status": status, "direction": direction, "target": "" if target is None else target,
                     "reason": ""})

    n_eff = ks_sample_size / 2.0
    for method, (w1, msd, t_ep) in DEMO_LIKE.items():
        for s in range(n_seeds):
            gr = w1 * (1 + 0.12 * rng.standard_normal())
            d_ks = 0.26 * gr
            add(method, s, "N_ep", 12 if t_ep < 1 else 10 + rng.integers(0, 3), "lower")
            add(method, s, "t_ep", t_ep, "lower")
            add(method, s, "sigma_ep", 0.0 if t_ep < 0.5 else 0.02 * t_ep, "lower")
            add(method, s, "delta_U", abs(12 + 4 * rng.standard_normal()), "lower")
            add(method, s, "CV_U", abs(0.05 + 0.01 * rng.standard_normal()), "lower")
            add(method, s, "mean_T", 340 + 1.5 * rng.standard_normal(), "target", 340.0)
            add(method, s, "CV_T", 0.0733 + 0.004 * rng.standard_normal(), "target", 0.0733)
            add(method, s, "d_KS", d_ks, "lower")
            add(method, s, "p_KS", ss.kstwobign.sf(d_ks * np.sqrt(n_eff)), "higher")
            add(method, s, "s_MSD", msd * (1 + 0.06 * rng.standard_normal()), "target", 1.75)
            add(method, s, "gr_w1", gr, "lower")
            add(method, s, "N_target", 8 + rng.integers(0, 4), "lower")
    return pd.DataFrame(rows)
