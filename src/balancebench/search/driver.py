"""Ask/tell of a search between Snakemake rules, the algorithm pickled after every ask and tell.

``ask`` (generation g) loads the state told after generation g-1 (none for g = 0), asks pymoo for the
generation's candidates and writes the state *after* the ask together with the asked population; ``tell``
loads that, sets each candidate's objectives F and constraint G (``G = -1`` feasible, ``+1`` failed; a
failed candidate's F is ``failure_penalty``, finite, so NSGA-II's constraint domination ranks it last and
no NaN enters the algorithm) and writes the told state. The state holds pymoo's own ``random_state``
(a numpy Generator seeded once in ``setup``), so a rerun from any stored state asks the same candidates
as an uninterrupted run. pymoo is pinned (pyproject.toml): a pickle is only read by the version that wrote it.

Kinds: ``nsde`` = pymoo ``NSDE`` (NSGA-II survival, DE/rand/1/bin variation, CR 0.7, LHS start, as seed 001);
``de`` = pymoo ``DE`` (same variation, greedy single-objective survival) on the sum of the objectives;
``grid`` = every value once, no algorithm.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from pymoo.core.problem import Problem

from balancebench.search.space import SearchSpec
from balancebench.seeding import derive_seed

STATE_VERSION = 1


class SearchProblem(Problem):
    """Bounds and sizes only: candidates are evaluated outside pymoo (one Snakemake job each)."""

    def __init__(self, xl, xu, n_obj):
        super().__init__(n_var=len(xl), n_obj=n_obj, n_ieq_constr=1, xl=np.asarray(xl), xu=np.asarray(xu))


def algorithm_seed(spec: SearchSpec, seed: int, variant: str) -> int:
    """pymoo's seed: a stable function of the search's replicate seed and the variant name."""
    return derive_seed(seed, f"search:{variant}")


def n_objectives(spec: SearchSpec) -> int:
    return 1 if spec.kind == "de" else len(spec.objectives)


def make_algorithm(spec: SearchSpec, seed: int):
    """The pymoo algorithm, set up on the search space (no termination: the DAG unrolls the generations)."""
    from pymoo.algorithms.moo.nsde import NSDE
    from pymoo.algorithms.soo.nonconvex.de import DE
    from pymoo.core.termination import NoTermination

    problem = SearchProblem(spec.space.xl, spec.space.xu, n_objectives(spec))
    if spec.kind == "nsde":
        algorithm = NSDE(pop_size=spec.population, variant="DE/rand/1/bin", CR=0.7, seed=seed)
    elif spec.kind == "de":
        algorithm = DE(pop_size=spec.population, variant="DE/rand/1/bin", CR=0.7, seed=seed)
    else:
        raise ValueError(f"no pymoo algorithm for search kind {spec.kind!r}")
    algorithm.setup(problem, termination=NoTermination(), seed=seed)
    return algorithm


def _save(obj, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    tmp.replace(path)


def _load(path: str | Path) -> dict:
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: search state version {state.get('version')} is not {STATE_VERSION}")
    return state


def ask(spec: SearchSpec, generation: int, seed: int, variant: str, told_state: str | Path | None,
        asked_state: str | Path) -> list[dict]:
    """The candidates of ``generation`` (``[{"generation", "index", "x", "params"}]``); writes ``asked_state``."""
    if spec.kind == "grid":
        if generation != 0:
            raise ValueError("a grid search has one generation")
        candidates = [{"generation": 0, "index": i, "x": [v], "params": {spec.parameter: v}}
                      for i, v in enumerate(spec.values)]
        _save({"version": STATE_VERSION, "kind": "grid", "generation": 0, "algorithm": None, "pop": None}, asked_state)
        return candidates
    if generation == 0:
        if told_state is not None:
            raise ValueError("generation 0 starts from no state")
        algorithm = make_algorithm(spec, algorithm_seed(spec, seed, variant))
    else:
        state = _load(told_state)
        if state["generation"] != generation - 1 or state["stage"] != "told":
            raise ValueError(f"{told_state}: holds generation {state['generation']} ({state['stage']}), "
                             f"not the told generation {generation - 1}")
        algorithm = state["algorithm"]
    pop = algorithm.ask()
    X = np.asarray(pop.get("X"), dtype=float)
    if len(X) != spec.n_candidates:  # duplicate elimination can return fewer: fill from the algorithm's RNG
        from pymoo.core.population import Population

        missing = spec.n_candidates - len(X)
        if missing < 0:
            raise RuntimeError(f"pymoo asked {len(X)} candidates, the DAG has {spec.n_candidates}")
        extra = algorithm.random_state.uniform(spec.space.xl, spec.space.xu, size=(missing, len(spec.space.dims)))
        pop = Population.merge(pop, Population.new(X=extra))
        X = np.asarray(pop.get("X"), dtype=float)
    _save({"version": STATE_VERSION, "kind": spec.kind, "generation": generation, "stage": "asked",
           "algorithm": algorithm, "pop": pop}, asked_state)
    return [{"generation": generation, "index": i, "x": [float(v) for v in x], "params": spec.space.decode(x)}
            for i, x in enumerate(X)]


def objective_matrix(spec: SearchSpec, evaluations: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(F, G) for pymoo from the candidates' evaluations (``{"feasible", "objectives": {name: value}}``)."""
    F = np.array([[float(e["objectives"][o]) for o in spec.objectives] for e in evaluations], dtype=float)
    feasible = np.array([bool(e["feasible"]) for e in evaluations])
    F[~feasible] = spec.failure_penalty
    if not np.isfinite(F).all():
        raise ValueError("an objective of a feasible candidate is not finite (evaluate_candidate marks those failed)")
    if spec.kind == "de":
        F = F.sum(axis=1, keepdims=True)
    G = np.where(feasible, -1.0, 1.0)[:, None]
    return F, G


def tell(spec: SearchSpec, generation: int, asked_state: str | Path, evaluations: list[dict],
         told_state: str | Path) -> None:
    """Tell the generation's evaluations to the algorithm and write ``told_state``."""
    state = _load(asked_state)
    if spec.kind == "grid":
        _save({**state, "stage": "told"}, told_state)
        return
    if state["generation"] != generation or state["stage"] != "asked":
        raise ValueError(f"{asked_state}: not the asked state of generation {generation}")
    from pymoo.core.evaluator import Evaluator
    from pymoo.problems.static import StaticProblem

    algorithm, pop = state["algorithm"], state["pop"]
    if len(evaluations) != len(pop):
        raise ValueError(f"{len(evaluations)} evaluations for {len(pop)} candidates")
    F, G = objective_matrix(spec, evaluations)
    Evaluator().eval(StaticProblem(algorithm.problem, F=F, G=G), pop)
    algorithm.tell(infills=pop)
    _save({"version": STATE_VERSION, "kind": spec.kind, "generation": generation, "stage": "told",
           "algorithm": algorithm, "pop": None}, told_state)
