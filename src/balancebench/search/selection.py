"""From evaluated candidates to one parameter set: Pareto sets, the selection rule, the cost, the figure.

Selection rule (every kind): among the feasible candidates on the final Pareto set of the search's
objectives (for ``de``, ``cmaes`` and ``grid``: the best by their scalar), the one with the lowest method-independent
validation criterion ``C = sum_i val_i / ref_i`` (ties: the earlier candidate); when ``val_error`` is an objective
(seed 001's pair), the one with the lowest ``val_error`` (the seed's rule: the loss with the best validation
accuracy during evolution; the overall minimum of ``val_error`` always lies on the front), ties by C. For the objectives
``val_<loss>`` of every loss this is the front's member with the lowest sum, a point on the front. If no
candidate is feasible (all diverged) the variant falls back to its configured parameters (the registry's
defaults for what it does not set) and the selection records ``status: fallback`` with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def non_dominated(F) -> np.ndarray:
    """Boolean mask of the rows of F (minimised) that no other row dominates (<= everywhere, < somewhere)."""
    F = np.asarray(F, dtype=float)
    if F.ndim == 1:
        F = F[:, None]
    mask = np.ones(len(F), dtype=bool)
    for i in range(len(F)):
        dominated = np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def candidates_table(candidates: list[dict], evaluations: list[dict], objectives: list[str]) -> pd.DataFrame:
    """One row per candidate: generation, index, the searched parameters, objectives, status, criterion, seconds."""
    rows = []
    for cand, ev in zip(candidates, evaluations):
        row = {"generation": cand["generation"], "candidate": cand["index"]}
        row.update({f"param_{k}": v for k, v in cand["params"].items()})
        row.update({f"obj_{o}": ev["objectives"][o] for o in objectives})
        row.update({"feasible": ev["feasible"], "status": ev["status"], "reason": ev["reason"],
                    "criterion": ev["criterion"], "seconds": ev["seconds"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _scalar(kind: str) -> bool:
    from balancebench.search.space import SCALAR_KINDS

    return kind in SCALAR_KINDS


def pareto_sets(table: pd.DataFrame, objectives: list[str], kind: str) -> pd.DataFrame:
    """The Pareto set after each generation: non-dominated feasible candidates of generations <= g.

    Scalar kinds (de, cmaes, grid) minimise the sum of the objectives, so their "set" is the best candidate(s).
    """
    out = []
    cols = [f"obj_{o}" for o in objectives]
    for g in sorted(table["generation"].unique()):
        seen = table[(table["generation"] <= g) & table["feasible"]]
        if seen.empty:
            continue
        F = seen[cols].to_numpy(dtype=float)
        if _scalar(kind):
            F = F.sum(axis=1, keepdims=True)
        front = seen[non_dominated(F)].copy()
        front.insert(0, "after_generation", g)
        out.append(front)
    if not out:
        return pd.DataFrame(columns=["after_generation", *table.columns])
    return pd.concat(out, ignore_index=True)


def select(table: pd.DataFrame, objectives: list[str], kind: str, fallback: dict) -> dict:
    """The selection (see the module docstring); ``fallback`` = the searched parameters' configured values."""
    params = [c for c in table.columns if c.startswith("param_")]
    fronts = pareto_sets(table, objectives, kind)
    if fronts.empty:
        failures = table["status"].value_counts().to_dict()
        return {"status": "fallback", "values": dict(fallback), "criterion": None,
                "reason": f"no candidate completed ({failures}); the variant's configured parameters are used",
                "rule": "fallback to the configured parameters"}
    final = fronts[fronts["after_generation"] == fronts["after_generation"].max()]
    key, rule = "criterion", "lowest validation criterion sum_i val_i / ref_i on the final Pareto set"
    if "val_error" in objectives:  # seed 001: the loss with the best validation accuracy during evolution
        key, rule = "obj_val_error", "lowest val_error on the final Pareto set (seed 001: best validation error)"
    best = final.sort_values([key, "criterion", "generation", "candidate"], kind="stable").iloc[0]
    return {"status": "selected", "values": {c[len("param_"):]: float(best[c]) for c in params},
            "generation": int(best["generation"]), "candidate": int(best["candidate"]),
            "criterion": float(best["criterion"]), "objectives": {o: float(best[f"obj_{o}"]) for o in objectives},
            "rule": rule}


def cost(table: pd.DataFrame) -> dict:
    """Total cost of the search: candidate trainings and their wall seconds."""
    return {"trainings": int(len(table)), "seconds": float(table["seconds"].sum()),
            "failed": int((~table["feasible"].astype(bool)).sum()),
            "generations": int(table["generation"].nunique())}


def plot_progress(table: pd.DataFrame, fronts: pd.DataFrame, objectives: list[str], kind: str, path, title="") -> None:
    """PNG: the Pareto front after each generation (two objectives), else the best scalar per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    gens = sorted(table["generation"].unique())
    cmap = plt.get_cmap("viridis", max(len(gens), 2))
    if len(objectives) >= 2 and not _scalar(kind):
        x, y = f"obj_{objectives[0]}", f"obj_{objectives[1]}"
        ok = table[table["feasible"].astype(bool)]
        ax.scatter(ok[x], ok[y], s=12, c="0.75", label="candidates")
        for k, g in enumerate(gens):
            front = fronts[fronts["after_generation"] == g].sort_values(x)
            if not front.empty:
                ax.plot(front[x], front[y], "o-", color=cmap(k), label=f"front after gen {g}")
        ax.set_xlabel(objectives[0])
        ax.set_ylabel(objectives[1])
        if len(ok) and (ok[x] > 0).all():
            ax.set_xscale("log")
        if len(ok) and (ok[y] > 0).all():
            ax.set_yscale("log")
    else:
        cols = [f"obj_{o}" for o in objectives]
        ok = table[table["feasible"].astype(bool)].copy()
        ok["scalar"] = ok[cols].sum(axis=1)
        best = [ok[ok["generation"] <= g]["scalar"].min() if (ok["generation"] <= g).any() else np.nan for g in gens]
        ax.scatter(ok["generation"], ok["scalar"], s=12, c="0.6", label="candidates")
        ax.plot(gens, best, "o-", label="best so far")
        ax.set_xlabel("generation")
        ax.set_ylabel(" + ".join(objectives))
        if len(ok) and (ok["scalar"] > 0).all():
            ax.set_yscale("log")
    if table["feasible"].astype(bool).sum() == 0:
        ax.text(0.5, 0.5, "no feasible candidate", transform=ax.transAxes, ha="center")
    ax.set_title(title or f"search progress ({kind})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
