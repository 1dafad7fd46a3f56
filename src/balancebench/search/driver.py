"""Ask/tell of a search between Snakemake rules, the algorithm's state a JSON log after every ask and tell.

``ask`` (generation g) loads the state told after generation g-1 (none for g = 0), asks pymoo for the
generation's candidates and writes the state *after* the ask (``asked.json``); ``tell`` loads that, sets
each candidate's objectives F and constraint G (``G = -1`` feasible, ``+1`` failed; a failed candidate's F
is ``failure_penalty``, finite, so NSGA-II's constraint domination ranks it last and no NaN enters the
algorithm) and writes the told state (``told.json``).

A state file holds no code: it is the algorithm's seed and the history of every generation so far (asked
X, told F and G; floats written with repr, so they read back exactly) with a sha256 of it beside it
(:func:`balancebench.fileio.write_checked_json`). The pymoo algorithm is rebuilt from it by replaying the
history: a fresh algorithm set up with the same seed asks the same X (checked) and is told the same F, G,
so its ``random_state`` and population are those of an uninterrupted run, and a rerun from any stored
state asks the same candidates. Replaying costs a few ms per generation (no training).

Kinds: ``nsde`` = pymoo ``NSDE`` (NSGA-II survival, DE/rand/1/bin variation, CR 0.7, as seed 001);
``de`` = pymoo ``DE`` (same variation, greedy single-objective survival) on the sum of the objectives;
``cmaes`` = pymoo ``CMAES`` (the ``cma`` package; the single-objective baseline seed 001's conclusion names) on
the same sum; ``grid`` = every value once, no algorithm.

**One initial population per search seed.** Generation 0 of every evolutionary kind is the same Latin hypercube
draw of ``population`` points (:func:`initial_population`, seeded by the search's replicate seed alone, not by
the variant or the kind), so NSDE, DE and CMA-ES of one seed start from identical candidates and differ only by
what they do with them. CMA-ES evaluates that population, starts its mean at the best of it (pymoo's
``LocalSearch`` initialisation) with step ``sigma`` (in coordinates normalised to the bounds) and asks
``population`` candidates per later generation: every kind spends ``population x generations`` trainings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymoo.core.problem import Problem

from balancebench.fileio import read_checked_json, write_checked_json
from balancebench.search.space import SearchSpec
from balancebench.seeding import derive_seed

STATE_VERSION = 3  # 1: a pickle of the pymoo algorithm; 2: a per-variant initial population (no longer read)


class SearchProblem(Problem):
    """Bounds and sizes only: candidates are evaluated outside pymoo (one Snakemake job each)."""

    def __init__(self, xl, xu, n_obj):
        super().__init__(n_var=len(xl), n_obj=n_obj, n_ieq_constr=1, xl=np.asarray(xl), xu=np.asarray(xu))


def algorithm_seed(spec: SearchSpec, seed: int, variant: str) -> int:
    """pymoo's seed: a stable function of the search's replicate seed and the variant name."""
    return derive_seed(seed, f"search:{variant}")


def initial_population_seed(seed: int) -> int:
    """Seed of the initial Latin hypercube: the search's replicate seed alone (shared by every kind and variant)."""
    return derive_seed(seed, "search:initial_population")


def initial_population(spec: SearchSpec, seed: int) -> np.ndarray:
    """Generation 0 of every evolutionary kind: ``population`` points of a Latin hypercube (pymoo's
    ``LatinHypercubeSampling``: one point per stratum of each coordinate, random within it, the best of a few
    draws by the max-min distance) in the search coordinates, from :func:`initial_population_seed`.

    Two searches with the same space, population and replicate seed get the identical array, whatever their kind.
    """
    from pymoo.operators.sampling.lhs import LatinHypercubeSampling

    problem = SearchProblem(spec.space.xl, spec.space.xu, 1)
    rng = np.random.default_rng(initial_population_seed(seed))
    return np.asarray(LatinHypercubeSampling().do(problem, spec.population, random_state=rng).get("X"), dtype=float)


def n_objectives(spec: SearchSpec) -> int:
    return 1 if spec.scalar else len(spec.objectives)


def make_algorithm(spec: SearchSpec, seed: int, X0: np.ndarray):
    """The pymoo algorithm on the search space, its first population ``X0`` (no termination: the DAG unrolls
    the generations)."""
    from pymoo.algorithms.moo.nsde import NSDE
    from pymoo.algorithms.soo.nonconvex.de import DE
    from pymoo.core.termination import NoTermination

    problem = SearchProblem(spec.space.xl, spec.space.xu, n_objectives(spec))
    X0 = np.asarray(X0, dtype=float)
    if spec.kind == "nsde":
        algorithm = NSDE(pop_size=spec.population, sampling=X0, variant="DE/rand/1/bin", CR=0.7, seed=seed)
    elif spec.kind == "de":
        algorithm = DE(pop_size=spec.population, sampling=X0, variant="DE/rand/1/bin", CR=0.7, seed=seed)
    elif spec.kind == "cmaes":
        from pymoo.algorithms.soo.nonconvex.cmaes import CMAES
        from pymoo.core.initialization import Initialization

        algorithm = CMAES(pop_size=spec.population, sigma=spec.sigma, seed=seed)
        # pymoo's CMAES passes unknown keywords on to cma's options, so its LocalSearch initialisation (the
        # population whose best becomes x0) is set here: the shared first population, all of it evaluated
        algorithm.initialization = Initialization(X0)
        algorithm.n_sample_points = len(X0)
    else:
        raise ValueError(f"no pymoo algorithm for search kind {spec.kind!r}")
    algorithm.setup(problem, termination=NoTermination(), seed=seed)
    return algorithm


def _save(state: dict, path: str | Path) -> None:
    write_checked_json(path, state)


def _load(path: str | Path) -> dict:
    state = read_checked_json(path, "search state")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: search state version {state.get('version')} is not {STATE_VERSION} "
                         f"(rebuild it: snakemake --cores 2 -f {path})")
    return state


def _ask_population(algorithm, spec: SearchSpec):
    """pymoo's ask, filled up to the DAG's ``n_candidates`` from the algorithm's RNG (duplicate elimination)."""
    from pymoo.core.population import Population

    stopped = algorithm.is_initialized and getattr(algorithm, "next_X", 0) is None  # CMA-ES met its tolerances
    pop = None if stopped else algorithm.ask()  # (pymoo's CMAES would fail on its finished generator)
    if pop is None:  # the budget is kept with uniform draws from the algorithm's RNG
        pop = Population.new(X=np.empty((0, len(spec.space.dims))))
    X = np.asarray(pop.get("X"), dtype=float).reshape(len(pop), len(spec.space.dims))
    if len(X) != spec.n_candidates:  # duplicate elimination can return fewer: fill from the algorithm's RNG
        missing = spec.n_candidates - len(X)
        if missing < 0:
            raise RuntimeError(f"pymoo asked {len(X)} candidates, the DAG has {spec.n_candidates}")
        extra = algorithm.random_state.uniform(spec.space.xl, spec.space.xu, size=(missing, len(spec.space.dims)))
        pop = Population.merge(pop, Population.new(X=extra))
    return pop


def _tell_population(algorithm, pop, F, G) -> None:
    from pymoo.core.evaluator import Evaluator
    from pymoo.problems.static import StaticProblem

    Evaluator().eval(StaticProblem(algorithm.problem, F=np.asarray(F, dtype=float), G=np.asarray(G, dtype=float)), pop)
    algorithm.tell(infills=pop)


def _check_same(pop, X, where: str) -> None:
    asked = np.asarray(pop.get("X"), dtype=float)
    if asked.shape != np.shape(X) or not np.array_equal(asked, np.asarray(X, dtype=float)):
        raise ValueError(f"{where}: replaying the search state asks other candidates than it recorded "
                         "(another pymoo version or search config?); rerun the search from generation 0")


def _replay(spec: SearchSpec, state: dict, where):
    """The algorithm after every told generation of ``state['history']`` (a fresh one for an empty history)."""
    algorithm = make_algorithm(spec, int(state["algorithm_seed"]), np.asarray(state["initial_population"]))
    for gen in state["history"]:
        pop = _ask_population(algorithm, spec)
        _check_same(pop, gen["X"], where)
        _tell_population(algorithm, pop, gen["F"], gen["G"])
    return algorithm


def _seeds(state: dict) -> dict:
    return {k: state[k] for k in ("algorithm_seed", "initial_population_seed", "initial_population")}


def _matrix(a) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(a, dtype=float)]


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
        state = {"algorithm_seed": algorithm_seed(spec, seed, variant),
                 "initial_population_seed": initial_population_seed(seed),
                 "initial_population": _matrix(initial_population(spec, seed)), "history": []}
    else:
        state = _load(told_state)
        if state["generation"] != generation - 1 or state["stage"] != "told":
            raise ValueError(f"{told_state}: holds generation {state['generation']} ({state['stage']}), "
                             f"not the told generation {generation - 1}")
    algorithm = _replay(spec, state, told_state)
    X = np.asarray(_ask_population(algorithm, spec).get("X"), dtype=float)
    stopped = algorithm.is_initialized and getattr(algorithm, "next_X", 0) is None
    _save({"version": STATE_VERSION, "kind": spec.kind, "generation": generation, "stage": "asked",
           **_seeds(state), "history": state["history"], "X": _matrix(X),
           "algorithm_stopped": bool(stopped)}, asked_state)
    return [{"generation": generation, "index": i, "x": [float(v) for v in x], "params": spec.space.decode(x)}
            for i, x in enumerate(X)]


def objective_matrix(spec: SearchSpec, evaluations: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(F, G) for pymoo from the candidates' evaluations (``{"feasible", "objectives": {name: value}}``)."""
    F = np.array([[float(e["objectives"][o]) for o in spec.objectives] for e in evaluations], dtype=float)
    feasible = np.array([bool(e["feasible"]) for e in evaluations])
    F[~feasible] = spec.failure_penalty
    if not np.isfinite(F).all():
        raise ValueError("an objective of a feasible candidate is not finite (evaluate_candidate marks those failed)")
    if spec.scalar:
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
    if len(evaluations) != len(state["X"]):
        raise ValueError(f"{len(evaluations)} evaluations for {len(state['X'])} candidates")
    F, G = objective_matrix(spec, evaluations)
    # the told state is the asked one plus this generation's F and G; replaying it checks that it rebuilds
    history = [*state["history"], {"X": state["X"], "F": _matrix(F), "G": _matrix(G)}]
    told = {"version": STATE_VERSION, "kind": spec.kind, "generation": generation, "stage": "told",
            **_seeds(state), "history": history}
    _replay(spec, told, asked_state)
    _save(told, told_state)
